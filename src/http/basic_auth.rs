//! Basic authentication for the exporter's endpoints against the bcrypt hashes of
//! `basic_auth_users` in `--web.config.file`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine;
use hyper::header::HeaderValue;

/// The highest bcrypt cost accepted in `basic_auth_users`: each verify at cost 12 takes about
/// a quarter of a second here, and every failed attempt costs one.
pub const MAX_BCRYPT_COST: u32 = 12;

/// How many distinct `Authorization` headers are remembered (successes and failures). Past
/// that the memory starts over: it bounds what an attacker can make us keep.
const CACHE_ENTRIES: usize = 256;

/// Basic authentication against bcrypt hashes, as the exporter toolkit does it:
/// - results are remembered by a keyed hash of the whole `Authorization` header (never the
///   header itself), failures as well as successes, so repeating a wrong password costs a lookup,
///   not a bcrypt verify; successes are kept apart, so a flood of distinct wrong passwords (which
///   starts the failures' memory over) never makes Prometheus's accepted scrape verify again
///   and queue behind the flood;
/// - verifies run one at a time, off the async workers, so forty bad requests cannot burn forty
///   cores' worth of bcrypt at once;
/// - an unknown user is checked against a dummy hash of the same cost, so the answer takes as
///   long as for a known user and does not tell which users exist.
#[derive(Debug)]
pub struct BasicAuth {
    users: HashMap<String, String>,
    /// A hash of a random password at the users' highest cost, for unknown users.
    dummy: String,
    remembered: ArcSwap<HashMap<u64, bool>>,
    /// Headers that were accepted: only right passwords get here, so failures never evict them.
    accepted: ArcSwap<HashMap<u64, bool>>,
    keys: RandomState,
    verifying: tokio::sync::Mutex<()>,
    verifies: std::sync::atomic::AtomicU64,
}

impl BasicAuth {
    pub(super) fn new(users: HashMap<String, String>) -> Self {
        let cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let dummy = bcrypt::hash(uuid::Uuid::new_v4().to_string(), cost).unwrap_or_default();
        BasicAuth {
            users,
            dummy,
            remembered: ArcSwap::from_pointee(HashMap::new()),
            accepted: ArcSwap::from_pointee(HashMap::new()),
            keys: RandomState::new(),
            verifying: tokio::sync::Mutex::new(()),
            verifies: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// bcrypt verifies run so far (each costs tens of milliseconds of CPU).
    #[cfg(test)]
    pub fn verifies(&self) -> u64 {
        self.verifies.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the `Authorization` header carries valid credentials.
    pub async fn allows(self: &Arc<Self>, header: Option<&HeaderValue>) -> bool {
        let Some(header) = header.and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let fingerprint = self.keys.hash_one(header);
        if self.accepted.load().contains_key(&fingerprint) {
            return true;
        }
        if let Some(known) = self.remembered.load().get(&fingerprint) {
            return *known;
        }
        let Some((user, password)) = decode_basic(header) else {
            return false;
        };
        let _turn = self.verifying.lock().await;
        // Another request may have verified the same header while this one waited.
        if self.accepted.load().contains_key(&fingerprint) {
            return true;
        }
        if let Some(known) = self.remembered.load().get(&fingerprint) {
            return *known;
        }
        let (hash, known_user) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (self.dummy.clone(), false),
        };
        self.verifies
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // bcrypt takes tens of milliseconds: keep it off the async workers.
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
                && known_user;
        let memory = if ok { &self.accepted } else { &self.remembered };
        memory.rcu(|map| {
            let mut map = if map.len() >= CACHE_ENTRIES {
                HashMap::new()
            } else {
                HashMap::clone(map)
            };
            map.insert(fingerprint, ok);
            map
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    fn auth() -> Arc<BasicAuth> {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        Arc::new(BasicAuth::new(HashMap::from([(
            "prometheus".to_owned(),
            hash,
        )])))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forty_wrong_passwords_at_once_cost_one_verify() {
        let auth = auth();
        let wrong = header("prometheus", "wrong");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..40 {
            let auth = auth.clone();
            let wrong = wrong.clone();
            tasks.spawn(async move { auth.allows(Some(&wrong)).await });
        }
        while let Some(allowed) = tasks.join_next().await {
            assert!(!allowed.unwrap());
        }
        assert_eq!(
            auth.verifies(),
            1,
            "failures are remembered, verifies serialised"
        );
        assert!(auth.allows(Some(&header("prometheus", "s3cret"))).await);
        assert!(auth.allows(Some(&header("prometheus", "s3cret"))).await);
        assert_eq!(auth.verifies(), 2);
    }

    #[tokio::test]
    async fn an_unknown_user_costs_a_verify_like_a_known_one() {
        let auth = auth();
        assert!(!auth.allows(Some(&header("nobody", "s3cret"))).await);
        assert_eq!(
            auth.verifies(),
            1,
            "a dummy verify, so timing does not tell"
        );
        assert!(!auth.allows(Some(&header("prometheus", "nope"))).await);
        assert_eq!(auth.verifies(), 2);
    }

    #[tokio::test]
    async fn the_memory_is_bounded() {
        let auth = auth();
        for i in 0..(CACHE_ENTRIES + 10) {
            let _ = auth
                .allows(Some(&header("prometheus", &format!("guess{i}"))))
                .await;
        }
        assert!(auth.remembered.load().len() <= CACHE_ENTRIES);
    }

    #[tokio::test]
    async fn a_flood_of_wrong_passwords_does_not_make_the_right_one_verify_again() {
        let auth = auth();
        assert!(auth.allows(Some(&header("prometheus", "s3cret"))).await);
        for i in 0..(2 * CACHE_ENTRIES) {
            let _ = auth
                .allows(Some(&header("prometheus", &format!("guess{i}"))))
                .await;
        }
        let before = auth.verifies();
        assert!(auth.allows(Some(&header("prometheus", "s3cret"))).await);
        assert_eq!(auth.verifies(), before, "still remembered");
    }
}
