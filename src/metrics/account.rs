//! The live state of one account: written by its poller, read by scrapes and the landing page.
//!
//! The newest reading sits in an `ArcSwap` (the scrape-time collector withdraws it when it gets
//! too old); the counters and gauges are handles into the registered families, taken once at
//! start so a poll never looks a series up again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::Families;
use super::labels::{AccountLabels, ErrorLabels, RejectLabels, ThresholdLabels};
use super::status::{AccountStatus, HoldReason, StatusCell};
use crate::clock::unix_ms;
use crate::share::{ErrorReason, Reading, RejectReason};

/// A gauge holding a float, as every gauge here does (`1.0`, `55.0`, a Unix time).
pub(super) type FloatGauge = Gauge<f64, AtomicU64>;

/// Glucose alert thresholds of one account, in mg/dL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Urgent low (Dexcom's fixed 55 mg/dL by default).
    pub urgent_low: u16,
    /// Low (70 mg/dL by default): `DexcomGlucoseLow` compares against it.
    pub low: u16,
    /// High (250 mg/dL by default): `DexcomGlucoseHigh` compares against it.
    pub high: u16,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            urgent_low: 55,
            low: 70,
            high: 250,
        }
    }
}

impl Thresholds {
    /// `(level label, mg/dL)` for each level.
    pub fn levels(self) -> [(&'static str, u16); 3] {
        [
            ("urgent_low", self.urgent_low),
            ("low", self.low),
            ("high", self.high),
        ]
    }
}

/// The newest reading of an account, as the collector serves it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatestReading {
    pub reading: Reading,
    /// Change from the previous reading, when that one was one interval earlier.
    pub delta_mg_per_dl: Option<i32>,
    /// When the answer that carried it arrived: what its age is counted from.
    pub arrival: Arrival,
}

/// When a Share answer arrived, in the two clocks a reading's age is made of: Share's time
/// then (the answer's `Date`, as its host's robust estimate has it, see `ShareClock`) and
/// the host's monotonic time then. No process-wide offset and no wall clock step after it moves
/// the age of what the answer carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Share's time when the answer arrived, Unix ms.
    pub share_ms: i64,
    /// The host's monotonic time when it arrived, ms ([`crate::clock::Clock::monotonic`]).
    pub mono_ms: i64,
}

impl Arrival {
    /// An answer that arrived at the host's monotonic time `at`, Share's time then `share_ms`.
    pub fn new(share_ms: i64, at: std::time::Duration) -> Self {
        Arrival {
            share_ms,
            mono_ms: i64::try_from(at.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

impl LatestReading {
    /// The reading's age at the host's monotonic time `mono_ms`: Share's time when its answer
    /// arrived minus the sensor time, plus the monotonic time since.
    pub fn age_ms(&self, mono_ms: i64) -> i64 {
        self.arrival
            .share_ms
            .saturating_sub(self.reading.timestamp_ms)
            .saturating_add(mono_ms.saturating_sub(self.arrival.mono_ms))
    }
}

/// The live state of one account, written by its poller and read by scrapes.
#[derive(Debug)]
pub struct AccountMetrics {
    name: String,
    thresholds: Thresholds,
    latest: ArcSwapOption<LatestReading>,
    polled_once: AtomicBool,
    last_error: ArcSwapOption<ErrorReason>,
    up: FloatGauge,
    polls: Counter,
    logins: Counter,
    /// One per [`ErrorReason::ALL`], in that order.
    errors: Vec<Counter>,
    /// Created at the first success: before it there is no time to show.
    last_success: Family<AccountLabels, FloatGauge>,
    /// One per [`RejectReason::ALL`], in that order.
    rejected: Vec<Counter>,
    next_login: FloatGauge,
    backfilled: Counter,
    /// What the last poll found, before the scrape checks whether the value is current.
    polled_status: StatusCell,
    /// Why the gate holds the password, and until when (Unix ms).
    hold: StatusCell,
    hold_until_ms: AtomicI64,
    /// Shared by every account, one series per Share host.
    clock_skew: Family<super::labels::OriginLabels, FloatGauge>,
}

impl AccountMetrics {
    /// The account labelled `name`, with its series created in `families` (every error reason
    /// at 0 from the start, so `rate()` and `increase()` see the first error).
    pub(super) fn new(name: String, thresholds: Thresholds, families: &Families) -> Self {
        let account = AccountLabels {
            account: name.clone(),
        };
        for (level, value) in thresholds.levels() {
            families
                .thresholds
                .get_or_create(&ThresholdLabels {
                    account: name.clone(),
                    level,
                })
                .set(f64::from(value));
        }
        let errors = ErrorReason::ALL
            .iter()
            .map(|reason| {
                families
                    .poll_errors
                    .get_or_create(&ErrorLabels {
                        account: name.clone(),
                        reason: reason.as_str(),
                    })
                    .clone()
            })
            .collect();
        let rejected = RejectReason::ALL
            .iter()
            .map(|reason| {
                families
                    .readings_rejected
                    .get_or_create(&RejectLabels {
                        account: name.clone(),
                        reason: reason.as_str(),
                    })
                    .clone()
            })
            .collect();
        AccountMetrics {
            rejected,
            next_login: families.next_login.get_or_create(&account).clone(),
            backfilled: families.readings_backfilled.get_or_create(&account).clone(),
            up: families.up.get_or_create(&account).clone(),
            polls: families.polls.get_or_create(&account).clone(),
            logins: families.logins.get_or_create(&account).clone(),
            errors,
            last_success: families.last_success.clone(),
            name,
            thresholds,
            latest: ArcSwapOption::empty(),
            polled_once: AtomicBool::new(false),
            last_error: ArcSwapOption::empty(),
            polled_status: {
                let cell = StatusCell::default();
                cell.set_status(AccountStatus::Starting);
                cell
            },
            hold: StatusCell::default(),
            hold_until_ms: AtomicI64::new(0),
            clock_skew: families.clock_skew.clone(),
        }
    }

    /// Records what the last poll found (or, at start, what the gate's memory says).
    pub fn set_polled_status(&self, status: AccountStatus) {
        self.polled_status.set_status(status);
    }

    /// What the last poll found; a scrape turns it into the status shown
    /// ([`AccountMetrics::status_at`]).
    pub fn polled_status(&self) -> AccountStatus {
        self.polled_status.status()
    }

    /// The status shown at the host's monotonic time `mono_ms`: `ok` while the newest reading
    /// is current (the one rule of [`super::is_current`]), else what the last poll found.
    /// `/metrics` and the landing page both ask here.
    pub fn status_at(&self, mono_ms: i64, max_age: std::time::Duration) -> AccountStatus {
        let current = self
            .latest()
            .is_some_and(|l| super::is_current(l.age_ms(mono_ms), max_age));
        super::status::shown_status(current, self.polled_status())
    }

    /// Records that the login gate holds the password until `until_ms` because of `reason`, or
    /// that it does not (`None`): the hold reason's state set and
    /// `dexcom_login_next_attempt_timestamp_seconds` (0 without a wait) from one place.
    pub fn set_hold(&self, hold: Option<(HoldReason, i64)>) {
        let (reason, until_ms) = hold.unwrap_or((HoldReason::None, 0));
        self.hold_until_ms.store(until_ms, Ordering::Release);
        self.hold.set_hold(reason);
        self.next_login.set(until_ms as f64 / 1000.0);
    }

    /// Why the gate holds the password at `now_ms` ([`HoldReason::None`] once the hold is over;
    /// a hold that lasts until its cause is fixed lasts until a poll finds it gone).
    pub fn hold_at(&self, now_ms: i64) -> HoldReason {
        let reason = self.hold.hold();
        if reason.lasts_until_fixed() || self.hold_until_ms.load(Ordering::Acquire) > now_ms {
            reason
        } else {
            HoldReason::None
        }
    }

    /// Records the estimated offset of the clock of the Share host at `origin` from the host's.
    pub fn set_share_clock_skew(&self, origin: &str, skew: crate::clock::SignedDuration) {
        self.clock_skew
            .get_or_create(&super::labels::OriginLabels {
                origin: origin.to_owned(),
            })
            .set(skew.as_secs_f64());
    }

    /// Records a poll the login gate deferred: the account has been looked at, so readiness
    /// does not wait for it.
    pub fn poll_deferred(&self) {
        self.polled_once.store(true, Ordering::Release);
    }

    /// The `account` label value.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The account's thresholds.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Publishes a new newest reading.
    pub fn set_latest(&self, latest: LatestReading) {
        self.latest.store(Some(Arc::new(latest)));
    }

    /// The newest reading published, if any.
    pub fn latest(&self) -> Option<LatestReading> {
        self.latest.load().as_deref().copied()
    }

    /// Records a successful poll at `now`.
    pub fn poll_succeeded(&self, now: SystemTime) {
        self.last_success
            .get_or_create(&AccountLabels {
                account: self.name.clone(),
            })
            .set(unix_ms(now) as f64 / 1000.0);
        self.last_error.store(None);
        self.up.set(1.0);
        self.polled_once.store(true, Ordering::Release);
    }

    /// Records a failed poll.
    pub fn poll_failed(&self, reason: ErrorReason) {
        if let Some(counter) = self.errors.get(reason_index(reason)) {
            counter.inc();
        }
        self.last_error.store(Some(Arc::new(reason)));
        self.up.set(0.0);
        self.polled_once.store(true, Ordering::Release);
    }

    /// Counts one request to the readings endpoint.
    pub fn count_read(&self) {
        self.polls.inc();
    }

    /// Counts one login attempt.
    pub fn count_login(&self) {
        self.logins.inc();
    }

    /// Whether the last poll succeeded.
    pub fn is_up(&self) -> bool {
        self.up.get() == 1.0
    }

    /// Whether a first poll has completed, successfully or not.
    pub fn polled_once(&self) -> bool {
        self.polled_once.load(Ordering::Acquire)
    }

    /// The reason of the last failed poll, while the account is failing.
    pub fn last_error(&self) -> Option<ErrorReason> {
        self.last_error.load().as_deref().copied()
    }

    /// Counts readings filled into the history behind the newest one.
    pub fn count_backfilled(&self, readings: usize) {
        self.backfilled.inc_by(readings as u64);
    }

    /// Counts one reading Share served that was not published.
    pub fn count_rejected(&self, reason: RejectReason) {
        if let Some(counter) = self.rejected.get(reject_index(reason)) {
            counter.inc();
        }
    }
}

fn reason_index(reason: ErrorReason) -> usize {
    ErrorReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or_default()
}

fn reject_index(reason: RejectReason) -> usize {
    RejectReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or_default()
}
