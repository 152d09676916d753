//! A receiver down for more than a day, through the shipped alert: the remote-write sender
//! retries one request for the whole outage, and the readings that leave the 24-hour history
//! meanwhile are counted as they go, so `DexcomRemoteWriteReadingsExpired` fires (asked of the
//! real `promtool` with the shipped `alerts.yml`, over the counter the sender rendered).
//!
//! The sender runs as the exporter runs it, against a scripted receiver on loopback; the
//! history is fed by the test a reading at a time, five minutes of sensor time apart, so 26
//! hours take a second or two and every step is exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dexcom_exporter::clock::SystemClock;
use dexcom_exporter::config::{RemoteWriteTarget, RemoteWriteTls};
use dexcom_exporter::remote_write::{Sender, SenderAccount, WriteClient};
use dexcom_exporter::share::{Reading, Trend};
use dexcom_exporter::{History, Metrics, render_metrics};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::common::{repo, sample, tool};
use crate::remote_write_faults::{receiver, remote_labels};

/// Five minutes of sensor time, in ms.
const STEP_MS: i64 = 300_000;
/// Steps of the outage: 26 hours.
const STEPS: i64 = 26 * 12;
/// Readings in 24 hours, so the first outage reading leaves at this step after the first.
const DAY: i64 = 288;

fn reading(ms: i64) -> Reading {
    Reading {
        timestamp_ms: ms,
        utc_offset_minutes: None,
        mg_per_dl: 110,
        trend: Trend::Flat,
    }
}

#[tokio::test]
async fn readings_expiring_while_a_request_is_retried_fire_the_shipped_alert() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let up = Arc::new(AtomicBool::new(true));
    let answer = up.clone();
    let receiver = receiver(Box::new(move |_, _| {
        if answer.load(Ordering::SeqCst) {
            (204, String::new())
        } else {
            (503, "down for maintenance".into())
        }
    }))
    .await;
    let labels = remote_labels(&receiver);
    let metrics = Metrics::new(
        std::iter::empty(),
        Duration::from_secs(1200),
        Arc::new(SystemClock),
    );
    let remote_name = labels
        .split('"')
        .nth(1)
        .expect("remote_name label")
        .to_owned();
    let target = RemoteWriteTarget {
        name: remote_name.clone(),
        url: receiver.url.parse().unwrap(),
        timeout: Duration::from_secs(5),
        headers: Default::default(),
        auth: None,
        tls: RemoteWriteTls::default(),
    };
    let changed = Arc::new(Notify::new());
    let history = Arc::new(History::new("kid", changed.clone()));
    let sender = Sender::new(
        WriteClient::new(target).unwrap(),
        metrics.remote_write(&remote_name, &receiver.url),
        vec![SenderAccount::in_memory(history.clone())],
        Vec::new(),
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(sender.run(changed, shutdown.clone()));
    let scrape = || render_metrics(&metrics.registry());
    let value = |name: &str| sample(&scrape(), name, &labels).unwrap_or(-1.0);

    // The day before the outage, all taken.
    let start = 1_800_000_000_000;
    let day: Vec<Reading> = (0..DAY).map(|i| reading(start - i * STEP_MS)).collect();
    history.merge(&day, start);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while value("dexcom_remote_storage_samples_total") < (2 * DAY) as f64 {
        assert!(std::time::Instant::now() < deadline, "{}", scrape());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Then the receiver is down for 26 hours: a reading every five minutes, each (after a
    // day) pushing an unsent one out of the history. At each step the sender is given time
    // to look; once it has fallen behind, it is not waited for again (the count at the end
    // says whether it caught up).
    up.store(false, Ordering::SeqCst);
    let mut expired = Vec::new();
    let mut in_step = true;
    for step in 1..=STEPS {
        // A millisecond past the reading: the oldest of the day is then just outside it.
        let now = start + step * STEP_MS;
        history.merge(&[reading(now)], now + 1);
        // The sender has looked when its pending gauge counts this reading (a day's worth at
        // most) and the readings gone so far are counted.
        let pending = (2 * step.min(DAY)) as f64;
        let gone = (2 * (step - DAY).max(0)) as f64;
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let looked = value("dexcom_remote_storage_samples_pending") == pending
                && value("dexcom_remote_storage_samples_expired_total") >= gone;
            if looked || !in_step {
                break;
            }
            in_step = std::time::Instant::now() < deadline;
        }
        expired.push(value("dexcom_remote_storage_samples_expired_total"));
    }
    let pending = value("dexcom_remote_storage_samples_pending");
    shutdown.cancel();
    running.await.unwrap();
    let requests = receiver.received.lock().unwrap().len();
    eprintln!(
        "{requests} requests; expired samples after 24 h {}, after 26 h {}; pending {pending}",
        expired[(DAY - 1) as usize],
        expired[(STEPS - 1) as usize]
    );
    assert_eq!(
        expired[(STEPS - 1) as usize],
        (2 * (STEPS - DAY)) as f64,
        "each reading that left the history unsent, counted once (2 samples each)"
    );
    assert_eq!(
        expired[(DAY - 1) as usize],
        0.0,
        "none within the first day"
    );
    assert_eq!(
        pending,
        (2 * DAY) as f64,
        "the pending gauge follows the outage"
    );

    // The counter as Prometheus would have scraped it every five minutes, through the shipped
    // rule: silent for the first day of the outage, firing once readings expire.
    let series = format!(
        "dexcom_remote_storage_samples_expired_total{{{labels},job=\"dexcom\",instance=\"e:18018\"}}"
    );
    let values: Vec<String> = std::iter::once(0.0)
        .chain(expired.iter().copied())
        .map(|v| format!("{v}"))
        .collect();
    let alert = format!(
        "ALERTS{{alertname=\"DexcomRemoteWriteReadingsExpired\",alertstate=\"firing\",severity=\"warning\",{labels},job=\"dexcom\",instance=\"e:18018\"}}"
    );
    let yaml = format!(
        "rule_files:\n  - {rules}\nevaluation_interval: 5m\ntests:\n  - interval: 5m\n    input_series:\n      - series: '{series}'\n        values: '{values}'\n    promql_expr_test:\n      - expr: 'ALERTS{{alertname=\"DexcomRemoteWriteReadingsExpired\"}}'\n        eval_time: 23h55m\n        exp_samples: []\n      - expr: 'ALERTS{{alertname=\"DexcomRemoteWriteReadingsExpired\"}}'\n        eval_time: 24h30m\n        exp_samples:\n          - labels: '{alert}'\n            value: 1\n      - expr: 'ALERTS{{alertname=\"DexcomRemoteWriteReadingsExpired\"}}'\n        eval_time: 26h\n        exp_samples:\n          - labels: '{alert}'\n            value: 1\n",
        rules = repo().join("deploy/prometheus/alerts.yml").display(),
        values = values.join(" "),
    );
    crate::common::promtool_test_rules(&promtool, "remote_write_outage_test.yml", &yaml);
}
