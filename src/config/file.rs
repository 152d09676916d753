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
    pub(super) urgent_low: Option<u16>,
    pub(super) low: Option<u16>,
    pub(super) high: Option<u16>,
}

pub(super) fn accounts_from_file(
    path: &Path,
    cli: &Cli,
    env: &dyn Environment,
) -> Result<Vec<AccountConfig>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ConfigFile {
        path: path.to_owned(),
        source,
    })?;
    let file: FileConfig =
        crate::yaml::parse(&text).map_err(|error| ConfigError::ConfigSyntax {
            path: path.to_owned(),
            message: error.message,
        })?;
    if file.accounts.is_empty() {
        return Err(ConfigError::EmptyConfigFile {
            path: path.to_owned(),
        });
    }
    let single = file.accounts.len() == 1;
    let mut names = HashSet::new();
    let mut accounts = Vec::new();
    for account in file.accounts {
        let account = validate_account(account, cli, env, single)?;
        if !names.insert(account.name.clone()) {
            return Err(ConfigError::DuplicateName { name: account.name });
        }
        accounts.push(account);
    }
    Ok(accounts)
}
