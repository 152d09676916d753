//! `dexcom_exporter`: Dexcom Share CGM readings as Prometheus metrics.
//!
//! Data flows one way: [`config`] → [`share`] client → [`poll`] → [`metrics`] → [`http`].
//! [`simulator`] is a faithful Share server used by the tests, the benchmark, `--demo` and the
//! `share_simulator` binary; [`exporter`] assembles everything for `main`; [`clock`] is the one
//! time source (now and sleep) that tests and the soak can speed up.

pub mod backfill;
pub mod check;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error_cause;
pub mod exporter;
pub mod history;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod openmetrics;
pub mod poll;
pub mod remote_write;
pub mod share;
pub mod shutdown;
pub mod simulator;
pub mod state;
pub mod yaml;
