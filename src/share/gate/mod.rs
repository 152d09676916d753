//! The login gate: every request that carries the password asks it first, and tells it how the
//! request ended. Dexcom locks an account after a handful of failed logins, and a locked account
//! also silences the family's Dexcom Follow app, so this is the one place that decides when the
//! password may leave the process.
//!
//! Two regimes:
//! - **Not confirmed** (no login with this password has succeeded yet, or Share has since
//!   rejected it): *every* failed password-bearing request counts, whatever the failure (a
//!   credential code, a timeout after sending, a 5xx, an unknown code, a 401/403 from a web
//!   firewall, an unparsable body), because Share may have counted it. The next attempt comes at
//!   least [`STRICT_WAIT`] later (growing with each failure), at least [`LOCKOUT_WAIT`] after a
//!   lockout code, and at most [`MAX_FAILURES_PER_DAY`] failures fit in any rolling 24 hours.
//!   Credential rejections and lockouts share one ladder.
//! - **Confirmed**: an ambiguous failure is a Share problem, not a password problem, and backs
//!   off like any transient error; a credential code returns to the strict regime.
//!
//! Whatever the regime and whatever passwords they carried, at most
//! [`MAX_CONSECUTIVE_FAILURES`] failed password-bearing requests in a row reach Share: after
//! that, nothing more until 24 hours have passed since the first of them, or a person resets
//! the count (`dexcom_exporter check --reset-gate`). Dexcom (and the project's simulator) locks
//! an account after about five failures in a row, so the exporter stops one short of it, also
//! when someone tries one new password after another.
//!
//! Logins of a confirmed password (re-logins after session errors) are limited too: at most one
//! per reading interval and [`MAX_LOGINS_PER_HOUR`] per hour, so a session that Share drops
//! right after every login costs at most one password a reading; after
//! [`AMBIGUOUS_BEFORE_BACKOFF`] ambiguous failures in a row the wait grows from
//! [`AMBIGUOUS_BACKOFF`] (doubling, up to [`MAX_AMBIGUOUS_WAIT`]). Those are a Share problem,
//! not a password problem, and are not among the failures in a row; a credential code is.
//!
//! A login whose requests never connected sent no password: it counts against nothing and is
//! given back ([`LoginGate::release`]), so an exporter that starts before the network is up
//! logs in as soon as it is, not a reading interval later.
//!
//! A password that left the process counts: before each password-bearing request the gate
//! notes it as in flight, and its owner saves that (with `fsync`) before the request is sent.
//! A run that ends before the answer (killed, OOM-killed, crashed) leaves the note behind, and
//! the next run counts it as a failure of an unconfirmed password, or as an ambiguous one of a
//! confirmed password (a second such one in a row counts as a failure too), so a restart loop
//! sends a wrong password at most once per wait. The day's failures belong to the Dexcom
//! account, not to one password: a changed password is tried at once, but within the same
//! [`MAX_FAILURES_PER_DAY`]. What is read back from the state file is clamped to what this
//! ladder can produce, so a file written under a wrong clock cannot hold logins longer.
//!
//! The gate is pure: time comes in as milliseconds ([`GateNow`]) and the state ([`GateState`])
//! is plain data, persisted between runs by whoever holds a [`GateStore`]. Which clock each
//! time is in: [`GateNow`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

mod now;
pub use now::GateNow;

/// Least wait after a failed password-bearing request while the password is not confirmed.
pub const STRICT_WAIT: Duration = Duration::from_secs(29 * 60);
/// Least wait after Share said the account is locked.
pub const LOCKOUT_WAIT: Duration = Duration::from_secs(60 * 60);
/// Longest wait the ladder grows to (the 24-hour limit can still wait longer).
pub const MAX_WAIT: Duration = Duration::from_secs(6 * 60 * 60);
/// Failed password-bearing requests allowed in any rolling 24 hours while not confirmed.
pub const MAX_FAILURES_PER_DAY: usize = 8;
/// Logins (password-bearing request sequences) allowed in any rolling hour.
pub const MAX_LOGINS_PER_HOUR: usize = 12;
/// Failed password-bearing requests in a row (whatever passwords they carried) after which
/// nothing is sent until a day has passed since the first of them: one short of Share's lockout.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 4;
/// How long a run of [`MAX_CONSECUTIVE_FAILURES`] holds the password, from its first failure.
pub const CONSECUTIVE_HOLD: Duration = Duration::from_secs(24 * 60 * 60);
/// Ambiguous failures in a row of a confirmed password's logins before their wait grows.
pub const AMBIGUOUS_BEFORE_BACKOFF: u32 = 3;
/// The first grown wait after [`AMBIGUOUS_BEFORE_BACKOFF`] ambiguous failures in a row.
pub const AMBIGUOUS_BACKOFF: Duration = Duration::from_secs(10 * 60);
/// The longest wait between a confirmed password's ambiguous re-logins.
pub const MAX_AMBIGUOUS_WAIT: Duration = Duration::from_secs(60 * 60);

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const HOUR_MS: i64 = 60 * 60 * 1000;

/// How a password-bearing request ended, as far as the account's lockout counter is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Share accepted the password (an account or session ID came back).
    Accepted,
    /// Share rejected the credentials.
    Rejected,
    /// Share said the account is locked.
    LockedOut,
    /// The request was sent but its answer says nothing certain (timeout, 5xx, 401/403, an
    /// unknown code, an unusable body): Share may have counted it as a failed login.
    Ambiguous,
    /// The request never left (no connection): the password was not sent.
    NotSent,
}

/// What the gate remembers; persisted so a restart loop cannot send a password per restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateState {
    /// A one-way, salted, slow fingerprint (bcrypt) of the password this state is about, so a
    /// changed password starts afresh. Never the password.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Whether this password has been accepted by Share since it last rejected it.
    #[serde(default)]
    pub confirmed: bool,
    /// Failed password-bearing requests in the last 24 hours, Unix ms, oldest first.
    #[serde(default)]
    pub failures_ms: Vec<i64>,
    /// Failures since the last success, for the growing wait.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// No password-bearing request before this Unix ms.
    #[serde(default)]
    pub not_before_ms: i64,
    /// Logins started in the last hour, Unix ms, oldest first.
    #[serde(default)]
    pub logins_ms: Vec<i64>,
    /// What the last failed password-bearing request was, since the last success: why the
    /// gate holds the password, also after a restart.
    #[serde(default)]
    pub last_failure: Option<FailureKind>,
    /// A password-bearing request was about to be sent at this Unix ms and no answer was
    /// recorded yet. Found at start, the run that sent it ended mid-login.
    #[serde(default)]
    pub in_flight_ms: Option<i64>,
    /// Runs in a row that ended mid-login with a confirmed password.
    #[serde(default)]
    pub unfinished_in_a_row: u32,
    /// Failed password-bearing requests in a row, whatever passwords they carried (a changed
    /// password does not reset it; a success or `check --reset-gate` does).
    #[serde(default)]
    pub failures_in_a_row: u32,
    /// When the first of those failures was, Unix ms: the run holds until a day after it.
    #[serde(default)]
    pub first_failure_in_a_row_ms: Option<i64>,
    /// Ambiguous failures in a row of a confirmed password's logins (not held against the
    /// password, but their wait grows).
    #[serde(default)]
    pub ambiguous_in_a_row: u32,
}

/// What a failed password-bearing request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Share rejected the credentials.
    Rejected,
    /// Share said the account is locked.
    LockedOut,
    /// The answer said nothing certain (timeout, 5xx, an unknown code).
    Ambiguous,
    /// The run that sent it ended before the answer (killed mid-login).
    Unfinished,
}

/// Why the gate holds the password back, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// The earliest Unix ms at which a login may start.
    pub until_ms: i64,
    /// The failure the wait follows, when the wait is the strict regime's; `None` for the
    /// login limits of a confirmed password.
    pub after: Option<FailureKind>,
    /// Failed password-bearing requests in the last 24 hours.
    pub failures_today: usize,
    /// Failed password-bearing requests in a row.
    pub failures_in_a_row: u32,
    /// Set when the wait is because the gate's memory cannot be kept (fail closed), not
    /// because of a failure.
    pub fault: Option<StoreFaultKind>,
}

impl Hold {
    /// Whether this hold is the cap on failures in a row (only a day or a person ends it).
    pub fn is_cap(&self) -> bool {
        self.fault.is_none() && self.failures_in_a_row >= MAX_CONSECUTIVE_FAILURES
    }
}

/// Why the gate's memory cannot be kept. Either way the password stays in the process: an
/// attempt that cannot be counted, or a count that cannot be read, must not reach Share.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreFault {
    /// The state file exists but cannot be read or parsed (permissions, a newer format, a
    /// damaged disk): reading it as empty would forget the failures it counts.
    #[error("the login gate's state file {path} cannot be read ({detail})")]
    Unreadable {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The attempt cannot be recorded durably (write, `fsync` or rename failed: a full or
    /// read-only disk, an I/O error, a directory the process may not write).
    #[error("the login gate's state file {path} cannot be written ({detail})")]
    Unwritable {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// Share resolved this login to an account that another entry of this process logs in
    /// as already (an e-mail and a username of one account): two would double its failures.
    #[error(
        "Share says this is the same Dexcom account as {other:?} ({identity}): list it once; this entry stops logging in"
    )]
    Duplicate {
        /// The other entry's account label.
        other: String,
        /// The identity they share.
        identity: String,
    },
}

impl StoreFault {
    /// Which of the two it is.
    pub fn kind(&self) -> StoreFaultKind {
        match self {
            StoreFault::Unreadable { .. } => StoreFaultKind::Unreadable,
            StoreFault::Unwritable { .. } => StoreFaultKind::Unwritable,
            StoreFault::Duplicate { .. } => StoreFaultKind::Duplicate,
        }
    }
}

/// [`StoreFault`] without its detail, as a hold carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFaultKind {
    /// The state file cannot be read.
    Unreadable,
    /// The state file cannot be written.
    Unwritable,
    /// Another entry logs in as the same Dexcom account.
    Duplicate,
}

/// Where a gate's state is kept between runs.
pub trait GateStore: Send + Sync + std::fmt::Debug {
    /// The saved state (`None`: none was ever saved).
    ///
    /// # Errors
    /// [`StoreFault::Unreadable`] when a saved state exists but cannot be read or parsed.
    fn load(&self) -> Result<Option<GateState>, StoreFault>;
    /// Saves the state durably (written, `fsync`ed, renamed into place).
    ///
    /// # Errors
    /// [`StoreFault`] when it cannot: the caller must not send the password.
    fn save(&self, state: &GateState) -> Result<(), StoreFault>;
    /// Share resolved the login to the account ID `id`: from now on the gate is that ID's,
    /// shared with every spelling that resolves to it. Returns the state to go on with:
    /// `state` with what the ID's gate already counted.
    ///
    /// # Errors
    /// [`StoreFault`] when that cannot be kept, or another entry is that account.
    fn resolved(&self, _id: uuid::Uuid, state: &GateState) -> Result<GateState, StoreFault> {
        Ok(state.clone())
    }
}

/// Why the gate is closed, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateClosed {
    /// The earliest Unix ms at which a login may start.
    pub until_ms: i64,
}

/// Proof that the gate allowed a login to start; the requests of that login need it.
#[derive(Debug)]
pub struct LoginPermit {
    opened_ms: i64,
    /// When it was opened on the monotonic clock.
    opened_mono_ms: i64,
    /// The per-interval limit's previous value, restored when the login sends nothing.
    previous_login_ms: Option<i64>,
}

/// The login gate of one account.
#[derive(Debug, Clone)]
pub struct LoginGate {
    state: GateState,
    interval_ms: i64,
    /// When this process last started a login (monotonic): the one-per-interval limit. Not
    /// persisted, so a restart reads at once (the hourly limit is persisted and still applies).
    last_login_ms: Option<i64>,
}

impl LoginGate {
    /// A gate for a sensor cadence of `interval`, starting from `state` as it is.
    pub fn new(state: GateState, interval: Duration) -> Self {
        LoginGate {
            state,
            interval_ms: i64::try_from(interval.as_millis()).unwrap_or(i64::MAX),
            last_login_ms: None,
        }
    }

    /// A gate starting from `state` as an earlier run saved it, read at `now_ms`: times are
    /// clamped to what the ladder can produce (a file written under a wrong clock cannot hold
    /// logins longer than [`MAX_WAIT`]), and a request that run left in flight is counted.
    pub fn restore(mut state: GateState, interval: Duration, now_ms: i64) -> Self {
        let max_wait_ms = i64::try_from(MAX_WAIT.as_millis()).unwrap_or(i64::MAX);
        state.not_before_ms = state.not_before_ms.min(now_ms.saturating_add(max_wait_ms));
        state.first_failure_in_a_row_ms = state.first_failure_in_a_row_ms.map(|t| t.min(now_ms));
        for times in [&mut state.failures_ms, &mut state.logins_ms] {
            for t in times.iter_mut() {
                *t = (*t).min(now_ms);
            }
            times.sort_unstable();
        }
        let mut gate = LoginGate::new(state, interval);
        if let Some(sent_ms) = gate.state.in_flight_ms.take() {
            gate.count_unfinished(sent_ms.min(now_ms));
        }
        gate
    }

    /// Counts a request a run sent and never saw answered.
    fn count_unfinished(&mut self, sent_ms: i64) {
        self.state.unfinished_in_a_row = self.state.unfinished_in_a_row.saturating_add(1);
        if self.state.confirmed && self.state.unfinished_in_a_row < 2 {
            // Ambiguous for a confirmed password; still no second password within the
            // interval (that limit is otherwise not kept across runs).
            self.state.not_before_ms = self
                .state
                .not_before_ms
                .max(sent_ms.saturating_add(self.interval_ms));
            return;
        }
        self.state.confirmed = false;
        self.state.last_failure = Some(FailureKind::Unfinished);
        self.fail(sent_ms, STRICT_WAIT);
    }

    /// A state for a different password of the same Dexcom account: tried at once, but the
    /// day's failures and the hour's logins still count (they are the account's).
    pub fn for_new_password(&self) -> GateState {
        // A lockout is the account's, whatever password comes next: its wait stays.
        let locked = self.state.last_failure == Some(FailureKind::LockedOut);
        GateState {
            failures_ms: self.state.failures_ms.clone(),
            logins_ms: self.state.logins_ms.clone(),
            failures_in_a_row: self.state.failures_in_a_row,
            first_failure_in_a_row_ms: self.state.first_failure_in_a_row_ms,
            not_before_ms: if locked { self.state.not_before_ms } else { 0 },
            last_failure: self.state.last_failure.filter(|_| locked),
            ..GateState::default()
        }
    }

    /// Forgets the failures in a row and the waits they set (`check --reset-gate`, a person's
    /// decision): the next login may go at once, and the day's count starts again.
    pub fn reset_failures(&mut self) {
        self.state.failures_in_a_row = 0;
        self.state.first_failure_in_a_row_ms = None;
        self.state.consecutive_failures = 0;
        self.state.ambiguous_in_a_row = 0;
        self.state.not_before_ms = 0;
        self.state.failures_ms.clear();
        self.state.in_flight_ms = None;
        self.state.unfinished_in_a_row = 0;
    }

    /// Notes that a password-bearing request is about to be sent at `now_ms`; the caller
    /// saves the state before sending it.
    pub fn begin_request(&mut self, _permit: &LoginPermit, now_ms: i64) {
        self.state.in_flight_ms = Some(now_ms);
    }

    /// Goes on from `state` (the same identity's memory, merged from another spelling's).
    pub fn replace_state(&mut self, state: GateState) {
        self.state = state;
    }

    /// Takes back the note of a request that will not be sent after all (its note could not
    /// be saved, so the password stays in the process).
    pub fn abandon_request(&mut self) {
        self.state.in_flight_ms = None;
    }

    /// Why and until when (wall clock) the gate holds the password at `now`; `None` when a
    /// login may start.
    pub fn hold(&self, now: impl Into<GateNow>) -> Option<Hold> {
        let now = now.into();
        let until_ms = self.next_allowed_ms(now);
        (until_ms > now.wall_ms).then(|| Hold {
            until_ms,
            after: self.state.last_failure.filter(|_| !self.state.confirmed),
            failures_today: in_window(&self.state.failures_ms, now.wall_ms, DAY_MS).len(),
            failures_in_a_row: self.state.failures_in_a_row,
            fault: None,
        })
    }

    /// The sensor cadence the per-interval login limit uses.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.interval_ms).unwrap_or(0))
    }

    /// The state, to persist.
    pub fn state(&self) -> &GateState {
        &self.state
    }

    /// Sets the fingerprint of the password this state is about.
    pub fn set_fingerprint(&mut self, fingerprint: String) {
        self.state.fingerprint = Some(fingerprint);
    }

    /// Whether the password has been confirmed by a successful login.
    pub fn confirmed(&self) -> bool {
        self.state.confirmed
    }

    /// The earliest Unix ms (wall clock) at which a login may start (earlier: it may now).
    pub fn next_allowed_ms(&self, now: impl Into<GateNow>) -> i64 {
        let now = now.into();
        let now_ms = now.wall_ms;
        let mut at = self.state.not_before_ms;
        if self.state.failures_in_a_row >= MAX_CONSECUTIVE_FAILURES {
            // Saved times are clamped to `now_ms` on restore, so a wrong clock cannot make
            // this longer than a day.
            let first = self.state.first_failure_in_a_row_ms.unwrap_or(now_ms);
            at = at.max(first.saturating_add(ms(CONSECUTIVE_HOLD)));
        }
        if !self.state.confirmed {
            let recent = in_window(&self.state.failures_ms, now_ms, DAY_MS);
            if recent.len() >= MAX_FAILURES_PER_DAY {
                let oldest_that_counts = recent[recent.len() - MAX_FAILURES_PER_DAY];
                at = at.max(oldest_that_counts.saturating_add(DAY_MS));
            }
        }
        if let Some(last) = self.last_login_ms {
            // Monotonic: the interval left, then placed on the wall clock.
            let left = last.saturating_add(self.interval_ms) - now.mono_ms;
            at = at.max(now_ms.saturating_add(left));
        }
        let logins = in_window(&self.state.logins_ms, now_ms, HOUR_MS);
        if logins.len() >= MAX_LOGINS_PER_HOUR {
            let oldest_that_counts = logins[logins.len() - MAX_LOGINS_PER_HOUR];
            at = at.max(oldest_that_counts.saturating_add(HOUR_MS));
        }
        at
    }

    /// Starts a login at `now`, or says until when it must wait.
    ///
    /// # Errors
    /// [`GateClosed`] while a limit holds.
    pub fn open(&mut self, now: impl Into<GateNow>) -> Result<LoginPermit, GateClosed> {
        let now = now.into();
        let now_ms = now.wall_ms;
        let until_ms = self.next_allowed_ms(now);
        if until_ms > now_ms {
            return Err(GateClosed { until_ms });
        }
        self.prune(now_ms);
        let previous_login_ms = self.last_login_ms.replace(now.mono_ms);
        self.state.logins_ms.push(now_ms);
        Ok(LoginPermit {
            opened_ms: now_ms,
            opened_mono_ms: now.mono_ms,
            previous_login_ms,
        })
    }

    /// Gives back a login that sent nothing (its first request could not connect): the
    /// password never left, so it uses up neither the per-interval nor the hourly limit, and a
    /// network that comes up late (a boot) costs no wait beyond the poller's own backoff.
    pub fn release(&mut self, permit: LoginPermit) {
        if let Some(i) = self
            .state
            .logins_ms
            .iter()
            .rposition(|t| *t == permit.opened_ms)
        {
            self.state.logins_ms.remove(i);
        }
        if self.last_login_ms == Some(permit.opened_mono_ms) {
            self.last_login_ms = permit.previous_login_ms;
        }
    }

    /// Records how one password-bearing request of a login ended.
    pub fn record(&mut self, _permit: &LoginPermit, now_ms: i64, outcome: LoginOutcome) {
        self.prune(now_ms);
        self.state.in_flight_ms = None;
        match outcome {
            LoginOutcome::NotSent => {}
            LoginOutcome::Accepted => {
                self.state.confirmed = true;
                self.state.consecutive_failures = 0;
                self.state.failures_in_a_row = 0;
                self.state.first_failure_in_a_row_ms = None;
                self.state.ambiguous_in_a_row = 0;
                self.state.not_before_ms = 0;
                self.state.last_failure = None;
                self.state.unfinished_in_a_row = 0;
                // The day's failures stay counted: a Share that alternates answers must not
                // open a ninth attempt.
            }
            LoginOutcome::Rejected => {
                self.state.confirmed = false;
                self.state.last_failure = Some(FailureKind::Rejected);
                self.fail(now_ms, STRICT_WAIT);
            }
            LoginOutcome::LockedOut => {
                self.state.confirmed = false;
                self.state.last_failure = Some(FailureKind::LockedOut);
                self.fail(now_ms, LOCKOUT_WAIT);
            }
            LoginOutcome::Ambiguous if !self.state.confirmed => {
                self.state.last_failure = Some(FailureKind::Ambiguous);
                self.fail(now_ms, STRICT_WAIT);
            }
            LoginOutcome::Ambiguous => {
                // A confirmed password: a Share problem, not a password problem, so not one of
                // the failures in a row; but a third in a row makes re-logins wait longer and
                // longer (up to an hour, so a Share that comes back is read within one).
                self.state.ambiguous_in_a_row = self.state.ambiguous_in_a_row.saturating_add(1);
                if self.state.ambiguous_in_a_row >= AMBIGUOUS_BEFORE_BACKOFF {
                    let doublings =
                        (self.state.ambiguous_in_a_row - AMBIGUOUS_BEFORE_BACKOFF).min(16);
                    let wait = AMBIGUOUS_BACKOFF
                        .saturating_mul(1u32 << doublings)
                        .min(MAX_AMBIGUOUS_WAIT);
                    self.state.not_before_ms = self
                        .state
                        .not_before_ms
                        .max(now_ms.saturating_add(ms(wait)));
                }
            }
        }
    }

    /// One more failed password-bearing request in a row, whatever it carried.
    fn count_in_a_row(&mut self, now_ms: i64) {
        if self.state.failures_in_a_row == 0
            || self.state.failures_in_a_row >= MAX_CONSECUTIVE_FAILURES
        {
            // The first of a run, or the one let out after a day's hold: the next day's hold
            // counts from it, so beyond the cap at most one attempt a day gets out.
            self.state.first_failure_in_a_row_ms = Some(now_ms);
        }
        self.state.failures_in_a_row = self.state.failures_in_a_row.saturating_add(1);
    }

    fn fail(&mut self, now_ms: i64, least: Duration) {
        self.count_in_a_row(now_ms);
        self.state.failures_ms.push(now_ms);
        self.state.consecutive_failures = self.state.consecutive_failures.saturating_add(1);
        let doublings = self.state.consecutive_failures.saturating_sub(1).min(16);
        let wait = least
            .saturating_mul(1u32 << doublings)
            .min(MAX_WAIT)
            .max(least);
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        self.state.not_before_ms = self.state.not_before_ms.max(now_ms.saturating_add(wait_ms));
    }

    /// Drops what has left its window (and anything dated in the future of `now_ms` by more
    /// than a day, from a clock that was wrong when it was saved).
    fn prune(&mut self, now_ms: i64) {
        let keep = |window: i64| {
            move |t: &i64| *t > now_ms.saturating_sub(window) && *t <= now_ms.saturating_add(DAY_MS)
        };
        self.state.failures_ms.retain(keep(DAY_MS));
        self.state.failures_ms.sort_unstable();
        self.state.logins_ms.retain(keep(HOUR_MS));
        self.state.logins_ms.sort_unstable();
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The entries of `times` (oldest first) within `window` before `now_ms`.
fn in_window(times: &[i64], now_ms: i64, window: i64) -> &[i64] {
    let start = now_ms.saturating_sub(window);
    let first = times.partition_point(|t| *t <= start);
    times.get(first..).unwrap_or_default()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod restarts;

#[cfg(test)]
mod cap;

#[cfg(test)]
mod properties;
