//! `--config.file`: the YAML schema listing several accounts, read and checked into
//! validated accounts (unknown keys are refused by name, duplicate names too).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::account::validate_account;
use super::{AccountConfig, Cli, ConfigError, Environment};

/// The accounts section of `--config.file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub(super) accounts: Vec<FileAccount>,
    pub(super) remote_write: Option<super::remote_write::OneOrMany>,
    pub(super) external_labels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAccount {
    pub(super) name: Option<String>,
    pub(super) username: Option<String>,
    pub(super) account_id: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) region: Option<String>,
    pub(super) base_url: Option<String>,
    #[serde(default)]
    pub(super) thresholds: FileThresholds,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileThresholds {
    // Numbers of any kind, so that a value in mmol/L (`low: 4.0`) can be told apart and
    // explained, not refused as "invalid u16".
    pub(super) urgent_low: Option<f64>,
    pub(super) low: Option<f64>,
    pub(super) high: Option<f64>,
}

/// Reads and parses `--config.file`.
pub(super) fn read_config_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ConfigFile {
        path: path.to_owned(),
        source,
    })?;
    crate::yaml::parse(&text).map_err(|error| ConfigError::ConfigSyntax {
        path: path.to_owned(),
        message: error.message,
    })
}

/// Checks the file's accounts (at least one).
pub(super) fn accounts_from_file(
    path: &Path,
    file_accounts: Vec<FileAccount>,
    cli: &Cli,
    env: &dyn Environment,
) -> Result<Vec<AccountConfig>, ConfigError> {
    if file_accounts.is_empty() {
        return Err(ConfigError::EmptyConfigFile {
            path: path.to_owned(),
        });
    }
    let single = file_accounts.len() == 1;
    let mut names = HashSet::new();
    // (Share service, login) → the entry that has it: one Dexcom login listed twice would get
    // two login gates and double its failed logins.
    let mut logins: std::collections::HashMap<(String, String), String> =
        std::collections::HashMap::new();
    let mut accounts = Vec::new();
    // Relative password files are next to the configuration file, as Prometheus resolves the
    // paths in prometheus.yml: under systemd that is the credentials directory, where the
    // accounts drop-in puts both.
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    for mut account in file_accounts {
        if let Some(file) = account.password_file.take() {
            account.password_file = Some(if file.is_relative() {
                base.join(file)
            } else {
                file
            });
        }
        let account = validate_account(account, cli, env, single)?;
        if !names.insert(account.name.clone()) {
            return Err(ConfigError::DuplicateName { name: account.name });
        }
        let login = match &account.login {
            crate::share::Login::Username(name) => format!("username {}", name.to_lowercase()),
            crate::share::Login::AccountId(id) => format!("account ID {id}"),
        };
        let service = account.base_url.as_str().to_lowercase();
        if let Some(first) = logins.insert((service.clone(), login.clone()), account.name.clone()) {
            return Err(ConfigError::DuplicateLogin {
                first,
                second: account.name,
                login,
                service,
            });
        }
        accounts.push(account);
    }
    Ok(accounts)
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_text_as_an_accounts_file_is_a_config_or_one_line_of_error(text in "(accounts:\n)?(  - [a-z_]{1,12}: \\PC{0,20}\n){0,6}|\\PC{0,200}") {
            if let Err(error) = crate::yaml::parse::<FileConfig>(&text) {
                prop_assert!(!error.message.contains('\n'), "{}", error.message);
                prop_assert!(!error.message.is_empty());
            }
        }
    }
}
