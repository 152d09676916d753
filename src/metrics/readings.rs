//! The one custom collector: the series of each account's newest reading, which the library's
//! own metric types cannot serve because they depend on the time of the scrape. The value,
//! trend and delta are withdrawn once the reading is older than `--glucose.max-age` (or dated
//! ahead of the answer that carried it), so a stale number can never pass for a current one;
//! the age is that answer's Share time minus the sensor time plus the monotonic time since it
//! arrived, computed when scraped. The `process_*` metrics, also read at scrape time, follow.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use super::account::{AccountMetrics, LatestReading};
use super::labels::{AccountLabels, ReasonLabels, StatusLabels};
use super::status::{AccountStatus, HoldReason};
use crate::clock::Clock;

pub(super) const CACHED: &str =
    "Cached from the last poll of Dexcom Share, which follows the sensor's 5-minute cadence";

/// How far below zero a reading's age may be and still count as current: Share's `Date` has a
/// resolution of a second and is stamped while the answer is on its way. A reading more ahead
/// of the answer that carried it than this is not a value anyone can trust as "now".
pub const NEGATIVE_AGE_TOLERANCE: Duration = Duration::from_secs(5);

/// Whether a reading of age `age_ms` ([`LatestReading::age_ms`]) still shows its value: value
/// and trend are withdrawn once it is older than `max_age`, and while it is dated more than
/// [`NEGATIVE_AGE_TOLERANCE`] ahead. The one rule for `/metrics` and the landing page.
pub fn is_current(age_ms: i64, max_age: Duration) -> bool {
    let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    let tolerance_ms = i64::try_from(NEGATIVE_AGE_TOLERANCE.as_millis()).unwrap_or(0);
    (-tolerance_ms..=max_age_ms).contains(&age_ms)
}

/// Collects the reading series of every account at scrape time.
#[derive(Debug)]
pub(super) struct ReadingCollector {
    pub(super) accounts: Vec<Arc<AccountMetrics>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) max_age: Duration,
    pub(super) started: SystemTime,
}

fn gauge<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (&'a AccountMetrics, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (account, value) in samples {
        let labels = AccountLabels {
            account: account.name().to_owned(),
        };
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A state set: for every account, one series per state in `all`, 1 for its `current` one.
fn state_set<S: Copy + PartialEq, L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    accounts: &[Arc<AccountMetrics>],
    all: &[S],
    current: impl Fn(&AccountMetrics) -> S,
    labels: impl Fn(&AccountMetrics, S) -> L,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for account in accounts {
        let now = current(account);
        for state in all {
            ConstGauge::new(if *state == now { 1.0 } else { 0.0 })
                .encode(family.encode_family(&labels(account, *state))?)?;
        }
    }
    Ok(())
}

impl Collector for ReadingCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now_ms = self.clock.now_ms();
        let mono_ms = self.clock.monotonic_ms();
        let latest: Vec<(&AccountMetrics, LatestReading)> = self
            .accounts
            .iter()
            .filter_map(|a| a.latest().map(|l| (a.as_ref(), l)))
            .collect();
        let age_ms = |l: &LatestReading| l.age_ms(mono_ms);
        let fresh = || {
            latest
                .iter()
                .filter(|(_, l)| is_current(l.age_ms(mono_ms), self.max_age))
        };

        gauge(
            &mut encoder,
            "dexcom_glucose_mg_per_dl",
            &format!(
                "Latest glucose reading in mg/dL as Share reports it (39 means below 40, 401 above 400); withdrawn once older than the maximum age. {CACHED}."
            ),
            fresh().map(|(a, l)| (*a, f64::from(l.reading.mg_per_dl))),
        )?;
        gauge(
            &mut encoder,
            "dexcom_glucose_trend",
            &format!(
                "Dexcom trend of the latest reading: 0 None, 1 DoubleUp, 2 SingleUp, 3 FortyFiveUp, 4 Flat, 5 FortyFiveDown, 6 SingleDown, 7 DoubleDown, 8 NotComputable, 9 RateOutOfRange; withdrawn with the value. {CACHED}."
            ),
            fresh().map(|(a, l)| (*a, f64::from(l.reading.trend.code()))),
        )?;
        gauge(
            &mut encoder,
            "dexcom_glucose_delta_mg_per_dl",
            &format!(
                "Change in mg/dL from the previous reading, present when that reading is one interval earlier. {CACHED}."
            ),
            fresh().filter_map(|(a, l)| l.delta_mg_per_dl.map(|d| (*a, f64::from(d)))),
        )?;
        gauge(
            &mut encoder,
            "dexcom_glucose_reading_timestamp_seconds",
            &format!("Unix time at which the sensor took the latest reading. {CACHED}."),
            latest
                .iter()
                .map(|(a, l)| (*a, l.reading.timestamp_ms as f64 / 1000.0)),
        )?;
        gauge(
            &mut encoder,
            "dexcom_glucose_reading_age_seconds",
            "Seconds since the sensor took the latest reading, computed when scraped.",
            latest.iter().map(|(a, l)| (*a, age_ms(l) as f64 / 1000.0)),
        )?;
        state_set(
            &mut encoder,
            "dexcom_account_status",
            "Why the account shows or lacks a current glucose value, as a state set: 1 for the current status, 0 for the others (ok, starting, stale, no_readings, readings_rejected, login_held, login_failing, share_failing, clock_skew)",
            &self.accounts,
            &AccountStatus::ALL,
            |account| account.status_at(mono_ms, self.max_age),
            |account, status| StatusLabels {
                account: account.name().to_owned(),
                status: status.as_str(),
            },
        )?;
        state_set(
            &mut encoder,
            "dexcom_login_hold_reason",
            "Why the login gate holds the password back, as a state set: none, auth_failed (Share rejected the password), locked_out, unconfirmed (a login of a password never accepted ended without an answer), login_limit, failures_in_a_row (4 in a row, held a day), state_unwritable, state_unreadable (the gate's memory cannot be kept, so no password is sent), duplicate_login (another entry is the same Dexcom account); kept across restarts in the state directory",
            &self.accounts,
            &HoldReason::ALL,
            |account| account.hold_at(now_ms),
            |account, reason| ReasonLabels {
                account: account.name().to_owned(),
                reason: reason.as_str(),
            },
        )?;
        super::process::encode(&mut encoder, self.started)
    }
}
