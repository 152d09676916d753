//! The readings wire model and its conversion into domain [`Reading`]s. Pure: no I/O.
//!
//! Share has served two formats. Since December 2021: `"WT":"Date(ms)"`, `"DT":"Date(ms-0500)"`
//! and a string trend. Before: WCF dates `"\/Date(ms)\/"` (decoded as `/Date(ms)/`), an integer
//! trend, and a DT whose epoch is shifted by the display offset. So the instant always comes
//! from WT (falling back to ST), and DT only contributes its offset suffix.
//!
//! The date format (`Date(ms±HHMM)`) is parsed in `date.rs`. Past 500 lines because of its
//! tests: the recorded wire examples of `share-protocol.md` and the property tests of both
//! parsers, kept beside the code they pin.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::date::parse_share_date;
pub use super::trend::Trend;

/// One reading exactly as Share sends it (keys in the server's order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireReading {
    /// "Wall time": `Date(ms)`, the UTC instant of the reading.
    #[serde(rename = "WT", default, skip_serializing_if = "Option::is_none")]
    pub wt: Option<String>,
    /// "System time": `Date(ms)`, equal to WT in every recording since 2021.
    #[serde(rename = "ST", default, skip_serializing_if = "Option::is_none")]
    pub st: Option<String>,
    /// "Display time": `Date(ms±HHMM)`; the suffix is the publisher phone's UTC offset.
    #[serde(rename = "DT", default, skip_serializing_if = "Option::is_none")]
    pub dt: Option<String>,
    /// Glucose in mg/dL; 39 means below 40 and 401 above 400.
    #[serde(rename = "Value")]
    pub value: serde_json::Value,
    /// Trend as a string (`"Flat"`) or, in the old format, an integer 0–9.
    #[serde(rename = "Trend", default)]
    pub trend: serde_json::Value,
}

/// A glucose reading as the rest of the exporter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// When the sensor took the reading, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The publisher's display offset from UTC in minutes, when DT carried one.
    pub utc_offset_minutes: Option<i32>,
    /// Glucose in mg/dL as Share reports it, sentinels (39, 401) kept.
    pub mg_per_dl: u16,
    /// The Dexcom trend.
    pub trend: Trend,
}

/// mg/dL in one mmol/L of glucose (its molar mass, 180.16 g/mol, over 10).
pub const MG_PER_DL_PER_MMOL: f64 = 18.016;

/// Converts mg/dL to mmol/L with the factor 0.0555 and one decimal, rounding the exact
/// binary value (so 100 → 5.5 and 300 → 16.6, as pydexcom does).
pub fn mg_per_dl_to_mmol_per_l(mg_per_dl: u16) -> f64 {
    let text = format!("{:.1}", f64::from(mg_per_dl) * 0.0555);
    text.parse().unwrap_or(f64::NAN)
}

/// Why a wire reading could not become a [`Reading`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "a field is named for what it holds, and the #[error] message shows it in context"
)]
pub enum ReadingError {
    /// Neither WT nor ST held a parseable date.
    #[error("reading {index} has no parseable WT/ST date")]
    MissingInstant {
        /// Position in the batch.
        index: usize,
    },
    /// The body is not a JSON list of reading objects.
    #[error("not a JSON list of readings: {message}")]
    NotAList {
        /// The JSON parser's message.
        message: String,
    },
    /// `Value` was not a whole, non-negative number.
    #[error("reading {index} has an invalid Value {value}")]
    InvalidValue {
        /// Position in the batch.
        index: usize,
        /// The offending value, as JSON text.
        value: String,
    },
    /// `Value` is a number, but outside what a Dexcom sensor reports (39–401, the two ends
    /// meaning "below 40" and "above 400").
    #[error("reading {index} has Value {value}, outside 39–401 mg/dL")]
    OutOfRange {
        /// Position in the batch.
        index: usize,
        value: u64,
    },
    /// A row that is not a reading object at all.
    #[error("reading {index} is not a reading object: {message}")]
    NotAReading {
        /// Position in the batch.
        index: usize,
        /// The JSON parser's message.
        message: String,
    },
}

impl ReadingError {
    /// Why the row was not published, as a metric label: `out_of_range` or `malformed`.
    pub fn reject_reason(&self) -> RejectReason {
        match self {
            ReadingError::OutOfRange { .. } => RejectReason::OutOfRange,
            _ => RejectReason::Malformed,
        }
    }
}

/// Why a reading served by Share was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Dated more than a few minutes ahead of Share's clock (a phone with a wrong clock).
    Future,
    /// A value outside 39–401 mg/dL.
    OutOfRange,
    /// A row without a usable date or value.
    Malformed,
}

impl RejectReason {
    /// Every reason, so that counters can start at zero for each.
    pub const ALL: [RejectReason; 3] = [
        RejectReason::Future,
        RejectReason::OutOfRange,
        RejectReason::Malformed,
    ];

    /// The `reason` label value of `dexcom_readings_rejected_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Future => "future",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::Malformed => "malformed",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lowest and highest values a Dexcom sensor reports: 39 stands for "below 40" and 401
/// for "above 400".
pub const GLUCOSE_RANGE: std::ops::RangeInclusive<u16> = 39..=401;

/// A readings answer, row by row: what can be used, newest first by sensor time whatever the
/// order Share sent, and what could not, each with its reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WireBatch {
    /// The usable readings, newest sensor time first, one per sensor time.
    pub readings: Vec<Reading>,
    /// The rows that were skipped, in the order they came.
    pub rejected: Vec<ReadingError>,
}

impl WireReading {
    /// Converts to a domain reading. An unknown trend becomes [`Trend::None`] (with a warning)
    /// rather than failing: one odd arrow must not hide the glucose value.
    pub fn to_reading(&self, index: usize) -> Result<Reading, ReadingError> {
        let instant = self
            .wt
            .as_deref()
            .and_then(parse_share_date)
            .or_else(|| self.st.as_deref().and_then(parse_share_date))
            .ok_or(ReadingError::MissingInstant { index })?;
        let utc_offset_minutes = self
            .dt
            .as_deref()
            .and_then(parse_share_date)
            .and_then(|d| d.offset_minutes);
        let value = json_integer(&self.value).ok_or_else(|| ReadingError::InvalidValue {
            index,
            value: self.value.to_string(),
        })?;
        let mg_per_dl = u16::try_from(value)
            .ok()
            .filter(|v| GLUCOSE_RANGE.contains(v))
            .ok_or(ReadingError::OutOfRange { index, value })?;
        Ok(Reading {
            timestamp_ms: instant.millis,
            utc_offset_minutes,
            mg_per_dl,
            trend: parse_trend(&self.trend, index),
        })
    }
}

fn json_integer(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

fn parse_trend(value: &serde_json::Value, index: usize) -> Trend {
    let parsed = match value {
        serde_json::Value::String(name) => Trend::from_name(name),
        serde_json::Value::Number(n) => n.as_i64().and_then(Trend::from_code),
        serde_json::Value::Null => Some(Trend::None),
        _ => None,
    };
    parsed.unwrap_or_else(|| {
        tracing::warn!(index, trend = %value, "unknown trend in a Share reading, using 0 (None)");
        Trend::None
    })
}

/// Parses a readings response body row by row: a bad row is skipped alone (and reported),
/// never the whole batch. Share sends newest first; the result is sorted so whatever it sent.
///
/// # Errors
/// [`ReadingError::NotAList`] for a body that is not a JSON list at all.
pub fn parse_wire_readings(body: &[u8]) -> Result<WireBatch, ReadingError> {
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| ReadingError::NotAList {
            message: e.to_string(),
        })?;
    let mut batch = WireBatch::default();
    for (index, row) in rows.into_iter().enumerate() {
        let parsed = serde_json::from_value::<WireReading>(row)
            .map_err(|e| ReadingError::NotAReading {
                index,
                message: e.to_string(),
            })
            .and_then(|wire| wire.to_reading(index));
        match parsed {
            Ok(reading) => batch.readings.push(reading),
            Err(error) => batch.rejected.push(error),
        }
    }
    batch
        .readings
        .sort_by_key(|r| std::cmp::Reverse(r.timestamp_ms));
    batch.readings.dedup_by_key(|r| r.timestamp_ms);
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::date::ShareDate;

    // The raw examples of share-protocol.md §8.5.
    const US_WINTER: &str = r#"[{"WT":"Date(1731645818222)","ST":"Date(1731645818222)","DT":"Date(1731645818222-0500)","Value":155,"Trend":"Flat"},{"WT":"Date(1731645518663)","ST":"Date(1731645518663)","DT":"Date(1731645518663-0500)","Value":155,"Trend":"FortyFiveDown"}]"#;
    const EUROPE_2021: &str = r#"[{"WT":"Date(1638296642000)","ST":"Date(1638296642000)","DT":"Date(1638296642000+0100)","Value":164,"Trend":"Flat"}]"#;
    const OLD_FORMAT: &str = r#"[{"DT":"\/Date(1638342842000+0000)\/","ST":"\/Date(1638360842000)\/","Trend":3,"Value":158,"WT":"\/Date(1638360842000)\/"}]"#;

    #[test]
    fn current_format_us_winter() {
        let readings = parse_wire_readings(US_WINTER.as_bytes()).unwrap().readings;
        assert_eq!(readings.len(), 2);
        assert_eq!(readings[0].timestamp_ms, 1_731_645_818_222);
        assert_eq!(readings[0].utc_offset_minutes, Some(-300));
        assert_eq!(readings[0].mg_per_dl, 155);
        assert_eq!(readings[0].trend, Trend::Flat);
        assert_eq!(readings[1].trend, Trend::FortyFiveDown);
        assert!(
            readings[0].timestamp_ms > readings[1].timestamp_ms,
            "newest first"
        );
    }

    #[test]
    fn current_format_europe() {
        let readings = parse_wire_readings(EUROPE_2021.as_bytes())
            .unwrap()
            .readings;
        assert_eq!(readings[0].timestamp_ms, 1_638_296_642_000);
        assert_eq!(readings[0].utc_offset_minutes, Some(60));
        assert_eq!(readings[0].mg_per_dl, 164);
    }

    #[test]
    fn old_format_takes_instant_from_wt_not_shifted_dt() {
        let readings = parse_wire_readings(OLD_FORMAT.as_bytes()).unwrap().readings;
        assert_eq!(readings[0].timestamp_ms, 1_638_360_842_000);
        assert_eq!(readings[0].utc_offset_minutes, Some(0));
        assert_eq!(readings[0].trend, Trend::FortyFiveUp);
        assert_eq!(readings[0].mg_per_dl, 158);
    }

    #[test]
    fn falls_back_to_st_when_wt_is_missing() {
        let body = r#"[{"ST":"Date(1680591428000)","DT":"Date(1680591428000-0700)","Value":160,"Trend":"FortyFiveUp"}]"#;
        let readings = parse_wire_readings(body.as_bytes()).unwrap().readings;
        assert_eq!(readings[0].timestamp_ms, 1_680_591_428_000);
        assert_eq!(readings[0].utc_offset_minutes, Some(-420));
    }

    #[test]
    fn dates_with_odd_offsets_and_none() {
        assert_eq!(
            parse_share_date("Date(1700000000000+0530)"),
            Some(ShareDate {
                millis: 1_700_000_000_000,
                offset_minutes: Some(330)
            })
        );
        assert_eq!(
            parse_share_date("/Date(1700000000000-0700)/").map(|d| d.offset_minutes),
            Some(Some(-420))
        );
        assert_eq!(
            parse_share_date("Date(1700000000000)"),
            Some(ShareDate {
                millis: 1_700_000_000_000,
                offset_minutes: None
            })
        );
        for bad in [
            "Date()",
            "Date(12a)",
            "Date(1+05)",
            "1700000000000",
            "Date(1+2500)",
            "",
        ] {
            assert_eq!(parse_share_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn trends_as_strings_any_case_or_integers() {
        assert_eq!(
            Trend::from_name("NotComputable"),
            Some(Trend::NotComputable)
        );
        assert_eq!(
            Trend::from_name("notcomputable"),
            Some(Trend::NotComputable)
        );
        assert_eq!(
            Trend::from_name("RATE OUT OF RANGE"),
            Some(Trend::RateOutOfRange)
        );
        assert_eq!(Trend::from_name("None"), Some(Trend::None));
        assert_eq!(Trend::from_name(""), Some(Trend::None));
        assert_eq!(Trend::from_name("Sideways"), None);
        for t in Trend::ALL {
            assert_eq!(Trend::from_code(i64::from(t.code())), Some(t));
            assert_eq!(Trend::from_name(t.wire_name()), Some(t));
        }
        assert_eq!(Trend::from_code(10), None);
        assert_eq!(Trend::from_code(-1), None);
    }

    #[test]
    fn unknown_trend_becomes_none_without_failing_the_batch() {
        let body = r#"[{"WT":"Date(1)","Value":100,"Trend":"Sideways"},{"WT":"Date(0)","Value":101,"Trend":12}]"#;
        let readings = parse_wire_readings(body.as_bytes()).unwrap().readings;
        assert_eq!(readings[0].trend, Trend::None);
        assert_eq!(readings[1].trend, Trend::None);
        assert_eq!(readings[1].mg_per_dl, 101);
    }

    #[test]
    fn sentinels_are_kept() {
        let body = r#"[{"WT":"Date(2)","Value":39,"Trend":"DoubleDown"},{"WT":"Date(1)","Value":401,"Trend":"DoubleUp"}]"#;
        let readings = parse_wire_readings(body.as_bytes()).unwrap().readings;
        assert_eq!(readings[0].mg_per_dl, 39);
        assert_eq!(readings[1].mg_per_dl, 401);
    }

    #[test]
    fn a_bad_row_is_skipped_alone_with_its_reason() {
        assert!(matches!(
            parse_wire_readings(b"<html>"),
            Err(ReadingError::NotAList { .. })
        ));
        assert!(parse_wire_readings(br#"{"Code":"x"}"#).is_err());
        let good = r#"{"WT":"Date(1731645818222)","Value":120,"Trend":"Flat"}"#;
        let body = format!(
            r#"[{good},{{"Value":100,"Trend":"Flat"}},{{"WT":"Date(1)","Value":-5}},{{"WT":"Date(2)","Value":38}},{{"WT":"Date(3)","Value":402}},"text",{{"WT":"Date(4)","Value":39}}]"#
        );
        let batch = parse_wire_readings(body.as_bytes()).unwrap();
        assert_eq!(
            batch
                .readings
                .iter()
                .map(|r| r.mg_per_dl)
                .collect::<Vec<_>>(),
            vec![120, 39]
        );
        assert_eq!(batch.rejected[0], ReadingError::MissingInstant { index: 1 });
        assert!(batch.rejected[0].to_string().contains("WT/ST"));
        assert!(matches!(
            batch.rejected[1],
            ReadingError::InvalidValue { index: 2, .. }
        ));
        assert_eq!(
            batch.rejected[2],
            ReadingError::OutOfRange {
                index: 3,
                value: 38
            }
        );
        assert_eq!(
            batch.rejected[3],
            ReadingError::OutOfRange {
                index: 4,
                value: 402
            }
        );
        assert!(matches!(
            batch.rejected[4],
            ReadingError::NotAReading { index: 5, .. }
        ));
        let reasons: Vec<RejectReason> = batch.rejected.iter().map(|e| e.reject_reason()).collect();
        assert_eq!(
            reasons,
            vec![
                RejectReason::Malformed,
                RejectReason::Malformed,
                RejectReason::OutOfRange,
                RejectReason::OutOfRange,
                RejectReason::Malformed
            ]
        );
        assert_eq!(parse_wire_readings(b"[]").unwrap(), WireBatch::default());
    }

    #[test]
    fn rows_are_sorted_newest_first_whatever_order_share_sent() {
        let body = r#"[{"WT":"Date(1000)","Value":100,"Trend":"Flat"},{"WT":"Date(3000)","Value":130,"Trend":"Flat"},{"WT":"Date(2000)","Value":120,"Trend":"Flat"},{"WT":"Date(3000)","Value":130,"Trend":"Flat"}]"#;
        let batch = parse_wire_readings(body.as_bytes()).unwrap();
        let times: Vec<i64> = batch.readings.iter().map(|r| r.timestamp_ms).collect();
        assert_eq!(times, vec![3000, 2000, 1000], "sorted, one per sensor time");
    }

    #[test]
    fn mmol_matches_reference_rounding() {
        let cases = [
            (39, 2.2),
            (85, 4.7),
            (100, 5.5),
            (180, 10.0),
            (250, 13.9),
            (300, 16.6),
            (401, 22.3),
        ];
        for (mg, mmol) in cases {
            assert_eq!(mg_per_dl_to_mmol_per_l(mg), mmol, "{mg}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn row() -> impl Strategy<Value = String> {
        let date = prop_oneof![
            any::<i64>().prop_map(|ms| format!("\"Date({ms})\"")),
            (any::<i64>(), -1500i32..1500)
                .prop_map(|(ms, off)| format!("\"/Date({ms}{off:+05})/\"")),
            "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            Just("null".to_owned()),
        ];
        let value = prop_oneof![
            (0u64..2000).prop_map(|v| v.to_string()),
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| serde_json::to_string(&v).unwrap_or_else(|_| "0".into())),
            Just("\"high\"".to_owned()),
        ];
        let trend = prop_oneof![
            (0i64..12).prop_map(|t| t.to_string()),
            prop::sample::select(vec!["\"Flat\"", "\"doubleup\"", "\"?\"", "null"])
                .prop_map(str::to_owned),
        ];
        prop_oneof![
            8 => (date.clone(), value, trend).prop_map(|(d, v, t)| format!(r#"{{"WT":{d},"ST":{d},"DT":{d},"Value":{v},"Trend":{t}}}"#)),
            1 => Just("\"text\"".to_owned()),
            1 => Just("{}".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn the_readings_parser_never_panics_and_keeps_its_promises(rows in prop::collection::vec(row(), 0..40)) {
            let body = format!("[{}]", rows.join(","));
            let batch = parse_wire_readings(body.as_bytes()).unwrap();
            prop_assert!(batch.readings.len() + batch.rejected.len() <= rows.len());
            prop_assert!(batch.readings.windows(2).all(|w| w[0].timestamp_ms > w[1].timestamp_ms));
            prop_assert!(batch.readings.iter().all(|r| GLUCOSE_RANGE.contains(&r.mg_per_dl)));
        }

        #[test]
        fn any_bytes_are_an_answer_or_an_error(body in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_wire_readings(&body);
        }

        #[test]
        fn share_dates_parse_back_what_was_written(ms in any::<i64>(), offset in -1439i32..=1439) {
            let hours = offset.abs() / 60;
            let minutes = offset.abs() % 60;
            let sign = if offset < 0 { '-' } else { '+' };
            let text = format!("/Date({ms}{sign}{hours:02}{minutes:02})/");
            let parsed = parse_share_date(&text);
            if hours <= 14 {
                let parsed = parsed.unwrap();
                prop_assert_eq!(parsed.millis, ms);
                prop_assert_eq!(parsed.offset_minutes, Some(offset));
            } else {
                prop_assert!(parsed.is_none());
            }
        }

        #[test]
        fn the_date_parser_never_panics(text in "\\PC{0,40}") {
            let _ = parse_share_date(&text);
            let _ = parse_share_date(&format!("Date({text})"));
        }
    }
}
