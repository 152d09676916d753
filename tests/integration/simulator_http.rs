//! The simulator's wire behaviour seen from raw HTTP, as real Share clients send it: parameter
//! spellings and places, the retired endpoint, argument errors, and routing.

use std::time::Duration;

use crate::common::{PASSWORD, USERNAME, scenario, start};
use dexcom_exporter::share::Region;

async fn post(url: &str, body: serde_json::Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn wire_behaviour() {
    let sim = start(scenario(Duration::from_secs(300))).await;
    let base = sim.base_url();
    let app = Region::Us.application_id();

    let (status, account_id) = post(
        &format!("{base}General/AuthenticatePublisherAccount"),
        serde_json::json!({"accountName": USERNAME, "password": PASSWORD, "applicationId": app}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(account_id.len(), 38, "a quoted UUID: {account_id}");
    let account_id: String = serde_json::from_str(&account_id).unwrap();
    let (status, session) = post(
        &format!("{base}General/LoginPublisherAccountById"),
        serde_json::json!({"accountId": account_id, "password": PASSWORD, "applicationId": app}),
    )
    .await;
    assert_eq!(status, 200);
    let session: String = serde_json::from_str(&session).unwrap();

    // Query parameters, with the bridge's `sessionID` spelling.
    let (status, body) = post(
        &format!("{base}Publisher/ReadPublisherLatestGlucoseValues?sessionID={session}&minutes=30&maxCount=3"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(body.starts_with("[{\"WT\":\"Date("), "{body}");
    // Parameters in the JSON body instead, as the Go and Dart clients send them.
    let (status, body) = post(
        &format!("{base}Publisher/ReadPublisherLatestGlucoseValues"),
        serde_json::json!({"sessionId": session, "minutes": 1440, "maxCount": 1}),
    )
    .await;
    assert_eq!(
        (
            status,
            serde_json::from_str::<Vec<serde_json::Value>>(&body)
                .unwrap()
                .len()
        ),
        (200, 1)
    );
    // minutes=0 and maxCount=0 are empty lists, not errors.
    for query in ["minutes=0&maxCount=1", "minutes=10&maxCount=0"] {
        let (status, body) = post(
            &format!(
                "{base}Publisher/ReadPublisherLatestGlucoseValues?sessionId={session}&{query}"
            ),
            serde_json::json!({}),
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "[]"), "{query}");
    }
    // The nil session answers with an empty non-JSON 500; a malformed one with InvalidArgument.
    let (status, body) = post(
        &format!("{base}Publisher/ReadPublisherLatestGlucoseValues?sessionId=00000000-0000-0000-0000-000000000000&minutes=10&maxCount=1"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!((status, body.as_str()), (500, ""));
    let (status, body) = post(
        &format!("{base}Publisher/ReadPublisherLatestGlucoseValues?sessionId=bad-session-id&minutes=10&maxCount=1"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 500);
    assert!(body.contains("\"Code\":\"InvalidArgument\""), "{body}");
    // An unknown session is SessionIdNotFound.
    let (status, body) = post(
        &format!("{base}Publisher/ReadPublisherLatestGlucoseValues?sessionId=33333333-3333-3333-3333-333333333333&minutes=10&maxCount=1"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        body.contains("\"Code\":\"SessionIdNotFound\"")
            && body.contains("\"TypeName\":\"FaultException\""),
        "{body}"
    );

    // LoginById edge cases recorded from the real server.
    let login = format!("{base}General/LoginPublisherAccountById");
    let (status, body) = post(
        &login,
        serde_json::json!({"accountId": "", "password": PASSWORD, "applicationId": app}),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "\"00000000-0000-0000-0000-000000000000\"")
    );
    let (status, body) = post(
        &login,
        serde_json::json!({"accountId": 1, "password": PASSWORD, "applicationId": app}),
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        body.contains("InvalidArgument")
            && body.contains("UUID has to be represented by standard 36-char representation"),
        "{body}"
    );
    // The retired endpoint still answers, with the nil UUID.
    let (status, body) = post(
        &format!("{base}General/LoginPublisherAccountByName"),
        serde_json::json!({"accountName": USERNAME, "password": PASSWORD, "applicationId": app}),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "\"00000000-0000-0000-0000-000000000000\"")
    );

    // Routing: GET is not allowed, other paths do not exist.
    let get = reqwest::get(format!("{base}General/AuthenticatePublisherAccount"))
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
    let missing = reqwest::get(format!("http://{}/elsewhere", sim.addr()))
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    sim.stop().await;
}
