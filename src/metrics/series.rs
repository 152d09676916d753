//! The series a reading is written as, outside the scraped gauges: one sample per reading at
//! its sensor time in `dexcom_reading_glucose_mg_per_dl` and `dexcom_reading_trend` (contracts
//! in DESIGN.md: never the scraped gauges' names), labelled `account` plus the external labels.
//! Remote write, the `backfill` subcommand and the history served as OpenMetrics text all
//! write them from here, so the recording rules for exact statistics read each the same way.
//! They live with the metrics (below both `remote_write` and `openmetrics`) because they are
//! metric names and labels, contracts like the scraped gauges' names.

use crate::share::Reading;

/// The glucose series' name.
pub const GLUCOSE_SERIES: &str = "dexcom_reading_glucose_mg_per_dl";
/// The trend code's series.
pub const TREND_SERIES: &str = "dexcom_reading_trend";

/// One of the series every reading is written to.
#[derive(Debug, Clone, Copy)]
pub struct ReadingSeries {
    /// The metric name the receiver stores it under.
    pub name: &'static str,
    /// Its help text, one sentence without the final full stop.
    pub help: &'static str,
    /// The sample value of a reading.
    pub value: fn(&Reading) -> f64,
}

/// The series of a reading, glucose first.
pub const READING_SERIES: [ReadingSeries; 2] = [
    ReadingSeries {
        name: GLUCOSE_SERIES,
        help: "Glucose of each reading at its sensor time, in mg/dL (39 and 401 are Dexcom's LOW and HIGH)",
        value: |r| f64::from(r.mg_per_dl),
    },
    ReadingSeries {
        name: TREND_SERIES,
        help: "Dexcom trend code of each reading at its sensor time (0 none, 1 double up ... 7 double down, 8 not computable, 9 rate out of range)",
        value: |r| f64::from(r.trend.code()),
    },
];

/// The labels of `account`'s series besides the name: `account` and `external` (which never
/// holds `account`), sorted by name.
pub fn reading_labels(account: &str, external: &[(String, String)]) -> Vec<(String, String)> {
    let mut labels = Vec::with_capacity(external.len() + 1);
    labels.push(("account".to_owned(), account.to_owned()));
    labels.extend(external.iter().cloned());
    labels.sort();
    labels
}
