//! The whole stack, live: Debian's Prometheus scrapes `dexcom_exporter --demo` at a fast
//! cadence with the shipped rules; every PromQL expression of the dashboard and the rules
//! evaluates through Prometheus's HTTP API; the demo account with an overnight low makes
//! `DexcomGlucoseUrgentLow` fire, and a real Alertmanager delivers it to a webhook.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{
    KillOnDrop, free_port, prometheus_command, query, repo, start_exporter_process,
    start_shipped_alertmanager, tool,
};
use dexcom_exporter::http::{ServeLimits, respond, serve};
use http_body_util::BodyExt;
use serde::Deserialize;

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    expr: String,
}

fn rule_expressions() -> Vec<String> {
    [
        "deploy/prometheus/alerts.yml",
        "deploy/prometheus/recording.yml",
    ]
    .iter()
    .flat_map(|path| {
        let text = std::fs::read_to_string(repo().join(path)).unwrap();
        let file: RuleFile = serde_saphyr::from_str(&text).unwrap();
        file.groups
            .into_iter()
            .flat_map(|g| g.rules.into_iter().map(|r| r.expr))
    })
    .collect()
}

fn dashboard_expressions() -> Vec<(String, String)> {
    fn walk(panels: &[serde_json::Value], out: &mut Vec<(String, String)>) {
        for panel in panels {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let title = panel["title"].as_str().unwrap_or_default().to_owned();
                out.push((
                    title,
                    target["expr"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            if let Some(nested) = panel["panels"].as_array() {
                walk(nested, out);
            }
        }
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("grafana/dexcom.json")).unwrap())
            .unwrap();
    let mut out = Vec::new();
    walk(dashboard["panels"].as_array().unwrap(), &mut out);
    out.into_iter()
        .map(|(title, expr)| {
            let expr = expr
                .replace("$job", "dexcom")
                .replace("$instance", ".+")
                .replace("$account", ".+")
                .replace("$__rate_interval", "1m");
            (title, expr)
        })
        .collect()
}

async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_and_alertmanager_against_the_demo() {
    let (Some(prometheus_bin), Some(alertmanager_bin)) =
        (tool("prometheus"), tool("prometheus-alertmanager"))
    else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("live-stack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // A webhook receiver standing in for the pager.
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let webhook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let webhook_addr = webhook.local_addr().unwrap();
    let sink = received.clone();
    let stop_webhook = tokio_util::sync::CancellationToken::new();
    tokio::spawn(serve(
        webhook,
        move |request: hyper::Request<hyper::body::Incoming>| {
            let sink = sink.clone();
            async move {
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                respond(200, "text/plain", "ok")
            }
        },
        stop_webhook.clone(),
        ServeLimits::default(),
        None,
    ));

    // The exporter in demo mode, readings every 2 s, pushing every reading to Prometheus's
    // remote-write receiver (retrying until Prometheus is up).
    let prom_port = free_port();
    let remote_write = format!("http://127.0.0.1:{prom_port}/api/v1/write");
    let (_exporter, exporter_addr) = start_exporter_process(&[
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--dexcom.reading-interval",
        "2s",
        "--remote-write.url",
        &remote_write,
    ]);

    // Alertmanager with the shipped routing, receivers pointed at our webhook.
    let am_port = free_port();
    let _alertmanager = start_shipped_alertmanager(
        &alertmanager_bin,
        &dir,
        am_port,
        &format!("http://{webhook_addr}"),
    )
    .await;

    // Prometheus scraping every second, with the shipped rules, receiving remote write with
    // the out-of-order window the README asks for.
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nstorage:\n  tsdb:\n    out_of_order_time_window: 1d\nrule_files:\n  - {alerts}\n  - {recording}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: dexcom\n    static_configs:\n      - targets: ['{exporter_addr}']\n",
        alerts = repo().join("deploy/prometheus/alerts.yml").display(),
        recording = repo().join("deploy/prometheus/recording.yml").display(),
    );
    let _prometheus = KillOnDrop(
        prometheus_command(&prometheus_bin, &dir, prom_port, &prom_config)
            .arg("--web.enable-remote-write-receiver")
            .spawn()
            .unwrap(),
    );
    let prometheus = format!("http://127.0.0.1:{prom_port}");

    wait_for(
        "glucose of all three demo accounts in Prometheus",
        Duration::from_secs(60),
        async || {
            query(&prometheus, "dexcom_glucose_mg_per_dl")
                .await
                .map(|r| r.len() == 3)
                .unwrap_or(false)
        },
    )
    .await;
    wait_for(
        "time in range from the recording rules",
        Duration::from_secs(30),
        async || {
            query(&prometheus, "dexcom:glucose_time_in_band:ratio_24h")
                .await
                .map(|r| r.len() == 15)
                .unwrap_or(false)
        },
    )
    .await;

    wait_for(
        "exact time in range from the pushed readings",
        Duration::from_secs(30),
        async || {
            query(&prometheus, "dexcom:reading_time_in_band:ratio_24h")
                .await
                .map(|r| r.len() == 15)
                .unwrap_or(false)
        },
    )
    .await;

    // Every expression of the dashboard and the rules evaluates without error.
    let mut checked = 0;
    for (title, expr) in dashboard_expressions() {
        query(&prometheus, &expr)
            .await
            .unwrap_or_else(|e| panic!("dashboard panel {title:?}: {e}"));
        checked += 1;
    }
    for expr in rule_expressions() {
        query(&prometheus, &expr)
            .await
            .unwrap_or_else(|e| panic!("rule: {e}"));
        checked += 1;
    }
    eprintln!("{checked} dashboard and rule expressions evaluated without error");
    for (title, expr) in dashboard_expressions() {
        let needs_data = [
            "Current glucose",
            "Trend",
            "Reading age (signal)",
            "Time in ranges, 24 hours",
            "Time in range (70–180), 24 hours",
            "Current glucose (mmol/L)",
            "Glucose",
            "Time in ranges, 24 hours (each reading once)",
            "Readings, 24 hours",
        ];
        if needs_data.contains(&title.as_str()) {
            let result = query(&prometheus, &expr).await.unwrap();
            assert!(
                !result.is_empty(),
                "dashboard panel {title:?} has no data: {expr}"
            );
        }
    }

    // "sam" starts just before a night low: the urgent-low alert fires in Prometheus...
    let urgent = r#"ALERTS{alertname="DexcomGlucoseUrgentLow",alertstate="firing",account="sam"}"#;
    wait_for(
        "DexcomGlucoseUrgentLow firing for sam",
        Duration::from_secs(150),
        async || {
            query(&prometheus, urgent)
                .await
                .map(|r| !r.is_empty())
                .unwrap_or(false)
        },
    )
    .await;
    // ...and Alertmanager delivers it to the critical receiver.
    wait_for(
        "the urgent low at the webhook",
        Duration::from_secs(60),
        async || {
            received.lock().unwrap().iter().any(|body| {
                body.contains("\"alertname\":\"DexcomGlucoseUrgentLow\"")
                    && body.contains("\"account\":\"sam\"")
                    && body.contains("\"receiver\":\"glucose-critical\"")
            })
        },
    )
    .await;
    let bodies = received.lock().unwrap().clone();
    let body = bodies
        .iter()
        .find(|b| b.contains("DexcomGlucoseUrgentLow"))
        .unwrap();
    assert!(
        body.contains("mg/dL") && body.contains("mmol/L"),
        "annotations carry both units: {body}"
    );
    // The dead man's switch: the always-firing Watchdog reaches the heartbeat receiver, and
    // only it.
    wait_for(
        "the Watchdog at the heartbeat receiver",
        Duration::from_secs(60),
        async || {
            received.lock().unwrap().iter().any(|body| {
                body.contains("\"alertname\":\"Watchdog\"")
                    && body.contains("\"receiver\":\"heartbeat\"")
            })
        },
    )
    .await;
    assert!(
        !received
            .lock()
            .unwrap()
            .iter()
            .any(|body| body.contains("\"alertname\":\"Watchdog\"")
                && !body.contains("\"receiver\":\"heartbeat\"")),
        "the Watchdog goes to the heartbeat alone"
    );
    stop_webhook.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}
