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
    CHECK_UUID, Chain, Standins, enter, filled, set_timer, shipped_rules, start_chain,
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
    let chain = start_chain(
        dir.path(),
        &config,
        &standins,
        &shipped_rules(),
        Some(&addr),
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
        "The all-clear went out quietly: urgent low: pushover accepted, webhook accepted; cannot be seen: pushover accepted, webhook accepted",
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
    let (code, out) = drill(
        &chain.prometheus,
        &chain.alertmanager,
        &["--output", "json"],
    );
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["outcome"], "would_not_ring");
    let failed: Vec<&serde_json::Value> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["step"], "placeholders");
    let says = failed[0]["says"].as_str().unwrap();
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
