//! Remote-write benchmark: bytes on the wire per reading, samples per second the writer
//! sustains, and the time to backfill 24 hours of many accounts after a restart, with Share
//! reads per account, each beside a baseline measured in the same run.
//!
//! `cargo bench --bench remote_write -- [--accounts 300] [--interval 30s] [--samples 400000]`
//!
//! - Bytes: one reading per request (steady state) and a day in one request, against the
//!   baseline of scraping `/metrics` every 15 s (20 scrapes per 5-minute reading).
//! - Throughput: the real sender (pending scan, protobuf, snappy, HTTP) draining histories of
//!   `--samples / 2` readings into a receiver on loopback that answers 204 at once, and the
//!   same into Debian's Prometheus when it is installed.
//! - Backfill: the exporter starts with `--accounts` accounts whose Share holds a full day
//!   (288 readings each, at `--interval` cadence) and remote write on; time until the receiver
//!   has acknowledged every reading of every account, and the Share reads and logins each
//!   account cost. Baseline: the same start without remote write, timed to the first value of
//!   every account on `/metrics` (the part of the wait that is the poll schedule's spread).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dexcom_exporter::History;
use dexcom_exporter::Metrics;
use dexcom_exporter::clock::{SystemClock, unix_ms};
use dexcom_exporter::config::{RemoteWriteTarget, RemoteWriteTls};
use dexcom_exporter::http::{ServeLimits, respond, serve};
use dexcom_exporter::remote_write::{
    Sender, SenderAccount, Series, WriteClient, compress, write_request,
};
use dexcom_exporter::share::{Reading, Trend};
use dexcom_exporter::simulator::{AccountSpec, Scenario, Simulator};
use dexcom_testkit::bench::PASSWORD;
use dexcom_testkit::prometheus::{KillOnDrop, prometheus_command, wait_until_ready};
use http_body_util::BodyExt;

struct Args {
    accounts: usize,
    interval: Duration,
    samples: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        accounts: 300,
        interval: Duration::from_secs(30),
        samples: 400_000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.windows(2) {
        let value = &pair[1];
        match pair[0].as_str() {
            "--accounts" => args.accounts = value.parse().expect("--accounts N"),
            "--interval" => {
                args.interval = humantime::parse_duration(value).expect("--interval DURATION")
            }
            "--samples" => args.samples = value.parse().expect("--samples N"),
            // cargo bench passes --bench; anything else is ignored.
            _ => {}
        }
    }
    args
}

/// A receiver that answers 204 at once, counting requests and bytes.
struct NullReceiver {
    url: String,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

async fn null_receiver() -> NullReceiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("benchmark setup");
    let url = format!(
        "http://{}/api/v1/write",
        listener.local_addr().expect("benchmark setup")
    );
    let requests = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let (r, b) = (requests.clone(), bytes.clone());
    tokio::spawn(serve(
        listener,
        move |request: hyper::Request<hyper::body::Incoming>| {
            let (r, b) = (r.clone(), b.clone());
            async move {
                let body = request.into_body().collect().await.map(|c| c.to_bytes());
                r.fetch_add(1, Ordering::Relaxed);
                b.fetch_add(body.map_or(0, |c| c.len() as u64), Ordering::Relaxed);
                respond(204, "text/plain", "")
            }
        },
        tokio_util::sync::CancellationToken::new(),
        ServeLimits::default(),
        None,
    ));
    NullReceiver {
        url,
        requests,
        bytes,
    }
}

fn target(url: &str) -> RemoteWriteTarget {
    RemoteWriteTarget {
        name: "bench".into(),
        url: url.parse().expect("benchmark setup"),
        timeout: Duration::from_secs(30),
        headers: Default::default(),
        auth: None,
        tls: RemoteWriteTls::default(),
    }
}

fn reading(ms: i64, i: i64) -> Reading {
    Reading {
        timestamp_ms: ms,
        utc_offset_minutes: None,
        mg_per_dl: 70 + (i % 150) as u16,
        trend: Trend::Flat,
    }
}

fn series(account: &str, readings: &[Reading]) -> Vec<Series> {
    let labels = |name: &str| {
        vec![
            ("__name__".to_owned(), name.to_owned()),
            ("account".to_owned(), account.to_owned()),
            ("job".to_owned(), "dexcom".to_owned()),
        ]
    };
    vec![
        Series {
            labels: labels("dexcom_reading_glucose_mg_per_dl"),
            samples: readings
                .iter()
                .map(|r| (r.timestamp_ms, f64::from(r.mg_per_dl)))
                .collect(),
        },
        Series {
            labels: labels("dexcom_reading_trend"),
            samples: readings.iter().map(|r| (r.timestamp_ms, 4.0)).collect(),
        },
    ]
}

fn rss_mb() -> f64 {
    dexcom_testkit::bench::rss_mb("self")
}

async fn metrics_text(addr: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("benchmark setup")
        .text()
        .await
        .expect("benchmark setup")
}

fn sum_of(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Drains `readings_total` readings spread over 100 accounts through the real sender.
async fn throughput(url: &str, readings_total: usize) -> (f64, Duration) {
    let changed = Arc::new(tokio::sync::Notify::new());
    let now = unix_ms(std::time::SystemTime::now());
    let per_account = (readings_total / 100).max(1);
    let metrics = Metrics::new(
        std::iter::empty(),
        Duration::from_secs(1200),
        Arc::new(SystemClock),
    );
    let mut accounts = Vec::new();
    for a in 0..100 {
        let history = Arc::new(History::new(&format!("bench-{a:03}"), changed.clone()));
        // Readings one second apart so a day's retention holds them all.
        let batch: Vec<Reading> = (0..per_account as i64)
            .map(|i| reading(now - i * 1000, i))
            .collect();
        history.merge(&batch, now);
        accounts.push(SenderAccount::in_memory(history));
    }
    let sender = Sender::new(
        WriteClient::new(target(url)).expect("benchmark setup"),
        metrics.remote_write("bench", url),
        accounts,
        vec![("job".into(), "dexcom".into())],
    );
    let registry = metrics.registry();
    let stop = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(sender.run(changed, stop.clone()));
    let expected = (per_account * 100 * 2) as f64;
    loop {
        let text = dexcom_exporter::render_metrics(&registry);
        if sum_of(&text, "dexcom_remote_storage_samples_total") >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    let _ = task.await;
    (expected / elapsed.as_secs_f64(), elapsed)
}

async fn start_prometheus(dir: &std::path::Path) -> Option<(KillOnDrop, String)> {
    let port = dexcom_testkit::free_port();
    let config = "storage:\n  tsdb:\n    out_of_order_time_window: 1d\n";
    let child = prometheus_command(&dexcom_testkit::find_tool("prometheus")?, dir, port, config)
        .arg("--web.enable-remote-write-receiver")
        .spawn()
        .ok()?;
    let child = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_ready(&format!("{base}/-/ready"), Duration::from_secs(20))
        .await
        .then(|| (child, format!("{base}/api/v1/write")))
}

/// Starts the exporter on `accounts` of `simulator`, optionally writing to `remote_write`.
async fn start_exporter(
    dir: &std::path::Path,
    names: &[String],
    base_url: &str,
    interval: Duration,
    remote_write: Option<&str>,
) -> dexcom_testkit::RunningExporter {
    let mut yaml = dexcom_testkit::bench::accounts_yaml(dir, base_url, names);
    if let Some(url) = remote_write {
        yaml.push_str(&format!("remote_write:\n  - url: {url}\n    name: bench\n"));
    }
    let file = dir.join("accounts.yml");
    std::fs::write(&file, yaml).expect("benchmark setup");
    dexcom_testkit::bench::start_exporter([
        "--config.file".to_owned(),
        file.display().to_string(),
        "--dexcom.reading-interval".to_owned(),
        humantime::format_duration(interval).to_string(),
        "--log.level".to_owned(),
        "warn".to_owned(),
    ])
    .await
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let dir = std::env::temp_dir().join(format!("rw-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("benchmark setup");

    // 1. Bytes on the wire per reading.
    let now = unix_ms(std::time::SystemTime::now());
    let one = compress(&write_request(&series(
        "bench-account-000",
        &[reading(now, 1)],
    )))
    .expect("benchmark setup");
    let day: Vec<Reading> = (0..288).map(|i| reading(now - i * 300_000, i)).collect();
    let day_body =
        compress(&write_request(&series("bench-account-000", &day))).expect("benchmark setup");
    println!("== bytes on the wire per reading (glucose + trend, labels account and job)");
    println!(
        "remote write, one reading per request (steady state): {} bytes",
        one.len()
    );
    println!(
        "remote write, a day in one request (backfill):         {:.1} bytes per reading ({} bytes for 288)",
        day_body.len() as f64 / 288.0,
        day_body.len()
    );

    // 3 (first, for the scrape size of the baseline). Backfill after a restart.
    let names: Vec<String> = (0..args.accounts)
        .map(|i| format!("bench-{i:04}"))
        .collect();
    let scenario = Scenario {
        seed: 5,
        reading_interval: args.interval,
        accounts: names
            .iter()
            .map(|n| AccountSpec::new(n, PASSWORD))
            .collect(),
        ..Scenario::default()
    };
    let simulator = Simulator::new(scenario).expect("benchmark setup");
    let share = simulator
        .start("127.0.0.1:0".parse().expect("benchmark setup"))
        .await
        .expect("benchmark setup");
    let receiver = null_receiver().await;

    // Baseline: no remote write; time until every account shows a value.
    let base_dir = dir.join("baseline");
    std::fs::create_dir_all(&base_dir).expect("benchmark setup");
    let started = Instant::now();
    let exporter = start_exporter(&base_dir, &names, &share.base_url(), args.interval, None).await;
    let addr = exporter.addr;
    let baseline_time = loop {
        let text = metrics_text(addr).await;
        let shown = text
            .lines()
            .filter(|l| l.starts_with("dexcom_glucose_mg_per_dl{"))
            .count();
        if shown >= names.len() {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let one_account_scrape = {
        let text = metrics_text(addr).await;
        // The per-account share of a scrape: the lines naming the first account.
        text.lines()
            .filter(|l| l.contains("account=\"bench-0000\""))
            .map(|l| l.len() + 1)
            .sum::<usize>()
    };
    exporter.stop().await;
    let reads_before: u64 = names.iter().map(|n| simulator.read_log(n).reads).sum();
    let day_reads_before: u64 = names.iter().map(|n| simulator.read_log(n).day_reads).sum();
    let logins_before: u64 = names
        .iter()
        .map(|n| simulator.request_counts(n).login)
        .sum();
    println!(
        "baseline, scraping /metrics every 15 s: {} bytes of one account's series per scrape, {} bytes per 5-minute reading (20 scrapes)",
        one_account_scrape,
        one_account_scrape * 20
    );

    // With remote write: time until every reading of every account is acknowledged.
    let rw_dir = dir.join("remote-write");
    std::fs::create_dir_all(&rw_dir).expect("benchmark setup");
    let rss_before = rss_mb();
    let started = Instant::now();
    let exporter = start_exporter(
        &rw_dir,
        &names,
        &share.base_url(),
        args.interval,
        Some(&receiver.url),
    )
    .await;
    let addr = exporter.addr;
    let expected: usize = names
        .iter()
        .map(|n| simulator.visible_readings(n, 288).len())
        .sum();
    let backfill_time = loop {
        let text = metrics_text(addr).await;
        let acked = sum_of(&text, "dexcom_remote_storage_samples_total");
        if acked >= (expected * 2) as f64 {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reads: u64 = names
        .iter()
        .map(|n| simulator.read_log(n).reads)
        .sum::<u64>()
        - reads_before;
    let logins: u64 = names
        .iter()
        .map(|n| simulator.request_counts(n).login)
        .sum::<u64>()
        - logins_before;
    let full_day_reads: u64 = names
        .iter()
        .map(|n| simulator.read_log(n).day_reads)
        .sum::<u64>()
        - day_reads_before;
    let text = metrics_text(addr).await;
    let scrape_bytes = text.len();
    exporter.stop().await;
    println!(
        "\n== backfill of 24 hours after a restart: {} accounts, readings every {}",
        names.len(),
        humantime::format_duration(args.interval)
    );
    println!(
        "remote write: {} readings ({} samples) acknowledged in {:.1} s; {:.2} Share reads and {:.2} logins per account in that time ({} reads of a whole day for {} accounts; the others are the regular polls for new readings); {} requests, {:.1} MB to the receiver; RSS {:.1} -> {:.1} MB; /metrics {} KB",
        expected,
        expected * 2,
        backfill_time.as_secs_f64(),
        reads as f64 / names.len() as f64,
        logins as f64 / names.len() as f64,
        full_day_reads,
        names.len(),
        receiver.requests.load(Ordering::Relaxed),
        receiver.bytes.load(Ordering::Relaxed) as f64 / 1e6,
        rss_before,
        rss_mb(),
        scrape_bytes / 1024
    );
    println!(
        "baseline (no remote write): every account's first value on /metrics after {:.1} s (the poll schedule's spread); the readings before it never reach Prometheus",
        baseline_time.as_secs_f64()
    );

    // 2. Writer throughput.
    println!(
        "\n== samples per second the writer sustains ({} samples)",
        args.samples
    );
    let (rate, took) = throughput(&receiver.url, args.samples / 2).await;
    println!(
        "into a receiver that answers 204 at once: {:.0} samples/s ({:.2} s)",
        rate,
        took.as_secs_f64()
    );
    std::fs::create_dir_all(dir.join("prometheus")).expect("benchmark setup");
    match start_prometheus(&dir.join("prometheus")).await {
        Some((prometheus, url)) => {
            let (rate, took) = throughput(&url, args.samples / 2).await;
            println!(
                "into Debian's Prometheus (remote-write receiver): {:.0} samples/s ({:.2} s)",
                rate,
                took.as_secs_f64()
            );
            drop(prometheus);
        }
        None => println!("into Prometheus: not installed, skipped"),
    }
    share.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
