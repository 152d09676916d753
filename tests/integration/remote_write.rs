//! Remote write against real stores: Debian's Prometheus (remote-write receiver on, with the
//! out-of-order window the README asks for) and VictoriaMetrics, fed by the exporter binary
//! (killed with SIGKILL and restarted) or in process (on a sped-up clock, for statistics over
//! realistic 5-minute readings). What each store holds is compared with the simulator's own
//! list of readings.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dexcom_exporter::clock::{Clock, ScaledClock, unix_ms};
use dexcom_exporter::simulator::{GlucoseProfile, Scenario, ServedReading};

use crate::common::{
    KillOnDrop, PASSWORD, USERNAME, free_port, get, password_env, prometheus_command, query, repo,
    sample, scenario, spawn_exporter_with_clock, start_at, start_exporter_process_logged, tool,
    wait_until_ready,
};
use crate::harness::ScratchDir;

const ACCOUNT: &str = "publisher@example.com";

/// A store receiving remote write, restartable (its command spawns it again on the same data).
struct Store {
    kind: &'static str,
    base: String,
    ready: String,
    process: Option<KillOnDrop>,
    command: std::process::Command,
}

impl Store {
    /// Prometheus with `--web.enable-remote-write-receiver`, a 1-day out-of-order window, the
    /// shipped recording rules evaluated every second, and nothing to scrape.
    async fn prometheus(dir: &std::path::Path) -> Option<Store> {
        let port = free_port();
        let config = format!(
            "global:\n  evaluation_interval: 1s\nstorage:\n  tsdb:\n    out_of_order_time_window: 1d\nrule_files:\n  - {}\n",
            repo().join("deploy/prometheus/recording.yml").display()
        );
        let mut command = prometheus_command(&tool("prometheus")?, dir, port, &config);
        command.arg("--web.enable-remote-write-receiver");
        Some(Store::launch("prometheus", port, "/-/ready", command).await)
    }

    /// VictoriaMetrics, accepting samples of any age.
    async fn victoria_metrics(dir: &std::path::Path) -> Option<Store> {
        let port = free_port();
        let mut command = std::process::Command::new(tool("victoria-metrics")?);
        command
            .arg(format!(
                "-storageDataPath={}",
                dir.join("vm-data").display()
            ))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .args(["-retentionPeriod=100y", "-loggerLevel=ERROR"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        Some(Store::launch("victoria-metrics", port, "/health", command).await)
    }

    /// Starts `command`, listening on loopback `port`, and waits until `ready` answers.
    async fn launch(
        kind: &'static str,
        port: u16,
        ready: &str,
        command: std::process::Command,
    ) -> Store {
        let base = format!("http://127.0.0.1:{port}");
        let mut store = Store {
            kind,
            ready: format!("{base}{ready}"),
            base,
            process: None,
            command,
        };
        store.start().await;
        store
    }

    fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.base)
    }

    async fn start(&mut self) {
        self.process = Some(KillOnDrop(self.command.spawn().unwrap()));
        assert!(
            wait_until_ready(&self.ready, Duration::from_secs(30)).await,
            "{} did not start",
            self.kind
        );
    }

    fn stop(&mut self) {
        self.process = None;
    }

    /// Every glucose sample of `account`, oldest first, as (ms, mg/dL).
    async fn glucose(&self, account: &str) -> Vec<(i64, u16)> {
        let selector =
            format!("dexcom_reading_glucose_mg_per_dl{{account=\"{account}\",job=\"dexcom\"}}");
        let client = reqwest::Client::new();
        match self.kind {
            "prometheus" => {
                let mut out = Vec::new();
                for series in self.query(&format!("{selector}[3d]")).await {
                    for pair in series["values"].as_array().cloned().unwrap_or_default() {
                        let seconds = pair[0].as_f64().unwrap();
                        let value: f64 = pair[1].as_str().unwrap().parse().unwrap();
                        out.push(((seconds * 1000.0).round() as i64, value as u16));
                    }
                }
                out
            }
            _ => {
                let text = client
                    .get(format!("{}/api/v1/export", self.base))
                    .query(&[("match[]", selector.as_str())])
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let mut out = Vec::new();
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let series: serde_json::Value = serde_json::from_str(line).unwrap();
                    let values = series["values"].as_array().unwrap();
                    let times = series["timestamps"].as_array().unwrap();
                    for (v, t) in values.iter().zip(times) {
                        out.push((t.as_i64().unwrap(), v.as_f64().unwrap() as u16));
                    }
                }
                out.sort_unstable();
                out
            }
        }
    }

    /// The result of an instant query on Prometheus.
    async fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        query(&self.base, expr).await.unwrap()
    }
}

fn served(readings: &[ServedReading]) -> Vec<(i64, u16)> {
    readings
        .iter()
        .map(|r| (r.sensor_ms, r.mg_per_dl))
        .collect()
}

/// Waits until `store` holds `account`'s readings up to `until_ms`; returns them.
async fn wait_for_samples(
    store: &Store,
    account: &str,
    until_ms: i64,
    within: Duration,
) -> Vec<(i64, u16)> {
    let deadline = Instant::now() + within;
    loop {
        let samples = store.glucose(account).await;
        if samples.last().is_some_and(|(t, _)| *t >= until_ms) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no sample at or after {until_ms} within {within:?} (newest {:?})",
            store.kind,
            samples.last()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// The exporter binary killed with SIGKILL and restarted, a phone's backlog, and Prometheus
/// down for several readings: every reading Share served is in both stores, once, at its
/// sensor time, and the restart resent only what was not acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reading_reaches_prometheus_and_victoria_metrics_through_kills_backlogs_and_outages()
{
    let dir = ScratchDir::new();
    let (Some(mut prometheus), Some(victoria)) = (
        Store::prometheus(dir.path()).await,
        Store::victoria_metrics(dir.path()).await,
    ) else {
        return;
    };
    let interval = Duration::from_millis(1000);
    let sim = start_at(
        scenario(interval),
        Arc::new(dexcom_exporter::clock::SystemClock),
    )
    .await;
    // Both receivers in one file beside an account given on the command line.
    let config = dir.path().join("remote-write.yml");
    std::fs::write(
        &config,
        format!(
            "remote_write:\n  - url: {}\n    name: prometheus\n    remote_timeout: 2s\n  - url: {}\n    name: victoria\n",
            prometheus.write_url(),
            victoria.write_url()
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let base_url = sim.base_url();
    let config_arg = config.display().to_string();
    let state_arg = state.display().to_string();
    let args = [
        "--web.listen-address",
        "127.0.0.1:0",
        "--dexcom.username",
        USERNAME,
        "--dexcom.base-url",
        base_url.as_str(),
        "--dexcom.reading-interval",
        "1s",
        "--config.file",
        config_arg.as_str(),
        "--storage.path",
        state_arg.as_str(),
    ];
    let env = [("DEXCOM_PASSWORD", PASSWORD)];
    let (mut first, _, _) = start_exporter_process_logged(&args, &env);
    let started = now_ms();
    wait_for_samples(
        &prometheus,
        ACCOUNT,
        started + 3000,
        Duration::from_secs(20),
    )
    .await;

    // SIGKILL: no shutdown path runs; five readings are taken while it is dead.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    tokio::time::sleep(interval * 5).await;
    let (_second, addr, logs) = start_exporter_process_logged(&args, &env);
    let restarted = now_ms();
    wait_for_samples(
        &prometheus,
        ACCOUNT,
        restarted + 2000,
        Duration::from_secs(20),
    )
    .await;
    // Only what was not acknowledged is sent again: the dead seconds, not the day.
    let scrape = get(&format!("http://{addr}/metrics")).await.1;
    let labels = format!(
        "remote_name=\"prometheus\",url=\"{}\"",
        prometheus.write_url()
    );
    let resent = sample(&scrape, "dexcom_remote_storage_samples_total", &labels).unwrap();
    assert!(
        resent < 2.0 * 40.0,
        "the restart sent {resent} samples: more than the readings since the kill (288 readings would be 576)"
    );

    // A phone offline for six readings, then its backlog at once.
    sim.simulator.start_offline(USERNAME);
    tokio::time::sleep(interval * 6).await;
    sim.simulator.end_offline(USERNAME);
    let back = now_ms();
    wait_for_samples(&prometheus, ACCOUNT, back + 1000, Duration::from_secs(20)).await;

    // Prometheus down for six readings: the exporter retries; nothing is lost.
    prometheus.stop();
    tokio::time::sleep(interval * 6).await;
    prometheus.start().await;
    let returned = now_ms();
    let in_prometheus = wait_for_samples(
        &prometheus,
        ACCOUNT,
        returned + 3000,
        Duration::from_secs(60),
    )
    .await;
    let in_victoria =
        wait_for_samples(&victoria, ACCOUNT, returned + 3000, Duration::from_secs(60)).await;

    for (store, samples) in [
        ("prometheus", &in_prometheus),
        ("victoria-metrics", &in_victoria),
    ] {
        let oldest = samples[0].0;
        let newest = samples.last().unwrap().0;
        let expected = served(&sim.simulator.readings_between(USERNAME, oldest, newest + 1));
        let missing: Vec<_> = expected.iter().filter(|e| !samples.contains(e)).collect();
        assert!(
            missing.is_empty(),
            "{store} lacks {} readings: {missing:?}",
            missing.len()
        );
        assert_eq!(
            samples, &expected,
            "{store}: each reading once, at its sensor time, with its value"
        );
        assert!(
            newest - oldest > 250_000,
            "{store} holds the day Share served at the first start ({} ms)",
            newest - oldest
        );
    }
    let logs = logs.lock().unwrap().clone();
    assert!(
        logs.contains("remote write failed; retrying"),
        "the outage is logged: {logs}"
    );
    assert_eq!(
        logs.matches("remote write failed; retrying").count(),
        1,
        "once per outage: {logs}"
    );
    assert!(logs.contains("takes samples again"), "{logs}");
    drop(sim);
}

/// Time in range from the shipped recording rules, over readings pushed at a realistic
/// 5-minute cadence (a clock 600 times fast, six hours in the past) and across a gap the
/// exporter was down for and filled on restart, equals time in range counted directly from the
/// simulator's readings, to 0.1 percentage point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_in_range_from_the_rules_equals_the_simulators_readings_across_a_backfilled_gap() {
    let dir = ScratchDir::new();
    let Some(prometheus) = Store::prometheus(dir.path()).await else {
        return;
    };
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(
        SystemTime::now() - Duration::from_secs(6 * 3600),
        600.0,
    ));
    // Three hours of history on Share, so every reading lies well inside the rules' 24 hours.
    // The overnight-low profile from just before its low, so the low bands have readings.
    let mut scenario = Scenario {
        retention: Duration::from_secs(3 * 3600),
        ..scenario(Duration::from_secs(300))
    };
    scenario.accounts[0].profile = GlucoseProfile::OvernightLow;
    scenario.accounts[0].day_starts_at = Some("23:00".to_owned());
    let sim = start_at(scenario, clock.clone()).await;
    let state = dir.path().join("state");
    let base_url = sim.base_url();
    let state_arg = state.display().to_string();
    let write_url = prometheus.write_url();
    let args = [
        "--dexcom.username",
        USERNAME,
        "--dexcom.base-url",
        base_url.as_str(),
        "--storage.path",
        state_arg.as_str(),
        "--remote-write.url",
        write_url.as_str(),
    ];
    let first = spawn_exporter_with_clock(&args, &password_env(), clock.clone()).await;
    // About 20 readings, then 50 simulated minutes down, then 20 more.
    tokio::time::sleep(Duration::from_secs(10)).await;
    first.stop().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = spawn_exporter_with_clock(&args, &password_env(), clock.clone()).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let newest = second.histories[0].newest().unwrap().timestamp_ms;
    second.stop().await;

    let expected = sim.simulator.readings_between(USERNAME, 0, newest + 1);
    let expected: Vec<_> = expected
        .into_iter()
        .filter(|r| r.sensor_ms >= unix_ms(clock.now()) - 30 * 3600 * 1000)
        .collect();
    let stored = wait_for_samples(&prometheus, ACCOUNT, newest, Duration::from_secs(30)).await;
    let oldest = stored[0].0;
    let expected: Vec<_> = expected
        .into_iter()
        .filter(|r| r.sensor_ms >= oldest)
        .collect();
    assert_eq!(
        stored,
        served(&expected),
        "the store holds exactly the readings"
    );
    let gap_filled = expected
        .windows(2)
        .all(|w| w[1].sensor_ms - w[0].sensor_ms == 300_000);
    assert!(gap_filled, "no reading is missing across the restart");

    let count = expected.len() as f64;
    type Band = (&'static str, fn(u16) -> bool);
    let bands: [Band; 5] = [
        ("very_low", |v| v < 54),
        ("low", |v| (54..70).contains(&v)),
        ("in_range", |v| (70..=180).contains(&v)),
        ("high", |v| (181..=250).contains(&v)),
        ("very_high", |v| v > 250),
    ];
    // The rules run every second; wait until they have seen every reading.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counted = prometheus
            .query(&format!(
                "dexcom:readings:count_24h{{account=\"{ACCOUNT}\"}}"
            ))
            .await;
        if counted
            .first()
            .and_then(|r| r["value"][1].as_str())
            .is_some_and(|v| v.parse::<f64>().ok() == Some(count))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rules never counted {count} readings: {counted:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut report = Vec::new();
    for (band, in_band) in bands {
        let direct =
            100.0 * expected.iter().filter(|r| in_band(r.mg_per_dl)).count() as f64 / count;
        let result = prometheus
            .query(&format!(
                "dexcom:reading_time_in_band:ratio_24h{{account=\"{ACCOUNT}\",band=\"{band}\"}}"
            ))
            .await;
        let from_rules = 100.0
            * result[0]["value"][1]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap();
        report.push(format!(
            "{band}: rules {from_rules:.2}% direct {direct:.2}%"
        ));
        assert!(
            (from_rules - direct).abs() <= 0.1,
            "{band}: {from_rules}% from the rules, {direct}% from the readings"
        );
    }
    eprintln!("{} readings; {}", expected.len(), report.join("; "));
    drop(sim);
}
