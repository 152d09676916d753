//! The real Prometheus and Alertmanager the tests and benchmarks run, each started one way: its
//! configuration written into a scratch directory, its data beside it, listening on a loopback
//! port, quiet, and killed when its handle drops (so a failing test leaves nothing running).
//! The shipped Alertmanager file is used as shipped, its webhooks pointed at the caller's; one
//! instant-query helper reads Prometheus back. An Alertmanager with another file (a test's
//! filled-in copy) is started and awaited the same way. A caller that needs more (TLS, a restart) adds
//! flags to the command.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed and reaped when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The workspace root (where `deploy/`, `grafana/` and the README are).
pub fn repo() -> PathBuf {
    let testkit = Path::new(env!("CARGO_MANIFEST_DIR"));
    testkit.parent().unwrap_or(testkit).to_owned()
}

/// `binary` (a Prometheus) reading `config`, written to `dir/prometheus.yml`, storing in
/// `dir/prom-data`, listening on loopback `port`, its output discarded; the caller adds
/// flags (`--web.enable-remote-write-receiver`, `--web.config.file`) and spawns it.
///
/// # Panics
/// When `dir/prometheus.yml` cannot be written.
pub fn prometheus_command(binary: &Path, dir: &Path, port: u16, config: &str) -> Command {
    let config_file = dir.join("prometheus.yml");
    std::fs::write(&config_file, config).expect("write prometheus.yml");
    let mut command = Command::new(binary);
    command
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// `deploy/alertmanager/alertmanager.yml` as shipped, with its webhooks pointed at `hook`
/// (the heartbeat's at `hook/heartbeat`). Every route and receiver stays, so the file is
/// checked as people install it; the Pushover and Telegram entries cannot reach the internet
/// here and only the webhooks deliver.
///
/// # Panics
/// When the shipped file is missing or no longer has the webhook URLs this replaces.
fn shipped_alertmanager_config(hook: &str) -> String {
    const RELAY: &str = "http://127.0.0.1:8000/hook";
    const HEARTBEAT: &str = "https://hc-ping.com/REPLACE-WITH-YOUR-CHECK-UUID";
    let shipped = std::fs::read_to_string(repo().join("deploy/alertmanager/alertmanager.yml"))
        .expect("deploy/alertmanager/alertmanager.yml");
    assert!(
        shipped.contains(RELAY) && shipped.contains(HEARTBEAT),
        "the shipped alertmanager.yml no longer has {RELAY} and {HEARTBEAT}: update the test kit"
    );
    shipped
        .replace(RELAY, hook)
        .replace(HEARTBEAT, &format!("{hook}/heartbeat"))
}

/// `binary` (an Alertmanager) reading `config`, written to `dir/alertmanager.yml`, storing in
/// `dir/am-data`, listening on loopback `port` with clustering off, its output discarded.
///
/// # Panics
/// When `dir/alertmanager.yml` cannot be written.
pub fn alertmanager_command(binary: &Path, dir: &Path, port: u16, config: &str) -> Command {
    let config_file = dir.join("alertmanager.yml");
    std::fs::write(&config_file, config).expect("write alertmanager.yml");
    let mut command = Command::new(binary);
    command
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Alertmanager (`binary`) with the shipped file as shipped, its webhooks pointed at `hook`
/// (the heartbeat's at `hook/heartbeat`), in `dir` on loopback `port`, ready; killed on drop.
///
/// # Panics
/// When it cannot be spawned, or is not ready within 30 s (it exits on a file it refuses,
/// which would otherwise read as "no alert delivered").
pub async fn start_shipped_alertmanager(
    binary: &Path,
    dir: &Path,
    port: u16,
    hook: &str,
) -> KillOnDrop {
    let config = shipped_alertmanager_config(hook);
    start_alertmanager(alertmanager_command(binary, dir, port, &config), port).await
}

/// Spawns `command` (from [`alertmanager_command`], with what the caller added) and waits
/// until the Alertmanager on loopback `port` is ready; killed on drop.
///
/// # Panics
/// When it cannot be spawned, or is not ready within 30 s (it exits on a file it refuses).
pub async fn start_alertmanager(mut command: Command, port: u16) -> KillOnDrop {
    let process = KillOnDrop(command.spawn().expect("spawn alertmanager"));
    assert!(
        wait_until_ready(
            &format!("http://127.0.0.1:{port}/-/ready"),
            Duration::from_secs(30)
        )
        .await,
        "Alertmanager did not become ready: it refused its configuration file or could not listen"
    );
    process
}

/// Waits until `url` (a readiness endpoint such as `/-/ready`) answers 2xx; false when it
/// has not within `within`.
pub async fn wait_until_ready(url: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The result vector of instant query `expr` on the Prometheus at `base`
/// (`http://127.0.0.1:PORT`), or why there is none (unreachable, not JSON, an error status).
pub async fn query(base: &str, expr: &str) -> Result<Vec<serde_json::Value>, String> {
    let text = reqwest::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .map_err(|e| format!("{expr}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("{expr}: {e}"))?;
    let body: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{expr}: {e}: {text}"))?;
    if body["status"] != "success" {
        return Err(format!("{expr}: {body}"));
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}
