//! Basic authentication for the exporter's endpoints against the bcrypt hashes of
//! `basic_auth_users` in `--web.config.file`.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine;
use hyper::header::HeaderValue;

/// Basic authentication against bcrypt hashes. bcrypt is slow by design (tens of ms), so a
/// verified `Authorization` header is remembered (by a keyed hash, never in clear) and later
/// scrapes with the same header cost one hash lookup, without a lock.
#[derive(Debug)]
pub struct BasicAuth {
    users: HashMap<String, String>,
    verified: ArcSwap<HashSet<u64>>,
    keys: RandomState,
}

impl BasicAuth {
    pub(super) fn new(users: HashMap<String, String>) -> Self {
        BasicAuth {
            users,
            verified: ArcSwap::from_pointee(HashSet::new()),
            keys: RandomState::new(),
        }
    }

    /// Whether the `Authorization` header carries valid credentials.
    pub async fn allows(self: &Arc<Self>, header: Option<&HeaderValue>) -> bool {
        let Some(header) = header.and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let fingerprint = self.keys.hash_one(header);
        if self.verified.load().contains(&fingerprint) {
            return true;
        }
        let Some((user, password)) = decode_basic(header) else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return false;
        };
        // bcrypt takes tens of milliseconds: keep it off the async workers.
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok {
            self.verified.rcu(|set| {
                let mut set = HashSet::clone(set);
                // Bounded: a handful of scrapers, never an attacker-sized set (only successes).
                if set.len() < 64 {
                    set.insert(fingerprint);
                }
                set
            });
        }
        ok
    }
}

fn decode_basic(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}
