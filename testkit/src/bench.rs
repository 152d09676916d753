//! What only the benchmarks share: their password, and an exporter started from flags with
//! it. (The rest they share with the tests: the exporter in process, accounts files, tools,
//! ports, memory, Prometheus.)

use crate::RunningExporter;

/// The password every benchmark account uses, given as `DEXCOM_PASSWORD`.
pub const PASSWORD: &str = "bench-password";

/// An environment holding only `DEXCOM_PASSWORD`.
pub fn env() -> crate::TestEnv {
    crate::TestEnv::password(PASSWORD)
}

/// The `accounts:` section for `names` on the simulator at `base_url`, every one with
/// [`PASSWORD`] (in one password file in `dir`).
pub fn accounts_yaml(dir: &std::path::Path, base_url: &str, names: &[String]) -> String {
    let accounts: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), PASSWORD)).collect();
    crate::accounts_yaml(dir, base_url, &accounts)
}

/// Parses `flags` as the command line (with [`env()`]) and runs the exporter on a loopback port.
pub async fn start_exporter(flags: impl IntoIterator<Item = String>) -> RunningExporter {
    crate::start_on_system_clock(flags.into_iter().collect(), env()).await
}

/// Resident memory of process `pid` (`self` for this one) in MB, from `/proc`.
pub fn rss_mb(pid: &str) -> f64 {
    crate::rss_kib(pid) as f64 / 1024.0
}
