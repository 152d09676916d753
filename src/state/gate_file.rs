//! The login gate's memory of one Dexcom identity (`share::LoginIdentity`): one file per
//! identity, `gate-<key>.json`, shared by every configuration entry, spelling and command that
//! logs in as it. Reading and writing fail closed: a file that exists but cannot be read or
//! parsed is [`StoreFault::Unreadable`] (never "as if empty", which would forget the failures it
//! counts), and a save that cannot be made durable is [`StoreFault::Unwritable`]; either way
//! the client keeps the password.
//!
//! A login name that Share has resolved to an account ID (its `AuthenticatePublisherAccount`
//! answered) keeps only a pointer to that ID; the gate is then the ID's file, shared with every
//! other name, e-mail or configured `account_id` of the same account. Within one process, two
//! entries that turn out to be one account are told apart by the directory's claims: the
//! second is refused ([`StoreFault::Duplicate`]) and stops logging in.
//!
//! The times in it are Unix milliseconds of the host's wall clock, the one clock a later run
//! can read them back in; the gate clamps them on the way in (`LoginGate::restore`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::FORMAT_VERSION;
use super::atomic::{Owner, write_atomically};
use crate::share::LoginIdentity;
use crate::share::gate::{GateState, GateStore, StoreFault};

/// What a gate file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GateFileContents {
    version: u32,
    /// The identity, for people reading the directory.
    identity: String,
    /// The gate's memory.
    gate: GateState,
    /// For a login name: the account ID Share resolved it to, whose file holds the gate now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account_id: Option<Uuid>,
}

/// Which account of this process has each identity (by file key): one account per identity.
pub(super) type Claims = Arc<Mutex<HashMap<String, String>>>;

/// One identity's gate file.
#[derive(Debug)]
pub struct GateFile {
    dir: PathBuf,
    /// The account label of the entry this gate is for.
    account: String,
    /// The identity as configured.
    configured: LoginIdentity,
    /// The identity whose file is read and written now: the configured one, or the account ID
    /// Share resolved it to.
    current: Mutex<LoginIdentity>,
    /// The account ID the configured name resolved to, kept in its file by every save of it.
    pointer: Mutex<Option<Uuid>>,
    owner: Owner,
    /// Read beside the directory's holder: never written.
    read_only: bool,
    /// What an earlier version kept in the account's own file, used until this file exists.
    legacy: Result<Option<GateState>, String>,
    claims: Claims,
}

impl GateFile {
    pub(super) fn new(
        dir: &Path,
        account: &str,
        identity: &LoginIdentity,
        owner: Owner,
        read_only: bool,
        legacy: Result<Option<GateState>, String>,
        claims: Claims,
    ) -> Self {
        GateFile {
            dir: dir.to_owned(),
            account: account.to_owned(),
            configured: identity.clone(),
            current: Mutex::new(identity.clone()),
            pointer: Mutex::new(None),
            owner,
            read_only,
            legacy,
            claims,
        }
    }

    /// The file of `identity`.
    fn file_of(&self, identity: &LoginIdentity) -> PathBuf {
        self.dir.join(format!("gate-{}.json", identity.file_key()))
    }

    /// The file read and written now.
    #[cfg(test)]
    pub fn path(&self) -> PathBuf {
        self.file_of(&self.current())
    }

    fn current(&self) -> LoginIdentity {
        self.current
            .lock()
            .map_or_else(|e| e.into_inner().clone(), |c| c.clone())
    }

    fn unreadable(&self, path: &Path, detail: impl std::fmt::Display) -> StoreFault {
        StoreFault::Unreadable {
            path: path.display().to_string(),
            detail: detail.to_string(),
        }
    }

    fn unwritable(&self, path: &Path, detail: impl std::fmt::Display) -> StoreFault {
        StoreFault::Unwritable {
            path: path.display().to_string(),
            detail: detail.to_string(),
        }
    }

    /// The contents of `identity`'s file; `None` when there is none.
    fn read(&self, identity: &LoginIdentity) -> Result<Option<GateFileContents>, StoreFault> {
        let path = self.file_of(identity);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.unreadable(&path, error)),
        };
        let contents: GateFileContents =
            serde_json::from_slice(&bytes).map_err(|error| self.unreadable(&path, error))?;
        if contents.version != FORMAT_VERSION {
            return Err(self.unreadable(
                &path,
                format_args!(
                    "format version {} (this exporter reads {FORMAT_VERSION})",
                    contents.version
                ),
            ));
        }
        Ok(Some(contents))
    }

    fn write(
        &self,
        identity: &LoginIdentity,
        gate: &GateState,
        account_id: Option<Uuid>,
    ) -> Result<(), StoreFault> {
        let path = self.file_of(identity);
        if self.read_only {
            return Err(self.unwritable(
                &path,
                "another process holds the state directory; this is a read-only look",
            ));
        }
        let contents = GateFileContents {
            version: FORMAT_VERSION,
            identity: identity.to_string(),
            gate: gate.clone(),
            account_id,
        };
        let text = serde_json::to_vec_pretty(&contents).map_err(|e| self.unwritable(&path, e))?;
        write_atomically(&path, &text, self.owner).map_err(|e| self.unwritable(&path, e))
    }

    /// Claims `identity` for this entry; refused when another entry of this process has it.
    fn claim(&self, identity: &LoginIdentity) -> Result<(), StoreFault> {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        match claims.get(&identity.file_key()) {
            Some(other) if *other != self.account => Err(StoreFault::Duplicate {
                other: other.clone(),
                identity: identity.to_string(),
            }),
            _ => {
                claims.insert(identity.file_key(), self.account.clone());
                Ok(())
            }
        }
    }

    fn set_pointer(&self, id: Uuid) {
        if let Ok(mut pointer) = self.pointer.lock() {
            *pointer = Some(id);
        }
    }

    /// Reads and writes `identity`'s file from now on.
    fn switch_to(&self, identity: LoginIdentity) {
        if let Ok(mut current) = self.current.lock() {
            *current = identity;
        }
    }
}

/// `state` with the failures and logins `other` counted for the same account, each once.
fn merged(mut state: GateState, other: &GateState) -> GateState {
    for (mine, theirs) in [
        (&mut state.failures_ms, &other.failures_ms),
        (&mut state.logins_ms, &other.logins_ms),
    ] {
        mine.extend(theirs.iter().copied());
        mine.sort_unstable();
        mine.dedup();
    }
    state
}

impl GateStore for GateFile {
    fn load(&self) -> Result<Option<GateState>, StoreFault> {
        self.claim(&self.configured)?;
        let Some(contents) = self.read(&self.configured)? else {
            return self
                .legacy
                .clone()
                .map_err(|detail| self.unreadable(&self.file_of(&self.configured), detail));
        };
        let Some(id) = contents
            .account_id
            .filter(|_| !self.configured.is_account_id())
        else {
            return Ok(Some(contents.gate));
        };
        // Resolved before: the gate is the account ID's.
        self.set_pointer(id);
        let resolved = self.configured.with_account_id(id);
        self.claim(&resolved)?;
        let gate = self.read(&resolved)?.map_or(contents.gate, |c| c.gate);
        self.switch_to(resolved);
        Ok(Some(gate))
    }

    fn save(&self, gate: &GateState) -> Result<(), StoreFault> {
        let current = self.current();
        let pointer = if current == self.configured {
            self.pointer.lock().ok().and_then(|p| *p)
        } else {
            None
        };
        self.write(&current, gate, pointer)
    }

    fn resolved(&self, id: Uuid, state: &GateState) -> Result<GateState, StoreFault> {
        if self.configured.is_account_id() || self.read_only {
            return Ok(state.clone());
        }
        let resolved = self.configured.with_account_id(id);
        if self.current() == resolved {
            return Ok(state.clone());
        }
        if let Err(duplicate) = self.claim(&resolved) {
            // The pointer still goes down (and stays, through every later save), so the next
            // run refuses this entry before it sends anything (its load claims the ID too).
            self.set_pointer(id);
            self.write(&self.configured, state, Some(id))?;
            return Err(duplicate);
        }
        let state = match self.read(&resolved)? {
            Some(known) => merged(state.clone(), &known.gate),
            None => state.clone(),
        };
        // The ID's file first: the pointer never names a file that does not hold the gate.
        self.write(&resolved, &state, None)?;
        self.set_pointer(id);
        self.write(&self.configured, &state, Some(id))?;
        self.switch_to(resolved);
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::Login;
    use crate::state::StateDir;

    const ID: &str = "11111111-2222-3333-4444-555555555555";

    fn identity(login: Login) -> LoginIdentity {
        LoginIdentity::new(&"https://share2.dexcom.com/".parse().unwrap(), &login)
    }

    fn failures(ms: &[i64]) -> GateState {
        GateState {
            failures_ms: ms.to_vec(),
            ..GateState::default()
        }
    }

    #[test]
    fn a_name_resolved_to_an_id_shares_that_ids_gate_across_spellings_and_runs() {
        let dir = std::env::temp_dir().join(format!("dexcom-gate-{}-resolve", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let id: Uuid = ID.parse().unwrap();
        {
            let state = StateDir::open(&dir).unwrap();
            // The ID's gate, as an entry configured by account ID left it.
            let by_id = state.gate(&identity(Login::AccountId(id)), &state.account("grandpa"));
            by_id.save(&failures(&[10])).unwrap();
            drop(by_id);
            // A username that Share resolves to that ID.
            let kid = state.gate(
                &identity(Login::Username("kid".into())),
                &state.account("kid"),
            );
            assert_eq!(kid.load(), Ok(None));
            let merged = kid.resolved(id, &failures(&[20])).unwrap();
            assert_eq!(
                merged.failures_ms,
                vec![10, 20],
                "both spellings' failures, once"
            );
            kid.save(&failures(&[10, 20, 30])).unwrap();
        }
        // The next run, through an e-mail of the same account that never resolved: its own
        // file; through the name that did: the ID's.
        let state = StateDir::open(&dir).unwrap();
        let kid = state.gate(
            &identity(Login::Username(" KID ".into())),
            &state.account("kid"),
        );
        assert_eq!(kid.load(), Ok(Some(failures(&[10, 20, 30]))));
        let by_id = state.gate(&identity(Login::AccountId(id)), &state.account("other"));
        assert!(
            matches!(by_id.load(), Err(StoreFault::Duplicate { ref other, .. }) if other == "kid"),
            "one process, two entries for one account: the second is refused"
        );
        drop(state);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
