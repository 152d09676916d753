//! Freshness benchmark: how soon a reading that reaches Share shows on `/metrics`, and how
//! many Share reads that costs, for the exporter's reading-aligned schedule and, side by side
//! in the same run against the same simulator, a fixed-interval poller at the same cadence
//! (what Home Assistant and the older exporters do).
//!
//! `cargo bench --bench freshness -- [--interval 20s] [--readings 60] [--accounts 1]`
//!
//! With `--accounts N` the exporter polls N accounts (as a clinic or camp would, from a
//! `--config.file`), and lag, reads per reading and scrape latency cover all of them.
//!
//! The simulator runs at the accelerated cadence with upload delays scaled in proportion
//! (2–10% of the interval, i.e. 6–30 s at 5 minutes). The exporter's lag is measured through
//! real scrapes of `/metrics` every 1/200 of the interval; the baseline's at the moment its own
//! poll returns (which flatters the baseline slightly). The baseline's numbers pool eight
//! fixed-interval pollers at evenly spread phases.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dexcom_exporter::clock::{Clock, SystemClock};
use dexcom_exporter::share::{ClientSettings, Login, Region, ShareClient};
use dexcom_exporter::simulator::{AccountSpec, Scenario, Simulator};
use dexcom_testkit::bench::PASSWORD;

const EXPORTER_ACCOUNT: &str = "bench-exporter";
const TIMESTAMP_METRIC: &str = "dexcom_glucose_reading_timestamp_seconds{account=\"";
const BASELINE_ACCOUNT: &str = "bench-baseline";
/// Fixed-interval pollers run at evenly spread phases.
const BASELINE_PHASES: usize = 8;

struct Args {
    interval: Duration,
    readings: usize,
    accounts: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        interval: Duration::from_secs(20),
        readings: 60,
        accounts: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--interval" => {
                let value = it.next().unwrap_or_default();
                args.interval = humantime::parse_duration(&value).unwrap_or_else(|e| {
                    eprintln!("--interval {value:?}: {e}");
                    std::process::exit(2)
                });
            }
            "--readings" => {
                let value = it.next().unwrap_or_default();
                args.readings = value.parse().unwrap_or_else(|e| {
                    eprintln!("--readings {value:?}: {e}");
                    std::process::exit(2)
                });
            }
            "--accounts" => {
                let value = it.next().unwrap_or_default();
                args.accounts = value.parse().ok().filter(|n| *n >= 1).unwrap_or_else(|| {
                    eprintln!("--accounts {value:?}: a whole number of at least 1");
                    std::process::exit(2)
                });
            }
            // cargo bench passes --bench; ignore anything else of its own.
            _ => {}
        }
    }
    args
}

/// Lag of each reading (by sensor time) from visible-on-Share to seen.
#[derive(Default)]
struct Observed {
    lags_ms: HashMap<i64, i64>,
}

impl Observed {
    fn record(&mut self, sensor_ms: i64, visible_ms: i64, seen_ms: i64) {
        self.lags_ms
            .entry(sensor_ms)
            .or_insert(seen_ms - visible_ms);
    }

    fn percentile(&self, p: f64) -> Option<i64> {
        let mut lags: Vec<i64> = self.lags_ms.values().copied().collect();
        if lags.is_empty() {
            return None;
        }
        lags.sort_unstable();
        Some(lags[((lags.len() - 1) as f64 * p).round() as usize])
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let interval = args.interval;
    let interval_ms = interval.as_millis() as i64;
    let names: Vec<String> = if args.accounts == 1 {
        vec![EXPORTER_ACCOUNT.to_owned()]
    } else {
        (0..args.accounts)
            .map(|i| format!("{EXPORTER_ACCOUNT}-{i:04}"))
            .collect()
    };
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let accounts = names
        .iter()
        .map(|name| AccountSpec::new(name, PASSWORD))
        .chain([AccountSpec::new(BASELINE_ACCOUNT, PASSWORD)])
        .collect();
    let scenario = Scenario {
        seed: 11,
        reading_interval: interval,
        accounts,
        ..Scenario::default()
    };
    let (delay_min, delay_max) = scenario.upload_delay_range();
    let simulator = Simulator::new(scenario).expect("scenario");
    let share = simulator
        .start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator binds");
    let base_url = share.base_url();
    let clock = SystemClock;

    println!(
        "freshness benchmark: interval {}, upload delay {}–{} (2–10% of the interval), {} readings, {} exporter account(s)",
        humantime::format_duration(interval),
        humantime::format_duration(delay_min),
        humantime::format_duration(delay_max),
        args.readings,
        args.accounts
    );

    // The exporter under test, configured exactly as a user would.
    let interval_text = format!("{}ms", interval_ms);
    let config_dir = std::env::temp_dir().join(format!("freshness-bench-{}", std::process::id()));
    let mut flags: Vec<String> = ["--dexcom.reading-interval", &interval_text]
        .map(str::to_owned)
        .into();
    if args.accounts == 1 {
        flags.extend(
            [
                "--dexcom.username",
                EXPORTER_ACCOUNT,
                "--dexcom.base-url",
                &base_url,
            ]
            .map(str::to_owned),
        );
    } else {
        flags.extend([
            "--config.file".to_owned(),
            write_accounts(&config_dir, &names, &base_url),
        ]);
    }
    let exporter = dexcom_testkit::bench::start_exporter(flags).await;
    let metrics_url = format!("http://{}/metrics", exporter.addr);
    let stop = tokio_util::sync::CancellationToken::new();

    // The baseline: fixed-interval pollers with the same client. A fixed poller's lag depends
    // on its phase relative to the sensor, which is luck, so run BASELINE_PHASES of them at
    // evenly spread phases and pool their lags: the expectation over a random start.
    let mut baselines = Vec::new();
    for phase in 0..BASELINE_PHASES {
        let sim = simulator.clone();
        let base = base_url.clone();
        let stop = stop.clone();
        let offset = interval.mul_f64(phase as f64 / BASELINE_PHASES as f64);
        baselines.push(tokio::spawn(async move {
            let mut client = ShareClient::new(ClientSettings {
                base_url: base.parse().expect("url"),
                application_id: Region::Us.application_id().to_owned(),
                login: Login::Username(BASELINE_ACCOUNT.to_owned()),
                password: PASSWORD.to_owned().into(),
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(5),
            })
            .expect("client");
            let mut observed = Observed::default();
            tokio::time::sleep(offset).await;
            let mut ticker = tokio::time::interval(interval);
            let mut first = None;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                if let Ok(readings) = client.latest_readings(1440, 2).await {
                    let seen = SystemClock.now_ms();
                    let Some(newest) = readings.first() else {
                        continue;
                    };
                    if *first.get_or_insert(newest.timestamp_ms) == newest.timestamp_ms {
                        continue;
                    }
                    if let Some(served) = sim.reading_at(BASELINE_ACCOUNT, newest.timestamp_ms) {
                        observed.record(served.sensor_ms, served.visible_ms, seen);
                    }
                }
            }
            observed
        }));
    }

    // Scrape the exporter and time each scrape.
    let http = reqwest::Client::new();
    let scrape_every = (interval / 200).max(Duration::from_millis(5));
    let mut observed = Observed::default();
    let mut scrape_latencies = Vec::new();
    let started = Instant::now();
    let run_for = interval * u32::try_from(args.readings).unwrap_or(u32::MAX) + interval;
    let mut first_sensor_ms: Vec<Option<i64>> = vec![None; names.len()];
    let mut all_reporting_after = None;
    let mut body_bytes = 0;
    while started.elapsed() < run_for {
        let before = Instant::now();
        let body = match http.get(&metrics_url).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        scrape_latencies.push(before.elapsed());
        let seen = clock.now_ms();
        body_bytes = body.len();
        for (name, seconds) in body.lines().filter_map(reading_timestamp) {
            let Some(&i) = index.get(name) else {
                continue;
            };
            let sensor_ms = (seconds * 1000.0).round() as i64;
            // The reading present at start-up was not "new": it says nothing about lag.
            let first = *first_sensor_ms[i].get_or_insert(sensor_ms);
            let served = (sensor_ms != first)
                .then(|| simulator.reading_at(name, sensor_ms))
                .flatten();
            if let Some(served) = served {
                // Distinct keys per account: the pool holds every account's observations.
                let key = served.sensor_ms * names.len() as i64 + i as i64;
                observed.record(key, served.visible_ms, seen);
            }
        }
        if all_reporting_after.is_none() && first_sensor_ms.iter().all(Option::is_some) {
            all_reporting_after = Some(started.elapsed());
        }
        tokio::time::sleep(scrape_every.saturating_sub(before.elapsed())).await;
    }
    stop.cancel();
    let mut baseline = Observed::default();
    for (phase, task) in baselines.into_iter().enumerate() {
        for (sensor_ms, lag) in task.await.expect("baseline").lags_ms {
            // Distinct keys per phase: the pool holds every poller's observations.
            baseline
                .lags_ms
                .insert(sensor_ms * BASELINE_PHASES as i64 + phase as i64, lag);
        }
    }
    exporter.stop().await;

    let exporter_counts: Vec<_> = names.iter().map(|n| simulator.request_counts(n)).collect();
    let exporter_reads = exporter_counts.iter().map(|c| c.read).sum();
    let logins: u64 = exporter_counts
        .iter()
        .map(|c| c.authenticate + c.login)
        .sum();
    let baseline_reads = simulator.request_counts(BASELINE_ACCOUNT).read;
    let expected = args.readings as f64;
    let row = |name: &str, o: &Observed, reads: u64, pollers: usize| {
        let p50 = o.percentile(0.5).unwrap_or(-1);
        let p95 = o.percentile(0.95).unwrap_or(-1);
        let seen = o.lags_ms.len().max(1) as f64;
        println!(
            "| {name:<34} | {:>8} | {:>8.2} s | {:>6.1}% | {:>8.2} s | {:>6.1}% | {:>13.2} |",
            o.lags_ms.len() / pollers,
            p50 as f64 / 1000.0,
            100.0 * p50 as f64 / interval_ms as f64,
            p95 as f64 / 1000.0,
            100.0 * p95 as f64 / interval_ms as f64,
            reads as f64 / seen,
        );
    };
    println!();
    println!(
        "| poller                             | readings | p50 lag    | p50/int | p95 lag    | p95/int | reads/reading |"
    );
    println!(
        "|------------------------------------|----------|------------|---------|------------|---------|---------------|"
    );
    row(
        "dexcom_exporter (reading-aligned)",
        &observed,
        exporter_reads,
        names.len(),
    );
    row(
        "fixed-interval poller (baseline)",
        &baseline,
        baseline_reads,
        BASELINE_PHASES,
    );
    // The first new reading after start, per account: the one a restart makes people wait for.
    let mut firsts: Vec<i64> = (0..names.len())
        .filter_map(|i| {
            observed
                .lags_ms
                .iter()
                .filter(|(key, _)| key.rem_euclid(names.len() as i64) == i as i64)
                .min_by_key(|(key, _)| **key)
                .map(|(_, lag)| *lag)
        })
        .collect();
    firsts.sort_unstable();
    if let (Some(median), Some(worst)) = (firsts.get(firsts.len() / 2), firsts.last()) {
        println!(
            "first new reading after start: lag {:.2} s ({:.1}% of the interval) at the median account, {:.2} s at worst",
            *median as f64 / 1000.0,
            100.0 * *median as f64 / interval_ms as f64,
            *worst as f64 / 1000.0
        );
    }
    println!();
    scrape_latencies.sort_unstable();
    let pct = |p: f64| scrape_latencies[((scrape_latencies.len() - 1) as f64 * p) as usize];
    println!(
        "/metrics scrapes: {} in the run, latency p50 {:?}, p99 {:?}, max {:?}",
        scrape_latencies.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    let rss = format!("{:.1} MB", dexcom_testkit::bench::rss_mb("self"));
    println!(
        "resident memory of the whole benchmark process (simulator + exporter + baseline): {rss}"
    );
    println!(
        "{} exporter account(s): every one on /metrics after {}; {:.2} Share requests to log in per account (authenticate + login); last /metrics body {} kB",
        names.len(),
        all_reporting_after.map_or_else(
            || "never".to_owned(),
            |d| format!("{:.1} s", d.as_secs_f64())
        ),
        logins as f64 / names.len() as f64,
        body_bytes / 1024
    );
    println!(
        "readings expected about {expected:.0}; targets: p50 ≤ 7% and p95 ≤ 15% of the interval, ≤ 1.3 reads per reading"
    );
    share.stop().await;
    std::fs::remove_dir_all(config_dir).ok();
}

/// `(account, seconds)` from a `dexcom_glucose_reading_timestamp_seconds` sample line.
fn reading_timestamp(line: &str) -> Option<(&str, f64)> {
    let (name, value) = line.strip_prefix(TIMESTAMP_METRIC)?.split_once("\"} ")?;
    Some((name, value.trim().parse().ok()?))
}

/// A `--config.file` listing `names`, each with its own password file, as a clinic's would.
fn write_accounts(dir: &std::path::Path, names: &[String], base_url: &str) -> String {
    std::fs::create_dir_all(dir).expect("temp dir");
    let mut yaml = String::from("accounts:\n");
    for name in names {
        let password_file = dir.join(format!("{name}.pw"));
        std::fs::write(&password_file, PASSWORD).expect("password file");
        yaml.push_str(&format!(
            "  - username: {name}\n    password_file: {}\n    base_url: {base_url}\n",
            password_file.display()
        ));
    }
    let path = dir.join("accounts.yml");
    std::fs::write(&path, yaml).expect("config file");
    path.display().to_string()
}
