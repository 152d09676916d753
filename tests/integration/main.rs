//! Every integration test in one binary: one link instead of ten, one place for the shared
//! harness. Each module is one concern; [`harness`] starts the simulator and the exporter
//! together and tears both down however a test ends.
#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

mod alarm;
mod common;
mod harness;

mod backfill;
mod check;
mod cli;
mod clock;
mod clock_faults;
mod deploy;
mod deployment;
mod drill;
mod duplicate;
mod edge;
mod exporter;
mod fault_matrix;
mod gate_paths;
mod history;
mod kubernetes;
mod landing;
mod live_stack;
mod manual;
mod notifications;
mod pydexcom;
mod recorded_wire;
mod remote_write;
mod remote_write_faults;
mod remote_write_outage;
mod remote_write_refusals;
mod remote_write_tls;
mod replay;
mod safety;
mod serve;
mod shards;
mod share_client;
mod simulator_cli;
mod simulator_http;
mod soak;
mod web_config;
