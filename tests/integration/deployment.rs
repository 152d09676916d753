//! The shipped systemd deployments, run as systemd would run them, without systemd: the
//! binary (the installed one when `DEXCOM_EXPORTER_INSTALLED_BINARY` names it, as `.ci/run`
//! does after `dpkg -i`) runs as an unprivileged user (`setpriv`, uid 65534, as a dynamic user
//! would be) with exactly what the unit and its drop-in give it: the `LoadCredential=` files in
//! a credentials directory only that user can read, the `EnvironmentFile=` and `Environment=`
//! settings (`%d` expanded), `$STATE_DIRECTORY`, and nothing else. The files behind the
//! credentials sit in a directory only root can read, as `/etc/dexcom_exporter` does. Both the
//! single-account unit and the several-accounts drop-in must serve every account.

use std::os::unix::fs::{PermissionsExt as _, chown};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dexcom_exporter::share::Region;
use dexcom_exporter::simulator::{AccountSpec, Scenario};

use crate::common::{KillOnDrop, get, repo, spawn_logged, start};
use crate::harness::ScratchDir;

const NOBODY: u32 = 65534;

/// What the unit (and a drop-in) hand the service.
#[derive(Debug, Default)]
struct ServiceSettings {
    credentials: Vec<(String, String)>,
    environment: Vec<(String, String)>,
    environment_files: Vec<String>,
    exec_start: Vec<String>,
    state_directory: Option<String>,
}

/// Reads the `[Service]` settings the way systemd merges a unit and its drop-ins: list
/// settings accumulate, an empty assignment resets them.
fn service_settings(files: &[&str]) -> ServiceSettings {
    let mut settings = ServiceSettings::default();
    for text in files {
        let mut in_service = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            if !in_service || line.starts_with('#') || line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "LoadCredential" if value.is_empty() => settings.credentials.clear(),
                "LoadCredential" => {
                    let (id, path) = value.split_once(':').unwrap();
                    settings.credentials.push((id.to_owned(), path.to_owned()));
                }
                "Environment" => {
                    let (k, v) = value.split_once('=').unwrap();
                    settings.environment.push((k.to_owned(), v.to_owned()));
                }
                "EnvironmentFile" => settings.environment_files.push(value.to_owned()),
                "ExecStart" => {
                    settings.exec_start = value.split_whitespace().map(str::to_owned).collect();
                }
                "StateDirectory" => settings.state_directory = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    settings
}

fn key_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn binary() -> PathBuf {
    std::env::var_os("DEXCOM_EXPORTER_INSTALLED_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dexcom_exporter")))
}

fn owned_by_nobody(path: &Path, mode: u32) {
    chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs the service as the unit would, with `etc` standing for `/etc/dexcom_exporter` and
/// `defaults` for `/etc/default/dexcom_exporter`; returns its address and its log.
fn run_as_the_unit(
    dir: &Path,
    settings: &ServiceSettings,
    etc: &Path,
    defaults: &str,
    overrides: &[(&str, &str)],
) -> (KillOnDrop, String, std::sync::Arc<std::sync::Mutex<String>>) {
    let credentials = dir.join("credentials");
    std::fs::create_dir_all(&credentials).unwrap();
    for (id, source) in &settings.credentials {
        let source = source
            .strip_prefix("/etc/dexcom_exporter/")
            .map(|rest| etc.join(rest))
            .unwrap_or_else(|| {
                panic!("credential {id} from outside /etc/dexcom_exporter: {source}")
            });
        let target = credentials.join(id);
        std::fs::copy(&source, &target).unwrap_or_else(|e| {
            panic!("LoadCredential={id}: {} is missing: {e}", source.display())
        });
        owned_by_nobody(&target, 0o400);
    }
    owned_by_nobody(&credentials, 0o500);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    owned_by_nobody(&state, 0o700);
    assert_eq!(settings.state_directory.as_deref(), Some("dexcom_exporter"));

    let mut env: Vec<(String, String)> = Vec::new();
    for file in &settings.environment_files {
        assert_eq!(file.trim_start_matches('-'), "/etc/default/dexcom_exporter");
        env.extend(key_values(defaults));
    }
    for (k, v) in &settings.environment {
        env.push((
            k.clone(),
            v.replace("%d", &credentials.display().to_string()),
        ));
    }
    for (k, v) in overrides {
        env.retain(|(key, _)| key != k);
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    env.push((
        "CREDENTIALS_DIRECTORY".into(),
        credentials.display().to_string(),
    ));
    env.push(("STATE_DIRECTORY".into(), state.display().to_string()));
    env.push(("PATH".into(), "/usr/bin:/bin".into()));
    let mut argv: Vec<String> = Vec::new();
    for arg in settings.exec_start.iter().skip(1) {
        if let Some(name) = arg.strip_prefix('$') {
            let value = env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            argv.extend(
                value
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned),
            );
        } else {
            argv.push(arg.clone());
        }
    }
    assert_eq!(settings.exec_start[0], "/usr/bin/dexcom_exporter");

    let mut command = std::process::Command::new("setpriv");
    command
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(binary())
        .args(&argv)
        .env_clear()
        .envs(env)
        .current_dir("/");
    spawn_logged(command)
}

/// Whether this process may switch users (root, as in CI).
fn can_switch_users() -> bool {
    crate::common::root_for("the deployment tests, which run the service as uid 65534")
}

/// The shipped single-account unit run as [`run_as_the_unit`] does, with what a user changes
/// for a test: the port, and Share played by `sim`.
fn run_the_shipped_unit(
    dir: &ScratchDir,
    etc: &Path,
    defaults: &str,
    sim: &dexcom_exporter::simulator::RunningSimulator,
) -> (KillOnDrop, String, std::sync::Arc<std::sync::Mutex<String>>) {
    let unit = std::fs::read_to_string(repo().join("deploy/dexcom_exporter.service")).unwrap();
    let settings = service_settings(&[&unit]);
    let base_url = sim.base_url();
    run_as_the_unit(
        dir.path(),
        &settings,
        etc,
        defaults,
        &[
            ("DEXCOM_EXPORTER_WEB_LISTEN_ADDRESS", "127.0.0.1:0"),
            ("DEXCOM_BASE_URL", &base_url),
        ],
    )
}

/// A scratch directory others may enter, the shipped environment file, its account's username
/// and a simulator (readings every second) where that account has `password`.
async fn single_account(
    password: &str,
) -> (
    ScratchDir,
    String,
    String,
    dexcom_exporter::simulator::RunningSimulator,
) {
    let dir = ScratchDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let defaults =
        std::fs::read_to_string(repo().join("deploy/dexcom_exporter.env.example")).unwrap();
    let username = key_values(&defaults)
        .into_iter()
        .find(|(k, _)| k == "DEXCOM_USERNAME")
        .map(|(_, v)| v)
        .unwrap();
    let sim = start(Scenario {
        reading_interval: Duration::from_secs(1),
        accounts: vec![AccountSpec::new(&username, password)],
        ..Scenario::default()
    })
    .await;
    (dir, defaults, username, sim)
}

/// A directory only root can enter, standing for `/etc/dexcom_exporter`.
fn root_only_etc(dir: &Path) -> PathBuf {
    let etc = dir.join("etc-dexcom_exporter");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o700)).unwrap();
    etc
}

async fn wait_for_accounts(
    addr: &str,
    accounts: &[&str],
    logs: &std::sync::Arc<std::sync::Mutex<String>>,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = get(&format!("http://{addr}/metrics")).await;
        if accounts
            .iter()
            .all(|a| body.contains(&format!("dexcom_glucose_mg_per_dl{{account=\"{a}\"}}")))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not every account served: {accounts:?}\n{body}\nlog:\n{}",
            logs.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_account_unit_runs_as_a_dynamic_user_would() {
    if !can_switch_users() {
        return;
    }
    let (dir, defaults, username, sim) = single_account("s3cret unit password").await;
    let etc = root_only_etc(dir.path());
    std::fs::write(etc.join("password"), "s3cret unit password\n").unwrap();
    let (_service, addr, logs) = run_the_shipped_unit(&dir, &etc, &defaults, &sim);
    wait_for_accounts(&addr, &[&username], &logs).await;
    // The login gate's memory went to the state directory.
    let state: Vec<_> = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("gate-"))
        .collect();
    // The username's file points at the account ID Share resolved it to, whose file holds it.
    assert_eq!(state.len(), 2, "the login's gate files");
    assert!(!logs.lock().unwrap().contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_several_accounts_drop_in_runs_as_a_dynamic_user_would() {
    if !can_switch_users() {
        return;
    }
    let dir = ScratchDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The example's two accounts: kid (US, by username) and grandpa (outside the US, by ID).
    let us = start(Scenario {
        reading_interval: Duration::from_secs(1),
        accounts: vec![AccountSpec::new("kid@example.com", "kid pw")],
        ..Scenario::default()
    })
    .await;
    let ous = start(Scenario {
        region: Region::Ous,
        reading_interval: Duration::from_secs(1),
        accounts: vec![AccountSpec {
            account_id: Some("12345678-90ab-cdef-1234-567890abcdef".parse().unwrap()),
            ..AccountSpec::new("grandpa@example.com", "grandpa pw")
        }],
        ..Scenario::default()
    })
    .await;
    let etc = root_only_etc(dir.path());
    // config.example.yml as shipped, with each account's Share played by a simulator.
    let example = std::fs::read_to_string(repo().join("deploy/config.example.yml")).unwrap();
    let config = example
        .replace(
            "    region: us ",
            &format!("    base_url: {}\n    region: us ", us.base_url()),
        )
        .replace(
            "    region: ous",
            &format!("    base_url: {}\n    region: ous", ous.base_url()),
        );
    assert_eq!(config.matches("base_url").count(), 2, "{config}");
    std::fs::write(etc.join("config.yml"), config).unwrap();
    std::fs::write(etc.join("kid-password"), "kid pw\n").unwrap();
    std::fs::write(etc.join("grandpa-password"), "grandpa pw\n").unwrap();
    let unit = std::fs::read_to_string(repo().join("deploy/dexcom_exporter.service")).unwrap();
    let drop_in = std::fs::read_to_string(repo().join("deploy/systemd/accounts.conf")).unwrap();
    let settings = service_settings(&[&unit, &drop_in]);
    assert!(
        settings
            .credentials
            .iter()
            .all(|(id, _)| id != "dexcom-password"),
        "the drop-in replaces the single password"
    );
    // The defaults file's own instructions for several accounts lead here: install the
    // drop-in, delete DEXCOM_USERNAME, and leave DEXCOM_EXPORTER_CONFIG_FILE to the drop-in
    // (set in this file, it would win and point at the root-only directory).
    let example =
        std::fs::read_to_string(repo().join("deploy/dexcom_exporter.env.example")).unwrap();
    assert!(example.contains("accounts.conf") && example.contains("delete\n# DEXCOM_USERNAME"));
    assert!(
        !example.lines().any(|l| l
            .trim_start_matches(['#', ' '])
            .starts_with("DEXCOM_EXPORTER_CONFIG_FILE=")),
        "the example must not suggest setting DEXCOM_EXPORTER_CONFIG_FILE beside the drop-in"
    );
    // As the drop-in's comment says: DEXCOM_USERNAME goes from the defaults file.
    let defaults: String =
        std::fs::read_to_string(repo().join("deploy/dexcom_exporter.env.example"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("DEXCOM_USERNAME="))
            .map(|l| format!("{l}\n"))
            .collect();
    let (_service, addr, logs) = run_as_the_unit(
        dir.path(),
        &settings,
        &etc,
        &defaults,
        &[("DEXCOM_EXPORTER_WEB_LISTEN_ADDRESS", "127.0.0.1:0")],
    );
    wait_for_accounts(&addr, &["kid", "grandpa"], &logs).await;
    let state = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("gate-"))
        .count();
    // grandpa's account ID, and kid's: its username points at the ID Share resolved it to.
    assert_eq!(state, 3, "each Dexcom identity's gate file");
    // The premise: the service's user cannot read the files behind the credentials.
    let peek = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "cat",
        ])
        .arg(etc.join("kid-password"))
        .output()
        .unwrap();
    assert!(
        !peek.status.success(),
        "uid {NOBODY} read /etc/dexcom_exporter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_run_as_root_before_the_service_leaves_a_gate_the_service_reads() {
    use std::os::unix::fs::MetadataExt as _;
    if !can_switch_users() {
        return;
    }
    let (dir, defaults, username, sim) = single_account("the right password").await;
    // The state directory as systemd left it for the dynamic user, and a mistyped password.
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    owned_by_nobody(&state, 0o700);
    let etc = root_only_etc(dir.path());
    std::fs::write(etc.join("password"), "a mistyped password\n").unwrap();
    // `sudo dexcom_exporter check --storage.path /var/lib/dexcom_exporter`, service stopped.
    let output = std::process::Command::new(binary())
        .args(["check", "--dexcom.username", &username, "--dexcom.base-url"])
        .arg(sim.base_url())
        .arg("--storage.path")
        .arg(&state)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DEXCOM_PASSWORD", "a mistyped password")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(sim.simulator.request_counts(&username).authenticate, 1);
    for entry in std::fs::read_dir(&state).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (NOBODY, NOBODY),
            "{} is the service's to read",
            entry.path().display()
        );
    }
    // Then the service, as its own user, on the same directory: it reads the gate's memory and
    // holds the refused password instead of sending it again.
    let (_service, addr, logs) = run_the_shipped_unit(&dir, &etc, &defaults, &sim);
    let deadline = Instant::now() + Duration::from_secs(20);
    let held =
        format!("dexcom_login_hold_reason{{account=\"{username}\",reason=\"auth_failed\"}} 1");
    loop {
        let (_, body) = get(&format!("http://{addr}/metrics")).await;
        if body.contains(&held) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not held:\n{body}\nlog:\n{}",
            logs.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sim.simulator.request_counts(&username).authenticate,
        1,
        "the refused password is not sent again by the service"
    );
    assert!(
        !logs.lock().unwrap().contains("cannot read"),
        "{}",
        logs.lock().unwrap()
    );
}
