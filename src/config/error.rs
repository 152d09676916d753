//! Every way the configuration can be wrong, each a one-line message that says what to fix;
//! the exporter prints it and exits with code 2.

use std::path::PathBuf;

use crate::http::web_config::WebConfigError;
use crate::share::InvalidRegion;

/// A configuration problem; the exporter exits with code 2 and prints this one line.
#[derive(Debug, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "a field is named for what it holds, and the #[error] message shows it in context"
)]
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
    /// A shard index that is not below the shard count.
    #[error(
        "--shard.index {index} of --shard.count {count}: the index must be 0 to count-1 (a StatefulSet's pod index), and the count at least 1"
    )]
    Shard {
        /// The index given.
        index: u32,
        /// The count given.
        count: u32,
    },
    /// An account with both login kinds.
    #[error("account {account:?}: give either a username or an account ID, not both")]
    BothLogins { account: String },
    /// An account with neither.
    #[error("account {account:?}: give a username or an account ID")]
    NoLogin { account: String },
    /// An account ID that is not a UUID.
    #[error(
        "account {account:?}: account ID {value:?} is not a UUID like 12345678-90ab-cdef-1234-567890abcdef"
    )]
    BadAccountId { account: String, value: String },
    /// No password source.
    #[error(
        "no password for account {account:?}: set --dexcom.password-file (or password_file in --config.file), DEXCOM_PASSWORD, or a systemd credential named dexcom-password"
    )]
    NoPassword { account: String },
    /// An unreadable password file; `hint` says how the systemd unit hands files over.
    #[error("cannot read the password file {path} for account {account:?}: {source}; {hint}")]
    PasswordFile {
        account: String,
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A password file too large to be a password.
    #[error(
        "the password file {path} for account {account:?} holds {bytes} bytes: a password file must hold only the password (at most 4 KiB)"
    )]
    PasswordFileTooLarge {
        account: String,
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// A base URL that would send the password unencrypted.
    #[error(
        "account {account:?}: base URL {value:?} is plain http to another host: the password would travel unencrypted; use https (http is accepted only for loopback, e.g. a local simulator)"
    )]
    InsecureBaseUrl { account: String, value: String },
    /// An empty password.
    #[error("the password for account {account:?} from {origin} is empty")]
    EmptyPassword {
        account: String,
        /// Where it came from (a path or a variable name, never the value).
        origin: String,
    },
    /// Several accounts but only a shared password source.
    #[error(
        "account {account:?} has no password_file: with several accounts in --config.file each needs its own password_file"
    )]
    SharedPassword { account: String },
    /// An unreadable configuration file.
    #[error("cannot read --config.file {path}: {source}")]
    ConfigFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A configuration file that is not valid.
    #[error("invalid --config.file {path}: {message}")]
    ConfigSyntax {
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A file with no accounts.
    #[error("--config.file {path} lists no accounts: add at least one under `accounts:`")]
    EmptyConfigFile { path: PathBuf },
    /// Two accounts with the same label.
    #[error("two accounts are named {name:?}: give each a distinct `name`")]
    DuplicateName { name: String },
    /// One Dexcom login listed twice: the same Share service (however its URL is spelt:
    /// `localhost` is `127.0.0.1`) and the same username (without case or surrounding spaces),
    /// or the same account ID.
    #[error(
        "accounts {first:?} and {second:?} are the same Dexcom login ({identity}): list it once (two entries would send its password from two places and double its failed logins)"
    )]
    DuplicateLogin {
        /// The first entry's name.
        first: String,
        /// The second entry's name.
        second: String,
        /// The identity they share, as `username … at …` or `account ID … at …`.
        identity: String,
    },
    /// An unknown region.
    #[error("account {account:?}: {source}")]
    Region {
        account: String,
        /// The parse error.
        #[source]
        source: InvalidRegion,
    },
    /// A base URL that cannot be used.
    #[error(
        "account {account:?}: base URL {value:?} is not an http(s) URL like https://share2.dexcom.com/ShareWebServices/Services/"
    )]
    BadBaseUrl { account: String, value: String },
    /// Thresholds out of order.
    #[error(
        "account {account:?}: thresholds must satisfy 0 < urgent_low < low < high <= 400 mg/dL, got {urgent_low}, {low}, {high}"
    )]
    BadThresholds {
        account: String,
        /// Urgent low.
        urgent_low: u16,
        low: u16,
        high: u16,
    },
    /// A threshold that looks like mmol/L (thresholds are in mg/dL).
    #[error(
        "account {account:?}: thresholds.{level} is {value}, which looks like mmol/L; thresholds are in mg/dL: write {mg_per_dl} ({value} mmol/L)"
    )]
    ThresholdInMmol {
        account: String,
        /// `urgent_low`, `low` or `high`.
        level: &'static str,
        /// The value given.
        value: f64,
        /// The same in mg/dL, rounded.
        mg_per_dl: u16,
    },
    /// A threshold that is not a whole number of mg/dL from 1 to 400.
    #[error(
        "account {account:?}: thresholds.{level} is {value}: give a whole number of mg/dL from 1 to 400"
    )]
    ThresholdNotMgPerDl {
        account: String,
        /// `urgent_low`, `low` or `high`.
        level: &'static str,
        /// The value given.
        value: f64,
    },
    /// A telemetry path that is not usable.
    #[error(
        "--web.telemetry-path {path:?} must start with / and must not be /, /-/healthy or /-/ready"
    )]
    BadTelemetryPath { path: String },
    /// Durations that contradict each other.
    #[error("{0}")]
    BadDuration(String),
    /// A remote-write receiver (or the external labels) that cannot be used.
    #[error("remote_write {target}: {problem}")]
    RemoteWrite {
        /// The receiver's URL as written, or `external_labels`.
        target: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// No state directory can be found: no `--storage.path`, no `$STATE_DIRECTORY`, no
    /// package directory and no home directory.
    #[error(
        "no state directory for the login gate's memory: give --storage.path DIR (the service's is /var/lib/dexcom_exporter), or --storage.path=none for a throwaway run that forgets its failed logins"
    )]
    NoStorage,
    /// An unusable `--storage.path`.
    #[error(transparent)]
    Storage(#[from] crate::state::StateError),
    /// A bad `--web.config.file`.
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
}
