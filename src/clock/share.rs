//! Share's clock, as this host can know it: one estimate per Share host (origin), from the
//! `Date` headers of its answers. The exporter still needs "Share's now" in a few places (the
//! time an answer arrived, to date the readings it carried; the cut-off for readings dated in
//! the future; how far back a read must reach; when the next reading is due), and takes it
//! from here, never from one answer alone and never from the host's wall clock.
//!
//! The estimate is kept against the host's **monotonic** clock: each answer says that Share's
//! time minus the monotonic time lies in `[date - answered, date + 1 s - sent]` (a `Date` has a
//! resolution of one second and is stamped somewhere between the moment the request left and
//! the moment its answer arrived). From that interval one sample is taken: the host wall
//! clock's own offset when it fits (so a right host clock shows a skew of exactly zero), else
//! the current estimate when it fits (so an estimate that agrees does not jitter), else the
//! interval's middle. The estimate is the median of the last [`SAMPLES`] samples: one odd
//! answer (a proxy, a middlebox, a bad edge node stamping a `Date` hours off) moves neither
//! Share's time nor the skew shown, and a lasting difference takes over once it is most of
//! the last answers. Because the samples are against the monotonic clock, a step of the host's
//! wall clock (NTP's first sync) moves no Share time at all; only the skew shown
//! (`dexcom_share_clock_skew_seconds`, Share's time minus the host's wall clock) follows it at
//! once. Until Share has answered with a `Date`, Share's time is the host's wall clock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::{Clock, Sleep, from_unix_ms, unix_ms};

/// The resolution of an HTTP `Date` header.
const DATE_RESOLUTION_MS: i64 = 1000;

/// How many answers the estimate is the median of: an odd answer is outvoted by the other
/// fourteen, and a real change (the host's clock stepped) is followed after eight.
pub const SAMPLES: usize = 15;

/// Share's clock, as one Share host's answers show it.
#[derive(Debug)]
pub struct ShareClock {
    host: Arc<dyn Clock>,
    origin: String,
    /// Share's time minus the host's monotonic time, in ms, one per answer, oldest first.
    samples: Mutex<VecDeque<i64>>,
}

impl ShareClock {
    /// The clock of the Share host at `origin` (`https://share2.dexcom.com`), on `host`; the
    /// host's wall clock until the first answer.
    pub fn new(host: Arc<dyn Clock>, origin: impl Into<String>) -> Arc<Self> {
        Arc::new(ShareClock {
            host,
            origin: origin.into(),
            samples: Mutex::new(VecDeque::with_capacity(SAMPLES + 1)),
        })
    }

    /// The Share host this clock is of.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Takes one answer into account: Share stamped `date` on an answer to a request sent at
    /// monotonic time `sent` and answered at `answered`.
    pub fn observe(&self, date: SystemTime, sent: Duration, answered: Duration) {
        let date_ms = unix_ms(date);
        let (sent_ms, answered_ms) = (duration_ms(sent), duration_ms(answered));
        let low = date_ms.saturating_sub(answered_ms.max(sent_ms));
        let high = date_ms
            .saturating_add(DATE_RESOLUTION_MS - 1)
            .saturating_sub(sent_ms.min(answered_ms))
            .max(low);
        let host_offset = self.host_offset_ms();
        let Ok(mut samples) = self.samples.lock() else {
            return;
        };
        let sample = [Some(host_offset), median(&samples)]
            .into_iter()
            .flatten()
            .find(|candidate| (low..=high).contains(candidate))
            .unwrap_or(low + (high - low) / 2);
        samples.push_back(sample);
        while samples.len() > SAMPLES {
            samples.pop_front();
        }
    }

    /// Share's time minus the host's monotonic time, once Share has answered.
    fn estimate(&self) -> Option<i64> {
        self.samples.lock().ok().and_then(|s| median(&s))
    }

    /// The host's wall clock minus its monotonic time, now.
    fn host_offset_ms(&self) -> i64 {
        self.host.now_ms().saturating_sub(self.host.monotonic_ms())
    }

    /// Share's time, in Unix ms, at the host's monotonic time `at` (the host's wall clock then
    /// until Share has answered).
    pub fn share_ms_at(&self, at: Duration) -> i64 {
        let offset = self.estimate().unwrap_or_else(|| self.host_offset_ms());
        duration_ms(at).saturating_add(offset)
    }

    /// A time of the host's wall clock (`host_ms`, e.g. the login gate's) in Share's time.
    pub fn host_to_share_ms(&self, host_ms: i64) -> i64 {
        let shift = self
            .estimate()
            .map_or(0, |e| e.saturating_sub(self.host_offset_ms()));
        host_ms.saturating_add(shift)
    }

    /// Share's clock minus the host's wall clock (positive: the host is behind), once Share
    /// has answered with a `Date`.
    pub fn offset(&self) -> Option<SignedDuration> {
        self.estimate()
            .map(|e| SignedDuration::from_ms(e.saturating_sub(self.host_offset_ms())))
    }
}

impl Clock for ShareClock {
    /// Share's time now, as estimated.
    fn now(&self) -> SystemTime {
        from_unix_ms(self.share_ms_at(self.host.monotonic()))
    }

    fn monotonic(&self) -> Duration {
        self.host.monotonic()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.host.sleep(duration)
    }
}

/// The Share clocks of a process, one per Share host: accounts on one host share its clock
/// (and so its estimate); two hosts never move each other's.
#[derive(Debug)]
pub struct ShareClocks {
    host: Arc<dyn Clock>,
    clocks: Mutex<HashMap<String, Arc<ShareClock>>>,
}

impl ShareClocks {
    /// No clock yet, on `host`.
    pub fn new(host: Arc<dyn Clock>) -> Self {
        ShareClocks {
            host,
            clocks: Mutex::default(),
        }
    }

    /// The clock of the Share host serving `url`.
    pub fn for_url(&self, url: &reqwest::Url) -> Arc<ShareClock> {
        let origin = url.origin().ascii_serialization();
        let Ok(mut clocks) = self.clocks.lock() else {
            return ShareClock::new(self.host.clone(), origin);
        };
        clocks
            .entry(origin.clone())
            .or_insert_with(|| ShareClock::new(self.host.clone(), origin))
            .clone()
    }
}

/// The median of `samples` (the upper one of an even count: always a sample that was seen).
fn median(samples: &VecDeque<i64>) -> Option<i64> {
    let mut sorted: Vec<i64> = samples.iter().copied().collect();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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

    /// One exchange of 120 ms with a Share whose clock reads `truth(host wall ms)`, stamped
    /// 60 ms before the answer arrives, its `Date` truncated to the second.
    fn exchange(share: &ShareClock, host: &ManualClock, truth: &dyn Fn(i64) -> i64) {
        let sent = host.monotonic();
        host.advance(Duration::from_millis(120));
        let answered = host.monotonic();
        let stamped = truth(unix_ms(host.now()) - 60);
        share.observe(at(stamped.div_euclid(1000) * 1000), sent, answered);
    }

    #[test]
    fn a_right_clock_shows_exactly_zero() {
        let host = ManualClock::starting_at(at(T + 640));
        let share = ShareClock::new(host.clone(), "https://share.example");
        assert_eq!(share.offset(), None, "nothing measured yet");
        for step in 0..50 {
            exchange(&share, &host, &|ms| ms);
            host.advance(Duration::from_millis(37));
            assert_eq!(share.offset().map(|o| o.as_ms()), Some(0), "step {step}");
            assert_eq!(unix_ms(share.now()), unix_ms(host.now()));
        }
    }

    #[test]
    fn one_odd_answer_moves_nothing_and_a_lasting_difference_takes_over() {
        let host = ManualClock::starting_at(at(T));
        let share = ShareClock::new(host.clone(), "https://share.example");
        for _ in 0..10 {
            exchange(&share, &host, &|ms| ms);
        }
        // One answer stamped two hours off, either way: nothing moves.
        for odd in [7_200_000, -7_200_000] {
            exchange(&share, &host, &move |ms| ms + odd);
            assert_eq!(share.offset().map(|o| o.as_ms()), Some(0));
            assert_eq!(unix_ms(share.now()), unix_ms(host.now()));
        }
        // Share's clock really an hour ahead from now on: followed once most answers say so.
        let mut answers = 0;
        while share.offset().is_none_or(|o| o.as_ms() < 3_599_000) {
            exchange(&share, &host, &|ms| ms + 3_600_000);
            answers += 1;
            assert!(answers <= SAMPLES, "never followed");
        }
        assert!(answers <= SAMPLES / 2 + 1, "{answers} answers");
        let error = unix_ms(share.now()) - (unix_ms(host.now()) + 3_600_000);
        assert!(error.abs() <= 1000, "off by {error} ms");
    }

    #[test]
    fn a_step_of_the_host_clock_moves_no_share_time_and_shows_in_the_skew_at_once() {
        let host = ManualClock::starting_at(at(T));
        let share = ShareClock::new(host.clone(), "https://share.example");
        for _ in 0..5 {
            exchange(&share, &host, &|ms| ms);
        }
        let before = unix_ms(share.now());
        // The host's clock is stepped a day back; Share's is not.
        host.set_ms(unix_ms(host.now()) - 86_400_000);
        assert_eq!(unix_ms(share.now()), before);
        assert_eq!(share.offset().map(|o| o.as_ms()), Some(86_400_000));
        // Its answers agree with the estimate: still nothing moves.
        for _ in 0..20 {
            exchange(&share, &host, &|ms| ms + 86_400_000);
        }
        let error = unix_ms(share.now()) - (unix_ms(host.now()) + 86_400_000);
        assert!(error.abs() <= 1000, "off by {error} ms");
        let gate_time = unix_ms(host.now()) + 60_000;
        assert!((share.host_to_share_ms(gate_time) - (gate_time + 86_400_000)).abs() <= 1000);
    }

    #[test]
    fn hosts_days_ahead_are_corrected_at_the_first_answer() {
        let host = ManualClock::starting_at(at(T + 3 * 86_400_000));
        let share = ShareClock::new(host.clone(), "https://share.example");
        exchange(&share, &host, &|ms| ms - 3 * 86_400_000);
        let offset = share.offset().unwrap();
        assert!(
            (offset.as_secs_f64() + 3.0 * 86_400.0).abs() <= 1.0,
            "{offset:?}"
        );
        assert!((unix_ms(share.now()) - (T + 120)).abs() <= 1000);
    }

    #[test]
    fn each_share_host_has_its_own_clock() {
        let host = ManualClock::starting_at(at(T));
        let clocks = ShareClocks::new(host.clone());
        let a = clocks.for_url(
            &"https://share2.dexcom.com/ShareWebServices/Services/"
                .parse()
                .unwrap(),
        );
        let a_again = clocks.for_url(&"https://share2.dexcom.com/other/".parse().unwrap());
        let b = clocks.for_url(
            &"http://127.0.0.1:8080/ShareWebServices/Services/"
                .parse()
                .unwrap(),
        );
        assert!(Arc::ptr_eq(&a, &a_again));
        assert!(!Arc::ptr_eq(&a, &b));
        for _ in 0..3 {
            exchange(&b, &host, &|ms| ms + 7_200_000);
        }
        assert_eq!(a.offset(), None);
        assert_eq!(b.origin(), "http://127.0.0.1:8080");
    }
}
