//! Clinic scale: the exporter binary with 1,000 accounts in one process, then 10,000 accounts
//! over 10 replicas (`--shard.index` of `--shard.count 10`, one configuration file), against
//! one simulator in this process at an accelerated cadence. Per replica: resident memory,
//! `/metrics` size, p50/p99 scrape time, and Share requests per second (logins and reads,
//! counted by the simulator per account and summed over the replica's shard). The one-process
//! run is the baseline: each of the 10 replicas holds about as many accounts, so each should
//! cost about the same.
//!
//! `cargo bench --bench scale -- [--interval 30s] [--accounts 1000] [--replicas 10]`

use std::time::{Duration, Instant};

use dexcom_exporter::config::shard_of;
use dexcom_exporter::simulator::{AccountSpec, Scenario, Simulator};

use dexcom_testkit::bench::PASSWORD;

struct Replica {
    child: std::process::Child,
    addr: String,
    index: u32,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &std::path::Path, interval: &str, index: u32, count: u32) -> Replica {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dexcom_exporter"))
        .args(["--config.file", &config.display().to_string()])
        .args(["--dexcom.reading-interval", interval])
        .args(["--web.listen-address", "127.0.0.1:0"])
        .args([
            "--shard.index",
            &index.to_string(),
            "--shard.count",
            &count.to_string(),
        ])
        .args(["--log.format", "text"])
        // Each replica's own state directory beside its configuration, never the default one
        // (a real installation's /var/lib/dexcom_exporter, or the user's own).
        .arg(format!(
            "--storage.path={}",
            config.with_extension(format!("state-{index}")).display()
        ))
        .env_remove("STATE_DIRECTORY")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("exporter");
    let mut reader = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let addr = loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).expect("log") > 0,
            "replica exited"
        );
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().expect("addr").to_owned();
        }
    };
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    Replica { child, addr, index }
}

/// The accounts of `names` in shard `index` of `count`.
fn owned(names: &[String], index: u32, count: u32) -> impl Iterator<Item = &String> {
    names.iter().filter(move |n| shard_of(n, count) == index)
}

/// One scrape of `/metrics` at `addr`.
async fn scrape(client: &reqwest::Client, addr: &str) -> bytes::Bytes {
    client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("scrape")
        .bytes()
        .await
        .expect("body")
}

fn requests(simulator: &Simulator, names: &[String], shard: Option<(u32, u32)>) -> u64 {
    names
        .iter()
        .filter(|n| shard.is_none_or(|(i, c)| shard_of(n, c) == i))
        .map(|n| simulator.request_counts(n).total())
        .sum()
}

async fn measure(
    label: &str,
    simulator: &Simulator,
    names: &[String],
    replicas: &[Replica],
    count: u32,
    interval: Duration,
) {
    let client = reqwest::Client::new();
    // Wait until every account of every replica shows a value.
    let started = Instant::now();
    for replica in replicas {
        let owned = owned(names, replica.index, count).count();
        loop {
            let body = scrape(&client, &replica.addr).await;
            let shown = String::from_utf8_lossy(&body)
                .lines()
                .filter(|l| l.starts_with("dexcom_glucose_mg_per_dl{"))
                .count();
            if shown >= owned {
                break;
            }
            assert!(
                started.elapsed() < interval * 6,
                "{label}: replica {} shows {shown} of {owned}",
                replica.index
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    println!(
        "{label}: every account on /metrics {:.1} s after start",
        started.elapsed().as_secs_f64()
    );
    // Steady state: requests over two intervals, then scrapes.
    let before: Vec<u64> = replicas
        .iter()
        .map(|r| requests(simulator, names, Some((r.index, count))))
        .collect();
    let window = Instant::now();
    tokio::time::sleep(interval * 2).await;
    let seconds = window.elapsed().as_secs_f64();
    println!(
        "| replica | accounts | RSS | /metrics | scrape p50 | scrape p99 | Share requests/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (replica, before) in replicas.iter().zip(before) {
        let owned = owned(names, replica.index, count).count();
        let after = requests(simulator, names, Some((replica.index, count)));
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..200 {
            let t = Instant::now();
            let body = scrape(&client, &replica.addr).await;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            size = body.len();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {} | {owned} | {:.1} MB | {} KB | {:.1} ms | {:.1} ms | {:.2} |",
            replica.index,
            dexcom_testkit::bench::rss_mb(&replica.child.id().to_string()),
            size / 1024,
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            (after - before) as f64 / seconds
        );
    }
}

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let arg = |name: &str| argv.windows(2).find(|w| w[0] == name).map(|w| w[1].clone());
    let interval_text = arg("--interval").unwrap_or_else(|| "30s".into());
    let interval = humantime::parse_duration(&interval_text).expect("--interval");
    let single: usize = arg("--accounts")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let count: u32 = arg("--replicas").and_then(|v| v.parse().ok()).unwrap_or(10);
    let total = single * count as usize;
    let dir = std::env::temp_dir().join(format!("scale-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let names: Vec<String> = (0..total).map(|i| format!("camper-{i:05}")).collect();
    let simulator = Simulator::new(Scenario {
        seed: 9,
        reading_interval: interval,
        accounts: names
            .iter()
            .map(|n| AccountSpec::new(n, PASSWORD))
            .collect(),
        ..Scenario::default()
    })
    .expect("scenario");
    let share = simulator
        .start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("share");
    let write_config = |file: &str, accounts: &[String]| {
        let path = dir.join(file);
        let yaml = dexcom_testkit::bench::accounts_yaml(&dir, &share.base_url(), accounts);
        std::fs::write(&path, yaml).expect("config");
        path
    };

    println!("== {single} accounts in one process, readings every {interval_text}");
    let one = write_config("one.yml", &names[..single]);
    {
        let replica = vec![spawn(&one, &interval_text, 0, 1)];
        measure(
            "one process",
            &simulator,
            &names[..single],
            &replica,
            1,
            interval,
        )
        .await;
    }

    println!(
        "\n== {total} accounts over {count} replicas (one configuration), readings every {interval_text}"
    );
    let all = write_config("all.yml", &names);
    let replicas: Vec<Replica> = (0..count)
        .map(|i| spawn(&all, &interval_text, i, count))
        .collect();
    measure("replicas", &simulator, &names, &replicas, count, interval).await;
    drop(replicas);
    share.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
