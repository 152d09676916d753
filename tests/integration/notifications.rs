//! What the phone gets from the shipped `alertmanager.yml`, end to end ([`crate::alarm`] says
//! how the namespace and stand-ins work): an urgent low and a signal loss ring at Pushover's
//! emergency priority; their endings are quiet and say they are over, without the firing
//! value or "Treat now"; a silent daily proof goes through Pushover; and once Pushover
//! refuses the token, the heartbeat service is told through its `/fail` ping within
//! 12 minutes, with the Watchdog held back meanwhile.
//!
//! Real timers except where said: the two glucose routes tell a change after 10 s instead of
//! 1 and 5 minutes, so the endings come out in seconds; the heartbeat's and the failing
//! notifications' routes, the rule and Prometheus's 15 s intervals are as shipped. Set
//! `DEXCOM_TEST_ALERTMANAGER_YML` to run it against another file (such as an older shipped
//! one, to see it fail).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::alarm::{
    CHECK_UUID, HEARTBEAT, PUSHOVER, Seen, Standins, enter, filled, set_timer, start_chain,
    start_standins,
};
use crate::common::repo;
use crate::harness::ScratchDir;

const NAME: &str = "notifications::the_shipped_alertmanager_rings_ends_quietly_and_tells_the_heartbeat_of_a_refused_token";

/// The `alerting-chain` group of the shipped `alerts.yml` (Watchdog and
/// AlertmanagerNotificationsFailing) alone, as JSON, so no glucose rule fires on no data.
fn alerting_chain_rules() -> String {
    let text = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    let mut rules: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    rules["groups"]
        .as_array_mut()
        .unwrap()
        .retain(|g| g["name"] == "alerting-chain");
    assert_eq!(rules["groups"].as_array().unwrap().len(), 1);
    rules.to_string()
}

/// An alert as the shipped rule would send it, for `account`.
fn alert(
    name: &str,
    severity: &str,
    account: &str,
    summary: &str,
    description: &str,
) -> serde_json::Value {
    json!({
        "labels": {"alertname": name, "severity": severity, "account": account,
                   "instance": "127.0.0.1:18018", "job": "dexcom"},
        "annotations": {"summary": summary, "description": description},
    })
}

async fn post(alertmanager: &str, alerts: &[serde_json::Value], ended: bool) {
    let mut alerts = alerts.to_vec();
    if ended {
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        for alert in &mut alerts {
            alert["endsAt"] = now.clone().into();
        }
    }
    let response = reqwest::Client::new()
        .post(format!("{alertmanager}/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// The first request to `host` after `since` that `wanted` accepts, waiting up to `within`.
async fn first(
    standins: &Standins,
    host: &str,
    since: Instant,
    within: Duration,
    wanted: impl Fn(&Seen) -> bool,
) -> Option<Seen> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(seen) = standins
            .at(host)
            .into_iter()
            .find(|s| s.at >= since && wanted(s))
        {
            return Some(seen);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn field<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.fields
        .get(name)
        .map(String::as_str)
        .unwrap_or_default()
}

fn mentions(seen: &Seen, account: &str) -> bool {
    field(seen, "title").contains(account) || field(seen, "message").contains(account)
}

/// What is wrong with an ending Pushover got: a priority above 0, no "Over", or the firing
/// words again.
fn ending_problems(seen: &Seen, firing_words: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let priority: i64 = field(seen, "priority").parse().unwrap_or(99);
    if priority > 0 {
        problems.push(format!("priority {priority}, not 0 or lower"));
    }
    if !field(seen, "title").starts_with("Over") {
        problems.push("the title does not say it is over".to_owned());
    }
    for word in firing_words {
        if field(seen, "title").contains(word) || field(seen, "message").contains(word) {
            problems.push(format!("it repeats {word:?}"));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_alertmanager_rings_ends_quietly_and_tells_the_heartbeat_of_a_refused_token() {
    if !enter(NAME) {
        return;
    }
    let dir = ScratchDir::new();
    let standins = start_standins(dir.path()).await;
    let file = std::env::var("DEXCOM_TEST_ALERTMANAGER_YML").map_or_else(
        |_| repo().join("deploy/alertmanager/alertmanager.yml"),
        std::path::PathBuf::from,
    );
    let mut config = filled(&std::fs::read_to_string(&file).unwrap(), &standins.relay);
    set_timer(&mut config, "glucose-critical", "group_interval", "10s");
    set_timer(&mut config, "glucose-unseen", "group_interval", "10s");
    let rules = dir.path().join("alerting-chain.yml");
    std::fs::write(&rules, alerting_chain_rules()).unwrap();
    let Some(chain) = start_chain(dir.path(), &config, &standins, &[rules], None).await else {
        return;
    };
    let start = Instant::now();
    let mut problems: Vec<String> = Vec::new();
    let log = || std::fs::read_to_string(&chain.alertmanager_log).unwrap_or_default();

    // Watchdog's first round: the heartbeat ping, and the silent daily proof through Pushover.
    let ping = format!("/{CHECK_UUID}");
    if first(&standins, HEARTBEAT, start, Duration::from_secs(90), |s| {
        s.path == ping
    })
    .await
    .is_none()
    {
        problems.push("no heartbeat ping within 90 s".to_owned());
    }
    match first(&standins, PUSHOVER, start, Duration::from_secs(30), |s| {
        field(s, "priority") == "-2"
    })
    .await
    {
        Some(proof) => eprintln!("daily proof: {:?}", proof.fields.get("title")),
        None => problems.push("no silent daily proof (Pushover priority -2)".to_owned()),
    }

    // An urgent low for kid and a signal loss for teen.
    let low = alert(
        "DexcomGlucoseUrgentLow",
        "critical",
        "kid",
        "kid: 50 mg/dL (2.8 mmol/L) →",
        "Glucose is at or below the urgent-low threshold. Treat now.",
    );
    let loss = alert(
        "DexcomSignalLoss",
        "warning",
        "teen",
        "teen: no new glucose reading for 21m 0s",
        "Share has no reading newer than 20 minutes. Check the sensor.",
    );
    let sent = Instant::now();
    post(&chain.alertmanager, &[low.clone(), loss.clone()], false).await;
    let cases = [
        ("kid", ["50 mg/dL", "Treat now"]),
        ("teen", ["no new glucose reading", "Check the sensor"]),
    ];
    for (account, _) in &cases {
        match first(&standins, PUSHOVER, sent, Duration::from_secs(60), |s| {
            mentions(s, account)
        })
        .await
        {
            Some(seen) if field(&seen, "priority") == "2" => {
                eprintln!("{account} firing: {:?}", seen.fields.get("title"));
            }
            Some(seen) => problems.push(format!(
                "{account}'s alarm came at priority {}, not 2 (emergency)",
                field(&seen, "priority")
            )),
            None => problems.push(format!("{account}'s alarm never reached Pushover")),
        }
    }

    // Both end: quietly, and saying so.
    let ended = Instant::now();
    post(&chain.alertmanager, &[low, loss], true).await;
    for (account, firing_words) in &cases {
        match first(&standins, PUSHOVER, ended, Duration::from_secs(60), |s| {
            mentions(s, account)
        })
        .await
        {
            Some(seen) => {
                eprintln!(
                    "{account} ended: priority {} {:?} {:?}",
                    field(&seen, "priority"),
                    field(&seen, "title"),
                    field(&seen, "message")
                );
                for problem in ending_problems(&seen, firing_words) {
                    problems.push(format!("{account}'s all-clear: {problem}"));
                }
            }
            None => problems.push(format!("{account}'s all-clear never reached Pushover")),
        }
    }

    // The token is revoked; the next alarm cannot go out through Pushover.
    standins
        .refuse_pushover
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let revoked = Instant::now();
    post(
        &chain.alertmanager,
        &[alert(
            "DexcomGlucoseUrgentLow",
            "critical",
            "ann",
            "ann: 48 mg/dL (2.7 mmol/L) ↓",
            "Glucose is at or below the urgent-low threshold. Treat now.",
        )],
        false,
    )
    .await;
    let fail = format!("/{CHECK_UUID}/fail");
    match first(
        &standins,
        HEARTBEAT,
        revoked,
        Duration::from_secs(12 * 60),
        |s| s.path == fail,
    )
    .await
    {
        Some(seen) => {
            eprintln!(
                "the heartbeat service was told {:.0} s after Pushover began refusing the token",
                seen.at.duration_since(revoked).as_secs_f64()
            );
            // ...and no plain heartbeat undoes it: Watchdog is inhibited meanwhile.
            let watchdog: serde_json::Value = reqwest::get(format!(
                "{}/api/v2/alerts?filter=alertname%3D%22Watchdog%22",
                chain.alertmanager
            ))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
            let inhibited = watchdog[0]["status"]["inhibitedBy"]
                .as_array()
                .is_some_and(|by| !by.is_empty());
            if !inhibited {
                problems.push(format!(
                    "Watchdog is not held back while Pushover fails: {watchdog}"
                ));
            }
        }
        None => problems.push(
            "the heartbeat service was not told within 12 minutes that Pushover refuses the token"
                .to_owned(),
        ),
    }
    let counts: BTreeMap<&str, usize> = [PUSHOVER, HEARTBEAT, "relay"]
        .into_iter()
        .map(|h| (h, standins.at(h).len()))
        .collect();
    eprintln!(
        "requests: {counts:?} in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "{} ({}):\n  {}\nAlertmanager's log:\n{}",
        "the phone would not get what it should",
        file.display(),
        problems.join("\n  "),
        log()
    );
}
