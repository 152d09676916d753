//! The login gate on the paths people take, with the real binary: `check` typed without
//! `--storage.path`, one login spelt several ways, six guesses in a row, a full disk while the
//! service runs, a read-only one at boot. Each would lock the Dexcom account (or stop the
//! alarm for good) before the gate was kept per identity and failed closed.
//!
//! As root (as in CI) every run is in a private mount namespace whose `/var/lib` is empty, so
//! no test finds, or changes, a real installation's `/var/lib/dexcom_exporter`; the disks that
//! fill up or turn read-only are small tmpfs mounts in such a namespace.

use std::os::unix::fs::PermissionsExt;
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

/// Who types the command.
#[derive(Clone, Copy)]
enum Who {
    Root,
    /// An ordinary user (uid 65534), whose home must be theirs.
    Nobody,
}

/// The binary as a person types it: only `PATH` and `env` in its environment; in a mount
/// namespace where `/var/lib` is `machine` (a scratch directory standing for this machine's,
/// empty or holding what a test put there) and, when `disk` is given, a small tmpfs is at
/// `disk.0` after the shell line `disk.1` ran there (`$D` is the mount point).
fn typed_by(
    who: Who,
    machine: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    disk: Option<(&Path, &str)>,
) -> Command {
    std::fs::create_dir_all(machine).unwrap();
    let mut script = "mount --bind \"$VARLIB\" /var/lib".to_owned();
    let mut command = Command::new("unshare");
    command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("VARLIB", machine)
        .envs(env.iter().copied());
    if let Some((dir, setup)) = disk {
        std::fs::create_dir_all(dir).unwrap();
        script.push_str(" && mount -t tmpfs -o size=128k tmpfs \"$D\" && cd \"$D\" && ");
        script.push_str(setup);
        command.env("D", dir);
    }
    script.push_str(match who {
        Who::Root => " && cd / && exec \"$0\" \"$@\"",
        Who::Nobody => {
            " && cd / && exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$0\" \"$@\""
        }
    });
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

/// [`typed_by`] root, on a machine of its own (an empty `/var/lib`).
fn typed(args: &[&str], env: &[(&str, &str)], disk: Option<(&Path, &str)>) -> Command {
    let machine = std::env::temp_dir().join(format!(
        "dexcom-gate-paths-{}-{}",
        std::process::id(),
        NEXT_MACHINE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    typed_by(Who::Root, &machine, args, env, disk)
}

static NEXT_MACHINE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

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

/// `dexcom_exporter check` typed by `who` with `username` and `password` at the simulator
/// `base`, on `machine` (see [`typed_by`]), with `machine/home` as the person's home directory
/// and nothing naming a state directory.
fn check_typed(
    who: Who,
    machine: &Path,
    base: &str,
    username: &str,
    password: &str,
) -> (Option<i32>, String) {
    let home = machine.join("home");
    std::fs::create_dir_all(&home).unwrap();
    if matches!(who, Who::Nobody) {
        std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    }
    let (code, stdout, stderr) = run(&mut typed_by(
        who,
        machine,
        &[
            "check",
            "--dexcom.username",
            username,
            "--dexcom.base-url",
            base,
        ],
        &[
            ("HOME", home.to_str().unwrap()),
            ("DEXCOM_PASSWORD", password),
        ],
        None,
    ));
    (code, format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_typed_without_storage_path_remembers_the_last_attempt() {
    if !root() {
        return;
    }
    for who in [Who::Root, Who::Nobody] {
        let sim = start(scenario(Duration::from_secs(300))).await;
        let machine = ScratchDir::new();
        let (base, machine_path) = (sim.base_url(), machine.path().to_owned());
        tokio::task::spawn_blocking(move || {
            for run in 0..5 {
                let (code, text) = check_typed(who, &machine_path, &base, USERNAME, "wrong");
                assert_eq!(code, Some(1), "run {run}: {text}");
                if run > 0 {
                    assert!(
                        text.contains("holds the password until"),
                        "run {run}: {text}"
                    );
                }
            }
            // The corrected password is tried at once.
            let (code, text) = check_typed(who, &machine_path, &base, USERNAME, PASSWORD);
            assert_eq!(code, Some(0), "{text}");
        })
        .await
        .unwrap();
        assert_eq!(
            sim.simulator.request_counts(USERNAME).authenticate,
            2,
            "one wrong password in five runs, then the right one"
        );
        // Root: where the service will look, made before its first start; a user: their own.
        let kept = match who {
            Who::Root => machine.path().join("dexcom_exporter"),
            Who::Nobody => machine.path().join("home/.local/state/dexcom_exporter"),
        };
        assert!(kept.is_dir(), "{}", kept.display());
        sim.stop().await;
    }
}

#[test]
fn a_user_who_may_not_read_the_services_directory_is_told_not_given_a_gate_of_their_own() {
    if !root() {
        return;
    }
    // As systemd lays out a DynamicUser= state directory: a link into a root-only directory.
    let machine = ScratchDir::new();
    let private = machine.path().join("private");
    std::fs::create_dir_all(private.join("dexcom_exporter")).unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "private/dexcom_exporter",
        machine.path().join("dexcom_exporter"),
    )
    .unwrap();
    let (code, text) = check_typed(
        Who::Nobody,
        machine.path(),
        "http://127.0.0.1:9/",
        "kid",
        "pw",
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("/var/lib/dexcom_exporter") && text.contains("Permission denied"),
        "{text}"
    );
    assert!(!machine.path().join("home/.local/state").exists());
}

#[test]
fn with_nowhere_to_keep_the_gate_a_command_refuses_and_none_is_said() {
    if !root() {
        return;
    }
    // A user with no home on a machine without the package's directory.
    let machine = ScratchDir::new();
    let (code, _, stderr) = run(&mut typed_by(
        Who::Nobody,
        machine.path(),
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
    let machine = ScratchDir::new();
    let (base, machine_path) = (sim.base_url(), machine.path().to_owned());
    let spellings = [
        format!(" {} ", USERNAME.to_uppercase()),
        USERNAME.to_owned(),
        USERNAME.replace("publisher", "Publisher"),
    ];
    let other_host = base.replace("127.0.0.1", "localhost");
    tokio::task::spawn_blocking(move || {
        for (i, name) in spellings.iter().enumerate() {
            let base = if i == 2 { &other_host } else { &base };
            let (code, text) = check_typed(Who::Root, &machine_path, base, name, "wrong");
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
    let machine = ScratchDir::new();
    let (base, machine_path) = (sim.base_url(), machine.path().to_owned());
    tokio::task::spawn_blocking(move || {
        for guess in 1..=6 {
            let (code, text) = check_typed(
                Who::Root,
                &machine_path,
                &base,
                USERNAME,
                &format!("guess {guess}"),
            );
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
        let (code, text) = check_typed(Who::Root, &machine_path, &base, USERNAME, PASSWORD);
        assert_eq!(code, Some(1), "{text}");
        // A person resets it, and is told what that risks.
        let (code, stdout, stderr) = run(&mut typed_by(
            Who::Root,
            &machine_path,
            &[
                "check",
                "--reset-gate",
                "--dexcom.username",
                USERNAME,
                "--dexcom.base-url",
                &base,
            ],
            &[("DEXCOM_PASSWORD", PASSWORD)],
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_and_an_email_of_one_account_in_one_file_the_second_sends_nothing() {
    if !root() {
        return;
    }
    let mut spec = scenario(Duration::from_secs(300));
    spec.accounts[0].aliases = vec!["pub".to_owned()];
    let sim = start(spec).await;
    let machine = ScratchDir::new();
    let dir = ScratchDir::new();
    let file = dir.path().join("accounts.yml");
    std::fs::write(
        &file,
        format!(
            "accounts:\n  - name: a\n    username: {USERNAME}\n    password_file: a.pw\n    base_url: {base}\n  - name: b\n    username: pub\n    password_file: b.pw\n    base_url: {base}\n",
            base = sim.base_url(),
        ),
    )
    .unwrap();
    let passwords = |password: &str| {
        for name in ["a.pw", "b.pw"] {
            let path = dir.path().join(name);
            std::fs::write(&path, password).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
    };
    let check = |machine: &Path| {
        let (_, stdout, stderr) = run(&mut typed_by(
            Who::Root,
            machine,
            &["check", "--config.file", file.to_str().unwrap()],
            &[],
            None,
        ));
        format!("{stdout}{stderr}")
    };
    // Both log in once: Share resolves both names to one account ID; the second is told.
    passwords(PASSWORD);
    let text = check(machine.path());
    assert!(text.contains("same Dexcom account as \"a\""), "{text}");
    // Then a wrong password in both files, four runs: the second entry sends nothing, and the
    // first one wrong password (the gate then holds it), never a lockout.
    passwords("wrong");
    for run in 0..4 {
        let text = check(machine.path());
        assert!(!text.to_lowercase().contains("locked"), "run {run}: {text}");
    }
    assert_eq!(
        sim.simulator.request_counts(USERNAME).authenticate,
        2 + 1,
        "both names once, then one wrong password"
    );
    sim.stop().await;
}

/// `check` with a gate of its own (`--storage.path=none` or elsewhere) beside the running service
/// sends nothing (only its gate counts); one who cannot look in is warned it cannot tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_a_gate_of_its_own_beside_the_running_service_sends_nothing() {
    if !root() {
        return;
    }
    let sim = start(scenario(Duration::from_secs(300))).await;
    let machine = ScratchDir::new();
    let service_dir = machine.path().join("dexcom_exporter");
    std::fs::create_dir_all(&service_dir).unwrap();
    std::fs::set_permissions(&service_dir, PermissionsExt::from_mode(0o700)).unwrap();
    let lock = std::fs::File::create(service_dir.join(".lock")).unwrap();
    lock.try_lock().unwrap();
    std::fs::write(service_dir.join(".lock"), "dexcom_exporter, pid 1").unwrap();
    let base = sim.base_url();
    let check = |who: Who, storage: &str| {
        let args = ["check", storage, "--dexcom.username", USERNAME];
        let args = [&args[..], &["--dexcom.base-url", &base]].concat();
        run(&mut typed_by(
            who,
            machine.path(),
            &args,
            &[("DEXCOM_PASSWORD", PASSWORD)],
            None,
        ))
    };
    for storage in ["--storage.path=none", "--storage.path=/tmp"] {
        let (code, _, stderr) = check(Who::Root, storage);
        assert_eq!(code, Some(3), "{stderr}");
        assert!(stderr.contains("the exporter service is running (dexcom_exporter, pid 1"));
    }
    assert_eq!(sim.simulator.request_counts(USERNAME).authenticate, 0);
    let (_, _, stderr) = check(Who::Nobody, "--storage.path=none");
    assert!(
        stderr.contains("cannot tell whether the exporter service is running"),
        "{stderr}"
    );
    drop(lock); // The service stopped: the throwaway run goes.
    let (code, stdout, _) = check(Who::Root, "--storage.path=none");
    assert_eq!(code, Some(0), "{stdout}");
    sim.stop().await;
}
