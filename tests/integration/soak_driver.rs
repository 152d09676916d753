//! The fault soak: the exporter against the simulator on one clock that runs hundreds of times
//! faster than the wall clock, for simulated days, with faults injected at random: session
//! expiry, HTML 5xx, 429 with `Retry-After`, timeouts, empty, oversized, future-dated and
//! malformed answers, sensor gaps, a wrong-password phase, and abrupt restarts on the same
//! state directory. Shared by the CI test (`soak.rs`, one simulated day) and the benchmark
//! (`benches/soak.rs`, a week by hand).
//!
//! Each exporter instance runs on a runtime of its own, so a restart can stop it the way a
//! SIGKILL does: `shutdown_background` drops every task where it stands, no shutdown path
//! runs, and the next instance finds the state directory as the killed one left it.
#![allow(dead_code, missing_docs, clippy::unwrap_used)] // a panic is how a soak reports failure

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use dexcom_exporter::Exporter;
use dexcom_exporter::clock::{Clock, ScaledClock};
use dexcom_exporter::config::{Cli, Config};
use dexcom_exporter::share::Endpoint;
use dexcom_exporter::simulator::{AccountSpec, Fault, Scenario, Simulator};

const USER: &str = "soak@example.com";
const PASSWORD: &str = "soak-password";
const INTERVAL: Duration = Duration::from_secs(300);
const INTERVAL_MS: i64 = 300_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

pub use crate::soak_report::SoakReport;

/// The faults the soak injects, one about every simulated hour, each kind in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SoakFault {
    /// Share forgets every session.
    SessionExpiry,
    /// HTML 5xx pages for a few reads.
    Html500,
    /// 429 with a short `Retry-After`.
    RateLimited,
    /// Answers slower than the request timeout.
    Timeout,
    /// HTTP 200 with an empty body.
    EmptyBody,
    /// An answer far above the size cap.
    Oversized,
    /// The real newest readings beside a row dated a day ahead and a malformed one.
    FutureAndMalformedRows,
    /// The sensor stops for 20 to 80 minutes.
    SensorGap,
    /// The exporter killed, down for up to a quarter of an hour, started again.
    AbruptRestart,
}

impl SoakFault {
    const ALL: [SoakFault; 9] = [
        SoakFault::SessionExpiry,
        SoakFault::Html500,
        SoakFault::RateLimited,
        SoakFault::Timeout,
        SoakFault::EmptyBody,
        SoakFault::Oversized,
        SoakFault::FutureAndMalformedRows,
        SoakFault::SensorGap,
        SoakFault::AbruptRestart,
    ];
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct SoakOptions {
    /// Simulated days.
    pub days: f64,
    /// How many times faster than the wall clock time runs.
    pub speedup: f64,
    /// Seed of the fault plan.
    pub seed: u64,
}

/// One exporter process, as far as a restart can tell.
struct Instance {
    runtime: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
}

impl Instance {
    fn start(
        base_url: &str,
        state: &std::path::Path,
        password: &'static str,
        clock: Arc<dyn Clock>,
        dispatch: &tracing::Dispatch,
    ) -> Self {
        let runtime = soak_runtime(dispatch);
        let storage = state.display().to_string();
        let cli = <Cli as clap::Parser>::try_parse_from([
            "dexcom_exporter",
            "--dexcom.username",
            USER,
            "--dexcom.base-url",
            base_url,
            "--dexcom.reading-interval",
            "5m",
            "--dexcom.request-timeout",
            "300ms",
            "--storage.path",
            &storage,
        ])
        .unwrap();
        // A killed instance's tasks are dropped on the runtime's threads as it goes down; the
        // state directory's lock goes with them, as the kernel drops a killed process's lock.
        let mut tries = 0;
        let config = loop {
            match Config::from_cli(cli.clone(), &dexcom_testkit::TestEnv::password(password)) {
                Err(dexcom_exporter::config::ConfigError::Storage(
                    dexcom_exporter::StateError::Locked { .. },
                )) if tries < 500 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.unwrap(),
            }
        };
        let addr = runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let exporter = Exporter::with_listener(config, listener, clock)
                .await
                .unwrap();
            let addr = exporter.local_addr();
            tokio::spawn(exporter.run(std::future::pending()));
            addr
        });
        Instance {
            runtime: Some(runtime),
            addr,
        }
    }

    /// Stops every task where it stands, as SIGKILL would.
    fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The exporter instance of the run, and how to kill and start it.
struct Exporters<'a> {
    base_url: &'a str,
    state: &'a std::path::Path,
    clock: &'a Arc<dyn Clock>,
    dispatch: &'a tracing::Dispatch,
    current: Option<Instance>,
    /// Abrupt stops so far.
    kills: usize,
}

impl Exporters<'_> {
    /// Stops the running instance, if any, as SIGKILL would.
    fn kill(&mut self) {
        if let Some(current) = self.current.take() {
            current.kill();
            self.kills += 1;
        }
    }

    /// Kills the running instance, if any, and starts one with `password`.
    fn restart(&mut self, password: &'static str) {
        self.kill();
        self.current = Some(Instance::start(
            self.base_url,
            self.state,
            password,
            self.clock.clone(),
            self.dispatch,
        ));
    }
}

/// The names of the soak's threads, so its panics and logs are told from other tests'.
const THREAD_PREFIX: &str = "soak-";

/// A runtime whose threads log into the soak's own subscriber (and nowhere else), named so
/// that the panic hook can tell them.
fn soak_runtime(dispatch: &tracing::Dispatch) -> tokio::runtime::Runtime {
    let dispatch = dispatch.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(format!("{THREAD_PREFIX}runtime"))
        .on_thread_start(move || {
            // For the life of the thread; the guard would otherwise end it at once.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .enable_all()
        .build()
        .unwrap()
}

/// A simulated-time interval during which missed readings are expected.
#[derive(Debug, Clone, Copy)]
struct Disturbance {
    from_ms: i64,
    to_ms: i64,
}

fn rss_kib() -> u64 {
    dexcom_testkit::rss_kib("self")
}

fn sample(scrape: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{account=\"{USER}\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs the soak and reports.
pub fn run(options: SoakOptions) -> SoakReport {
    let panics = Arc::new(AtomicU64::new(0));
    {
        let panics = panics.clone();
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Only the soak's own threads: other tests may run beside it in this process.
            if std::thread::current()
                .name()
                .is_some_and(|name| name.starts_with(THREAD_PREFIX))
            {
                panics.fetch_add(1, Ordering::Relaxed);
            }
            default(info);
        }));
    }
    let logs = dexcom_testkit::CapturedLogs::default();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(logs.clone())
            .finish(),
    );

    let driver = soak_runtime(&dispatch);
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(SystemTime::now(), options.speedup));
    let scenario = Scenario {
        seed: options.seed,
        reading_interval: INTERVAL,
        accounts: vec![AccountSpec::new(USER, PASSWORD)],
        ..Scenario::default()
    };
    let simulator = Simulator::with_clock(scenario, clock.clone()).unwrap();
    let running = driver
        .block_on(simulator.start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let sim = running.simulator.clone();
    let base_url = running.base_url();
    let state = std::env::temp_dir().join(format!(
        "dexcom-soak-{}-{}",
        std::process::id(),
        options.seed
    ));
    let _ = std::fs::remove_dir_all(&state);
    let http = reqwest::Client::new();
    let mut rng = fastrand::Rng::with_seed(options.seed);

    let wall_start = Instant::now();
    let start_ms = clock.now_ms();
    let end_ms = start_ms + (options.days * DAY_MS as f64) as i64;
    let mut report = SoakReport::default();
    let mut disturbances: Vec<Disturbance> = Vec::new();
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    // When the driver's scrapes were answered (simulated ms): a reading counts as missed only
    // if the driver looked while it should have been shown and did not see it. On a busy
    // machine one loop of the driver can take longer than a reading is the newest (0.4 s of
    // wall time at 720×), and that is the driver not looking, not the exporter losing it.
    let mut looked: Vec<i64> = Vec::new();
    let mut exporters = Exporters {
        base_url: &base_url,
        state: &state,
        clock: &clock,
        dispatch: &dispatch,
        current: None,
        kills: 0,
    };
    exporters.restart(PASSWORD);
    let mut successful_starts: u64 = 1;
    let mut next_event_ms = start_ms + HOUR_MS;
    let mut restart_at: Option<(i64, &'static str)> = None;
    // The wrong-password phase: hours 10 to 14 of each simulated day.
    let mut wrong_phase: Option<(i64, i64)> = None;
    let mut wrong_attempts: Vec<i64> = Vec::new();
    let mut last_authenticate = 0;
    let mut gap_until: Option<i64> = None;
    let mut lockouts_seen = 0.0f64;
    let mut plan: Vec<SoakFault> = Vec::new();
    // A kill or restart not yet followed by a new reading: (when, newest reading then, s).
    let mut starting: Option<(i64, f64)> = None;

    while clock.now_ms() < end_ms {
        let now = clock.now_ms();
        let day_hour = (now - start_ms).rem_euclid(DAY_MS) / HOUR_MS;

        // Scrape.
        if let Some(current) = &exporters.current {
            let url = format!("http://{}/metrics", current.addr);
            if let Ok(Ok(body)) = driver.block_on(async {
                tokio::time::timeout(Duration::from_secs(2), async {
                    http.get(&url).send().await?.text().await
                })
                .await
            }) {
                looked.push(clock.now_ms());
                if let Some(t) = sample(&body, "dexcom_glucose_reading_timestamp_seconds") {
                    seen.insert((t * 1000.0).round() as i64);
                    // Back: a (re)start's disturbance ends once it serves a new reading.
                    if let Some((from, at_start)) = starting
                        && t > at_start
                    {
                        disturbances.push(Disturbance {
                            from_ms: from,
                            to_ms: now + INTERVAL_MS,
                        });
                        starting = None;
                    }
                }
                let lockouts = sample_labelled(&body, "locked_out");
                if lockouts > lockouts_seen {
                    report.lockouts += (lockouts - lockouts_seen) as u64;
                }
                lockouts_seen = lockouts;
            }
        }

        // Password attempts.
        // Timed where Share received them, not when this loop noticed (a loop of the driver
        // is seconds of simulated time).
        let counts = sim.request_counts(USER);
        if counts.authenticate > last_authenticate {
            if wrong_phase.is_some() {
                let times = sim.authenticate_times(USER);
                let new = usize::try_from(last_authenticate).unwrap_or(0);
                wrong_attempts.extend(times.get(new..).unwrap_or_default());
            }
            last_authenticate = counts.authenticate;
        }

        // Unexpected ERROR lines (the wrong-password phase's are expected).
        if let Ok(mut all) = logs.0.lock() {
            // Taken, not kept: the driver's memory must not grow with the log.
            let text = String::from_utf8_lossy(&std::mem::take(&mut *all)).into_owned();
            for line in text.lines().filter(|l| l.contains(" ERROR ")) {
                let expected = wrong_phase.is_some() || line.contains("refused the login");
                if !expected {
                    report.unexpected_error_lines.push(line.to_owned());
                }
            }
        }

        // A pending restart after a kill.
        if let Some((at, password)) = restart_at
            && now >= at
        {
            exporters.restart(password);
            if password == PASSWORD {
                successful_starts += 1;
            }
            restart_at = None;
        }

        // The wrong-password phase.
        if wrong_phase.is_none() && day_hour == 10 && restart_at.is_none() {
            exporters.restart("a-wrong-password");
            wrong_phase = Some((now, now + 4 * HOUR_MS));
        }
        if let Some((from, to)) = wrong_phase {
            if now >= to {
                exporters.restart(PASSWORD);
                successful_starts += 1;
                report.wrong_password_hours += (now - from) as f64 / HOUR_MS as f64;
                // Disturbed until the exporter serves a new reading again.
                starting = Some((
                    starting.map_or(from, |(f, _)| f.min(from)),
                    newest_seen(&seen),
                ));
                wrong_phase = None;
            } else if now >= from + HOUR_MS && rng.u32(0..400) == 0 && restart_at.is_none() {
                // Restarts during the wrong-password phase too: the loop systemd would make.
                exporters.restart("a-wrong-password");
            }
        }

        // Sensor gap end.
        if gap_until.is_some_and(|until| now >= until) {
            sim.end_gap(USER);
            gap_until = None;
        }

        // Random events, about one a simulated hour, outside the wrong-password phase.
        if now >= next_event_ms && wrong_phase.is_none() && restart_at.is_none() {
            next_event_ms = now + HOUR_MS / 2 + rng.i64(0..HOUR_MS);
            let mut disturb = |minutes: i64| {
                disturbances.push(Disturbance {
                    from_ms: now,
                    to_ms: now + minutes * 60_000 + 2 * INTERVAL_MS,
                });
            };
            report.faults_injected += 1;
            // Every kind in turn, in a shuffled order, so a day holds each at least twice.
            if plan.is_empty() {
                plan = SoakFault::ALL.to_vec();
                rng.shuffle(&mut plan);
            }
            match plan.pop().unwrap_or(SoakFault::SessionExpiry) {
                SoakFault::SessionExpiry => {
                    sim.expire_sessions();
                    report.session_expiries += 1;
                }
                SoakFault::Html500 => {
                    sim.inject(Fault::Html500, Some(Endpoint::ReadGlucose), 3);
                    disturb(20);
                }
                SoakFault::RateLimited => {
                    sim.inject(
                        Fault::RateLimited {
                            retry_after: Some(Duration::from_millis(50)),
                        },
                        Some(Endpoint::ReadGlucose),
                        2,
                    );
                    disturb(20);
                }
                SoakFault::Timeout => {
                    sim.inject(
                        Fault::Slow(Duration::from_secs(1)),
                        Some(Endpoint::ReadGlucose),
                        2,
                    );
                    disturb(20);
                }
                SoakFault::EmptyBody => {
                    sim.inject(Fault::EmptyBody200, Some(Endpoint::ReadGlucose), 2);
                    disturb(20);
                }
                SoakFault::Oversized => {
                    let body = format!(
                        "[{}]",
                        r#"{"WT":"Date(1)","Value":100,"Trend":"Flat"},"#.repeat(30_000)
                    );
                    sim.inject(Fault::json(body), Some(Endpoint::ReadGlucose), 1);
                    disturb(15);
                }
                SoakFault::FutureAndMalformedRows => {
                    // The real newest readings, plus one dated a day ahead and a malformed row.
                    let rows: Vec<String> = sim
                        .visible_readings(USER, 3)
                        .iter()
                        .map(|r| format!(r#"{{"WT":"Date({0})","ST":"Date({0})","DT":"Date({0}+0000)","Value":{1},"Trend":"Flat"}}"#, r.sensor_ms, r.mg_per_dl))
                        .collect();
                    let body = format!(
                        r#"[{{"WT":"Date({})","Value":222,"Trend":"Flat"}},{{"Value":"x"}},{}]"#,
                        now + DAY_MS,
                        rows.join(",")
                    );
                    sim.inject(Fault::json(body), Some(Endpoint::ReadGlucose), 2);
                    disturb(15);
                }
                SoakFault::SensorGap => {
                    sim.start_gap(USER);
                    let minutes = 20 + rng.i64(0..60);
                    gap_until = Some(now + minutes * 60_000);
                    disturb(minutes);
                }
                SoakFault::AbruptRestart => {
                    // An abrupt restart after some downtime, on the same state directory.
                    exporters.kill();
                    let down = 60_000 + rng.i64(0..15 * 60_000);
                    restart_at = Some((now + down, PASSWORD));
                    // Disturbed until the restarted exporter serves a new reading.
                    starting = Some((
                        starting.map_or(now, |(f, _)| f.min(now)),
                        newest_seen(&seen),
                    ));
                }
            }
        }

        std::thread::sleep(Duration::from_millis(10));
        if report.rss_start_kib == 0 && !seen.is_empty() {
            report.rss_start_kib = rss_kib();
        }
    }
    report.rss_end_kib = rss_kib();
    if let Some((from, _)) = starting {
        disturbances.push(Disturbance {
            from_ms: from,
            to_ms: end_ms,
        });
    }

    // Readings Share served over the run (after the first and before the last interval).
    let served = sim.readings_between(USER, start_ms + INTERVAL_MS, end_ms - 2 * INTERVAL_MS);
    report.readings_served = served.len();
    for (i, reading) in served.iter().enumerate() {
        if seen.contains(&reading.sensor_ms) {
            continue;
        }
        let until = served
            .get(i + 1)
            .map_or(reading.visible_ms + INTERVAL_MS, |next| next.visible_ms);
        let disturbed = disturbances
            .iter()
            .any(|d| d.from_ms <= until && d.to_ms >= reading.visible_ms);
        // A minute after it reached Share, and before the next one did.
        let expected_from = reading.visible_ms + 60_000;
        let first_look = looked.partition_point(|t| *t < expected_from);
        let driver_looked = looked.get(first_look).is_some_and(|t| *t < until);
        if !driver_looked {
            report.readings_unobserved += 1;
            continue;
        }
        report.readings_missed += 1;
        if !disturbed {
            report.readings_missed_outside_disturbances += 1;
            report.missed_outside.push((
                (reading.visible_ms - start_ms) as f64 / 60_000.0,
                (reading.visible_ms - reading.sensor_ms) as f64 / 1000.0,
            ));
        }
    }

    report.password_attempts_wrong = wrong_attempts.len();
    report.min_minutes_between_wrong_attempts = wrong_attempts
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 60_000.0)
        .reduce(f64::min);
    report.max_wrong_attempts_in_24h = wrong_attempts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            wrong_attempts[i..]
                .iter()
                .take_while(|u| **u < t + DAY_MS)
                .count()
        })
        .max()
        .unwrap_or(0);
    let counts = sim.request_counts(USER);
    report.relogins = counts.login.saturating_sub(successful_starts);
    report.simulated_hours = (clock.now_ms() - start_ms) as f64 / HOUR_MS as f64;
    report.wall_seconds = wall_start.elapsed().as_secs_f64();
    report.panics = panics.load(Ordering::Relaxed);
    exporters.kill();
    report.restarts = exporters.kills - 1;
    driver.block_on(running.stop());
    let _ = std::fs::remove_dir_all(&state);
    report
}

/// The newest sensor time seen so far, in seconds (as the metric shows it).
fn newest_seen(seen: &BTreeSet<i64>) -> f64 {
    seen.last().map_or(0.0, |ms| *ms as f64 / 1000.0)
}

fn sample_labelled(scrape: &str, reason: &str) -> f64 {
    let prefix = format!("dexcom_poll_errors_total{{account=\"{USER}\",reason=\"{reason}\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
