//! `dexcom_exporter`: Dexcom Share CGM readings as Prometheus metrics.
//!
//! Data flows one way: configuration → [`share`] client → poller → metrics → HTTP server.
//! [`simulator`] is a faithful Share server used by the tests, the benchmark, `--demo` and the
//! `share_simulator` binary.
//!
//! | module | owns |
//! |---|---|
//! | [`share`] | talking to Dexcom Share: regions, login, readings, wire model, errors |
//! | [`simulator`] | the simulated Share service |
//! | [`serve`] | the HTTP/1 accept loop with timeouts and graceful drain |
//! | [`clock`] | the injectable wall clock |

pub mod clock;
pub mod serve;
pub mod share;
pub mod shutdown;
pub mod simulator;
