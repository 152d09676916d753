//! `--config.file` as written: the YAML schema (accounts, `remote_write:` with Prometheus's
//! keys, external labels), unknown keys refused by name. Only the raw shape lives here; what
//! the values must be is checked in `account.rs` and `remote_write.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// The accounts section of `--config.file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub(super) accounts: Vec<FileAccount>,
    pub(super) remote_write: Option<OneOrMany>,
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

/// `remote_write:` as `prometheus.yml` writes it (a list), or a single mapping.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(Box<FileRemoteWrite>),
    Many(Vec<FileRemoteWrite>),
}

impl OneOrMany {
    pub(super) fn into_vec(self) -> Vec<FileRemoteWrite> {
        match self {
            OneOrMany::One(one) => vec![*one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// One receiver, as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRemoteWrite {
    pub(super) url: String,
    pub(super) name: Option<String>,
    pub(super) remote_timeout: Option<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
    pub(super) basic_auth: Option<FileBasicAuth>,
    pub(super) authorization: Option<FileAuthorization>,
    pub(super) tls_config: Option<FileTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBasicAuth {
    pub(super) username: String,
    pub(super) password_file: Option<PathBuf>,
    /// Accepted only to be refused with a clear message.
    pub(super) password: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuthorization {
    #[serde(rename = "type")]
    pub(super) scheme: Option<String>,
    pub(super) credentials_file: Option<PathBuf>,
    /// Accepted only to be refused with a clear message.
    pub(super) credentials: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTls {
    pub(super) ca_file: Option<PathBuf>,
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) server_name: Option<String>,
    #[serde(default)]
    pub(super) insecure_skip_verify: bool,
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
