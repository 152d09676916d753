//! A faithful Dexcom Share server for tests, benchmarks, `--demo` and `share_simulator`.
//!
//! It serves the three endpoints with the real wire format and error envelopes, keeps accounts,
//! sessions with a TTL and a lockout after repeated bad passwords, generates a realistic
//! glucose curve on a configurable cadence with upload delays, and injects faults. Everything a
//! test needs to check the exporter against (what was served and when it became visible, how
//! many requests each account made) is available through [`Simulator`]'s methods.

mod cli;
mod edge;
mod fault;
mod glucose;
mod http;
mod params;
mod scenario;
mod wire;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use cli::{ProfileArg, SimulatorArgs};
pub use fault::Fault;
pub use glucose::GlucoseProfile;
pub(crate) use glucose::{GlucoseModel, READINGS_PER_DAY};
pub use scenario::{
    AccountSpec, AuthErrorStyle, FaultRates, Scenario, ScenarioError, SubCodeStyle,
};

use crate::clock::{Clock, SystemClock};
use crate::share::{Endpoint, Trend};

/// A reading as the simulator serves it, with when it became visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedReading {
    /// The sensor reading index (readings are `reading_interval` apart).
    pub index: i64,
    /// Sensor time, ms since the epoch (what WT/ST carry).
    pub sensor_ms: i64,
    /// When the reading appears on Share (sensor time + upload delay), ms since the epoch.
    pub visible_ms: i64,
    /// mg/dL.
    pub mg_per_dl: u16,
    /// The trend arrow sent with the reading.
    pub trend: Trend,
    /// The publisher's UTC offset in minutes (the DT suffix).
    pub utc_offset_minutes: i32,
}

/// Requests received, per endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// `AuthenticatePublisherAccount` calls.
    pub authenticate: u64,
    /// `LoginPublisherAccountById` calls.
    pub login: u64,
    /// `ReadPublisherLatestGlucoseValues` calls.
    pub read: u64,
}

/// What an account's reads asked for and got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadLog {
    /// Reads that reached the readings (valid session, follower set up).
    pub reads: u64,
    /// Readings served by those reads, all together.
    pub rows_served: u64,
    /// Reads that asked for a whole day (`maxCount` 288).
    pub day_reads: u64,
    /// The `(minutes, maxCount)` of the first of them.
    pub first_read: Option<(i64, i64)>,
    /// The `(minutes, maxCount)` of the last of them.
    pub last_read: Option<(i64, i64)>,
}

impl RequestCounts {
    fn bump(&mut self, endpoint: Endpoint) {
        match endpoint {
            Endpoint::Authenticate => self.authenticate += 1,
            Endpoint::LoginById => self.login += 1,
            Endpoint::ReadGlucose => self.read += 1,
        }
    }

    /// Requests of every endpoint together.
    pub fn total(&self) -> u64 {
        self.authenticate + self.login + self.read
    }
}

#[derive(Debug)]
struct PlannedFault {
    fault: Fault,
    endpoint: Option<Endpoint>,
    remaining: u32,
}

struct AccountRuntime {
    spec: AccountSpec,
    id: Uuid,
    model: GlucoseModel,
    seed: u64,
    phase_ms: i64,
    offset_minutes: i32,
}

#[derive(Debug, Clone, Copy)]
struct SessionRecord {
    account: usize,
    expires_ms: i64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    consecutive: u32,
    locked_until_ms: Option<i64>,
}

/// A phone outage started at run time (sensor ms).
#[derive(Clone, Copy)]
struct Outage {
    start: i64,
    /// When the phone came back and when its backlog reached Share; `None` while it lasts.
    end: Option<(i64, i64)>,
}

struct State {
    sessions: HashMap<Uuid, SessionRecord>,
    failures: Vec<Failures>,
    /// Runtime sensor gaps per account: `[start, end)` in sensor ms; `None` = still going.
    gaps: Vec<Vec<(i64, Option<i64>)>>,
    /// Runtime phone outages per account: readings taken then wait for the upload.
    offline: Vec<Vec<Outage>>,
    counts: Vec<RequestCounts>,
    /// When each account's `AuthenticatePublisherAccount` requests arrived (simulated ms).
    authenticate_times: Vec<Vec<i64>>,
    read_logs: Vec<ReadLog>,
    unattributed: RequestCounts,
    planned: VecDeque<PlannedFault>,
    rng: fastrand::Rng,
}

/// The simulated Share service. Cheap to share: wrap it in an `Arc`.
pub struct Simulator {
    scenario: Scenario,
    clock: Arc<dyn Clock>,
    accounts: Vec<AccountRuntime>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("region", &self.scenario.region)
            .field("accounts", &self.accounts.len())
            .finish_non_exhaustive()
    }
}

/// A simulator being served on a socket.
#[derive(Debug)]
pub struct RunningSimulator {
    /// The simulator, for inspection and fault injection.
    pub simulator: Arc<Simulator>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningSimulator {
    /// The socket address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Share base URL clients should use (`http://ADDR/ShareWebServices/Services/`).
    pub fn base_url(&self) -> String {
        format!("http://{}/ShareWebServices/Services/", self.addr)
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let _ = (&mut self.task).await;
    }
}

/// Dropped without [`RunningSimulator::stop`] (a failed test, an early return): stop serving
/// all the same; the task ends on its own.
impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Simulator {
    /// A simulator on the system clock.
    ///
    /// # Errors
    /// [`ScenarioError`] when the scenario contradicts itself.
    pub fn new(scenario: Scenario) -> Result<Arc<Self>, ScenarioError> {
        Self::with_clock(scenario, Arc::new(SystemClock))
    }

    /// A simulator on an injected clock.
    ///
    /// # Errors
    /// [`ScenarioError`] when the scenario contradicts itself.
    pub fn with_clock(
        scenario: Scenario,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, ScenarioError> {
        scenario.validate()?;
        let interval_ms = duration_ms(scenario.reading_interval);
        let now_ms = clock.now_ms();
        let accounts: Vec<AccountRuntime> = scenario
            .accounts
            .iter()
            .map(|spec| {
                let seed = glucose::mix(
                    scenario.seed ^ scenario::fnv(spec.username.to_lowercase().as_bytes()),
                );
                let offset_minutes = spec.utc_offset_minutes().unwrap_or(0);
                let phase_ms = (glucose::unit(seed, 0, 99) * interval_ms as f64) as i64;
                // Meals follow the local day; a simulated day is always READINGS_PER_DAY readings.
                let local_shift = match spec.day_start_minutes().ok().flatten() {
                    Some(minutes) => {
                        let k_now = (now_ms - phase_ms).div_euclid(interval_ms);
                        (minutes / 5 - k_now).rem_euclid(READINGS_PER_DAY)
                    }
                    None => i64::from(offset_minutes) / 5,
                };
                AccountRuntime {
                    id: spec.effective_account_id(),
                    model: GlucoseModel::new(seed, spec.profile, local_shift),
                    phase_ms,
                    seed,
                    offset_minutes,
                    spec: spec.clone(),
                }
            })
            .collect();
        let n = accounts.len();
        let state = State {
            sessions: HashMap::new(),
            failures: vec![Failures::default(); n],
            gaps: vec![Vec::new(); n],
            offline: vec![Vec::new(); n],
            counts: vec![RequestCounts::default(); n],
            authenticate_times: vec![Vec::new(); n],
            read_logs: vec![ReadLog::default(); n],
            unattributed: RequestCounts::default(),
            planned: VecDeque::new(),
            rng: fastrand::Rng::with_seed(scenario.seed),
        };
        Ok(Arc::new(Simulator {
            scenario,
            clock,
            accounts,
            state: Mutex::new(state),
        }))
    }

    /// Binds `addr` and serves until [`RunningSimulator::stop`].
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(self: &Arc<Self>, addr: SocketAddr) -> std::io::Result<RunningSimulator> {
        let listener = TcpListener::bind(addr).await?;
        Ok(self.start_on(listener))
    }

    /// Serves on an already bound listener until [`RunningSimulator::stop`].
    pub fn start_on(self: &Arc<Self>, listener: TcpListener) -> RunningSimulator {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(self.clone().serve(listener, shutdown.clone()));
        RunningSimulator {
            simulator: self.clone(),
            addr,
            shutdown,
            task,
        }
    }

    /// Serves on `listener` until `shutdown` is cancelled.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let limits = crate::http::serve::ServeLimits {
            drain_deadline: Duration::from_millis(500),
            ..Default::default()
        };
        let shutdown_for_handlers = shutdown.clone();
        let handler =
            move |request| http::handle(self.clone(), request, shutdown_for_handlers.clone());
        crate::http::serve::serve(listener, handler, shutdown, limits, None).await;
    }

    /// The scenario being played.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// When the account's `AuthenticatePublisherAccount` requests arrived, on the simulator's
    /// clock, oldest first: the times a password reached Share.
    pub fn authenticate_times(&self, username: &str) -> Vec<i64> {
        let state = self.lock();
        self.account_index(username)
            .map(|i| state.authenticate_times[i].clone())
            .unwrap_or_default()
    }

    /// Requests received for the account with this username.
    pub fn request_counts(&self, username: &str) -> RequestCounts {
        let state = self.lock();
        self.account_index(username)
            .map(|i| state.counts[i])
            .unwrap_or_default()
    }

    /// What the account's reads asked for and got.
    pub fn read_log(&self, username: &str) -> ReadLog {
        let state = self.lock();
        self.account_index(username)
            .map(|i| state.read_logs[i])
            .unwrap_or_default()
    }

    /// Requests received in total, including those for unknown accounts or sessions.
    pub fn total_request_counts(&self) -> RequestCounts {
        let state = self.lock();
        state
            .counts
            .iter()
            .chain(std::iter::once(&state.unattributed))
            .fold(RequestCounts::default(), |mut sum, c| {
                sum.authenticate += c.authenticate;
                sum.login += c.login;
                sum.read += c.read;
                sum
            })
    }

    /// Makes the next `times` requests (to `endpoint`, or any) fail with `fault`.
    pub fn inject(&self, fault: Fault, endpoint: Option<Endpoint>, times: u32) {
        self.lock().planned.push_back(PlannedFault {
            fault,
            endpoint,
            remaining: times,
        });
    }

    /// Ends every session now, as Share does after its TTL.
    pub fn expire_sessions(&self) {
        let now = self.clock.now_ms();
        for session in self.lock().sessions.values_mut() {
            session.expires_ms = session.expires_ms.min(now);
        }
    }

    /// Starts a sensor gap for the account: readings from now on are not served.
    pub fn start_gap(&self, username: &str) {
        let now = self.clock.now_ms();
        if let Some(i) = self.account_index(username) {
            self.lock().gaps[i].push((now, None));
        }
    }

    /// Ends the account's open sensor gap.
    pub fn end_gap(&self, username: &str) {
        let now = self.clock.now_ms();
        if let Some(i) = self.account_index(username) {
            for gap in self.lock().gaps[i].iter_mut() {
                if gap.1.is_none() {
                    gap.1 = Some(now);
                }
            }
        }
    }

    /// Takes the account's phone offline: readings from now on are taken but not uploaded
    /// until [`Simulator::end_offline`], which uploads them all at once.
    pub fn start_offline(&self, username: &str) {
        let now = self.clock.now_ms();
        if let Some(i) = self.account_index(username) {
            self.lock().offline[i].push(Outage {
                start: now,
                end: None,
            });
        }
    }

    /// Brings the account's phone back: its backlog reaches Share now.
    pub fn end_offline(&self, username: &str) {
        self.end_offline_with_backlog_after(username, Duration::ZERO);
    }

    /// Brings the account's phone back, but its backlog reaches Share only `backlog_lag`
    /// later: new readings upload at once and the ones taken offline follow, as a phone that
    /// sends the current reading before catching up does.
    pub fn end_offline_with_backlog_after(&self, username: &str, backlog_lag: Duration) {
        let now = self.clock.now_ms();
        let uploaded = now.saturating_add(duration_ms(backlog_lag));
        if let Some(i) = self.account_index(username) {
            for outage in self.lock().offline[i].iter_mut() {
                if outage.end.is_none() {
                    outage.end = Some((now, uploaded));
                }
            }
        }
    }

    /// The reading with this exact sensor time, if the sensor takes one then.
    pub fn reading_at(&self, username: &str, sensor_ms: i64) -> Option<ServedReading> {
        let i = self.account_index(username)?;
        let k = self.index_at(i, sensor_ms);
        let reading = self.reading(i, k);
        (reading.sensor_ms == sensor_ms).then_some(reading)
    }

    /// What Share serves for the account right now: readings newest first, at most `max_count`.
    pub fn visible_readings(&self, username: &str, max_count: usize) -> Vec<ServedReading> {
        let Some(i) = self.account_index(username) else {
            return Vec::new();
        };
        let now = self.clock.now_ms();
        self.window(i, now, duration_ms(self.scenario.retention), max_count)
    }

    /// Every reading the account's sensor took with a sensor time in `[from_ms, to_ms)`,
    /// outside sensor gaps, oldest first: what Share has served or will serve, for comparing
    /// with what a client saw over a long run (beyond the 24 hours Share keeps).
    pub fn readings_between(&self, username: &str, from_ms: i64, to_ms: i64) -> Vec<ServedReading> {
        let Some(i) = self.account_index(username) else {
            return Vec::new();
        };
        let gaps = self.lock().gaps[i].clone();
        let mut k = self.index_at(i, from_ms);
        let mut out = Vec::new();
        loop {
            let reading = self.reading(i, k);
            if reading.sensor_ms >= to_ms {
                break;
            }
            if reading.sensor_ms >= from_ms && !self.in_gap(i, reading.sensor_ms, &gaps) {
                out.push(reading);
            }
            k += 1;
        }
        out
    }

    fn account_index(&self, username: &str) -> Option<usize> {
        self.accounts
            .iter()
            .position(|a| a.spec.names().any(|n| n.eq_ignore_ascii_case(username)))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another request must not take the whole simulator down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn interval_ms(&self) -> i64 {
        duration_ms(self.scenario.reading_interval)
    }

    fn index_at(&self, account: usize, ms: i64) -> i64 {
        (ms - self.accounts[account].phase_ms).div_euclid(self.interval_ms())
    }

    fn reading(&self, account: usize, k: i64) -> ServedReading {
        let runtime = &self.accounts[account];
        let sensor_ms = runtime.phase_ms + k * self.interval_ms();
        let (min, max) = self.scenario.upload_delay_range();
        let (min, max) = (duration_ms(min), duration_ms(max));
        let delay = min + (glucose::unit(runtime.seed, k, 77) * (max - min) as f64) as i64;
        let generated = runtime.model.reading(k);
        ServedReading {
            index: k,
            sensor_ms,
            visible_ms: sensor_ms + delay,
            mg_per_dl: generated.mg_per_dl,
            trend: generated.trend,
            utc_offset_minutes: runtime.offset_minutes,
        }
    }

    fn in_gap(&self, account: usize, sensor_ms: i64, gaps: &[(i64, Option<i64>)]) -> bool {
        if let Some(every) = self.scenario.gap_every {
            let every = duration_ms(every).max(1);
            let since = (sensor_ms - self.accounts[account].phase_ms).rem_euclid(every);
            if since >= every - duration_ms(self.scenario.gap_length) {
                return true;
            }
        }
        gaps.iter()
            .any(|(start, end)| sensor_ms >= *start && end.is_none_or(|end| sensor_ms < end))
    }

    /// When the reading reaches Share: after its upload delay, or, when the phone was offline
    /// at its sensor time, after the outage ends (`None` while it lasts).
    fn uploaded_at(
        &self,
        account: usize,
        reading: &ServedReading,
        offline: &[Outage],
    ) -> Option<i64> {
        let delay = reading.visible_ms - reading.sensor_ms;
        let t = reading.sensor_ms;
        let mut at = reading.visible_ms;
        if let Some(every) = self.scenario.backlog_every {
            let every = duration_ms(every).max(1);
            let length = duration_ms(self.scenario.backlog_length).min(every);
            let start = self.accounts[account].phase_ms
                + (t - self.accounts[account].phase_ms).div_euclid(every) * every;
            let outage_start = start + every - length;
            if t >= outage_start {
                at = at.max(start + every + delay);
            }
        }
        for outage in offline {
            if t >= outage.start && outage.end.is_none_or(|(end, _)| t < end) {
                let (_, uploaded) = outage.end?;
                at = at.max(uploaded + delay);
            }
        }
        Some(at)
    }

    /// Visible readings in `[now - window_ms, now]`, newest first.
    fn window(
        &self,
        account: usize,
        now: i64,
        window_ms: i64,
        max_count: usize,
    ) -> Vec<ServedReading> {
        let (gaps, offline) = {
            let state = self.lock();
            (state.gaps[account].clone(), state.offline[account].clone())
        };
        let since = now - window_ms.min(duration_ms(self.scenario.retention));
        let mut k = self.index_at(account, now);
        let mut out = Vec::new();
        while out.len() < max_count {
            let reading = self.reading(account, k);
            if reading.sensor_ms < since {
                break;
            }
            let visible = self.uploaded_at(account, &reading, &offline);
            if visible.is_some_and(|at| at <= now)
                && !self.in_gap(account, reading.sensor_ms, &gaps)
            {
                if self.accounts[account].spec.repeated_uploads {
                    let offset = (self.interval_ms() / 10).min(4000);
                    out.push(ServedReading {
                        sensor_ms: reading.sensor_ms + offset,
                        visible_ms: reading.visible_ms + offset,
                        ..reading
                    });
                }
                out.push(reading);
            }
            k -= 1;
        }
        out.truncate(max_count);
        out
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
