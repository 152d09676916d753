//! Writing one state file so that a power cut leaves the old file or the new one, never half of
//! one, and so that a file written by root (`sudo dexcom_exporter check`) stays readable by the
//! service's own user: a temporary file, `fsync`, owner set to the directory's, `rename`, `fsync`
//! of the directory. No step follows a link: the directory belongs to the service's user, and
//! a link it planted must not lead root's writes (or its `chown`) to another file. Every
//! step's failure is returned: the login gate must not send a password
//! whose attempt could not be recorded.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Who owns the state directory: its files are given to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    uid: u32,
    gid: u32,
}

impl Owner {
    /// An owner for a read-only look, through which nothing is ever written.
    pub(crate) const NOBODY: Owner = Owner {
        uid: 65534,
        gid: 65534,
    };

    /// The owner of `dir`.
    pub(crate) fn of(dir: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(dir)?;
        Ok(Owner {
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }

    /// Gives `path` to this owner when it is someone else's: only root can, and only root
    /// writes files another user must read (the service runs as its own user). A process that
    /// may not (not root) leaves the file as it is: it owns the directory anyway.
    pub(crate) fn adopt(self, path: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.uid() == self.uid && meta.gid() == self.gid {
            return Ok(());
        }
        match std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid)) {
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
            other => other,
        }
    }
}

/// Writes `bytes` to `path` atomically and durably, mode 0600, owned by `owner`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], owner: Owner) -> std::io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    {
        // Made anew: O_EXCL fails on anything in its place, a link included, instead of
        // following it. A temporary file left by a crash is removed first (unlink removes a
        // link itself, never its target).
        match std::fs::remove_file(&temporary) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    owner.adopt(&temporary)?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Whether an I/O error may pass by itself (a full, read-only or failing disk, a busy
/// resource), as opposed to one a person must fix (permissions, a file where a directory
/// should be). A service meeting the first at start exits with a code its unit restarts.
pub(crate) fn may_pass(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::StorageFull
            | ErrorKind::ReadOnlyFilesystem
            | ErrorKind::ResourceBusy
            | ErrorKind::WouldBlock
            | ErrorKind::Interrupted
            | ErrorKind::QuotaExceeded
    ) || matches!(error.raw_os_error(), Some(5 | 11 | 28 | 30 | 122))
}
