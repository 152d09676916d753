//! Remote write: every reading pushed once, at its sensor time, to a Prometheus remote-write
//! receiver (Prometheus, Grafana Mimir, Thanos Receive, VictoriaMetrics), as the series
//! `dexcom_reading_glucose_mg_per_dl` and `dexcom_reading_trend`.
//!
//! The scraped gauges stay as they are (alerts depend on them); this is the second path, for
//! the readings a scrape never sees (those Share served while the exporter, the network or
//! Share was down, and a phone's late backlog) and for statistics where each reading counts
//! once. `encode.rs` writes the protobuf and snappy body (the series a reading is written as
//! are named in `metrics/series.rs`, shared with the OpenMetrics history), `client.rs` makes
//! one request and classifies its answer, `scrub.rs` takes the credentials sent out of what a
//! receiver answered before it is shown, and `sender.rs` is the queue with its retries. What
//! each receiver acknowledged is kept with the rest of the state (`state/acked.rs`).

mod client;
mod encode;
mod scrub;
mod sender;

pub use crate::metrics::RemoteWriteMetrics;
pub use client::{ClientError, SendError, WriteClient};
pub use encode::{Label, Sample, Series, TimeSeries, WriteRequest, compress, write_request};
pub use sender::{Sender, SenderAccount};
