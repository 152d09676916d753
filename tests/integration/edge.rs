//! Cloudflare's own answers in front of Share (its challenge, its 1015 rate limit, its 52x
//! origin errors, a 5xx that is not Share's JSON): the client calls each the edge refusing or
//! failing, never a verdict on the password, and keeps its session; the exporter shows
//! `share_failing` with an `edge_*` reason, and a challenge or rate limit never brings the next
//! read sooner than the interval. The gate's count of such an answer during an unconfirmed
//! login is in `safety.rs`, the words of `check` in `check.rs`.

use std::time::Duration;

use dexcom_exporter::share::{Endpoint, ErrorReason};
use dexcom_exporter::simulator::Fault;

use crate::common::{PASSWORD, USERNAME, client, password_env, sample, scenario, start};
use crate::harness::{poller_wait, start_on_stopped_clock, wait_until};

const ACCOUNT: &str = "account=\"publisher@example.com\"";
/// The cadence `start_on_stopped_clock` polls at.
const INTERVAL: Duration = Duration::from_millis(500);

/// Every answer Cloudflare gives on its own, and the reason it must be counted under.
fn edge_answers() -> Vec<(String, Fault, ErrorReason)> {
    let mut answers = vec![
        (
            "challenge".to_owned(),
            Fault::EdgeChallenge,
            ErrorReason::EdgeChallenge,
        ),
        (
            "challenge as 200".to_owned(),
            Fault::EdgeChallengeOk,
            ErrorReason::EdgeChallenge,
        ),
        (
            "1015 as 429".to_owned(),
            Fault::EdgeRateLimited { status: 429 },
            ErrorReason::EdgeRateLimited,
        ),
        (
            "1015 as 403".to_owned(),
            Fault::EdgeRateLimited { status: 403 },
            ErrorReason::EdgeRateLimited,
        ),
        (
            "HTML 502".to_owned(),
            Fault::Html500,
            ErrorReason::EdgeError,
        ),
        (
            "plain-text 503".to_owned(),
            Fault::Raw {
                status: 503,
                content_type: "text/plain",
                body: "upstream connect error or disconnect/reset before headers".into(),
            },
            ErrorReason::EdgeError,
        ),
    ];
    for status in 520..=526 {
        answers.push((
            format!("origin error {status}"),
            Fault::EdgeOriginError { status },
            ErrorReason::EdgeError,
        ));
    }
    answers
}

#[tokio::test]
async fn each_edge_answer_is_the_edge_never_the_password_and_the_session_is_kept() {
    let sim = start(scenario(Duration::from_secs(300))).await;
    let mut client = client(&sim, USERNAME, PASSWORD);
    client.latest_readings(10, 1).await.expect("first read");
    let answers = edge_answers();
    for (what, fault, reason) in &answers {
        sim.simulator
            .inject(fault.clone(), Some(Endpoint::ReadGlucose), 1);
        let error = client.latest_readings(10, 1).await.unwrap_err();
        assert_eq!(error.reason(), *reason, "{what}: {error}");
        assert!(!error.reason().is_credential_failure(), "{what}");
        let text = error.to_string();
        assert!(
            text.contains("Cloudflare") && !text.contains("password") && !text.contains("<html"),
            "{what}: {text}"
        );
        // Not a session error: the next read works on the same session, with no login.
        client.latest_readings(10, 1).await.expect(what);
    }
    let counts = sim.simulator.request_counts(USERNAME);
    assert_eq!((counts.authenticate, counts.login), (1, 1), "no re-login");
    assert_eq!(counts.read, 1 + 2 * answers.len() as u64);
    sim.stop().await;
}

#[tokio::test]
async fn an_edge_answer_shows_share_failing_and_a_challenge_never_retries_sooner_than_the_interval()
{
    let cases = [
        (Fault::EdgeChallenge, "edge_challenge", true),
        (
            Fault::EdgeRateLimited { status: 429 },
            "edge_rate_limited",
            true,
        ),
        (
            Fault::EdgeRateLimited { status: 403 },
            "edge_rate_limited",
            true,
        ),
        (Fault::EdgeOriginError { status: 522 }, "edge_error", false),
        (Fault::Html500, "edge_error", false),
    ];
    for (fault, reason, at_least_an_interval) in cases {
        let (app, clock) = start_on_stopped_clock(
            password_env(),
            vec![(fault, Some(Endpoint::ReadGlucose), 1_000_000)],
        )
        .await;
        let labels = format!("{ACCOUNT},reason=\"{reason}\"");
        let scrape = app
            .scrape_until(Duration::from_secs(10), |s| {
                sample(s, "dexcom_poll_errors_total", &labels)
                    .filter(|n| *n >= 1.0)
                    .map(|_| s.to_owned())
            })
            .await;
        let status = |name: &str| format!("{ACCOUNT},status=\"{name}\"");
        assert_eq!(
            sample(&scrape, "dexcom_account_status", &status("share_failing")),
            Some(1.0),
            "{reason}"
        );
        assert_eq!(sample(&scrape, "dexcom_up", ACCOUNT), Some(0.0));
        for credential in ["auth_failed", "locked_out"] {
            let labels = format!("{ACCOUNT},reason=\"{credential}\"");
            assert_eq!(
                sample(&scrape, "dexcom_poll_errors_total", &labels),
                Some(0.0)
            );
        }
        // Five failed reads in a row: each wait is at least the interval for a challenge or a
        // rate limit; an origin error is transient and retried sooner at first.
        for n in 0..5 {
            let wait = poller_wait(&clock).await;
            if at_least_an_interval {
                assert!(
                    wait >= INTERVAL,
                    "{reason}: read {n} retried after {wait:?}"
                );
            } else if n == 0 {
                assert!(wait < INTERVAL, "{reason}: first retry after {wait:?}");
            }
            let before = app.counts().read;
            clock.advance(wait.max(Duration::from_millis(1)));
            wait_until(Duration::from_secs(10), "the next read", || {
                app.counts().read > before
            })
            .await;
        }
        let counts = app.counts();
        assert_eq!(
            (counts.authenticate, counts.login),
            (1, 1),
            "{reason}: no re-login"
        );
        app.stop().await;
    }
}
