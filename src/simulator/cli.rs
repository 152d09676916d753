//! The `share_simulator` command line: every scenario knob as a flag, optionally on top of a
//! YAML scenario file (flags win).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use uuid::Uuid;

use super::glucose::GlucoseProfile;
use super::scenario::{AccountSpec, AuthErrorStyle, Scenario, ScenarioError, SubCodeStyle};
use crate::share::Region;

/// A faithful Dexcom Share server for testing and demos.
///
/// Serves General/AuthenticatePublisherAccount, General/LoginPublisherAccountById and
/// Publisher/ReadPublisherLatestGlucoseValues under /ShareWebServices/Services/ with Share's
/// real wire format and error bodies, a realistic seeded glucose curve with 24 h of history,
/// sessions, lockouts and fault injection. Prints `listening on http://HOST:PORT` first.
#[derive(Debug, Parser)]
#[command(name = "share_simulator", version)]
pub struct SimulatorArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:18019", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// YAML scenario file with accounts and any knob below; flags override it.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Publisher username of a single account (added to the scenario's accounts).
    #[arg(long, requires = "password")]
    pub username: Option<String>,
    /// That account's password (a simulator password, never a real one).
    #[arg(long, requires = "username")]
    pub password: Option<String>,
    /// That account's ID [default: derived from the username].
    #[arg(long, value_name = "UUID")]
    pub account_id: Option<Uuid>,
    /// Extra login names for that account, e.g. an e-mail or a phone number as +15551234567.
    #[arg(long = "alias", value_name = "NAME")]
    pub aliases: Vec<String>,
    /// That account's glucose character.
    #[arg(long, value_enum, value_name = "PROFILE")]
    pub profile: Option<ProfileArg>,
    /// That account's phone UTC offset, shown in DT [default: -0500].
    #[arg(long, value_name = "±HHMM", allow_hyphen_values = true)]
    pub utc_offset: Option<String>,
    /// That account's simulated local time of day at start (HH:MM), e.g. 01:30 for an
    /// overnight low soon after start [default: the real local time].
    #[arg(long, value_name = "HH:MM")]
    pub day_starts_at: Option<String>,
    /// That account has no follower, so Share serves an empty list.
    #[arg(long)]
    pub no_follower: bool,
    /// Region this server plays: us, ous or jp [default: us].
    #[arg(long)]
    pub region: Option<Region>,
    /// Seed of every random choice [default: 1].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Time between sensor readings [default: 5m].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub reading_interval: Option<Duration>,
    /// Shortest upload delay [default: 2% of the reading interval].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub upload_delay_min: Option<Duration>,
    /// Longest upload delay [default: 10% of the reading interval].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub upload_delay_max: Option<Duration>,
    /// How far back readings are served [default: 24h].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub retention: Option<Duration>,
    /// Session lifetime [default: 24h].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub session_ttl: Option<Duration>,
    /// Consecutive bad passwords before an account is locked [default: 5].
    #[arg(long, value_name = "N")]
    pub lockout_after: Option<u32>,
    /// How long a lock lasts [default: 1h].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub lockout_duration: Option<Duration>,
    /// Code sent for locked accounts [default: SSO_AuthenticateMaxAttemptsExceeed].
    #[arg(long, value_name = "CODE")]
    pub max_attempts_code: Option<String>,
    /// How bad credentials are reported [default: account-password-invalid].
    #[arg(long, value_enum)]
    pub auth_error_style: Option<AuthErrorStyle>,
    /// How error SubCodes are serialised [default: xml].
    #[arg(long, value_enum)]
    pub subcode_style: Option<SubCodeStyle>,
    /// Serve the pre-2021 format (\/Date(ms)\/, integer trends, shifted DT).
    #[arg(long)]
    pub legacy_format: bool,
    /// Fraction (0–1) of requests answered with an HTML 502 page.
    #[arg(long, value_name = "RATE")]
    pub fault_html_500: Option<f64>,
    /// Fraction (0–1) of requests answered with 429 and Retry-After.
    #[arg(long, value_name = "RATE")]
    pub fault_rate_limit: Option<f64>,
    /// Retry-After sent with 429s [default: 60s].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub retry_after: Option<Duration>,
    /// Fraction (0–1) of requests answered only after --slow-delay.
    #[arg(long, value_name = "RATE")]
    pub fault_slow: Option<f64>,
    /// Delay of slow answers [default: 60s].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub slow_delay: Option<Duration>,
    /// Fraction (0–1) of requests answered 200 with an empty body.
    #[arg(long, value_name = "RATE")]
    pub fault_empty_body: Option<f64>,
    /// Periodic sensor gaps: one every DURATION, for --gap-length.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub gap_every: Option<Duration>,
    /// Length of each periodic gap [default: 30m].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub gap_length: Option<Duration>,
    /// Periodic phone outages: one every DURATION, for --backlog-length; the readings taken
    /// meanwhile reach Share all at once when it ends.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub backlog_every: Option<Duration>,
    /// Length of each phone outage [default: 1h].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub backlog_length: Option<Duration>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log.level", default_value = "info")]
    pub log_level: String,
}

/// Glucose profiles selectable on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProfileArg {
    /// Mostly in range with meals and occasional excursions.
    Typical,
    /// Drops below 55 mg/dL every night.
    OvernightLow,
    /// Bigger meals, rare lows.
    RunsHigh,
}

impl From<ProfileArg> for GlucoseProfile {
    fn from(arg: ProfileArg) -> Self {
        match arg {
            ProfileArg::Typical => GlucoseProfile::Typical,
            ProfileArg::OvernightLow => GlucoseProfile::OvernightLow,
            ProfileArg::RunsHigh => GlucoseProfile::RunsHigh,
        }
    }
}

impl SimulatorArgs {
    /// The scenario: the file's (if any), with every given flag applied on top.
    ///
    /// # Errors
    /// A message when the file cannot be read or parsed, or the result is contradictory.
    pub fn scenario(&self) -> Result<Scenario, ScenarioError> {
        let mut s = match &self.scenario {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
                    path: path.clone(),
                    source,
                })?;
                crate::yaml::parse(&text).map_err(|source| ScenarioError::Syntax {
                    path: path.clone(),
                    source,
                })?
            }
            None => Scenario::default(),
        };
        macro_rules! apply {
            ($($flag:ident => $field:expr),* $(,)?) => {
                $(if let Some(value) = self.$flag.clone() { $field = value.into(); })*
            };
        }
        apply! {
            region => s.region,
            seed => s.seed,
            reading_interval => s.reading_interval,
            retention => s.retention,
            session_ttl => s.session_ttl,
            lockout_after => s.lockout_after,
            lockout_duration => s.lockout_duration,
            max_attempts_code => s.max_attempts_code,
            auth_error_style => s.auth_error_style,
            subcode_style => s.subcode_style,
            fault_html_500 => s.faults.html_500,
            fault_rate_limit => s.faults.rate_limit,
            retry_after => s.faults.retry_after,
            fault_slow => s.faults.slow,
            slow_delay => s.faults.slow_delay,
            fault_empty_body => s.faults.empty_body,
            gap_length => s.gap_length,
            backlog_length => s.backlog_length,
        }
        if self.backlog_every.is_some() {
            s.backlog_every = self.backlog_every;
        }
        if self.upload_delay_min.is_some() {
            s.upload_delay_min = self.upload_delay_min;
        }
        if self.upload_delay_max.is_some() {
            s.upload_delay_max = self.upload_delay_max;
        }
        if self.gap_every.is_some() {
            s.gap_every = self.gap_every;
        }
        s.legacy_format |= self.legacy_format;
        if let (Some(username), Some(password)) = (&self.username, &self.password) {
            let mut account = AccountSpec::new(username, password);
            account.account_id = self.account_id;
            account.aliases = self.aliases.clone();
            account.has_follower = !self.no_follower;
            if let Some(profile) = self.profile {
                account.profile = profile.into();
            }
            account.day_starts_at = self.day_starts_at.clone();
            if let Some(offset) = &self.utc_offset {
                account.utc_offset = offset.clone();
            }
            s.accounts.push(account);
        }
        s.validate()?;
        Ok(s)
    }
}
