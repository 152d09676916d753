//! What the benchmarks share beyond the test kit (`dexcom_testkit`, which starts the exporter
//! in process, finds tools and ports and reads memory for tests, the soak and the benchmarks
//! alike): the benchmarks' password, their accounts file and Prometheus command. Included by
//! each benchmark with `#[path = "support/mod.rs"] mod support;` (benches are separate crates).
#![allow(dead_code)] // each benchmark uses part of it

#[allow(unused_imports)] // each benchmark uses part of it
pub use dexcom_testkit::{RunningExporter, find_tool, free_port};

/// The password every benchmark account uses, given as `DEXCOM_PASSWORD`.
pub const PASSWORD: &str = "bench-password";

/// An environment holding only `DEXCOM_PASSWORD`.
pub fn env() -> dexcom_testkit::TestEnv {
    dexcom_testkit::TestEnv::password(PASSWORD)
}

/// The `accounts:` section of a configuration file for `names` on the simulator at
/// `base_url`, all with `password` in one password file `dir/pw` (mode 0600, as the exporter
/// wants it). Callers add other sections and write the file.
pub fn accounts_yaml(
    dir: &std::path::Path,
    names: &[String],
    base_url: &str,
    password: &str,
) -> String {
    let password_file = dir.join("pw");
    std::fs::write(&password_file, password).expect("password file");
    std::fs::set_permissions(
        &password_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("password file mode");
    let mut yaml = String::from("accounts:\n");
    for name in names {
        yaml.push_str(&format!(
            "  - username: {name}\n    password_file: {}\n    base_url: {base_url}\n",
            password_file.display()
        ));
    }
    yaml
}

/// Parses `flags` as the command line (with [`env`]) and runs the exporter on a loopback port.
pub async fn start_exporter(flags: impl IntoIterator<Item = String>) -> RunningExporter {
    dexcom_testkit::start_on_system_clock(flags.into_iter().collect(), env()).await
}

/// Resident memory of process `pid` (`self` for this one) in MB, from `/proc`.
pub fn rss_mb(pid: &str) -> f64 {
    dexcom_testkit::rss_kib(pid) as f64 / 1024.0
}

/// Debian's Prometheus reading `dir/prometheus.yml`, storing in `dir/data`, listening on
/// loopback `port`, quiet; the caller adds flags and spawns it.
pub fn prometheus_command(dir: &std::path::Path, port: u16) -> Option<std::process::Command> {
    let mut command = std::process::Command::new(find_tool("prometheus")?);
    command
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    Some(command)
}
