//! `dexcom_exporter`: Dexcom Share CGM readings as Prometheus metrics.
//!
//! Data flows one way: [`config`] → [`share`] client → [`poll`] → [`metrics`] → [`server`].
//! [`simulator`] is a faithful Share server used by the tests, the benchmark, `--demo` and the
//! `share_simulator` binary; [`exporter`] assembles everything for `main`.

pub mod clock;
pub mod config;
pub mod exporter;
pub mod metrics;
pub mod poll;
mod process_metrics;
pub mod serve;
pub mod server;
pub mod share;
pub mod shutdown;
pub mod simulator;
pub mod telemetry;
pub mod web_config;
mod yaml;
