//! `dexcom_exporter drill` against Debian's Prometheus and Alertmanager with the shipped rules
//! and a filled-in shipped `alertmanager.yml` (Pushover and the heartbeat stood in, see
//! [`crate::alarm`]), scraping `dexcom_exporter --demo`: a good chain exits 0; a placeholder
//! left, or a Pushover token refused, exits 1 and names it; Prometheus down exits 2.
//!
//! The two glucose routes' timers are shortened (first notice after 5 s, a change after 10 s),
//! so the drill, which waits as long as each route's own timers say, ends within a minute.

use std::process::Command;
use std::time::Duration;

use crate::alarm::{
    CHECK_UUID, Chain, Standins, enter, filled, set_timer, shipped_rules, start_chain_sending_to,
    start_standins,
};
use crate::common::{
    free_port, query, repo, start_exporter_process, start_shipped_alertmanager, tool,
};
use crate::harness::ScratchDir;

/// Runs the drill binary; its exit code and standard output.
fn drill(chain_prometheus: &str, chain_alertmanager: &str, extra: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dexcom_exporter"))
        .args([
            "drill",
            "--prometheus.url",
            chain_prometheus,
            "--alertmanager.url",
            chain_alertmanager,
        ])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!(
        "drill printed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), stdout)
}

/// The demo exporter, the stand-ins, and a chain with the shipped file as `edit` leaves it
/// (after filling it in), ready for a drill: the exporter and Alertmanager scraped, Watchdog
/// firing.
async fn ready_chain(
    dir: &ScratchDir,
    edit: impl FnOnce(serde_json::Value) -> serde_json::Value,
) -> Option<(Chain, Standins, crate::common::KillOnDrop)> {
    ready_chain_sending_to(dir, edit, "").await
}

/// [`ready_chain`], Prometheus told of Alertmanager with `path_prefix`.
async fn ready_chain_sending_to(
    dir: &ScratchDir,
    edit: impl FnOnce(serde_json::Value) -> serde_json::Value,
    path_prefix: &str,
) -> Option<(Chain, Standins, crate::common::KillOnDrop)> {
    let standins = start_standins(dir.path()).await;
    let shipped =
        std::fs::read_to_string(repo().join("deploy/alertmanager/alertmanager.yml")).unwrap();
    let mut config = edit(filled(&shipped, &standins.relay));
    for receiver in ["glucose-critical", "glucose-unseen"] {
        set_timer(&mut config, receiver, "group_wait", "5s");
        set_timer(&mut config, receiver, "group_interval", "10s");
    }
    let (exporter, addr) =
        start_exporter_process(&["--demo", "--web.listen-address", "127.0.0.1:0"]);
    let chain = start_chain_sending_to(
        dir.path(),
        &config,
        &standins,
        &shipped_rules(),
        Some(&addr),
        path_prefix,
    )
    .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    for expr in [
        r#"up{job="dexcom"} == 1"#,
        r#"up{job="alertmanager"} == 1"#,
        r#"ALERTS{alertname="Watchdog",alertstate="firing"}"#,
    ] {
        while query(&chain.prometheus, expr)
            .await
            .map_or(true, |r| r.is_empty())
        {
            assert!(std::time::Instant::now() < deadline, "never: {expr}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Some((chain, standins, exporter))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_chain_passes_the_drill() {
    if !enter("drill::a_good_chain_passes_the_drill") {
        return;
    }
    let dir = ScratchDir::new();
    let Some((chain, standins, _exporter)) = ready_chain(&dir, |c| c).await else {
        return;
    };
    let (code, out) = drill(&chain.prometheus, &chain.alertmanager, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("PROBLEM"), "{out}");
    for said in [
        "Prometheus reads the exporter",
        "Watchdog is firing",
        "Prometheus sends its alerts to this Alertmanager",
        "The urgent-low alarm (to glucose-critical): pushover accepted, webhook accepted",
        "(to glucose-unseen): pushover accepted, webhook accepted",
        "The all-clear went out quietly: pushover accepted, webhook accepted",
    ] {
        assert!(out.contains(said), "{said:?} not in:\n{out}");
    }
    // The phone really got them: an emergency for each test alert, then quiet endings (each
    // message once, however often a slow moment made Alertmanager send it again).
    let mut got: Vec<(String, String)> = standins
        .at(crate::alarm::PUSHOVER)
        .iter()
        .filter_map(|s| {
            let title = s.fields.get("title").filter(|t| t.contains("drill"))?;
            Some((
                title.clone(),
                s.fields.get("priority").cloned().unwrap_or_default(),
            ))
        })
        .collect();
    got.sort();
    got.dedup();
    let (endings, alarms): (Vec<_>, Vec<_>) = got.iter().partition(|(t, _)| t.starts_with("Over"));
    assert!(
        alarms.len() == 2 && alarms.iter().all(|(_, p)| p == "2"),
        "{got:?}"
    );
    assert!(
        endings.len() == 2 && endings.iter().all(|(_, p)| p == "-1"),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placeholder_left_fails_the_drill_by_name() {
    if !enter("drill::a_placeholder_left_fails_the_drill_by_name") {
        return;
    }
    let dir = ScratchDir::new();
    // The heartbeat's check left as shipped.
    let Some((chain, _standins, _exporter)) = ready_chain(&dir, |c| {
        serde_json::from_str(
            &c.to_string()
                .replace(CHECK_UUID, "REPLACE-WITH-YOUR-CHECK-UUID"),
        )
        .unwrap()
    })
    .await
    else {
        return;
    };
    let failed = failed_drill(&chain);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "placeholders");
    let says = &failed[0].1;
    assert!(
        says.contains("receiver heartbeat, webhook url: REPLACE-WITH-YOUR-CHECK-UUID")
            && says.contains("receiver notifications-failing"),
        "{says}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_pushover_token_fails_the_drill_by_name() {
    if !enter("drill::a_refused_pushover_token_fails_the_drill_by_name") {
        return;
    }
    let dir = ScratchDir::new();
    let Some((chain, standins, _exporter)) = ready_chain(&dir, |c| c).await else {
        return;
    };
    standins
        .refuse_pushover
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (code, out) = drill(&chain.prometheus, &chain.alertmanager, &[]);
    assert_eq!(code, 1, "{out}");
    let low = out
        .lines()
        .find(|l| l.contains("The urgent-low alarm"))
        .unwrap_or_default();
    assert!(
        low.starts_with("PROBLEM")
            && low.contains("pushover FAILED")
            && low.contains("webhook accepted"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_down_is_exit_2() {
    let Some(alertmanager_bin) = tool("prometheus-alertmanager") else {
        return;
    };
    let dir = ScratchDir::new();
    let am_port = free_port();
    let _alertmanager =
        start_shipped_alertmanager(&alertmanager_bin, dir.path(), am_port, "http://127.0.0.1:9")
            .await;
    // Nothing listens on a port just released.
    let prometheus = format!("http://127.0.0.1:{}", free_port());
    let (code, out) = drill(&prometheus, &format!("http://127.0.0.1:{am_port}"), &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("cannot reach Prometheus at {prometheus}")),
        "{out}"
    );
}

/// Runs the drill on `chain` with `--output json`, asserts it found something that would not
/// ring (exit 1), and returns the steps that failed: (name, what it says).
fn failed_drill(chain: &Chain) -> Vec<(String, String)> {
    let (code, out) = drill(
        &chain.prometheus,
        &chain.alertmanager,
        &["--output", "json"],
    );
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["outcome"], "would_not_ring");
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] == false)
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_owned(),
                s["says"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Two mistakes that every earlier check passes: Prometheus told of the right host and port
/// under a path where no Alertmanager answers (so none of its alerts arrive), and the urgent
/// low sent only by e-mail, through a mail server that refuses (Alertmanager counts the
/// notification as begun at once and as failed only when its retries end, minutes later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_that_looks_right_but_would_not_ring_fails_the_drill() {
    if !enter("drill::a_chain_that_looks_right_but_would_not_ring_fails_the_drill") {
        return;
    }
    let dir = ScratchDir::new();
    let refusing_smtp = free_port();
    let Some((chain, _standins, _exporter)) = ready_chain_sending_to(
        &dir,
        |mut c| {
            for receiver in c["receivers"].as_array_mut().unwrap() {
                if receiver["name"] == "glucose-critical" {
                    *receiver = serde_json::json!({
                        "name": "glucose-critical",
                        "email_configs": [{
                            "to": "mum@example.org",
                            "from": "alarm@example.org",
                            "smarthost": format!("127.0.0.1:{refusing_smtp}"),
                            "require_tls": false,
                        }],
                    });
                }
            }
            c
        },
        "/elsewhere",
    )
    .await
    else {
        return;
    };
    let failed = failed_drill(&chain);
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["attached", "urgent_low_sent"], "{failed:?}");
    assert!(
        failed[0].1.contains("Prometheus's sends to") && failed[0].1.contains("/elsewhere/"),
        "{failed:?}"
    );
    assert!(failed[1].1.contains("email FAILED (refused"), "{failed:?}");
}

/// A silence someone set and forgot mutes the urgent low of a person: the drill names it and
/// who set it, and says the alarm would not ring. Then a drill interrupted while its test
/// alarm rings ends that alarm before it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_on_an_alarm_is_named_and_an_interrupted_drill_ends_its_alarms() {
    if !enter("drill::a_silence_on_an_alarm_is_named_and_an_interrupted_drill_ends_its_alarms") {
        return;
    }
    let dir = ScratchDir::new();
    let Some((chain, _standins, _exporter)) = ready_chain(&dir, |c| c).await else {
        return;
    };
    let client = reqwest::Client::new();
    let now = std::time::SystemTime::now();
    let silence = serde_json::json!({
        "matchers": [
            {"name": "alertname", "value": "DexcomGlucoseUrgentLow", "isRegex": false, "isEqual": true},
            {"name": "account", "value": "sam", "isRegex": false, "isEqual": true},
        ],
        "startsAt": humantime::format_rfc3339_millis(now).to_string(),
        "endsAt": humantime::format_rfc3339_millis(now + Duration::from_secs(86_400)).to_string(),
        "createdBy": "mum",
        "comment": "sensor change",
    });
    let created = client
        .post(format!("{}/api/v2/silences", chain.alertmanager))
        .json(&silence)
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{created:?}");
    let failed = failed_drill(&chain);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "silences");
    assert!(
        failed[0].1.contains("by mum")
            && failed[0]
                .1
                .contains("(sensor change) mutes DexcomGlucoseUrgentLow for sam"),
        "{failed:?}"
    );

    // Interrupted as the urgent-low test alarm is told.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dexcom_exporter"))
        .args([
            "drill",
            "--prometheus.url",
            &chain.prometheus,
            "--alertmanager.url",
            &chain.alertmanager,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let told = line.contains("The urgent-low alarm");
        printed.push(line);
        if told {
            break;
        }
    }
    let drill_alerts = || async {
        client
            .get(format!("{}/api/v2/alerts", chain.alertmanager))
            .query(&[("filter", "drill_run=~\".+\"")])
            .send()
            .await
            .unwrap()
            .json::<Vec<serde_json::Value>>()
            .await
            .unwrap()
    };
    // Alertmanager lists an alert until it ends.
    assert!(!drill_alerts().await.is_empty(), "{printed:?}");
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    printed.extend(lines.map(Result::unwrap));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{printed:?}");
    assert!(
        printed
            .last()
            .is_some_and(|l| l.contains("Interrupted: the test alarms were ended")),
        "{printed:?}"
    );
    let left = drill_alerts().await;
    assert!(left.is_empty(), "still firing: {left:?}");
}

/// A household that routes one child's "cannot be seen" to a phone of its own: the drill
/// sends that route's test as that child's alert (Alertmanager asked whether a real one fires
/// first), and the others' as its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_for_one_account_is_tested_as_that_accounts_alarm() {
    if !enter("drill::a_route_for_one_account_is_tested_as_that_accounts_alarm") {
        return;
    }
    let dir = ScratchDir::new();
    let Some((chain, _standins, _exporter)) = ready_chain(&dir, |mut c| {
        let relay = c["receivers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "glucose-unseen")
            .map(|r| r["webhook_configs"].clone())
            .unwrap();
        c["receivers"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "alex-phone", "webhook_configs": relay}));
        c["route"]["routes"].as_array_mut().unwrap().insert(
            0,
            serde_json::json!({
                "receiver": "alex-phone",
                "matchers": ["account=\"alex\"", "alertname=\"DexcomSignalLoss\""],
                "group_wait": "5s",
                "group_interval": "10s",
            }),
        );
        c
    })
    .await
    else {
        return;
    };
    let (code, out) = drill(&chain.prometheus, &chain.alertmanager, &[]);
    assert_eq!(code, 0, "{out}");
    for said in [
        "The \"glucose cannot be seen\" alarm as for alex (to alex-phone): webhook accepted",
        "The \"glucose cannot be seen\" alarm (to glucose-unseen): pushover accepted, webhook accepted",
    ] {
        assert!(out.contains(said), "{said:?} not in:\n{out}");
    }
}
