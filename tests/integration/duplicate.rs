//! One Dexcom account listed twice in one configuration (a username and its e-mail, which
//! Share resolves to one account ID): the second entry is held for the life of the process
//! and sends nothing, and what `/metrics` says of its next attempt is when the exporter
//! really looks at it again, each interval, never a time already past.

use std::time::Duration;

use crate::common::{PASSWORD, TestEnv, USERNAME, sample};
use crate::harness::{AppOptions, TestApp};

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_second_entry_of_one_account_sends_nothing_and_its_next_attempt_is_never_past() {
    let mut options = AppOptions::new(SECOND, &[]);
    options.scenario.accounts[0].aliases = vec!["pub".to_owned()];
    options.env = TestEnv(vec![]);
    options.args = Box::new(|base, dir| {
        for name in ["a.pw", "b.pw"] {
            std::fs::write(dir.join(name), format!("{PASSWORD}\n")).unwrap();
        }
        let yaml = format!(
            "accounts:\n  - name: a\n    username: {USERNAME}\n    password_file: {dir}/a.pw\n    base_url: {base}\n  - name: b\n    username: pub\n    password_file: {dir}/b.pw\n    base_url: {base}\n",
            dir = dir.display(),
        );
        std::fs::write(dir.join("config.yml"), yaml).unwrap();
        vec![
            "--config.file".to_owned(),
            dir.join("config.yml").display().to_string(),
            "--dexcom.reading-interval".to_owned(),
            "1s".to_owned(),
            "--storage.path".to_owned(),
            dir.join("state").display().to_string(),
        ]
    });
    let app = TestApp::start_with(options).await;
    let held = |s: &str| {
        sample(
            s,
            "dexcom_login_hold_reason",
            "account=\"b\",reason=\"duplicate_login\"",
        ) == Some(1.0)
    };
    let next = |s: &str| {
        sample(
            s,
            "dexcom_login_next_attempt_timestamp_seconds",
            "account=\"b\"",
        )
    };
    let first = app
        .scrape_until(20 * SECOND, |s| held(s).then(|| next(s)).flatten())
        .await;
    let sent = app.sim.simulator.request_counts("pub").authenticate;
    // Six intervals on, it has been looked at again (nothing sent): the next attempt moved
    // on with it, and is not in the past (by more than a poll delayed on a busy machine).
    tokio::time::sleep(6 * SECOND).await;
    let scrape = app.scrape().await;
    assert!(held(&scrape), "{scrape}");
    let later = next(&scrape).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(later > first, "next attempt stuck at {first}, now {now}");
    assert!(
        later >= now - 3.0,
        "next attempt {later} is past (now {now})"
    );
    assert_eq!(app.sim.simulator.request_counts("pub").authenticate, sent);
    // The first entry reads on.
    assert!(sample(&scrape, "dexcom_glucose_mg_per_dl", "account=\"a\"").is_some());
    app.stop().await;
}
