//! What a poller hears of its client's requests: logins and reads counted into the account's
//! metrics, request latency timed, and Share's `Date` taken into the clock of its Share host,
//! with a word in the log when this host's clock differs from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::clock::ShareClock;
use crate::metrics::{AccountMetrics, RequestDurations};
use crate::share::{ClientObserver, Endpoint};

/// How far this host's clock may differ from Share's before the log says so. Ages come from
/// Share's answers and the monotonic clock, so this is advice (other services on the host trust
/// its clock), not a fault in what the exporter shows.
const CLOCK_SKEW_TOLERANCE: Duration = Duration::from_secs(30);

/// Counts requests and logins of one account into its metrics, and measures Share's clock.
#[derive(Debug)]
pub(super) struct Observer {
    account: Arc<AccountMetrics>,
    durations: Arc<RequestDurations>,
    clock: Arc<ShareClock>,
    said_skew: AtomicBool,
}

impl Observer {
    /// The observer of `account`'s client, timing requests into `durations` and measuring
    /// Share's clock into `clock`.
    pub(super) fn new(
        account: Arc<AccountMetrics>,
        durations: Arc<RequestDurations>,
        clock: Arc<ShareClock>,
    ) -> Self {
        Observer {
            account,
            durations,
            clock,
            said_skew: AtomicBool::new(false),
        }
    }
}

impl ClientObserver for Observer {
    fn login_started(&self) {
        self.account.count_login();
    }

    fn request_finished(&self, endpoint: Endpoint, elapsed: Duration) {
        self.durations.observe(endpoint, elapsed);
        if endpoint == Endpoint::ReadGlucose {
            self.account.count_read();
        }
    }

    /// Share's `Date` is one sample of its host's clock; the skew (the median of the last
    /// answers, see `ShareClock`) is published for the host, and a host clock that differs is
    /// said once per episode by each account's poller.
    fn server_date(&self, date: SystemTime, sent: Duration, answered: Duration) {
        self.clock.observe(date, sent, answered);
        let Some(offset) = self.clock.offset() else {
            return;
        };
        self.account
            .set_share_clock_skew(self.clock.origin(), offset);
        let skew = offset.magnitude();
        let skewed = skew > CLOCK_SKEW_TOLERANCE;
        if skewed && !self.said_skew.swap(true, Ordering::Relaxed) {
            let skew = Duration::from_secs(skew.as_secs());
            tracing::warn!(
                account = self.account.name(),
                skew = %humantime::format_duration(skew),
                "this host's clock is {} {} Dexcom Share's: reading ages come from Share's answers and the schedule runs on the monotonic clock, so values are unaffected, but fix the host's clock (check NTP, e.g. `timedatectl`)",
                humantime::format_duration(skew),
                if offset.as_ms() < 0 { "ahead of" } else { "behind" }
            );
        } else if !skewed && self.said_skew.swap(false, Ordering::Relaxed) {
            tracing::info!(
                account = self.account.name(),
                "this host's clock agrees with Dexcom Share's again"
            );
        }
    }
}
