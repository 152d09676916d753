//! Configuration: the command line (every flag also an environment variable), an optional
//! YAML file for several accounts, and password sources, validated once into a [`Config`].
//!
//! The password never travels in argv: it comes from an account's `password_file`, then
//! `DEXCOM_PASSWORD`, then `$CREDENTIALS_DIRECTORY/dexcom-password` (systemd
//! `LoadCredential=`), and is held as a `SecretString` from the moment it is read.
//!
//! One file per concern: `cli.rs` (flags and their environment variables), `file.rs` (the
//! YAML accounts file), `account.rs` (one validated account), `password.rs` (password
//! sources) and `error.rs` (the [`ConfigError`] every problem becomes).

mod account;
mod cli;
mod error;
mod file;
mod loopback;
mod password;
mod remote_write;
mod shard;
mod storage;

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::metrics::Thresholds;
pub use account::AccountConfig;
pub use cli::{CheckOutput, Cli, Command};
pub use cli::{LogFormat, LogLevel};
pub use error::ConfigError;
pub use remote_write::{ClientIdentity, RemoteWriteAuth, RemoteWriteTarget, RemoteWriteTls};
pub use shard::{Shard, shard_of};
pub use storage::{
    DefaultStateHolder, NO_STORAGE, PACKAGE_STATE_DIR, StorageSource, default_state_holder,
};

use crate::http::web_config::WebConfig;
use account::{accounts_from_file, validate_account};
use file::{FileAccount, FileThresholds, read_config_file};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--web.listen-address`, resolved to one socket address.
    pub listen_address: SocketAddr,
    /// `--web.telemetry-path`, starting with `/`.
    pub telemetry_path: String,
    /// TLS, basic auth and headers from `--web.config.file`.
    pub(crate) web: WebConfig,
    /// `--log.level`.
    pub log_level: LogLevel,
    /// `--log.format`.
    pub log_format: LogFormat,
    /// The accounts to poll (empty in demo mode until the simulator is up).
    pub accounts: Vec<AccountConfig>,
    /// The sensor's cadence the polls keep step with (`--dexcom.reading-interval`, 5 min).
    pub reading_interval: Duration,
    /// Limit on one request to Share (`--dexcom.request-timeout`).
    pub request_timeout: Duration,
    /// Age after which a reading is withdrawn from `/metrics` (`--glucose.max-age`).
    pub max_age: Duration,
    /// `--demo`: the accounts are the in-process simulator's.
    pub demo: bool,
    /// The state directory (`config/storage.rs` says where it is found); none in demo mode
    /// and with `--storage.path=none`.
    pub(crate) storage: Option<crate::state::StateDir>,
    /// Where the state directory was found.
    pub storage_source: Option<StorageSource>,
    /// Remote-write receivers (none: remote write is off).
    pub remote_write: Vec<RemoteWriteTarget>,
    /// Labels added to every pushed series besides `account`, sorted by name.
    pub external_labels: Vec<(String, String)>,
    /// This replica's shard; `accounts` holds only the accounts it owns.
    pub shard: Shard,
    /// How many accounts the configuration lists over all shards.
    pub accounts_configured: usize,
}

/// How the state directory is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageAccess {
    /// Locked by this process (the exporter, `backfill`, `check`): one holder at a time.
    Exclusive,
    /// Read only, beside the process that holds it (`check` while the service runs): what the
    /// gate's memory says is read, nothing is written, and no password is sent.
    BesideHolder,
}

/// Reads environment variables; injected so tests need not touch the process environment.
pub trait Environment {
    /// The variable's value, if set and valid UTF-8.
    fn var(&self, name: &str) -> Option<String>;

    /// The package's state directory ([`PACKAGE_STATE_DIR`]) when it exists on this machine.
    /// `None` by default, so a test environment never finds a real installation's.
    fn package_state_dir(&self) -> Option<std::path::PathBuf> {
        None
    }
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn package_state_dir(&self) -> Option<std::path::PathBuf> {
        let dir = std::path::PathBuf::from(PACKAGE_STATE_DIR);
        match std::fs::symlink_metadata(&dir) {
            // There, even when this user may not look inside (the service's, under
            // DynamicUser=): opening it then says so, instead of quietly keeping a gate apart.
            Ok(_) => Some(dir),
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Some(dir),
            // Root, before the service ever started: the service's directory, made now, so a
            // `sudo dexcom_exporter check` counts where the service will look.
            Err(_) => storage::running_as_root().then_some(dir),
        }
    }
}

impl Config {
    /// Validates the command line (and the files it names) into a configuration.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn from_cli(cli: Cli, env: &dyn Environment) -> Result<Config, ConfigError> {
        Self::from_cli_with(cli, env, StorageAccess::Exclusive)
    }

    /// As [`Config::from_cli`], with the state directory opened as `access` says.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn from_cli_with(
        cli: Cli,
        env: &dyn Environment,
        access: StorageAccess,
    ) -> Result<Config, ConfigError> {
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
        let file = match &cli.config_file {
            Some(path) => Some((path.clone(), read_config_file(path)?)),
            None => None,
        };
        let (file_accounts, file_remote_write, file_external_labels) = match file {
            Some((path, file)) => (
                Some((path, file.accounts)),
                file.remote_write.map(file::OneOrMany::into_vec),
                file.external_labels,
            ),
            None => (None, None, None),
        };
        // A file with only `remote_write:` may go with an account on the command line, or
        // with --demo.
        let file_accounts = file_accounts.filter(|(_, a)| !a.is_empty());
        let accounts = if cli.demo {
            if cli_account || file_accounts.is_some() {
                return Err(ConfigError::DemoWithAccounts);
            }
            Vec::new()
        } else {
            match (file_accounts, cli_account) {
                (Some(_), true) => return Err(ConfigError::MixedSources),
                (None, false) => {
                    return Err(match &cli.config_file {
                        Some(path) => ConfigError::EmptyConfigFile { path: path.clone() },
                        None => ConfigError::NoAccount,
                    });
                }
                (Some((path, file_accounts)), false) => {
                    accounts_from_file(&path, file_accounts, &cli, env)?
                }
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
        let storage_path = if cli.demo {
            None
        } else {
            storage::storage_path(cli.storage_path.as_deref(), env)?
        };
        let storage_source = storage_path.as_ref().map(|(_, source)| *source);
        if storage_path.is_none() && !cli.demo {
            tracing::warn!(
                "--storage.path=none: failed login attempts (and what remote write sent) are remembered only until this process stops, and no other command sees them; use it for throwaway runs only"
            );
        }
        let storage = match (storage_path, access) {
            (None, _) => None,
            (Some((path, _)), StorageAccess::Exclusive) => {
                Some(crate::state::StateDir::open(&path)?)
            }
            (Some((path, _)), StorageAccess::BesideHolder) => {
                Some(crate::state::StateDir::beside_holder(&path))
            }
        };
        let remote_write = match (file_remote_write, &cli.remote_write_url) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::RemoteWrite {
                    target: "--remote-write.url".into(),
                    problem: "--config.file has a remote_write section too: use one of them".into(),
                });
            }
            (Some(targets), None) => targets
                .into_iter()
                .map(remote_write::validate_target)
                .collect::<Result<Vec<_>, _>>()?,
            (None, Some(url)) => vec![remote_write::from_flag(url)?],
            (None, None) => Vec::new(),
        };
        let mut names = std::collections::HashSet::new();
        for target in &remote_write {
            if !names.insert(target.name.as_str()) {
                return Err(ConfigError::RemoteWrite {
                    target: target.shown_url(),
                    problem: format!(
                        "two receivers are named {:?}: give each a distinct `name`",
                        target.name
                    ),
                });
            }
        }
        let external_labels = remote_write::external_labels(file_external_labels)?;
        let shard = Shard::new(cli.shard_index, cli.shard_count)?;
        let accounts_configured = accounts.len();
        let mut accounts = accounts;
        accounts.retain(|a| shard.owns(&a.name));
        Ok(Config {
            shard,
            accounts_configured,
            remote_write,
            external_labels,
            storage,
            storage_source,
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use std::path::PathBuf;

    use clap::Parser;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::metrics::Thresholds;
    use crate::share::Region;
    use password::CREDENTIAL_NAME;

    struct FakeEnv(HashMap<&'static str, String>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn env(pairs: &[(&'static str, &str)]) -> FakeEnv {
        FakeEnv(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
    }

    /// The command line `args`, keeping no state unless they name a directory.
    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["dexcom_exporter"];
        all.extend_from_slice(args);
        if !args.iter().any(|a| a.starts_with("--storage.path")) {
            all.push("--storage.path=none");
        }
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
        let big = temp_file("big-pw", &"x".repeat(5000));
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
            (
                cli(&[
                    "--dexcom.username",
                    "a",
                    "--dexcom.base-url",
                    "http://share.example/ShareWebServices/Services/",
                ]),
                &pw,
                "plain http to another host",
            ),
            (
                cli(&[
                    "--dexcom.username",
                    "a",
                    "--dexcom.password-file",
                    big.to_str().unwrap(),
                ]),
                &no_env,
                "at most 4 KiB",
            ),
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
    fn plain_http_is_for_loopback_only() {
        for base in [
            "http://127.0.0.1:9/ShareWebServices/Services/",
            "http://[::1]:9/ShareWebServices/Services/",
            "http://localhost:9/ShareWebServices/Services/",
            "https://share2.dexcom.com/ShareWebServices/Services/",
        ] {
            let config = Config::from_cli(
                cli(&["--dexcom.username", "a", "--dexcom.base-url", base]),
                &env(&[("DEXCOM_PASSWORD", "x")]),
            );
            assert!(config.is_ok(), "{base}");
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

    #[test]
    fn a_shard_keeps_only_its_accounts_and_bad_shards_are_refused() {
        let mut yaml = String::from("accounts:\n");
        for name in ["a", "b", "c", "d"] {
            let password = temp_file(&format!("shard-{name}.pw"), "pw\n");
            yaml.push_str(&format!(
                "  - username: {name}\n    password_file: {}\n",
                password.display()
            ));
        }
        let file = temp_file("shard.yml", &yaml);
        let path = file.display().to_string();
        let mut seen = Vec::new();
        for index in ["0", "1"] {
            let config = Config::from_cli(
                cli(&[
                    "--config.file",
                    &path,
                    "--shard.index",
                    index,
                    "--shard.count",
                    "2",
                ]),
                &env(&[]),
            )
            .unwrap();
            assert_eq!(config.accounts_configured, 4);
            for account in &config.accounts {
                assert_eq!(shard_of(&account.name, 2).to_string(), index);
                seen.push(account.name.clone());
            }
        }
        seen.sort();
        assert_eq!(
            seen,
            ["a", "b", "c", "d"],
            "every account in exactly one shard"
        );
        let error = Config::from_cli(
            cli(&[
                "--config.file",
                &path,
                "--shard.index",
                "2",
                "--shard.count",
                "2",
            ]),
            &env(&[]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("--shard.index 2"), "{error}");
    }

    #[test]
    fn a_relative_password_file_is_next_to_the_config_file() {
        let password = temp_file("relative-pw", "from-beside\n");
        let config = password.with_file_name("relative.yml");
        std::fs::write(
            &config,
            "accounts:\n  - username: kid\n    password_file: relative-pw\n",
        )
        .unwrap();
        let config = Config::from_cli(
            cli(&["--config.file", &config.display().to_string()]),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(config.accounts[0].password.expose_secret(), "from-beside");
    }
}
