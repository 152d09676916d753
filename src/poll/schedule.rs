//! When to read Share next: the pure decision logic of the poller, free of I/O and clocks so
//! it can be tested and simulated over thousands of readings in milliseconds.
//!
//! A sensor reading appears on Share an upload delay after its sensor time R, and the next one
//! is taken at R + interval. We aim the first read at R + interval + grace, where `grace`
//! tracks a high quantile of the upload delay: each reading found on the first try nudges it
//! down a little, each one that needed a retry nudges it up more, so it settles where about
//! [`TARGET_MISS_RATE`] of first tries miss. Everything is a fraction of the interval, so the
//! schedule behaves identically at 5 minutes or at an accelerated 20 seconds.
//!
//! Failures never poll faster. How long a credential failure (a rejected password, a lockout)
//! waits is not decided here: the login gate (`share/gate.rs`) is the one owner of every wait
//! before the password may leave again, and the poller sleeps until it opens; this schedule
//! only never comes back sooner than an interval. A challenge or rate limit from Dexcom's web
//! front (Cloudflare) also waits at least an interval: asking again sooner is what such an
//! edge counts against an address. Everything else backs off exponentially with jitter up to
//! one interval, and `Retry-After` is honoured.

use std::time::Duration;

use crate::share::ErrorReason;

/// The share of first tries that should find the reading not there yet.
const TARGET_MISS_RATE: f64 = 0.15;
/// How far one observation moves the grace, as a fraction of the interval.
const GRACE_STEP: f64 = 0.02;
/// Initial grace, before any observation and without a saved one: an early first try (2% of
/// the interval) whose misses the quick retries catch. A late first try would cost the first
/// reading after every start up to a tenth of the interval; an early one costs a few extra
/// reads once, while the grace learns the account's upload delay.
const INITIAL_GRACE: f64 = 0.02;
/// The grace never exceeds this fraction of the interval.
const MAX_GRACE: f64 = 0.40;
/// Retry steps after a first try missed, as fractions of the interval (the last repeats).
const RETRY_STEPS: [f64; 6] = [0.02, 0.03, 0.05, 0.08, 0.12, 0.20];
/// Stop retrying for an expected reading this long (fraction of the interval) after it was due.
const RETRY_WINDOW: f64 = 0.5;
/// First backoff for transient errors, as a fraction of the interval.
const ERROR_BACKOFF_BASE: f64 = 0.02;
/// Longest wait of any backoff.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(6 * 60 * 60);

/// What a poll found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PollOutcome {
    /// The poll succeeded; `newest_ms` is the sensor time of the newest reading served.
    Success {
        /// Sensor time of the newest reading, `None` for an empty list.
        newest_ms: Option<i64>,
    },
    /// No request was made: the login gate holds the password back until `until_ms`.
    Deferred {
        /// Unix ms at which a login may start.
        until_ms: i64,
    },
    /// The poll failed.
    Failed {
        reason: ErrorReason,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
}

/// The per-account schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    interval_ms: f64,
    newest_ms: Option<i64>,
    grace_ms: f64,
    /// Reads made so far for the reading expected next (0 before the first try).
    attempts: u32,
    transient_failures: u32,
    rng: fastrand::Rng,
}

impl Schedule {
    /// A schedule for a sensor cadence of `interval`; `seed` makes its jitter reproducible.
    pub fn new(interval: Duration, seed: u64) -> Self {
        let interval_ms = interval.as_secs_f64() * 1000.0;
        Schedule {
            interval_ms,
            newest_ms: None,
            grace_ms: INITIAL_GRACE * interval_ms,
            attempts: 0,
            transient_failures: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Starts from a grace learned before (saved across a restart), within the usual bounds.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace_ms = (grace.as_secs_f64() * 1000.0).clamp(0.0, MAX_GRACE * self.interval_ms);
        self
    }

    /// The current upload-delay allowance.
    pub fn grace(&self) -> Duration {
        Duration::from_secs_f64(self.grace_ms / 1000.0)
    }

    /// Records `outcome` observed at `now_ms` and returns when to poll next (Unix ms).
    pub fn next_poll(&mut self, outcome: PollOutcome, now_ms: i64) -> i64 {
        match outcome {
            PollOutcome::Success { newest_ms } => {
                self.transient_failures = 0;
                // An aligned read is never more than an interval and the grace away. A reading
                // dated ahead of our clock (this host's clock behind, as on a Raspberry Pi
                // without a real-time clock before NTP syncs) would otherwise put the next
                // read as far away as the clock is wrong.
                let at = self.after_success(newest_ms, now_ms);
                at.min(now_ms.saturating_add((self.interval_ms + self.grace_ms) as i64))
            }
            PollOutcome::Deferred { until_ms } => until_ms.max(now_ms),
            PollOutcome::Failed {
                reason,
                retry_after,
            } => now_ms.saturating_add(
                i64::try_from(self.after_failure(reason, retry_after).as_millis())
                    .unwrap_or(i64::MAX),
            ),
        }
    }

    fn after_success(&mut self, newest_ms: Option<i64>, now_ms: i64) -> i64 {
        let interval = self.interval_ms;
        let Some(newest) = newest_ms else {
            // Nothing on Share (no follower, sensor off): look once per interval.
            self.attempts = 0;
            return now_ms.saturating_add(interval as i64);
        };
        let previous = self.newest_ms;
        if previous.is_none_or(|p| newest > p) {
            if let Some(p) = previous {
                let expected = p as f64 + interval;
                // Learn only from the reading we were waiting for, not one after a gap.
                if ((newest as f64) - expected).abs() < interval / 2.0 && self.attempts > 0 {
                    let missed_first_try = self.attempts > 1;
                    let step = GRACE_STEP * interval;
                    self.grace_ms += if missed_first_try {
                        step * (1.0 - TARGET_MISS_RATE)
                    } else {
                        -step * TARGET_MISS_RATE
                    };
                    self.grace_ms = self.grace_ms.clamp(0.0, MAX_GRACE * interval);
                }
            }
            self.newest_ms = Some(newest);
            self.attempts = 1;
            return self.aligned_after(newest, now_ms);
        }
        // Same reading as before: the next one is not there yet.
        let due = newest as f64 + interval + self.grace_ms;
        if (now_ms as f64) < due {
            // We polled early (e.g. recovering from an error): go back to the plan.
            return due as i64;
        }
        let deadline = newest as f64 + interval + RETRY_WINDOW * interval;
        if (now_ms as f64) < deadline {
            let step_index = (self.attempts.saturating_sub(1) as usize).min(RETRY_STEPS.len() - 1);
            self.attempts += 1;
            return now_ms.saturating_add((RETRY_STEPS[step_index] * interval) as i64);
        }
        // The reading is missing (sensor gap, phone offline): fall back to one read per
        // interval, still aligned to the sensor's phase so we catch it when it returns.
        self.attempts = 1;
        self.aligned_after(newest, now_ms)
    }

    /// The first `newest + k·interval + grace` (k ≥ 1) after `now_ms`.
    fn aligned_after(&self, newest: i64, now_ms: i64) -> i64 {
        let interval = self.interval_ms;
        let first = newest as f64 + interval + self.grace_ms;
        let behind = (now_ms as f64 - first).max(0.0);
        let k = (behind / interval).ceil();
        let mut at = first + k * interval;
        if at <= now_ms as f64 {
            at += interval;
        }
        at as i64
    }

    fn after_failure(&mut self, reason: ErrorReason, retry_after: Option<Duration>) -> Duration {
        match reason {
            // The gate holds the password (29 minutes and up, an hour after a lockout); the
            // poller sleeps until it opens. Never sooner than an interval from here.
            ErrorReason::AuthFailed | ErrorReason::LockedOut => {
                self.jittered(Duration::from_secs_f64(self.interval_ms / 1000.0))
            }
            ErrorReason::EdgeChallenge | ErrorReason::EdgeRateLimited => {
                self.transient_failures += 1;
                let interval = self.jittered(Duration::from_secs_f64(self.interval_ms / 1000.0));
                retry_after.map_or(interval, |asked| asked.min(MAX_RETRY_WAIT).max(interval))
            }
            _ => {
                self.transient_failures += 1;
                let interval = Duration::from_secs_f64(self.interval_ms / 1000.0);
                let base = interval.mul_f64(ERROR_BACKOFF_BASE);
                let ceiling = grow(base, self.transient_failures).min(interval);
                // "Equal jitter": at least half the backoff, so retries never bunch up at zero.
                let backoff = ceiling.mul_f64(0.5 + 0.5 * self.rng.f64());
                match retry_after {
                    Some(asked) => asked.max(backoff).min(MAX_RETRY_WAIT),
                    None => backoff,
                }
            }
        }
    }

    /// Adds up to 10% so that many exporters do not retry in lockstep; never shortens.
    fn jittered(&mut self, wait: Duration) -> Duration {
        wait.mul_f64(1.0 + 0.1 * self.rng.f64())
    }
}

/// `base · 2^(n-1)`, capped at [`MAX_RETRY_WAIT`].
fn grow(base: Duration, n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(MAX_RETRY_WAIT)
}

/// Delay of the first poll of account `index` of `count`: spread over at most one interval,
/// at most one second apart, so a thousand accounts do not log in at once.
pub fn first_poll_delay(index: usize, count: usize, interval: Duration) -> Duration {
    if count <= 1 {
        return Duration::ZERO;
    }
    let spacing = (interval / u32::try_from(count).unwrap_or(u32::MAX)).min(Duration::from_secs(1));
    spacing.saturating_mul(u32::try_from(index).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn fail(reason: ErrorReason) -> PollOutcome {
        PollOutcome::Failed {
            reason,
            retry_after: None,
        }
    }

    #[test]
    fn a_reading_ahead_of_our_clock_never_delays_the_next_read_beyond_an_interval() {
        let mut s = Schedule::new(Duration::from_secs(300), 1);
        let now = 1_000_000_000;
        let hour_ahead = now + 60 * MINUTE;
        let success = |newest| PollOutcome::Success {
            newest_ms: Some(newest),
        };
        let next = s.next_poll(success(hour_ahead), now);
        assert!(
            next > now && next <= now + 5 * MINUTE + 30_000,
            "{}",
            next - now
        );
        // The same reading again: still at most an interval away, not an hour.
        let later = next;
        let again = s.next_poll(success(hour_ahead), later);
        assert!(again > later && again <= later + 5 * MINUTE + 30_000);
        // Once the clock is right, the schedule is aligned to the sensor again (the grace
        // learnt one first-try hit: 6 s less 15% of a 2% step).
        let newest = hour_ahead + 5 * MINUTE;
        let aligned = s.next_poll(success(newest), newest + 10_000);
        assert_eq!(aligned, newest + 5 * MINUTE + 5_100);
    }

    #[test]
    fn first_read_is_aimed_after_the_next_reading_plus_grace() {
        let mut s = Schedule::new(Duration::from_secs(300), 1);
        let next = s.next_poll(
            PollOutcome::Success {
                newest_ms: Some(1_000_000),
            },
            1_010_000,
        );
        // An early first try: 2% of the interval after the next reading's sensor time.
        assert_eq!(next, 1_000_000 + 300_000 + 6_000);
    }

    #[test]
    fn a_grace_learnt_before_a_restart_is_used_from_the_first_read() {
        let mut s = Schedule::new(Duration::from_secs(300), 1).with_grace(Duration::from_secs(9));
        let next = s.next_poll(
            PollOutcome::Success {
                newest_ms: Some(1_000_000),
            },
            1_010_000,
        );
        assert_eq!(next, 1_000_000 + 300_000 + 9_000);
        let capped =
            Schedule::new(Duration::from_secs(300), 1).with_grace(Duration::from_secs(3600));
        assert_eq!(
            capped.grace(),
            Duration::from_secs(120),
            "never above 40% of the interval"
        );
    }

    #[test]
    fn an_old_reading_aligns_to_the_sensor_phase() {
        let mut s = Schedule::new(Duration::from_secs(300), 1);
        // The newest reading is 17 minutes old: next expected at R + 20 min (+ grace).
        let r = 0;
        let next = s.next_poll(PollOutcome::Success { newest_ms: Some(r) }, 17 * MINUTE);
        assert_eq!(next, 20 * MINUTE + 6_000);
    }

    #[test]
    fn empty_list_polls_once_per_interval() {
        let mut s = Schedule::new(Duration::from_secs(300), 1);
        assert_eq!(
            s.next_poll(PollOutcome::Success { newest_ms: None }, 0),
            5 * MINUTE
        );
    }

    #[test]
    fn misses_retry_in_growing_steps_then_fall_back_to_the_interval() {
        let mut s = Schedule::new(Duration::from_secs(300), 1);
        let r = 0;
        let mut now = 1000;
        let mut at = s.next_poll(PollOutcome::Success { newest_ms: Some(r) }, now);
        let mut steps = Vec::new();
        for _ in 0..12 {
            now = at;
            at = s.next_poll(PollOutcome::Success { newest_ms: Some(r) }, now);
            steps.push(at - now);
        }
        assert!(steps[0] < steps[1] && steps[1] < steps[2], "{steps:?}");
        // After the retry window the wait is about an interval.
        assert!(steps.iter().any(|s| *s > 4 * MINUTE), "{steps:?}");
    }

    #[test]
    fn a_credential_failure_never_comes_back_sooner_than_an_interval() {
        // How much later is the gate's to say (tests in share/gate.rs): no second ladder here.
        let mut s = Schedule::new(Duration::from_secs(300), 1);
        for reason in [ErrorReason::AuthFailed, ErrorReason::LockedOut] {
            for _ in 0..5 {
                let next = s.next_poll(fail(reason), 0);
                assert!((5 * MINUTE..=5 * MINUTE + 30_000).contains(&next), "{next}");
            }
        }
    }

    #[test]
    fn an_edge_challenge_or_rate_limit_never_retries_sooner_than_an_interval() {
        for reason in [ErrorReason::EdgeChallenge, ErrorReason::EdgeRateLimited] {
            let mut s = Schedule::new(Duration::from_secs(300), 7);
            for retry_after in [
                None,
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(900)),
            ] {
                for _ in 0..20 {
                    let wait = s.next_poll(
                        PollOutcome::Failed {
                            reason,
                            retry_after,
                        },
                        0,
                    );
                    assert!(wait >= 5 * MINUTE, "{reason}: {wait} ms");
                    if let Some(asked) = retry_after {
                        assert!(wait >= i64::try_from(asked.as_millis()).unwrap());
                    }
                }
            }
        }
        // An origin error through the edge is transient: the first retry comes sooner.
        let mut s = Schedule::new(Duration::from_secs(300), 7);
        assert!(s.next_poll(fail(ErrorReason::EdgeError), 0) < 5 * MINUTE);
    }

    #[test]
    fn transient_errors_back_off_exponentially_up_to_the_interval_and_honour_retry_after() {
        let mut s = Schedule::new(Duration::from_secs(300), 1);
        let waits: Vec<i64> = (0..10)
            .map(|_| s.next_poll(fail(ErrorReason::ServerError), 0))
            .collect();
        assert!(waits[0] <= 6_000 && waits[0] >= 3_000, "{waits:?}");
        assert!(waits.iter().all(|w| *w <= 5 * MINUTE), "{waits:?}");
        assert!(waits[9] >= 150_000, "{waits:?}");
        let limited = s.next_poll(
            PollOutcome::Failed {
                reason: ErrorReason::RateLimited,
                retry_after: Some(Duration::from_secs(900)),
            },
            0,
        );
        assert_eq!(limited, 900_000);
        // Recovery resets the backoff.
        s.next_poll(PollOutcome::Success { newest_ms: Some(0) }, 1);
        assert!(s.next_poll(fail(ErrorReason::Timeout), 0) <= 6_000);
    }

    #[test]
    fn first_polls_are_staggered() {
        let interval = Duration::from_secs(300);
        assert_eq!(first_poll_delay(0, 1, interval), Duration::ZERO);
        assert_eq!(first_poll_delay(3, 10, interval), Duration::from_secs(3));
        assert_eq!(
            first_poll_delay(999, 1000, interval),
            Duration::from_millis(299_700)
        );
    }

    /// Simulates 2000 readings with uniform upload delays of 2–10% of the interval and checks
    /// the targets of the freshness benchmark, at two cadences (scale invariance).
    #[test]
    fn simulated_lag_and_reads_per_reading_meet_the_targets() {
        for interval_ms in [300_000_i64, 20_000] {
            let (p50, p95, reads_per_reading) = simulate(interval_ms, 2000);
            let p50 = p50 as f64 / interval_ms as f64;
            let p95 = p95 as f64 / interval_ms as f64;
            assert!(p50 <= 0.07, "p50 lag {p50} of the interval");
            assert!(p95 <= 0.15, "p95 lag {p95} of the interval");
            assert!(
                reads_per_reading <= 1.3,
                "{reads_per_reading} reads per reading"
            );
        }
    }

    fn simulate(interval_ms: i64, readings: usize) -> (i64, i64, f64) {
        let mut rng = fastrand::Rng::with_seed(7);
        let delays: Vec<i64> = (0..readings)
            .map(|_| interval_ms / 50 + (rng.f64() * (interval_ms as f64 * 0.08)) as i64)
            .collect();
        let mut s = Schedule::new(Duration::from_millis(interval_ms as u64), 3);
        let visible = |k: usize| k as i64 * interval_ms + delays[k];
        let newest_at = |now: i64| (0..readings).rev().find(|k| visible(*k) <= now);
        let mut now = visible(0);
        let mut reads = 0;
        let mut seen = None;
        let mut lags = Vec::new();
        while now < visible(readings - 1) {
            reads += 1;
            let newest = newest_at(now);
            if newest != seen {
                if let Some(k) = newest {
                    lags.push(now - visible(k));
                }
                seen = newest;
            }
            now = s.next_poll(
                PollOutcome::Success {
                    newest_ms: newest.map(|k| k as i64 * interval_ms),
                },
                now,
            );
        }
        lags.sort_unstable();
        let pct = |p: f64| lags[((lags.len() - 1) as f64 * p) as usize];
        (pct(0.5), pct(0.95), reads as f64 / lags.len() as f64)
    }
}
