//! What the tests, the fault soak and the benchmarks of `dexcom_exporter` share, written once:
//! an exporter run in process from command-line flags exactly as `main` parses them (and
//! started again on the same state directory, as a restart does), an injected environment, a
//! log sink, the tools on `PATH`, free loopback ports, resident memory and accounts files; a
//! real Prometheus ([`prometheus`]); Share's recorded replies replayed ([`replay`]); wrong
//! clocks, of the host and of Share's answers ([`clock`]); what only the benchmarks share
//! ([`mod@bench`]); and the fault
//! soak ([`soak`]), which the CI test runs for a day and the benchmark for a week.
//!
//! A dev-only workspace crate: nothing here ships.

pub mod bench;
pub mod clock;
pub mod prometheus;
pub mod replay;
pub mod soak;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use dexcom_exporter::Exporter;
use dexcom_exporter::History;
use dexcom_exporter::Metrics;
use dexcom_exporter::clock::{Clock, SystemClock};
use dexcom_exporter::config::{Cli, Config, Environment};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The process environment as the exporter's configuration sees it: only these variables.
#[derive(Debug, Clone, Default)]
pub struct TestEnv(pub Vec<(&'static str, String)>);

impl TestEnv {
    /// An environment holding only `DEXCOM_PASSWORD`.
    pub fn password(password: &str) -> Self {
        TestEnv(vec![("DEXCOM_PASSWORD", password.to_owned())])
    }
}

impl Environment for TestEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

/// An exporter running in this process on a loopback port, with what it was started with, so
/// it can be started again the same way.
pub struct RunningExporter {
    /// The address it serves.
    pub addr: SocketAddr,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Each account's history, in configuration order.
    pub histories: Vec<Arc<History>>,
    args: Vec<String>,
    env: TestEnv,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RunningExporter {
    /// A URL on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops it and waits for every task.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops it, then starts it again with the same flags, environment and clock (so on the
    /// same state directory, which has one holder at a time): a restart, a reboot, an upgrade.
    pub async fn restart(self) -> RunningExporter {
        let (args, env, clock) = (self.args.clone(), self.env.clone(), self.clock.clone());
        self.stop().await;
        start(args, env, clock).await
    }
}

/// Dropped without `stop` (a failed assertion): shut it down all the same.
impl Drop for RunningExporter {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `args`, with `--storage.path=none` when they name no state directory (and `env` no
/// `$STATE_DIRECTORY`): an in-process exporter of a test keeps its gate in memory unless the
/// test gives it a directory, and never finds a real installation's.
fn with_storage(mut args: Vec<String>, env: &TestEnv) -> Vec<String> {
    let named = args.iter().any(|a| a.starts_with("--storage.path"))
        || env.var("STATE_DIRECTORY").is_some()
        || args.iter().any(|a| a == "--demo");
    if !named {
        args.push(format!(
            "--storage.path={}",
            dexcom_exporter::config::NO_STORAGE
        ));
    }
    args
}

/// Parses `args` exactly like the command line (with `env`) and runs the exporter on a
/// loopback port chosen by the OS, reading time from `clock`.
///
/// # Panics
/// When the flags or the configuration are refused, or the exporter cannot start: a test or
/// benchmark that gets here has a bug.
pub async fn start(args: Vec<String>, env: TestEnv, clock: Arc<dyn Clock>) -> RunningExporter {
    use clap::Parser;
    let cli = Cli::try_parse_from(
        std::iter::once("dexcom_exporter".to_owned()).chain(with_storage(args.clone(), &env)),
    )
    .expect("valid flags");
    let config = Config::from_cli(cli, &env).expect("valid config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let exporter = Exporter::with_listener(config, listener, clock.clone())
        .await
        .expect("exporter builds");
    let addr = exporter.local_addr();
    let metrics = exporter.metrics();
    let histories = exporter.histories().to_vec();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(exporter.run(async move { token.cancelled().await }));
    RunningExporter {
        addr,
        metrics,
        histories,
        args,
        env,
        clock,
        shutdown,
        task: Some(task),
    }
}

/// [`start`] on the system clock.
pub async fn start_on_system_clock(args: Vec<String>, env: TestEnv) -> RunningExporter {
    start(args, env, Arc::new(SystemClock)).await
}

/// Log lines written on this thread (a `#[tokio::test]` runtime polls every task here) until
/// the guard is dropped.
pub fn capture_logs() -> (tracing::subscriber::DefaultGuard, CapturedLogs) {
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(logs.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}

/// What [`capture_logs`] collected (also usable as the writer of any subscriber).
#[derive(Clone, Default)]
pub struct CapturedLogs(pub Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Whether this runs in CI (`CI` set, not `false` or `0`), where a missing tool is a failure,
/// never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The path of `name` on `PATH`, if installed.
pub fn find_tool(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// A free loopback port (bound and released; another process could take it, rarely).
///
/// # Panics
/// When no port can be bound at all.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Resident memory of process `pid` (`self` for this one) in KiB, from `/proc`; 0 when unknown.
pub fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The `accounts:` section of a configuration file listing `accounts` (username, password)
/// against `base_url`, with one password file per distinct password in `dir` (mode 0600, as
/// the exporter wants it). Callers add other sections, or use [`accounts_file`].
///
/// # Panics
/// When a password file cannot be written.
pub fn accounts_yaml(dir: &std::path::Path, base_url: &str, accounts: &[(&str, &str)]) -> String {
    let mut passwords: Vec<&str> = Vec::new();
    let mut yaml = String::from("accounts:\n");
    for (username, password) in accounts {
        let first_use = !passwords.contains(password);
        if first_use {
            passwords.push(password);
        }
        let index = passwords.iter().position(|p| p == password).unwrap_or(0);
        let password_file = dir.join(format!("{index}.pw"));
        if first_use {
            std::fs::write(&password_file, format!("{password}\n")).expect("password file");
            std::fs::set_permissions(
                &password_file,
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .expect("password file mode");
        }
        yaml.push_str(&format!(
            "  - username: {username}\n    password_file: {}\n    base_url: {base_url}\n",
            password_file.display()
        ));
    }
    yaml
}

/// Writes [`accounts_yaml`] as `dir/config.yml` (a `--config.file`); returns its path.
///
/// # Panics
/// When a file cannot be written.
pub fn accounts_file(
    dir: &std::path::Path,
    base_url: &str,
    accounts: &[(&str, &str)],
) -> std::path::PathBuf {
    let path = dir.join("config.yml");
    std::fs::write(&path, accounts_yaml(dir, base_url, accounts)).expect("config file");
    path
}
