//! Every metric the exporter serves, declared and registered here and nowhere else.
//!
//! All series come from one [`Collector`] that reads atomics and an `ArcSwap` per account, so
//! a scrape takes no lock and never waits for a poll in flight, and the registry is read-only
//! after start-up. Reading age is computed at scrape time from the injected clock, and the
//! glucose value and trend are withdrawn once the reading is older than `--glucose.max-age`,
//! so a stale number can never pass for a current one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::clock::{Clock, unix_ms};
use crate::share::{Endpoint, ErrorReason, Reading};

/// The content type of the text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

const CACHED: &str =
    "Cached from the last poll of Dexcom Share, which follows the sensor's 5-minute cadence";

/// Glucose alert thresholds of one account, in mg/dL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Urgent low (Dexcom's fixed 55 mg/dL by default).
    pub urgent_low: u16,
    /// Low.
    pub low: u16,
    /// High.
    pub high: u16,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            urgent_low: 55,
            low: 70,
            high: 250,
        }
    }
}

/// The newest reading of an account, as the collector serves it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatestReading {
    /// The reading.
    pub reading: Reading,
    /// Change from the previous reading, when that one was one interval earlier.
    pub delta_mg_per_dl: Option<i32>,
}

/// The live state of one account, written by its poller and read by scrapes.
#[derive(Debug)]
pub struct AccountMetrics {
    name: String,
    thresholds: Thresholds,
    latest: ArcSwapOption<LatestReading>,
    up: AtomicBool,
    polled_once: AtomicBool,
    polls: AtomicU64,
    errors: [AtomicU64; ErrorReason::ALL.len()],
    logins: AtomicU64,
    last_success_ms: AtomicI64,
    last_error: ArcSwapOption<ErrorReason>,
}

impl AccountMetrics {
    /// State for the account labelled `name`.
    pub fn new(name: impl Into<String>, thresholds: Thresholds) -> Self {
        AccountMetrics {
            name: name.into(),
            thresholds,
            latest: ArcSwapOption::empty(),
            up: AtomicBool::new(false),
            polled_once: AtomicBool::new(false),
            polls: AtomicU64::new(0),
            errors: Default::default(),
            logins: AtomicU64::new(0),
            last_success_ms: AtomicI64::new(0),
            last_error: ArcSwapOption::empty(),
        }
    }

    /// The `account` label value.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The account's thresholds.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Publishes a new newest reading.
    pub fn set_latest(&self, latest: LatestReading) {
        self.latest.store(Some(Arc::new(latest)));
    }

    /// The newest reading published, if any.
    pub fn latest(&self) -> Option<LatestReading> {
        self.latest.load().as_deref().copied()
    }

    /// Records a successful poll at `now`.
    pub fn poll_succeeded(&self, now: SystemTime) {
        self.last_success_ms.store(unix_ms(now), Ordering::Relaxed);
        self.last_error.store(None);
        self.up.store(true, Ordering::Relaxed);
        self.polled_once.store(true, Ordering::Release);
    }

    /// Records a failed poll.
    pub fn poll_failed(&self, reason: ErrorReason) {
        self.errors[reason_index(reason)].fetch_add(1, Ordering::Relaxed);
        self.last_error.store(Some(Arc::new(reason)));
        self.up.store(false, Ordering::Relaxed);
        self.polled_once.store(true, Ordering::Release);
    }

    /// Counts one request to the readings endpoint.
    pub fn count_read(&self) {
        self.polls.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one login attempt.
    pub fn count_login(&self) {
        self.logins.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the last poll succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether a first poll has completed, successfully or not.
    pub fn polled_once(&self) -> bool {
        self.polled_once.load(Ordering::Acquire)
    }

    /// The reason of the last failed poll, while the account is failing.
    pub fn last_error(&self) -> Option<ErrorReason> {
        self.last_error.load().as_deref().copied()
    }

    /// Failed polls so far for `reason`.
    pub fn errors(&self, reason: ErrorReason) -> u64 {
        self.errors[reason_index(reason)].load(Ordering::Relaxed)
    }

    /// Login attempts so far.
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }
}

fn reason_index(reason: ErrorReason) -> usize {
    ErrorReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or_default()
}

/// Upper bounds of the request-duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0];

/// A lock-free histogram with fixed buckets.
#[derive(Debug, Default)]
struct AtomicHistogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl AtomicHistogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Per-bucket counts (the encoder accumulates them), sum and count.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = DURATION_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| (*bound, n.load(Ordering::Relaxed)))
            .collect();
        let finite: u64 = buckets.iter().map(|(_, n)| n).sum();
        // Loaded separately from the buckets: never let +Inf fall below the finite buckets.
        let count = self.count.load(Ordering::Relaxed).max(finite);
        buckets.push((f64::INFINITY, count - finite));
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (sum, count, buckets)
    }
}

/// Latency of Share requests by endpoint (no account label: it is a property of Share).
#[derive(Debug, Default)]
pub struct RequestDurations {
    by_endpoint: [AtomicHistogram; Endpoint::ALL.len()],
}

impl RequestDurations {
    /// Records one request.
    pub fn observe(&self, endpoint: Endpoint, elapsed: Duration) {
        let i = Endpoint::ALL
            .iter()
            .position(|e| *e == endpoint)
            .unwrap_or_default();
        self.by_endpoint[i].observe(elapsed);
    }
}

/// Build information for `dexcom_exporter_build_info`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// Crate version.
    pub version: &'static str,
    /// Git revision, when known at build time.
    pub revision: &'static str,
    /// The compiler version.
    pub rustversion: &'static str,
}

impl BuildInfo {
    /// This binary's build information.
    pub fn current() -> Self {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            revision: option_env!("DEXCOM_EXPORTER_REVISION").unwrap_or("unknown"),
            rustversion: option_env!("DEXCOM_EXPORTER_RUSTC").unwrap_or("unknown"),
        }
    }
}

/// Everything the `/metrics` endpoint serves.
#[derive(Debug)]
pub struct Metrics {
    accounts: Vec<Arc<AccountMetrics>>,
    requests: Arc<RequestDurations>,
    build: BuildInfo,
    clock: Arc<dyn Clock>,
    max_age: Duration,
    started: SystemTime,
}

impl Metrics {
    /// The metrics of these accounts; values older than `max_age` are withdrawn.
    pub fn new(
        accounts: Vec<Arc<AccountMetrics>>,
        max_age: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Metrics {
            accounts,
            requests: Arc::new(RequestDurations::default()),
            build: BuildInfo::current(),
            started: clock.now(),
            clock,
            max_age,
        }
    }

    /// The per-account state, in configuration order.
    pub fn accounts(&self) -> &[Arc<AccountMetrics>] {
        &self.accounts
    }

    /// The current time from the clock the metrics use, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The request-duration histogram, for the pollers' observers.
    pub fn request_durations(&self) -> Arc<RequestDurations> {
        self.requests.clone()
    }

    /// A registry holding exactly this collector; read-only from here on.
    pub fn into_registry(self: Arc<Self>) -> Registry {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        registry
    }
}

/// Renders a registry in the Prometheus text format 0.0.4.
pub fn render(registry: &Registry) -> String {
    let mut out = String::with_capacity(8 * 1024);
    if let Err(error) = prometheus_client::encoding::prometheus_text::encode(&mut out, registry) {
        tracing::error!(%error, "encoding metrics failed");
    }
    out
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn account(a: &AccountMetrics) -> Labels<'_> {
    vec![("account", a.name())]
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels<'_>, f64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels<'_>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now_ms = self.clock.now_ms();
        let max_age_ms = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        let latest: Vec<(&AccountMetrics, Option<LatestReading>)> = self
            .accounts
            .iter()
            .map(|a| (a.as_ref(), a.latest()))
            .collect();
        let fresh: Vec<(&AccountMetrics, LatestReading)> = latest
            .iter()
            .filter_map(|(a, l)| l.map(|l| (*a, l)))
            .filter(|(_, l)| now_ms - l.reading.timestamp_ms <= max_age_ms)
            .collect();

        gauge(
            &mut encoder,
            "dexcom_glucose_mg_per_dl",
            &format!(
                "Latest glucose reading in mg/dL as Share reports it (39 means below 40, 401 above 400); withdrawn once older than the maximum age. {CACHED}."
            ),
            &fresh
                .iter()
                .map(|(a, l)| (account(a), f64::from(l.reading.mg_per_dl)))
                .collect::<Vec<_>>(),
        )?;
        gauge(
            &mut encoder,
            "dexcom_glucose_trend",
            &format!(
                "Dexcom trend of the latest reading: 0 None, 1 DoubleUp, 2 SingleUp, 3 FortyFiveUp, 4 Flat, 5 FortyFiveDown, 6 SingleDown, 7 DoubleDown, 8 NotComputable, 9 RateOutOfRange; withdrawn with the value. {CACHED}."
            ),
            &fresh
                .iter()
                .map(|(a, l)| (account(a), f64::from(l.reading.trend.code())))
                .collect::<Vec<_>>(),
        )?;
        gauge(
            &mut encoder,
            "dexcom_glucose_delta_mg_per_dl",
            &format!(
                "Change in mg/dL from the previous reading, present when that reading is one interval earlier. {CACHED}."
            ),
            &fresh
                .iter()
                .filter_map(|(a, l)| l.delta_mg_per_dl.map(|d| (account(a), f64::from(d))))
                .collect::<Vec<_>>(),
        )?;
        gauge(
            &mut encoder,
            "dexcom_glucose_reading_timestamp_seconds",
            &format!("Unix time at which the sensor took the latest reading. {CACHED}."),
            &latest
                .iter()
                .filter_map(|(a, l)| {
                    l.map(|l| (account(a), l.reading.timestamp_ms as f64 / 1000.0))
                })
                .collect::<Vec<_>>(),
        )?;
        gauge(
            &mut encoder,
            "dexcom_glucose_reading_age_seconds",
            "Seconds since the sensor took the latest reading, computed when scraped.",
            &latest
                .iter()
                .filter_map(|(a, l)| {
                    l.map(|l| {
                        (
                            account(a),
                            (now_ms - l.reading.timestamp_ms) as f64 / 1000.0,
                        )
                    })
                })
                .collect::<Vec<_>>(),
        )?;
        let levels = ["urgent_low", "low", "high"];
        let mut thresholds = Vec::new();
        for a in &self.accounts {
            let t = a.thresholds();
            for (level, value) in levels.iter().zip([t.urgent_low, t.low, t.high]) {
                thresholds.push((
                    vec![("account", a.name()), ("level", *level)],
                    f64::from(value),
                ));
            }
        }
        gauge(
            &mut encoder,
            "dexcom_glucose_threshold_mg_per_dl",
            "Configured glucose alert threshold in mg/dL by level (urgent_low, low, high), for alerting rules and dashboards.",
            &thresholds,
        )?;
        gauge(
            &mut encoder,
            "dexcom_up",
            &format!("1 if the last poll of the Dexcom Share API succeeded, else 0. {CACHED}."),
            &self
                .accounts
                .iter()
                .map(|a| (account(a), if a.is_up() { 1.0 } else { 0.0 }))
                .collect::<Vec<_>>(),
        )?;
        counter(
            &mut encoder,
            "dexcom_polls",
            "Requests to the Share readings endpoint.",
            &self
                .accounts
                .iter()
                .map(|a| (account(a), a.polls.load(Ordering::Relaxed)))
                .collect::<Vec<_>>(),
        )?;
        let mut errors = Vec::new();
        for a in &self.accounts {
            for reason in ErrorReason::ALL {
                errors.push((
                    vec![("account", a.name()), ("reason", reason.as_str())],
                    a.errors(reason),
                ));
            }
        }
        counter(
            &mut encoder,
            "dexcom_poll_errors",
            "Failed polls of Dexcom Share by reason: auth_failed, locked_out, session_expired, rate_limited, server_error, timeout, connection, invalid_response.",
            &errors,
        )?;
        counter(
            &mut encoder,
            "dexcom_logins",
            "Share session logins attempted.",
            &self
                .accounts
                .iter()
                .map(|a| (account(a), a.logins()))
                .collect::<Vec<_>>(),
        )?;
        gauge(
            &mut encoder,
            "dexcom_last_success_timestamp_seconds",
            "Unix time of the last successful poll of Dexcom Share.",
            &self
                .accounts
                .iter()
                .filter_map(|a| {
                    let ms = a.last_success_ms.load(Ordering::Relaxed);
                    (ms > 0).then(|| (account(a), ms as f64 / 1000.0))
                })
                .collect::<Vec<_>>(),
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "dexcom_request_duration_seconds",
                "Latency of Dexcom Share API requests by endpoint.",
                None,
                MetricType::Histogram,
            )?;
            for (endpoint, histogram) in Endpoint::ALL.iter().zip(&self.requests.by_endpoint) {
                let (sum, count, buckets) = histogram.snapshot();
                let labels: Labels<'_> = vec![("endpoint", endpoint.as_str())];
                family
                    .encode_family(&labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        sum, count, &buckets, None,
                    )?;
            }
        }
        gauge(
            &mut encoder,
            "dexcom_exporter_build_info",
            "A metric with a constant '1' value labelled by version, revision and rustversion of the build.",
            &[(
                vec![
                    ("version", self.build.version),
                    ("revision", self.build.revision),
                    ("rustversion", self.build.rustversion),
                ],
                1.0,
            )],
        )?;
        crate::process_metrics::encode(&mut encoder, self.started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::share::Trend;

    fn scrape(metrics: Arc<Metrics>) -> String {
        render(&metrics.into_registry())
    }

    fn value(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let metrics = Arc::new(Metrics::new(
            vec![],
            Duration::from_secs(1200),
            Arc::new(SystemClock),
        ));
        let durations = metrics.request_durations();
        for ms in [20, 70, 70, 3000, 45_000] {
            durations.observe(Endpoint::ReadGlucose, Duration::from_millis(ms));
        }
        let text = scrape(metrics);
        let bucket = |le: &str| {
            value(
                &text,
                &format!(
                    "dexcom_request_duration_seconds_bucket{{endpoint=\"read_glucose\",le=\"{le}\"}} "
                ),
            )
        };
        assert_eq!(bucket("0.05"), Some(1.0));
        assert_eq!(bucket("0.1"), Some(3.0));
        assert_eq!(bucket("2.5"), Some(3.0));
        assert_eq!(bucket("5"), Some(4.0));
        assert_eq!(bucket("30"), Some(4.0));
        assert_eq!(bucket("+Inf"), Some(5.0));
        assert_eq!(
            value(
                &text,
                "dexcom_request_duration_seconds_count{endpoint=\"read_glucose\"} "
            ),
            Some(5.0)
        );
    }

    #[test]
    fn value_and_trend_are_withdrawn_after_max_age_but_timestamp_and_age_stay() {
        let account = Arc::new(AccountMetrics::new("kid", Thresholds::default()));
        let now = crate::clock::unix_ms(SystemTime::now());
        let reading = |age_ms: i64| LatestReading {
            reading: Reading {
                timestamp_ms: now - age_ms,
                utc_offset_minutes: None,
                mg_per_dl: 54,
                trend: Trend::SingleDown,
            },
            delta_mg_per_dl: Some(-9),
        };
        let metrics = Arc::new(Metrics::new(
            vec![account.clone()],
            Duration::from_secs(1200),
            Arc::new(SystemClock),
        ));
        account.set_latest(reading(60_000));
        let fresh = render(&metrics.clone().into_registry());
        assert_eq!(
            value(&fresh, "dexcom_glucose_mg_per_dl{account=\"kid\"} "),
            Some(54.0)
        );
        assert_eq!(
            value(&fresh, "dexcom_glucose_trend{account=\"kid\"} "),
            Some(6.0)
        );
        assert_eq!(
            value(&fresh, "dexcom_glucose_delta_mg_per_dl{account=\"kid\"} "),
            Some(-9.0)
        );
        account.set_latest(reading(21 * 60_000));
        let stale = render(&metrics.into_registry());
        assert_eq!(
            value(&stale, "dexcom_glucose_mg_per_dl{account=\"kid\"} "),
            None
        );
        assert_eq!(
            value(&stale, "dexcom_glucose_trend{account=\"kid\"} "),
            None
        );
        assert_eq!(
            value(&stale, "dexcom_glucose_delta_mg_per_dl{account=\"kid\"} "),
            None
        );
        let age = value(
            &stale,
            "dexcom_glucose_reading_age_seconds{account=\"kid\"} ",
        )
        .unwrap();
        assert!((1259.0..1262.0).contains(&age), "{age}");
        assert!(
            value(
                &stale,
                "dexcom_glucose_reading_timestamp_seconds{account=\"kid\"} "
            )
            .is_some()
        );
    }
}
