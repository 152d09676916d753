//! What must survive a restart, kept in the state directory (`--storage.path`; where it is by
//! default is `config/storage.rs`'s to say): per Dexcom identity, the login gate's memory of
//! failed password attempts and the fingerprint of the password they were made with
//! (`gate-<key>.json`, `gate_file.rs`); per account, the upload delay the poller learned and
//! which readings each remote-write receiver acknowledged (`account-<name>.json`, the name
//! percent-encoded). Without it, a crash or restart loop would send a wrong password once per
//! restart and lock the Dexcom account, and a restart would resend a day of readings.
//!
//! Small JSON files with a format `version`, written atomically and owned by the directory's
//! owner (`atomic.rs`). The gate's file fails closed (a file it cannot read or write keeps the
//! password in the process); an account file that cannot be read is logged, its learned delay
//! and cursors start afresh, and it is not overwritten, so nothing in it is lost.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::share::LoginIdentity;
use crate::share::gate::GateState;

mod acked;
mod atomic;
mod gate_file;

pub use acked::Acked;
use atomic::{Owner, write_atomically};
pub use gate_file::GateFile;

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
    #[error("cannot use --storage.path {path}: {source}{}", if crate::state::atomic::may_pass(source) { " (this may pass: the service is restarted)" } else if source.kind() == std::io::ErrorKind::PermissionDenied { " (another user owns it: run as the service's user, or as root, which gives every file it writes to the directory's owner)" } else { "" })]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StateError {
    /// Whether the error may pass by itself (a full, read-only or failing disk), so a service
    /// should be restarted later rather than wait for a person.
    pub fn may_pass(&self) -> bool {
        match self {
            StateError::Directory { source, .. } => atomic::may_pass(source),
            StateError::Locked { .. } => false,
        }
    }
}

/// The state directory, locked for as long as any clone of this lives.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
    /// Who owns the directory: every file written in it is given to them.
    owner: Owner,
    /// Which entry of this process has each Dexcom identity.
    claims: gate_file::Claims,
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
        // There but closed to this user (the service's, under DynamicUser=): say so, rather
        // than the "file exists" that creating it would answer.
        if let Err(denied) = std::fs::metadata(path)
            && denied.kind() == std::io::ErrorKind::PermissionDenied
        {
            return Err(error(denied));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(error)?;
        // Fail at start, not at the first failed login, when it cannot be written.
        // Made anew (O_EXCL, which no link can redirect): a link planted under this name by
        // whoever owns the directory must not make root truncate another file.
        let probe = path.join(".write-test");
        let _ = std::fs::remove_file(&probe);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&probe)
            .map_err(error)?;
        let _ = std::fs::remove_file(&probe);
        let owner = Owner::of(path).map_err(error)?;
        let lock = lock(path, owner).map_err(|e| match e {
            LockFailure::Held(holder) => StateError::Locked {
                path: path.to_owned(),
                holder,
            },
            LockFailure::Io(source) => error(source),
        })?;
        Ok(StateDir {
            path: path.to_owned(),
            owner,
            claims: gate_file::Claims::default(),
            _lock: Some(std::sync::Arc::new(lock)),
        })
    }

    /// The directory another process holds, to read what its files say (`dexcom_exporter
    /// check` beside a running service): nothing is ever written through it.
    pub fn beside_holder(path: &Path) -> Self {
        StateDir {
            path: path.to_owned(),
            owner: Owner::of(path).unwrap_or(Owner::NOBODY),
            claims: gate_file::Claims::default(),
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
        let (state, unreadable) = match read_state(&path) {
            Ok(state) => (state, None),
            Err(detail) => {
                tracing::warn!(account = name, path = %path.display(), error = %detail, "cannot read the account's state file: its learned upload delay and remote-write cursors start afresh, and the file is left as it is");
                (AccountState::default(), Some(detail))
            }
        };
        AccountStateFile {
            path,
            account: name.to_owned(),
            state: Mutex::new(state),
            unreadable,
            said_write_error: AtomicBool::new(false),
            read_only: self.read_only(),
            owner: self.owner,
        }
    }

    /// The login gate's file of `identity`; `account` is the entry's own file, whose gate
    /// section (where earlier versions kept it) is read until the identity's file exists.
    pub fn gate(&self, identity: &LoginIdentity, account: &AccountStateFile) -> GateFile {
        let legacy = match &account.unreadable {
            Some(detail) => Err(format!(
                "{} (where an earlier version kept it): {detail}",
                account.path.display()
            )),
            None => Ok(account.state.lock().ok().and_then(|s| s.gate.clone())),
        };
        GateFile::new(
            &self.path,
            &account.account,
            identity,
            self.owner,
            self.read_only(),
            legacy,
            self.claims.clone(),
        )
    }
}

/// Who holds the lock of the state directory at `dir`, without taking or creating anything:
/// `Ok(None)` when nobody does (or there is no lock file yet), `Err` when this user cannot
/// look (the service's directory is closed to other users).
pub fn lock_holder(dir: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(LOCK_FILE));
    let mut file = match file {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    match file.try_lock_shared() {
        // Released when the file is closed, at once.
        Ok(()) => Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = text.trim();
            Ok(Some(if holder.is_empty() {
                "another process".to_owned()
            } else {
                holder.chars().take(200).collect()
            }))
        }
        Err(std::fs::TryLockError::Error(error)) => Err(error),
    }
}

enum LockFailure {
    Held(String),
    Io(std::io::Error),
}

/// Takes the directory's advisory lock and writes who holds it.
fn lock(dir: &Path, owner: Owner) -> Result<std::fs::File, LockFailure> {
    use std::io::{Read as _, Seek as _};
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // A link in its place is refused, not followed (see `atomic.rs`).
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(LockFailure::Io)?;
    owner.adopt(&path).map_err(LockFailure::Io)?;
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
    /// The login gate's memory, where versions before the gate files kept it (read, for the
    /// move, never written).
    #[serde(default, skip_serializing)]
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
    /// Why the file could not be read: it is then never overwritten.
    unreadable: Option<String>,
    said_write_error: AtomicBool,
    /// Read beside the directory's holder: never written.
    read_only: bool,
    owner: Owner,
}

impl AccountStateFile {
    /// The file's path.
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
        if self.read_only || self.unreadable.is_some() {
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
        write_atomically(&self.path, &text, self.owner)
    }
}

/// An account file as saved; a missing one is empty, one that cannot be read or parsed (or of
/// another format version) is an error saying why.
fn read_state(path: &Path) -> Result<AccountState, String> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(AccountState::default());
        }
        Err(error) => return Err(error.to_string()),
    };
    match serde_json::from_slice::<AccountState>(&text) {
        Ok(state) if state.version == FORMAT_VERSION => Ok(state),
        Ok(state) => Err(format!(
            "format version {} (this exporter reads {FORMAT_VERSION})",
            state.version
        )),
        Err(error) => Err(error.to_string()),
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
    use crate::share::gate::StoreFault;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dexcom-state-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn kid() -> LoginIdentity {
        LoginIdentity::new(
            &"https://share2.dexcom.com/ShareWebServices/Services/"
                .parse()
                .unwrap(),
            &crate::share::Login::Username("kid@example.com".into()),
        )
    }

    #[test]
    fn saved_state_is_read_back_by_the_next_run() {
        use crate::share::gate::GateStore as _;
        let dir = scratch("roundtrip");
        let state = StateDir::open(&dir).unwrap();
        let gate = GateState {
            fingerprint: Some("$2b$10$abc".into()),
            failures_ms: vec![1, 2],
            consecutive_failures: 2,
            not_before_ms: 99,
            ..GateState::default()
        };
        let account = state.account("kid@example.com");
        state.gate(&kid(), &account).save(&gate).unwrap();
        account.save_upload_grace(std::time::Duration::from_millis(7250));
        // The next run: this one lets go of the directory first.
        drop(state);
        let again = StateDir::open(&dir).unwrap();
        let account = again.account("kid@example.com");
        let file = again.gate(&kid(), &account);
        assert_eq!(file.load(), Ok(Some(gate)));
        assert!(
            account.path().ends_with("account-kid%40example.com.json"),
            "{}",
            account.path().display()
        );
        assert_eq!(
            file.path().file_name().unwrap().to_str().unwrap(),
            format!("gate-{}.json", kid().file_key())
        );
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
        assert!(
            text.contains("username kid@example.com at https://share2.dexcom.com:443"),
            "{text}"
        );
        assert_eq!(
            account.upload_grace(),
            Some(std::time::Duration::from_millis(7250))
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_gate_kept_in_the_account_file_by_an_earlier_version_is_read_until_moved() {
        use crate::share::gate::GateStore as _;
        let dir = scratch("legacy");
        let state = StateDir::open(&dir).unwrap();
        let gate = GateState {
            failures_ms: vec![5],
            ..GateState::default()
        };
        let legacy = serde_json::json!({"version": 1, "account": "kid", "gate": gate});
        std::fs::write(
            dir.join("account-kid.json"),
            serde_json::to_vec(&legacy).unwrap(),
        )
        .unwrap();
        let account = state.account("kid");
        let file = state.gate(&kid(), &account);
        assert_eq!(file.load(), Ok(Some(gate.clone())));
        let moved = GateState {
            failures_ms: vec![5, 6],
            ..gate
        };
        file.save(&moved).unwrap();
        assert_eq!(
            state.gate(&kid(), &state.account("kid")).load(),
            Ok(Some(moved))
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_gate_file_that_cannot_be_read_fails_closed_and_is_not_overwritten_by_the_account() {
        use crate::share::gate::GateStore as _;
        let dir = scratch("corrupt");
        let state = StateDir::open(&dir).unwrap();
        let account = state.account("a");
        let path = state.gate(&kid(), &account).path().to_owned();
        for junk in [
            &b"{not json"[..],
            b"",
            br#"{"version":99,"identity":"x","gate":{}}"#,
        ] {
            std::fs::write(&path, junk).unwrap();
            let loaded = state.gate(&kid(), &account).load();
            assert!(
                matches!(loaded, Err(StoreFault::Unreadable { .. })),
                "{junk:?}: {loaded:?}"
            );
        }
        // An account file that cannot be read holds the gate too, while no gate file exists,
        // and is never overwritten.
        std::fs::remove_file(&path).unwrap();
        let account_path = dir.join("account-a.json");
        std::fs::write(&account_path, b"{torn").unwrap();
        let account = state.account("a");
        assert!(matches!(
            state.gate(&kid(), &account).load(),
            Err(StoreFault::Unreadable { .. })
        ));
        account.save_upload_grace(std::time::Duration::from_secs(1));
        assert_eq!(std::fs::read(&account_path).unwrap(), b"{torn");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_gate_that_cannot_be_written_says_so() {
        use crate::share::gate::GateStore as _;
        let dir = scratch("unwritable");
        let state = StateDir::open(&dir).unwrap();
        let account = state.account("a");
        let file = state.gate(&kid(), &account);
        // A directory where the temporary file goes: the write fails, as on a full disk.
        std::fs::create_dir_all(file.path().with_extension("json.tmp")).unwrap();
        let saved = file.save(&GateState::default());
        assert!(
            matches!(saved, Err(StoreFault::Unwritable { .. })),
            "{saved:?}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn full_read_only_and_failing_disks_may_pass_permissions_do_not() {
        use std::io::{Error, ErrorKind};
        for code in [5, 11, 28, 30] {
            assert!(atomic::may_pass(&Error::from_raw_os_error(code)), "{code}");
        }
        assert!(!atomic::may_pass(&Error::from(ErrorKind::PermissionDenied)));
        assert!(!atomic::may_pass(&Error::from(ErrorKind::NotADirectory)));
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
