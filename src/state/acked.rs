//! Which readings of an account a receiver has acknowledged, kept small enough to save after
//! every acknowledged batch and exact enough that a restart resends only what was not
//! acknowledged, including readings that arrived late into an older hole.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How far behind the newest acknowledged reading individual sensor times are remembered:
/// as far back as the poller rechecks holes, so a late reading is never mistaken for sent.
pub const EXACT_WINDOW: Duration = Duration::from_secs(3 * 60 * 60);

/// One account's acknowledgements at one receiver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acked {
    /// Every reading at or before this sensor time is done (sent, or given up on).
    pub floor_ms: Option<i64>,
    /// Sensor times after `floor_ms` that are done, ascending.
    #[serde(default)]
    pub done_ms: Vec<i64>,
}

impl Acked {
    /// Whether the reading at `timestamp_ms` needs no sending.
    pub fn is_done(&self, timestamp_ms: i64) -> bool {
        self.floor_ms.is_some_and(|floor| timestamp_ms <= floor)
            || self.done_ms.binary_search(&timestamp_ms).is_ok()
    }

    /// Marks these sensor times done, then forgets the individual times older than
    /// [`EXACT_WINDOW`] before the newest one.
    pub fn mark(&mut self, timestamps_ms: impl IntoIterator<Item = i64>) {
        for t in timestamps_ms {
            if let Err(at) = self.done_ms.binary_search(&t)
                && self.floor_ms.is_none_or(|floor| t > floor)
            {
                self.done_ms.insert(at, t);
            }
        }
        let Some(&newest) = self.done_ms.last() else {
            return;
        };
        let floor = newest.saturating_sub(i64::try_from(EXACT_WINDOW.as_millis()).unwrap_or(0));
        if self.floor_ms.is_none_or(|old| floor > old) {
            self.floor_ms = Some(floor);
            self.done_ms.retain(|t| *t > floor);
        }
    }

    /// The newest sensor time done.
    #[cfg(test)]
    pub fn newest(&self) -> Option<i64> {
        self.done_ms.last().copied().or(self.floor_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn late_readings_in_the_window_are_not_mistaken_for_sent() {
        let mut acked = Acked::default();
        assert!(!acked.is_done(0));
        acked.mark([0, 5 * MIN, 20 * MIN]);
        assert!(acked.is_done(5 * MIN));
        assert!(!acked.is_done(10 * MIN), "a hole is not acknowledged");
        acked.mark([10 * MIN]);
        assert!(acked.is_done(10 * MIN));
        assert_eq!(acked.newest(), Some(20 * MIN));
    }

    #[test]
    fn stays_small_over_a_day() {
        let mut acked = Acked::default();
        for i in 0..288 {
            acked.mark([i * 5 * MIN]);
        }
        assert!(acked.done_ms.len() <= 37, "{}", acked.done_ms.len());
        assert!(acked.is_done(0), "below the floor");
        assert_eq!(acked.newest(), Some(287 * 5 * MIN));
        let text = serde_json::to_string(&acked).unwrap();
        let back: Acked = serde_json::from_str(&text).unwrap();
        assert_eq!(back, acked);
    }
}
