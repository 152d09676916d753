//! Password sources, in order: the account's `password_file`, `DEXCOM_PASSWORD`, then
//! `$CREDENTIALS_DIRECTORY/dexcom-password` (systemd `LoadCredential=`). The password is held
//! as a [`SecretString`] from the moment it is read and never travels in argv.

use std::path::Path;

use secrecy::SecretString;

use super::{ConfigError, Environment};

/// File name of the systemd credential holding the password.
pub const CREDENTIAL_NAME: &str = "dexcom-password";
pub(super) fn read_password(
    account: &str,
    file: Option<&Path>,
    env: &dyn Environment,
    shared_ok: bool,
) -> Result<SecretString, ConfigError> {
    let (value, origin) = if let Some(path) = file {
        (
            read_password_file(account, path, HINT_DROP_IN)?,
            path.display().to_string(),
        )
    } else if !shared_ok {
        return Err(ConfigError::SharedPassword {
            account: account.to_owned(),
        });
    } else if let Some(value) = env.var("DEXCOM_PASSWORD") {
        (value, "DEXCOM_PASSWORD".to_owned())
    } else if let Some(dir) = env.var("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(CREDENTIAL_NAME);
        (
            read_password_file(account, &path, HINT_UNIT)?,
            path.display().to_string(),
        )
    } else {
        return Err(ConfigError::NoPassword {
            account: account.to_owned(),
        });
    };
    // Files usually end with a newline that is not part of the password.
    let trimmed = value.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        return Err(ConfigError::EmptyPassword {
            account: account.to_owned(),
            origin,
        });
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

/// The largest password file read: a password is a few dozen bytes, and a large file is a
/// wrong path (a log, a key bundle) whose contents must not be sent to Share.
pub const MAX_PASSWORD_FILE_BYTES: u64 = 4096;

/// What to do when a configured password file cannot be read. The service runs as a dynamic
/// user that cannot read `/etc/dexcom_exporter`, so a file reaches it only as a credential.
const HINT_DROP_IN: &str = "under the systemd unit the service cannot read /etc/dexcom_exporter: \
hand the file over with a LoadCredential=NAME:/etc/dexcom_exporter/FILE line in the drop-in \
/etc/systemd/system/dexcom_exporter.service.d/accounts.conf and write password_file: NAME \
(docs/configuration.md)";

/// What to do when the unit's own credential cannot be read.
const HINT_UNIT: &str = "the unit hands it over with LoadCredential=dexcom-password:/etc/dexcom_exporter/password; \
with several accounts the drop-in accounts.conf hands one file per account instead";

/// Reads a password file: refused when larger than [`MAX_PASSWORD_FILE_BYTES`], warned about
/// when other users can read it.
fn read_password_file(
    account: &str,
    path: &Path,
    hint: &'static str,
) -> Result<String, ConfigError> {
    read_bounded(path).map_err(|error| match error {
        SecretFileError::TooLarge(bytes) => ConfigError::PasswordFileTooLarge {
            account: account.to_owned(),
            path: path.to_owned(),
            bytes,
        },
        SecretFileError::Io(source) => ConfigError::PasswordFile {
            account: account.to_owned(),
            path: path.to_owned(),
            hint,
            source,
        },
    })
}

/// Whether a file of `mode`, owned by group `gid`, can be read by someone other than this
/// process's user and groups (`groups`): world-readable, or readable by a group this process
/// is not in. A group of its own may read it: Kubernetes makes secret files `0440` owned by the
/// pod's `fsGroup`, which only the pod's own user is in.
fn readable_by_others(mode: u32, gid: u32, groups: &[u32]) -> bool {
    mode & 0o004 != 0 || (mode & 0o040 != 0 && !groups.contains(&gid))
}

/// This process's effective and supplementary group IDs (Linux: from `/proc/self/status`; none
/// elsewhere, so every group-readable file is warned about).
fn own_groups() -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Vec::new();
    };
    let mut groups = Vec::new();
    for line in status.lines() {
        if let Some(ids) = line.strip_prefix("Gid:") {
            // real, effective, saved, filesystem: the effective one decides.
            groups.extend(
                ids.split_whitespace()
                    .nth(1)
                    .and_then(|g| g.parse::<u32>().ok()),
            );
        } else if let Some(ids) = line.strip_prefix("Groups:") {
            groups.extend(ids.split_whitespace().filter_map(|g| g.parse::<u32>().ok()));
        }
    }
    groups
}

/// Reads another credential file (remote write's `password_file`, `credentials_file`) with
/// the same bounds and warning; the error is a phrase to put after the file's name.
pub(super) fn read_secret_file(path: &Path) -> Result<String, String> {
    read_bounded(path).map_err(|error| match error {
        SecretFileError::TooLarge(bytes) => format!(
            "{bytes} bytes is not a credential (at most {MAX_PASSWORD_FILE_BYTES}): is it the right file?"
        ),
        SecretFileError::Io(source) => format!("cannot read it: {source}"),
    })
}

enum SecretFileError {
    TooLarge(u64),
    Io(std::io::Error),
}

fn read_bounded(path: &Path) -> Result<String, SecretFileError> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let file = std::fs::File::open(path).map_err(SecretFileError::Io)?;
    let meta = file.metadata().map_err(SecretFileError::Io)?;
    if meta.len() > MAX_PASSWORD_FILE_BYTES {
        return Err(SecretFileError::TooLarge(meta.len()));
    }
    let mode = meta.permissions().mode();
    if readable_by_others(
        mode,
        std::os::unix::fs::MetadataExt::gid(&meta),
        &own_groups(),
    ) {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "a credential file can be read by other users: `chmod 600` it (or use a systemd credential)"
        );
    }
    let mut text = String::new();
    // Bounded even if the file grows between the check and the read.
    file.take(MAX_PASSWORD_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(SecretFileError::Io)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_file_others_can_read_is_warned_about() {
        let pod_group = 65532;
        let groups = [pod_group];
        assert!(!readable_by_others(0o400, pod_group, &groups));
        assert!(!readable_by_others(0o600, 0, &groups));
        assert!(
            !readable_by_others(0o440, pod_group, &groups),
            "fsGroup: the pod's own group"
        );
        assert!(readable_by_others(0o440, 100, &groups), "another group");
        assert!(readable_by_others(0o444, pod_group, &groups), "everyone");
        assert!(readable_by_others(0o644, 0, &groups));
    }

    struct NoEnvironment;
    impl Environment for NoEnvironment {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    #[test]
    fn an_unreadable_password_file_says_how_the_unit_hands_it_over() {
        let path = Path::new("/nonexistent/kid-password");
        let Err(error) = read_password("kid", Some(path), &NoEnvironment, true) else {
            panic!("a missing password file was read");
        };
        let text = error.to_string();
        for needed in [
            "/nonexistent/kid-password",
            "LoadCredential=NAME:/etc/dexcom_exporter/FILE",
            "/etc/systemd/system/dexcom_exporter.service.d/accounts.conf",
            "password_file: NAME",
        ] {
            assert!(text.contains(needed), "{needed:?} missing from: {text}");
        }
    }

    #[test]
    fn this_process_knows_its_groups() {
        assert!(!own_groups().is_empty());
    }
}
