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
use crate::demo::start_demo_if_asked;
use crate::exporter::{ExporterError, share_client, share_http};
use crate::openmetrics::write_openmetrics;
use crate::poll::latest_allowed_ms;
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
    let demo = start_demo_if_asked(&mut config)
        .await
        .map_err(|e| BackfillError::Setup(e.into()))?;
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
