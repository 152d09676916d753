//! The simulator against Share's recordings: for each situation Share was recorded in (a
//! rejected password, each login accepted, an unknown session, a reading, an empty list), the
//! simulator in the same situation answers with the same status, the same `Content-Type`, the
//! same framing (chunked or `Content-Length`), every header the recording has (but the
//! connection's own and cookies), and the same JSON shape and words. Where they differed, the
//! simulator was changed (docs/simulator.md says what).

use std::time::Duration;

use dexcom_exporter::simulator::RunningSimulator;
use dexcom_testkit::replay::RecordedReply;

use crate::common::{PASSWORD, USERNAME, scenario, start};
use crate::replay::replies;

const APP_ID: &str = "d89443d2-327c-4a6f-89e5-496bbb0317db";
const UNKNOWN_SESSION: &str = "33333333-3333-3333-3333-333333333333";

/// The first reply of recording `name` to `endpoint`.
fn recorded(name: &str, endpoint: &str) -> RecordedReply {
    replies(&[name])
        .into_iter()
        .find(|r| r.endpoint == endpoint)
        .unwrap_or_else(|| panic!("{name} answers {endpoint}"))
}

async fn post(
    sim: &RunningSimulator,
    endpoint: &str,
    query: &str,
    body: String,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{endpoint}{query}", sim.base_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The JSON value's shape: object keys (sorted, recursively into the first array element).
fn shape(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().cloned().collect();
            keys.sort();
            format!("{{{}}}", keys.join(","))
        }
        serde_json::Value::Array(rows) => {
            format!("[{}]", rows.first().map(shape).unwrap_or_default())
        }
        serde_json::Value::String(_) => "string".to_owned(),
        other => other.to_string(),
    }
}

/// Asserts the simulator's `answer` matches `recorded` in all but the values that vary.
async fn assert_answers_alike(what: &str, recorded: &RecordedReply, answer: reqwest::Response) {
    assert_eq!(answer.status().as_u16(), recorded.status, "{what}: status");
    let headers = answer.headers().clone();
    for (name, _) in &recorded.headers {
        if ["connection", "set-cookie"].contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        assert!(
            headers.contains_key(name.to_ascii_lowercase().as_str()),
            "{what}: no {name}"
        );
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    assert_eq!(
        content_type,
        recorded
            .header("content-type")
            .and_then(|v| v.first())
            .map(String::as_str),
        "{what}: content type"
    );
    assert_eq!(
        headers.contains_key("content-length"),
        !recorded.chunked(),
        "{what}: framing (chunked: {})",
        recorded.chunked()
    );
    let body: serde_json::Value = answer.json().await.unwrap();
    let recorded_body: serde_json::Value = serde_json::from_str(&recorded.body).unwrap();
    assert_eq!(shape(&body), shape(&recorded_body), "{what}: JSON shape");
    for field in ["Code", "Message", "TypeName"] {
        assert_eq!(body.get(field), recorded_body.get(field), "{what}: {field}");
    }
}

const AUTHENTICATE: &str = "General/AuthenticatePublisherAccount";
const LOGIN_BY_ID: &str = "General/LoginPublisherAccountById";
const READ: &str = "Publisher/ReadPublisherLatestGlucoseValues";

/// The body of a login by name.
fn by_name(name: &str, password: &str) -> String {
    serde_json::json!({"accountName": name, "password": password, "applicationId": APP_ID})
        .to_string()
}

/// The body of a login by account ID.
fn by_id(id: &str, password: &str) -> String {
    serde_json::json!({"accountId": id, "password": password, "applicationId": APP_ID}).to_string()
}

/// Logs in by name, then by ID: the account ID and a session ID.
async fn log_in(sim: &RunningSimulator, name: &str, password: &str) -> (String, String) {
    let id: String = post(sim, AUTHENTICATE, "", by_name(name, password))
        .await
        .json()
        .await
        .unwrap();
    let session: String = post(sim, LOGIN_BY_ID, "", by_id(&id, password))
        .await
        .json()
        .await
        .unwrap();
    (id, session)
}

#[tokio::test]
async fn the_simulator_answers_as_share_did_in_the_recordings() {
    let mut spec = scenario(Duration::from_secs(300));
    let mut without_follower =
        dexcom_exporter::simulator::AccountSpec::new("nobody", "pw-of-nobody");
    without_follower.has_follower = false;
    spec.accounts.push(without_follower);
    let sim = start(spec).await;
    let query = |session: &str| format!("?sessionId={session}&minutes=1440&maxCount=1");
    let (account_id, session) = log_in(&sim, USERNAME, PASSWORD).await;
    let (_, nobody_session) = log_in(&sim, "nobody", "pw-of-nobody").await;
    let cases = [
        (
            "a wrong password",
            ("login/us-name-real-pw-wrong.yaml", AUTHENTICATE),
            (AUTHENTICATE, String::new(), by_name(USERNAME, "wrong")),
        ),
        (
            "the account ID",
            ("login/us-name-real-pw-real.yaml", AUTHENTICATE),
            (AUTHENTICATE, String::new(), by_name(USERNAME, PASSWORD)),
        ),
        (
            "a session ID",
            ("login/us-id-real-pw-real.yaml", LOGIN_BY_ID),
            (LOGIN_BY_ID, String::new(), by_id(&account_id, PASSWORD)),
        ),
        (
            "an unknown session",
            (
                "readings/get-current-glucose-reading-session-expired.yaml",
                READ,
            ),
            (READ, query(UNKNOWN_SESSION), "{}".to_owned()),
        ),
        (
            "a reading",
            ("readings/get-latest-glucose-reading.yaml", READ),
            (READ, query(&session), "{}".to_owned()),
        ),
        (
            "an empty list",
            ("readings/get-glucose-readings-0-10.yaml", READ),
            (READ, query(&nobody_session), "{}".to_owned()),
        ),
    ];
    for (what, (file, recorded_endpoint), (endpoint, query, body)) in cases {
        let answer = post(&sim, endpoint, &query, body).await;
        assert_answers_alike(what, &recorded(file, recorded_endpoint), answer).await;
    }
    sim.stop().await;
}
