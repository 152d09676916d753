//! The test application: the Share simulator and the exporter, each on a loopback port chosen
//! by the OS, sharing one clock, plus a scratch directory for files the exporter reads. It is
//! torn down when dropped, so a failed assertion leaves no server, task or file behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dexcom_exporter::clock::{Clock, ManualClock, SystemClock};
use dexcom_exporter::share::Endpoint;
use dexcom_exporter::simulator::{Fault, RequestCounts, RunningSimulator, Scenario};
pub use dexcom_testkit::accounts_file;

use crate::common::{
    RunningExporter, TestEnv, USERNAME, exporter_args, get, password_env, scenario, start_at,
};

/// Builds the exporter's flags from the simulator's base URL and the scratch directory.
pub type ArgsFn = Box<dyn FnOnce(&str, &Path) -> Vec<String>>;

/// Prepares the scratch directory (given the simulator's base URL) before the exporter starts.
pub type PrepareFn = Box<dyn FnOnce(&str, &Path)>;

/// What a [`TestApp`] starts.
pub struct AppOptions {
    /// The simulator's accounts and cadence.
    pub scenario: Scenario,
    /// The time both sides read, and the exporter waits in.
    pub clock: Arc<dyn Clock>,
    /// A different time for the exporter only (a host clock that is wrong).
    pub exporter_clock: Option<Arc<dyn Clock>>,
    /// Faults the simulator holds ready before the exporter's first request.
    pub faults: Vec<(Fault, Option<Endpoint>, u32)>,
    /// The environment the exporter's configuration sees.
    pub env: TestEnv,
    /// The exporter's flags, given the simulator's base URL and the scratch directory.
    pub args: ArgsFn,
    /// Run on the scratch directory before the exporter starts (files a fault needs there).
    pub before_start: Option<PrepareFn>,
}

impl AppOptions {
    /// One typical account at `interval`, the right password, the system clock, and the
    /// standard flags plus `extra`.
    pub fn new(interval: Duration, extra: &[&str]) -> Self {
        let cadence = humantime::format_duration(interval).to_string();
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        AppOptions {
            scenario: scenario(interval),
            clock: Arc::new(SystemClock),
            exporter_clock: None,
            faults: Vec::new(),
            env: password_env(),
            before_start: None,
            args: Box::new(move |base, _| {
                let mut args: Vec<String> = exporter_args(base, &cadence)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                args.extend(extra);
                args
            }),
        }
    }
}

impl AppOptions {
    /// The same, running `prepare` (given the simulator's base URL and the scratch directory)
    /// before the exporter starts.
    pub fn before_start(mut self, prepare: impl FnOnce(&str, &Path) + 'static) -> Self {
        self.before_start = Some(Box::new(prepare));
        self
    }

    /// The same, with `--storage.path` in the scratch directory (`state/`): the login gate's
    /// memory kept across a [`TestApp::restart`].
    pub fn with_state_dir(mut self) -> Self {
        let args = std::mem::replace(&mut self.args, Box::new(|_, _| Vec::new()));
        self.args = Box::new(move |base, dir| {
            let mut out = args(base, dir);
            out.push("--storage.path".into());
            out.push(dir.join("state").display().to_string());
            out
        });
        self
    }
}

/// The simulator and the exporter under test.
pub struct TestApp {
    /// The Share simulator.
    pub sim: RunningSimulator,
    /// The exporter.
    pub exporter: RunningExporter,
    dir: ScratchDir,
}

impl TestApp {
    /// One typical account polled at `interval` with the standard flags plus `extra`.
    pub async fn start(interval: Duration, extra: &[&str]) -> Self {
        Self::start_with(AppOptions::new(interval, extra)).await
    }

    /// Starts what `options` describe.
    pub async fn start_with(options: AppOptions) -> Self {
        let dir = ScratchDir::new();
        let sim = start_at(options.scenario, options.clock.clone()).await;
        for (fault, endpoint, times) in options.faults {
            sim.simulator.inject(fault, endpoint, times);
        }
        let args = (options.args)(&sim.base_url(), dir.path());
        if let Some(prepare) = options.before_start {
            prepare(&sim.base_url(), dir.path());
        }
        let clock = options.exporter_clock.unwrap_or(options.clock);
        let exporter = dexcom_testkit::start(args, options.env, clock).await;
        TestApp { sim, exporter, dir }
    }

    /// Stops the exporter (waiting for every task) and starts it again with the same flags,
    /// environment, clock and files (so the same state directory): a restart, a reboot, an
    /// upgrade. The simulator keeps running.
    pub async fn restart(self) -> Self {
        let TestApp { sim, exporter, dir } = self;
        let exporter = exporter.restart().await;
        TestApp { sim, exporter, dir }
    }

    /// The scratch directory the exporter's files were written to.
    pub fn dir_path(&self) -> &Path {
        self.dir.path()
    }

    /// A URL on the exporter.
    pub fn url(&self, path: &str) -> String {
        self.exporter.url(path)
    }

    /// One scrape of `/metrics`.
    pub async fn scrape(&self) -> String {
        get(&self.url("/metrics")).await.1
    }

    /// Scrapes until `check` returns `Some`, or panics after `within`.
    pub async fn scrape_until<T>(
        &self,
        within: Duration,
        check: impl FnMut(&str) -> Option<T>,
    ) -> T {
        crate::common::scrape_until(&self.exporter, within, check).await
    }

    /// Requests the simulator has answered for the standard account.
    pub fn counts(&self) -> RequestCounts {
        self.sim.simulator.request_counts(USERNAME)
    }

    /// Stops the exporter (waiting for every task) and then the simulator.
    pub async fn stop(self) {
        let TestApp { sim, exporter, dir } = self;
        exporter.stop().await;
        sim.stop().await;
        drop(dir);
    }
}

/// The simulator and the exporter (polling every 500 ms) on one stopped clock, with `env` as the environment; the
/// poller waits in that clock's time, so the test decides when backoffs end.
pub async fn start_on_stopped_clock(
    env: TestEnv,
    faults: Vec<(Fault, Option<Endpoint>, u32)>,
) -> (TestApp, Arc<ManualClock>) {
    let clock = ManualClock::now_system();
    let mut options = AppOptions::new(Duration::from_millis(500), &[]);
    options.clock = clock.clone();
    options.env = env;
    options.faults = faults;
    (TestApp::start_with(options).await, clock)
}

/// Waits until the one poller has gone back to sleep and returns how long it waits.
pub async fn poller_wait(clock: &ManualClock) -> Duration {
    wait_until(Duration::from_secs(10), "the poller sleeps", || {
        clock.sleepers().len() == 1
    })
    .await;
    clock.sleepers()[0]
        .duration_since(clock.now())
        .unwrap_or_default()
}

/// Waits until `condition` holds, checking every 10 ms; panics with `what` after `within`.
pub async fn wait_until(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A directory of its own under the system's temporary directory, removed when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A new, empty directory.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "dexcom-it-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        ScratchDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
