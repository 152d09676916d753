//! The rules by which a read's rows become readings, pure so they can be tested alone: how far
//! ahead of Share's clock a reading may be dated, which rows are a reading uploaded twice, and
//! how far back a read is known to have looked.

use std::time::Duration;

use crate::clock::unix_ms;
use crate::share::{ReadBatch, Reading};

/// How far ahead of Share's clock (or ours, when Share sends no `Date`) a reading may be dated
/// before it is rejected: a phone with a wrong clock must not freeze the value.
pub const FUTURE_TOLERANCE: Duration = Duration::from_secs(3 * 60);

/// The newest sensor time a reading of `read` may carry: Share's clock as the answer's own
/// `Date` says (ours, `now_ms`, when Share sent no `Date`) plus [`FUTURE_TOLERANCE`]. Later
/// ones are rejected. For one-off reads (`check`, `backfill`), which have no other answer to
/// weigh it against.
pub fn latest_allowed_ms(read: &ReadBatch, now_ms: i64) -> i64 {
    latest_allowed_at(read.server_date.map_or(now_ms, unix_ms))
}

/// The newest sensor time a reading may carry when Share's time was `share_ms` as its answer
/// arrived: [`FUTURE_TOLERANCE`] later.
pub fn latest_allowed_at(share_ms: i64) -> i64 {
    share_ms.saturating_add(i64::try_from(FUTURE_TOLERANCE.as_millis()).unwrap_or(i64::MAX))
}

/// `readings` (newest first) without second uploads: going from the oldest, a reading within
/// `window_ms` after one kept, or near one already held elsewhere (`held_near`, at another
/// time), is the same reading uploaded again. The first upload is the one kept.
pub(crate) fn drop_repeated_uploads(
    readings: &[Reading],
    window_ms: i64,
    held_near: impl Fn(i64) -> bool,
) -> Vec<Reading> {
    let mut kept: Vec<Reading> = Vec::with_capacity(readings.len());
    for reading in readings.iter().rev() {
        let repeats_kept = kept
            .last()
            .is_some_and(|k| reading.timestamp_ms - k.timestamp_ms <= window_ms);
        if !repeats_kept && !held_near(reading.timestamp_ms) {
            kept.push(*reading);
        }
    }
    kept.reverse();
    kept
}

/// The oldest sensor time a read is known to have covered, at `now_ms`: its whole window of
/// `minutes`, unless Share filled all `max_count` rows (`rows` came back), in which case it may
/// have stopped at the oldest row it served (`oldest_ms`), and a hole behind that row was not
/// looked at.
pub(super) fn covered_from(
    now_ms: i64,
    minutes: u32,
    max_count: u32,
    rows: usize,
    oldest_ms: Option<i64>,
) -> i64 {
    let window_from = now_ms.saturating_sub(i64::from(minutes) * 60_000);
    if rows < usize::try_from(max_count).unwrap_or(usize::MAX) {
        return window_from;
    }
    oldest_ms.map_or(i64::MAX, |oldest| oldest.max(window_from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::Trend;

    const MIN: i64 = 60_000;

    fn at(ms: i64, mg: u16) -> Reading {
        Reading {
            timestamp_ms: ms,
            utc_offset_minutes: None,
            mg_per_dl: mg,
            trend: Trend::Flat,
        }
    }

    #[test]
    fn a_reading_uploaded_twice_seconds_apart_counts_once_and_the_first_upload_stays() {
        // Newest first: each reading also 4 s later.
        let readings = [
            at(10 * MIN + 4000, 120),
            at(10 * MIN, 120),
            at(5 * MIN + 4000, 110),
            at(5 * MIN, 110),
        ];
        let kept = drop_repeated_uploads(&readings, MIN, |_| false);
        let times: Vec<i64> = kept.iter().map(|r| r.timestamp_ms).collect();
        assert_eq!(times, vec![10 * MIN, 5 * MIN]);
    }

    #[test]
    fn a_second_upload_of_a_reading_already_held_is_dropped_but_the_held_one_is_not() {
        let held = [5 * MIN];
        let near = |t: i64| held.iter().any(|h| *h != t && (h - t).abs() <= MIN);
        let readings = [at(10 * MIN, 120), at(5 * MIN + 3000, 110), at(5 * MIN, 110)];
        let kept = drop_repeated_uploads(&readings, MIN, near);
        let times: Vec<i64> = kept.iter().map(|r| r.timestamp_ms).collect();
        assert_eq!(times, vec![10 * MIN, 5 * MIN]);
    }

    #[test]
    fn a_read_filled_to_its_count_covers_only_back_to_its_oldest_row() {
        let now = 100 * MIN;
        // Not full: the whole window.
        assert_eq!(covered_from(now, 30, 10, 6, Some(80 * MIN)), 70 * MIN);
        // Full: only back to the oldest row served.
        assert_eq!(covered_from(now, 30, 10, 10, Some(80 * MIN)), 80 * MIN);
        // Full of rows that were all rejected: nothing known to be covered.
        assert_eq!(covered_from(now, 30, 10, 10, None), i64::MAX);
        // A row older than the window does not widen it.
        assert_eq!(covered_from(now, 30, 10, 10, Some(10 * MIN)), 70 * MIN);
    }

    #[test]
    fn a_reading_may_be_dated_three_minutes_ahead_of_shares_clock_not_more() {
        let read = ReadBatch {
            server_date: Some(crate::clock::from_unix_ms(50 * MIN)),
            ..ReadBatch::default()
        };
        assert_eq!(
            latest_allowed_ms(&read, 0),
            53 * MIN,
            "Share's clock when it sends one"
        );
        assert_eq!(latest_allowed_ms(&ReadBatch::default(), 10 * MIN), 13 * MIN);
    }

    #[test]
    fn readings_an_interval_apart_are_all_kept() {
        let readings: Vec<Reading> = (0..12).rev().map(|k| at(k * 5 * MIN, 100)).collect();
        assert_eq!(drop_repeated_uploads(&readings, MIN, |_| false), readings);
    }
}
