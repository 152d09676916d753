//! The readings of the history as OpenMetrics text with sensor timestamps, for `promtool tsdb
//! create-blocks-from openmetrics`: written by the `backfill` subcommand and served by a running
//! exporter on [`HISTORY_PATH`]. The series are the pushed ones (`dexcom_reading_glucose_mg_per_dl`,
//! `dexcom_reading_trend`) with the labels remote write gives them, so the recording rules for
//! exact statistics read both the same way.

use std::io::Write;
use std::sync::Arc;

use crate::metrics::{READING_SERIES, reading_labels};
use crate::share::Reading;

/// The history a running exporter holds (every account's last 24 hours), in the same
/// OpenMetrics text as the subcommand writes: served on [`HISTORY_PATH`], so a backfill while
/// the service runs needs no second login (and no second holder of the state directory).
pub fn history_openmetrics(
    histories: &[Arc<crate::history::History>],
    external_labels: &[(String, String)],
) -> String {
    let accounts: Vec<(String, Vec<Reading>)> = histories
        .iter()
        .map(|h| {
            let mut readings = h.snapshot().as_ref().clone();
            readings.reverse();
            (h.account().to_owned(), readings)
        })
        .collect();
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_openmetrics(&mut out, &accounts, external_labels);
    String::from_utf8_lossy(&out).into_owned()
}

/// Where a running exporter serves its history as OpenMetrics text.
pub const HISTORY_PATH: &str = "/api/v1/history";

/// The content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Writes the two families, every account's series with samples oldest first, and `# EOF`.
pub fn write_openmetrics(
    out: &mut dyn Write,
    accounts: &[(String, Vec<Reading>)],
    external_labels: &[(String, String)],
) -> std::io::Result<()> {
    let mut text = String::new();
    for series in READING_SERIES {
        let name = series.name;
        text.push_str(&format!(
            "# HELP {name} {}.\n# TYPE {name} gauge\n",
            series.help
        ));
        for (account, readings) in accounts {
            let labels = reading_labels(account, external_labels)
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect::<Vec<_>>()
                .join(",");
            for reading in readings {
                let ms = reading.timestamp_ms;
                text.push_str(&format!(
                    "{name}{{{labels}}} {} {}.{:03}\n",
                    (series.value)(reading),
                    ms.div_euclid(1000),
                    ms.rem_euclid(1000)
                ));
            }
        }
        out.write_all(text.as_bytes())?;
        text.clear();
    }
    out.write_all(b"# EOF\n")?;
    out.flush()
}

/// A label value as the exposition formats escape it.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::Trend;

    #[test]
    fn writes_openmetrics_with_sensor_timestamps_and_escaped_labels() {
        let reading = |ms: i64, mg: u16| Reading {
            timestamp_ms: ms,
            utc_offset_minutes: None,
            mg_per_dl: mg,
            trend: Trend::FortyFiveDown,
        };
        let mut out = Vec::new();
        write_openmetrics(
            &mut out,
            &[(
                "kid \"A\"\\".to_owned(),
                vec![
                    reading(1_796_000_000_005, 101),
                    reading(1_796_000_300_120, 99),
                ],
            )],
            &[("job".into(), "dexcom".into())],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(
            "dexcom_reading_glucose_mg_per_dl{account=\"kid \\\"A\\\"\\\\\",job=\"dexcom\"} 101 1796000000.005\n"
        ), "{text}");
        assert!(text.contains("dexcom_reading_trend{account=\"kid \\\"A\\\"\\\\\",job=\"dexcom\"} 5 1796000300.120\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
