//! The command line: every flag in the Prometheus style, each also read from an environment
//! variable, with the defaults users see in `--help`. Parsed here, validated in [`super::Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Default listen address: loopback only, because this is health data.
pub const DEFAULT_LISTEN_ADDRESS: &str = "127.0.0.1:18018";
/// Default sensor cadence of Dexcom G6/G7.
pub const DEFAULT_READING_INTERVAL: &str = "5m";
/// Default age after which glucose value and trend are withdrawn: Dexcom's signal-loss delay.
pub const DEFAULT_MAX_AGE: &str = "20m";
/// Default limit on one request to Share.
pub const DEFAULT_REQUEST_TIMEOUT: &str = "30s";
/// Prometheus exporter for Dexcom Share CGM readings.
///
/// Logs in to the Dexcom Share API with the publisher's account, polls each account in step
/// with the sensor's 5-minute cadence, and serves glucose, trend and reading age on the
/// telemetry path. The password is read from a file, DEXCOM_PASSWORD, or the systemd
/// credential "dexcom-password"; never from the command line. Try it with --demo.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "dexcom_exporter",
    version,
    max_term_width = 110,
    after_help = "Exit codes: 0 stopped by SIGINT/SIGTERM; 1 could not start (listen address, TLS backend); 2 bad command line or configuration; 3 the --storage.path is in use by another dexcom_exporter (one process per state directory, so one login gate per Dexcom account); 75 the state directory cannot be used for now (a full, read-only or failing disk): the unit restarts it."
)]
pub struct Cli {
    /// Address to serve metrics on. Keep it on loopback unless you protect it.
    #[arg(global = true, long = "web.listen-address", env = "DEXCOM_EXPORTER_WEB_LISTEN_ADDRESS", default_value = DEFAULT_LISTEN_ADDRESS, value_name = "ADDR")]
    pub listen_address: SocketAddr,
    /// Path under which metrics are served.
    #[arg(
        global = true,
        long = "web.telemetry-path",
        env = "DEXCOM_EXPORTER_WEB_TELEMETRY_PATH",
        default_value = "/metrics",
        value_name = "PATH"
    )]
    pub telemetry_path: String,
    /// TLS and basic-auth settings in the Prometheus exporter-toolkit format; changes to it
    /// and to the certificates it names apply without a restart.
    #[arg(
        global = true,
        long = "web.config.file",
        env = "DEXCOM_EXPORTER_WEB_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub web_config_file: Option<PathBuf>,
    /// Log level: error, warn, info or debug.
    #[arg(
        global = true,
        long = "log.level",
        env = "DEXCOM_EXPORTER_LOG_LEVEL",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub log_level: LogLevel,
    /// Log format: text or json.
    #[arg(
        global = true,
        long = "log.format",
        env = "DEXCOM_EXPORTER_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
    /// Publisher username, e-mail, or phone number as +15551234567 (not a follower's).
    #[arg(
        global = true,
        long = "dexcom.username",
        env = "DEXCOM_USERNAME",
        value_name = "NAME"
    )]
    pub username: Option<String>,
    /// Publisher account ID (a UUID), instead of the username, for e-mail/phone accounts.
    #[arg(
        global = true,
        long = "dexcom.account-id",
        env = "DEXCOM_ACCOUNT_ID",
        value_name = "UUID"
    )]
    pub account_id: Option<String>,
    /// Region the account is registered in: us, ous (outside the US, Canada included) or jp.
    #[arg(
        global = true,
        long = "dexcom.region",
        env = "DEXCOM_REGION",
        default_value = "us",
        value_name = "REGION"
    )]
    pub region: String,
    /// Share base URL, overriding the region's (e.g. a simulator's).
    #[arg(
        global = true,
        long = "dexcom.base-url",
        env = "DEXCOM_BASE_URL",
        value_name = "URL"
    )]
    pub base_url: Option<String>,
    /// File holding the password. Without it: DEXCOM_PASSWORD, then
    /// $CREDENTIALS_DIRECTORY/dexcom-password.
    #[arg(
        global = true,
        long = "dexcom.password-file",
        env = "DEXCOM_PASSWORD_FILE",
        value_name = "FILE",
        hide_env_values = true
    )]
    pub password_file: Option<PathBuf>,
    /// Time between sensor readings; polls are aligned to it.
    #[arg(global = true, long = "dexcom.reading-interval", env = "DEXCOM_READING_INTERVAL", default_value = DEFAULT_READING_INTERVAL, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub reading_interval: Duration,
    /// Limit on one request to Share.
    #[arg(global = true, long = "dexcom.request-timeout", env = "DEXCOM_REQUEST_TIMEOUT", default_value = DEFAULT_REQUEST_TIMEOUT, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,
    /// Glucose value and trend are withdrawn once the reading is older than this.
    #[arg(global = true, long = "glucose.max-age", env = "DEXCOM_GLUCOSE_MAX_AGE", default_value = DEFAULT_MAX_AGE, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub max_age: Duration,
    /// YAML file listing several accounts (example: /usr/share/doc/dexcom-exporter/examples/config.example.yml,
    /// in the repository deploy/config.example.yml).
    #[arg(
        global = true,
        long = "config.file",
        env = "DEXCOM_EXPORTER_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub config_file: Option<PathBuf>,
    /// Directory for state that must survive a restart (the login gate's memory of failed
    /// attempts, so neither a restart loop nor `check` can lock the Dexcom account). The same
    /// for the service, check and backfill. Default: $STATE_DIRECTORY (systemd sets it), else
    /// /var/lib/dexcom_exporter when it exists (the package's), else
    /// $XDG_STATE_HOME/dexcom_exporter or ~/.local/state/dexcom_exporter. `none`: keep nothing
    /// (throwaway runs only).
    #[arg(
        global = true,
        long = "storage.path",
        env = "DEXCOM_EXPORTER_STORAGE_PATH",
        value_name = "DIR"
    )]
    pub storage_path: Option<PathBuf>,
    /// Push every reading at its sensor time to this Prometheus remote-write receiver (e.g.
    /// http://127.0.0.1:9090/api/v1/write). For credentials, TLS or several receivers use a
    /// `remote_write:` section in --config.file.
    #[arg(
        global = true,
        long = "remote-write.url",
        env = "DEXCOM_EXPORTER_REMOTE_WRITE_URL",
        value_name = "URL"
    )]
    pub remote_write_url: Option<String>,
    /// This replica's shard, 0 to --shard.count minus 1: it polls only the accounts whose
    /// stable hash of the account name modulo the count equals it (a StatefulSet's pod index).
    #[arg(
        global = true,
        long = "shard.index",
        env = "DEXCOM_EXPORTER_SHARD_INDEX",
        default_value_t = 0,
        value_name = "N"
    )]
    pub shard_index: u32,
    /// How many replicas share the accounts of --config.file.
    #[arg(
        global = true,
        long = "shard.count",
        env = "DEXCOM_EXPORTER_SHARD_COUNT",
        default_value_t = 1,
        value_name = "N"
    )]
    pub shard_count: u32,
    /// Run against a built-in Share simulator with demo accounts; no Dexcom account needed.
    #[arg(global = true, long, env = "DEXCOM_EXPORTER_DEMO")]
    pub demo: bool,
    /// What to do instead of serving metrics.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands; without one the exporter runs as a service.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Check the configuration and every account once, and say what is wrong: reads the same
    /// flags, environment and --config.file as the service, resolves and connects to each
    /// account's Share host, logs in through the same login gate and state directory (a
    /// password the gate holds back is not sent: it says until when and why), reads the newest
    /// reading and prints one line per account. Beside the running service (which holds the
    /// state directory) it logs in to nothing and reports what the service shows. Exit 0 when
    /// every account has a current reading, 1 otherwise, 2 on a configuration error. Run it
    /// first after installing.
    Check {
        /// `text` for people, `json` for scripts.
        #[arg(long, value_enum, default_value = "text")]
        output: CheckOutput,
        /// Forget the failed logins in a row the login gate counts for each account, so the
        /// next login (this check's) goes at once. Dexcom locks an account after about five
        /// failed logins in a row and the gate stops at four: reset only after fixing the
        /// password, region and username, or the next failure may lock the account (and
        /// silence the Dexcom Follow app). Needs the service stopped.
        #[arg(long = "reset-gate")]
        reset_gate: bool,
    },
    /// Print the last 24 hours of readings of every configured account as OpenMetrics text
    /// with sensor timestamps, for `promtool tsdb create-blocks-from openmetrics`: fills
    /// Prometheus with history without remote write. Logs in like the exporter (same login
    /// limits, same --storage.path, which it locks: it refuses to run beside the service). While
    /// the service runs, fetch the same text from it instead, with no second login:
    /// `curl http://127.0.0.1:18018/api/v1/history`.
    Backfill {
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Drill the night alarm end to end: asks Prometheus whether it reads the exporter, has
    /// the alert rules loaded, fires Watchdog and sends to Alertmanager (its Watchdog seen
    /// there); asks Alertmanager for its running configuration (placeholders left, routes that
    /// reach no phone, a heartbeat missing or that would not page) and for silences that mute
    /// an alarm; then sends a test urgent low and a test "glucose cannot be seen" through their
    /// routes (your phone rings: acknowledge it), watches whether each integration took them,
    /// and ends them, watching the all-clear go out. Needs no Dexcom account. Exit 0 when the
    /// chain works, 1 when something would not ring, 2 when Prometheus or Alertmanager cannot
    /// be reached, 130 when interrupted (Ctrl-C ends the test alarms first).
    Drill {
        /// Prometheus's address.
        #[arg(
            long = "prometheus.url",
            default_value = "http://127.0.0.1:9090",
            value_name = "URL"
        )]
        prometheus_url: String,
        /// Alertmanager's address.
        #[arg(
            long = "alertmanager.url",
            default_value = "http://127.0.0.1:9093",
            value_name = "URL"
        )]
        alertmanager_url: String,
        /// `text` (a line per step, as it happens) for people, `json` for scripts.
        #[arg(long, value_enum, default_value = "text")]
        output: CheckOutput,
    },
}

/// How `check` and `drill` print what they found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckOutput {
    /// Lines for people: what was found and what it means.
    Text,
    /// One JSON document, for scripts.
    Json,
}

/// `--log.level`: the least severe events that are written.
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
