//! Helpers shared by the integration tests: a simulator on a loopback port, clients for it.
#![allow(dead_code, missing_docs)]

use std::time::Duration;

use dexcom_exporter::share::{ClientSettings, Login, Region, ShareClient};
use dexcom_exporter::simulator::{AccountSpec, RunningSimulator, Scenario, Simulator};

pub const USERNAME: &str = "publisher@example.com";
pub const PASSWORD: &str = "correct horse battery staple";

/// A scenario with one typical account and the given cadence.
pub fn scenario(interval: Duration) -> Scenario {
    Scenario {
        reading_interval: interval,
        accounts: vec![AccountSpec::new(USERNAME, PASSWORD)],
        ..Scenario::default()
    }
}

/// Starts a simulator on 127.0.0.1 with an OS-chosen port.
pub async fn start(scenario: Scenario) -> RunningSimulator {
    start_at(
        scenario,
        std::sync::Arc::new(dexcom_exporter::clock::SystemClock),
    )
    .await
}

/// Starts a simulator on 127.0.0.1, with an OS-chosen port, whose time is `clock`.
pub async fn start_at(
    scenario: Scenario,
    clock: std::sync::Arc<dyn dexcom_exporter::clock::Clock>,
) -> RunningSimulator {
    let simulator = Simulator::with_clock(scenario, clock).expect("valid scenario");
    simulator
        .start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind loopback")
}

/// Client settings pointing at `base_url`.
pub fn settings(base_url: &str, login: Login, password: &str) -> ClientSettings {
    ClientSettings {
        base_url: base_url.parse().expect("url"),
        application_id: Region::Us.application_id().to_owned(),
        login,
        password: password.to_owned().into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
    }
}

/// A client logging in by username.
pub fn client(sim: &RunningSimulator, username: &str, password: &str) -> ShareClient {
    ShareClient::new(settings(
        &sim.base_url(),
        Login::Username(username.to_owned()),
        password,
    ))
    .expect("client")
}

pub use dexcom_testkit::prometheus::{
    KillOnDrop, alertmanager_command, prometheus_command, query, repo, start_alertmanager,
    start_shipped_alertmanager, wait_until_ready,
};
pub use dexcom_testkit::{CapturedLogs, RunningExporter, TestEnv, capture_logs, free_port, in_ci};

/// Parses `args` exactly like the command line (with `env`) and runs the exporter.
pub async fn spawn_exporter(args: &[&str], env: &TestEnv) -> RunningExporter {
    spawn_exporter_with_clock(
        args,
        env,
        std::sync::Arc::new(dexcom_exporter::clock::SystemClock),
    )
    .await
}

/// [`spawn_exporter`] with the exporter reading time from `clock`.
pub async fn spawn_exporter_with_clock(
    args: &[&str],
    env: &TestEnv,
    clock: std::sync::Arc<dyn dexcom_exporter::clock::Clock>,
) -> RunningExporter {
    let args = args.iter().map(|a| (*a).to_owned()).collect();
    dexcom_testkit::start(args, env.clone(), clock).await
}

/// GETs a URL and returns status and body.
pub async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The value of the sample `name{labels}` in a scrape, where `labels` is the exact label text.
pub fn sample(scrape: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Scrapes until `check` returns `Some`, or panics after `within`.
pub async fn scrape_until<T>(
    exporter: &RunningExporter,
    within: Duration,
    check: impl FnMut(&str) -> Option<T>,
) -> T {
    get_until(&exporter.url("/metrics"), within, check).await
}

/// GETs `url` until `check` returns `Some` for the body, or panics after `within`.
pub async fn get_until<T>(
    url: &str,
    within: Duration,
    mut check: impl FnMut(&str) -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        let (_, body) = get(url).await;
        if let Some(found) = check(&body) {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within {within:?}; last answer from {url}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Standard exporter flags against a simulator.
pub fn exporter_args<'a>(base_url: &'a str, interval: &'a str) -> Vec<&'a str> {
    vec![
        "--dexcom.username",
        USERNAME,
        "--dexcom.base-url",
        base_url,
        "--dexcom.reading-interval",
        interval,
    ]
}

/// The environment holding the right password.
pub fn password_env() -> TestEnv {
    TestEnv::password(PASSWORD)
}

/// The path of an external tool, or `None` (outside CI only: in CI a missing tool fails).
pub fn tool(name: &str) -> Option<std::path::PathBuf> {
    let found = dexcom_testkit::find_tool(name);
    if found.is_none() {
        assert!(!in_ci(), "{name} is required in CI; .ci/run installs it");
        eprintln!("SKIPPED outside CI: {name} is not installed (bash .ci/run installs it)");
    }
    found
}

/// Starts the `dexcom_exporter` binary and waits for its "listening on" log line; returns
/// the process and the address it serves.
pub fn start_exporter_process(args: &[&str]) -> (KillOnDrop, String) {
    let (child, addr, _) = start_exporter_process_logged(args, &[]);
    (child, addr)
}

/// [`start_exporter_process`] with extra environment variables, also returning everything
/// the exporter logs (collected as it runs).
pub fn start_exporter_process_logged(
    args: &[&str],
    env: &[(&str, &str)],
) -> (KillOnDrop, String, std::sync::Arc<std::sync::Mutex<String>>) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dexcom_exporter"));
    command.args(args).envs(env.iter().copied());
    isolate_state(&mut command);
    spawn_logged(command)
}

/// Whether this process is root, which `what` needs: in CI it must be (a test that cannot run
/// there fails); elsewhere the test says it is skipped.
pub fn root_for(what: &str) -> bool {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root {
        assert!(!in_ci(), "{what} need root in CI");
        eprintln!("SKIPPED outside CI: not root, for {what}");
    }
    root
}

/// Gives a spawned exporter a state directory of its own (unless the test named one), so no
/// test finds the developer's `~/.local/state` or a real installation's
/// `/var/lib/dexcom_exporter`, which every command would otherwise use by default.
pub fn isolate_state(command: &mut std::process::Command) {
    // Only a variable set to a value names a directory (one taken out is listed with none).
    let named = command.get_envs().any(|(k, v)| {
        v.is_some()
            && (k == "DEXCOM_EXPORTER_STORAGE_PATH"
                || k == "STATE_DIRECTORY"
                || k == "XDG_STATE_HOME")
    }) || command
        .get_args()
        .any(|a| a.to_string_lossy().starts_with("--storage.path"));
    command.env_remove("STATE_DIRECTORY");
    if named {
        return;
    }
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dexcom-test-state-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    command.env("DEXCOM_EXPORTER_STORAGE_PATH", dir);
}

/// Spawns `command` (an exporter, however started), waits for its "listening on" log line
/// and keeps collecting its log; returns the process, the address it serves and the log.
pub fn spawn_logged(
    mut command: std::process::Command,
) -> (KillOnDrop, String, std::sync::Arc<std::sync::Mutex<String>>) {
    use std::io::BufRead;
    let mut child = command
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut reader = std::io::BufReader::new(stderr);
    let mut seen = String::new();
    let addr = loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.wait();
            panic!("exporter exited:\n{seen}");
        }
        seen.push_str(&line);
        if let Some(addr) = listening_address(&line) {
            break addr;
        }
    };
    let logs = std::sync::Arc::new(std::sync::Mutex::new(seen));
    let sink = logs.clone();
    // Keep draining the log so the exporter never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    (KillOnDrop(child), addr, logs)
}

/// The address in the exporter's "listening on http://ADDR" log line, if `log` holds one.
pub fn listening_address(log: &str) -> Option<String> {
    let rest = log.split("listening on http://").nth(1)?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// The log of validating a configuration that reads its password from `path` with `mode`.
pub fn password_file_log(path: &std::path::Path, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    let (_guard, logs) = capture_logs();
    let cli = <dexcom_exporter::config::Cli as clap::Parser>::try_parse_from([
        "dexcom_exporter",
        "--dexcom.username",
        "a",
        "--dexcom.password-file",
        path.to_str().unwrap(),
        "--storage.path=none",
    ])
    .unwrap();
    dexcom_exporter::config::Config::from_cli(cli, &TestEnv(vec![])).unwrap();
    logs.text()
}

/// Runs `promtool test rules` on `yaml` (a rule test file, written as `name`); on failure the
/// input is kept in the temporary directory and the test fails with promtool's output.
pub fn promtool_test_rules(promtool: &std::path::Path, name: &str, yaml: &str) {
    let dir = crate::harness::ScratchDir::new();
    let file = dir.path().join(name);
    std::fs::write(&file, yaml).unwrap();
    let (ok, text) = run_tool(
        promtool,
        &[
            std::ffi::OsStr::new("test"),
            std::ffi::OsStr::new("rules"),
            file.as_os_str(),
        ],
    );
    if !ok {
        let kept = std::env::temp_dir().join(name);
        let _ = std::fs::copy(&file, &kept);
        panic!(
            "promtool test rules failed (input kept in {}):\n{text}",
            kept.display()
        );
    }
}

/// Runs `program` with `args` in the repository; whether it succeeded, and its output.
pub fn run_tool(program: &std::path::Path, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let output = std::process::Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
