//! The remote-write sender's handles into the metric families registered in `mod.rs`, named
//! like Prometheus's own remote-write metrics with a `dexcom_` prefix, so the dashboards and
//! alerts people already have for Prometheus's queues read ours the same way.

use prometheus_client::metrics::counter::Counter;

use super::Families;
use super::account::FloatGauge;
use super::labels::RemoteLabels;

/// One receiver's series.
#[derive(Debug, Clone)]
pub struct RemoteWriteMetrics {
    sent: Counter,
    failed: Counter,
    retried: Counter,
    dropped: Counter,
    pending: FloatGauge,
    bytes: Counter,
    highest_sent: FloatGauge,
    unauthorized: Counter,
    expired: Counter,
}

impl RemoteWriteMetrics {
    pub(super) fn new(families: &Families, remote_name: &str, url: &str) -> Self {
        let labels = RemoteLabels {
            remote_name: remote_name.to_owned(),
            url: url.to_owned(),
        };
        RemoteWriteMetrics {
            sent: families.rw_samples.get_or_create(&labels).clone(),
            failed: families.rw_failed.get_or_create(&labels).clone(),
            retried: families.rw_retried.get_or_create(&labels).clone(),
            dropped: families.rw_dropped.get_or_create(&labels).clone(),
            pending: families.rw_pending.get_or_create(&labels).clone(),
            bytes: families.rw_bytes.get_or_create(&labels).clone(),
            highest_sent: families.rw_highest_sent.get_or_create(&labels).clone(),
            unauthorized: families.rw_unauthorized.get_or_create(&labels).clone(),
            expired: families.rw_expired.get_or_create(&labels).clone(),
        }
    }

    /// `samples` acknowledged in a request of `bytes` (compressed), the newest at
    /// `newest_ms`.
    pub fn sent(&self, samples: usize, bytes: usize, newest_ms: i64) {
        self.sent.inc_by(samples as u64);
        self.bytes.inc_by(bytes as u64);
        let newest = newest_ms as f64 / 1000.0;
        if newest > self.highest_sent.get() {
            self.highest_sent.set(newest);
        }
    }

    /// `samples` the receiver refused for good (a 4xx other than 429).
    pub fn failed(&self, samples: usize) {
        self.failed.inc_by(samples as u64);
    }

    /// `samples` to be sent again after a recoverable failure.
    pub fn retried(&self, samples: usize) {
        self.retried.inc_by(samples as u64);
    }

    /// `samples` older than the receiver accepts, given up on.
    pub fn dropped(&self, samples: usize) {
        self.dropped.inc_by(samples as u64);
    }

    /// One request refused for its credentials (401, 403) or its URL (404, 3xx); its samples
    /// are held.
    pub fn unauthorized(&self) {
        self.unauthorized.inc();
    }

    /// `samples` that left the 24-hour history before the receiver took them.
    pub fn expired(&self, samples: usize) {
        self.expired.inc_by(samples as u64);
    }

    /// Samples waiting to be sent.
    pub fn set_pending(&self, samples: usize) {
        self.pending.set(samples as f64);
    }
}
