//! `dexcom_exporter backfill`: the last 24 hours of every configured account as OpenMetrics
//! text with sensor timestamps, for `promtool tsdb create-blocks-from openmetrics`.
//!
//! For users without remote write who still want the readings Prometheus never scraped (the
//! exporter was down, the phone uploaded late). The series are the pushed ones
//! (`dexcom_reading_glucose_mg_per_dl`, `dexcom_reading_trend`) with the same labels as remote
//! write gives them, so the recording rules for exact statistics read both the same way. Each
//! account is read once, through the same Share client, login gate and state directory as the
//! exporter, so a wrong password cannot be sent more often by running this.

use std::io::Write;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::exporter::{ExporterError, share_client, share_http, start_demo_if_asked};
use crate::poll::latest_allowed_ms;
use crate::remote_write::{READING_SERIES, reading_labels};
use crate::share::{MAX_COUNT, MAX_MINUTES, Reading};

/// Why the backfill could not be written at all (one account failing is reported, not this).
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// A Share client (or the demo simulator) could not be built.
    #[error(transparent)]
    Setup(#[from] ExporterError),
    /// The output could not be written.
    #[error("cannot write the backfill: {0}")]
    Write(#[from] std::io::Error),
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillSummary {
    /// Readings written, over all accounts.
    pub readings: usize,
    /// Accounts that could not be read, with why (already logged).
    pub failed: Vec<(String, String)>,
}

/// Reads every account of `config` once and writes its readings to `out`.
///
/// # Errors
/// [`BackfillError`] when a client cannot be built or `out` cannot be written.
pub async fn backfill(
    mut config: Config,
    out: &mut dyn Write,
    clock: Arc<dyn Clock>,
) -> Result<BackfillSummary, BackfillError> {
    let demo = start_demo_if_asked(&mut config).await?;
    let http = share_http(&config)?;
    let mut summary = BackfillSummary::default();
    let mut per_account: Vec<(String, Vec<Reading>)> = Vec::new();
    for account in &config.accounts {
        let state = config
            .storage
            .as_ref()
            .map(|dir| Arc::new(dir.account(&account.name)));
        let mut client = share_client(&config, &http, account, state, clock.clone());
        match client.latest_batch(MAX_MINUTES, MAX_COUNT).await {
            Ok(read) => {
                let latest_allowed = latest_allowed_ms(&read, clock.now_ms());
                let mut readings: Vec<Reading> = read
                    .batch
                    .readings
                    .into_iter()
                    .filter(|r| r.timestamp_ms <= latest_allowed)
                    .collect();
                readings.sort_by_key(|r| r.timestamp_ms);
                readings.dedup_by_key(|r| r.timestamp_ms);
                tracing::info!(account = %account.name, readings = readings.len(), skipped = read.batch.rejected.len(), "read the last 24 hours");
                summary.readings += readings.len();
                per_account.push((account.name.clone(), readings));
            }
            Err(error) => {
                tracing::error!(account = %account.name, %error, "cannot read this account; its readings are not in the backfill");
                summary
                    .failed
                    .push((account.name.clone(), error.to_string()));
            }
        }
    }
    if let Some(demo) = demo {
        demo.stop().await;
    }
    write_openmetrics(out, &per_account, &config.external_labels)?;
    Ok(summary)
}

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
fn write_openmetrics(
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
