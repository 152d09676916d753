//! The login gate on the paths people take, with the real binary: `check` typed without
//! `--storage.path`, one login spelt several ways, six guesses in a row, a full disk while the
//! service runs, a read-only one at boot. Each would lock the Dexcom account (or stop the
//! alarm for good) before the gate was kept per identity and failed closed.
//!
//! As root (as in CI) every run is in a private mount namespace whose `/var/lib` is empty, so
//! no test finds, or changes, a real installation's `/var/lib/dexcom_exporter`; the disks that
//! fill up or turn read-only are small tmpfs mounts in such a namespace.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{PASSWORD, USERNAME, get, sample, scenario, start};
use crate::harness::ScratchDir;

const BINARY: &str = env!("CARGO_BIN_EXE_dexcom_exporter");

/// Whether this process is root, which a private mount namespace needs.
fn root() -> bool {
    crate::common::root_for("the gate-path tests, which run in private mount namespaces")
}

/// The binary as a person types it: only `PATH` and `env` in its environment; in a mount
/// namespace where `/var/lib` is an empty tmpfs and, when `disk` is given, a small tmpfs is at
/// `disk.0` after the shell line `disk.1` ran there (`$D` is the mount point).
fn typed(args: &[&str], env: &[(&str, &str)], disk: Option<(&Path, &str)>) -> Command {
    let mut script = "mount -t tmpfs tmpfs /var/lib".to_owned();
    let mut command = Command::new("unshare");
    command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().copied());
    if let Some((dir, setup)) = disk {
        std::fs::create_dir_all(dir).unwrap();
        script.push_str(" && mount -t tmpfs -o size=128k tmpfs \"$D\" && cd \"$D\" && ");
        script.push_str(setup);
        command.env("D", dir);
    }
    script.push_str(" && cd / && exec \"$0\" \"$@\"");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            BINARY,
        ])
        .args(args);
    command
}

fn run(command: &mut Command) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// `dexcom_exporter check` typed with `username` and `password` at the simulator `base`, with
/// `home` as the person's home directory and nothing naming a state directory.
fn check_typed(base: &str, username: &str, password: &str, home: &Path) -> (Option<i32>, String) {
    let home = home.to_str().unwrap();
    let (code, stdout, stderr) = run(&mut typed(
        &[
            "check",
            "--dexcom.username",
            username,
            "--dexcom.base-url",
            base,
        ],
        &[("HOME", home), ("DEXCOM_PASSWORD", password)],
        None,
    ));
    (code, format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_typed_without_storage_path_remembers_the_last_attempt() {
    if !root() {
        return;
    }
    let sim = start(scenario(Duration::from_secs(300))).await;
    let home = ScratchDir::new();
    let base = sim.base_url();
    let home_path = home.path().to_owned();
    tokio::task::spawn_blocking(move || {
        for run in 0..5 {
            let (code, text) = check_typed(&base, USERNAME, "wrong", &home_path);
            assert_eq!(code, Some(1), "run {run}: {text}");
            if run > 0 {
                assert!(
                    text.contains("holds the password until"),
                    "run {run}: {text}"
                );
            }
        }
        // The corrected password is tried at once.
        let (code, text) = check_typed(&base, USERNAME, PASSWORD, &home_path);
        assert_eq!(code, Some(0), "{text}");
    })
    .await
    .unwrap();
    assert_eq!(
        sim.simulator.request_counts(USERNAME).authenticate,
        2,
        "one wrong password in five runs, then the right one"
    );
    assert!(
        home.path().join(".local/state/dexcom_exporter").is_dir(),
        "the user's own state directory"
    );
    sim.stop().await;
}

#[test]
fn with_nowhere_to_keep_the_gate_a_command_refuses_and_none_is_said() {
    if !root() {
        return;
    }
    let (code, _, stderr) = run(&mut typed(
        &[
            "check",
            "--dexcom.username",
            "kid",
            "--dexcom.base-url",
            "http://127.0.0.1:9/",
        ],
        &[("DEXCOM_PASSWORD", "pw")],
        None,
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no state directory") && stderr.contains("--storage.path"),
        "{stderr}"
    );
    let (_, _, stderr) = run(&mut typed(
        &[
            "check",
            "--dexcom.username",
            "kid",
            "--dexcom.base-url",
            "http://127.0.0.1:9/",
            "--storage.path=none",
        ],
        &[("DEXCOM_PASSWORD", "pw")],
        None,
    ));
    assert!(
        stderr.contains("WARN") && stderr.contains("--storage.path=none"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_login_spelt_several_ways_has_one_gate() {
    if !root() {
        return;
    }
    let sim = start(scenario(Duration::from_secs(300))).await;
    let home = ScratchDir::new();
    let (base, home_path) = (sim.base_url(), home.path().to_owned());
    let spellings = [
        format!(" {} ", USERNAME.to_uppercase()),
        USERNAME.to_owned(),
        USERNAME.replace("publisher", "Publisher"),
    ];
    let other_host = base.replace("127.0.0.1", "localhost");
    tokio::task::spawn_blocking(move || {
        for (i, name) in spellings.iter().enumerate() {
            let base = if i == 2 { &other_host } else { &base };
            let (code, text) = check_typed(base, name, "wrong", &home_path);
            assert_eq!(code, Some(1), "{name:?}: {text}");
        }
    })
    .await
    .unwrap();
    assert_eq!(
        sim.simulator.request_counts(USERNAME).authenticate,
        1,
        "three spellings (and two names of one host) are one Dexcom login"
    );
    // Listed twice in one file: refused at start, naming both entries.
    let dir = ScratchDir::new();
    let file = dir.path().join("accounts.yml");
    for name in ["a.pw", "b.pw"] {
        let path = dir.path().join(name);
        std::fs::write(&path, "pw\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }
    std::fs::write(
        &file,
        format!(
            "accounts:\n  - name: a\n    username: {USERNAME}\n    password_file: a.pw\n    base_url: {}\n  - name: b\n    username: ' {}'\n    password_file: b.pw\n    base_url: {}\n",
            sim.base_url(),
            USERNAME.to_uppercase(),
            sim.base_url().replace("127.0.0.1", "localhost"),
        ),
    )
    .unwrap();
    let (code, _, stderr) = run(&mut typed(
        &["check", "--config.file", file.to_str().unwrap()],
        &[("DEXCOM_PASSWORD", "pw"), ("HOME", "/nonexistent")],
        None,
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("\"a\" and \"b\" are the same Dexcom login"),
        "{stderr}"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_guesses_stop_at_four_and_a_person_can_reset() {
    if !root() {
        return;
    }
    let sim = start(scenario(Duration::from_secs(300))).await;
    let home = ScratchDir::new();
    let (base, home_path) = (sim.base_url(), home.path().to_owned());
    tokio::task::spawn_blocking(move || {
        for guess in 1..=6 {
            let (code, text) = check_typed(&base, USERNAME, &format!("guess {guess}"), &home_path);
            assert_eq!(code, Some(1), "guess {guess}: {text}");
            assert!(!text.contains("locked"), "guess {guess}: {text}");
            if guess > 4 {
                assert!(
                    text.contains("4 logins failed in a row") && text.contains("--reset-gate"),
                    "guess {guess}: {text}"
                );
            }
        }
        // Even the right password waits: the cap is the account's, not a password's.
        let (code, text) = check_typed(&base, USERNAME, PASSWORD, &home_path);
        assert_eq!(code, Some(1), "{text}");
        // A person resets it, and is told what that risks.
        let home = home_path.to_str().unwrap();
        let (code, stdout, stderr) = run(&mut typed(
            &[
                "check",
                "--reset-gate",
                "--dexcom.username",
                USERNAME,
                "--dexcom.base-url",
                &base,
            ],
            &[("HOME", home), ("DEXCOM_PASSWORD", PASSWORD)],
            None,
        ));
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        assert!(
            stderr.contains("4 failed logins in a row forgotten")
                && stderr.contains("Dexcom locks an account"),
            "{stderr}"
        );
    })
    .await
    .unwrap();
    let counts = sim.simulator.request_counts(USERNAME);
    assert_eq!(counts.authenticate, 5, "four guesses, then the reset login");
    sim.stop().await;
}

/// Scrapes `addr` until `done` holds or 30 s pass.
async fn scrape_until(addr: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = get(&format!("http://{addr}/metrics")).await;
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_the_password_in_until_space_returns() {
    if !root() {
        return;
    }
    let sim = start(scenario(Duration::from_secs(1))).await;
    let dir = ScratchDir::new();
    let state = dir.path().join("state");
    let base = sim.base_url();
    let command = typed(
        &[
            "--dexcom.username",
            USERNAME,
            "--dexcom.base-url",
            &base,
            "--dexcom.reading-interval",
            "1s",
            "--glucose.max-age",
            "10s",
            "--web.listen-address",
            "127.0.0.1:0",
            "--storage.path",
            state.to_str().unwrap(),
        ],
        &[("DEXCOM_PASSWORD", PASSWORD)],
        // Full before the exporter starts: every block taken by one file.
        Some((&state, "{ cat /dev/zero > filler 2>/dev/null || true; }")),
    );
    let (child, addr, logs) = crate::common::spawn_logged(command);
    let body = scrape_until(&addr, "held for an unwritable state", |b| {
        sample(
            b,
            "dexcom_login_hold_reason",
            "account=\"publisher@example.com\",reason=\"state_unwritable\"",
        ) == Some(1.0)
    })
    .await;
    assert_eq!(
        sample(
            &body,
            "dexcom_account_status",
            "account=\"publisher@example.com\",status=\"login_held\""
        ),
        Some(1.0),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sim.simulator.total_request_counts().authenticate,
        0,
        "no password while its attempt cannot be recorded"
    );
    assert!(
        logs.lock().unwrap().contains("cannot be written"),
        "{}",
        logs.lock().unwrap()
    );
    // Space returns (through the process's own view of its mount namespace).
    let filler = format!("/proc/{}/root{}/filler", child.0.id(), state.display());
    std::fs::remove_file(&filler).unwrap();
    scrape_until(&addr, "a value once space returned", |b| {
        sample(
            b,
            "dexcom_glucose_mg_per_dl",
            "account=\"publisher@example.com\"",
        )
        .is_some()
    })
    .await;
    assert_eq!(sim.simulator.total_request_counts().authenticate, 1);
    drop(child);
    sim.stop().await;
}

#[test]
fn a_read_only_disk_at_boot_exits_with_a_code_the_unit_restarts() {
    if !root() {
        return;
    }
    let dir = ScratchDir::new();
    let state = dir.path().join("state");
    let (code, _, stderr) = run(&mut typed(
        &[
            "--dexcom.username",
            "kid",
            "--storage.path",
            state.to_str().unwrap(),
        ],
        &[("DEXCOM_PASSWORD", "pw")],
        Some((&state, "mount -o remount,ro \"$D\"")),
    ));
    assert_eq!(code, Some(75), "{stderr}");
    assert!(
        stderr.contains("Read-only file system") && stderr.contains("may pass"),
        "{stderr}"
    );
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/dexcom_exporter.service"),
    )
    .unwrap();
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(value("Restart"), "on-failure");
    assert!(
        !value("RestartPreventExitStatus")
            .split_whitespace()
            .any(|c| c == "75"),
        "75 is restarted"
    );
    assert_eq!(value("StartLimitIntervalSec"), "0", "never given up");
}
