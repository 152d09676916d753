//! The exporter end to end, in process: the simulator on one loopback port, the exporter on
//! another, and real scrapes of `/metrics`, at accelerated cadences or on a stopped clock that
//! the test moves (so half an hour of backoff passes in milliseconds).

use std::time::{Duration, SystemTime};

use dexcom_exporter::clock::Clock;
use dexcom_exporter::share::Endpoint;
use dexcom_exporter::share::{LOCKOUT_WAIT, STRICT_WAIT};
use dexcom_exporter::simulator::{AccountSpec, Fault, RequestCounts};

use crate::common::{PASSWORD, TestEnv, USERNAME, get, sample};
use crate::harness::{
    AppOptions, TestApp, accounts_file, poller_wait, start_on_stopped_clock, wait_until,
};

const ACCOUNT: &str = "account=\"publisher@example.com\"";
const SECOND: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn reason(name: &str) -> String {
    format!("{ACCOUNT},reason=\"{name}\"")
}

#[tokio::test]
async fn first_reading_matches_what_the_simulator_served() {
    let app = TestApp::start(ms(2000), &[]).await;
    let scrape = app
        .scrape_until(10 * SECOND, |s| {
            sample(s, "dexcom_glucose_mg_per_dl", ACCOUNT).map(|_| s.to_owned())
        })
        .await;
    let timestamp = sample(&scrape, "dexcom_glucose_reading_timestamp_seconds", ACCOUNT).unwrap();
    let served = app
        .sim
        .simulator
        .reading_at(USERNAME, (timestamp * 1000.0).round() as i64)
        .expect("a served sensor time");
    assert_eq!(
        sample(&scrape, "dexcom_glucose_mg_per_dl", ACCOUNT),
        Some(f64::from(served.mg_per_dl))
    );
    assert_eq!(
        sample(&scrape, "dexcom_glucose_trend", ACCOUNT),
        Some(f64::from(served.trend.code()))
    );
    let age = sample(&scrape, "dexcom_glucose_reading_age_seconds", ACCOUNT).unwrap();
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - timestamp - age).abs() < 2.0,
        "age {age} vs now-timestamp {}",
        now - timestamp
    );
    assert_eq!(sample(&scrape, "dexcom_up", ACCOUNT), Some(1.0));
    for level in ["urgent_low", "low", "high"] {
        assert!(
            sample(
                &scrape,
                "dexcom_glucose_threshold_mg_per_dl",
                &format!("{ACCOUNT},level=\"{level}\"")
            )
            .is_some()
        );
    }
    let previous = app
        .sim
        .simulator
        .reading_at(USERNAME, served.sensor_ms - 2000)
        .unwrap();
    let delta = i32::from(served.mg_per_dl) - i32::from(previous.mg_per_dl);
    assert_eq!(
        sample(&scrape, "dexcom_glucose_delta_mg_per_dl", ACCOUNT),
        Some(f64::from(delta))
    );
    for reason_name in [
        "auth_failed",
        "locked_out",
        "session_expired",
        "rate_limited",
        "server_error",
        "timeout",
        "connection",
        "invalid_response",
        "edge_challenge",
        "edge_rate_limited",
        "edge_error",
    ] {
        assert_eq!(
            sample(&scrape, "dexcom_poll_errors_total", &reason(reason_name)),
            Some(0.0),
            "{reason_name}"
        );
    }
    assert!(scrape.contains("dexcom_exporter_build_info{version=\""));
    assert!(
        scrape.contains(
            "dexcom_request_duration_seconds_bucket{endpoint=\"read_glucose\",le=\"+Inf\"}"
        )
    );
    let (status, ready) = get(&app.url("/-/ready")).await;
    assert_eq!((status, ready.trim()), (200, "Ready"));
    app.stop().await;
}

#[tokio::test]
async fn follows_new_readings_with_about_one_read_each() {
    let app = TestApp::start(ms(1000), &[]).await;
    let first = app
        .scrape_until(10 * SECOND, |s| {
            sample(s, "dexcom_glucose_reading_timestamp_seconds", ACCOUNT)
        })
        .await;
    let reads_before = app.counts().read;
    let last = app
        .scrape_until(20 * SECOND, |s| {
            sample(s, "dexcom_glucose_reading_timestamp_seconds", ACCOUNT)
                .filter(|t| *t >= first + 7.5)
        })
        .await;
    let readings = ((last - first) / 1.0).round() as u64;
    let reads = app.counts().read - reads_before;
    // A bound, not a benchmark: the fixed 1.3 target is measured by benches/freshness.rs.
    assert!(
        reads <= readings * 3,
        "{reads} reads for {readings} readings"
    );
    app.stop().await;
}

#[tokio::test]
async fn expired_session_costs_one_login_and_no_gap() {
    // 2 s, not 1 s: "no gap" is judged from scrapes, and a test machine busy enough to delay
    // a poll by a whole interval would otherwise look like a skipped reading.
    let app = TestApp::start(ms(2000), &[]).await;
    let start = app
        .scrape_until(10 * SECOND, |s| {
            sample(s, "dexcom_glucose_reading_timestamp_seconds", ACCOUNT)
        })
        .await;
    // The session ends once the first login is a reading old: the re-login is then one of a
    // working session, not one the per-interval limit could hold after a login just made.
    let first = app
        .scrape_until(10 * SECOND, |s| {
            sample(s, "dexcom_glucose_reading_timestamp_seconds", ACCOUNT).filter(|t| *t > start)
        })
        .await;
    app.sim.simulator.expire_sessions();
    let mut seen = vec![first];
    let scrape = app
        .scrape_until(25 * SECOND, |s| {
            let t = sample(s, "dexcom_glucose_reading_timestamp_seconds", ACCOUNT)?;
            if seen.last() != Some(&t) {
                seen.push(t);
            }
            (seen.len() >= 4).then(|| s.to_owned())
        })
        .await;
    let counts = app.counts();
    assert_eq!((counts.authenticate, counts.login), (1, 2), "{counts:?}");
    assert_eq!(sample(&scrape, "dexcom_logins_total", ACCOUNT), Some(2.0));
    assert_eq!(
        sample(
            &scrape,
            "dexcom_poll_errors_total",
            &reason("session_expired")
        ),
        Some(0.0)
    );
    for pair in seen.windows(2) {
        assert!(
            (pair[1] - pair[0] - 2.0).abs() < 0.01,
            "a reading was skipped: {seen:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_password_is_reported_and_never_retried_quickly() {
    let (app, clock) = start_on_stopped_clock(
        TestEnv(vec![("DEXCOM_PASSWORD", "not-the-password".into())]),
        vec![],
    )
    .await;
    let scrape = app
        .scrape_until(10 * SECOND, |s| {
            sample(s, "dexcom_poll_errors_total", &reason("auth_failed"))
                .filter(|n| *n >= 1.0)
                .map(|_| s.to_owned())
        })
        .await;
    assert_eq!(sample(&scrape, "dexcom_up", ACCOUNT), Some(0.0));
    assert_eq!(sample(&scrape, "dexcom_glucose_mg_per_dl", ACCOUNT), None);
    let wait = poller_wait(&clock).await;
    assert!(wait >= STRICT_WAIT, "next login in {wait:?}");
    // A second short of the backoff: still exactly one login attempt, and still serving.
    clock.advance(wait - SECOND);
    assert_eq!(poller_wait(&clock).await, SECOND);
    assert_eq!(
        app.counts(),
        RequestCounts {
            authenticate: 1,
            login: 0,
            read: 0
        }
    );
    let (status, body) = get(&app.url("/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&body, "dexcom_poll_errors_total", &reason("auth_failed")),
        Some(1.0)
    );
    assert_eq!(
        get(&app.url("/-/ready")).await.0,
        200,
        "ready: the first poll completed"
    );
    // Once the backoff has passed, one more attempt, and a longer wait after it.
    clock.advance(SECOND);
    wait_until(10 * SECOND, "the second login attempt", || {
        app.counts().authenticate == 2
    })
    .await;
    let second_wait = poller_wait(&clock).await;
    assert!(second_wait > wait, "{second_wait:?} after {wait:?}");
    app.stop().await;
}

#[tokio::test]
async fn lockout_stops_logins() {
    let lockout = Fault::ShareFault {
        code: "SSO_AuthenticateMaxAttemptsExceeed".into(),
        message: "Maximum attempts".into(),
    };
    let (app, clock) = start_on_stopped_clock(
        crate::common::password_env(),
        vec![(lockout, Some(Endpoint::Authenticate), 100)],
    )
    .await;
    app.scrape_until(10 * SECOND, |s| {
        sample(s, "dexcom_poll_errors_total", &reason("locked_out")).filter(|n| *n >= 1.0)
    })
    .await;
    let wait = poller_wait(&clock).await;
    assert!(wait >= LOCKOUT_WAIT, "next login in {wait:?}");
    clock.advance(wait - SECOND);
    assert_eq!(poller_wait(&clock).await, SECOND);
    assert_eq!(app.counts().authenticate, 1);
    app.stop().await;
}

#[tokio::test]
async fn transient_errors_back_off_and_recover() {
    let app = TestApp::start(ms(1000), &["--dexcom.request-timeout", "300ms"]).await;
    app.scrape_until(10 * SECOND, |s| {
        sample(s, "dexcom_glucose_mg_per_dl", ACCOUNT)
    })
    .await;
    let simulator = &app.sim.simulator;
    simulator.inject(Fault::Html500, Some(Endpoint::ReadGlucose), 2);
    simulator.inject(
        Fault::RateLimited {
            retry_after: Some(SECOND),
        },
        Some(Endpoint::ReadGlucose),
        1,
    );
    simulator.inject(Fault::Slow(2 * SECOND), Some(Endpoint::ReadGlucose), 1);
    let scrape = app
        .scrape_until(20 * SECOND, |s| {
            // Cloudflare's 502 page is the edge failing, not Share answering.
            let errors_seen = sample(s, "dexcom_poll_errors_total", &reason("edge_error"))
                == Some(2.0)
                && sample(s, "dexcom_poll_errors_total", &reason("rate_limited")) == Some(1.0)
                && sample(s, "dexcom_poll_errors_total", &reason("timeout")) == Some(1.0);
            (errors_seen && sample(s, "dexcom_up", ACCOUNT) == Some(1.0)).then(|| s.to_owned())
        })
        .await;
    // Recovered: fresh readings flow again and no extra login was needed.
    let recovered_at =
        sample(&scrape, "dexcom_glucose_reading_timestamp_seconds", ACCOUNT).unwrap();
    app.scrape_until(10 * SECOND, |s| {
        sample(s, "dexcom_glucose_reading_timestamp_seconds", ACCOUNT).filter(|t| *t > recovered_at)
    })
    .await;
    assert_eq!(app.counts().authenticate, 1);
    app.stop().await;
}

#[tokio::test]
async fn sensor_gap_withdraws_value_after_max_age_while_age_grows() {
    let app = TestApp::start(ms(1000), &["--glucose.max-age", "3s"]).await;
    app.scrape_until(10 * SECOND, |s| {
        sample(s, "dexcom_glucose_mg_per_dl", ACCOUNT)
    })
    .await;
    app.sim.simulator.start_gap(USERNAME);
    let scrape = app
        .scrape_until(15 * SECOND, |s| {
            sample(s, "dexcom_glucose_mg_per_dl", ACCOUNT)
                .is_none()
                .then(|| s.to_owned())
        })
        .await;
    assert_eq!(
        sample(&scrape, "dexcom_glucose_trend", ACCOUNT),
        None,
        "trend goes with the value"
    );
    assert_eq!(
        sample(&scrape, "dexcom_glucose_delta_mg_per_dl", ACCOUNT),
        None
    );
    let age = sample(&scrape, "dexcom_glucose_reading_age_seconds", ACCOUNT).expect("age stays");
    assert!(age > 3.0, "{age}");
    assert!(sample(&scrape, "dexcom_glucose_reading_timestamp_seconds", ACCOUNT).is_some());
    assert_eq!(
        sample(&scrape, "dexcom_up", ACCOUNT),
        Some(1.0),
        "a gap is not a Share failure"
    );
    // The age keeps growing while nothing new arrives (and the value stays withdrawn).
    app.scrape_until(10 * SECOND, |s| {
        let later = sample(s, "dexcom_glucose_reading_age_seconds", ACCOUNT)?;
        assert_eq!(sample(s, "dexcom_glucose_mg_per_dl", ACCOUNT), None);
        (later >= age + 0.5).then_some(())
    })
    .await;
    app.sim.simulator.end_gap(USERNAME);
    app.scrape_until(10 * SECOND, |s| {
        sample(s, "dexcom_glucose_mg_per_dl", ACCOUNT)
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn no_follower_means_no_value_but_up() {
    let mut options = AppOptions::new(SECOND, &[]);
    options.scenario.accounts[0].has_follower = false;
    let app = TestApp::start_with(options).await;
    let scrape = app
        .scrape_until(10 * SECOND, |s| {
            (sample(s, "dexcom_up", ACCOUNT) == Some(1.0)).then(|| s.to_owned())
        })
        .await;
    assert_eq!(sample(&scrape, "dexcom_glucose_mg_per_dl", ACCOUNT), None);
    assert_eq!(
        sample(&scrape, "dexcom_glucose_reading_age_seconds", ACCOUNT),
        None
    );
    app.stop().await;
}

#[tokio::test]
async fn several_accounts_from_a_config_file() {
    let mut options = AppOptions::new(SECOND, &[]);
    options
        .scenario
        .accounts
        .push(AccountSpec::new("second", "second-password"));
    options.env = TestEnv(vec![]);
    options.args = Box::new(|base, dir| {
        std::fs::write(dir.join("one.pw"), format!("{PASSWORD}\n")).unwrap();
        std::fs::write(dir.join("two.pw"), "second-password\n").unwrap();
        let yaml = format!(
            "accounts:\n  - name: kid\n    username: {USERNAME}\n    password_file: {dir}/one.pw\n    base_url: {base}\n    thresholds:\n      urgent_low: 60\n      low: 80\n      high: 220\n  - name: parent\n    username: second\n    password_file: {dir}/two.pw\n    base_url: {base}\n",
            dir = dir.display(),
        );
        std::fs::write(dir.join("config.yml"), yaml).unwrap();
        config_file_args(&dir.join("config.yml"))
    });
    let app = TestApp::start_with(options).await;
    let scrape = app
        .scrape_until(10 * SECOND, |s| {
            (sample(s, "dexcom_glucose_mg_per_dl", "account=\"kid\"").is_some()
                && sample(s, "dexcom_glucose_mg_per_dl", "account=\"parent\"").is_some())
            .then(|| s.to_owned())
        })
        .await;
    assert_eq!(
        sample(
            &scrape,
            "dexcom_glucose_threshold_mg_per_dl",
            "account=\"kid\",level=\"high\""
        ),
        Some(220.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "dexcom_glucose_threshold_mg_per_dl",
            "account=\"parent\",level=\"high\""
        ),
        Some(250.0)
    );
    let kid = sample(
        &scrape,
        "dexcom_glucose_reading_timestamp_seconds",
        "account=\"kid\"",
    )
    .unwrap();
    let served = app
        .sim
        .simulator
        .reading_at(USERNAME, (kid * 1000.0).round() as i64)
        .unwrap();
    assert_eq!(
        sample(&scrape, "dexcom_glucose_mg_per_dl", "account=\"kid\""),
        Some(f64::from(served.mg_per_dl))
    );
    assert_eq!(app.sim.simulator.request_counts("second").authenticate, 1);
    app.stop().await;
}

/// Flags reading the accounts from `path` at a 1 s cadence.
fn config_file_args(path: &std::path::Path) -> Vec<String> {
    vec![
        "--config.file".to_owned(),
        path.display().to_string(),
        "--dexcom.reading-interval".to_owned(),
        "1s".to_owned(),
    ]
}

#[tokio::test]
async fn scrapes_do_not_wait_for_a_poll_in_flight() {
    let app = TestApp::start(ms(1000), &["--dexcom.request-timeout", "1s"]).await;
    let polls = app
        .scrape_until(10 * SECOND, |s| {
            sample(s, "dexcom_glucose_mg_per_dl", ACCOUNT).and(sample(
                s,
                "dexcom_polls_total",
                ACCOUNT,
            ))
        })
        .await;
    let reads = app.counts().read;
    app.sim.simulator.inject(
        Fault::Slow(Duration::from_secs(30)),
        Some(Endpoint::ReadGlucose),
        1,
    );
    // Wait until the slow read has reached the simulator, then scrape while it hangs.
    wait_until(10 * SECOND, "a poll reaches the simulator", || {
        app.counts().read > reads
    })
    .await;
    let (status, during) = get(&app.url("/metrics")).await;
    assert_eq!(status, 200);
    // The poll in flight has not been counted yet (it counts when it finishes), so this scrape
    // was answered while it was still waiting.
    assert_eq!(sample(&during, "dexcom_polls_total", ACCOUNT), Some(polls));
    app.stop().await;
}

#[tokio::test]
async fn endpoints_and_errors() {
    let mut options = AppOptions::new(SECOND, &["--web.telemetry-path", "/custom-metrics"]);
    // Not ready before the first poll: the simulator holds the first login for a while.
    options.faults = vec![(Fault::Slow(3 * SECOND), Some(Endpoint::Authenticate), 1)];
    let app = TestApp::start_with(options).await;
    let (status, body) = get(&app.url("/-/ready")).await;
    assert_eq!(status, 503, "not ready before the first poll: {body}");
    assert_eq!(get(&app.url("/-/healthy")).await.0, 200);
    let (status, landing) = get(&app.url("/")).await;
    assert_eq!(status, 200);
    assert!(
        landing.contains("href=\"/custom-metrics\"") && landing.contains(USERNAME),
        "{landing}"
    );
    assert_eq!(get(&app.url("/metrics")).await.0, 404);
    assert_eq!(get(&app.url("/custom-metrics")).await.0, 200);
    let post = reqwest::Client::new()
        .post(app.url("/custom-metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 405);
    let response = reqwest::get(app.url("/custom-metrics")).await.unwrap();
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    app.stop().await;
}

#[tokio::test]
async fn thirty_accounts_all_report_with_one_login_each() {
    let accounts: Vec<(String, String)> = (0..30)
        .map(|i| (format!("user{i:02}"), format!("pw{i:02}")))
        .collect();
    let mut options = AppOptions::new(SECOND, &[]);
    options.scenario.accounts = accounts
        .iter()
        .map(|(user, password)| AccountSpec::new(user, password))
        .collect();
    options.env = TestEnv(vec![]);
    let listed = accounts.clone();
    options.args = Box::new(move |base, dir| {
        let pairs: Vec<(&str, &str)> = listed
            .iter()
            .map(|(u, p)| (u.as_str(), p.as_str()))
            .collect();
        config_file_args(&accounts_file(dir, base, &pairs))
    });
    let app = TestApp::start_with(options).await;
    app.scrape_until(20 * SECOND, |s| {
        accounts
            .iter()
            .all(|(user, _)| {
                sample(
                    s,
                    "dexcom_glucose_mg_per_dl",
                    &format!("account=\"{user}\""),
                )
                .is_some()
            })
            .then_some(())
    })
    .await;
    for (user, _) in &accounts {
        let counts = app.sim.simulator.request_counts(user);
        assert_eq!(
            (counts.authenticate, counts.login),
            (1, 1),
            "{user}: {counts:?}"
        );
    }
    app.stop().await;
}

/// While Share keeps failing, the log says so again at least every 15 minutes, with the count
/// of failed polls, and says how many failed when it recovers.
#[tokio::test]
async fn a_lasting_failure_is_said_again_every_15_minutes_with_its_count() {
    let (_guard, logs) = crate::common::capture_logs();
    let (app, clock) = start_on_stopped_clock(
        crate::common::password_env(),
        vec![(Fault::Html500, Some(Endpoint::ReadGlucose), 1_000_000)],
    )
    .await;
    app.scrape_until(10 * SECOND, |s| {
        sample(s, "dexcom_poll_errors_total", &reason("edge_error")).filter(|n| *n >= 1.0)
    })
    .await;
    // 40 minutes of failed polls, each a backoff of at most the 500 ms interval.
    let started = clock.now();
    while clock.now().duration_since(started).unwrap() < Duration::from_secs(40 * 60) {
        let wait = poller_wait(&clock).await;
        let before = app.counts().read;
        clock.advance(wait.max(ms(1)));
        wait_until(10 * SECOND, "the next read", || app.counts().read > before).await;
        // Jump ahead a minute at a time between polls, as a quiet night does.
        clock.advance(Duration::from_secs(60));
    }
    let text = logs.text();
    let reminders: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("are still failing"))
        .collect();
    assert!(
        (2..=3).contains(&reminders.len()),
        "one reminder per 15 minutes over 40: {reminders:#?}"
    );
    assert!(
        reminders
            .iter()
            .all(|l| l.contains("WARN") && l.contains("failed polls since")),
        "{reminders:#?}"
    );
    app.stop().await;
}
