//! The paths by which the exporter could lock a Dexcom account or show a stale or wrong value
//! as current, each driven through the real client (or the whole exporter) against the
//! simulator: the login gate, its state across restarts, misbehaving Share answers.

use std::sync::Arc;
use std::time::Duration;

use dexcom_exporter::clock::{Clock, ManualClock};
use dexcom_exporter::share::STRICT_WAIT;
use dexcom_exporter::share::{Endpoint, ShareClient, ShareError};
use dexcom_exporter::simulator::Fault;

use crate::common::{PASSWORD, TestEnv, USERNAME, client, sample, scenario, start, start_at};
use crate::harness::{AppOptions, ScratchDir, TestApp, wait_until};

const ACCOUNT: &str = "account=\"publisher@example.com\"";
const FIVE_MINUTES: Duration = Duration::from_secs(300);
const SECOND: Duration = Duration::from_secs(1);

/// A client on a stopped clock with a short request timeout, whose gate the test drives.
fn gated_client(base_url: &str, clock: &Arc<ManualClock>) -> ShareClient {
    let mut settings = crate::common::settings(
        base_url,
        dexcom_exporter::share::Login::Username(USERNAME.to_owned()),
        "a-wrong-password",
    );
    settings.request_timeout = Duration::from_millis(300);
    ShareClient::new(settings)
        .unwrap()
        .with_gate(FIVE_MINUTES, clock.clone())
}

/// Share unreachable (a boot before the network is up, a refused connection): the password
/// never leaves, so nothing counts and the login is tried again as soon as the poller's
/// backoff allows, not 5 or 29 minutes later.
#[tokio::test]
async fn a_login_that_cannot_connect_costs_no_wait() {
    let addr = unused_loopback_address();
    let base_url = format!("http://{addr}/ShareWebServices/Services/");
    let clock = ManualClock::now_system();
    let settings = crate::common::settings(
        &base_url,
        dexcom_exporter::share::Login::Username(USERNAME.to_owned()),
        PASSWORD,
    );
    let mut client = ShareClient::new(settings)
        .unwrap()
        .with_gate(FIVE_MINUTES, clock.clone());
    for attempt in 1..=3 {
        let error = client.latest_readings(10, 1).await.unwrap_err();
        assert!(
            matches!(error, ShareError::Connection { .. }),
            "attempt {attempt}: {error}"
        );
        // The cause a person can act on, not reqwest's "error sending request".
        assert!(
            error.to_string().contains("Connection refused"),
            "attempt {attempt}: {error}"
        );
        assert_eq!(
            client.login_not_before(),
            None,
            "attempt {attempt}: a login that sent nothing waits for nothing"
        );
        clock.advance(SECOND);
    }
    let sim = start_on_addr(addr, clock.clone()).await;
    let readings = client.latest_readings(10, 1).await.unwrap();
    assert!(!readings.is_empty());
    assert_eq!(sim.simulator.request_counts(USERNAME).authenticate, 1);
    sim.stop().await;
}

/// The same through the whole exporter at the real 5-minute cadence: started while nothing
/// listens at Share's address (a boot before the network), it shows a value within seconds of
/// Share becoming reachable, not a reading interval later.
#[tokio::test]
async fn an_exporter_started_before_share_is_reachable_reads_as_soon_as_it_is() {
    let addr = unused_loopback_address();
    let base_url = format!("http://{addr}/ShareWebServices/Services/");
    let exporter = crate::common::spawn_exporter(
        &crate::common::exporter_args(&base_url, "5m"),
        &crate::common::password_env(),
    )
    .await;
    let refused = format!("{ACCOUNT},reason=\"connection\"");
    let scrape = crate::common::scrape_until(&exporter, Duration::from_secs(10), |scrape| {
        sample(scrape, "dexcom_poll_errors_total", &refused)
            .filter(|errors| *errors >= 1.0)
            .map(|_| scrape.to_owned())
    })
    .await;
    // No password left the machine: no login is counted.
    assert_eq!(sample(&scrape, "dexcom_logins_total", ACCOUNT), Some(0.0));
    let sim = start_on_addr(addr, Arc::new(dexcom_exporter::clock::SystemClock)).await;
    let glucose = crate::common::scrape_until(&exporter, Duration::from_secs(30), |scrape| {
        sample(scrape, "dexcom_glucose_mg_per_dl", ACCOUNT)
    })
    .await;
    assert!(glucose > 0.0);
    assert_eq!(sim.simulator.request_counts(USERNAME).authenticate, 1);
    exporter.stop().await;
    sim.stop().await;
}

/// A loopback address nothing listens on: bound by the OS, then released.
fn unused_loopback_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A simulator on `addr`, a port the test kept free (nothing listened there before).
async fn start_on_addr(
    addr: std::net::SocketAddr,
    clock: Arc<dyn Clock>,
) -> dexcom_exporter::simulator::RunningSimulator {
    dexcom_exporter::simulator::Simulator::with_clock(scenario(FIVE_MINUTES), clock)
        .expect("valid scenario")
        .start(addr)
        .await
        .expect("the port is still free")
}

#[tokio::test]
async fn any_failed_login_of_an_unconfirmed_password_holds_the_next_for_29_minutes() {
    let firewall_page = |status| Fault::Raw {
        status,
        content_type: "text/html",
        body: "<html><body>Access denied</body></html>".into(),
    };
    let faults = [
        ("HTML 502", Fault::Html500),
        // Cloudflare's own answers: the password left, so each counts like any other.
        ("Cloudflare challenge", Fault::EdgeChallenge),
        ("Cloudflare 1015", Fault::EdgeRateLimited { status: 429 }),
        (
            "Cloudflare 1015 as 403",
            Fault::EdgeRateLimited { status: 403 },
        ),
        ("Cloudflare 522", Fault::EdgeOriginError { status: 522 }),
        ("401 from a web firewall", firewall_page(401)),
        ("403 from a web firewall", firewall_page(403)),
        (
            "unknown code",
            Fault::ShareFault {
                code: "SomethingNew".into(),
                message: "?".into(),
            },
        ),
        ("timeout after sending", Fault::Slow(Duration::from_secs(2))),
        ("unparsable body", Fault::EmptyBody200),
        (
            "wrong password",
            Fault::ShareFault {
                code: "AccountPasswordInvalid".into(),
                message: "x".into(),
            },
        ),
    ];
    for (what, fault) in faults {
        let sim = start(scenario(FIVE_MINUTES)).await;
        sim.simulator.inject(fault, Some(Endpoint::Authenticate), 1);
        let clock = ManualClock::now_system();
        let mut client = gated_client(&sim.base_url(), &clock);
        let first = client.latest_readings(10, 1).await.unwrap_err();
        assert!(
            !matches!(first, ShareError::LoginDeferred { .. }),
            "{what}: {first}"
        );
        let at = client.login_not_before().expect("a wait");
        let wait = at.duration_since(clock.now()).unwrap();
        assert!(wait >= STRICT_WAIT, "{what}: next login in {wait:?}");
        clock.advance(wait - SECOND);
        let held = client.latest_readings(10, 1).await.unwrap_err();
        assert!(
            matches!(held, ShareError::LoginDeferred { .. }),
            "{what}: {held}"
        );
        assert_eq!(
            sim.simulator.request_counts(USERNAME).authenticate,
            1,
            "{what}"
        );
        clock.advance(SECOND);
        let _ = client.latest_readings(10, 1).await;
        assert_eq!(
            sim.simulator.request_counts(USERNAME).authenticate,
            2,
            "{what}: tried again once the wait is over"
        );
        sim.stop().await;
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_names_its_target() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let elsewhere = start(scenario(FIVE_MINUTES)).await;
    let target = format!(
        "{}General/AuthenticatePublisherAccount",
        elsewhere.base_url()
    );
    sim.simulator.inject(
        Fault::Redirect { location: target },
        Some(Endpoint::Authenticate),
        1,
    );
    let mut client = client(&sim, USERNAME, PASSWORD);
    let error = client.latest_readings(10, 1).await.unwrap_err().to_string();
    assert!(
        error.contains("redirect") && error.contains("127.0.0.1"),
        "{error}"
    );
    assert_eq!(
        elsewhere.simulator.request_counts(USERNAME).authenticate,
        0,
        "the password never reached the redirect's target"
    );
    sim.stop().await;
    elsewhere.stop().await;
}

#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let mut client = client(&sim, USERNAME, PASSWORD);
    client.latest_readings(10, 1).await.unwrap();
    let row = r#"{"WT":"Date(1)","Value":100,"Trend":"Flat"},"#;
    let body = format!("[{}{}]", row.repeat(40_000), &row[..row.len() - 1]);
    assert!(body.len() > 1024 * 1024);
    sim.simulator
        .inject(Fault::json(body), Some(Endpoint::ReadGlucose), 1);
    let error = client.latest_readings(10, 1).await.unwrap_err().to_string();
    assert!(error.contains("larger than 1024 KiB"), "{error}");
    sim.stop().await;
}

/// A readings answer for the standard account built from `(ms from now, value)` rows, in the
/// order given.
fn rows(now_ms: i64, rows: &[(i64, &str)]) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|(offset, value)| {
            format!(
                r#"{{"WT":"Date({})","ST":"Date({})","DT":"Date({}+0000)","Value":{value},"Trend":"Flat"}}"#,
                now_ms + offset,
                now_ms + offset,
                now_ms + offset
            )
        })
        .collect();
    format!("[{}]", rows.join(","))
}

/// The first scrape that shows a glucose value.
async fn first_scrape_with_a_value(app: &TestApp) -> String {
    app.scrape_until(10 * SECOND, |s| {
        sample(s, "dexcom_glucose_mg_per_dl", ACCOUNT).map(|_| s.to_owned())
    })
    .await
}

/// The exporter on a stopped clock, with every read answered by `body(now)`.
async fn exporter_served(body: impl Fn(i64) -> String) -> (TestApp, Arc<ManualClock>) {
    let clock = ManualClock::now_system();
    let now = clock.now_ms();
    let mut options = AppOptions::new(Duration::from_millis(500), &[]);
    options.clock = clock.clone();
    options.faults = vec![(Fault::json(body(now)), Some(Endpoint::ReadGlucose), 1000)];
    (TestApp::start_with(options).await, clock)
}

#[tokio::test]
async fn a_future_dated_reading_cannot_freeze_the_value() {
    const MINUTE: i64 = 60_000;
    let (app, clock) = exporter_served(|now| {
        rows(
            now,
            &[(60 * MINUTE, "250"), (-MINUTE, "91"), (-6 * MINUTE, "95")],
        )
    })
    .await;
    let scrape = first_scrape_with_a_value(&app).await;
    assert_eq!(
        sample(&scrape, "dexcom_glucose_mg_per_dl", ACCOUNT),
        Some(91.0)
    );
    let age = sample(&scrape, "dexcom_glucose_reading_age_seconds", ACCOUNT).unwrap();
    assert!((59.0..=61.0).contains(&age), "{age}");
    // Several polls see the same future-dated row; it is one reading, counted once.
    let scrape = app
        .scrape_until(10 * SECOND, |s| {
            clock.advance(Duration::from_millis(200));
            (sample(s, "dexcom_polls_total", ACCOUNT) >= Some(4.0)).then(|| s.to_owned())
        })
        .await;
    assert_eq!(
        sample(
            &scrape,
            "dexcom_readings_rejected_total",
            &format!("{ACCOUNT},reason=\"future\"")
        ),
        Some(1.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn oldest_first_bad_rows_and_extreme_dates_publish_the_newest_good_reading() {
    const MINUTE: i64 = 60_000;
    let (app, _clock) = exporter_served(|now| {
        // Oldest first, a value out of range, a malformed row, a date at the end of i64.
        let good = rows(now, &[(-11 * MINUTE, "80"), (-6 * MINUTE, "120")]);
        let good = good.trim_start_matches('[').trim_end_matches(']');
        format!(
            r#"[{good},{{"WT":"Date({})","Value":0,"Trend":"Flat"}},{{"Value":"high"}},{{"WT":"Date(9223372036854775807)","Value":100,"Trend":"Flat"}},"text"]"#,
            now - MINUTE
        )
    })
    .await;
    let scrape = first_scrape_with_a_value(&app).await;
    assert_eq!(
        sample(&scrape, "dexcom_glucose_mg_per_dl", ACCOUNT),
        Some(120.0)
    );
    let rejected = |reason: &str| {
        sample(
            &scrape,
            "dexcom_readings_rejected_total",
            &format!("{ACCOUNT},reason=\"{reason}\""),
        )
        .unwrap_or(0.0)
    };
    assert!(rejected("out_of_range") >= 1.0);
    assert!(rejected("malformed") >= 2.0);
    assert!(rejected("future") >= 1.0);
    assert_eq!(sample(&scrape, "dexcom_up", ACCOUNT), Some(1.0));
    app.stop().await;
}

#[tokio::test]
async fn a_restart_loop_with_a_wrong_password_sends_it_once_per_29_minutes_and_a_fixed_one_at_once()
{
    let state = ScratchDir::new();
    let clock = ManualClock::now_system();
    // One simulator for all the runs, so its request counts span the restarts.
    let sim = start_at(scenario(Duration::from_millis(500)), clock.clone()).await;
    let base = sim.base_url();
    let run = |password: &'static str| {
        let clock = clock.clone();
        let dir = state.path().to_owned();
        let base = base.clone();
        async move {
            let storage = dir.display().to_string();
            let args = vec![
                "--dexcom.username",
                USERNAME,
                "--dexcom.base-url",
                &base,
                "--dexcom.reading-interval",
                "500ms",
                "--storage.path",
                &storage,
            ];
            crate::common::spawn_exporter_with_clock(
                &args,
                &TestEnv(vec![("DEXCOM_PASSWORD", password.to_owned())]),
                clock,
            )
            .await
        }
    };
    let first = run("wrong").await;
    wait_until(10 * SECOND, "the first login attempt", || {
        sim.simulator.request_counts(USERNAME).authenticate == 1
    })
    .await;
    crate::common::scrape_until(&first, 10 * SECOND, |s| {
        sample(s, "dexcom_login_next_attempt_timestamp_seconds", ACCOUNT).filter(|t| *t > 0.0)
    })
    .await;
    first.stop().await;
    let attempted_at = clock.now();
    // Five quick restarts (as systemd's StartLimitBurst allows), minutes apart.
    for _ in 0..5 {
        clock.advance(Duration::from_secs(60));
        let again = run("wrong").await;
        let next = crate::common::scrape_until(&again, 10 * SECOND, |s| {
            sample(s, "dexcom_login_next_attempt_timestamp_seconds", ACCOUNT).filter(|t| *t > 0.0)
        })
        .await;
        let until = std::time::UNIX_EPOCH + Duration::from_secs_f64(next);
        assert!(
            // The gauge has millisecond precision as a float of seconds.
            until.duration_since(attempted_at).unwrap() + Duration::from_millis(1) >= STRICT_WAIT,
            "the gate's wait survived the restart"
        );
        again.stop().await;
        assert_eq!(sim.simulator.request_counts(USERNAME).authenticate, 1);
    }
    // The user fixes the password: tried at once, not 29 minutes later.
    let fixed = run(PASSWORD).await;
    crate::common::scrape_until(&fixed, 10 * SECOND, |s| {
        sample(s, "dexcom_glucose_mg_per_dl", ACCOUNT)
    })
    .await;
    assert_eq!(sim.simulator.request_counts(USERNAME).authenticate, 2);
    fixed.stop().await;
    sim.stop().await;
}

#[test]
fn a_password_file_other_users_can_read_is_warned_about() {
    let dir = ScratchDir::new();
    let path = dir.path().join("password");
    std::fs::write(&path, "secret\n").unwrap();
    let config_with_mode = |mode: u32| crate::common::password_file_log(&path, mode);
    let open = config_with_mode(0o644);
    assert!(
        open.contains("chmod 600") && !open.contains("secret"),
        "{open}"
    );
    assert!(!config_with_mode(0o600).contains("chmod"));
}

/// An exporter killed while its login is in flight (an OOM kill, a crash loop), three times:
/// the attempt was saved before the password left, so the next runs count it and hold the
/// password back. One wrong password reaches Share, not three.
#[tokio::test]
async fn an_exporter_killed_mid_login_three_times_sends_the_password_once() {
    use std::io::{BufRead, BufReader};
    let state = ScratchDir::new();
    let sim = start(scenario(FIVE_MINUTES)).await;
    // Share answers the login only after a long pause: the process is killed before it does.
    sim.simulator.inject(
        Fault::Slow(Duration::from_secs(120)),
        Some(Endpoint::Authenticate),
        100,
    );
    let base = sim.base_url();
    let storage = state.path().join("state");
    let mut logs = Vec::new();
    for run in 1..=3 {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_dexcom_exporter"))
            .args(["--dexcom.username", USERNAME, "--dexcom.base-url", &base])
            .args(["--web.listen-address", "127.0.0.1:0", "--log.level", "info"])
            .arg("--storage.path")
            .arg(&storage)
            .env("DEXCOM_PASSWORD", "a-wrong-password")
            .env_remove("DEXCOM_EXPORTER_CONFIG_FILE")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = crate::common::KillOnDrop(child);
        let stderr = child.0.stderr.take().unwrap();
        let (lines, seen) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut log = String::new();
        let deadline = std::time::Instant::now() + 10 * SECOND;
        // Run 1 gets as far as sending the password; the later ones say the gate holds it.
        loop {
            if run == 1 && sim.simulator.request_counts(USERNAME).authenticate == 1 {
                break;
            }
            // The simulator runs on this test's runtime: wait without blocking it.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut held = false;
            while let Ok(line) = seen.try_recv() {
                held |= line.contains("login held until");
                log.push_str(&line);
                log.push('\n');
            }
            if run > 1 && held {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {run} did not get there:\n{log}"
            );
        }
        // SIGKILL: no chance to record anything.
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        logs.push(log);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        sim.simulator.request_counts(USERNAME).authenticate,
        1,
        "one password left in three runs"
    );
    for log in &logs[1..] {
        assert!(
            log.contains("WARN")
                && log.contains(
                    "after a login of a password Share never accepted ended without an answer"
                ),
            "{log}"
        );
    }
    sim.stop().await;
}
