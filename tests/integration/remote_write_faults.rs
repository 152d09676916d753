//! Remote write's failure paths against a scripted receiver on loopback that decodes every
//! request (snappy, then protobuf with the exporter's prost messages; Prometheus and
//! VictoriaMetrics decode them independently in `remote_write.rs`): headers as the protocol
//! asks, 5xx retried until taken, a request refused as too old split until only the old
//! samples are dropped, and a 4xx logged once and counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dexcom_exporter::http::{ServeLimits, respond, serve};
use http_body_util::BodyExt;

use crate::common::{USERNAME, capture_logs, sample};
use crate::harness::{TestApp, wait_until};

/// One decoded request: its headers of interest and its samples as (series name, account,
/// ms, value).
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// The request's path and query.
    pub(crate) uri: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) samples: Vec<(String, String, i64, f64)>,
}

/// How the receiver answers a decoded request: status and body.
pub(crate) type Script = Box<dyn Fn(&Received, usize) -> (u16, String) + Send + Sync>;

pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) received: Arc<Mutex<Vec<Received>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Receiver {
    /// The requests received after the first `skip` (those the script refused).
    pub(crate) fn after(&self, skip: usize) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .skip(skip)
            .cloned()
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(crate) async fn receiver(script: Script) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let script = Arc::new(script);
    let stop = tokio_util::sync::CancellationToken::new();
    let sink = received.clone();
    tokio::spawn(serve(
        listener,
        move |request: hyper::Request<hyper::body::Incoming>| {
            let sink = sink.clone();
            let script = script.clone();
            async move {
                let headers = [
                    "content-encoding",
                    "content-type",
                    "x-prometheus-remote-write-version",
                    "user-agent",
                    "authorization",
                    "x-scope-orgid",
                ]
                .iter()
                .map(|name| {
                    (
                        (*name).to_owned(),
                        request
                            .headers()
                            .get(*name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect();
                let uri = request.uri().to_string();
                let body = request.into_body().collect().await.unwrap().to_bytes();
                let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                let got = Received {
                    uri,
                    headers,
                    samples: decode(&raw),
                };
                let index = {
                    let mut all = sink.lock().unwrap();
                    all.push(got.clone());
                    all.len() - 1
                };
                let (status, text) = script(&got, index);
                respond(status, "text/plain", text)
            }
        },
        stop.clone(),
        ServeLimits::default(),
        None,
    ));
    Receiver {
        url: format!("http://{addr}/api/v1/write"),
        received,
        stop,
    }
}

/// Each sample of a `WriteRequest`, decoded with the exporter's prost messages, as (series
/// name, account, ms, value); the protocol's ordering rules are asserted on the way.
fn decode(bytes: &[u8]) -> Vec<(String, String, i64, f64)> {
    use prost::Message as _;
    let request = dexcom_exporter::remote_write::WriteRequest::decode(bytes).expect("protobuf");
    let mut out = Vec::new();
    for series in request.timeseries {
        let label = |name: &str| {
            series
                .labels
                .iter()
                .find(|l| l.name == name)
                .map(|l| l.value.clone())
                .unwrap_or_default()
        };
        let (name, account) = (label("__name__"), label("account"));
        assert!(
            series.labels.windows(2).all(|w| w[0].name < w[1].name),
            "labels sorted by name, none twice"
        );
        assert!(
            series
                .samples
                .windows(2)
                .all(|w| w[0].timestamp < w[1].timestamp),
            "samples in time order"
        );
        for sample in &series.samples {
            out.push((
                name.clone(),
                account.clone(),
                sample.timestamp,
                sample.value,
            ));
        }
    }
    out
}

pub(crate) fn glucose_times(received: &[Received]) -> Vec<i64> {
    let mut times: Vec<i64> = received
        .iter()
        .flat_map(|r| r.samples.iter())
        .filter(|s| s.0 == "dexcom_reading_glucose_mg_per_dl")
        .map(|s| s.2)
        .collect();
    times.sort_unstable();
    times
}

pub(crate) fn remote_labels(receiver: &Receiver) -> String {
    format!(
        "remote_name=\"{}\",url=\"{}\"",
        receiver
            .url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap(),
        receiver.url
    )
}

#[tokio::test]
async fn requests_follow_the_protocol_and_5xx_is_retried_until_taken() {
    let receiver = receiver(Box::new(|_, index| {
        if index < 3 {
            (503, "overloaded".into())
        } else {
            (204, String::new())
        }
    }))
    .await;
    let app = TestApp::start(
        Duration::from_millis(500),
        &["--remote-write.url", &receiver.url],
    )
    .await;
    let history = app.exporter.histories[0].clone();
    wait_until(Duration::from_secs(20), "every reading taken", || {
        let held: Vec<i64> = history.snapshot().iter().map(|r| r.timestamp_ms).collect();
        let got = glucose_times(&receiver.after(3));
        !held.is_empty() && held.iter().all(|t| got.contains(t))
    })
    .await;
    let received = receiver.received.lock().unwrap().clone();
    let first = &received[0];
    for (name, value) in [
        ("content-encoding", "snappy"),
        ("content-type", "application/x-protobuf"),
        ("x-prometheus-remote-write-version", "0.1.0"),
    ] {
        assert!(
            first.headers.contains(&(name.to_owned(), value.to_owned())),
            "{name}: {:?}",
            first.headers
        );
    }
    assert!(first.samples.iter().any(|s| s.0 == "dexcom_reading_trend"));
    // Each glucose sample is the reading's value at its sensor time, with account and job.
    let reading = history.newest().unwrap();
    assert!(received.iter().flat_map(|r| r.samples.iter()).any(|s| {
        s.0 == "dexcom_reading_glucose_mg_per_dl"
            && s.1 == USERNAME
            && s.2 == reading.timestamp_ms
            && s.3 == f64::from(reading.mg_per_dl)
    }));
    let scrape = app.scrape().await;
    let labels = remote_labels(&receiver);
    let retried = sample(
        &scrape,
        "dexcom_remote_storage_samples_retried_total",
        &labels,
    )
    .unwrap();
    assert_eq!(
        retried,
        3.0 * 2.0 * 288.0,
        "three refusals of the first day"
    );
    assert_eq!(
        sample(
            &scrape,
            "dexcom_remote_storage_samples_failed_total",
            &labels
        ),
        Some(0.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_request_refused_as_too_old_is_split_and_only_the_old_samples_are_dropped() {
    // The receiver takes nothing older than a cut-off (as Prometheus beyond its out-of-order
    // window: HTTP 500 "too old sample" for the whole request).
    let cutoff = Arc::new(Mutex::new(i64::MAX));
    let limit = cutoff.clone();
    let receiver = receiver(Box::new(move |got, _| {
        let cutoff = *limit.lock().unwrap();
        if got.samples.iter().any(|s| s.2 < cutoff) {
            (500, "too old sample".into())
        } else {
            (204, String::new())
        }
    }))
    .await;
    // Readings every 500 ms: the day Share serves at start spans 144 s; keep its last 40 s.
    *cutoff.lock().unwrap() =
        dexcom_exporter::clock::unix_ms(std::time::SystemTime::now()) - 40_000;
    let app = TestApp::start(
        Duration::from_millis(500),
        &["--remote-write.url", &receiver.url],
    )
    .await;
    let labels = remote_labels(&receiver);
    let scrape = app
        .scrape_until(Duration::from_secs(20), |s| {
            let dropped = sample(s, "dexcom_remote_storage_samples_dropped_total", &labels)?;
            let pending = sample(s, "dexcom_remote_storage_samples_pending", &labels)?;
            (dropped > 0.0 && pending == 0.0).then(|| s.to_owned())
        })
        .await;
    let cutoff = *cutoff.lock().unwrap();
    let held: Vec<i64> = app.exporter.histories[0]
        .snapshot()
        .iter()
        .map(|r| r.timestamp_ms)
        .collect();
    let old = held.iter().filter(|t| **t < cutoff).count();
    let dropped = sample(
        &scrape,
        "dexcom_remote_storage_samples_dropped_total",
        &labels,
    )
    .unwrap();
    assert_eq!(
        dropped,
        2.0 * old as f64,
        "exactly the old readings' samples"
    );
    let accepted_now = || -> Vec<i64> {
        let received = receiver.received.lock().unwrap();
        glucose_times(
            &received
                .iter()
                .filter(|r| r.samples.iter().all(|s| s.2 >= cutoff))
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    let young: Vec<i64> = {
        let mut young: Vec<i64> = held.iter().copied().filter(|t| *t >= cutoff).collect();
        young.sort_unstable();
        young
    };
    // A reading that reached the history after the scrape is sent at the sender's next turn.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut accepted = accepted_now();
    while young.iter().any(|t| !accepted.contains(t)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        accepted = accepted_now();
    }
    for t in &young {
        assert!(accepted.contains(t), "young reading {t} never accepted");
    }
    let requests = receiver.received.lock().unwrap().len();
    // A binary search for the oldest accepted reading: about 2 log2(288) ≈ 16 requests,
    // plus one per reading that arrived meanwhile.
    assert!(
        requests <= 24 + young.len() / 4,
        "{requests} requests to narrow 288 readings down"
    );
    eprintln!(
        "{requests} requests; {old} readings dropped as too old, {} accepted",
        young.len()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_4xx_is_counted_and_logged_once() {
    let (_guard, logs) = capture_logs();
    let receiver = receiver(Box::new(|_, _| (400, "bad token for tenant".into()))).await;
    let app = TestApp::start(
        Duration::from_millis(300),
        &["--remote-write.url", &receiver.url],
    )
    .await;
    let labels = remote_labels(&receiver);
    // The first day, then several single readings, all refused.
    wait_until(Duration::from_secs(20), "five refused requests", || {
        receiver.received.lock().unwrap().len() >= 5
    })
    .await;
    let scrape = app
        .scrape_until(Duration::from_secs(5), |s| {
            let failed = sample(s, "dexcom_remote_storage_samples_failed_total", &labels)?;
            (failed >= 2.0 * 288.0 + 8.0).then(|| s.to_owned())
        })
        .await;
    assert_eq!(
        sample(&scrape, "dexcom_remote_storage_samples_total", &labels),
        Some(0.0)
    );
    let text = logs.text();
    assert_eq!(
        text.matches("the remote-write receiver refused samples")
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("400") && text.contains("bad token for tenant"),
        "{text}"
    );
    // Not retried: each refused reading went once.
    let times = glucose_times(&receiver.received.lock().unwrap());
    let mut unique = times.clone();
    unique.dedup();
    assert_eq!(times, unique, "a refused sample is not sent again");
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_never_answers_does_not_hold_the_shutdown() {
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let app = TestApp::start(Duration::from_millis(500), &["--remote-write.url", &url]).await;
    let history = app.exporter.histories[0].clone();
    wait_until(Duration::from_secs(10), "the first read", || {
        !history.snapshot().is_empty()
    })
    .await;
    // The sender is now waiting on the silent receiver (its timeout is 30 s).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    held.abort();
}
