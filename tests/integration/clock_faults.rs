//! Issue 22, rows 1–3: ages and waits that no single clock decides. The real exporter, in
//! process, against the simulator, with either one Share answer's `Date` hours off (a proxy in
//! front of the simulator rewrites it) or the host's wall clock an hour or a day off Share's.
//! Time runs 300 times faster than a sensor's: a 1 s reading interval, `--glucose.max-age 4s`.

use std::time::{Duration, Instant};

use dexcom_exporter::clock::{SystemClock, unix_ms};
use dexcom_exporter::share::Endpoint;
use dexcom_exporter::simulator::{AccountSpec, Fault, Scenario};
use dexcom_testkit::clock::{DateProxy, OffClock};

use crate::common::{PASSWORD, TestEnv, get, sample};
use crate::harness::{AppOptions, ScratchDir, TestApp, accounts_file, wait_until};

const SECOND: Duration = Duration::from_secs(1);
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn account(name: &str) -> String {
    format!("account=\"{name}\"")
}

fn status(scrape: &str, name: &str, status: &str) -> Option<f64> {
    sample(
        scrape,
        "dexcom_account_status",
        &format!("account=\"{name}\",status=\"{status}\""),
    )
}

/// Every `dexcom_share_clock_skew_seconds` series of a scrape.
fn skews(scrape: &str) -> Vec<f64> {
    scrape
        .lines()
        .filter(|l| l.starts_with("dexcom_share_clock_skew_seconds{"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
        .collect()
}

/// Row 1: one answer with a `Date` two hours off, either way, while one account is current
/// and the other's sensor has stopped. Today's code moved one process-wide offset by it: the
/// stale account's reading was shown as current (a negative age), the current one's age was
/// hours off, and the skew gauge jumped. Here nothing a user sees moves.
async fn one_odd_answer(by_ms: i64) {
    let sim = crate::common::start(Scenario {
        reading_interval: SECOND,
        accounts: vec![
            AccountSpec::new("kid", PASSWORD),
            AccountSpec::new("gap", PASSWORD),
        ],
        ..Scenario::default()
    })
    .await;
    let proxy = DateProxy::start(&sim.base_url());
    let dir = ScratchDir::new();
    let config = accounts_file(
        dir.path(),
        &proxy.base_url(),
        &[("kid", PASSWORD), ("gap", PASSWORD)],
    );
    let exporter = crate::common::spawn_exporter(
        &[
            "--config.file",
            config.to_str().unwrap(),
            "--dexcom.reading-interval",
            "1s",
            "--glucose.max-age",
            "4s",
        ],
        &TestEnv(vec![]),
    )
    .await;
    let url = exporter.url("/metrics");
    // Both accounts show a value; then the second one's sensor stops until it is stale.
    crate::common::get_until(&url, 15 * SECOND, |s| {
        (status(s, "kid", "ok") == Some(1.0) && status(s, "gap", "ok") == Some(1.0)).then_some(())
    })
    .await;
    sim.simulator.start_gap("gap");
    crate::common::get_until(&url, 15 * SECOND, |s| {
        (status(s, "gap", "stale") == Some(1.0)).then_some(())
    })
    .await;
    proxy.shift_next(1, by_ms);
    let deadline = Instant::now() + 3 * SECOND;
    let mut checked_after = 0;
    while Instant::now() < deadline {
        let (_, scrape) = get(&url).await;
        let now_s = unix_ms(std::time::SystemTime::now()) as f64 / 1000.0;
        for name in ["kid", "gap"] {
            let labels = account(name);
            let taken = sample(&scrape, "dexcom_glucose_reading_timestamp_seconds", &labels)
                .expect("a reading");
            let age = sample(&scrape, "dexcom_glucose_reading_age_seconds", &labels).unwrap();
            let truth = now_s - taken;
            assert!(
                (age - truth).abs() <= 2.0,
                "{name}: age {age} s, truly {truth:.1} s (a Date {by_ms} ms off)\n{scrape}"
            );
        }
        assert_eq!(status(&scrape, "kid", "ok"), Some(1.0), "{scrape}");
        assert!(sample(&scrape, "dexcom_glucose_mg_per_dl", &account("kid")).is_some());
        assert_eq!(status(&scrape, "gap", "stale"), Some(1.0), "{scrape}");
        assert_eq!(
            sample(&scrape, "dexcom_glucose_mg_per_dl", &account("gap")),
            None,
            "a stale value shown"
        );
        let skew = skews(&scrape);
        assert!(
            !skew.is_empty() && skew.iter().all(|s| s.abs() < 0.01),
            "the skew moved: {skew:?}"
        );
        if proxy.shifted() == 1 {
            checked_after += 1;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert_eq!(proxy.shifted(), 1, "the odd answer was sent");
    assert!(checked_after >= 20, "{checked_after} scrapes after it");
    // The odd answer's readings were not rejected as dated in the future either.
    let (_, scrape) = get(&url).await;
    assert_eq!(
        sample(
            &scrape,
            "dexcom_readings_rejected_total",
            "account=\"kid\",reason=\"future\""
        ),
        Some(0.0)
    );
    exporter.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn one_share_answer_two_hours_behind_moves_no_age_status_or_skew() {
    one_odd_answer(-2 * HOUR_MS).await;
}

#[tokio::test]
async fn one_share_answer_two_hours_ahead_moves_no_age_status_or_skew() {
    one_odd_answer(2 * HOUR_MS).await;
}

/// The times (since `start`) at which the simulator saw each new `LoginPublisherAccountById`
/// of the standard account, watched every 2 ms for `during`.
async fn login_times(app: &TestApp, start: Instant, during: Duration) -> Vec<Duration> {
    let mut seen = app.counts().login;
    let mut times = Vec::new();
    let end = Instant::now() + during;
    while Instant::now() < end {
        let now = app.counts().login;
        for _ in seen..now {
            times.push(start.elapsed());
        }
        seen = now;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    times
}

/// Row 2: the host's clock an hour off Share's, either way; Share ends a session that had
/// worked. Today's code held the re-login for about the skew (ahead: polling stopped), or let
/// the per-interval limit be bypassed (behind). Here the re-login comes within about one
/// interval, and never two within one.
async fn session_ends_on_a_host_off_by(off_ms: i64) {
    let mut options = AppOptions::new(SECOND, &[]);
    options.exporter_clock = Some(OffClock::system(off_ms));
    // Share ends the first sessions right after their login: the first login is made before
    // Share's clock is known, the next ones after it.
    options.faults.push((
        Fault::ShareFault {
            code: "SessionIdNotFound".into(),
            message: "Session ID not found".into(),
        },
        Some(Endpoint::ReadGlucose),
        3,
    ));
    let start = Instant::now();
    let app = TestApp::start_with(options).await;
    let logins = login_times(&app, start, 6 * SECOND).await;
    assert!(logins.len() >= 4, "logins at {logins:?}");
    for pair in logins.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(950),
            "two logins within an interval (host {off_ms} ms off): {logins:?}"
        );
    }
    // A session that had worked ends: the re-login comes within about an interval.
    app.scrape_until(5 * SECOND, |s| {
        (status(s, crate::common::USERNAME, "ok") == Some(1.0)).then_some(())
    })
    .await;
    let before = app.counts().login;
    let ended = Instant::now();
    app.sim.simulator.expire_sessions();
    wait_until(
        3 * SECOND,
        &format!("a re-login after the session ended (host {off_ms} ms off)"),
        || app.counts().login > before,
    )
    .await;
    let relogin = ended.elapsed();
    let scrape = app.scrape().await;
    assert_eq!(
        status(&scrape, crate::common::USERNAME, "ok"),
        Some(1.0),
        "{scrape}"
    );
    eprintln!("host {off_ms} ms off: re-login {relogin:?} after the session ended");
    app.stop().await;
}

#[tokio::test]
async fn a_session_ended_by_share_is_renewed_within_an_interval_on_a_host_an_hour_ahead() {
    session_ends_on_a_host_off_by(HOUR_MS).await;
}

#[tokio::test]
async fn a_session_ended_by_share_is_renewed_within_an_interval_on_a_host_an_hour_behind() {
    session_ends_on_a_host_off_by(-HOUR_MS).await;
}

/// Row 3: the host's clock a day off Share's, a wrong password, three restarts. Today's code
/// stored the failure in Share's time and read it back in the host's: each restart sent the
/// wrong password at once. Here it is sent once.
async fn wrong_password_restarts_on_a_host_off_by(off_ms: i64) {
    let mut options = AppOptions::new(SECOND, &[]).with_state_dir();
    options.env = TestEnv(vec![("DEXCOM_PASSWORD", "not the password".to_owned())]);
    options.exporter_clock = Some(OffClock::new(std::sync::Arc::new(SystemClock), off_ms));
    let mut app = TestApp::start_with(options).await;
    wait_until(5 * SECOND, "the wrong password refused", || {
        app.counts().authenticate >= 1 && app.exporter.metrics.accounts_awaiting_first_poll() == 0
    })
    .await;
    for restart in 1..=3 {
        app = app.restart().await;
        wait_until(5 * SECOND, "the restarted exporter looked", || {
            app.exporter.metrics.accounts_awaiting_first_poll() == 0
        })
        .await;
        // Several intervals: time for a poll to send it, if anything would.
        tokio::time::sleep(2 * SECOND).await;
        assert_eq!(
            app.counts().authenticate,
            1,
            "restart {restart} on a host {off_ms} ms off sent the wrong password again"
        );
        let scrape = app.scrape().await;
        assert_eq!(
            status(&scrape, crate::common::USERNAME, "login_held"),
            Some(1.0),
            "{scrape}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_is_sent_once_across_three_restarts_on_a_host_a_day_behind() {
    wrong_password_restarts_on_a_host_off_by(-DAY_MS).await;
}

#[tokio::test]
async fn a_wrong_password_is_sent_once_across_three_restarts_on_a_host_a_day_ahead() {
    wrong_password_restarts_on_a_host_off_by(DAY_MS).await;
}
