//! The queue towards one receiver: wakes when any account's history gains a reading, sends
//! every reading the receiver has not acknowledged (oldest first, up to
//! [`MAX_READINGS_PER_REQUEST`] a request), and records each acknowledgement in the state
//! directory so that a restart resends only what was not acknowledged.
//!
//! What happens to a request that fails follows what Prometheus's own remote write does, with
//! one addition: 5xx, 429, timeouts and connection failures are retried with backoff for as
//! long as it takes (nothing is dropped); any other 4xx is permanent, counted and logged once
//! per episode. The addition: a receiver refuses a *whole* request when one sample in it is
//! older than it accepts (Prometheus answers 500 "too old sample"), so such a request is split
//! in halves until the samples it refuses stand alone; those are counted as dropped, the rest
//! arrive. And one difference: a 401 or 403 is the credentials' fault, and a 404 or a 3xx the
//! URL's, not the samples', so the readings are held and retried (backing off to
//! [`MAX_UNAUTHORIZED_BACKOFF`], the credential files read again each time) and arrive once the
//! receiver takes them, without a restart for credentials.
//! Readings that leave the 24-hour history before any answer took them are counted as expired:
//! between requests, and during the pauses of a request being retried (the history is looked at
//! again whenever it gains a reading), so a day-long outage counts each one as it goes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::client::{SendError, WriteClient};
use super::encode::{Series, compress, write_request};
use crate::history::History;
use crate::metrics::RemoteWriteMetrics;
use crate::metrics::{READING_SERIES, reading_labels};
use crate::share::Reading;
use crate::state::AccountStateFile;
use crate::state::Acked;

/// The most readings in one request (two samples each, glucose and trend): a day of 300
/// accounts goes in 173 requests, and a request stays far below receivers' size limits.
pub const MAX_READINGS_PER_REQUEST: usize = 500;

/// The first pause after a recoverable failure; it doubles up to [`MAX_SEND_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);

/// The longest pause between attempts: a receiver back from a restart is written to within
/// half a minute.
pub const MAX_SEND_BACKOFF: Duration = Duration::from_secs(30);

/// The longest pause after the receiver refused the credentials: someone has to fix them, and
/// the readings are delivered within five minutes of the fix, without a restart.
pub const MAX_UNAUTHORIZED_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// One account as the sender sees it.
#[derive(Debug)]
pub struct SenderAccount {
    /// The account's readings of the last 24 hours, which the sender pushes from.
    pub(crate) history: Arc<History>,
    /// Where its acknowledgements are kept, if there is a state directory.
    pub(crate) state: Option<Arc<AccountStateFile>>,
    acked: Acked,
    /// The sensor times pending at the last look: one that has since left the history without
    /// being acknowledged expired unsent (Share keeps 24 hours, so it is lost for good).
    last_pending: Vec<i64>,
}

impl SenderAccount {
    /// The account without a state directory: what was acknowledged is forgotten at exit (as
    /// in `--demo` or a benchmark).
    pub fn in_memory(history: Arc<History>) -> Self {
        SenderAccount::new(history, None, "")
    }

    /// The account, with what `remote_name` acknowledged in an earlier run.
    pub(crate) fn new(
        history: Arc<History>,
        state: Option<Arc<AccountStateFile>>,
        remote_name: &str,
    ) -> Self {
        let acked = state
            .as_ref()
            .map(|s| s.remote_write_acked(remote_name))
            .unwrap_or_default();
        SenderAccount {
            history,
            state,
            acked,
            last_pending: Vec::new(),
        }
    }
}

/// Readings of one request: (account index, reading), oldest first within each account.
type Part = Vec<(usize, Reading)>;

/// The sender of one receiver.
#[derive(Debug)]
pub struct Sender {
    client: WriteClient,
    metrics: RemoteWriteMetrics,
    accounts: Vec<SenderAccount>,
    external_labels: Vec<(String, String)>,
    /// The failure being reported, so each episode is logged once.
    failing: Option<&'static str>,
    /// Readings that expired unsent since the receiver last took a request: said at the
    /// first, and in total when it takes samples again (a day-long outage expires a reading
    /// per account every five minutes; one line each would bury the log).
    expired_unsent: usize,
}

impl Sender {
    /// A sender of `accounts`' readings through `client`.
    pub fn new(
        client: WriteClient,
        metrics: RemoteWriteMetrics,
        accounts: Vec<SenderAccount>,
        external_labels: Vec<(String, String)>,
    ) -> Self {
        Sender {
            client,
            metrics,
            accounts,
            external_labels,
            failing: None,
            expired_unsent: 0,
        }
    }

    /// Sends until `shutdown`, waking on `changed`.
    pub async fn run(mut self, changed: Arc<Notify>, shutdown: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        let mut unauthorized_backoff = MIN_BACKOFF;
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pending = self.pending();
            self.metrics.set_pending(pending.len() * 2);
            if pending.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = &mut notified => continue,
                }
            }
            let batch: Part = pending.into_iter().take(MAX_READINGS_PER_REQUEST).collect();
            // A stack of parts: a part refused as too old is split, newer half on top.
            let mut work = vec![batch];
            let mut touched = Vec::new();
            // Per account, a sensor time the receiver is known to refuse as too old: as old or
            // older is refused too, and dropped without being sent.
            let mut known_old: std::collections::HashMap<usize, i64> =
                std::collections::HashMap::new();
            while let Some(mut part) = work.pop() {
                // Readings that expired while the part waited are counted already, and gone.
                part.retain(|(account, r)| !self.accounts[*account].acked.is_done(r.timestamp_ms));
                let (old, part): (Part, Part) = part.into_iter().partition(|(account, r)| {
                    known_old
                        .get(account)
                        .is_some_and(|old| r.timestamp_ms <= *old)
                });
                if !old.is_empty() {
                    self.drop_too_old(&old, &mut touched);
                }
                if part.is_empty() {
                    continue;
                }
                let result = tokio::select! {
                    () = shutdown.cancelled() => {
                        // A slow receiver must not hold the shutdown; what it did not
                        // acknowledge is sent again after the restart.
                        self.save(&touched).await;
                        return;
                    }
                    result = self.send(&part) => result,
                };
                match result {
                    Ok(()) => {
                        backoff = MIN_BACKOFF;
                        unauthorized_backoff = MIN_BACKOFF;
                        self.recovered();
                        self.mark_done(&part, &mut touched);
                    }
                    Err(SendError::Recoverable {
                        detail,
                        retry_after,
                    }) => {
                        self.metrics.retried(part.len() * 2);
                        if self.starts("recoverable") {
                            tracing::warn!(remote_name = %self.client.target().name, url = %self.client.target().shown_url(), error = %detail, pending = part.len() * 2, "remote write failed; retrying with backoff until the receiver takes the samples (nothing is dropped)");
                        }
                        let pause = retry_after.unwrap_or(backoff).min(MAX_SEND_BACKOFF * 10);
                        backoff = (backoff * 2).min(MAX_SEND_BACKOFF);
                        work.push(part);
                        if !self
                            .pause_or_stop(pause, &touched, &changed, &shutdown)
                            .await
                        {
                            return;
                        }
                    }
                    Err(SendError::Held { status, detail }) => {
                        self.metrics.unauthorized();
                        self.say_held(status, &detail, part.len() * 2);
                        let pause = unauthorized_backoff;
                        unauthorized_backoff =
                            (unauthorized_backoff * 2).min(MAX_UNAUTHORIZED_BACKOFF);
                        work.push(part);
                        if !self
                            .pause_or_stop(pause, &touched, &changed, &shutdown)
                            .await
                        {
                            return;
                        }
                        self.client.reread_credentials();
                    }
                    Err(SendError::TooOld { status, detail }) => {
                        tracing::debug!(status, %detail, readings = part.len(), "the receiver refused old samples; narrowing down which");
                        if part.iter().any(|(a, _)| *a != part[0].0) {
                            // How old is too old can differ by series: one account at a time.
                            work.extend(split_by_account(part));
                            continue;
                        }
                        // The oldest sample of a refused part is too old (the receiver's limit
                        // is a time), and so is everything older; the newer half is tried
                        // first, so an all-old older half costs no request: O(log n) in all.
                        let account = part[0].0;
                        let oldest = part.iter().map(|(_, r)| r.timestamp_ms).min().unwrap_or(0);
                        let entry = known_old.entry(account).or_insert(oldest);
                        *entry = (*entry).max(oldest);
                        if part.len() > 1 {
                            let (older, newer) = split_by_time(part);
                            work.push(older);
                            work.push(newer);
                        } else {
                            work.push(part);
                        }
                    }
                    Err(SendError::Refused { status, detail }) => {
                        self.metrics.failed(part.len() * 2);
                        if self.starts("refused") {
                            tracing::error!(remote_name = %self.client.target().name, url = %self.client.target().shown_url(), status, error = %detail, "the remote-write receiver refused samples; they are not sent again (check the URL, credentials and tenant headers)");
                        }
                        self.mark_done(&part, &mut touched);
                    }
                }
            }
            self.save(&touched).await;
        }
    }

    /// Waits `pause` before the next try; `false` when `shutdown` came first (what was
    /// acknowledged so far is saved: a slow receiver must not hold the shutdown). Each time a
    /// history gains a reading meanwhile (and so may lose its oldest), the pending readings are
    /// looked at again: those that left unsent are counted as expired, and the pending gauge
    /// follows.
    async fn pause_or_stop(
        &mut self,
        pause: Duration,
        touched: &[usize],
        changed: &Notify,
        shutdown: &CancellationToken,
    ) -> bool {
        let until = tokio::time::Instant::now() + pause;
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pending = self.pending().len();
            self.metrics.set_pending(pending * 2);
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.save(touched).await;
                    return false;
                }
                () = tokio::time::sleep_until(until) => return true,
                () = &mut notified => {}
            }
        }
    }

    /// Says, once per episode, that the receiver refuses the requests for who sent them or
    /// where they went (`status` 401/403, or 404/3xx) and that the readings are held.
    fn say_held(&mut self, status: u16, detail: &str, pending: usize) {
        let target = self.client.target();
        let (name, url) = (target.name.clone(), target.shown_url());
        if matches!(status, 401 | 403) {
            if self.starts("unauthorized") {
                tracing::error!(remote_name = %name, url = %url, status, error = %detail, pending, "the remote-write receiver refuses the credentials; the readings are held and sent again (backing off to 5 minutes, credential files read again before each try) once it takes them: check basic_auth, authorization or the tenant headers");
            }
        } else if self.starts("misdirected") {
            tracing::error!(remote_name = %name, url = %url, status, error = %detail, pending, "the remote-write receiver answers that nothing is there (404) or that it moved (3xx, not followed, so credentials never go elsewhere); the readings are held and sent again (backing off to 5 minutes): check the url (e.g. /api/v1/write for Prometheus, /api/v1/push for Mimir) and restart");
        }
    }

    /// Gives up on readings the receiver refuses as too old: counted, logged once, done.
    fn drop_too_old(&mut self, part: &Part, touched: &mut Vec<usize>) {
        self.metrics.dropped(part.len() * 2);
        if self.starts("too_old") {
            tracing::warn!(remote_name = %self.client.target().name, readings = part.len(), "the receiver refuses readings this old (beyond its out-of-order window): they are dropped and counted in dexcom_remote_storage_samples_dropped_total; set storage.tsdb.out_of_order_time_window to 1d in prometheus.yml to keep them");
        }
        self.mark_done(part, touched);
    }

    /// Every reading not yet done, account by account, oldest first. Readings that were
    /// pending at the last look and have left the history since expired unsent: counted,
    /// logged (the first of an outage), then done.
    fn pending(&mut self) -> Part {
        let mut out = Vec::new();
        let mut expired = 0;
        for (index, account) in self.accounts.iter_mut().enumerate() {
            let held = account.history.snapshot();
            let gone: Vec<i64> = account
                .last_pending
                .iter()
                .copied()
                .filter(|t| {
                    !account.acked.is_done(*t)
                        && held.binary_search_by(|r| t.cmp(&r.timestamp_ms)).is_err()
                })
                .collect();
            if !gone.is_empty() {
                expired += gone.len();
                account.acked.mark(gone);
            }
            let start = out.len();
            out.extend(
                held.iter()
                    .filter(|r| !account.acked.is_done(r.timestamp_ms))
                    .map(|r| (index, *r)),
            );
            out[start..].reverse();
            account.last_pending = out[start..].iter().map(|(_, r)| r.timestamp_ms).collect();
        }
        if expired > 0 {
            self.metrics.expired(expired * 2);
            if self.expired_unsent == 0 {
                tracing::error!(remote_name = %self.client.target().name, readings = expired, "readings are leaving the 24-hour history before the remote-write receiver took them: they are lost to it (Share keeps only 24 hours); counted in dexcom_remote_storage_samples_expired_total, and said again in total once the receiver takes samples");
            }
            self.expired_unsent += expired;
        }
        out
    }

    async fn send(&self, part: &Part) -> Result<(), SendError> {
        let body = write_request(&self.series(part));
        let body = compress(&body).map_err(|e| SendError::Refused {
            status: 0,
            detail: format!("cannot compress the request: {e}"),
        })?;
        let bytes = body.len();
        self.client.send(body).await?;
        let newest = part.iter().map(|(_, r)| r.timestamp_ms).max().unwrap_or(0);
        self.metrics.sent(part.len() * 2, bytes, newest);
        Ok(())
    }

    /// Two series per account in the part: glucose and trend, samples oldest first.
    fn series(&self, part: &Part) -> Vec<Series> {
        let mut out = Vec::new();
        for account_part in split_by_account(part.clone()) {
            let account = self.accounts[account_part[0].0].history.account();
            let mut readings: Vec<Reading> = account_part.into_iter().map(|(_, r)| r).collect();
            readings.sort_by_key(|r| r.timestamp_ms);
            for series in READING_SERIES {
                let mut labels = reading_labels(account, &self.external_labels);
                labels.push(("__name__".to_owned(), series.name.to_owned()));
                labels.sort();
                out.push(Series {
                    labels,
                    samples: readings
                        .iter()
                        .map(|r| (r.timestamp_ms, (series.value)(r)))
                        .collect(),
                });
            }
        }
        out
    }

    fn mark_done(&mut self, part: &Part, touched: &mut Vec<usize>) {
        for (index, account) in self.accounts.iter_mut().enumerate() {
            let times: Vec<i64> = part
                .iter()
                .filter(|(a, _)| *a == index)
                .map(|(_, r)| r.timestamp_ms)
                .collect();
            if !times.is_empty() {
                account.acked.mark(times);
                if !touched.contains(&index) {
                    touched.push(index);
                }
            }
        }
    }

    /// Saves the acknowledgements of the accounts in `touched` (off the async threads: each
    /// save is an fsync).
    async fn save(&self, touched: &[usize]) {
        let name = self.client.target().name.clone();
        let saves: Vec<(Arc<AccountStateFile>, Acked)> = touched
            .iter()
            .filter_map(|&i| {
                let account = &self.accounts[i];
                account.state.clone().map(|s| (s, account.acked.clone()))
            })
            .collect();
        if saves.is_empty() {
            return;
        }
        let _ = tokio::task::spawn_blocking(move || {
            for (file, acked) in saves {
                file.save_remote_write_acked(&name, &acked);
            }
        })
        .await;
    }

    /// Whether `episode` starts now (and is to be logged): it was not already being reported.
    fn starts(&mut self, episode: &'static str) -> bool {
        let new = self.failing != Some(episode);
        self.failing = Some(episode);
        new
    }

    fn recovered(&mut self) {
        if matches!(
            self.failing,
            Some("recoverable" | "unauthorized" | "misdirected")
        ) {
            self.failing = None;
            tracing::info!(remote_name = %self.client.target().name, "the remote-write receiver takes samples again");
        }
        if self.expired_unsent > 0 {
            tracing::warn!(remote_name = %self.client.target().name, readings = self.expired_unsent, "the remote-write receiver takes samples again; readings that expired unsent meanwhile are lost to it");
            self.expired_unsent = 0;
        }
    }
}

/// One part per account.
fn split_by_account(part: Part) -> Vec<Part> {
    let mut parts: std::collections::BTreeMap<usize, Part> = std::collections::BTreeMap::new();
    for item in part {
        parts.entry(item.0).or_default().push(item);
    }
    parts.into_values().collect()
}

/// Splits a part in two halves by sensor time: the older half first.
fn split_by_time(mut part: Part) -> (Part, Part) {
    part.sort_by_key(|(_, r)| r.timestamp_ms);
    let newer = part.split_off(part.len() / 2);
    (part, newer)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use super::*;
    use crate::clock::SystemClock;
    use crate::config::{RemoteWriteTarget, RemoteWriteTls};
    use crate::metrics::Metrics;
    use crate::share::Trend;

    const INTERVAL_MS: i64 = 300_000;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn reading(ms: i64) -> Reading {
        Reading {
            timestamp_ms: ms,
            utc_offset_minutes: None,
            mg_per_dl: 120,
            trend: Trend::Flat,
        }
    }

    /// A receiver down for a day: every reading that leaves the history unsent is counted,
    /// the log says so once, then once more in total when the receiver is back.
    #[test]
    fn readings_expiring_in_an_outage_are_each_counted_and_said_once() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let metrics = Metrics::new(
            std::iter::empty(),
            Duration::from_secs(600),
            Arc::new(SystemClock),
        );
        let target = RemoteWriteTarget {
            name: "down".into(),
            url: "http://127.0.0.1:9/api/v1/write".parse().unwrap(),
            timeout: Duration::from_secs(1),
            headers: Default::default(),
            auth: None,
            tls: RemoteWriteTls::default(),
        };
        let history = Arc::new(History::new("kid", Arc::new(Notify::new())));
        let mut sender = Sender::new(
            WriteClient::new(target).unwrap(),
            metrics.remote_write("down", "http://127.0.0.1:9/api/v1/write"),
            vec![SenderAccount::in_memory(history.clone())],
            Vec::new(),
        );
        let start = 1_800_000_000_000;
        let day: Vec<Reading> = (0..288).map(|i| reading(start + i * INTERVAL_MS)).collect();
        let mut now = start + 287 * INTERVAL_MS;
        history.merge(&day, now);
        assert_eq!(sender.pending().len(), 288);

        // Twelve more readings, each pushing the oldest out of the day, none taken.
        for _ in 0..12 {
            now += INTERVAL_MS;
            // A millisecond after the reading: the day's oldest is then just outside it.
            history.merge(&[reading(now)], now + 1);
            sender.pending();
        }
        let expired_total = |metrics: &Metrics| {
            crate::metrics::render(&metrics.registry())
                .lines()
                .find(|l| l.starts_with("dexcom_remote_storage_samples_expired_total{"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        };
        assert_eq!(
            expired_total(&metrics),
            Some(24.0),
            "12 readings, 2 samples each"
        );
        let said = |lines: &Lines, text: &str| {
            String::from_utf8_lossy(&lines.0.lock().unwrap())
                .lines()
                .filter(|l| l.contains(text))
                .count()
        };
        assert_eq!(said(&lines, "are leaving the 24-hour history"), 1);

        sender.recovered();
        assert_eq!(said(&lines, "expired unsent meanwhile"), 1);
        assert!(
            String::from_utf8_lossy(&lines.0.lock().unwrap()).contains("readings=12"),
            "the total is said"
        );
        sender.recovered();
        assert_eq!(said(&lines, "expired unsent meanwhile"), 1, "said once");
    }
}
