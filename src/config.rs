//! Configuration: the command line (every flag also an environment variable), an optional
//! YAML file for several accounts, and password sources, validated once into a [`Config`].
//!
//! The password never travels in argv: it comes from an account's `password_file`, then
//! `DEXCOM_PASSWORD`, then `$CREDENTIALS_DIRECTORY/dexcom-password` (systemd
//! `LoadCredential=`), and is held as a [`SecretString`] from the moment it is read.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use crate::metrics::Thresholds;
use crate::share::{InvalidRegion, Login, Region};
use crate::web_config::{WebConfig, WebConfigError};

/// Default listen address: loopback only, because this is health data.
pub const DEFAULT_LISTEN_ADDRESS: &str = "127.0.0.1:18018";
/// Default sensor cadence of Dexcom G6/G7.
pub const DEFAULT_READING_INTERVAL: &str = "5m";
/// Default age after which glucose value and trend are withdrawn: Dexcom's signal-loss delay.
pub const DEFAULT_MAX_AGE: &str = "20m";
/// Default limit on one request to Share.
pub const DEFAULT_REQUEST_TIMEOUT: &str = "30s";
/// File name of the systemd credential holding the password.
pub const CREDENTIAL_NAME: &str = "dexcom-password";

/// Prometheus exporter for Dexcom Share CGM readings.
///
/// Logs in to the Dexcom Share API with the publisher's account, polls each account in step
/// with the sensor's 5-minute cadence, and serves glucose, trend and reading age on the
/// telemetry path. The password is read from a file, DEXCOM_PASSWORD, or the systemd
/// credential "dexcom-password"; never from the command line. Try it with --demo.
#[derive(Debug, Clone, Parser)]
#[command(name = "dexcom_exporter", version, max_term_width = 110)]
pub struct Cli {
    /// Address to serve metrics on. Keep it on loopback unless you protect it.
    #[arg(long = "web.listen-address", env = "DEXCOM_EXPORTER_WEB_LISTEN_ADDRESS", default_value = DEFAULT_LISTEN_ADDRESS, value_name = "ADDR")]
    pub listen_address: SocketAddr,
    /// Path under which metrics are served.
    #[arg(
        long = "web.telemetry-path",
        env = "DEXCOM_EXPORTER_WEB_TELEMETRY_PATH",
        default_value = "/metrics",
        value_name = "PATH"
    )]
    pub telemetry_path: String,
    /// TLS and basic-auth settings in the Prometheus exporter-toolkit format; changes to it
    /// and to the certificates it names apply without a restart.
    #[arg(
        long = "web.config.file",
        env = "DEXCOM_EXPORTER_WEB_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub web_config_file: Option<PathBuf>,
    /// Log level: error, warn, info or debug.
    #[arg(
        long = "log.level",
        env = "DEXCOM_EXPORTER_LOG_LEVEL",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub log_level: LogLevel,
    /// Log format: text or json.
    #[arg(
        long = "log.format",
        env = "DEXCOM_EXPORTER_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
    /// Publisher username, e-mail or +<country><number> phone (not a follower's).
    #[arg(long = "dexcom.username", env = "DEXCOM_USERNAME", value_name = "NAME")]
    pub username: Option<String>,
    /// Publisher account ID (a UUID), instead of the username, for e-mail/phone accounts.
    #[arg(
        long = "dexcom.account-id",
        env = "DEXCOM_ACCOUNT_ID",
        value_name = "UUID"
    )]
    pub account_id: Option<String>,
    /// Region the account is registered in: us, ous (outside the US, Canada included) or jp.
    #[arg(
        long = "dexcom.region",
        env = "DEXCOM_REGION",
        default_value = "us",
        value_name = "REGION"
    )]
    pub region: String,
    /// Share base URL, overriding the region's (e.g. a simulator's).
    #[arg(long = "dexcom.base-url", env = "DEXCOM_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    /// File holding the password. Without it: DEXCOM_PASSWORD, then
    /// $CREDENTIALS_DIRECTORY/dexcom-password.
    #[arg(
        long = "dexcom.password-file",
        env = "DEXCOM_PASSWORD_FILE",
        value_name = "FILE",
        hide_env_values = true
    )]
    pub password_file: Option<PathBuf>,
    /// Time between sensor readings; polls are aligned to it.
    #[arg(long = "dexcom.reading-interval", env = "DEXCOM_READING_INTERVAL", default_value = DEFAULT_READING_INTERVAL, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub reading_interval: Duration,
    /// Limit on one request to Share.
    #[arg(long = "dexcom.request-timeout", env = "DEXCOM_REQUEST_TIMEOUT", default_value = DEFAULT_REQUEST_TIMEOUT, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,
    /// Glucose value and trend are withdrawn once the reading is older than this.
    #[arg(long = "glucose.max-age", env = "DEXCOM_GLUCOSE_MAX_AGE", default_value = DEFAULT_MAX_AGE, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub max_age: Duration,
    /// YAML file listing several accounts (see deploy/config.example.yml).
    #[arg(
        long = "config.file",
        env = "DEXCOM_EXPORTER_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub config_file: Option<PathBuf>,
    /// Run against a built-in Share simulator with demo accounts; no Dexcom account needed.
    #[arg(long, env = "DEXCOM_EXPORTER_DEMO")]
    pub demo: bool,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Normal operation.
    Info,
    /// Every poll and schedule decision.
    Debug,
}

impl LogLevel {
    /// The tracing filter directive.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

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

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen_address: SocketAddr,
    /// The metrics path.
    pub telemetry_path: String,
    /// TLS, basic auth and headers from `--web.config.file`.
    pub web: WebConfig,
    /// Log verbosity.
    pub log_level: LogLevel,
    /// Log format.
    pub log_format: LogFormat,
    /// The accounts to poll (empty in demo mode until the simulator is up).
    pub accounts: Vec<AccountConfig>,
    /// Sensor cadence.
    pub reading_interval: Duration,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Withdrawal age.
    pub max_age: Duration,
    /// Demo mode.
    pub demo: bool,
}

/// A configuration problem; the exporter exits with code 2 and prints this one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No account source at all.
    #[error(
        "no Dexcom account configured: set --dexcom.username (DEXCOM_USERNAME) or --dexcom.account-id (DEXCOM_ACCOUNT_ID), or list accounts in --config.file; or try --demo"
    )]
    NoAccount,
    /// Both command-line accounts and a file.
    #[error(
        "--config.file and --dexcom.username/--dexcom.account-id were both given: list every account in the file instead"
    )]
    MixedSources,
    /// `--demo` with real accounts.
    #[error(
        "--demo polls its own simulated accounts: remove --dexcom.username, --dexcom.account-id and --config.file"
    )]
    DemoWithAccounts,
    /// An account with both login kinds.
    #[error("account {account:?}: give either a username or an account ID, not both")]
    BothLogins {
        /// The account.
        account: String,
    },
    /// An account with neither.
    #[error("account {account:?}: give a username or an account ID")]
    NoLogin {
        /// The account.
        account: String,
    },
    /// An account ID that is not a UUID.
    #[error(
        "account {account:?}: account ID {value:?} is not a UUID like 12345678-90ab-cdef-1234-567890abcdef"
    )]
    BadAccountId {
        /// The account.
        account: String,
        /// What was given.
        value: String,
    },
    /// No password source.
    #[error(
        "no password for account {account:?}: set --dexcom.password-file (or password_file in --config.file), DEXCOM_PASSWORD, or a systemd credential named dexcom-password"
    )]
    NoPassword {
        /// The account.
        account: String,
    },
    /// An unreadable password file.
    #[error("cannot read the password file {path} for account {account:?}: {source}")]
    PasswordFile {
        /// The account.
        account: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An empty password.
    #[error("the password for account {account:?} from {origin} is empty")]
    EmptyPassword {
        /// The account.
        account: String,
        /// Where it came from (a path or a variable name, never the value).
        origin: String,
    },
    /// Several accounts but only a shared password source.
    #[error(
        "account {account:?} has no password_file: with several accounts in --config.file each needs its own password_file"
    )]
    SharedPassword {
        /// The account.
        account: String,
    },
    /// An unreadable configuration file.
    #[error("cannot read --config.file {path}: {source}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file that is not valid.
    #[error("invalid --config.file {path}: {message}")]
    ConfigSyntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A file with no accounts.
    #[error("--config.file {path} lists no accounts: add at least one under `accounts:`")]
    EmptyConfigFile {
        /// The file.
        path: PathBuf,
    },
    /// Two accounts with the same label.
    #[error("two accounts are named {name:?}: give each a distinct `name`")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// An unknown region.
    #[error("account {account:?}: {source}")]
    Region {
        /// The account.
        account: String,
        /// The parse error.
        #[source]
        source: InvalidRegion,
    },
    /// A base URL that cannot be used.
    #[error(
        "account {account:?}: base URL {value:?} is not an http(s) URL like https://share2.dexcom.com/ShareWebServices/Services/"
    )]
    BadBaseUrl {
        /// The account.
        account: String,
        /// What was given.
        value: String,
    },
    /// Thresholds out of order.
    #[error(
        "account {account:?}: thresholds must satisfy 0 < urgent_low < low < high <= 400 mg/dL, got {urgent_low}, {low}, {high}"
    )]
    BadThresholds {
        /// The account.
        account: String,
        /// Urgent low.
        urgent_low: u16,
        /// Low.
        low: u16,
        /// High.
        high: u16,
    },
    /// A telemetry path that is not usable.
    #[error(
        "--web.telemetry-path {path:?} must start with / and must not be /, /-/healthy or /-/ready"
    )]
    BadTelemetryPath {
        /// What was given.
        path: String,
    },
    /// Durations that contradict each other.
    #[error("{0}")]
    BadDuration(String),
    /// A bad `--web.config.file`.
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
}

/// The accounts section of `--config.file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    accounts: Vec<FileAccount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAccount {
    name: Option<String>,
    username: Option<String>,
    account_id: Option<String>,
    password_file: Option<PathBuf>,
    region: Option<String>,
    base_url: Option<String>,
    #[serde(default)]
    thresholds: FileThresholds,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileThresholds {
    urgent_low: Option<u16>,
    low: Option<u16>,
    high: Option<u16>,
}

/// Reads environment variables; injected so tests need not touch the process environment.
pub trait Environment {
    /// The variable's value, if set and valid UTF-8.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Config {
    /// Validates the command line (and the files it names) into a configuration.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn from_cli(cli: Cli, env: &dyn Environment) -> Result<Config, ConfigError> {
        let path = cli.telemetry_path.as_str();
        if !path.starts_with('/') || ["/", "/-/healthy", "/-/ready"].contains(&path) {
            return Err(ConfigError::BadTelemetryPath {
                path: cli.telemetry_path.clone(),
            });
        }
        if cli.reading_interval < Duration::from_millis(100) {
            return Err(ConfigError::BadDuration(
                "--dexcom.reading-interval must be at least 100ms (Dexcom sensors read every 5m; shorter values are for simulators)".into(),
            ));
        }
        if cli.max_age <= cli.reading_interval {
            return Err(ConfigError::BadDuration(format!(
                "--glucose.max-age ({}) must be longer than --dexcom.reading-interval ({}), or every value would be withdrawn before the next reading",
                humantime::format_duration(cli.max_age),
                humantime::format_duration(cli.reading_interval)
            )));
        }
        if cli.request_timeout < Duration::from_millis(100) {
            return Err(ConfigError::BadDuration(
                "--dexcom.request-timeout must be at least 100ms".into(),
            ));
        }
        let cli_account = cli.username.is_some() || cli.account_id.is_some();
        let accounts = if cli.demo {
            if cli_account || cli.config_file.is_some() {
                return Err(ConfigError::DemoWithAccounts);
            }
            Vec::new()
        } else {
            match (&cli.config_file, cli_account) {
                (Some(_), true) => return Err(ConfigError::MixedSources),
                (None, false) => return Err(ConfigError::NoAccount),
                (Some(path), false) => accounts_from_file(path, &cli, env)?,
                (None, true) => {
                    let account = FileAccount {
                        name: None,
                        username: cli.username.clone(),
                        account_id: cli.account_id.clone(),
                        password_file: cli.password_file.clone(),
                        region: None,
                        base_url: None,
                        thresholds: FileThresholds::default(),
                    };
                    vec![validate_account(account, &cli, env, true)?]
                }
            }
        };
        let web = match &cli.web_config_file {
            Some(path) => WebConfig::load(path)?,
            None => WebConfig::default(),
        };
        Ok(Config {
            listen_address: cli.listen_address,
            telemetry_path: cli.telemetry_path,
            web,
            log_level: cli.log_level,
            log_format: cli.log_format,
            accounts,
            reading_interval: cli.reading_interval,
            // A request outliving the interval would delay the next reading's poll.
            request_timeout: cli.request_timeout.min(cli.reading_interval),
            max_age: cli.max_age,
            demo: cli.demo,
        })
    }
}

fn accounts_from_file(
    path: &Path,
    cli: &Cli,
    env: &dyn Environment,
) -> Result<Vec<AccountConfig>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ConfigFile {
        path: path.to_owned(),
        source,
    })?;
    let file: FileConfig =
        crate::yaml::parse(&text).map_err(|message| ConfigError::ConfigSyntax {
            path: path.to_owned(),
            message,
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

fn validate_account(
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

fn read_password(
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    struct FakeEnv(HashMap<&'static str, String>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn env(pairs: &[(&'static str, &str)]) -> FakeEnv {
        FakeEnv(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
    }

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["dexcom_exporter"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    fn temp_file(name: &str, contents: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dexcom-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn username_with_password_from_env() {
        let config = Config::from_cli(
            cli(&["--dexcom.username", "alice"]),
            &env(&[("DEXCOM_PASSWORD", "pw\n")]),
        )
        .unwrap();
        let account = &config.accounts[0];
        assert_eq!(account.name, "alice");
        assert_eq!(account.password.expose_secret(), "pw");
        assert_eq!(account.region, Region::Us);
        assert_eq!(account.base_url.as_str(), Region::Us.base_url());
        assert_eq!(account.thresholds, Thresholds::default());
        assert!(!format!("{config:?}").contains("\"pw\""));
    }

    #[test]
    fn password_sources_in_order() {
        let file = temp_file("pw-file", "from-file\n");
        let creds = temp_file(CREDENTIAL_NAME, "from-credential");
        let creds_dir = creds.parent().unwrap().to_str().unwrap();
        let both = env(&[
            ("DEXCOM_PASSWORD", "from-env"),
            ("CREDENTIALS_DIRECTORY", creds_dir),
        ]);
        let with_file = cli(&[
            "--dexcom.username",
            "a",
            "--dexcom.password-file",
            file.to_str().unwrap(),
        ]);
        let pick = |c: Cli, e: &FakeEnv| {
            Config::from_cli(c, e).unwrap().accounts[0]
                .password
                .expose_secret()
                .to_owned()
        };
        assert_eq!(pick(with_file, &both), "from-file");
        assert_eq!(pick(cli(&["--dexcom.username", "a"]), &both), "from-env");
        assert_eq!(
            pick(
                cli(&["--dexcom.username", "a"]),
                &env(&[("CREDENTIALS_DIRECTORY", creds_dir)])
            ),
            "from-credential"
        );
    }

    #[test]
    fn bad_configurations_name_the_problem() {
        let no_env = env(&[]);
        let pw = env(&[("DEXCOM_PASSWORD", "x")]);
        let blank = env(&[("DEXCOM_PASSWORD", "\n")]);
        let cases: Vec<(Cli, &FakeEnv, &str)> = vec![
            (cli(&[]), &pw, "no Dexcom account configured"),
            (cli(&["--dexcom.username", "a"]), &no_env, "no password"),
            (
                cli(&["--dexcom.username", "a", "--dexcom.account-id", "x"]),
                &pw,
                "not both",
            ),
            (cli(&["--dexcom.account-id", "nope"]), &pw, "not a UUID"),
            (
                cli(&["--dexcom.username", "a", "--dexcom.region", "eu"]),
                &pw,
                "unknown Dexcom region",
            ),
            (
                cli(&["--dexcom.username", "a", "--dexcom.base-url", "ftp://x"]),
                &pw,
                "base URL",
            ),
            (
                cli(&[
                    "--dexcom.username",
                    "a",
                    "--dexcom.password-file",
                    "/nonexistent/pw",
                ]),
                &no_env,
                "cannot read the password file",
            ),
            (
                cli(&["--dexcom.username", "a", "--web.telemetry-path", "metrics"]),
                &pw,
                "telemetry-path",
            ),
            (
                cli(&["--dexcom.username", "a", "--glucose.max-age", "1m"]),
                &pw,
                "max-age",
            ),
            (cli(&["--demo", "--dexcom.username", "a"]), &pw, "--demo"),
            (cli(&["--dexcom.username", "a"]), &blank, "empty"),
        ];
        for (cli, env, expected) in cases {
            let err = Config::from_cli(cli, env).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
            assert_eq!(err.lines().count(), 1);
        }
    }

    #[test]
    fn config_file_with_several_accounts() {
        let pw1 = temp_file("pw1", "one");
        let pw2 = temp_file("pw2", "two");
        let yaml = format!(
            "accounts:\n  - name: kid\n    username: kid@example.com\n    password_file: {}\n    thresholds: {{urgent_low: 60, low: 80, high: 200}}\n  - account_id: 99999999-9999-9999-9999-999999999999\n    password_file: {}\n    region: ous\n    base_url: http://127.0.0.1:9/ShareWebServices/Services\n",
            pw1.display(),
            pw2.display()
        );
        let file = temp_file("config.yml", &yaml);
        let config =
            Config::from_cli(cli(&["--config.file", file.to_str().unwrap()]), &env(&[])).unwrap();
        assert_eq!(config.accounts.len(), 2);
        assert_eq!(config.accounts[0].name, "kid");
        assert_eq!(
            config.accounts[0].thresholds,
            Thresholds {
                urgent_low: 60,
                low: 80,
                high: 200
            }
        );
        assert_eq!(
            config.accounts[1].name,
            "99999999-9999-9999-9999-999999999999"
        );
        assert_eq!(config.accounts[1].region, Region::Ous);
        assert_eq!(
            config.accounts[1].base_url.as_str(),
            "http://127.0.0.1:9/ShareWebServices/Services/"
        );
        assert_eq!(config.accounts[1].password.expose_secret(), "two");
    }

    #[test]
    fn config_file_problems() {
        let pw = temp_file("pw", "x");
        let pw_path = pw.display().to_string();
        let cases = [
            (
                format!(
                    "accounts:\n  - username: a\n    password_file: {pw_path}\n  - username: a\n    password_file: {pw_path}\n"
                ),
                "named \"a\"",
            ),
            ("accounts: []\n".to_owned(), "lists no accounts"),
            ("acounts: []\n".to_owned(), "invalid --config.file"),
            (
                format!(
                    "accounts:\n  - username: a\n    password_file: {pw_path}\n    thresholds: {{low: 50}}\n"
                ),
                "thresholds",
            ),
            (
                "accounts:\n  - username: a\n  - username: b\n".to_owned(),
                "each needs its own password_file",
            ),
        ];
        for (yaml, expected) in cases {
            let file = temp_file("bad.yml", &yaml);
            let err = Config::from_cli(
                cli(&["--config.file", file.to_str().unwrap()]),
                &env(&[("DEXCOM_PASSWORD", "x")]),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        }
    }
}
