//! Share as it really answered: pydexcom's recordings of `share2.dexcom.com` (April and June
//! 2025, `tests/fixtures/share-recorded/`) replayed verbatim by the test kit's replay server,
//! through the client and through the real exporter. Each answer is classified as the model
//! says (`AccountPasswordInvalid`: auth failed; `SessionIdNotFound`: session expired, one
//! re-login; an empty list: no readings; the 2025 reading: shown, aged by Share's recorded
//! clock), and each flow ends as the gate says (a rejection held after one request).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use dexcom_exporter::clock::ScaledClock;
use dexcom_exporter::share::{ErrorReason, Login, ShareClient, ShareError, Trend};
use dexcom_testkit::replay::{RecordedReply, ReplayServer, load};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{TestEnv, sample, settings, spawn_exporter_with_clock};

const AUTHENTICATE: &str = "General/AuthenticatePublisherAccount";
const LOGIN_BY_ID: &str = "General/LoginPublisherAccountById";
const READ: &str = "Publisher/ReadPublisherLatestGlucoseValues";
/// The account ID pydexcom's recordings were sanitised to (the real account's).
const REAL_ACCOUNT_ID: &str = "99999999-9999-9999-9999-999999999999";
/// The reading of 2025-04-19 16:43:33.817 UTC, the first the recordings served.
const RECORDED_READING_MS: i64 = 1_745_081_013_817;
/// The first `Date` of the session-expired recording, 2025-04-19 16:46:06 UTC.
const RECORDED_DATE_S: u64 = 1_745_081_166;
/// The first `Date` of the latest-reading recording, 2025-04-19 16:46:05 UTC.
const LATEST_DATE_S: u64 = 1_745_081_165;

pub(crate) fn recording(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/share-recorded/pydexcom")
        .join(name)
}

pub(crate) fn replies(names: &[&str]) -> Vec<RecordedReply> {
    names.iter().flat_map(|n| load(&recording(n))).collect()
}

/// Every recorded login: its file, how it logs in, and whether Share accepted it.
fn recorded_logins() -> Vec<(String, Login, bool)> {
    let mut out = Vec::new();
    for region in ["us", "ous"] {
        for who in ["name-real", "name-unknown", "id-real", "id-unknown"] {
            for password in ["pw-real", "pw-wrong"] {
                let login = match who {
                    "name-real" => Login::Username("u$ern@me".into()),
                    "name-unknown" => Login::Username("username".into()),
                    "id-real" => Login::AccountId(REAL_ACCOUNT_ID.parse().unwrap()),
                    _ => Login::AccountId("77777777-7777-7777-7777-777777777777".parse().unwrap()),
                };
                // Only the real account, its password, in its own region (US).
                let accepted = region == "us" && who.ends_with("-real") && password == "pw-real";
                out.push((
                    format!("login/{region}-{who}-{password}.yaml"),
                    login,
                    accepted,
                ));
            }
        }
    }
    out
}

/// The endpoint a login's password goes to first.
fn password_endpoint(login: &Login) -> &'static str {
    match login {
        Login::Username(_) => AUTHENTICATE,
        Login::AccountId(_) => LOGIN_BY_ID,
    }
}

/// One raw request, and the raw answer up to the end of the body.
async fn raw_post(server: &ReplayServer, endpoint: &str) -> String {
    let base: reqwest::Url = server.base_url().parse().unwrap();
    let addr = format!("{}:{}", base.host_str().unwrap(), base.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {}{endpoint} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        base.path()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // The server keeps the connection; the end of the answer is enough.
    while !answer.ends_with(b"0\r\n\r\n") && !answer.ends_with(b"\"}") && !answer.ends_with(b"\"") {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn the_replay_is_verbatim_and_share_s_date_runs_on_from_the_recording() {
    let server = ReplayServer::start(replies(&[
        "readings/get-current-glucose-reading-session-expired.yaml",
    ]))
    .await;
    // An error as recorded: HTTP 500 with Content-Length, Cloudflare's headers, Share's body.
    let error = raw_post(&server, READ).await;
    assert!(
        error.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
        "{error}"
    );
    for header in [
        "Content-Length: 750\r\n",
        "Server: cloudflare\r\n",
        "CF-RAY: 932de047af6632c8-PHL\r\n",
    ] {
        assert!(error.contains(header), "{header} in {error}");
    }
    assert!(
        error.ends_with(r#"/>","TypeName":"FaultException"}"#),
        "{error}"
    );
    assert!(error.contains("Date: Sat, 19 Apr 2025 16:46:0"), "{error}");
    // A reading as recorded: chunked, no Content-Length.
    let reading = raw_post(&server, READ).await;
    assert!(
        reading.starts_with("HTTP/1.1 200 OK\r\n")
            && reading.contains("Transfer-Encoding: chunked\r\n")
    );
    assert!(
        !reading.to_ascii_lowercase().contains("content-length"),
        "{reading}"
    );
    assert!(
        reading.contains(&format!(
            "\r\n74\r\n[{{\"WT\":\"Date({RECORDED_READING_MS})\""
        )),
        "{reading}"
    );
    assert_eq!(
        (server.requests(READ), server.requests(AUTHENTICATE)),
        (2, 0)
    );
}

#[tokio::test]
async fn the_client_reads_every_recorded_login_as_the_model_says() {
    for (file, login, accepted) in recorded_logins() {
        let mut names = vec![file.as_str()];
        if accepted {
            names.push("readings/get-latest-glucose-reading.yaml");
        }
        let server = ReplayServer::start(replies(&names)).await;
        let first = password_endpoint(&login);
        let mut client =
            ShareClient::new(settings(&server.base_url(), login.clone(), "p@$$w0rd")).unwrap();
        let result = client.latest_batch(1440, 1).await;
        if accepted {
            let read = result.unwrap_or_else(|e| panic!("{file}: {e}"));
            let reading = &read.batch.readings[0];
            assert_eq!(
                (reading.timestamp_ms, reading.mg_per_dl, reading.trend),
                (RECORDED_READING_MS, 224, Trend::Flat),
                "{file}"
            );
            assert_eq!(reading.utc_offset_minutes, Some(-240), "{file}");
            assert_eq!(server.requests(LOGIN_BY_ID), 1, "{file}");
        } else {
            let error = result.unwrap_err();
            assert_eq!(error.reason(), ErrorReason::AuthFailed, "{file}: {error}");
            assert!(
                error.to_string().contains("AccountPasswordInvalid"),
                "{error}"
            );
            assert_eq!(server.requests(first), 1, "{file}");
            assert_eq!(server.requests(READ), 0, "{file}");
        }
    }
}

#[tokio::test]
async fn the_client_reads_the_recorded_readings_as_the_model_says() {
    // An empty list is no readings, not an error.
    for empty in ["0-0", "0-10", "1-0"] {
        let name = format!("readings/get-glucose-readings-{empty}.yaml");
        let server = ReplayServer::start(replies(&["readings/dexcom.yaml", &name])).await;
        let login = Login::AccountId(REAL_ACCOUNT_ID.parse().unwrap());
        let mut client = ShareClient::new(settings(&server.base_url(), login, "p@$$w0rd")).unwrap();
        assert!(
            client.latest_readings(1440, 1).await.unwrap().is_empty(),
            "{name}"
        );
    }
    // SessionIdNotFound right after the login that made the session: session expired, and no
    // second login at once (a server that does so forever must not get a login per read);
    // the next read logs in again by ID, once, and gets the reading. Share's clock is the
    // recorded one.
    let server = ReplayServer::start(replies(&[
        "readings/get-current-glucose-reading-session-expired.yaml",
    ]))
    .await;
    let login = Login::AccountId(REAL_ACCOUNT_ID.parse().unwrap());
    let mut client = ShareClient::new(settings(&server.base_url(), login, "p@$$w0rd")).unwrap();
    let error = client.latest_batch(10, 1).await.unwrap_err();
    assert_eq!(error.reason(), ErrorReason::SessionExpired, "{error}");
    assert!(
        !error.to_string().contains("3333"),
        "the session ID is not repeated: {error}"
    );
    // Within the same reading interval the gate holds the re-login back: nothing is sent.
    let held = client.latest_batch(10, 1).await.unwrap_err();
    assert!(
        matches!(
            held,
            ShareError::LoginDeferred {
                confirmed: true,
                ..
            }
        ),
        "{held}"
    );
    assert_eq!(
        (server.requests(LOGIN_BY_ID), server.requests(READ)),
        (1, 1)
    );
}

/// The real exporter on one recording, polling every 500 ms, on this host's clock.
async fn exporter_on(server: &ReplayServer, login: &Login) -> crate::common::RunningExporter {
    exporter_at(server, login, Arc::new(dexcom_exporter::clock::SystemClock)).await
}

/// The same, with `clock` as this host's clock.
async fn exporter_at(
    server: &ReplayServer,
    login: &Login,
    clock: Arc<dyn dexcom_exporter::clock::Clock>,
) -> crate::common::RunningExporter {
    let who = match login {
        Login::Username(name) => ["--dexcom.username".to_owned(), name.clone()],
        Login::AccountId(id) => ["--dexcom.account-id".to_owned(), id.to_string()],
    };
    let base = server.base_url();
    let args = [
        who[0].as_str(),
        who[1].as_str(),
        "--dexcom.base-url",
        &base,
        "--dexcom.reading-interval",
        "500ms",
    ];
    spawn_exporter_with_clock(&args, &TestEnv::password("p@$$w0rd"), clock).await
}

fn account(login: &Login) -> String {
    match login {
        Login::Username(name) => format!("account=\"{name}\""),
        Login::AccountId(id) => format!("account=\"{id}\""),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_holds_every_recorded_rejection_after_one_request() {
    let rejected: Vec<_> = recorded_logins().into_iter().filter(|l| !l.2).collect();
    let mut runs = Vec::new();
    for (file, login, _) in rejected {
        let server = ReplayServer::start(replies(&[&file])).await;
        let exporter = exporter_on(&server, &login).await;
        runs.push((file, login, server, exporter));
    }
    for (file, login, _, exporter) in &runs {
        let labels = format!("{},reason=\"auth_failed\"", account(login));
        crate::common::scrape_until(exporter, Duration::from_secs(10), |s| {
            sample(s, "dexcom_poll_errors_total", &labels).filter(|n| *n >= 1.0)
        })
        .await;
        let _ = file;
    }
    // Three more intervals: the gate holds the password; nothing more reaches Share.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (file, login, server, exporter) in runs {
        let scrape = crate::common::get(&exporter.url("/metrics")).await.1;
        let acc = account(&login);
        let held = format!("{acc},reason=\"auth_failed\"");
        assert_eq!(
            sample(&scrape, "dexcom_login_hold_reason", &held),
            Some(1.0),
            "{file}"
        );
        let status = format!("{acc},status=\"login_held\"");
        assert_eq!(
            sample(&scrape, "dexcom_account_status", &status),
            Some(1.0),
            "{file}"
        );
        let requests = server.requests(AUTHENTICATE) + server.requests(LOGIN_BY_ID);
        assert_eq!(requests, 1, "{file}: password-bearing requests");
        assert_eq!(server.requests(READ), 0, "{file}");
        exporter.stop().await;
    }
}

/// The replay of pydexcom's shared login and the readings recording `readings`, and the
/// exporter on it (logging in by the real account's ID); the account's label.
async fn exporter_on_readings(
    readings: &str,
) -> (ReplayServer, crate::common::RunningExporter, String) {
    let server = ReplayServer::start(replies(&["readings/dexcom.yaml", readings])).await;
    let login = Login::AccountId(REAL_ACCOUNT_ID.parse().unwrap());
    let exporter = exporter_on(&server, &login).await;
    (server, exporter, account(&login))
}

/// Scrapes until the account shows a value, asserts it is the recorded 224 mg/dL, and returns
/// the scrape.
async fn shows_the_recorded_reading(
    exporter: &crate::common::RunningExporter,
    acc: &str,
) -> String {
    let scrape = crate::common::scrape_until(exporter, Duration::from_secs(10), |s| {
        sample(s, "dexcom_glucose_mg_per_dl", acc).map(|_| s.to_owned())
    })
    .await;
    assert_eq!(
        sample(&scrape, "dexcom_glucose_mg_per_dl", acc),
        Some(224.0)
    );
    scrape
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_shows_the_2025_reading_aged_by_share_s_clock() {
    let (server, exporter, acc) =
        exporter_on_readings("readings/get-latest-glucose-reading.yaml").await;
    let scrape = shows_the_recorded_reading(&exporter, &acc).await;
    assert_eq!(sample(&scrape, "dexcom_glucose_trend", &acc), Some(4.0));
    assert_eq!(
        sample(&scrape, "dexcom_glucose_reading_timestamp_seconds", &acc),
        Some(RECORDED_READING_MS as f64 / 1000.0)
    );
    // Aged by Share's clock (16:46:05 on the day, running on), not by this host's (2026).
    let age = sample(&scrape, "dexcom_glucose_reading_age_seconds", &acc).unwrap();
    let at_recording = LATEST_DATE_S as f64 - RECORDED_READING_MS as f64 / 1000.0;
    assert!(
        (at_recording - 1.0..at_recording + 15.0).contains(&age),
        "age {age} s"
    );
    let ok = format!("{acc},status=\"ok\"");
    assert_eq!(sample(&scrape, "dexcom_account_status", &ok), Some(1.0));
    assert_eq!(server.requests(LOGIN_BY_ID), 1);
    exporter.stop().await;
}

/// The two logins Share accepted (by ID; by name, then ID), each with a readings recording not
/// used elsewhere: the exporter shows the recorded reading after exactly those requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_logs_in_through_each_recorded_accepted_login() {
    let flows = [
        (
            "login/us-id-real-pw-real.yaml",
            "readings/get-current-glucose-reading.yaml",
            Login::AccountId(REAL_ACCOUNT_ID.parse().unwrap()),
            0,
        ),
        (
            "login/us-name-real-pw-real.yaml",
            "readings/get-glucose-readings-1-10.yaml",
            Login::Username("u$ern@me".into()),
            1,
        ),
    ];
    for (login_file, readings, login, authentications) in flows {
        let server = ReplayServer::start(replies(&[login_file, readings])).await;
        let exporter = exporter_on(&server, &login).await;
        // The recording holds three reads (224, 216, then 175 mg/dL, each newer): the exporter
        // may have made more than one by the first scrape, and shows the newest it got.
        let acc = account(&login);
        let scrape = crate::common::scrape_until(&exporter, Duration::from_secs(10), |s| {
            sample(s, "dexcom_glucose_mg_per_dl", &acc).map(|_| s.to_owned())
        })
        .await;
        let shown = sample(&scrape, "dexcom_glucose_mg_per_dl", &acc);
        assert!(
            [224.0, 216.0, 175.0].map(Some).contains(&shown),
            "{login_file}: {shown:?}"
        );
        assert_eq!(
            server.requests(AUTHENTICATE),
            authentications,
            "{login_file}"
        );
        assert_eq!(server.requests(LOGIN_BY_ID), 1, "{login_file}");
        exporter.stop().await;
    }
}

/// Share ended the session right after the login that made it (`SessionIdNotFound`, as
/// recorded): the exporter logs in again once, at the next poll, and shows the reading. The
/// host's clock agrees with Share's recorded one here; a host clock far from Share's is the
/// clock tests' concern.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_logs_in_again_once_when_a_recorded_session_ends() {
    // The first recording session only (2025-04-19 16:46:06): not found, login, reading.
    let mut recorded = replies(&["readings/get-current-glucose-reading-session-expired.yaml"]);
    recorded.truncate(3);
    let server = ReplayServer::start(recorded).await;
    let login = Login::AccountId(REAL_ACCOUNT_ID.parse().unwrap());
    let host = ScaledClock::new(UNIX_EPOCH + Duration::from_secs(RECORDED_DATE_S), 1.0);
    let exporter = exporter_at(&server, &login, Arc::new(host)).await;
    let acc = account(&login);
    let scrape = shows_the_recorded_reading(&exporter, &acc).await;
    let expired = format!("{acc},reason=\"session_expired\"");
    assert_eq!(
        sample(&scrape, "dexcom_poll_errors_total", &expired),
        Some(1.0)
    );
    // Three more intervals on the same session: the first login and one re-login, no more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let scrape = crate::common::get(&exporter.url("/metrics")).await.1;
    assert_eq!(server.requests(LOGIN_BY_ID), 2);
    assert_eq!(sample(&scrape, "dexcom_logins_total", &acc), Some(2.0));
    assert!(
        server.requests(READ) >= 4,
        "polls go on: {}",
        server.requests(READ)
    );
    assert_eq!(
        sample(&scrape, "dexcom_poll_errors_total", &expired),
        Some(1.0)
    );
    let ok = format!("{acc},status=\"ok\"");
    assert_eq!(sample(&scrape, "dexcom_account_status", &ok), Some(1.0));
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_says_no_readings_for_a_recorded_empty_list() {
    let (server, exporter, acc) =
        exporter_on_readings("readings/get-glucose-readings-0-10.yaml").await;
    let status = format!("{acc},status=\"no_readings\"");
    let scrape = crate::common::scrape_until(&exporter, Duration::from_secs(10), |s| {
        (sample(s, "dexcom_account_status", &status) == Some(1.0)).then(|| s.to_owned())
    })
    .await;
    assert_eq!(sample(&scrape, "dexcom_up", &acc), Some(1.0));
    assert_eq!(sample(&scrape, "dexcom_glucose_mg_per_dl", &acc), None);
    assert_eq!(server.requests(LOGIN_BY_ID), 1);
    exporter.stop().await;
}
