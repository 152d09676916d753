//! Each account's last 24 hours of readings: deduplicated by sensor time, newest first, with
//! late uploads merged where they belong.
//!
//! The scraped gauges only ever show the newest reading; this is where every reading lives, so
//! that readings Share served while the exporter, the network or Share was down, or that the
//! phone uploaded late, still reach remote write, the backfill subcommand and the landing page.
//!
//! One writer (the account's poller) and several readers (the remote-write sender, the landing
//! page): the list is an immutable snapshot swapped whole on each change, so readers never take
//! a lock and never see half a merge. A change is announced on a [`Notify`] shared by all
//! accounts, so the remote-write sender wakes within milliseconds of a new reading.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::share::Reading;

/// How long readings are kept: as long as Share keeps them.
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// What one merge changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    /// Readings not held before.
    pub added: usize,
    /// Of those, readings older than the newest one held after the merge: readings never
    /// current, filled in (the day read at start, an outage, a phone's backlog).
    pub backfilled: usize,
}

/// One account's history.
#[derive(Debug)]
pub struct History {
    account: String,
    /// Newest sensor time first, no two with the same sensor time.
    readings: ArcSwap<Vec<Reading>>,
    changed: Arc<Notify>,
}

impl History {
    /// An empty history for the account labelled `account`, announcing changes on `changed`.
    pub fn new(account: &str, changed: Arc<Notify>) -> Self {
        History {
            account: account.to_owned(),
            readings: ArcSwap::from_pointee(Vec::new()),
            changed,
        }
    }

    /// The `account` label the readings are shown under.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Every reading held, newest first.
    pub fn snapshot(&self) -> Arc<Vec<Reading>> {
        self.readings.load_full()
    }

    /// The newest reading held.
    pub fn newest(&self) -> Option<Reading> {
        self.readings.load().first().copied()
    }

    /// Whether a reading at another sensor time than `timestamp_ms` but within `window_ms`
    /// of it is held: `timestamp_ms` would be that reading uploaded again.
    pub fn holds_near(&self, timestamp_ms: i64, window_ms: i64) -> bool {
        let readings = self.readings.load();
        // Newest first: the readings in [t - window, t + window] are a contiguous run.
        let start = readings.partition_point(|r| r.timestamp_ms > timestamp_ms + window_ms);
        readings[start..]
            .iter()
            .take_while(|r| r.timestamp_ms >= timestamp_ms - window_ms)
            .any(|r| r.timestamp_ms != timestamp_ms)
    }

    /// The readings with a sensor time after `after_ms`, oldest first.
    pub fn after(&self, after_ms: i64) -> Vec<Reading> {
        let readings = self.readings.load();
        let mut out: Vec<Reading> = readings
            .iter()
            .take_while(|r| r.timestamp_ms > after_ms)
            .copied()
            .collect();
        out.reverse();
        out
    }

    /// Merges `batch` (any order), dropping readings more than 24 hours (`RETENTION`) before `now_ms`.
    /// A reading already held keeps its first value: Share does not revise readings, and a
    /// value that changed under the same sensor time would have been pushed already.
    pub fn merge(&self, batch: &[Reading], now_ms: i64) -> Merged {
        let oldest_kept = now_ms.saturating_sub(retention_ms());
        let current = self.readings.load();
        let mut fresh: Vec<Reading> = batch
            .iter()
            .filter(|r| r.timestamp_ms >= oldest_kept)
            .filter(|r| {
                current
                    .binary_search_by(|held| r.timestamp_ms.cmp(&held.timestamp_ms))
                    .is_err()
            })
            .copied()
            .collect();
        fresh.sort_by_key(|r| std::cmp::Reverse(r.timestamp_ms));
        fresh.dedup_by_key(|r| r.timestamp_ms);
        let expired = current.last().is_some_and(|r| r.timestamp_ms < oldest_kept);
        if fresh.is_empty() && !expired {
            return Merged::default();
        }
        let newest = current
            .first()
            .map(|r| r.timestamp_ms)
            .max(fresh.first().map(|r| r.timestamp_ms));
        let merged = Merged {
            added: fresh.len(),
            backfilled: fresh
                .iter()
                .filter(|r| newest.is_some_and(|newest| r.timestamp_ms < newest))
                .count(),
        };
        let mut next = Vec::with_capacity(current.len() + fresh.len());
        let (mut held, mut new) = (current.iter().peekable(), fresh.into_iter().peekable());
        loop {
            let take_held = match (held.peek(), new.peek()) {
                (Some(h), Some(n)) => h.timestamp_ms > n.timestamp_ms,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let reading = if take_held {
                held.next().copied()
            } else {
                new.next()
            };
            if let Some(reading) = reading.filter(|r| r.timestamp_ms >= oldest_kept) {
                next.push(reading);
            }
        }
        self.readings.store(Arc::new(next));
        if merged.added > 0 {
            self.changed.notify_waiters();
        }
        merged
    }

    /// The start of the oldest hole (two consecutive readings more than 1.5 intervals apart)
    /// whose end is after `since_ms`: where late readings may still arrive.
    pub fn oldest_hole_after(&self, interval: Duration, since_ms: i64) -> Option<i64> {
        let limit = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX) * 3 / 2;
        let readings = self.readings.load();
        readings
            .windows(2)
            .take_while(|pair| pair[0].timestamp_ms > since_ms)
            .filter(|pair| pair[0].timestamp_ms - pair[1].timestamp_ms > limit)
            .map(|pair| pair[1].timestamp_ms)
            .last()
    }
}

fn retention_ms() -> i64 {
    i64::try_from(RETENTION.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::Trend;

    const MIN: i64 = 60_000;

    fn reading(minute: i64, mg_per_dl: u16) -> Reading {
        Reading {
            timestamp_ms: 1_800_000_000_000 + minute * MIN,
            utc_offset_minutes: None,
            mg_per_dl,
            trend: Trend::Flat,
        }
    }

    fn history() -> History {
        History::new("kid", Arc::new(Notify::new()))
    }

    fn minutes(history: &History) -> Vec<i64> {
        history
            .snapshot()
            .iter()
            .map(|r| (r.timestamp_ms - 1_800_000_000_000) / MIN)
            .collect()
    }

    #[test]
    fn merges_newest_first_without_duplicates() {
        let h = history();
        let now = reading(100, 0).timestamp_ms;
        assert_eq!(h.merge(&[reading(10, 100), reading(5, 90)], now).added, 2);
        let merged = h.merge(&[reading(20, 110), reading(10, 999), reading(15, 105)], now);
        assert_eq!(
            merged,
            Merged {
                added: 2,
                backfilled: 1
            }
        );
        assert_eq!(minutes(&h), [20, 15, 10, 5]);
        // The first value of a sensor time is kept.
        assert_eq!(h.snapshot()[2].mg_per_dl, 100);
        assert_eq!(h.merge(&[reading(20, 1)], now), Merged::default());
    }

    #[test]
    fn late_readings_count_as_backfilled() {
        let h = history();
        let now = reading(100, 0).timestamp_ms;
        h.merge(&[reading(0, 100), reading(60, 100)], now);
        assert_eq!(
            h.oldest_hole_after(Duration::from_secs(300), 0),
            Some(reading(0, 0).timestamp_ms)
        );
        let merged = h.merge(
            &(1..12).map(|i| reading(i * 5, 100)).collect::<Vec<_>>(),
            now,
        );
        assert_eq!(merged.backfilled, 11);
        assert_eq!(h.merge(&[reading(65, 1)], now).backfilled, 0);
        assert_eq!(h.oldest_hole_after(Duration::from_secs(300), 0), None);
        assert_eq!(h.after(reading(50, 0).timestamp_ms).len(), 3);
        assert_eq!(
            h.after(reading(50, 0).timestamp_ms)[0].timestamp_ms,
            reading(55, 0).timestamp_ms
        );
    }

    #[test]
    fn readings_older_than_a_day_are_dropped() {
        let h = history();
        let day = 24 * 60;
        h.merge(
            &[reading(0, 100), reading(5, 100)],
            reading(day, 0).timestamp_ms,
        );
        assert_eq!(minutes(&h), [5, 0]);
        h.merge(&[reading(day + 3, 100)], reading(day + 3, 0).timestamp_ms);
        assert_eq!(minutes(&h), [day + 3, 5]);
        h.merge(&[reading(1, 100)], reading(day + 3, 0).timestamp_ms);
        assert_eq!(minutes(&h), [day + 3, 5]);
    }

    #[test]
    fn holes_before_the_window_are_ignored() {
        let h = history();
        let now = reading(100, 0).timestamp_ms;
        h.merge(&[reading(0, 1), reading(30, 1), reading(35, 1)], now);
        let interval = Duration::from_secs(300);
        assert_eq!(
            h.oldest_hole_after(interval, reading(10, 0).timestamp_ms),
            Some(reading(0, 0).timestamp_ms)
        );
        assert_eq!(
            h.oldest_hole_after(interval, reading(30, 0).timestamp_ms),
            None
        );
    }
}
