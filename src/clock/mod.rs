//! The one time source: what time it is and how to wait, behind one trait, so that tests and
//! the fault soak can stop time or run it faster than the wall clock and every part of the
//! exporter (schedule, ages, withdrawal, login limits) follows the same time.
//!
//! Three clocks: [`SystemClock`] (production: the OS clock and tokio's timer), [`ManualClock`]
//! (stands still until a test moves it; sleepers wake when it passes their deadline, and a test
//! can see who sleeps until when) and [`ScaledClock`] (runs a fixed factor faster than the wall
//! clock, for soaks and benchmarks that want hours of simulated time with real HTTP in between).
//! On top of any of them, `ShareClock` (`share.rs`) corrects the host's time to Share's, as
//! Share's `Date` headers show it: the time every judgement of the exporter is made in.
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

pub(crate) use share::{ShareClock, SignedDuration};

/// A wait handed out by a [`Clock`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of the current wall-clock time and of waits measured in that time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Completes once `duration` of this clock's time has passed.
    fn sleep(&self, duration: Duration) -> Sleep;

    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64 {
        unix_ms(self.now())
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

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that stands still until it is moved; sleepers wake when it reaches their deadline.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: watch::Sender<i64>,
    sleepers: Arc<Mutex<Vec<(u64, i64)>>>,
    next_id: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn starting_at(start: SystemTime) -> Arc<Self> {
        Arc::new(ManualClock {
            now_ms: watch::Sender::new(unix_ms(start)),
            sleepers: Arc::default(),
            next_id: AtomicU64::new(0),
        })
    }

    /// A clock standing at the current system time.
    pub fn now_system() -> Arc<Self> {
        Self::starting_at(SystemTime::now())
    }

    /// Moves the clock to `ms` since the epoch (backwards too: a clock can be corrected).
    pub fn set_ms(&self, ms: i64) {
        self.now_ms.send_replace(ms);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now_ms.send_modify(|now| *now = now.saturating_add(by));
    }

    /// The deadlines of the waits pending now, earliest first, so a test can tell that a task
    /// has gone back to sleep and until when.
    pub fn sleepers(&self) -> Vec<SystemTime> {
        let mut deadlines: Vec<i64> = self
            .sleepers
            .lock()
            .map(|s| s.iter().map(|(_, at)| *at).collect())
            .unwrap_or_default();
        deadlines.sort_unstable();
        deadlines.into_iter().map(from_unix_ms).collect()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        from_unix_ms(*self.now_ms.borrow())
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let wait = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let deadline = self.now_ms.borrow().saturating_add(wait);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut sleepers) = self.sleepers.lock() {
            sleepers.push((id, deadline));
        }
        let registration = Registration {
            sleepers: self.sleepers.clone(),
            id,
        };
        let mut now = self.now_ms.subscribe();
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
        self.origin + self.started.elapsed().mul_f64(self.factor)
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
