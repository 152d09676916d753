//! `dexcom_exporter check` as a new user runs it: the binary with the same flags and
//! environment as the service, against the simulator's faults; each diagnosis names the
//! likely causes in order, and a password the gate holds back is not sent.

use std::process::Command;
use std::time::Duration;

use crate::common::{PASSWORD, USERNAME, scenario, start};
use crate::harness::ScratchDir;

fn check(
    base_url: &str,
    password: &str,
    storage: Option<&std::path::Path>,
    json: bool,
) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dexcom_exporter"));
    command
        .arg("check")
        .args(["--dexcom.username", USERNAME, "--dexcom.base-url", base_url])
        .env("DEXCOM_PASSWORD", password)
        // Times are local with the zone: India's has no summer time, so it reads the same all year.
        .env("TZ", "Asia/Kolkata")
        .env_remove("DEXCOM_EXPORTER_CONFIG_FILE")
        .env_remove("STATE_DIRECTORY");
    if let Some(storage) = storage {
        command.arg("--storage.path").arg(storage);
    }
    crate::common::isolate_state(&mut command);
    if json {
        command.args(["--output", "json"]);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_account_is_one_line_with_value_trend_age_region_and_host() {
    let sim = start(scenario(Duration::from_secs(300))).await;
    let base = sim.base_url();
    let (code, text) = tokio::task::spawn_blocking(move || check(&base, PASSWORD, None, false))
        .await
        .unwrap();
    assert_eq!(code, 0, "{text}");
    let port = sim.addr().port();
    assert!(
        text.starts_with(&format!("ok    {USERNAME}: "))
            && text.contains(" mg/dL (")
            && text.contains(" mmol/L), ")
            && text.contains(" old; region us, 127.0.0.1:")
            && text.contains(&port.to_string()),
        "{text}"
    );
    let base = sim.base_url();
    let (code, json) = tokio::task::spawn_blocking(move || check(&base, PASSWORD, None, true))
        .await
        .unwrap();
    assert_eq!(code, 0);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["ok"], true);
    let account = &parsed["accounts"][0];
    assert_eq!(account["account"], USERNAME);
    assert!(account["reading"]["mg_per_dl"].as_u64().unwrap() >= 39);
    assert_eq!(account["reading"]["current"], true);
    assert_eq!(account["password_sent"], true);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_password_names_the_region_first_and_a_held_one_is_not_sent_again() {
    let sim = start(scenario(Duration::from_secs(300))).await;
    let state = ScratchDir::new();
    let storage = state.path().join("state");
    let (base, dir) = (sim.base_url(), storage.clone());
    let (code, text) =
        tokio::task::spawn_blocking(move || check(&base, "not-the-password", Some(&dir), false))
            .await
            .unwrap();
    assert_eq!(code, 1, "{text}");
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} in {text}"))
    };
    assert!(
        text.contains("FAIL  ") && text.contains("rejected"),
        "{text}"
    );
    // In the order of likelihood: region, publisher, username form, attempts left.
    assert!(at("1. the region") < at("2. these must be the publisher's"));
    assert!(at("2. these must be") < at("3. username, e-mail or phone"));
    assert!(text.contains("the gate allows 3 more"), "{text}");
    // The next attempt in the machine's local time, with its zone.
    let next = &text[at("the next at ")..];
    assert!(
        next.lines()
            .next()
            .unwrap_or_default()
            .contains(" IST (+05:30)"),
        "{text}"
    );
    assert!(text.contains("ous (shareous1.dexcom.com)"), "{text}");
    assert!(!text.contains("not-the-password"));
    assert_eq!(sim.simulator.request_counts(USERNAME).authenticate, 1);
    // Again at once: the gate holds the password; nothing is sent.
    let (base, dir) = (sim.base_url(), storage.clone());
    let (code, text) =
        tokio::task::spawn_blocking(move || check(&base, "not-the-password", Some(&dir), true))
            .await
            .unwrap();
    assert_eq!(code, 1);
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    let account = &parsed["accounts"][0];
    assert_eq!(account["password_sent"], false);
    assert!(
        account["problem"]
            .as_str()
            .unwrap()
            .contains("holds the password until"),
        "{text}"
    );
    assert!(
        account["problem"]
            .as_str()
            .unwrap()
            .contains(" IST (+05:30) ("),
        "local time with the zone: {text}"
    );
    assert_eq!(
        sim.simulator.request_counts(USERNAME).authenticate,
        1,
        "not sent"
    );
    // The corrected password is tried at once.
    let (base, dir) = (sim.base_url(), storage.clone());
    let (code, text) =
        tokio::task::spawn_blocking(move || check(&base, PASSWORD, Some(&dir), false))
            .await
            .unwrap();
    assert_eq!(code, 0, "{text}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_follower_says_sharing() {
    let mut spec = scenario(Duration::from_secs(300));
    spec.accounts[0].has_follower = false;
    let sim = start(spec).await;
    let base = sim.base_url();
    let (code, text) = tokio::task::spawn_blocking(move || check(&base, PASSWORD, None, false))
        .await
        .unwrap();
    assert_eq!(code, 1);
    assert!(
        text.contains("Share has no readings")
            && text.contains("1. sharing is off")
            && text.contains("2. no follower"),
        "{text}"
    );
    sim.stop().await;
}

/// Cloudflare's own answers, on the login and on the read: `check` says it was the web front,
/// not the password, and that the exporter will retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_answer_says_cloudflare_refused_and_not_the_password() {
    use dexcom_exporter::share::Endpoint;
    use dexcom_exporter::simulator::Fault;
    let cases = [
        (Fault::EdgeChallenge, Endpoint::Authenticate),
        (
            Fault::EdgeRateLimited { status: 429 },
            Endpoint::ReadGlucose,
        ),
        (
            Fault::EdgeOriginError { status: 522 },
            Endpoint::ReadGlucose,
        ),
        (Fault::Html500, Endpoint::LoginById),
    ];
    for (fault, endpoint) in cases {
        let sim = start(scenario(Duration::from_secs(300))).await;
        sim.simulator.inject(fault.clone(), Some(endpoint), 1);
        // A state directory of its own: the gate's memory is per Dexcom identity, and every
        // simulator on loopback is the same host.
        let state = ScratchDir::new();
        let (base, dir) = (sim.base_url(), state.path().join("state"));
        let (code, text) =
            tokio::task::spawn_blocking(move || check(&base, PASSWORD, Some(&dir), false))
                .await
                .unwrap();
        assert_eq!(code, 1, "{fault:?}: {text}");
        assert!(
            text.contains("FAIL  ")
                && text.contains(
                    "1. Dexcom's web front (Cloudflare) refused this request: this is not your \
                     password; the Dexcom Follow app may still work; this exporter will retry."
                ),
            "{fault:?}: {text}"
        );
        assert!(
            !text.contains("the region") && !text.contains("publisher's"),
            "{text}"
        );
        sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_network_names_the_host_and_what_to_check() {
    // Nothing listens on this port: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = format!("http://127.0.0.1:{port}/ShareWebServices/Services/");
    let (code, text) = tokio::task::spawn_blocking(move || check(&refused, PASSWORD, None, false))
        .await
        .unwrap();
    assert_eq!(code, 1);
    assert!(
        text.contains(&format!("cannot connect to 127.0.0.1:{port}"))
            && text.contains("firewall")
            && text.contains("proxy"),
        "{text}"
    );
    // A name that never resolves (.invalid is reserved for that).
    let (code, text) = tokio::task::spawn_blocking(|| {
        check(
            "https://share.invalid/ShareWebServices/Services/",
            PASSWORD,
            None,
            false,
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1);
    assert!(
        text.contains("cannot resolve share.invalid")
            && text.contains("getent hosts share.invalid"),
        "{text}"
    );
}

/// Beside the running service (which holds the state directory), `check` sends no password:
/// it reports what the service shows for each account, from the service's own /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_the_running_service_check_reports_its_view_and_sends_nothing() {
    let options = crate::harness::AppOptions::new(Duration::from_secs(300), &[]).with_state_dir();
    let app = crate::harness::TestApp::start_with(options).await;
    app.scrape_until(Duration::from_secs(10), |s| {
        crate::common::sample(
            s,
            "dexcom_glucose_mg_per_dl",
            &format!("account=\"{USERNAME}\""),
        )
    })
    .await;
    let logins = app.counts().authenticate;
    let (base, storage, addr) = (
        app.sim.base_url(),
        app.dir_path().join("state"),
        app.exporter.addr.to_string(),
    );
    let (code, text, log) = tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_dexcom_exporter"))
            .arg("check")
            .args(["--dexcom.username", USERNAME, "--dexcom.base-url", &base])
            .args(["--web.listen-address", &addr])
            .arg("--storage.path")
            .arg(&storage)
            .env("DEXCOM_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{text}");
    // It says once, first, that it sent nothing, then the service's view of the account; and
    // no log line says it tries anything.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(text.matches("sent nothing").count(), 1, "{text}");
    assert!(
        lines[0].contains("`check` sent nothing to Dexcom"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!("ok    {USERNAME}: ")),
        "{text}"
    );
    assert!(!log.contains("trying it now"), "{log}");
    assert_eq!(
        app.counts().authenticate,
        logins,
        "no login beside the service"
    );
    app.stop().await;
}
