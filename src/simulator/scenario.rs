//! The simulator's knobs: accounts, cadence, sessions, lockout and faults, as one
//! [`Scenario`] that the `share_simulator` flags and a YAML scenario file both fill in.

use std::time::Duration;

use serde::Deserialize;
use uuid::Uuid;

use super::glucose::GlucoseProfile;
use crate::share::Region;

/// Why a scenario cannot be simulated; `share_simulator` prints it and exits with code 2.
#[derive(Debug, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "a field is named for what it holds, and the #[error] message shows it in context"
)]
pub enum ScenarioError {
    /// The scenario file cannot be read.
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The scenario file is not valid YAML for a scenario.
    #[error("invalid scenario file {path}: {source}")]
    Syntax {
        path: std::path::PathBuf,
        #[source]
        source: crate::yaml::YamlError,
    },
    /// A cadence shorter than the simulator can keep.
    #[error("reading_interval must be at least 100ms")]
    IntervalTooShort,
    /// Uploads that would arrive after the next reading is taken.
    #[error("upload_delay_max ({max}) must be shorter than reading_interval ({interval})")]
    UploadDelay {
        /// The largest upload delay, formatted.
        max: String,
        /// The cadence, formatted.
        interval: String,
    },
    /// No account to serve.
    #[error("no accounts: give --username and --password, or accounts in the scenario file")]
    NoAccounts,
    /// An account without a username or password.
    #[error("every account needs a non-empty username and password")]
    EmptyCredentials,
    /// Two accounts share a name (username, e-mail or phone, case-insensitively).
    #[error("account name {name:?} is used twice")]
    DuplicateName { name: String },
    /// `day_starts_at` is not `HH:MM`.
    #[error("day_starts_at {text:?} is not a time of day like 01:30")]
    DayStart { text: String },
    /// `utc_offset` is not `±HHMM`.
    #[error("utc_offset {text:?} is not of the form +HHMM or -HHMM")]
    UtcOffset { text: String },
    /// A fault rate outside 0–1.
    #[error("fault rate {name} must be between 0 and 1, got {rate}")]
    FaultRate { name: String, rate: f64 },
}

/// The full simulator configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// The region this server plays; accounts of other regions are "not found" here.
    #[serde(deserialize_with = "de_region")]
    pub region: Region,
    /// Seed of every random choice (glucose, upload delays, faults).
    pub seed: u64,
    /// Time between sensor readings.
    #[serde(with = "duration_text")]
    pub reading_interval: Duration,
    /// Shortest delay between a reading's sensor time and its appearance on Share.
    /// Default: 2% of the interval (6 s at 5 minutes).
    #[serde(with = "duration_text_opt")]
    pub upload_delay_min: Option<Duration>,
    /// Longest upload delay. Default: 10% of the interval (30 s at 5 minutes).
    #[serde(with = "duration_text_opt")]
    pub upload_delay_max: Option<Duration>,
    /// How far back readings are served.
    #[serde(with = "duration_text")]
    pub retention: Duration,
    /// How long a session ID stays valid; after it, reads answer `SessionNotValid`.
    #[serde(with = "duration_text")]
    pub session_ttl: Duration,
    /// Consecutive bad passwords before an account is locked.
    pub lockout_after: u32,
    /// How long a locked account stays locked.
    #[serde(with = "duration_text")]
    pub lockout_duration: Duration,
    /// The code sent for a locked account (Dexcom spells it with three e's).
    pub max_attempts_code: String,
    /// How bad credentials are reported.
    pub auth_error_style: AuthErrorStyle,
    /// How the `SubCode` of error bodies is serialised.
    pub subcode_style: SubCodeStyle,
    /// Serve the pre-December-2021 format: `\/Date(ms)\/`, integer trends, shifted DT.
    pub legacy_format: bool,
    /// Random faults, each with its probability per request.
    pub faults: FaultRates,
    /// Periodic sensor gaps for every account: every `gap_every`, `gap_length` without readings.
    #[serde(with = "duration_text_opt")]
    pub gap_every: Option<Duration>,
    /// Length of the periodic gaps.
    #[serde(with = "duration_text")]
    pub gap_length: Duration,
    /// Periodic phone outages for every account: every `backlog_every`, the phone is offline
    /// for `backlog_length`; the sensor keeps reading, and the readings reach Share all at
    /// once when the phone is back (the backlog).
    #[serde(with = "duration_text_opt")]
    pub backlog_every: Option<Duration>,
    /// Length of the periodic phone outages.
    #[serde(with = "duration_text")]
    pub backlog_length: Duration,
    /// The publisher accounts served.
    pub accounts: Vec<AccountSpec>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            region: Region::Us,
            seed: 1,
            reading_interval: Duration::from_secs(300),
            upload_delay_min: None,
            upload_delay_max: None,
            retention: Duration::from_secs(24 * 3600),
            session_ttl: Duration::from_secs(24 * 3600),
            lockout_after: 5,
            lockout_duration: Duration::from_secs(3600),
            max_attempts_code: "SSO_AuthenticateMaxAttemptsExceeed".to_owned(),
            auth_error_style: AuthErrorStyle::default(),
            subcode_style: SubCodeStyle::default(),
            legacy_format: false,
            faults: FaultRates::default(),
            gap_every: None,
            gap_length: Duration::from_secs(30 * 60),
            backlog_every: None,
            backlog_length: Duration::from_secs(60 * 60),
            accounts: Vec::new(),
        }
    }
}

impl Scenario {
    /// The effective upload delay range.
    pub fn upload_delay_range(&self) -> (Duration, Duration) {
        let min = self
            .upload_delay_min
            .unwrap_or_else(|| self.reading_interval.mul_f64(0.02));
        let max = self
            .upload_delay_max
            .unwrap_or_else(|| self.reading_interval.mul_f64(0.10));
        (min, max.max(min))
    }

    /// Checks the scenario for contradictions.
    ///
    /// # Errors
    /// A message naming the problem.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.reading_interval < Duration::from_millis(100) {
            return Err(ScenarioError::IntervalTooShort);
        }
        let (_, max) = self.upload_delay_range();
        if max >= self.reading_interval {
            return Err(ScenarioError::UploadDelay {
                max: humantime::format_duration(max).to_string(),
                interval: humantime::format_duration(self.reading_interval).to_string(),
            });
        }
        if self.accounts.is_empty() {
            return Err(ScenarioError::NoAccounts);
        }
        let mut names = std::collections::HashSet::new();
        for account in &self.accounts {
            if account.username.trim().is_empty() || account.password.is_empty() {
                return Err(ScenarioError::EmptyCredentials);
            }
            for name in account.names() {
                if !names.insert(name.to_lowercase()) {
                    return Err(ScenarioError::DuplicateName {
                        name: name.to_owned(),
                    });
                }
            }
            account.utc_offset_minutes()?;
            account.day_start_minutes()?;
        }
        for (name, rate) in self.faults.rates() {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ScenarioError::FaultRate {
                    name: name.to_owned(),
                    rate,
                });
            }
        }
        Ok(())
    }
}

/// How the simulator answers bad credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AuthErrorStyle {
    /// `AccountPasswordInvalid` (2023 and 2025 recordings).
    #[default]
    AccountPasswordInvalid,
    /// `SSO_InternalError` with "Cannot Authenticate by …" (July 2024 recordings).
    SsoInternalError,
}

/// How error bodies serialise their `SubCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SubCodeStyle {
    /// `<OnlineException … />` (until late 2025).
    #[default]
    Xml,
    /// A pretty-printed JSON string (since late 2025).
    Json,
}

/// Probabilities (0–1) of random faults on each request, and their parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRates {
    /// An HTML 502 page, as Cloudflare serves during outages.
    pub html_500: f64,
    /// HTTP 429 with `Retry-After`.
    pub rate_limit: f64,
    /// The `Retry-After` value sent with 429s.
    #[serde(with = "duration_text")]
    pub retry_after: Duration,
    /// An answer delayed by `slow_delay` (longer than clients' timeouts).
    pub slow: f64,
    /// How long slow answers take.
    #[serde(with = "duration_text")]
    pub slow_delay: Duration,
    /// HTTP 200 with an empty body.
    pub empty_body: f64,
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            html_500: 0.0,
            rate_limit: 0.0,
            retry_after: Duration::from_secs(60),
            slow: 0.0,
            slow_delay: Duration::from_secs(60),
            empty_body: 0.0,
        }
    }
}

impl FaultRates {
    fn rates(&self) -> [(&'static str, f64); 4] {
        [
            ("html_500", self.html_500),
            ("rate_limit", self.rate_limit),
            ("slow", self.slow),
            ("empty_body", self.empty_body),
        ]
    }
}

/// One publisher account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    /// The username the account logs in with (compared without case, as Share does).
    pub username: String,
    /// Other names that log in too (e-mail, `+<country><number>` phone).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The password the simulator accepts; a test value, never a real one.
    pub password: String,
    /// The account ID; derived from the username when absent.
    #[serde(default)]
    pub account_id: Option<Uuid>,
    /// The account's region; the server's own when absent.
    #[serde(default, deserialize_with = "de_region_opt")]
    pub region: Option<Region>,
    /// Whether a follower is set up; without one Share serves `[]`.
    #[serde(default = "yes")]
    pub has_follower: bool,
    /// The character of the glucose curve.
    #[serde(default)]
    pub profile: GlucoseProfile,
    /// The phone's UTC offset as `±HHMM`, shown in `DT`.
    #[serde(default = "default_offset")]
    pub utc_offset: String,
    /// The account's simulated local time of day (`HH:MM`) when the simulator starts, instead
    /// of the real one: e.g. `01:30` makes an overnight low arrive soon after start.
    #[serde(default)]
    pub day_starts_at: Option<String>,
    /// Every reading reaches Share twice, the second copy a few seconds later (a tenth of the
    /// interval, at most 4 s), as with an Apple Watch uploading directly beside the phone.
    #[serde(default)]
    pub repeated_uploads: bool,
}

fn yes() -> bool {
    true
}

fn default_offset() -> String {
    "-0500".to_owned()
}

impl AccountSpec {
    /// A typical account with a username and password.
    pub fn new(username: &str, password: &str) -> Self {
        AccountSpec {
            username: username.to_owned(),
            aliases: Vec::new(),
            password: password.to_owned(),
            account_id: None,
            region: None,
            has_follower: true,
            profile: GlucoseProfile::Typical,
            utc_offset: default_offset(),
            day_starts_at: None,
            repeated_uploads: false,
        }
    }

    /// Every name this account logs in with.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.username.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// The account ID (given, or derived stably from the username).
    pub fn effective_account_id(&self) -> Uuid {
        self.account_id.unwrap_or_else(|| {
            let h = super::glucose::mix(fnv(self.username.to_lowercase().as_bytes()));
            let l = super::glucose::mix(h ^ 0x5EED);
            uuid::Builder::from_random_bytes(((u128::from(h) << 64) | u128::from(l)).to_be_bytes())
                .into_uuid()
        })
    }

    /// `day_starts_at` as minutes after midnight.
    ///
    /// # Errors
    /// A message if it is not `HH:MM`.
    pub fn day_start_minutes(&self) -> Result<Option<i64>, ScenarioError> {
        let Some(text) = &self.day_starts_at else {
            return Ok(None);
        };
        let parsed = text.split_once(':').and_then(|(h, m)| {
            let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
            ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 60 + m)
        });
        parsed
            .map(Some)
            .ok_or_else(|| ScenarioError::DayStart { text: text.clone() })
    }

    /// The UTC offset in minutes.
    ///
    /// # Errors
    /// A message if `utc_offset` is not `±HHMM`.
    pub fn utc_offset_minutes(&self) -> Result<i32, ScenarioError> {
        let text = format!("Date(0{})", self.utc_offset);
        crate::share::parse_share_date(&text)
            .and_then(|d| d.offset_minutes)
            .ok_or_else(|| ScenarioError::UtcOffset {
                text: self.utc_offset.clone(),
            })
    }
}

/// FNV-1a, for stable per-name seeds.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn de_region<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Region, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn de_region_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Region>, D::Error> {
    de_region(d).map(Some)
}

/// Durations written as humantime text (`5m`, `30s`, `1h 30m`).
pub mod duration_text {
    use std::time::Duration;

    use serde::Deserialize;

    /// Parses a humantime duration.
    ///
    /// # Errors
    /// When the text is not a duration.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not a duration like 30s or 5m: {e}"))
        })
    }
}

pub mod duration_text_opt {
    use std::time::Duration;

    /// Parses a humantime duration.
    ///
    /// # Errors
    /// When the text is not a duration.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::duration_text::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scenario_parses_with_defaults() {
        let yaml = "
region: ous
reading_interval: 20s
faults:
  rate_limit: 0.1
  retry_after: 3s
accounts:
  - username: alice
    password: pw
    aliases: [alice@example.com]
    profile: overnight_low
    utc_offset: '+0530'
";
        let scenario: Scenario = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(scenario.region, Region::Ous);
        assert_eq!(scenario.reading_interval, Duration::from_secs(20));
        assert_eq!(scenario.faults.retry_after, Duration::from_secs(3));
        assert_eq!(scenario.accounts[0].utc_offset_minutes().unwrap(), 330);
        assert_eq!(scenario.accounts[0].profile, GlucoseProfile::OvernightLow);
        let (min, max) = scenario.upload_delay_range();
        assert_eq!(
            (min, max),
            (Duration::from_millis(400), Duration::from_secs(2))
        );
        scenario.validate().unwrap();
    }

    #[test]
    fn contradictions_are_rejected() {
        let mut scenario = Scenario::default();
        let none = scenario.validate().unwrap_err();
        assert!(matches!(none, ScenarioError::NoAccounts), "{none}");
        assert!(none.to_string().contains("no accounts"));
        scenario.accounts.push(AccountSpec::new("a", "p"));
        scenario.upload_delay_max = Some(Duration::from_secs(400));
        let late = scenario.validate().unwrap_err();
        assert!(matches!(late, ScenarioError::UploadDelay { .. }), "{late}");
        assert!(late.to_string().contains("upload_delay_max"));
        let bad: Result<Scenario, _> = serde_saphyr::from_str("reading_interval: soon");
        assert!(bad.is_err());
        let unknown: Result<Scenario, _> = serde_saphyr::from_str("colour: blue");
        assert!(unknown.is_err());
    }

    #[test]
    fn account_ids_are_stable_and_distinct() {
        let a = AccountSpec::new("alice", "p");
        let b = AccountSpec::new("bob", "p");
        assert_eq!(
            a.effective_account_id(),
            AccountSpec::new("ALICE", "q").effective_account_id()
        );
        assert_ne!(a.effective_account_id(), b.effective_account_id());
        assert!(!a.effective_account_id().is_nil());
    }
}
