//! One account, validated: its label, login, region and base URL, thresholds and password,
//! whether it came from the command line or from `--config.file`.

use secrecy::SecretString;
use uuid::Uuid;

use super::file::FileAccount;
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
    /// The region.
    pub region: Region,
    /// Share base URL (the region's or the override), ending in `/`.
    pub base_url: reqwest::Url,
    /// Alert thresholds.
    pub thresholds: Thresholds,
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
    let thresholds = Thresholds {
        urgent_low: account.thresholds.urgent_low.unwrap_or(defaults.urgent_low),
        low: account.thresholds.low.unwrap_or(defaults.low),
        high: account.thresholds.high.unwrap_or(defaults.high),
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

/// Whether the URL's host is this machine: the only place plain http may go.
pub(super) fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
