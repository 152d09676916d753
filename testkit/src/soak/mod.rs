//! The fault soak: the exporter against the simulator on one clock that runs hundreds of times
//! faster than the wall clock, for simulated days, with faults injected at random: session
//! expiry, HTML 5xx, 429 with `Retry-After`, timeouts, empty, oversized, future-dated and
//! malformed answers, sensor gaps, a wrong-password phase, abrupt restarts on the same
//! state directory, and the host's wall clock stepped an hour ahead and back and a day behind
//! and back (twice a simulated week, each once in the first day; the day behind spans the
//! wrong-password phase of the first day). Share's clock is never stepped: every value shown
//! is checked against it. Shared by the CI test (`tests/integration/soak.rs`, one simulated
//! day) and the benchmark (`benches/soak.rs`, a week by hand).
//!
//! Each exporter instance runs on a runtime of its own, so a restart can stop it the way a
//! SIGKILL does: `shutdown_background` drops every task where it stands, no shutdown path
//! runs, and the next instance finds the state directory as the killed one left it.

mod instance;
mod report;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use dexcom_exporter::clock::{Clock, ScaledClock};

use crate::clock::OffClock;
use dexcom_exporter::share::Endpoint;
use dexcom_exporter::simulator::{AccountSpec, Fault, Scenario, Simulator};

pub(crate) const USER: &str = "soak@example.com";
const PASSWORD: &str = "soak-password";
const INTERVAL: Duration = Duration::from_secs(300);
const INTERVAL_MS: i64 = 300_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// `--glucose.max-age`, the exporter's default.
const MAX_AGE_MS: i64 = 20 * 60_000;
/// How late a scrape's answer may be read, in simulated time, before what it showed is judged
/// (at 720×, 80 ms of a busy machine's wall time).
const SCRAPE_SLACK_MS: i64 = 60_000;
/// The host clock's steps repeat with this period: twice a simulated week.
const CLOCK_CYCLE_MS: i64 = 84 * HOUR_MS;

/// Makes `dir` immutable (nothing in it can be created, renamed or removed, by root neither)
/// or not, with `chattr` (e2fsprogs).
///
/// # Panics
/// When `chattr` fails: the soak's read-only hour needs root and a file system that has the
/// attribute.
fn set_immutable(dir: &std::path::Path, on: bool) {
    let status = std::process::Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(dir)
        .status()
        .expect("chattr (e2fsprogs) runs");
    assert!(status.success(), "chattr {on} {}", dir.display());
}

/// How far the host's wall clock is off Share's at `elapsed_ms` into the soak: an hour ahead
/// from hour 3 to 7 of each cycle, a day behind from hour 9 to 15, right otherwise.
fn host_clock_off_ms(elapsed_ms: i64) -> i64 {
    match elapsed_ms.rem_euclid(CLOCK_CYCLE_MS) / HOUR_MS {
        3..7 => HOUR_MS,
        9..15 => -DAY_MS,
        _ => 0,
    }
}

/// Whether the state directory cannot be written at `elapsed_ms` into the soak: from hour 17
/// to 18 of each cycle (never during a day's wrong-password phase, hours 10 to 14).
fn state_read_only(elapsed_ms: i64) -> bool {
    elapsed_ms.rem_euclid(CLOCK_CYCLE_MS) / HOUR_MS == 17
}

use instance::{Exporters, THREAD_PREFIX, soak_runtime};
pub use report::SoakReport;

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

/// A simulated-time interval during which missed readings are expected.
#[derive(Debug, Clone, Copy)]
struct Disturbance {
    from_ms: i64,
    to_ms: i64,
}

fn rss_kib() -> u64 {
    crate::rss_kib("self")
}

fn sample(scrape: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{account=\"{USER}\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Counts panics on the soak's own threads (other tests may run beside it in this process).
fn count_soak_panics() -> Arc<AtomicU64> {
    let panics = Arc::new(AtomicU64::new(0));
    let counted = panics.clone();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with(THREAD_PREFIX))
        {
            counted.fetch_add(1, Ordering::Relaxed);
        }
        default(info);
    }));
    panics
}

/// Runs the soak and reports.
pub fn run(options: SoakOptions) -> SoakReport {
    let panics = count_soak_panics();
    let logs = crate::CapturedLogs::default();
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
    // The exporter's host: Share's clock, its wall clock stepped now and then.
    let host = OffClock::new(clock.clone(), 0);
    let host_clock: Arc<dyn Clock> = host.clone();
    let running = driver
        .block_on(simulator.start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let base_url = running.base_url();
    let state = std::env::temp_dir().join(format!(
        "dexcom-soak-{}-{}",
        std::process::id(),
        options.seed
    ));
    let _ = std::fs::remove_dir_all(&state);

    let wall_start = Instant::now();
    let start_ms = clock.now_ms();
    let mut soak = Soak {
        sim: running.simulator.clone(),
        clock: &clock,
        host: &host,
        driver: &driver,
        http: reqwest::Client::new(),
        logs,
        rng: fastrand::Rng::with_seed(options.seed),
        exporters: Exporters {
            base_url: &base_url,
            state: &state,
            clock: &host_clock,
            dispatch: &dispatch,
            current: None,
            kills: 0,
        },
        start_ms,
        end_ms: start_ms + (options.days * DAY_MS as f64) as i64,
        report: SoakReport::default(),
        disturbances: Vec::new(),
        seen: BTreeSet::new(),
        looked: Vec::new(),
        successful_starts: 1,
        next_event_ms: start_ms + HOUR_MS,
        restart_at: None,
        wrong_phase: None,
        wrong_attempts: Vec::new(),
        last_authenticate: 0,
        gap_until: None,
        lockouts_seen: 0.0,
        plan: Vec::new(),
        read_only_since: None,
        starting: None,
    };
    soak.exporters.restart(PASSWORD);
    while clock.now_ms() < soak.end_ms {
        soak.step();
        std::thread::sleep(Duration::from_millis(10));
        if soak.report.rss_start_kib == 0 && !soak.seen.is_empty() {
            soak.report.rss_start_kib = rss_kib();
        }
    }
    let mut report = soak.finish();
    report.wall_seconds = wall_start.elapsed().as_secs_f64();
    report.panics = panics.load(Ordering::Relaxed);
    driver.block_on(running.stop());
    let _ = std::fs::remove_dir_all(&state);
    report
}

/// What the driver did and saw so far.
struct Soak<'a> {
    sim: Arc<Simulator>,
    /// Share's clock (and the simulator's).
    clock: &'a Arc<dyn Clock>,
    /// The exporter's host clock: Share's, its wall clock stepped by [`host_clock_off_ms`].
    host: &'a Arc<OffClock>,
    driver: &'a tokio::runtime::Runtime,
    http: reqwest::Client,
    logs: crate::CapturedLogs,
    rng: fastrand::Rng,
    exporters: Exporters<'a>,
    start_ms: i64,
    end_ms: i64,
    report: SoakReport,
    disturbances: Vec<Disturbance>,
    /// Sensor times the exporter was seen serving.
    seen: BTreeSet<i64>,
    /// When the driver's scrapes were answered (simulated ms): a reading counts as missed only
    /// if the driver looked while it should have been shown and did not see it. On a busy
    /// machine one loop of the driver can take longer than a reading is the newest (0.4 s of
    /// wall time at 720×), and that is the driver not looking, not the exporter losing it.
    looked: Vec<i64>,
    /// Starts with the right password (each costs one login that is not a re-login).
    successful_starts: u64,
    next_event_ms: i64,
    /// A restart due after a kill: (when, with which password).
    restart_at: Option<(i64, &'static str)>,
    /// The wrong-password phase (hours 10 to 14 of each simulated day): (from, to).
    wrong_phase: Option<(i64, i64)>,
    /// When Share received each password of the wrong-password phases.
    wrong_attempts: Vec<i64>,
    last_authenticate: u64,
    gap_until: Option<i64>,
    lockouts_seen: f64,
    /// The faults still to inject in this round, each kind once.
    plan: Vec<SoakFault>,
    /// While the state directory cannot be written: Share's password-bearing requests when
    /// it turned so.
    read_only_since: Option<(i64, u64)>,
    /// A kill or restart not yet followed by a new reading: (when, newest reading then, s).
    starting: Option<(i64, f64)>,
}

impl Soak<'_> {
    /// One loop of the driver: look, then act on what is due.
    fn step(&mut self) {
        let now = self.clock.now_ms();
        let day_hour = (now - self.start_ms).rem_euclid(DAY_MS) / HOUR_MS;
        let off = host_clock_off_ms(now - self.start_ms);
        if off != self.host.off_ms() {
            self.host.step(off - self.host.off_ms());
            self.report.host_clock_steps += 1;
        }
        self.scrape(now);
        self.note_password_attempts();
        self.note_error_lines();
        if let Some((at, password)) = self.restart_at
            && now >= at
        {
            self.exporters.restart(password);
            if password == PASSWORD {
                self.successful_starts += 1;
            }
            self.restart_at = None;
        }
        self.wrong_password_phase(now, day_hour);
        self.state_directory(now);
        if self.gap_until.is_some_and(|until| now >= until) {
            self.sim.end_gap(USER);
            self.gap_until = None;
        }
        // About one a simulated hour, outside the wrong-password phase.
        if now >= self.next_event_ms
            && self.wrong_phase.is_none()
            && self.restart_at.is_none()
            && self.read_only_since.is_none()
        {
            self.next_event_ms = now + HOUR_MS / 2 + self.rng.i64(0..HOUR_MS);
            self.report.faults_injected += 1;
            // Every kind in turn, in a shuffled order, so a day holds each at least twice.
            if self.plan.is_empty() {
                self.plan = SoakFault::ALL.to_vec();
                self.rng.shuffle(&mut self.plan);
            }
            let fault = self.plan.pop().unwrap_or(SoakFault::SessionExpiry);
            self.inject(fault, now);
        }
    }

    /// Scrapes the running instance, if any: the reading it serves, its lockouts.
    fn scrape(&mut self, now: i64) {
        let Some(current) = &self.exporters.current else {
            return;
        };
        let url = format!("http://{}/metrics", current.addr);
        let http = &self.http;
        let Ok(Ok(body)) = self.driver.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), async {
                http.get(&url).send().await?.text().await
            })
            .await
        }) else {
            return;
        };
        let answered = self.clock.now_ms();
        self.looked.push(answered);
        self.judge_age(&body, now, answered);
        if let Some(t) = sample(&body, "dexcom_glucose_reading_timestamp_seconds") {
            self.seen.insert((t * 1000.0).round() as i64);
            // Back: a (re)start's disturbance ends once it serves a new reading.
            if let Some((from, at_start)) = self.starting
                && t > at_start
            {
                self.disturbances.push(Disturbance {
                    from_ms: from,
                    to_ms: now + INTERVAL_MS,
                });
                self.starting = None;
            }
        }
        let lockouts = sample_labelled(&body, "locked_out");
        if lockouts > self.lockouts_seen {
            self.report.lockouts += (lockouts - self.lockouts_seen) as u64;
        }
        self.lockouts_seen = lockouts;
    }

    /// Judges a scrape asked for at `asked` and answered at `answered` (Share's time) against
    /// Share's clock: no value older than `--glucose.max-age` may be shown, and the age shown
    /// must be the reading's true age, whatever the host's clock says.
    fn judge_age(&mut self, body: &str, asked: i64, answered: i64) {
        let Some(taken) = sample(body, "dexcom_glucose_reading_timestamp_seconds") else {
            return;
        };
        let taken_ms = (taken * 1000.0).round() as i64;
        if sample(body, "dexcom_glucose_mg_per_dl").is_some()
            && asked - taken_ms > MAX_AGE_MS + SCRAPE_SLACK_MS
        {
            self.report.values_older_than_max_age += 1;
        }
        if let Some(age) = sample(body, "dexcom_glucose_reading_age_seconds") {
            let (earliest, latest) = (asked - taken_ms, answered - taken_ms);
            let shown = (age * 1000.0).round() as i64;
            let error = (earliest - shown).max(shown - latest).max(0) as f64 / 1000.0;
            self.report.max_age_error_seconds = self.report.max_age_error_seconds.max(error);
        }
    }

    /// Password attempts of the wrong-password phase, timed where Share received them, not
    /// when this loop noticed (a loop of the driver is seconds of simulated time).
    fn note_password_attempts(&mut self) {
        let counts = self.sim.request_counts(USER);
        if counts.authenticate > self.last_authenticate {
            if self.wrong_phase.is_some() {
                let times = self.sim.authenticate_times(USER);
                let new = usize::try_from(self.last_authenticate).unwrap_or(0);
                self.wrong_attempts
                    .extend(times.get(new..).unwrap_or_default());
            }
            self.last_authenticate = counts.authenticate;
        }
    }

    /// Unexpected ERROR lines (the wrong-password phase's are expected).
    fn note_error_lines(&mut self) {
        let Ok(mut all) = self.logs.0.lock() else {
            return;
        };
        // Taken, not kept: the driver's memory must not grow with the log.
        let text = String::from_utf8_lossy(&std::mem::take(&mut *all)).into_owned();
        for line in text.lines().filter(|l| l.contains(" ERROR ")) {
            let expected = self.wrong_phase.is_some()
                || line.contains("refused the login")
                || (self.read_only_since.is_some()
                    && (line.contains("the password is held")
                        || line.contains("cannot write the state file")));
            if !expected {
                self.report.unexpected_error_lines.push(line.to_owned());
            }
        }
    }

    /// An hour a cycle the state directory cannot be written (immutable, which root too
    /// obeys), and Share ends the session: the re-login must wait until it can be counted.
    fn state_directory(&mut self, now: i64) {
        let due = state_read_only(now - self.start_ms);
        let passwords = || {
            let counts = self.sim.request_counts(USER);
            counts.authenticate + counts.login
        };
        match (due, self.read_only_since) {
            (true, None) if self.restart_at.is_none() && self.exporters.current.is_some() => {
                set_immutable(self.exporters.state, true);
                self.read_only_since = Some((now, passwords()));
                self.sim.expire_sessions();
                self.disturb(now, 60);
            }
            (false, Some((since, before))) => {
                set_immutable(self.exporters.state, false);
                self.report.passwords_while_read_only += passwords() - before;
                self.report.state_read_only_hours += (now - since) as f64 / HOUR_MS as f64;
                self.read_only_since = None;
                self.disturbed_until_a_new_reading(now);
            }
            _ => {}
        }
    }

    /// Hours 10 to 14 of each simulated day: the exporter runs with a wrong password, and is
    /// restarted now and then as systemd would restart a failing service.
    fn wrong_password_phase(&mut self, now: i64, day_hour: i64) {
        if self.wrong_phase.is_none() && day_hour == 10 && self.restart_at.is_none() {
            self.exporters.restart("a-wrong-password");
            self.wrong_phase = Some((now, now + 4 * HOUR_MS));
        }
        let Some((from, to)) = self.wrong_phase else {
            return;
        };
        if now >= to {
            self.exporters.restart(PASSWORD);
            self.successful_starts += 1;
            self.report.wrong_password_hours += (now - from) as f64 / HOUR_MS as f64;
            // Disturbed until the exporter serves a new reading again.
            self.disturbed_until_a_new_reading(from);
            self.wrong_phase = None;
        } else if now >= from + HOUR_MS && self.rng.u32(0..400) == 0 && self.restart_at.is_none() {
            self.exporters.restart("a-wrong-password");
        }
    }

    /// Readings may be missed from `from` until the exporter serves a newer one than now.
    fn disturbed_until_a_new_reading(&mut self, from: i64) {
        self.starting = Some((
            self.starting.map_or(from, |(f, _)| f.min(from)),
            newest_seen(&self.seen),
        ));
    }

    /// Readings may be missed for `minutes` from `now`, and two intervals more.
    fn disturb(&mut self, now: i64, minutes: i64) {
        self.disturbances.push(Disturbance {
            from_ms: now,
            to_ms: now + minutes * 60_000 + 2 * INTERVAL_MS,
        });
    }

    fn inject(&mut self, fault: SoakFault, now: i64) {
        let sim = self.sim.clone();
        let read = Some(Endpoint::ReadGlucose);
        match fault {
            SoakFault::SessionExpiry => {
                sim.expire_sessions();
                self.report.session_expiries += 1;
            }
            SoakFault::Html500 => {
                sim.inject(Fault::Html500, read, 3);
                self.disturb(now, 20);
            }
            SoakFault::RateLimited => {
                let retry_after = Some(Duration::from_millis(50));
                sim.inject(Fault::RateLimited { retry_after }, read, 2);
                self.disturb(now, 20);
            }
            SoakFault::Timeout => {
                sim.inject(Fault::Slow(Duration::from_secs(1)), read, 2);
                self.disturb(now, 20);
            }
            SoakFault::EmptyBody => {
                sim.inject(Fault::EmptyBody200, read, 2);
                self.disturb(now, 20);
            }
            SoakFault::Oversized => {
                let body = format!(
                    "[{}]",
                    r#"{"WT":"Date(1)","Value":100,"Trend":"Flat"},"#.repeat(30_000)
                );
                sim.inject(Fault::json(body), read, 1);
                self.disturb(now, 15);
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
                sim.inject(Fault::json(body), read, 2);
                self.disturb(now, 15);
            }
            SoakFault::SensorGap => {
                sim.start_gap(USER);
                let minutes = 20 + self.rng.i64(0..60);
                self.gap_until = Some(now + minutes * 60_000);
                self.disturb(now, minutes);
            }
            SoakFault::AbruptRestart => {
                // An abrupt restart after some downtime, on the same state directory.
                self.exporters.kill();
                let down = 60_000 + self.rng.i64(0..15 * 60_000);
                self.restart_at = Some((now + down, PASSWORD));
                self.disturbed_until_a_new_reading(now);
            }
        }
    }

    /// Stops the exporter and counts: readings missed, password attempts, re-logins.
    fn finish(mut self) -> SoakReport {
        if self.read_only_since.take().is_some() {
            set_immutable(self.exporters.state, false);
        }
        let mut report = std::mem::take(&mut self.report);
        report.rss_end_kib = rss_kib();
        if let Some((from, _)) = self.starting {
            self.disturbances.push(Disturbance {
                from_ms: from,
                to_ms: self.end_ms,
            });
        }
        self.count_missed(&mut report);
        count_wrong_attempts(&mut report, &self.wrong_attempts);
        let counts = self.sim.request_counts(USER);
        report.relogins = counts.login.saturating_sub(self.successful_starts);
        report.simulated_hours = (self.clock.now_ms() - self.start_ms) as f64 / HOUR_MS as f64;
        self.exporters.kill();
        report.restarts = self.exporters.kills - 1;
        report
    }

    /// Readings Share served over the run (after the first and before the last interval) that
    /// the exporter was not seen serving, outside disturbances or not, and those the driver
    /// did not look for in time.
    fn count_missed(&self, report: &mut SoakReport) {
        let served = self.sim.readings_between(
            USER,
            self.start_ms + INTERVAL_MS,
            self.end_ms - 2 * INTERVAL_MS,
        );
        report.readings_served = served.len();
        for (i, reading) in served.iter().enumerate() {
            if self.seen.contains(&reading.sensor_ms) {
                continue;
            }
            let until = served
                .get(i + 1)
                .map_or(reading.visible_ms + INTERVAL_MS, |next| next.visible_ms);
            let disturbed = self
                .disturbances
                .iter()
                .any(|d| d.from_ms <= until && d.to_ms >= reading.visible_ms);
            // A minute after it reached Share, and before the next one did.
            let expected_from = reading.visible_ms + 60_000;
            let first_look = self.looked.partition_point(|t| *t < expected_from);
            let driver_looked = self.looked.get(first_look).is_some_and(|t| *t < until);
            if !driver_looked {
                report.readings_unobserved += 1;
                continue;
            }
            report.readings_missed += 1;
            if !disturbed {
                report.readings_missed_outside_disturbances += 1;
                report.missed_outside.push((
                    (reading.visible_ms - self.start_ms) as f64 / 60_000.0,
                    (reading.visible_ms - reading.sensor_ms) as f64 / 1000.0,
                ));
            }
        }
    }
}

/// How many wrong passwords reached Share, how close together, and the most in any 24 hours.
fn count_wrong_attempts(report: &mut SoakReport, wrong_attempts: &[i64]) {
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
