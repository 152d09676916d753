//! The `share_simulator` binary: its help documents every knob, scenario files work, and bad
//! input exits 2 with one clear line.

use std::process::Command;

fn simulator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_share_simulator"))
}

#[test]
fn help_documents_every_knob() {
    let output = simulator().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "--scenario",
        "--username",
        "--password",
        "--account-id",
        "--alias",
        "--profile",
        "--utc-offset",
        "--no-follower",
        "--region",
        "--seed",
        "--reading-interval",
        "--upload-delay-min",
        "--upload-delay-max",
        "--retention",
        "--session-ttl",
        "--lockout-after",
        "--lockout-duration",
        "--max-attempts-code",
        "--auth-error-style",
        "--subcode-style",
        "--legacy-format",
        "--fault-html-500",
        "--fault-rate-limit",
        "--retry-after",
        "--fault-slow",
        "--slow-delay",
        "--fault-empty-body",
        "--gap-every",
        "--gap-length",
        "--log.level",
    ] {
        assert!(help.contains(flag), "--help does not document {flag}");
    }
    assert!(help.contains("listening on http://HOST:PORT"));
}

#[test]
fn contradictory_input_exits_2_with_one_line() {
    let cases: [&[&str]; 3] = [
        &[],
        &[
            "--username",
            "a",
            "--password",
            "p",
            "--reading-interval",
            "10s",
            "--upload-delay-max",
            "20s",
        ],
        &["--scenario", "/nonexistent/scenario.yml"],
    ];
    for args in cases {
        let output = simulator()
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("share_simulator: "), "{stderr}");
    }
}

#[tokio::test]
async fn scenario_file_accounts_are_served() {
    use dexcom_exporter::share::{ClientSettings, Login, Region, ShareClient};
    let dir = std::env::temp_dir().join(format!("sim-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scenario.yml");
    std::fs::write(
        &path,
        "reading_interval: 1m\naccounts:\n  - username: one\n    password: p1\n  - username: two\n    password: p2\n    has_follower: false\n",
    )
    .unwrap();
    let mut child = simulator()
        .args(["--listen", "127.0.0.1:0", "--scenario"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("first line")
        .to_owned();
    let read = |user: &str, password: &str| {
        let settings = ClientSettings {
            base_url: format!("{url}/ShareWebServices/Services/").parse().unwrap(),
            application_id: Region::Us.application_id().into(),
            login: Login::Username(user.into()),
            password: password.to_owned().into(),
            connect_timeout: std::time::Duration::from_secs(2),
            request_timeout: std::time::Duration::from_secs(2),
        };
        async move {
            ShareClient::new(settings)
                .unwrap()
                .latest_readings(10, 5)
                .await
        }
    };
    let one = read("one", "p1").await;
    let two = read("two", "p2").await;
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(dir).ok();
    // A 1-minute cadence serves 9 or 10 readings in 10 minutes; maxCount caps them at 5.
    assert_eq!(one.expect("account one reads").len(), 5);
    assert!(
        two.expect("account two reads").is_empty(),
        "no follower, empty list"
    );
}
