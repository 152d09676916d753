//! Alert latency, end to end, at the real 5-minute cadence: from the moment a reading of an
//! urgent low reaches Share to the moment Alertmanager delivers `DexcomGlucoseUrgentLow` to a
//! receiver, through the exporter, Debian's Prometheus (with the shipped `prometheus.yml`
//! intervals, alerts and recording rules) and Debian's Alertmanager (with the shipped file, its
//! webhooks pointed at a local one, since Pushover and Telegram are on the internet). Several
//! accounts reach their urgent low at different readings during one run.
//! Baseline, side by side in the same run: a second Prometheus and Alertmanager with the
//! previous intervals (30 s scrapes and evaluations).
//!
//! `cargo bench --bench alert_latency -- [--lows 6]` (takes (lows + 1) × 5 minutes)

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use dexcom_exporter::clock::unix_ms;
use dexcom_exporter::http::{ServeLimits, respond, serve};
use dexcom_exporter::simulator::{AccountSpec, GlucoseProfile, Scenario, Simulator};
use dexcom_testkit::bench::PASSWORD;
use dexcom_testkit::free_port;
use dexcom_testkit::prometheus::{
    KillOnDrop, prometheus_command, repo, start_shipped_alertmanager,
};
use http_body_util::BodyExt;

const INTERVAL: Duration = Duration::from_secs(300);

fn tool(name: &str) -> std::path::PathBuf {
    dexcom_testkit::find_tool(name).unwrap_or_else(|| panic!("{name} is not installed"))
}

/// The account whose urgent low (≤ 55) comes at reading `index` after now: an overnight-low
/// curve whose day starts at the right time, found by trying the night in 5-minute steps.
fn account_with_low_at(name: &str, index: usize, now_ms: i64) -> Option<AccountSpec> {
    for minutes in (0..8 * 60).step_by(5) {
        let spec = AccountSpec {
            profile: GlucoseProfile::OvernightLow,
            day_starts_at: Some(format!("{:02}:{:02}", minutes / 60, minutes % 60)),
            ..AccountSpec::new(name, PASSWORD)
        };
        let simulator = Simulator::new(Scenario {
            reading_interval: INTERVAL,
            accounts: vec![spec.clone()],
            ..Scenario::default()
        })
        .ok()?;
        let ahead = simulator.readings_between(name, now_ms - 300_000, now_ms + 20 * 300_000);
        let first_low = ahead.iter().position(|r| r.mg_per_dl <= 55);
        if first_low == Some(index) {
            return Some(spec);
        }
    }
    None
}

/// A Prometheus and an Alertmanager with the shipped configuration at `scrape`/`evaluation`
/// intervals, delivering to a webhook that records when each account's urgent low arrives.
struct Stack {
    _children: Vec<KillOnDrop>,
    delivered: Arc<Mutex<Vec<(String, i64)>>>,
}

async fn stack(dir: &std::path::Path, exporter: &str, interval: &str) -> Stack {
    std::fs::create_dir_all(dir).expect("dir");
    let delivered: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let sink = delivered.clone();
    tokio::spawn(serve(
        listener,
        move |request: hyper::Request<hyper::body::Incoming>| {
            let sink = sink.clone();
            async move {
                let body = request.into_body().collect().await.map(|b| b.to_bytes());
                let at = unix_ms(SystemTime::now());
                if let Ok(body) = body
                    && let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body)
                {
                    for alert in json["alerts"].as_array().cloned().unwrap_or_default() {
                        if alert["status"] == "firing"
                            && alert["labels"]["alertname"] == "DexcomGlucoseUrgentLow"
                        {
                            let account =
                                alert["labels"]["account"].as_str().unwrap_or("").to_owned();
                            sink.lock().expect("sink").push((account, at));
                        }
                    }
                }
                respond(200, "text/plain", "ok")
            }
        },
        tokio_util::sync::CancellationToken::new(),
        ServeLimits::default(),
        None,
    ));
    let am_port = free_port();
    let alertmanager =
        start_shipped_alertmanager(&tool("prometheus-alertmanager"), dir, am_port, &hook).await;
    // The shipped prometheus.yml with its intervals replaced by `interval` and its targets by
    // this run's exporter and Alertmanager.
    let shipped = std::fs::read_to_string(repo().join("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    let config = shipped
        .replace(
            "scrape_interval: 15s",
            &format!("scrape_interval: {interval}"),
        )
        .replace(
            "evaluation_interval: 15s",
            &format!("evaluation_interval: {interval}"),
        )
        .replace("127.0.0.1:9093", &format!("127.0.0.1:{am_port}"))
        .replace("127.0.0.1:18018", exporter)
        .replace(
            "  - alerts.yml\n  - recording.yml",
            &format!(
                "  - {}\n  - {}",
                repo().join("deploy/prometheus/alerts.yml").display(),
                repo().join("deploy/prometheus/recording.yml").display()
            ),
        );
    let prometheus = prometheus_command(&tool("prometheus"), dir, free_port(), &config)
        .spawn()
        .expect("prometheus");
    Stack {
        _children: vec![alertmanager, KillOnDrop(prometheus)],
        delivered,
    }
}

fn report(name: &str, latencies: &mut [f64], lows: usize) {
    latencies.sort_by(f64::total_cmp);
    if latencies.is_empty() {
        println!("{name}: no urgent low delivered");
        return;
    }
    let p50 = latencies[(latencies.len() - 1) / 2];
    let worst = latencies[latencies.len() - 1];
    let within = latencies.iter().filter(|l| **l <= 60.0).count();
    println!(
        "{name}: {} of {lows} lows delivered; p50 {p50:.1} s, worst {worst:.1} s, {within} within 60 s; all: {latencies:.1?}",
        latencies.len()
    );
}

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let lows: usize = argv
        .windows(2)
        .find(|w| w[0] == "--lows")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(6);
    let dir = std::env::temp_dir().join(format!("alert-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let now = unix_ms(SystemTime::now());
    let accounts: Vec<AccountSpec> = (1..=lows)
        .filter_map(|i| account_with_low_at(&format!("low{i}"), i, now))
        .collect();
    println!(
        "{} accounts, urgent lows at readings 1..{lows} from now (5-minute cadence)",
        accounts.len()
    );
    let names: Vec<String> = accounts.iter().map(|a| a.username.clone()).collect();
    let simulator = Simulator::new(Scenario {
        reading_interval: INTERVAL,
        accounts,
        ..Scenario::default()
    })
    .expect("scenario");
    let share = simulator
        .start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("share");

    let yaml = dexcom_testkit::bench::accounts_yaml(&dir, &share.base_url(), &names);
    std::fs::write(dir.join("accounts.yml"), yaml).expect("yaml");
    let exporter = dexcom_testkit::bench::start_exporter([
        "--config.file".to_owned(),
        dir.join("accounts.yml").display().to_string(),
        "--log.level".to_owned(),
        "warn".to_owned(),
    ])
    .await;
    let addr = exporter.addr.to_string();

    let shipped = stack(&dir.join("shipped"), &addr, "15s").await;
    let baseline = stack(&dir.join("baseline"), &addr, "30s").await;
    let run_for = INTERVAL * (lows as u32 + 1) + Duration::from_secs(90);
    println!("running {} s", run_for.as_secs());
    tokio::time::sleep(run_for).await;

    // Latency: delivery minus the moment the first urgent-low reading became visible on Share.
    let mut results = Vec::new();
    for (name, stack) in [
        ("shipped 15 s intervals", &shipped),
        ("baseline 30 s intervals", &baseline),
    ] {
        let delivered = stack.delivered.lock().expect("sink").clone();
        let mut latencies = Vec::new();
        for account in &names {
            let readings =
                simulator.readings_between(account, now - 300_000, unix_ms(SystemTime::now()));
            let Some(low) = readings.iter().find(|r| r.mg_per_dl <= 55) else {
                continue;
            };
            let first = delivered
                .iter()
                .filter(|(a, _)| a == account)
                .map(|(_, at)| *at)
                .min();
            // Per account, so an outlier can be traced to its reading (and the exporter's log).
            println!(
                "  {name}: {account}: {} mg/dL at sensor time {} ms, visible after {:.1} s; delivered {}",
                low.mg_per_dl,
                low.sensor_ms,
                (low.visible_ms - low.sensor_ms) as f64 / 1000.0,
                first.map_or("never".to_owned(), |at| format!(
                    "{:.1} s after visible",
                    (at - low.visible_ms) as f64 / 1000.0
                ))
            );
            if let Some(at) = first {
                latencies.push((at - low.visible_ms) as f64 / 1000.0);
            }
        }
        results.push((name, latencies));
    }
    for (name, mut latencies) in results {
        report(name, &mut latencies, names.len());
    }
    exporter.stop().await;
    share.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
