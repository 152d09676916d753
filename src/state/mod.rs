//! What must survive a restart, kept in the state directory (`--storage.path`, by default
//! systemd's `$STATE_DIRECTORY`): per account, the login gate's memory of failed password
//! attempts and the fingerprint of the password they were made with, the upload delay the
//! poller learned, and which readings each remote-write receiver acknowledged. Without it, a
//! crash or restart loop would send a wrong password once per restart and lock the Dexcom
//! account, and a restart would resend a day of readings.
//!
//! One small JSON file per account, `account-<name>.json` (the name percent-encoded), with a
//! format `version`. Writes are atomic: a temporary file, `fsync`, `rename`, `fsync` of the
//! directory, so a power cut leaves the old file or the new one, never half of one. A file that
//! cannot be read or parsed is logged and treated as empty ("no confirmed password"), never as a
//! reason not to start.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::share::gate::{GateState, GateStore};

mod acked;

pub use acked::Acked;

/// The file format written now; files of another version are ignored (and replaced).
pub const FORMAT_VERSION: u32 = 1;

/// The lock file in the state directory: whoever holds the advisory lock on it owns the
/// directory (and the login gates in it). It says who holds it, for the message to the second.
pub const LOCK_FILE: &str = ".lock";

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "a field is named for what it holds, and the #[error] message shows it in context"
)]
pub enum StateError {
    /// Another process (an exporter, a backfill) holds the directory: two would keep two login
    /// gates for the same Dexcom accounts and double their failed logins.
    #[error(
        "--storage.path {path} is in use by {holder}: stop it first, give this one another --storage.path, or, to backfill while the service runs, fetch its history from the running exporter (curl http://ADDRESS/api/v1/history)"
    )]
    Locked {
        path: PathBuf,
        /// What the lock file says of its holder (pid, start time), or "another process".
        holder: String,
    },
    /// The directory cannot be created or is not a directory.
    #[error("cannot use --storage.path {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The state directory, locked for as long as any clone of this lives.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
    /// The locked lock file: the lock ends when the last clone is dropped (or the process ends,
    /// however it ends: the kernel drops an advisory lock with its holder). `None` for a
    /// read-only look beside the holder ([`StateDir::beside_holder`]).
    _lock: Option<std::sync::Arc<std::fs::File>>,
}

impl StateDir {
    /// Opens `path`, creating it (mode 0700: it describes health accounts) if missing.
    ///
    /// # Errors
    /// [`StateError::Directory`] when it cannot be created or written.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let error = |source| StateError::Directory {
            path: path.to_owned(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(error)?;
        // Fail at start, not at the first failed login, when it cannot be written.
        let probe = path.join(".write-test");
        std::fs::write(&probe, b"").map_err(error)?;
        let _ = std::fs::remove_file(&probe);
        let lock = lock(path).map_err(|e| match e {
            LockFailure::Held(holder) => StateError::Locked {
                path: path.to_owned(),
                holder,
            },
            LockFailure::Io(source) => error(source),
        })?;
        Ok(StateDir {
            path: path.to_owned(),
            _lock: Some(std::sync::Arc::new(lock)),
        })
    }

    /// The directory another process holds, to read what its files say (`dexcom_exporter
    /// check` beside a running service): nothing is ever written through it.
    pub fn beside_holder(path: &Path) -> Self {
        StateDir {
            path: path.to_owned(),
            _lock: None,
        }
    }

    /// Whether this is a read-only look at a directory another process holds.
    pub fn read_only(&self) -> bool {
        self._lock.is_none()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state file of the account labelled `name`, read now.
    pub fn account(&self, name: &str) -> AccountStateFile {
        let path = self
            .path
            .join(format!("account-{}.json", encode_name(name)));
        let state = read_state(&path, name);
        AccountStateFile {
            path,
            account: name.to_owned(),
            state: Mutex::new(state),
            said_write_error: AtomicBool::new(false),
            read_only: self.read_only(),
        }
    }
}

enum LockFailure {
    Held(String),
    Io(std::io::Error),
}

/// Takes the directory's advisory lock and writes who holds it.
fn lock(dir: &Path) -> Result<std::fs::File, LockFailure> {
    use std::io::{Read as _, Seek as _};
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(LockFailure::Io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = text.trim();
            return Err(LockFailure::Held(if holder.is_empty() {
                "another process".to_owned()
            } else {
                holder.chars().take(200).collect()
            }));
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(LockFailure::Io(error)),
    }
    // The pid names the holder (`ps -p PID` says whether it is the service or a one-off
    // backfill); the library reads no argv of its own to say it.
    let holder = format!(
        "dexcom_exporter, pid {}, since {}",
        std::process::id(),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = file.write_all(holder.as_bytes());
    Ok(file)
}

/// What one account's file holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct AccountState {
    version: u32,
    /// The account label, for people reading the directory.
    account: String,
    /// The login gate's memory.
    gate: Option<GateState>,
    /// The upload delay the poller learned (its grace), in ms, so the first reading after a
    /// restart is read as promptly as the last one before it.
    #[serde(default)]
    upload_grace_ms: Option<f64>,
    /// Per remote-write receiver (by its `remote_name`): the readings it acknowledged.
    #[serde(default)]
    remote_write: std::collections::BTreeMap<String, Acked>,
}

/// One account's state file; the account's Share client loads and saves its gate through it.
#[derive(Debug)]
pub struct AccountStateFile {
    path: PathBuf,
    account: String,
    state: Mutex<AccountState>,
    said_write_error: AtomicBool,
    /// Read beside the directory's holder: never written.
    read_only: bool,
}

impl AccountStateFile {
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The learned upload grace saved by an earlier run.
    pub fn upload_grace(&self) -> Option<std::time::Duration> {
        let ms = self.state.lock().ok()?.upload_grace_ms?;
        (ms.is_finite() && ms >= 0.0).then(|| std::time::Duration::from_secs_f64(ms / 1000.0))
    }

    /// Saves the learned upload grace.
    pub fn save_upload_grace(&self, grace: std::time::Duration) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.upload_grace_ms = Some(grace.as_secs_f64() * 1000.0);
        self.persist(&mut state);
    }

    /// What the receiver named `remote_name` acknowledged in an earlier run.
    pub(crate) fn remote_write_acked(&self, remote_name: &str) -> Acked {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.remote_write.get(remote_name).cloned())
            .unwrap_or_default()
    }

    /// Saves what the receiver named `remote_name` has acknowledged.
    pub(crate) fn save_remote_write_acked(&self, remote_name: &str, acked: &Acked) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.remote_write.get(remote_name) == Some(acked) {
            return;
        }
        state
            .remote_write
            .insert(remote_name.to_owned(), acked.clone());
        self.persist(&mut state);
    }

    /// Writes `state` (already holding the change), logging a failure once per episode.
    fn persist(&self, state: &mut AccountState) {
        if self.read_only {
            return;
        }
        state.version = FORMAT_VERSION;
        state.account.clone_from(&self.account);
        match self.write(state) {
            Ok(()) => {
                if self.said_write_error.swap(false, Ordering::Relaxed) {
                    tracing::info!(account = %self.account, path = %self.path.display(), "state file written again");
                }
            }
            Err(error) => {
                if !self.said_write_error.swap(true, Ordering::Relaxed) {
                    tracing::error!(account = %self.account, path = %self.path.display(), %error, "cannot write the state file: login limits will not survive a restart until this is fixed");
                }
            }
        }
    }

    fn write(&self, state: &AccountState) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        let temporary = self.path.with_extension("json.tmp");
        {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(&text)?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl GateStore for AccountStateFile {
    fn load(&self) -> Option<GateState> {
        self.state.lock().ok()?.gate.clone()
    }

    fn save(&self, gate: &GateState) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.gate = Some(gate.clone());
        self.persist(&mut state);
    }
}

fn read_state(path: &Path, account: &str) -> AccountState {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return AccountState::default();
        }
        Err(error) => {
            tracing::warn!(account, path = %path.display(), %error, "cannot read the state file; starting as if no password had been confirmed");
            return AccountState::default();
        }
    };
    match serde_json::from_slice::<AccountState>(&text) {
        Ok(state) if state.version == FORMAT_VERSION => state,
        Ok(state) => {
            tracing::warn!(account, path = %path.display(), version = state.version, "state file of an unknown format version; starting as if no password had been confirmed");
            AccountState::default()
        }
        Err(error) => {
            tracing::warn!(account, path = %path.display(), %error, "corrupt state file; starting as if no password had been confirmed");
            AccountState::default()
        }
    }
}

/// The account name as a file-name part: ASCII letters, digits, `.`, `_` and `-` as they are,
/// every other byte as `%XX`, so any name maps to exactly one file.
fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'_' | b'-')
            || (byte == b'.' && !out.is_empty())
        {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dexcom-state-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn saved_state_is_read_back_by_the_next_run() {
        let dir = scratch("roundtrip");
        let state = StateDir::open(&dir).unwrap();
        let gate = GateState {
            fingerprint: Some("$2b$10$abc".into()),
            failures_ms: vec![1, 2],
            consecutive_failures: 2,
            not_before_ms: 99,
            ..GateState::default()
        };
        state.account("kid@example.com").save(&gate);
        // The next run: this one lets go of the directory first.
        drop(state);
        let again = StateDir::open(&dir).unwrap().account("kid@example.com");
        assert_eq!(again.load(), Some(gate));
        assert!(
            again.path().ends_with("account-kid%40example.com.json"),
            "{}",
            again.path().display()
        );
        let text = std::fs::read_to_string(again.path()).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
        again.save_upload_grace(std::time::Duration::from_millis(7250));
        let third = StateDir::open(&dir).unwrap().account("kid@example.com");
        assert_eq!(
            third.upload_grace(),
            Some(std::time::Duration::from_millis(7250))
        );
        assert_eq!(third.load(), again.load(), "the gate's part is kept");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_or_foreign_file_is_ignored_not_fatal() {
        let dir = scratch("corrupt");
        let state = StateDir::open(&dir).unwrap();
        let path = state.account("a").path().to_owned();
        for junk in [
            &b"{not json"[..],
            b"",
            br#"{"version":99,"account":"a","gate":null}"#,
        ] {
            std::fs::write(&path, junk).unwrap();
            assert_eq!(state.account("a").load(), None);
        }
        // And it is replaced by the next save.
        state.account("a").save(&GateState::default());
        assert_eq!(state.account("a").load(), Some(GateState::default()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = scratch("lock");
        let first = StateDir::open(&dir).unwrap();
        let second = StateDir::open(&dir).unwrap_err();
        let text = second.to_string();
        assert!(matches!(second, StateError::Locked { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())) && text.contains("in use by"),
            "{text}"
        );
        let clone = first.clone();
        drop(first);
        assert!(StateDir::open(&dir).is_err(), "a clone still holds it");
        drop(clone);
        let again = StateDir::open(&dir);
        assert!(again.is_ok(), "free once the holder is gone");
        drop(again);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn names_map_to_distinct_safe_file_names() {
        assert_eq!(encode_name("kid"), "kid");
        assert_eq!(encode_name("a/b"), "a%2Fb");
        assert_eq!(encode_name(".."), "%2E.");
        assert_ne!(encode_name("a b"), encode_name("a_b"));
    }
}
