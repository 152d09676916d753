//! The real Prometheus the tests and benchmarks run, started one way: its configuration written
//! into a scratch directory, its data beside it, listening on a loopback port, quiet, and
//! killed when its handle drops (so a failing test leaves nothing running). One instant-query
//! helper reads it back. A caller that needs more (TLS, a restart) adds flags to the command.

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
