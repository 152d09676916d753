//! The Share client against the simulator over loopback: one test per row of the protocol's
//! situation table, each asserting the error reason and the number of requests made.

use dexcom_exporter::clock::ManualClock;

use std::time::Duration;

use crate::common::{PASSWORD, USERNAME, client, scenario, settings, start, start_at};
use dexcom_exporter::share::{Endpoint, ErrorReason, Login, Reading, ShareClient, ShareError};
use dexcom_exporter::simulator::{
    AccountSpec, AuthErrorStyle, Fault, RequestCounts, RunningSimulator, Scenario, ServedReading,
};

const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn counts(authenticate: u64, login: u64, read: u64) -> RequestCounts {
    RequestCounts {
        authenticate,
        login,
        read,
    }
}

/// What the simulator serves now, from the client's newest reading on: a reading whose upload
/// lands between the client's read and this call would otherwise shift the comparison by one.
fn served_from(sim: &RunningSimulator, readings: &[Reading]) -> Vec<ServedReading> {
    let newest = readings.first().map_or(i64::MAX, |r| r.timestamp_ms);
    sim.simulator
        .visible_readings(USERNAME, readings.len() + 1)
        .into_iter()
        .skip_while(|served| served.sensor_ms > newest)
        .collect()
}

#[tokio::test]
async fn login_ok_reads_what_the_simulator_serves() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let mut client = client(&sim, USERNAME, PASSWORD);
    // 70 minutes, not 60: the newest reading may still be waiting for its upload, and then
    // only 11 sensor times of the last hour are visible. maxCount caps the answer at 12.
    let readings = client.latest_readings(70, 12).await.expect("readings");
    let served = served_from(&sim, &readings);
    assert_eq!(
        readings.len(),
        12,
        "an hour of history at a 5-minute cadence"
    );
    assert!(served.len() >= 12, "the simulator served {}", served.len());
    for (got, want) in readings.iter().zip(&served) {
        assert_eq!(got.timestamp_ms, want.sensor_ms);
        assert_eq!(got.mg_per_dl, want.mg_per_dl);
        assert_eq!(got.trend, want.trend);
        assert_eq!(got.utc_offset_minutes, Some(want.utc_offset_minutes));
    }
    assert!(
        readings
            .windows(2)
            .all(|w| w[0].timestamp_ms > w[1].timestamp_ms),
        "newest first"
    );
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 1, 1));

    // The account ID and session are reused: a second read is one request.
    client.latest_readings(10, 1).await.expect("second read");
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 1, 2));
    sim.stop().await;
}

/// Share's `minutes` window counts sensor time back from now, so while the newest reading
/// awaits its upload the last hour holds 11 readings, not 12. Pinned with a stopped clock
/// because with a running one it depends on the phase (this made CI flaky once).
#[tokio::test]
async fn a_reading_awaiting_upload_is_not_in_the_window() {
    let clock = ManualClock::now_system();
    let sim = start_at(scenario(FIVE_MINUTES), clock.clone()).await;
    let newest = sim.simulator.visible_readings(USERNAME, 1)[0];
    let pending = sim
        .simulator
        .reading_at(USERNAME, newest.sensor_ms + FIVE_MINUTES.as_millis() as i64)
        .expect("the next sensor time");
    clock.set_ms(pending.sensor_ms + 1);
    assert!(
        pending.visible_ms > pending.sensor_ms + 1,
        "an upload delay"
    );

    let mut client = client(&sim, USERNAME, PASSWORD);
    let hour = client.latest_readings(60, 12).await.unwrap();
    assert_eq!(hour.len(), 11, "the pending reading is not served");
    assert_eq!(hour[0].timestamp_ms, newest.sensor_ms);

    clock.set_ms(pending.visible_ms);
    let hour = client.latest_readings(60, 12).await.unwrap();
    assert_eq!(hour.len(), 12, "uploaded now");
    assert_eq!(hour[0].timestamp_ms, pending.sensor_ms);
    assert_eq!(hour[0].mg_per_dl, pending.mg_per_dl);
    sim.stop().await;
}

#[tokio::test]
async fn login_by_account_id_skips_authenticate() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let id = AccountSpec::new(USERNAME, PASSWORD).effective_account_id();
    let mut client =
        ShareClient::new(settings(&sim.base_url(), Login::AccountId(id), PASSWORD)).unwrap();
    let readings = client.latest_readings(1440, 1).await.expect("readings");
    assert_eq!(readings.len(), 1);
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(0, 1, 1));
    sim.stop().await;
}

#[tokio::test]
async fn bad_password_is_auth_failed_after_one_request() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let secret = "wrong-password-3f9a";
    let mut client = client(&sim, USERNAME, secret);
    let err = client.latest_readings(10, 1).await.unwrap_err();
    assert_eq!(err.reason(), ErrorReason::AuthFailed);
    let text = err.to_string();
    assert!(
        text.contains("AccountPasswordInvalid") && text.contains("region"),
        "{text}"
    );
    assert!(!text.contains(secret) && !format!("{err:?}").contains(secret));
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 0, 0));
    sim.stop().await;
}

#[tokio::test]
async fn unknown_user_and_2024_sso_style_are_auth_failed() {
    let sim = start(Scenario {
        auth_error_style: AuthErrorStyle::SsoInternalError,
        ..scenario(FIVE_MINUTES)
    })
    .await;
    let err = client(&sim, "nobody", PASSWORD)
        .latest_readings(10, 1)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), ErrorReason::AuthFailed);
    assert!(err.to_string().contains("SSO_InternalError"), "{err}");
    assert_eq!(sim.simulator.total_request_counts(), counts(1, 0, 0));
    sim.stop().await;
}

#[tokio::test]
async fn legacy_sso_codes_are_auth_failed() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    for code in [
        "SSO_AuthenticatePasswordInvalid",
        "SSO_AuthenticateAccountNotFound",
    ] {
        sim.simulator.inject(
            Fault::ShareFault {
                code: code.into(),
                message: "Simulate SSO: Authentication failed.".into(),
            },
            Some(Endpoint::Authenticate),
            1,
        );
        let err = client(&sim, USERNAME, PASSWORD)
            .latest_readings(10, 1)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), ErrorReason::AuthFailed, "{code}");
    }
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(2, 0, 0));
    sim.stop().await;
}

#[tokio::test]
async fn lockout_after_repeated_bad_passwords() {
    let sim = start(Scenario {
        lockout_after: 3,
        ..scenario(FIVE_MINUTES)
    })
    .await;
    for _ in 0..3 {
        let err = client(&sim, USERNAME, "bad")
            .latest_readings(10, 1)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), ErrorReason::AuthFailed);
    }
    // Now even the right password is refused with the (misspelled) max-attempts code.
    let err = client(&sim, USERNAME, PASSWORD)
        .latest_readings(10, 1)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), ErrorReason::LockedOut);
    assert!(
        matches!(&err, ShareError::LockedOut { code } if code == "SSO_AuthenticateMaxAttemptsExceeed")
    );
    assert!(err.to_string().contains("hour"), "{err}");
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(4, 0, 0));
    sim.stop().await;
}

#[tokio::test]
async fn unknown_session_costs_exactly_one_relogin() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let clock = ManualClock::now_system();
    let mut client = client(&sim, USERNAME, PASSWORD).with_gate(FIVE_MINUTES, clock.clone());
    client.latest_readings(10, 1).await.expect("first read");
    // The session lived a reading interval: the re-login limit allows one now.
    clock.advance(FIVE_MINUTES);
    sim.simulator.inject(
        Fault::ShareFault {
            code: "SessionIdNotFound".into(),
            message:
                "Failed to find session object. [SessionId = 33333333-3333-3333-3333-333333333333]"
                    .into(),
        },
        Some(Endpoint::ReadGlucose),
        1,
    );
    let readings = client
        .latest_readings(10, 1)
        .await
        .expect("read after re-login");
    assert_eq!(readings.len(), 1);
    // One re-login by ID (no second Authenticate), one retried read.
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 2, 3));
    sim.stop().await;
}

#[tokio::test]
async fn expired_session_costs_exactly_one_relogin() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let clock = ManualClock::now_system();
    let mut client = client(&sim, USERNAME, PASSWORD).with_gate(FIVE_MINUTES, clock.clone());
    client.latest_readings(10, 1).await.expect("first read");
    // The session lived a reading interval: the re-login limit allows one now.
    clock.advance(FIVE_MINUTES);
    sim.simulator.expire_sessions();
    client
        .latest_readings(10, 1)
        .await
        .expect("read after re-login");
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 2, 3));
    sim.stop().await;
}

#[tokio::test]
async fn session_error_after_the_relogin_is_reported_not_retried_again() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let clock = ManualClock::now_system();
    let mut client = client(&sim, USERNAME, PASSWORD).with_gate(FIVE_MINUTES, clock.clone());
    client.latest_readings(10, 1).await.expect("first read");
    // The session lived a reading interval: the re-login limit allows one now.
    clock.advance(FIVE_MINUTES);
    let fault = Fault::ShareFault {
        code: "SessionNotValid".into(),
        message:
            "Session not active or timed out. [SessionId = 12376322-d9e9-49d0-a777-9a4af23c97bf]"
                .into(),
    };
    sim.simulator.inject(fault, Some(Endpoint::ReadGlucose), 2);
    let err = client.latest_readings(10, 1).await.unwrap_err();
    assert_eq!(err.reason(), ErrorReason::SessionExpired);
    assert!(
        !err.to_string().contains("12376322"),
        "session IDs are redacted: {err}"
    );
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 2, 3));
    sim.stop().await;
}

#[tokio::test]
async fn a_session_that_dies_at_once_is_not_logged_into_again_within_the_interval() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let clock = ManualClock::now_system();
    let mut client = client(&sim, USERNAME, PASSWORD).with_gate(FIVE_MINUTES, clock.clone());
    client.latest_readings(10, 1).await.expect("first read");
    sim.simulator.expire_sessions();
    let err = client.latest_readings(10, 1).await.unwrap_err();
    assert_eq!(err.reason(), ErrorReason::SessionExpired, "{err}");
    let again = client.latest_readings(10, 1).await.unwrap_err();
    assert!(
        matches!(
            again,
            ShareError::LoginDeferred {
                confirmed: true,
                ..
            }
        ),
        "{again}"
    );
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 1, 2));
    clock.advance(FIVE_MINUTES);
    client
        .latest_readings(10, 1)
        .await
        .expect("one interval later");
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 2, 3));
    sim.stop().await;
}

#[tokio::test]
async fn nil_uuid_login_is_auth_failed() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let mut client = ShareClient::new(settings(
        &sim.base_url(),
        Login::AccountId(uuid::Uuid::nil()),
        PASSWORD,
    ))
    .unwrap();
    let err = client.latest_readings(10, 1).await.unwrap_err();
    assert_eq!(err.reason(), ErrorReason::AuthFailed);
    assert!(matches!(
        err,
        ShareError::NilUuid {
            endpoint: Endpoint::LoginById
        }
    ));
    assert_eq!(sim.simulator.total_request_counts(), counts(0, 1, 0));
    sim.stop().await;
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let mut client = client(&sim, USERNAME, PASSWORD);
    sim.simulator.inject(
        Fault::RateLimited {
            retry_after: Some(Duration::from_secs(42)),
        },
        Some(Endpoint::ReadGlucose),
        1,
    );
    let err = client.latest_readings(10, 1).await.unwrap_err();
    assert_eq!(err.reason(), ErrorReason::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(42)));
    // A 429 is not a session problem: no re-login, no retry.
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 1, 1));
    client.latest_readings(10, 1).await.expect("recovers");
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 1, 2));
    sim.stop().await;
}

/// A client that has read once, then the error of a second read answered with `fault`.
async fn read_answered_with(fault: Fault) -> (RunningSimulator, ShareClient, ShareError) {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let mut client = client(&sim, USERNAME, PASSWORD);
    client.latest_readings(10, 1).await.expect("first read");
    sim.simulator.inject(fault, Some(Endpoint::ReadGlucose), 1);
    let err = client.latest_readings(10, 1).await.unwrap_err();
    (sim, client, err)
}

#[tokio::test]
async fn cloudflare_s_html_502_is_the_edge_failing() {
    let (sim, _client, err) = read_answered_with(Fault::Html500).await;
    assert_eq!(err.reason(), ErrorReason::EdgeError);
    assert!(err.to_string().contains("502"), "{err}");
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 1, 2));
    sim.stop().await;
}

#[tokio::test]
async fn json_error_without_a_code_is_a_server_error() {
    let (sim, mut client, err) = read_answered_with(Fault::JsonWithoutCode).await;
    assert_eq!(err.reason(), ErrorReason::ServerError);
    assert!(err.to_string().contains("500"), "{err}");
    // Not a session error: no re-login, and the next read works with the same session.
    client.latest_readings(10, 1).await.expect("recovers");
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 1, 3));
    sim.stop().await;
}

#[tokio::test]
async fn unknown_fault_code_is_a_server_error() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    sim.simulator.inject(
        Fault::ShareFault {
            code: "ServiceUnavailable".into(),
            message: "try later".into(),
        },
        Some(Endpoint::Authenticate),
        1,
    );
    let err = client(&sim, USERNAME, PASSWORD)
        .latest_readings(10, 1)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), ErrorReason::ServerError);
    assert!(err.to_string().contains("ServiceUnavailable"));
    sim.stop().await;
}

#[tokio::test]
async fn empty_200_body_is_an_invalid_response() {
    let (sim, _client, err) = read_answered_with(Fault::EmptyBody200).await;
    assert_eq!(err.reason(), ErrorReason::InvalidResponse);
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 1, 2));
    sim.stop().await;
}

#[tokio::test]
async fn slow_answer_times_out() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let mut settings = settings(&sim.base_url(), Login::Username(USERNAME.into()), PASSWORD);
    settings.request_timeout = Duration::from_millis(300);
    let mut client = ShareClient::new(settings).unwrap();
    client.latest_readings(10, 1).await.expect("first read");
    sim.simulator.inject(
        Fault::Slow(Duration::from_secs(5)),
        Some(Endpoint::ReadGlucose),
        1,
    );
    let started = std::time::Instant::now();
    let err = client.latest_readings(10, 1).await.unwrap_err();
    assert_eq!(err.reason(), ErrorReason::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "gave up at the timeout"
    );
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 1, 2));
    sim.stop().await;
}

#[tokio::test]
async fn refused_connection_is_a_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = format!("http://{addr}/ShareWebServices/Services/");
    let mut client =
        ShareClient::new(settings(&base, Login::Username(USERNAME.into()), PASSWORD)).unwrap();
    let err = client.latest_readings(10, 1).await.unwrap_err();
    assert_eq!(err.reason(), ErrorReason::Connection);
    assert!(!err.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn no_follower_gives_an_empty_list() {
    let mut scenario = scenario(FIVE_MINUTES);
    scenario.accounts[0].has_follower = false;
    let sim = start(scenario).await;
    let readings = client(&sim, USERNAME, PASSWORD)
        .latest_readings(1440, 288)
        .await
        .unwrap();
    assert!(readings.is_empty());
    assert_eq!(sim.simulator.request_counts(USERNAME), counts(1, 1, 1));
    sim.stop().await;
}

#[tokio::test]
async fn legacy_wire_format_reads_the_same_values() {
    let sim = start(Scenario {
        legacy_format: true,
        ..scenario(FIVE_MINUTES)
    })
    .await;
    let readings = client(&sim, USERNAME, PASSWORD)
        .latest_readings(40, 6)
        .await
        .unwrap();
    let served = served_from(&sim, &readings);
    assert_eq!(readings.len(), 6);
    assert!(served.len() >= 6, "the simulator served {}", served.len());
    for (got, want) in readings.iter().zip(&served) {
        assert_eq!(
            (got.timestamp_ms, got.mg_per_dl, got.trend),
            (want.sensor_ms, want.mg_per_dl, want.trend)
        );
    }
    sim.stop().await;
}

#[tokio::test]
async fn out_of_range_parameters_are_refused_before_sending() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let mut client = client(&sim, USERNAME, PASSWORD);
    for (minutes, max_count) in [(0, 1), (1441, 1), (10, 0), (10, 577)] {
        let err = client
            .latest_readings(minutes, max_count)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ShareError::InvalidRequest { .. }),
            "{minutes}/{max_count}"
        );
    }
    assert_eq!(sim.simulator.total_request_counts(), counts(0, 0, 0));
    sim.stop().await;
}

#[tokio::test]
async fn sends_json_headers_and_a_named_user_agent() {
    // A raw socket stands in for Share to capture exactly what the client sends.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let capture = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 8192];
        let n = socket.read(&mut buf).await.unwrap();
        socket
            .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).to_lowercase()
    });
    let base = format!("http://{addr}/ShareWebServices/Services/");
    let mut client =
        ShareClient::new(settings(&base, Login::Username(USERNAME.into()), PASSWORD)).unwrap();
    let err = client.latest_readings(10, 1).await.unwrap_err();
    // An empty 500 is not Share's JSON: the edge (or something before Share) failed.
    assert_eq!(err.reason(), ErrorReason::EdgeError);
    let request = capture.await.unwrap();
    assert!(
        request.starts_with("post /sharewebservices/services/general/authenticatepublisheraccount"),
        "{request}"
    );
    assert!(request.contains("accept: application/json"), "{request}");
    assert!(
        request.contains("content-type: application/json"),
        "{request}"
    );
    assert!(
        request.contains(&format!(
            "user-agent: dexcom_exporter/{}",
            env!("CARGO_PKG_VERSION")
        )),
        "{request}"
    );
}

#[tokio::test]
async fn a_base_url_without_the_share_path_says_so() {
    let sim = start(scenario(FIVE_MINUTES)).await;
    let bare = format!("http://{}/", sim.addr());
    let mut client = ShareClient::new(settings(
        &bare,
        Login::Username(USERNAME.to_owned()),
        PASSWORD,
    ))
    .unwrap();
    let error = client.latest_readings(10, 1).await.unwrap_err().to_string();
    assert!(
        error.contains("404") && error.contains("lacks the Share path"),
        "{error}"
    );
    sim.stop().await;
}

/// A Share (or a proxy) that echoes the password in its error, escaped as JSON may escape it
/// (`\/`, `\uXXXX`): the password is in no error text, however it was escaped, for passwords
/// holding `/`, `"`, `\` and characters beyond ASCII.
#[tokio::test]
async fn an_echoed_password_is_scrubbed_however_json_escapes_it() {
    for password in ["pa/ss-kit-77", "qu\"o\\te/ü", "密码/ß\\\"x"] {
        let mut spec = scenario(FIVE_MINUTES);
        spec.accounts[0].password = password.to_owned();
        let sim = start(spec).await;
        let json = serde_json::to_string(password).unwrap();
        let slashed = json.trim_matches('"').replace('/', "\\/");
        let unicode: String = password
            .encode_utf16()
            .map(|u| format!("\\u{u:04x}"))
            .collect();
        for echoed in [slashed, unicode] {
            sim.simulator.inject(
                Fault::Raw {
                    status: 500,
                    content_type: "application/json",
                    body: format!(
                        r#"{{"Code":"SSO_InternalError","Message":"Authentication failed for password {echoed}"}}"#
                    ),
                },
                Some(Endpoint::Authenticate),
                1,
            );
            let mut client = client(&sim, USERNAME, password);
            let error = client.latest_readings(10, 1).await.unwrap_err();
            for text in [error.to_string(), format!("{error:?}")] {
                assert!(!text.contains(password), "{password:?} in {text}");
                assert!(!text.contains(&echoed), "{echoed:?} in {text}");
            }
        }
        sim.stop().await;
    }
}
