//! Every metric the exporter serves, declared and registered here and nowhere else.
//!
//! Counters, gauges and the request-duration histogram are the library's own types
//! (`Family`, `Counter`, `Gauge`, `Histogram`) with typed label sets ([`labels`]); each account
//! holds handles into them ([`AccountMetrics`]), so a poll updates an atomic and never looks a
//! series up. One custom collector remains, for what depends on the time of the scrape: the
//! newest reading's value, trend and delta (withdrawn once older than `--glucose.max-age`, so a
//! stale number can never pass for a current one) and its age (`readings.rs`); the `process_*`
//! metrics are read at scrape time too (`process.rs`). The registry is built once, at start, and
//! only read afterwards; a scrape never waits for a poll in flight.

mod account;
pub mod labels;
mod process;
mod readings;
mod remote_write;
mod series;
mod status;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use account::FloatGauge;
pub use account::{AccountMetrics, Arrival, LatestReading, Thresholds};
use labels::{
    AccountLabels, BuildInfoLabels, EndpointLabels, ErrorLabels, RejectLabels, RemoteLabels,
    ThresholdLabels,
};
use readings::ReadingCollector;
pub use readings::is_current;
pub use remote_write::RemoteWriteMetrics;
pub(crate) use series::{READING_SERIES, reading_labels};
pub use status::{AccountStatus, HoldReason};

use crate::clock::Clock;
use crate::share::Endpoint;

/// The content type of the text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the request-duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0];

/// A histogram family whose histograms all have [`DURATION_BUCKETS`].
type DurationFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The registered metric families; cheap handles (each an `Arc` inside).
#[derive(Debug)]
struct Families {
    thresholds: Family<ThresholdLabels, FloatGauge>,
    up: Family<AccountLabels, FloatGauge>,
    polls: Family<AccountLabels, Counter>,
    poll_errors: Family<ErrorLabels, Counter>,
    logins: Family<AccountLabels, Counter>,
    last_success: Family<AccountLabels, FloatGauge>,
    readings_rejected: Family<RejectLabels, Counter>,
    next_login: Family<AccountLabels, FloatGauge>,
    readings_backfilled: Family<AccountLabels, Counter>,
    rw_samples: Family<RemoteLabels, Counter>,
    rw_failed: Family<RemoteLabels, Counter>,
    rw_retried: Family<RemoteLabels, Counter>,
    rw_dropped: Family<RemoteLabels, Counter>,
    rw_pending: Family<RemoteLabels, FloatGauge>,
    rw_bytes: Family<RemoteLabels, Counter>,
    rw_highest_sent: Family<RemoteLabels, FloatGauge>,
    rw_unauthorized: Family<RemoteLabels, Counter>,
    rw_expired: Family<RemoteLabels, Counter>,
    request_duration: DurationFamily,
    build_info: Family<BuildInfoLabels, FloatGauge>,
    clock_skew: Family<labels::OriginLabels, FloatGauge>,
}

impl Families {
    fn new() -> Self {
        Families {
            thresholds: Family::default(),
            up: Family::default(),
            polls: Family::default(),
            poll_errors: Family::default(),
            logins: Family::default(),
            last_success: Family::default(),
            readings_rejected: Family::default(),
            next_login: Family::default(),
            readings_backfilled: Family::default(),
            rw_samples: Family::default(),
            rw_failed: Family::default(),
            rw_retried: Family::default(),
            rw_dropped: Family::default(),
            rw_pending: Family::default(),
            rw_bytes: Family::default(),
            rw_highest_sent: Family::default(),
            rw_unauthorized: Family::default(),
            rw_expired: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            build_info: Family::default(),
            clock_skew: Family::default(),
        }
    }
}

/// Latency of Share requests by endpoint (no account label: it is a property of Share).
#[derive(Debug)]
pub struct RequestDurations {
    /// One per [`Endpoint::ALL`], in that order.
    by_endpoint: Vec<Histogram>,
}

impl RequestDurations {
    fn new(family: &DurationFamily) -> Self {
        RequestDurations {
            by_endpoint: Endpoint::ALL
                .iter()
                .map(|e| {
                    family
                        .get_or_create(&EndpointLabels {
                            endpoint: e.as_str(),
                        })
                        .clone()
                })
                .collect(),
        }
    }

    pub fn observe(&self, endpoint: Endpoint, elapsed: Duration) {
        let i = Endpoint::ALL
            .iter()
            .position(|e| *e == endpoint)
            .unwrap_or_default();
        if let Some(histogram) = self.by_endpoint.get(i) {
            histogram.observe(elapsed.as_secs_f64());
        }
    }
}

/// Build information for `dexcom_exporter_build_info`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub version: &'static str,
    /// Git revision, when known at build time.
    pub revision: &'static str,
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
    families: Families,
    accounts: Vec<Arc<AccountMetrics>>,
    requests: Arc<RequestDurations>,
    clock: Arc<dyn Clock>,
    max_age: Duration,
    started: std::time::SystemTime,
}

impl Metrics {
    /// The metrics of these accounts (name, thresholds), in this order; values older than
    /// `max_age` are withdrawn.
    pub fn new(
        accounts: impl IntoIterator<Item = (String, Thresholds)>,
        max_age: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let families = Families::new();
        let build = BuildInfo::current();
        families
            .build_info
            .get_or_create(&BuildInfoLabels {
                version: build.version,
                revision: build.revision,
                rustversion: build.rustversion,
            })
            .set(1.0);
        let accounts = accounts
            .into_iter()
            .map(|(name, thresholds)| Arc::new(AccountMetrics::new(name, thresholds, &families)))
            .collect();
        Metrics {
            requests: Arc::new(RequestDurations::new(&families.request_duration)),
            families,
            accounts,
            started: clock.now(),
            clock,
            max_age,
        }
    }

    /// The per-account state, in configuration order.
    pub(crate) fn accounts(&self) -> &[Arc<AccountMetrics>] {
        &self.accounts
    }

    /// Accounts whose first poll (or login deferral) has not happened yet: `/-/ready` answers
    /// 200 when there are none.
    pub fn accounts_awaiting_first_poll(&self) -> usize {
        self.accounts.iter().filter(|a| !a.polled_once()).count()
    }

    /// The age after which a reading's value is withdrawn (`--glucose.max-age`).
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The host's wall-clock time, in Unix milliseconds (login holds are in it).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The host's monotonic time, in milliseconds (reading ages are counted in it).
    pub fn monotonic_ms(&self) -> i64 {
        self.clock.monotonic_ms()
    }

    /// The request-duration histogram, for the pollers' observers.
    pub(crate) fn request_durations(&self) -> Arc<RequestDurations> {
        self.requests.clone()
    }

    /// The series of one remote-write receiver.
    pub fn remote_write(&self, remote_name: &str, url: &str) -> RemoteWriteMetrics {
        RemoteWriteMetrics::new(&self.families, remote_name, url)
    }

    /// The registry serving every metric: the one place where names, help texts and types are
    /// given. Read-only from here on.
    pub fn registry(&self) -> Registry {
        let f = &self.families;
        let mut registry = Registry::default();
        // The library adds the final full stop to each help text, and `_total` to counters.
        registry.register(
            "dexcom_glucose_threshold_mg_per_dl",
            "Configured glucose alert threshold in mg/dL by level (urgent_low, low, high), for alerting rules and dashboards",
            f.thresholds.clone(),
        );
        registry.register(
            "dexcom_up",
            format!(
                "1 if the last poll of the Dexcom Share API succeeded, else 0. {}",
                readings::CACHED
            ),
            f.up.clone(),
        );
        registry.register(
            "dexcom_polls",
            "Requests to the Share readings endpoint",
            f.polls.clone(),
        );
        registry.register(
            "dexcom_poll_errors",
            "Failed polls of Dexcom Share by reason: auth_failed, locked_out, session_expired, rate_limited, server_error, timeout, connection, invalid_response, edge_challenge, edge_rate_limited, edge_error (edge_*: Dexcom's web front, Cloudflare, answered in Share's place)",
            f.poll_errors.clone(),
        );
        registry.register(
            "dexcom_logins",
            "Share session logins whose password left the process (a login that could not connect sent nothing and is not counted)",
            f.logins.clone(),
        );
        registry.register(
            "dexcom_last_success_timestamp_seconds",
            "Unix time of the last successful poll of Dexcom Share",
            f.last_success.clone(),
        );
        registry.register(
            "dexcom_readings_rejected",
            "Readings from Share that were not published, by reason: future (dated minutes ahead of Share's clock), out_of_range (outside 39-401 mg/dL), malformed",
            f.readings_rejected.clone(),
        );
        registry.register(
            "dexcom_login_next_attempt_timestamp_seconds",
            "Earliest Unix time at which the login gate lets the password be sent again, 0 when there is no wait (Dexcom locks accounts after repeated failed logins)",
            f.next_login.clone(),
        );
        registry.register(
            "dexcom_readings_backfilled",
            "Readings from Share filled into the account's history behind the newest one (the day read at start, readings missed during an outage, a phone's late backlog): kept and pushed by remote write, but never the current value",
            f.readings_backfilled.clone(),
        );
        registry.register(
            "dexcom_remote_storage_samples",
            "Samples (readings' glucose and trend) acknowledged by the remote-write receiver",
            f.rw_samples.clone(),
        );
        registry.register(
            "dexcom_remote_storage_samples_failed",
            "Samples the remote-write receiver refused for good (an HTTP 4xx other than 401, 403 and 429); not sent again",
            f.rw_failed.clone(),
        );
        registry.register(
            "dexcom_remote_storage_samples_retried",
            "Samples sent again after a recoverable failure (HTTP 5xx, 429, timeout, connection)",
            f.rw_retried.clone(),
        );
        registry.register(
            "dexcom_remote_storage_samples_dropped",
            "Samples older than the remote-write receiver accepts (beyond its out-of-order window), given up on",
            f.rw_dropped.clone(),
        );
        registry.register(
            "dexcom_remote_storage_samples_pending",
            "Samples waiting to be sent to the remote-write receiver",
            f.rw_pending.clone(),
        );
        registry.register(
            "dexcom_remote_storage_bytes",
            "Compressed bytes of the remote-write requests the receiver acknowledged",
            f.rw_bytes.clone(),
        );
        registry.register(
            "dexcom_remote_storage_queue_highest_sent_timestamp_seconds",
            "Sensor time of the newest reading the remote-write receiver acknowledged, in Unix seconds",
            f.rw_highest_sent.clone(),
        );
        registry.register(
            "dexcom_remote_storage_requests_unauthorized",
            "Remote-write requests the receiver refused for their credentials (HTTP 401, 403) or their URL (404, a 3xx redirect, not followed); the samples are held and sent again once it takes them",
            f.rw_unauthorized.clone(),
        );
        registry.register(
            "dexcom_remote_storage_samples_expired",
            "Samples of readings that left the 24-hour history before the remote-write receiver took them: lost to it for good",
            f.rw_expired.clone(),
        );
        registry.register(
            "dexcom_request_duration_seconds",
            "Latency of Dexcom Share API requests by endpoint",
            f.request_duration.clone(),
        );
        registry.register(
            "dexcom_share_clock_skew_seconds",
            "Dexcom Share's clock (the median over its last 15 answers' Date headers) minus this host's wall clock, per Share host; reading ages come from Share's answers and the monotonic clock, so a wrong host clock changes no value, but fix it (NTP)",
            f.clock_skew.clone(),
        );
        registry.register(
            "dexcom_exporter_build_info",
            "A metric with a constant '1' value labelled by version, revision and rustversion of the build",
            f.build_info.clone(),
        );
        registry.register_collector(Box::new(ReadingCollector {
            accounts: self.accounts.clone(),
            clock: self.clock.clone(),
            max_age: self.max_age,
            started: self.started,
        }));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use std::time::SystemTime;

    use crate::share::{Reading, Trend};

    fn scrape(metrics: &Metrics) -> String {
        render(&metrics.registry())
    }

    fn value(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let metrics = Metrics::new([], Duration::from_secs(1200), Arc::new(SystemClock));
        let durations = metrics.request_durations();
        for ms in [20, 70, 70, 3000, 45_000] {
            durations.observe(Endpoint::ReadGlucose, Duration::from_millis(ms));
        }
        let text = scrape(&metrics);
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
        let now = crate::clock::unix_ms(SystemTime::now());
        let reading = |age_ms: i64| LatestReading {
            reading: Reading {
                timestamp_ms: now - age_ms,
                utc_offset_minutes: None,
                mg_per_dl: 54,
                trend: Trend::SingleDown,
            },
            delta_mg_per_dl: Some(-9),
            arrival: Arrival {
                share_ms: now,
                mono_ms: SystemClock.monotonic_ms(),
            },
        };
        let metrics = Metrics::new(
            [("kid".to_owned(), Thresholds::default())],
            Duration::from_secs(1200),
            Arc::new(SystemClock),
        );
        let account = metrics.accounts()[0].clone();
        account.set_latest(reading(60_000));
        let fresh = scrape(&metrics);
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
        let stale = scrape(&metrics);
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
