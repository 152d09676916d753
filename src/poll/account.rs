//! One account's polling loop: read Share when the schedule says, publish what was read,
//! and tell the user in the log what to do when Share refuses.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::intake::{covered_from, drop_repeated_uploads, latest_allowed_at};
use super::observer::Observer;
use super::schedule::{PollOutcome, Schedule};
use crate::clock::{Clock, ShareClock, unix_ms};
use crate::history::History;
use crate::metrics::{AccountMetrics, AccountStatus, Arrival, HoldReason, LatestReading};
use crate::share::gate::{FailureKind, Hold, StoreFaultKind};
use crate::share::{ErrorReason, ReadBatch, Reading, RejectReason, ShareClient, ShareError};
use crate::state::AccountStateFile;

/// Extra rows asked for beyond the readings expected since the newest one held: the newest held
/// itself (for the delta) and one more, so a future-dated row at the top cannot hide the real
/// newest one.
const READ_SLACK: u32 = 2;

/// Holes in the history younger than this are read again now and then: a transmitter that lost
/// the phone sends up to three hours of readings when it finds it again, after newer ones.
const HOLE_WINDOW: Duration = Duration::from_secs(3 * 60 * 60);

/// How often (in polls) a read is widened to cover such a hole. The same single request, only
/// larger: holes never cost Share an extra request.
const HOLE_RECHECK_POLLS: u32 = 6;

/// Two readings closer than this share of the interval are one reading uploaded twice (an
/// Apple Watch uploading beside the phone sends each a few seconds apart).
const REPEAT_SHARE: u32 = 5;

/// The number of future-dated sensor times remembered, so each is counted once.
const FUTURE_MEMORY: usize = 12;

/// The poller of one account.
#[derive(Debug)]
pub struct AccountPoller {
    client: ShareClient,
    metrics: Arc<AccountMetrics>,
    schedule: Schedule,
    interval: Duration,
    /// Its Share host's clock: reads and polls aimed in its time, every wait monotonic.
    clock: Arc<ShareClock>,
    last_reason: Option<ErrorReason>,
    said_empty: bool,
    /// The reasons readings were rejected for at the last poll, to log each episode once.
    rejecting: Vec<RejectReason>,
    /// Sensor times of future-dated readings already counted: such a reading stays at the top
    /// of Share's list for a day, and is counted once, not at every poll.
    counted_future: std::collections::VecDeque<i64>,
    /// Where the learned upload grace is kept across restarts, and the value last saved.
    state: Option<(Arc<AccountStateFile>, Duration)>,
    /// Every reading of the last 24 hours.
    history: Arc<History>,
    /// Successful polls since a read last covered a hole in the history.
    polls_since_hole_check: u32,
    /// Whether Share has served readings twice (a few seconds apart): reads then ask for twice
    /// the rows, so a day still fits in one read.
    repeats_uploads: bool,
    /// The day read came back full before reaching 24 hours back (repeated uploads used up
    /// its rows): the next read is a day read again, with the rows to cover it.
    day_incomplete: bool,
    /// The failure episode under way: since when (Unix ms), failed polls in it, and when the
    /// log last said so.
    episode: Option<FailureEpisode>,
}

/// A run of failed polls, for the reminder in the log.
#[derive(Debug, Clone, Copy)]
struct FailureEpisode {
    since_ms: i64,
    failures: u64,
    said_ms: i64,
}

/// While polls keep failing, the log says so again this often (with the count), so a person
/// reading it later is never left with one line from hours ago.
const STILL_FAILING_EVERY: Duration = Duration::from_secs(15 * 60);

impl AccountPoller {
    /// A poller publishing into `metrics`.
    pub fn new(
        client: ShareClient,
        metrics: Arc<AccountMetrics>,
        durations: Arc<crate::metrics::RequestDurations>,
        interval: Duration,
        clock: Arc<ShareClock>,
        state: Option<Arc<AccountStateFile>>,
        history: Arc<History>,
    ) -> Self {
        let seed = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::hash::DefaultHasher::new();
            metrics.name().hash(&mut hasher);
            hasher.finish()
        };
        let client = client.with_observer(Arc::new(Observer::new(
            metrics.clone(),
            durations,
            clock.clone(),
        )));
        let mut schedule = Schedule::new(interval, seed);
        let saved = state.as_ref().and_then(|s| s.upload_grace());
        if let Some(grace) = saved {
            schedule = schedule.with_grace(grace);
        }
        let state = state.map(|s| (s, schedule.grace()));
        AccountPoller {
            state,
            client,
            metrics,
            schedule,
            interval,
            clock,
            last_reason: None,
            said_empty: false,
            rejecting: Vec::new(),
            counted_future: std::collections::VecDeque::new(),
            history,
            polls_since_hole_check: 0,
            repeats_uploads: false,
            day_incomplete: false,
            episode: None,
        }
    }

    /// The read for this poll, as Share's `(minutes, maxCount)`: the whole day Share keeps
    /// when nothing is held yet (a start), else from the newest reading held (so a restart, an
    /// outage or a phone's backlog is filled by the one read that ends it), widened now and
    /// then to a recent hole. A poll on time asks for two or three rows.
    fn read_size(&self, now_ms: i64) -> (u32, u32) {
        let rows_per_reading = if self.repeats_uploads { 2 } else { 1 };
        let day = (
            crate::share::MAX_MINUTES,
            crate::share::MAX_COUNT * rows_per_reading,
        );
        let Some(newest) = self.history.newest() else {
            return day;
        };
        if self.day_incomplete {
            return day;
        }
        let mut since = newest.timestamp_ms;
        if self.polls_since_hole_check >= HOLE_RECHECK_POLLS {
            let window_start = now_ms.saturating_sub(duration_ms(HOLE_WINDOW));
            if let Some(hole) = self.history.oldest_hole_after(self.interval, window_start) {
                since = since.min(hole);
            }
        }
        let span_ms = u64::try_from(now_ms.saturating_sub(since)).unwrap_or(0);
        // A minute of slack on each side of Share's window for clocks that disagree a little.
        let minutes = span_ms.div_ceil(60_000).saturating_add(2);
        let interval_ms = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        let readings = span_ms.div_ceil(interval_ms.max(1));
        let clamp = |value: u64, max: u32| u32::try_from(value).unwrap_or(max).clamp(1, max);
        (
            clamp(minutes, crate::share::MAX_MINUTES),
            clamp(
                readings
                    .saturating_add(u64::from(READ_SLACK))
                    .saturating_mul(u64::from(rows_per_reading)),
                crate::share::MAX_COUNT * rows_per_reading,
            ),
        )
    }

    /// Polls until `shutdown`, starting after `first_delay`; at most `permits` accounts poll
    /// at the same moment.
    pub async fn run(
        mut self,
        first_delay: Duration,
        permits: Arc<Semaphore>,
        shutdown: CancellationToken,
    ) {
        self.client.check_saved_password().await;
        self.say_hold_at_start();
        if !self.sleep_or_cancel(first_delay, &shutdown).await {
            return;
        }
        loop {
            let outcome = {
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    outcome = self.poll_once() => outcome,
                }
            };
            let now_ms = self.clock.now_ms();
            let mut next_ms = self.schedule.next_poll(outcome, now_ms);
            self.save_grace_if_moved().await;
            if let Some(gate) = self.client.login_not_before() {
                // The next poll needs a login: not before the gate opens (in host wall time).
                next_ms = next_ms.max(self.clock.host_to_share_ms(unix_ms(gate)));
            }
            let wait =
                Duration::from_millis(u64::try_from(next_ms.saturating_sub(now_ms)).unwrap_or(0));
            tracing::debug!(account = self.metrics.name(), wait = %humantime::format_duration(round_ms(wait)), grace = %humantime::format_duration(round_ms(self.schedule.grace())), "next poll scheduled");
            if !self.sleep_or_cancel(wait, &shutdown).await {
                return;
            }
        }
    }

    /// One poll; a day read cut short by twins is followed at once by the rest of the day.
    pub async fn poll_once(&mut self) -> PollOutcome {
        match self.read_once().await {
            PollOutcome::Success { .. } if self.day_incomplete => self.read_once().await,
            outcome => outcome,
        }
    }

    /// One read of Share, published into the metrics.
    async fn read_once(&mut self) -> PollOutcome {
        let (minutes, max_count) = self.read_size(self.clock.now_ms());
        let result = self.client.latest_batch(minutes, max_count).await;
        let hold = self.client.login_hold();
        self.publish_hold(hold);
        match result {
            Ok(read) => {
                self.metrics.poll_succeeded(self.clock.now());
                let episode = self.episode.take();
                if let Some(reason) = self.last_reason.take() {
                    tracing::info!(
                        account = self.metrics.name(),
                        previous_error = %reason,
                        failed_polls = episode.map_or(1, |e| e.failures),
                        "Dexcom Share polls succeed again"
                    );
                }
                let covered_from = self.covered_from(&read, minutes, max_count);
                let rows = read.batch.readings.len() + read.batch.rejected.len();
                let arrival = Arrival::new(self.clock.share_ms_at(read.answered), read.answered);
                let readings = self.accept(read, arrival.share_ms);
                let readings = self.without_repeats(readings, minutes, max_count, rows);
                self.remember(&readings, covered_from);
                self.metrics
                    .set_polled_status(self.read_status(rows, readings.len()));
                if let Some(newest) = readings.first().copied() {
                    self.publish(newest, readings.get(1).copied(), arrival);
                } else if self.metrics.latest().is_none() && !self.said_empty {
                    // Once: an empty list is a steady state (no follower), not news every poll.
                    self.said_empty = true;
                    tracing::info!(
                        account = self.metrics.name(),
                        "Share has no readings for this account in the last 24 hours: check that the sensor is running, the Dexcom app is sharing, and at least one follower is set up"
                    );
                }
                // The newest reading published: a Share answer older than it is not news.
                PollOutcome::Success {
                    newest_ms: self.metrics.latest().map(|l| l.reading.timestamp_ms),
                }
            }
            Err(
                ShareError::LoginDeferred { until, .. }
                | ShareError::StateUnavailable { until, .. },
            ) => {
                self.metrics.set_polled_status(AccountStatus::LoginHeld);
                self.metrics.poll_deferred();
                tracing::debug!(account = self.metrics.name(), until = %httpdate::fmt_http_date(until), "login deferred by the login gate");
                PollOutcome::Deferred {
                    until_ms: self.clock.host_to_share_ms(unix_ms(until)),
                }
            }
            Err(error) => {
                let reason = error.reason();
                self.metrics.set_polled_status(if hold.is_some() {
                    AccountStatus::LoginHeld
                } else if reason.is_credential_failure() {
                    AccountStatus::LoginFailing
                } else {
                    AccountStatus::ShareFailing
                });
                self.metrics.poll_failed(reason);
                self.log_failure(&error);
                self.last_reason = Some(reason);
                PollOutcome::Failed {
                    reason,
                    retry_after: error.retry_after(),
                }
            }
        }
    }

    /// What a successful read means for the value: `rows` came back, `accepted` of them can
    /// be shown. [`AccountStatus::Ok`] when the newest reading was read (the scrape then tells
    /// whether it is still current).
    fn read_status(&self, rows: usize, accepted: usize) -> AccountStatus {
        let nothing_held = self.history.newest().is_none();
        if self.rejecting.contains(&RejectReason::Future) {
            AccountStatus::ClockSkew
        } else if nothing_held && accepted == 0 && rows > 0 {
            AccountStatus::ReadingsRejected
        } else if nothing_held {
            AccountStatus::NoReadings
        } else {
            AccountStatus::Ok
        }
    }

    /// `readings` (newest first) without the second uploads of a reading: one reading counts
    /// once in the history, the delta and everything pushed. Learns that the account repeats
    /// uploads, and whether a day read fell short of 24 hours because of it.
    fn without_repeats(
        &mut self,
        readings: Vec<Reading>,
        minutes: u32,
        max_count: u32,
        rows: usize,
    ) -> Vec<Reading> {
        let window_ms = duration_ms(self.interval / REPEAT_SHARE);
        let history = &self.history;
        let kept =
            drop_repeated_uploads(&readings, window_ms, |t| history.holds_near(t, window_ms));
        let repeated = readings.len() - kept.len();
        if repeated > 0 && !self.repeats_uploads {
            self.repeats_uploads = true;
            tracing::info!(
                account = self.metrics.name(),
                repeated,
                "Share has readings uploaded twice a few seconds apart (an Apple Watch beside the phone?): each is counted once, and reads ask for twice the rows"
            );
        }
        if minutes == crate::share::MAX_MINUTES {
            let full = rows >= usize::try_from(max_count).unwrap_or(usize::MAX);
            let reaches_back = kept.last().is_some_and(|oldest| {
                oldest.timestamp_ms
                    <= self
                        .clock
                        .now_ms()
                        .saturating_sub(duration_ms(crate::history::RETENTION))
                        .saturating_add(2 * duration_ms(self.interval))
            });
            self.day_incomplete =
                full && !reaches_back && max_count < crate::share::MAX_ROWS && repeated > 0;
        }
        kept
    }

    /// Publishes why and until when the gate holds the password (or that it does not).
    fn publish_hold(&self, hold: Option<Hold>) {
        self.metrics
            .set_hold(hold.map(|h| (hold_reason(&h), h.until_ms)));
    }

    /// At start: a hold kept from an earlier run (a rejected password, a login killed
    /// mid-way) is shown at once and said at WARN, so a restart is never silent about it.
    fn say_hold_at_start(&self) {
        let Some(hold) = self.client.login_hold() else {
            return;
        };
        self.publish_hold(Some(hold));
        self.metrics.set_polled_status(AccountStatus::LoginHeld);
        let until = humantime::format_rfc3339_seconds(crate::clock::from_unix_ms(hold.until_ms));
        let reason = hold_reason(&hold);
        let after = if reason == HoldReason::LoginLimit {
            "the login limits were reached".to_owned()
        } else {
            format!("after {}", reason.words())
        };
        tracing::warn!(
            account = self.metrics.name(),
            until = %until,
            reason = reason.as_str(),
            failures_today = hold.failures_today,
            "{}: login held until {until} {after} ({} failed attempts in the last 24 hours); no glucose value until then. Fix the password (the new one is tried at once) or wait",
            self.metrics.name(),
            hold.failures_today
        );
    }

    /// The readings that may be published, newest first: rows the parser skipped and readings
    /// dated ahead of `arrival_ms` (its host's Share time then) are counted and logged once.
    fn accept(&mut self, read: ReadBatch, arrival_ms: i64) -> Vec<Reading> {
        let mut reasons: Vec<RejectReason> = Vec::new();
        for rejected in &read.batch.rejected {
            let reason = rejected.reject_reason();
            self.metrics.count_rejected(reason);
            if self.starts_episode(&mut reasons, reason) {
                tracing::warn!(account = self.metrics.name(), %reason, error = %rejected, "skipping a reading Share served");
            }
        }
        let latest_allowed = latest_allowed_at(arrival_ms);
        let mut accepted = Vec::with_capacity(read.batch.readings.len());
        for reading in read.batch.readings {
            if reading.timestamp_ms <= latest_allowed {
                accepted.push(reading);
                continue;
            }
            if !self.counted_future.contains(&reading.timestamp_ms) {
                self.metrics.count_rejected(RejectReason::Future);
                if self.counted_future.len() == FUTURE_MEMORY {
                    self.counted_future.pop_front();
                }
                self.counted_future.push_back(reading.timestamp_ms);
            }
            if self.starts_episode(&mut reasons, RejectReason::Future) {
                let ahead = Duration::from_secs(
                    u64::try_from(reading.timestamp_ms.saturating_sub(arrival_ms) / 1000)
                        .unwrap_or(u64::MAX),
                );
                tracing::warn!(
                    account = self.metrics.name(),
                    ahead = %humantime::format_duration(ahead),
                    "skipping a reading dated ahead of Dexcom Share's clock (the phone's clock is probably wrong); newer readings are still shown"
                );
            }
        }
        for reason in &self.rejecting {
            if !reasons.contains(reason) {
                tracing::info!(account = self.metrics.name(), %reason, "Share no longer serves readings rejected for this reason");
            }
        }
        self.rejecting = reasons;
        accepted
    }

    /// The oldest sensor time a read is known to have covered: its whole window, unless Share
    /// filled `max_count` rows, in which case it may have stopped at the oldest row it served
    /// (a hole behind that row was not looked at).
    fn covered_from(&self, read: &ReadBatch, minutes: u32, max_count: u32) -> i64 {
        covered_from(
            self.clock.now_ms(),
            minutes,
            max_count,
            read.batch.readings.len() + read.batch.rejected.len(),
            read.batch.readings.iter().map(|r| r.timestamp_ms).min(),
        )
    }

    /// Merges a successful read into the history; a read that reached back past a hole counts
    /// as its check.
    fn remember(&mut self, readings: &[Reading], covered_from: i64) {
        let now_ms = self.clock.now_ms();
        let window_start = now_ms.saturating_sub(duration_ms(HOLE_WINDOW));
        let hole = self.history.oldest_hole_after(self.interval, window_start);
        if hole.is_none_or(|start| covered_from <= start) {
            self.polls_since_hole_check = 0;
        } else {
            self.polls_since_hole_check = self.polls_since_hole_check.saturating_add(1);
        }
        let first_fill = self.history.newest().is_none();
        let merged = self.history.merge(readings, now_ms);
        if merged.backfilled == 0 {
            return;
        }
        self.metrics.count_backfilled(merged.backfilled);
        if first_fill {
            // The day read at start: news only to someone debugging (a clinic has hundreds).
            tracing::debug!(
                account = self.metrics.name(),
                readings = merged.added,
                "history filled with the day Share keeps"
            );
        } else {
            tracing::info!(
                account = self.metrics.name(),
                readings = merged.backfilled,
                "filled readings into the history behind the newest one (read at start, missed during an outage, or uploaded late by the phone)"
            );
        }
    }

    /// Notes `reason` among this poll's `reasons`; `true` the first time in a poll when the
    /// previous poll did not have it either: a new episode, to be logged.
    fn starts_episode(&self, reasons: &mut Vec<RejectReason>, reason: RejectReason) -> bool {
        if reasons.contains(&reason) {
            return false;
        }
        reasons.push(reason);
        !self.rejecting.contains(&reason)
    }

    fn publish(&self, newest: Reading, previous: Option<Reading>, arrival: Arrival) {
        let repeat_ms = duration_ms(self.interval / REPEAT_SHARE);
        if self.metrics.latest().is_some_and(|l| {
            l.reading.timestamp_ms >= newest.timestamp_ms
                || newest.timestamp_ms - l.reading.timestamp_ms <= repeat_ms
        }) {
            return;
        }
        let interval_ms = i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX);
        let delta_mg_per_dl = previous.and_then(|p| {
            let gap = newest.timestamp_ms.saturating_sub(p.timestamp_ms);
            let one_interval = gap.saturating_sub(interval_ms).saturating_abs() <= interval_ms / 2;
            // 39 and 401 are "below 40" and "above 400", not numbers to subtract.
            let sentinel = |r: &Reading| matches!(r.mg_per_dl, 39 | 401);
            (one_interval && !sentinel(&newest) && !sentinel(&p))
                .then(|| i32::from(newest.mg_per_dl) - i32::from(p.mg_per_dl))
        });
        tracing::debug!(account = self.metrics.name(), mg_per_dl = newest.mg_per_dl, trend = %newest.trend, "new reading");
        self.metrics.set_latest(LatestReading {
            reading: newest,
            delta_mg_per_dl,
            arrival,
        });
    }

    /// Saves the learned grace when it has moved by 1% of the interval since the last save:
    /// often enough to start well after a restart, rarely enough to cost no disk wear.
    async fn save_grace_if_moved(&mut self) {
        let grace = self.schedule.grace();
        let Some((file, saved)) = &mut self.state else {
            return;
        };
        if grace.abs_diff(*saved) < self.interval / 100 {
            return;
        }
        *saved = grace;
        let file = file.clone();
        let _ = tokio::task::spawn_blocking(move || file.save_upload_grace(grace)).await;
    }

    /// Sleeps for `wait` of the clock's time; `false` if `shutdown` came first.
    async fn sleep_or_cancel(&self, wait: Duration, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = self.clock.sleep(wait) => true,
        }
    }

    fn log_failure(&mut self, error: &ShareError) {
        let now_ms = self.clock.now_ms();
        let episode = match self.episode {
            Some(mut episode) => {
                episode.failures += 1;
                episode
            }
            None => FailureEpisode {
                since_ms: now_ms,
                failures: 1,
                said_ms: now_ms,
            },
        };
        self.episode = Some(episode);
        let account = self.metrics.name();
        let reason = error.reason();
        let repeated = self.last_reason == Some(reason);
        if repeated && now_ms.saturating_sub(episode.said_ms) >= duration_ms(STILL_FAILING_EVERY) {
            if let Some(e) = self.episode.as_mut() {
                e.said_ms = now_ms;
            }
            tracing::warn!(
                account,
                %reason,
                error = %error,
                failed_polls = episode.failures,
                since = %humantime::format_rfc3339_seconds(crate::clock::from_unix_ms(episode.since_ms)),
                "Dexcom Share polls are still failing ({} failed polls since {}); no glucose value until they succeed",
                episode.failures,
                humantime::format_rfc3339_seconds(crate::clock::from_unix_ms(episode.since_ms))
            );
            return;
        }
        // When the next poll needs a login the gate holds back, say until when.
        let gate = self.client.login_not_before().map(httpdate::fmt_http_date);
        if reason.is_credential_failure() {
            // Always loud: nothing gets better until a person fixes the configuration.
            tracing::error!(account, %reason, error = %error, next_login = gate.as_deref().unwrap_or("now"), "Dexcom Share refused the login; the password is not sent again before the next login time (fix the password and restart to try a new one at once)");
        } else if let Some(next_login) = gate.filter(|_| !repeated) {
            tracing::warn!(account, %reason, error = %error, %next_login, "a login failed before the password was ever accepted; Share may have counted it as a failed attempt, so the next login waits");
        } else if repeated {
            tracing::debug!(account, %reason, error = %error, "Dexcom Share poll failed again");
        } else {
            tracing::warn!(account, %reason, error = %error, "Dexcom Share poll failed; backing off");
        }
    }
}

/// The metric's word for why the gate holds the password.
fn hold_reason(hold: &Hold) -> HoldReason {
    match hold.fault {
        Some(StoreFaultKind::Unwritable) => return HoldReason::StateUnwritable,
        Some(StoreFaultKind::Unreadable) => return HoldReason::StateUnreadable,
        Some(StoreFaultKind::Duplicate) => return HoldReason::DuplicateLogin,
        None if hold.is_cap() => return HoldReason::FailuresInARow,
        None => {}
    }
    match hold.after {
        Some(FailureKind::Rejected) => HoldReason::AuthFailed,
        Some(FailureKind::LockedOut) => HoldReason::LockedOut,
        Some(FailureKind::Ambiguous | FailureKind::Unfinished) => HoldReason::Unconfirmed,
        None => HoldReason::LoginLimit,
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
