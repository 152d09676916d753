//! The `dexcom_exporter` binary as users run it: configuration errors, `--help`, secrets kept
//! out of help, logs and metrics, SIGTERM, and `promtool check metrics` on live output.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{PASSWORD, USERNAME, get_until, in_ci, sample, scenario, start};

fn exporter() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dexcom_exporter"));
    // Keep the developer's own environment out of the tests.
    for var in [
        "DEXCOM_USERNAME",
        "DEXCOM_ACCOUNT_ID",
        "DEXCOM_PASSWORD",
        "DEXCOM_PASSWORD_FILE",
        "DEXCOM_REGION",
        "DEXCOM_BASE_URL",
        "CREDENTIALS_DIRECTORY",
        "DEXCOM_EXPORTER_CONFIG_FILE",
        "DEXCOM_EXPORTER_DEMO",
    ] {
        command.env_remove(var);
    }
    crate::common::isolate_state(&mut command);
    command
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The binary, started with its log captured, up to its "listening on" line.
struct Started {
    child: Child,
    stderr: BufReader<std::process::ChildStderr>,
    log: String,
    addr: String,
}

fn start_logged(command: &mut Command) -> Started {
    let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let log = wait_for_stderr(&mut stderr, "listening on http://");
    let addr = crate::common::listening_address(&log).unwrap();
    Started {
        child,
        stderr,
        log,
        addr,
    }
}

/// Waits for a line containing `needle` on the child's stderr; returns everything read.
fn wait_for_stderr(reader: &mut BufReader<std::process::ChildStderr>, needle: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("stderr closed before {needle:?}:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains(needle) {
            return seen;
        }
    }
}

#[test]
fn configuration_errors_exit_2_with_one_line() {
    let dir = std::env::temp_dir().join(format!("cli-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dup = dir.join("dup.yml");
    let password = dir.join("pw");
    std::fs::write(&password, "secret\n").unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(
        &dup,
        format!(
            "accounts:\n  - username: a\n    password_file: {pw}\n  - username: a\n    password_file: {pw}\n",
            pw = password.display()
        ),
    )
    .unwrap();
    let dup = dup.to_str().unwrap();
    let same_login = dir.join("same-login.yml");
    std::fs::write(
        &same_login,
        format!(
            "accounts:\n  - name: kid\n    username: Kid@Example.com\n    password_file: {pw}\n  - name: kid-again\n    username: kid@example.com\n    password_file: {pw}\n",
            pw = password.display()
        ),
    )
    .unwrap();
    let same_login = same_login.to_str().unwrap();
    let mmol = dir.join("mmol.yml");
    std::fs::write(
        &mmol,
        format!(
            "accounts:\n  - username: kid\n    password_file: {pw}\n    thresholds:\n      low: 4.0\n",
            pw = password.display()
        ),
    )
    .unwrap();
    let mmol = mmol.to_str().unwrap();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec![], vec![], "no Dexcom account configured"),
        (vec!["--dexcom.username", "a"], vec![], "no password"),
        (
            vec!["--dexcom.username", "a", "--dexcom.region", "eu"],
            vec![("DEXCOM_PASSWORD", "x")],
            "unknown Dexcom region",
        ),
        (
            vec![
                "--dexcom.username",
                "a",
                "--dexcom.account-id",
                "99999999-9999-9999-9999-999999999999",
            ],
            vec![("DEXCOM_PASSWORD", "x")],
            "not both",
        ),
        (
            vec![
                "--dexcom.username",
                "a",
                "--dexcom.password-file",
                "/nonexistent/pw",
            ],
            vec![],
            "cannot read the password file",
        ),
        (
            vec!["--config.file", "/nonexistent/config.yml"],
            vec![],
            "cannot read --config.file",
        ),
        (vec!["--config.file", dup], vec![], "two accounts are named"),
        (
            vec!["--config.file", mmol],
            vec![],
            "thresholds.low is 4, which looks like mmol/L; thresholds are in mg/dL: write 72",
        ),
        (
            vec!["--config.file", same_login],
            vec![],
            "accounts \"kid\" and \"kid-again\" are the same Dexcom login (username kid@example.com",
        ),
        (
            vec!["--web.listen-address", "localhost"],
            vec![],
            "--web.listen-address",
        ),
        (
            vec!["--dexcom.reading-interval", "soon"],
            vec![],
            "--dexcom.reading-interval",
        ),
        (
            vec!["--dexcom.password", "hunter2"],
            vec![],
            "unexpected argument",
        ),
    ];
    for (args, env, expected) in cases {
        let mut command = exporter();
        command.args(&args);
        for (k, v) in &env {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "one line for {args:?}: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} should mention {expected:?}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

/// One process per state directory: a second exporter, and the backfill subcommand, refuse to
/// start beside a running one (exit 3, naming its pid), which serves its history instead.
#[tokio::test]
async fn a_second_process_on_the_same_storage_path_is_refused_and_told_where_the_history_is() {
    let dir = std::env::temp_dir().join(format!("cli-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let storage = dir.join("state");
    // Share's address refuses connections: no password leaves, the exporter runs all the same.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{refused}/ShareWebServices/Services/");
    let args = |command: &mut Command| {
        command
            .args(["--dexcom.username", "kid", "--dexcom.base-url", &base])
            .args(["--web.listen-address", "127.0.0.1:0"])
            .arg("--storage.path")
            .arg(&storage)
            .env("DEXCOM_PASSWORD", "pw");
    };
    let mut first = exporter();
    args(&mut first);
    let mut first = start_logged(&mut first);
    for subcommand in [None, Some("backfill")] {
        let mut second = exporter();
        if let Some(sub) = subcommand {
            second.arg(sub);
        }
        args(&mut second);
        let output = second.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{subcommand:?}: {stderr}");
        assert!(
            stderr.contains("is in use by dexcom_exporter")
                && stderr.contains(&format!("pid {}", first.child.id()))
                && stderr.contains("/api/v1/history"),
            "{subcommand:?}: {stderr}"
        );
    }
    let (status, body) = crate::common::get(&format!("http://{}/api/v1/history", first.addr)).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("# TYPE dexcom_reading_glucose_mg_per_dl gauge") && body.ends_with("# EOF\n"),
        "{body}"
    );
    sigterm(&first.child);
    assert!(first.child.wait().unwrap().success());
    let _ = first.stderr.read_to_string(&mut first.log);
    // Once it has stopped, the directory is free again.
    let mut after = exporter();
    after.arg("backfill");
    args(&mut after);
    let output = after.output().unwrap();
    assert_ne!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn help_explains_every_flag_with_default_and_env_and_no_secret() {
    let output = exporter()
        .arg("--help")
        .env("DEXCOM_PASSWORD", "hunter2-in-env")
        .env("DEXCOM_PASSWORD_FILE", "/run/secret-path")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, env) in [
        ("--web.listen-address", "DEXCOM_EXPORTER_WEB_LISTEN_ADDRESS"),
        ("--web.telemetry-path", "DEXCOM_EXPORTER_WEB_TELEMETRY_PATH"),
        ("--web.config.file", "DEXCOM_EXPORTER_WEB_CONFIG_FILE"),
        ("--log.level", "DEXCOM_EXPORTER_LOG_LEVEL"),
        ("--log.format", "DEXCOM_EXPORTER_LOG_FORMAT"),
        ("--dexcom.username", "DEXCOM_USERNAME"),
        ("--dexcom.account-id", "DEXCOM_ACCOUNT_ID"),
        ("--dexcom.region", "DEXCOM_REGION"),
        ("--dexcom.base-url", "DEXCOM_BASE_URL"),
        ("--dexcom.password-file", "DEXCOM_PASSWORD_FILE"),
        ("--dexcom.reading-interval", "DEXCOM_READING_INTERVAL"),
        ("--glucose.max-age", "DEXCOM_GLUCOSE_MAX_AGE"),
        ("--config.file", "DEXCOM_EXPORTER_CONFIG_FILE"),
        ("--demo", "DEXCOM_EXPORTER_DEMO"),
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
        assert!(
            help.contains(&format!("[env: {env}")),
            "--help lacks the variable {env}"
        );
    }
    for default in ["127.0.0.1:18018", "/metrics", "5m", "20m"] {
        assert!(
            help.contains(&format!("[default: {default}]")),
            "--help lacks default {default}"
        );
    }
    assert!(
        help.contains("DEXCOM_PASSWORD") && help.contains("dexcom-password"),
        "help says where the password comes from"
    );
    assert!(
        !help.contains("hunter2-in-env") && !help.contains("/run/secret-path"),
        "{help}"
    );
}

#[tokio::test]
async fn runs_against_share_logs_no_secrets_passes_promtool_and_exits_0_on_sigterm() {
    let sim = start(scenario(Duration::from_millis(500))).await;
    let started = start_logged(
        exporter()
            .args([
                "--web.listen-address",
                "127.0.0.1:0",
                "--log.level",
                "debug",
                "--dexcom.reading-interval",
                "500ms",
            ])
            .args([
                "--dexcom.username",
                USERNAME,
                "--dexcom.base-url",
                &sim.base_url(),
            ])
            .env("DEXCOM_PASSWORD", PASSWORD),
    );
    let Started {
        mut child,
        mut stderr,
        log: started,
        addr,
    } = started;
    // Let it log in and read, then expire the session once and wait for the re-login and a
    // reading after it.
    let url = format!("http://{addr}/metrics");
    let account = format!("account=\"{USERNAME}\"");
    let first = get_until(&url, Duration::from_secs(10), |s| {
        sample(s, "dexcom_glucose_reading_timestamp_seconds", &account)
    })
    .await;
    sim.simulator.expire_sessions();
    let metrics = get_until(&url, Duration::from_secs(10), |s| {
        let relogged = sample(s, "dexcom_logins_total", &account) >= Some(2.0);
        let newer = sample(s, "dexcom_glucose_reading_timestamp_seconds", &account) > Some(first);
        (relogged && newer).then(|| s.to_owned())
    })
    .await;

    check_with_promtool(&metrics);

    sigterm(&child);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
    let logs = started + &rest;
    assert!(logs.contains("new reading"), "debug logging is on: {logs}");
    assert!(logs.contains("SIGTERM received"), "{logs}");
    for text in [&logs, &metrics] {
        assert!(!text.contains(PASSWORD), "the password leaked");
        assert!(
            !contains_uuid(text),
            "a session or account ID leaked:\n{text}"
        );
    }
    sim.stop().await;
}

fn contains_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(36).any(|w| {
        w.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
    })
}

fn check_with_promtool(metrics: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            assert!(!in_ci(), "promtool is required in CI: {error}");
            eprintln!("SKIPPED outside CI: promtool not installed ({error})");
            return;
        }
    };
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), metrics.as_bytes()).unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn demo_mode_serves_three_accounts_at_the_chosen_cadence() {
    let started = start_logged(exporter().args([
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--dexcom.reading-interval",
        "1s",
    ]));
    // The log pipe stays open until the end, so the exporter never writes into a closed pipe.
    let Started {
        mut child,
        stderr: _stderr,
        log: _,
        addr,
    } = started;
    let timestamp = |scrape: &str, account: &str| {
        sample(
            scrape,
            "dexcom_glucose_reading_timestamp_seconds",
            &format!("account=\"{account}\""),
        )
    };
    let url = format!("http://{addr}/metrics");
    let first = get_until(&url, Duration::from_secs(10), |scrape| {
        ["alex", "sam", "robin"]
            .iter()
            .all(|a| {
                sample(
                    scrape,
                    "dexcom_glucose_mg_per_dl",
                    &format!("account=\"{a}\""),
                )
                .is_some()
            })
            .then(|| timestamp(scrape, "alex"))
            .flatten()
    })
    .await;
    // Readings arrive every second: two more within a few seconds.
    get_until(&url, Duration::from_secs(10), |scrape| {
        timestamp(scrape, "alex").filter(|later| later - first >= 1.9)
    })
    .await;
    sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sighup_rereads_the_web_config_and_never_ends_the_process() {
    let dir = crate::harness::ScratchDir::new();
    let web = dir.path().join("web.yml");
    let headers =
        |value: &str| format!("http_server_config:\n  headers:\n    X-Dexcom-Test: {value}\n");
    std::fs::write(&web, headers("one")).unwrap();
    let Started {
        mut child,
        mut stderr,
        addr,
        ..
    } = start_logged(exporter().args([
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--web.config.file",
        web.to_str().unwrap(),
    ]));
    let header = || async {
        let response = reqwest::get(format!("http://{addr}/-/healthy"))
            .await
            .unwrap();
        response.headers()["x-dexcom-test"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header().await, "one");
    // Same size and (to the second) the same modification time: only SIGHUP makes it seen
    // at once.
    std::fs::write(&web, headers("two")).unwrap();
    signal(&child, "HUP");
    wait_for_stderr(&mut stderr, "SIGHUP: re-reading --web.config.file");
    assert_eq!(header().await, "two");
    signal(&child, "HUP");
    wait_for_stderr(&mut stderr, "SIGHUP: re-reading --web.config.file");
    assert_eq!(header().await, "two", "still serving after two SIGHUPs");
    assert!(child.try_wait().unwrap().is_none(), "still running");
    sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[tokio::test]
async fn sigterm_ends_the_process_promptly_while_share_hangs() {
    let sim = start(scenario(Duration::from_secs(300))).await;
    // Share takes two minutes to answer the login: the request is in flight at SIGTERM.
    sim.simulator.inject(
        dexcom_exporter::simulator::Fault::Slow(Duration::from_secs(120)),
        Some(dexcom_exporter::share::Endpoint::Authenticate),
        1,
    );
    let Started {
        mut child,
        stderr: _stderr,
        ..
    } = start_logged(
        exporter()
            .args([
                "--web.listen-address",
                "127.0.0.1:0",
                "--dexcom.request-timeout",
                "2m",
                "--dexcom.username",
                USERNAME,
                "--dexcom.base-url",
                &sim.base_url(),
            ])
            .env("DEXCOM_PASSWORD", PASSWORD),
    );
    crate::harness::wait_until(Duration::from_secs(10), "the login reaches Share", || {
        sim.simulator.request_counts(USERNAME).authenticate == 1
    })
    .await;
    let asked = std::time::Instant::now();
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        took < Duration::from_secs(10),
        "shutdown waited {took:?} for a request in flight"
    );
    sim.stop().await;
}

#[test]
fn a_port_in_use_is_reported_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = exporter()
        .args(["--demo", "--web.listen-address", &addr])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("cannot listen").count(),
        1,
        "said once: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes into a pipe: {stderr}"
    );
}
