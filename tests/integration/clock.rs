//! A host whose clock is wrong (a Raspberry Pi booting without a real-time clock, before NTP):
//! the exporter judges time by Share's clock, so an hour or days off changes nothing a user
//! sees, and the log says once which way the host's clock is off.

use std::time::Duration;

use dexcom_testkit::clock::OffClock;

use crate::common::{CapturedLogs, capture_logs, sample};
use crate::harness::{AppOptions, TestApp};

const ACCOUNT: &str = "account=\"publisher@example.com\"";
const SECOND: Duration = Duration::from_secs(1);

/// The simulator, and the exporter polling it at a 1 s cadence on a clock off by `by`, with
/// its log captured (for as long as the returned guard lives).
async fn start_on_skewed_clock(
    ahead: bool,
    by: Duration,
) -> (TestApp, CapturedLogs, tracing::subscriber::DefaultGuard) {
    let (guard, logs) = capture_logs();
    let mut options = AppOptions::new(SECOND, &[]);
    let by_ms = i64::try_from(by.as_millis()).unwrap();
    options.exporter_clock = Some(OffClock::system(if ahead { by_ms } else { -by_ms }));
    (TestApp::start_with(options).await, logs, guard)
}

/// The one log line about the host's clock, which must be a warning.
fn the_clock_warning(logs: &CapturedLogs) -> String {
    let said: Vec<String> = logs
        .text()
        .lines()
        .filter(|l| l.contains("clock"))
        .map(str::to_owned)
        .collect();
    assert_eq!(said.len(), 1, "said once: {said:?}");
    assert!(
        said[0].contains("WARN") && said[0].contains("NTP"),
        "{said:?}"
    );
    said[0].clone()
}

/// What a user sees of an exporter whose host clock is off by `by`: the value is shown, its age
/// is Share's (within the 1 s cadence), the status is `ok`, the skew is measured, and the log
/// says once which way the clock is off.
async fn a_wrong_host_clock_changes_nothing_a_user_sees(ahead: bool, by: Duration) {
    let (app, logs, _logging) = start_on_skewed_clock(ahead, by).await;
    let first = app
        .scrape_until(10 * SECOND, |s| {
            sample(s, "dexcom_glucose_reading_timestamp_seconds", ACCOUNT)
        })
        .await;
    // New readings keep arriving: the schedule is aimed on Share's clock.
    let scrape = app
        .scrape_until(10 * SECOND, |s| {
            sample(s, "dexcom_glucose_reading_timestamp_seconds", ACCOUNT)
                .filter(|t| *t >= first + 3.0)
                .map(|_| s.to_owned())
        })
        .await;
    let age = sample(&scrape, "dexcom_glucose_reading_age_seconds", ACCOUNT).unwrap();
    // Share's Date has a resolution of a second, and a busy machine polls late: the age is
    // within seconds of the truth, where the host's clock would put it an hour or days off.
    assert!((-1.5..10.0).contains(&age), "age by Share's clock: {age}");
    assert!(sample(&scrape, "dexcom_glucose_mg_per_dl", ACCOUNT).is_some());
    let ok = format!("{},status=\"ok\"", ACCOUNT);
    assert_eq!(sample(&scrape, "dexcom_account_status", &ok), Some(1.0));
    let skew: f64 = scrape
        .lines()
        .find(|l| l.starts_with("dexcom_share_clock_skew_seconds{origin="))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap();
    let expected = if ahead {
        -by.as_secs_f64()
    } else {
        by.as_secs_f64()
    };
    assert!(
        (skew - expected).abs() <= 1.5,
        "skew {skew}, host off by {expected}"
    );
    let warning = the_clock_warning(&logs);
    let which = if ahead {
        "ahead of Dexcom Share's"
    } else {
        "behind Dexcom Share's"
    };
    assert!(warning.contains(which), "{warning}");
    app.stop().await;
}

#[tokio::test]
async fn a_host_clock_an_hour_behind_changes_nothing_a_user_sees() {
    a_wrong_host_clock_changes_nothing_a_user_sees(false, Duration::from_secs(3600)).await;
}

#[tokio::test]
async fn a_host_clock_an_hour_ahead_changes_nothing_a_user_sees() {
    a_wrong_host_clock_changes_nothing_a_user_sees(true, Duration::from_secs(3600)).await;
}

#[tokio::test]
async fn a_host_clock_three_days_ahead_changes_nothing_a_user_sees() {
    a_wrong_host_clock_changes_nothing_a_user_sees(true, Duration::from_secs(3 * 86_400)).await;
}
