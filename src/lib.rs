//! `dexcom_exporter`: Dexcom Share CGM readings as Prometheus metrics.
//!
//! Data flows one way: [`config`] → [`share`] client → `poll` → `metrics` → [`http`].
//! [`simulator`] is a faithful Share server used by the tests, the benchmark, `--demo` and the
//! `share_simulator` binary; [`Exporter`] assembles everything for `main`; [`clock`] is the one
//! time source (now and sleep) that tests and the soak can speed up.
//!
//! The public surface is what `main`, the simulator binary, the tests and the benchmarks use,
//! and nothing else: the parts that stand alone (the configuration, the Share client and its
//! simulator, the clock, the HTTP server, the remote-write sender, the three subcommands, logging
//! and the shutdown signal) as modules, and the assembled exporter with the few types a test
//! holds at the crate root. Everything else is private, so only what a caller sees has to be
//! documented, and an item nothing uses is reported as dead code.

pub mod backfill;
pub mod check;
pub mod clock;
pub mod config;
pub mod drill;
pub mod http;
pub mod logging;
pub mod remote_write;
pub mod share;
pub mod shutdown;
pub mod simulator;

mod demo;
mod error_cause;
mod exporter;
mod history;
mod metrics;
mod openmetrics;
mod poll;
mod state;
mod yaml;

pub use demo::DemoError;
pub use exporter::{Exporter, ExporterError};
pub use history::{History, Merged};
pub use metrics::{Metrics, render as render_metrics};
pub use state::StateError;
pub use yaml::YamlError;
