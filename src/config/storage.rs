//! Where the state directory is, the same for every command: the service, `check` and
//! `backfill` must find one login gate per Dexcom identity, or a `check` typed without flags
//! would send a password the service's gate is holding back.
//!
//! In order: `--storage.path` (`none` for a throwaway run, said at WARN), systemd's
//! `$STATE_DIRECTORY` (the shipped unit's `StateDirectory=`), the package's
//! `/var/lib/dexcom_exporter` when it exists, even unreadable (so `sudo dexcom_exporter check`
//! uses the service's gate, and a user who may not is told so), or always for root (made
//! before the service's first start, where it will look), then the user's own state directory (`$XDG_STATE_HOME/dexcom_exporter`, or
//! `~/.local/state/dexcom_exporter`). With none of them a command refuses to run: it would send
//! a password with no memory of the attempts before it.

use std::path::{Path, PathBuf};

use super::{ConfigError, Environment};

/// The package's state directory: the shipped unit's `StateDirectory=dexcom_exporter`.
pub const PACKAGE_STATE_DIR: &str = "/var/lib/dexcom_exporter";

/// The `--storage.path` value that asks for no state directory.
pub const NO_STORAGE: &str = "none";

/// Where the state directory was found, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageSource {
    /// `--storage.path` or `DEXCOM_EXPORTER_STORAGE_PATH`.
    Flag,
    /// systemd's `$STATE_DIRECTORY`.
    Systemd,
    /// The package's `/var/lib/dexcom_exporter`.
    Package,
    /// The user's own state directory.
    User,
}

/// Whether this process runs as root (its `/proc/self` belongs to uid 0).
pub(super) fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// The state directory to use and where it came from; `None` for `--storage.path=none`.
///
/// # Errors
/// [`ConfigError::NoStorage`] when nothing names one.
pub(super) fn storage_path(
    flag: Option<&Path>,
    env: &dyn Environment,
) -> Result<Option<(PathBuf, StorageSource)>, ConfigError> {
    if let Some(path) = flag {
        if path.as_os_str() == NO_STORAGE {
            return Ok(None);
        }
        return Ok(Some((path.to_owned(), StorageSource::Flag)));
    }
    // systemd joins several directories with ':'; the unit names one.
    if let Some(dir) = env
        .var("STATE_DIRECTORY")
        .and_then(|v| v.split(':').next().map(str::to_owned))
        .filter(|v| !v.is_empty())
    {
        return Ok(Some((PathBuf::from(dir), StorageSource::Systemd)));
    }
    if let Some(dir) = env.package_state_dir() {
        return Ok(Some((dir, StorageSource::Package)));
    }
    let user = env
        .var("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            env.var("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".local/state"))
        });
    match user {
        Some(base) => Ok(Some((base.join("dexcom_exporter"), StorageSource::User))),
        None => Err(ConfigError::NoStorage),
    }
}

/// Whether the directory every command finds by default is held by a running exporter
/// while a command was told another one (`--storage.path=none`, or a directory of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultStateHolder {
    /// No other directory was named, or the default one is not held.
    Free,
    /// A running exporter (its lock file says which) holds the default directory.
    Held {
        /// The default directory.
        path: PathBuf,
        /// Who holds its lock.
        holder: String,
    },
    /// This user cannot look into the default directory (the service's, closed to others).
    Unknown {
        /// The default directory.
        path: PathBuf,
    },
}

/// [`DefaultStateHolder`] for a command given `flag` as `--storage.path`: a `check` told to
/// keep a gate of its own beside a running service would log in on top of the service's
/// count, which only the default directory's gate knows.
pub fn default_state_holder(flag: Option<&Path>, env: &dyn Environment) -> DefaultStateHolder {
    let Some(named) = flag else {
        return DefaultStateHolder::Free;
    };
    let Ok(Some((default, _))) = storage_path(None, env) else {
        return DefaultStateHolder::Free;
    };
    if named == default {
        return DefaultStateHolder::Free;
    }
    match crate::state::lock_holder(&default) {
        Ok(None) => DefaultStateHolder::Free,
        Ok(Some(holder)) => DefaultStateHolder::Held {
            path: default,
            holder,
        },
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            DefaultStateHolder::Unknown { path: default }
        }
        Err(_) => DefaultStateHolder::Free,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Env(Vec<(&'static str, &'static str)>, Option<&'static str>);

    impl Environment for Env {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
        fn package_state_dir(&self) -> Option<PathBuf> {
            self.1.map(PathBuf::from)
        }
    }

    fn resolve(flag: Option<&str>, env: &Env) -> Option<(PathBuf, StorageSource)> {
        storage_path(flag.map(Path::new), env).unwrap()
    }

    #[test]
    fn every_command_finds_the_same_directory_in_the_same_order() {
        let all = Env(
            vec![
                ("STATE_DIRECTORY", "/var/lib/dexcom_exporter:/other"),
                ("XDG_STATE_HOME", "/home/p/.state"),
                ("HOME", "/home/p"),
            ],
            Some(PACKAGE_STATE_DIR),
        );
        assert_eq!(
            resolve(Some("/srv/x"), &all),
            Some((PathBuf::from("/srv/x"), StorageSource::Flag))
        );
        assert_eq!(resolve(Some("none"), &all), None);
        assert_eq!(
            resolve(None, &all),
            Some((PathBuf::from(PACKAGE_STATE_DIR), StorageSource::Systemd))
        );
        let no_systemd = Env(all.0[1..].to_vec(), Some(PACKAGE_STATE_DIR));
        assert_eq!(
            resolve(None, &no_systemd),
            Some((PathBuf::from(PACKAGE_STATE_DIR), StorageSource::Package)),
            "`sudo dexcom_exporter check` uses the service's directory"
        );
        let no_package = Env(all.0[1..].to_vec(), None);
        assert_eq!(
            resolve(None, &no_package),
            Some((
                PathBuf::from("/home/p/.state/dexcom_exporter"),
                StorageSource::User
            ))
        );
        let home_only = Env(vec![("HOME", "/home/p")], None);
        assert_eq!(
            resolve(None, &home_only),
            Some((
                PathBuf::from("/home/p/.local/state/dexcom_exporter"),
                StorageSource::User
            ))
        );
    }

    #[test]
    fn with_nowhere_to_keep_the_gate_a_command_refuses() {
        let nothing = Env(vec![("HOME", "relative")], None);
        let error = storage_path(None, &nothing).unwrap_err();
        assert!(matches!(error, ConfigError::NoStorage), "{error}");
        assert!(error.to_string().contains("--storage.path"), "{error}");
    }
}
