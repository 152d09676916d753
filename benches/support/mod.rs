//! What the benchmarks share: an exporter started in process from command-line flags (the
//! same path as `main`), and the resident memory of a process. Included by each benchmark with
//! `#[path = "support/mod.rs"] mod support;` (benches are separate crates).
#![allow(dead_code)] // each benchmark uses part of it

use std::net::SocketAddr;
use std::sync::Arc;

use dexcom_exporter::clock::SystemClock;
use dexcom_exporter::config::{Cli, Config, Environment};
use dexcom_exporter::exporter::Exporter;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The password every benchmark account uses, given as `DEXCOM_PASSWORD`.
pub const PASSWORD: &str = "bench-password";

/// An environment holding only `DEXCOM_PASSWORD`.
pub struct Env;

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        (name == "DEXCOM_PASSWORD").then(|| PASSWORD.to_owned())
    }
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

/// A running in-process exporter.
pub struct RunningExporter {
    /// The address it serves.
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningExporter {
    /// Stops it and waits for every task.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Parses `flags` as the command line (with [`Env`]) and runs the exporter on a loopback port.
pub async fn start_exporter(flags: impl IntoIterator<Item = String>) -> RunningExporter {
    use clap::Parser;
    let cli = Cli::try_parse_from(std::iter::once("dexcom_exporter".to_owned()).chain(flags))
        .expect("flags");
    let config = Config::from_cli(cli, &Env).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let exporter = Exporter::with_listener(config, listener, Arc::new(SystemClock))
        .await
        .expect("exporter");
    let addr = exporter.local_addr();
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(exporter.run(async move { token.cancelled().await }));
    RunningExporter { addr, stop, task }
}

/// Resident memory of process `pid` (`self` for this one) in MB, from `/proc`.
pub fn rss_mb(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The path of `name` on `PATH`, if installed.
pub fn find_tool(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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
