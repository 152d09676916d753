//! Share's clock, as this host can know it: the host's clock corrected by the offset that
//! Share's `Date` headers show. Reading ages, the staleness cut-off (`--glucose.max-age`), read
//! sizes, the schedule and the login gate all judge time by it, so a host clock that is off by
//! an hour (a Raspberry Pi booting without a real-time clock before NTP) or by days changes
//! nothing a user sees. Until Share has answered, and when it sends no `Date`, it is the host's
//! clock.
//!
//! A `Date` header has a resolution of one second and is stamped somewhere between the moment
//! the request left and the moment its answer arrived, so one answer says only that the offset
//! lies in `[date - answered, date + 1 s - sent]`. The estimate stays while it agrees with the
//! latest answer, and moves to the middle of that answer's interval when it does not: a clock
//! that is right stays at exactly zero (no jitter in the ages of a correct host), a host clock
//! that jumps (NTP's first sync) is followed at the next answer, within half a second and half
//! the round trip, and one slow answer only widens its own interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use super::{Clock, Sleep, from_unix_ms, unix_ms};

/// The resolution of an HTTP `Date` header.
const DATE_RESOLUTION_MS: i64 = 1000;

/// The host's clock plus the measured offset to Share's.
#[derive(Debug)]
pub struct ShareClock {
    host: Arc<dyn Clock>,
    /// Share's clock minus the host's, in ms.
    offset_ms: AtomicI64,
}

impl ShareClock {
    /// Share's clock on top of `host`, equal to it until the first answer.
    pub fn new(host: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(ShareClock {
            host,
            offset_ms: AtomicI64::new(0),
        })
    }

    /// Takes one answer into account: Share stamped `date` on an answer to a request sent at
    /// `sent` and answered at `answered`, both read from this clock.
    pub fn observe(&self, date: SystemTime, sent: SystemTime, answered: SystemTime) {
        let date_ms = unix_ms(date);
        let (sent_ms, answered_ms) = (unix_ms(sent), unix_ms(answered));
        // The times were read from this clock, so they include the offset as it was: the
        // interval found is the residual to add.
        let residual_low = date_ms.saturating_sub(answered_ms.max(sent_ms));
        let residual_high = date_ms
            .saturating_add(DATE_RESOLUTION_MS - 1)
            .saturating_sub(sent_ms.min(answered_ms));
        let residual_high = residual_high.max(residual_low);
        // Inside the interval: the estimate agrees with this answer and stays (a right clock
        // stays at 0). Outside: to the interval's middle, which is off by at most half its
        // width either way (a boundary would always err the same way).
        if !(residual_low..=residual_high).contains(&0) {
            let middle = residual_low + (residual_high - residual_low) / 2;
            self.offset_ms.fetch_add(middle, Ordering::Relaxed);
        }
    }

    /// Share's clock minus the host's (positive: the host is behind).
    pub fn offset(&self) -> SignedDuration {
        SignedDuration::from_ms(self.offset_ms.load(Ordering::Relaxed))
    }
}

impl Clock for ShareClock {
    fn now(&self) -> SystemTime {
        let host = unix_ms(self.host.now());
        from_unix_ms(host.saturating_add(self.offset_ms.load(Ordering::Relaxed)))
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.host.sleep(duration)
    }
}

/// A duration that may be negative, for a clock offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedDuration {
    ms: i64,
}

impl SignedDuration {
    /// `ms` milliseconds.
    pub fn from_ms(ms: i64) -> Self {
        SignedDuration { ms }
    }

    /// Whole milliseconds, negative when the host's clock is ahead of Share's.
    pub fn as_ms(self) -> i64 {
        self.ms
    }

    /// Seconds, as `dexcom_share_clock_skew_seconds` shows them.
    pub fn as_secs_f64(self) -> f64 {
        self.ms as f64 / 1000.0
    }

    /// The size, without the sign.
    pub fn magnitude(self) -> Duration {
        Duration::from_millis(self.ms.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const T: i64 = 1_800_000_000_000;

    fn at(ms: i64) -> SystemTime {
        from_unix_ms(ms)
    }

    #[test]
    fn a_right_clock_stays_at_exactly_zero() {
        let host = ManualClock::starting_at(at(T + 640));
        let share = ShareClock::new(host.clone());
        for step in 0..50 {
            let sent = share.now();
            host.advance(Duration::from_millis(37));
            let answered = share.now();
            // Share's true time is the host's; its header is truncated to the second.
            let date = at(unix_ms(answered) / 1000 * 1000);
            share.observe(date, sent, answered);
            assert_eq!(share.offset().as_ms(), 0, "step {step}");
        }
    }

    #[test]
    fn a_host_an_hour_behind_is_corrected_at_the_first_answer_and_a_jump_is_followed() {
        let host = ManualClock::starting_at(at(T));
        let share = ShareClock::new(host.clone());
        let truth = |host_ms: i64| host_ms + 3_600_000;
        let exchange = |share: &ShareClock, host: &ManualClock, truth: &dyn Fn(i64) -> i64| {
            let sent = share.now();
            host.advance(Duration::from_millis(120));
            let answered = share.now();
            let stamped = truth(unix_ms(host.now()) - 60);
            share.observe(at(stamped / 1000 * 1000), sent, answered);
        };
        exchange(&share, &host, &truth);
        let error = unix_ms(share.now()) - truth(unix_ms(host.now()));
        assert!(error.abs() <= 1000, "off by {error} ms");
        assert!((share.offset().as_secs_f64() - 3600.0).abs() <= 1.0);
        // NTP syncs: the host jumps an hour forward; the next answer follows it.
        host.advance(Duration::from_secs(3600));
        exchange(&share, &host, &|ms| ms);
        assert!(share.offset().as_ms().abs() <= 1000, "{:?}", share.offset());
    }

    #[test]
    fn days_ahead_too() {
        let host = ManualClock::starting_at(at(T + 3 * 86_400_000));
        let share = ShareClock::new(host.clone());
        let sent = share.now();
        let answered = share.now();
        share.observe(at(T), sent, answered);
        assert!((share.offset().as_secs_f64() + 3.0 * 86_400.0).abs() <= 1.0);
        assert!((unix_ms(share.now()) - T).abs() <= 1000);
    }
}
