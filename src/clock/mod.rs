//! The one time source: what time it is and how to wait, behind one trait, so that tests and
//! the fault soak can stop time, step the host's clock or run it faster than the wall clock and
//! every part of the exporter (schedule, ages, withdrawal, login limits) follows.
//!
//! Every clock gives two readings: the host's **wall clock** ([`Clock::now`], which a person,
//! NTP or a boot without a real-time clock can step either way) and a **monotonic** one
//! ([`Clock::monotonic`], which only ever runs forward at the rate of real time). Spans the
//! exporter measures inside one process (a reading's age since its answer arrived, the wait to
//! the next poll, the one-login-per-interval limit) and every [`Clock::sleep`] use the
//! monotonic reading, so a step of the wall clock moves none of them. The wall clock is for what
//! must outlive the process (the login gate's saved times) and what is shown as a date.
//!
//! Three clocks: [`SystemClock`] (production: the OS clock and tokio's timer), [`ManualClock`]
//! (stands still until a test moves it; sleepers wake when its monotonic time passes their
//! deadline, a test can step its wall clock alone, and see who sleeps until when) and
//! [`ScaledClock`] (runs a fixed factor faster than the wall clock, for soaks and benchmarks
//! that want hours of simulated time with real HTTP in between). `ShareClock` (`share.rs`) estimates Share's time, one per Share host, from the `Date`
//! of its answers, robustly: one odd answer moves nothing.
//!
//! Only waits that are part of the exporter's *behaviour* go through the clock (when to poll
//! next). Network deadlines (request and header timeouts, shutdown drain) stay on tokio's timer:
//! they protect against real sockets, whose speed no clock can change.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

mod share;

pub(crate) use share::{ShareClock, ShareClocks, SignedDuration};

/// A wait handed out by a [`Clock`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of the host's wall-clock time, of a monotonic time and of waits measured in the
/// monotonic time.
pub trait Clock: Send + Sync + 'static {
    /// The host's wall-clock time (may be stepped either way).
    fn now(&self) -> SystemTime;

    /// Time since an arbitrary origin fixed for the life of the clock; never steps, never runs
    /// backwards, whatever happens to the wall clock.
    fn monotonic(&self) -> Duration;

    /// Completes once `duration` of this clock's monotonic time has passed.
    fn sleep(&self, duration: Duration) -> Sleep;

    /// The current wall-clock time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64 {
        unix_ms(self.now())
    }

    /// [`Clock::monotonic`] in whole milliseconds.
    fn monotonic_ms(&self) -> i64 {
        i64::try_from(self.monotonic().as_millis()).unwrap_or(i64::MAX)
    }
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// The operating system's clock and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// The origin of [`SystemClock::monotonic`]: the first time any code asked for it. On tokio's
/// clock, so tests that pause tokio's time see it stand still with their sleeps.
static MONOTONIC_ORIGIN: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Duration {
        MONOTONIC_ORIGIN
            .get_or_init(tokio::time::Instant::now)
            .elapsed()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that stands still until it is moved; sleepers wake when its monotonic time reaches
/// their deadline. [`ManualClock::advance`] moves both readings (time passes);
/// [`ManualClock::set_ms`] steps the wall clock alone (a person or NTP setting it).
#[derive(Debug)]
pub struct ManualClock {
    /// The monotonic time, in ms since the clock was made.
    mono_ms: watch::Sender<i64>,
    /// The wall clock minus the monotonic time, in ms.
    wall_offset_ms: std::sync::atomic::AtomicI64,
    /// Pending waits: id and monotonic deadline.
    sleepers: Arc<Mutex<Vec<(u64, i64)>>>,
    next_id: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn starting_at(start: SystemTime) -> Arc<Self> {
        Arc::new(ManualClock {
            mono_ms: watch::Sender::new(0),
            wall_offset_ms: std::sync::atomic::AtomicI64::new(unix_ms(start)),
            sleepers: Arc::default(),
            next_id: AtomicU64::new(0),
        })
    }

    /// A clock standing at the current system time.
    pub fn now_system() -> Arc<Self> {
        Self::starting_at(SystemTime::now())
    }

    /// Steps the wall clock to `ms` since the epoch (backwards too: a clock can be corrected).
    /// No time passes: the monotonic time and every sleeper stay where they are.
    pub fn set_ms(&self, ms: i64) {
        let mono = *self.mono_ms.borrow();
        self.wall_offset_ms
            .store(ms.saturating_sub(mono), Ordering::Relaxed);
    }

    /// Lets `by` pass: both the wall clock and the monotonic time move forward.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.mono_ms
            .send_modify(|now| *now = now.saturating_add(by));
    }

    /// The deadlines of the waits pending now, earliest first, on the wall clock as it stands,
    /// so a test can tell that a task has gone back to sleep and until when.
    pub fn sleepers(&self) -> Vec<SystemTime> {
        let mut deadlines: Vec<i64> = self
            .sleepers
            .lock()
            .map(|s| s.iter().map(|(_, at)| *at).collect())
            .unwrap_or_default();
        deadlines.sort_unstable();
        let offset = self.wall_offset_ms.load(Ordering::Relaxed);
        deadlines
            .into_iter()
            .map(|at| from_unix_ms(at.saturating_add(offset)))
            .collect()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        let mono = *self.mono_ms.borrow();
        from_unix_ms(mono.saturating_add(self.wall_offset_ms.load(Ordering::Relaxed)))
    }

    fn monotonic(&self) -> Duration {
        Duration::from_millis(u64::try_from(*self.mono_ms.borrow()).unwrap_or(0))
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let wait = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let deadline = self.mono_ms.borrow().saturating_add(wait);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut sleepers) = self.sleepers.lock() {
            sleepers.push((id, deadline));
        }
        let registration = Registration {
            sleepers: self.sleepers.clone(),
            id,
        };
        let mut now = self.mono_ms.subscribe();
        Box::pin(async move {
            let _registration = registration;
            // Err: the clock is gone, so no time will ever pass.
            if now.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// A pending wait on a [`ManualClock`], listed until it ends or is dropped (a cancelled task).
struct Registration {
    sleepers: Arc<Mutex<Vec<(u64, i64)>>>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut sleepers) = self.sleepers.lock() {
            sleepers.retain(|(id, _)| *id != self.id);
        }
    }
}

/// A clock running `factor` times faster than the wall clock from the moment it is made, for
/// soaks and benchmarks: a simulated day passes in 86 400 / `factor` seconds, with real HTTP
/// requests taking their real (so, scaled up, longer) time in between.
#[derive(Debug)]
pub struct ScaledClock {
    origin: SystemTime,
    started: tokio::time::Instant,
    factor: f64,
}

impl ScaledClock {
    /// Starts at `origin`, running `factor` (≥ 1) times faster than real time.
    pub fn new(origin: SystemTime, factor: f64) -> Self {
        ScaledClock {
            origin,
            started: tokio::time::Instant::now(),
            factor: factor.max(1.0),
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> SystemTime {
        self.origin + self.monotonic()
    }

    fn monotonic(&self) -> Duration {
        self.started.elapsed().mul_f64(self.factor)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration.div_f64(self.factor)))
    }
}

/// Milliseconds since the Unix epoch (negative before it).
pub fn unix_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The time `ms` milliseconds after the Unix epoch, saturating at the ends of `SystemTime`.
pub fn from_unix_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(magnitude).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(magnitude).unwrap_or(UNIX_EPOCH)
    }
}

/// `ms` (Unix milliseconds) as the person at the terminal reads a time: the machine's local
/// time with its zone (`TZ`, else `/etc/localtime`), e.g. `2026-12-07 22:41:07 CET (+01:00)`;
/// UTC when the machine names no zone.
pub fn local_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| humantime::format_rfc3339_seconds(from_unix_ms(ms)).to_string(),
        |t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S %Z (%:z)")
                .to_string()
        },
    )
}
