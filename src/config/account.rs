//! One account, validated: its label, login, region and base URL, thresholds and password,
//! whether it came from the command line or from `--config.file`.

use secrecy::SecretString;
use uuid::Uuid;

use std::collections::HashSet;
use std::path::Path;

use super::file::FileAccount;
use super::loopback::is_loopback;
use super::password::read_password;
use super::{Cli, ConfigError, Environment};
use crate::metrics::Thresholds;
use crate::share::{Login, Region};

/// One validated account.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// The `account` label.
    pub name: String,
    /// Username or account ID.
    pub login: Login,
    /// The password (redacted in `Debug`).
    pub password: SecretString,
    /// The Share region the account lives in; `check` names the others when a password is refused.
    pub region: Region,
    /// Share base URL (the region's or the override), ending in `/`.
    pub base_url: reqwest::Url,
    /// Low and high in mg/dL, exported for the alert rules to compare against.
    pub thresholds: Thresholds,
}

impl AccountConfig {
    /// Who Dexcom counts this account's failed logins for: its Share service and login,
    /// however they are spelt.
    pub fn identity(&self) -> crate::share::LoginIdentity {
        crate::share::LoginIdentity::new(&self.base_url, &self.login)
    }
}

/// Below this a threshold cannot be meant in mg/dL (Share's lowest reading is 39 mg/dL), and
/// every mmol/L threshold in use (2 to 25) is: it is explained, not refused as a number.
const MMOL_LOOKING_BELOW: f64 = 35.0;

/// A threshold from the file, in whole mg/dL.
fn mg_per_dl_threshold(account: &str, level: &'static str, value: f64) -> Result<u16, ConfigError> {
    if value.is_finite() && value > 0.0 && value < MMOL_LOOKING_BELOW {
        return Err(ConfigError::ThresholdInMmol {
            account: account.to_owned(),
            level,
            value,
            mg_per_dl: (value * crate::share::MG_PER_DL_PER_MMOL).round() as u16,
        });
    }
    if value.fract() != 0.0 || !(1.0..=400.0).contains(&value) {
        return Err(ConfigError::ThresholdNotMgPerDl {
            account: account.to_owned(),
            level,
            value,
        });
    }
    Ok(value as u16)
}

pub(super) fn validate_account(
    account: FileAccount,
    cli: &Cli,
    env: &dyn Environment,
    shared_password_ok: bool,
) -> Result<AccountConfig, ConfigError> {
    let username = account.username.filter(|u| !u.trim().is_empty());
    let account_id = account.account_id.filter(|a| !a.trim().is_empty());
    let label = account
        .name
        .clone()
        .or_else(|| username.clone())
        .or_else(|| account_id.clone())
        .unwrap_or_default();
    let login = match (username, account_id) {
        (Some(_), Some(_)) => return Err(ConfigError::BothLogins { account: label }),
        (None, None) => return Err(ConfigError::NoLogin { account: label }),
        (Some(name), None) => Login::Username(name.trim().to_owned()),
        (None, Some(id)) => Login::AccountId(
            Uuid::parse_str(id.trim())
                .ok()
                .filter(|u| !u.is_nil())
                .ok_or_else(|| ConfigError::BadAccountId {
                    account: label.clone(),
                    value: id.clone(),
                })?,
        ),
    };
    let region_text = account.region.as_deref().unwrap_or(&cli.region);
    let region: Region = region_text.parse().map_err(|source| ConfigError::Region {
        account: label.clone(),
        source,
    })?;
    let base_text = account
        .base_url
        .or_else(|| cli.base_url.clone())
        .unwrap_or_else(|| region.base_url().to_owned());
    let base_url = parse_base_url(&base_text).ok_or_else(|| ConfigError::BadBaseUrl {
        account: label.clone(),
        value: base_text.clone(),
    })?;
    if base_url.scheme() == "http" && !is_loopback(&base_url) {
        return Err(ConfigError::InsecureBaseUrl {
            account: label,
            value: base_text,
        });
    }
    let defaults = Thresholds::default();
    let level = |name: &'static str, given: Option<f64>, default: u16| {
        given.map_or(Ok(default), |value| {
            mg_per_dl_threshold(&label, name, value)
        })
    };
    let thresholds = Thresholds {
        urgent_low: level(
            "urgent_low",
            account.thresholds.urgent_low,
            defaults.urgent_low,
        )?,
        low: level("low", account.thresholds.low, defaults.low)?,
        high: level("high", account.thresholds.high, defaults.high)?,
    };
    if !(0 < thresholds.urgent_low
        && thresholds.urgent_low < thresholds.low
        && thresholds.low < thresholds.high
        && thresholds.high <= 400)
    {
        return Err(ConfigError::BadThresholds {
            account: label,
            urgent_low: thresholds.urgent_low,
            low: thresholds.low,
            high: thresholds.high,
        });
    }
    let password_file = account.password_file.or_else(|| {
        if shared_password_ok {
            cli.password_file.clone()
        } else {
            None
        }
    });
    let password = read_password(&label, password_file.as_deref(), env, shared_password_ok)?;
    Ok(AccountConfig {
        name: label,
        login,
        password,
        region,
        base_url,
        thresholds,
    })
}

fn parse_base_url(text: &str) -> Option<reqwest::Url> {
    let mut text = text.trim().to_owned();
    if !text.ends_with('/') {
        // Url::join would otherwise drop the last path segment.
        text.push('/');
    }
    let url = reqwest::Url::parse(&text).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host().is_some()).then_some(url)
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
    // Dexcom identity → the entry that has it: one Dexcom login listed twice (however it is
    // spelt) would send its password from two places and double its failed logins.
    let mut logins: std::collections::HashMap<crate::share::LoginIdentity, String> =
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
        let identity = account.identity();
        if let Some(first) = logins.insert(identity.clone(), account.name.clone()) {
            return Err(ConfigError::DuplicateLogin {
                first,
                second: account.name,
                identity: identity.to_string(),
            });
        }
        accounts.push(account);
    }
    Ok(accounts)
}
