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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::PasswordFile {
            account: account.to_owned(),
            path: path.to_owned(),
            source,
        })?;
        (text, path.display().to_string())
    } else if !shared_ok {
        return Err(ConfigError::SharedPassword {
            account: account.to_owned(),
        });
    } else if let Some(value) = env.var("DEXCOM_PASSWORD") {
        (value, "DEXCOM_PASSWORD".to_owned())
    } else if let Some(dir) = env.var("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(CREDENTIAL_NAME);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::PasswordFile {
            account: account.to_owned(),
            path: path.clone(),
            source,
        })?;
        (text, path.display().to_string())
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
