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
            read_password_file(account, path)?,
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
            read_password_file(account, &path)?,
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

/// Reads a password file: refused when larger than [`MAX_PASSWORD_FILE_BYTES`], warned about
/// when other users can read it.
fn read_password_file(account: &str, path: &Path) -> Result<String, ConfigError> {
    read_bounded(path).map_err(|error| match error {
        SecretFileError::TooLarge(bytes) => ConfigError::PasswordFileTooLarge {
            account: account.to_owned(),
            path: path.to_owned(),
            bytes,
        },
        SecretFileError::Io(source) => ConfigError::PasswordFile {
            account: account.to_owned(),
            path: path.to_owned(),
            source,
        },
    })
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
    if mode & 0o044 != 0 {
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
