//! `dexcom_exporter drill`: the whole alarm chain, end to end, in one command a parent runs.
//!
//! A chain that is wrong in any link fails silently at night: a target Prometheus does not
//! read, rules that are not loaded, an Alertmanager nobody sends to, a placeholder left in its
//! file, a route that reaches no phone, a token that is refused. `amtool check-config` passes
//! all of these and `amtool alert add` exits 0 when delivery fails. So `drill` asks Prometheus
//! and Alertmanager what they run, sends a test alert through each route that can ring (an
//! urgent low, "the glucose cannot be seen"), watches Alertmanager's own notification counters
//! to learn whether each integration took it, ends the alerts and watches the all-clear go out
//! too. One line per step in words a parent understands; exit 0 when the chain works, 1 when
//! something would not ring, 2 when Prometheus or Alertmanager cannot be reached.
//!
//! Everything goes through the two base URLs given, and nothing here knows the exporter's
//! own configuration: the drill needs no Dexcom account.

mod api;
mod logged;
mod routing;
mod send;
mod silences;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use api::Apis;
pub use api::DrillError;
use routing::AlertmanagerConfig;

/// The alerting rule groups of the shipped `alerts.yml`: without them nothing fires.
const ALERT_GROUPS: [&str; 4] = [
    "dexcom-glucose",
    "dexcom-exporter",
    "dexcom-remote-write",
    "alerting-chain",
];

/// What to drill: where Prometheus and Alertmanager answer.
#[derive(Debug, Clone)]
pub struct DrillSettings {
    /// Prometheus's base URL (`http://127.0.0.1:9090`).
    pub prometheus_url: String,
    /// Alertmanager's base URL (`http://127.0.0.1:9093`).
    pub alertmanager_url: String,
}

/// One step of the drill and what it found.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// A short stable name for scripts (`prometheus`, `urgent_low_sent`, ...).
    pub step: &'static str,
    /// Whether this link of the chain works.
    pub ok: bool,
    /// What it found, in one line.
    pub says: String,
}

/// Every step, and the exit code they add up to.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `works`, `would_not_ring`, `unreachable` or `interrupted`.
    pub outcome: &'static str,
    /// 0 the chain works, 1 something would not ring, 2 Prometheus or Alertmanager cannot be
    /// reached, 130 interrupted (the test alarms ended first).
    pub exit_code: u8,
    /// The steps in the order they ran.
    pub steps: Vec<Step>,
}

/// Runs the drill on a runtime of its own, prints it (`json`: one document at the end; else a
/// line per step as it happens) and returns the exit code.
pub fn run(settings: &DrillSettings, json: bool) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dexcom_exporter: error: cannot start the async runtime: {error}");
            return 1;
        }
    };
    let report = runtime.block_on(drill(
        settings,
        &mut |step| {
            if !json {
                println!("{}", render_line(step));
            }
        },
        crate::shutdown::signal(),
    ));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    }
    report.exit_code
}

/// One step as a line: `ok` or `PROBLEM`, then what it found.
pub fn render_line(step: &Step) -> String {
    format!(
        "{:<8} {}",
        if step.ok { "ok" } else { "PROBLEM" },
        step.says
    )
}

/// The drill itself; `on_step` sees each step as soon as it is known. When `shutdown`
/// completes first (SIGINT, SIGTERM), the test alarms are ended before it returns, so no
/// phone keeps ringing for a drill nobody watches.
pub async fn drill(
    settings: &DrillSettings,
    on_step: &mut dyn FnMut(&Step),
    shutdown: impl std::future::Future<Output = ()>,
) -> Report {
    let mut steps = Vec::new();
    let mut record = |step: &'static str, ok: bool, says: String| {
        let step = Step { step, ok, says };
        on_step(&step);
        steps.push(step);
    };
    let account = send::run_account();
    match Apis::new(&settings.prometheus_url, &settings.alertmanager_url) {
        Err(error) => record("reach", false, error.to_string()),
        Ok(apis) => {
            let finished = tokio::select! {
                result = chain(&apis, &account, &mut record) => Some(result),
                () = shutdown => None,
            };
            match finished {
                Some(Ok(())) => {}
                Some(Err(error)) => record("reach", false, error.to_string()),
                None => {
                    let says = match send::end_all(&apis, &account).await {
                        Ok(()) => "Interrupted: the test alarms were ended".to_owned(),
                        Err(error) => format!(
                            "Interrupted, and the test alarms could not be ended ({error}): they end by themselves within minutes"
                        ),
                    };
                    record("interrupted", false, says);
                }
            }
        }
    }
    let (outcome, exit_code) = if steps.iter().any(|s| s.step == "interrupted") {
        ("interrupted", 130)
    } else if steps.iter().any(|s| s.step == "reach") {
        ("unreachable", 2)
    } else if steps.iter().all(|s| s.ok) {
        ("works", 0)
    } else {
        ("would_not_ring", 1)
    };
    Report {
        outcome,
        exit_code,
        steps,
    }
}

async fn chain(
    apis: &Apis,
    account: &str,
    record: &mut dyn FnMut(&'static str, bool, String),
) -> Result<(), DrillError> {
    let build = apis.prometheus("status/buildinfo").await?;
    record(
        "prometheus",
        true,
        format!(
            "Prometheus answers at {} (version {})",
            apis.prometheus_shown(),
            build["version"].as_str().unwrap_or("unknown")
        ),
    );
    let status = apis.alertmanager_status().await?;
    record(
        "alertmanager",
        true,
        format!(
            "Alertmanager answers at {} (version {})",
            apis.alertmanager_shown(),
            status["versionInfo"]["version"]
                .as_str()
                .unwrap_or("unknown")
        ),
    );
    let known = prometheus_side(apis, record).await?;
    let text = status["config"]["original"].as_str().unwrap_or_default();
    let config = match AlertmanagerConfig::parse(text) {
        Ok(config) => config,
        Err(error) => {
            record(
                "alertmanager_config",
                false,
                format!("Alertmanager's running configuration cannot be read: {error}"),
            );
            return Ok(());
        }
    };
    config_checks(&config, record);
    silences(apis, &config, &known, account, record).await?;
    send::send_and_end(apis, &config, account, record).await
}

/// What Prometheus says may fire: each alerting rule's labels (its name and what it sets),
/// once per account for the rules that read the exporter's series.
struct Known {
    candidates: Vec<silences::Labels>,
}

/// How long Prometheus's alerts may take to reach Alertmanager: it sends a firing alert again
/// every minute (`--rules.alert.resend-delay`), so one has arrived by then if any will.
const ALERTS_ARRIVE_WITHIN: Duration = Duration::from_secs(75);

/// Whether Prometheus's own Watchdog is in Alertmanager: the proof that what Prometheus
/// sends arrives there (its list of Alertmanagers names a host and port, not whether the
/// scheme, path or credentials are right). Waits up to a resend for it.
async fn watchdog_arrived(apis: &Apis) -> Result<bool, DrillError> {
    let deadline = Instant::now() + ALERTS_ARRIVE_WITHIN;
    loop {
        let alerts = apis.alertmanager_alerts("alertname=\"Watchdog\"").await?;
        if alerts
            .iter()
            .any(|a| a["labels"]["instance"].as_str() != Some("drill"))
        {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The active silences that mute one of the shipped alerts, or one of the drill's own.
async fn silences(
    apis: &Apis,
    config: &AlertmanagerConfig,
    known: &Known,
    account: &str,
    record: &mut dyn FnMut(&'static str, bool, String),
) -> Result<(), DrillError> {
    let tests = send::test_labels(account);
    let alarm_receivers: BTreeSet<String> = tests
        .iter()
        .flat_map(|l| config.destinations(l))
        .map(|d| d.receiver)
        .collect();
    let is_alarm = |labels: &silences::Labels| {
        config
            .destinations(labels)
            .iter()
            .any(|d| alarm_receivers.contains(&d.receiver))
    };
    let candidates: Vec<silences::Labels> = known.candidates.iter().cloned().chain(tests).collect();
    let found = silences::muting(&apis.silences().await?, &candidates);
    if found.is_empty() {
        record("silences", true, "No silence mutes an alert".to_owned());
        return Ok(());
    }
    let mut alarm_muted = false;
    let said: Vec<String> = found
        .iter()
        .map(|m| {
            alarm_muted |= m.mutes.iter().any(|l| is_alarm(l));
            let mut names: Vec<String> = m.mutes.iter().map(|l| silences::named(l)).collect();
            names.dedup();
            let more = names.len().saturating_sub(MAX_NAMED);
            names.truncate(MAX_NAMED);
            if more > 0 {
                names.push(format!("and {more} more"));
            }
            format!("{} mutes {}", m.about, names.join(", "))
        })
        .collect();
    record(
        "silences",
        !alarm_muted,
        if alarm_muted {
            format!(
                "A silence mutes alarms, so they would not ring: {} (`amtool silence expire ID` ends one)",
                said.join("; ")
            )
        } else {
            format!(
                "Silenced on purpose, no alarm among them: {}",
                said.join("; ")
            )
        },
    );
    Ok(())
}

/// How many muted alerts a silence's line names.
const MAX_NAMED: usize = 6;

/// Prometheus: the exporter and Alertmanager scraped, the rules loaded, Watchdog firing,
/// Alertmanager attached.
async fn prometheus_side(
    apis: &Apis,
    record: &mut dyn FnMut(&'static str, bool, String),
) -> Result<Known, DrillError> {
    let targets = apis.prometheus("targets?state=active").await?;
    let active = targets["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let job = |name: &str| -> Vec<&Value> {
        active
            .iter()
            .filter(|t| t["labels"]["job"].as_str() == Some(name))
            .collect()
    };
    let exporter = job("dexcom");
    let down: Vec<String> = exporter
        .iter()
        .filter(|t| t["health"].as_str() != Some("up"))
        .map(|t| {
            format!(
                "{} ({})",
                t["scrapeUrl"].as_str().unwrap_or("?"),
                t["lastError"]
                    .as_str()
                    .filter(|e| !e.is_empty())
                    .unwrap_or("not read yet")
            )
        })
        .collect();
    match (exporter.len(), down.is_empty()) {
        (0, _) => record(
            "exporter_target",
            false,
            "Prometheus does not read the exporter: no job \"dexcom\" in its scrape_configs"
                .to_owned(),
        ),
        (_, false) => record(
            "exporter_target",
            false,
            format!("Prometheus cannot read the exporter: {}", down.join("; ")),
        ),
        (n, true) => record(
            "exporter_target",
            true,
            format!("Prometheus reads the exporter ({n} target{} up)", plural(n)),
        ),
    }
    let am_scraped = job("alertmanager")
        .iter()
        .any(|t| t["health"].as_str() == Some("up"));
    record(
        "alertmanager_target",
        am_scraped,
        if am_scraped {
            "Prometheus reads Alertmanager's own metrics, so a broken phone channel is told"
                .to_owned()
        } else {
            "Prometheus does not read Alertmanager (job \"alertmanager\"): a broken phone channel would be told to nobody".to_owned()
        },
    );

    let rules = apis.prometheus("rules").await?;
    let loaded = fields(&rules["groups"], "name");
    let missing: Vec<&str> = ALERT_GROUPS
        .iter()
        .copied()
        .filter(|g| !loaded.contains(g))
        .collect();
    record(
        "rules",
        missing.is_empty(),
        if missing.is_empty() {
            "Prometheus has the alert rules loaded".to_owned()
        } else {
            format!(
                "Prometheus lacks the alert rule groups {} (rule_files: alerts.yml)",
                missing.join(", ")
            )
        },
    );

    let alerts = apis.prometheus("alerts").await?;
    let watchdog = alerts["alerts"].as_array().into_iter().flatten().any(|a| {
        a["labels"]["alertname"].as_str() == Some("Watchdog")
            && a["state"].as_str() == Some("firing")
    });
    record(
        "watchdog",
        watchdog,
        if watchdog {
            "Watchdog is firing: Prometheus evaluates the rules".to_owned()
        } else {
            "Watchdog is not firing: Prometheus is not evaluating the alert rules".to_owned()
        },
    );

    let attached = apis.prometheus("alertmanagers").await?;
    let urls = fields(&attached["activeAlertmanagers"], "url");
    let listed = urls.iter().any(|u| same_place(u, apis.alertmanager_url()));
    let arrived = listed && watchdog && watchdog_arrived(apis).await?;
    record(
        "attached",
        arrived || (listed && !watchdog),
        if arrived {
            "Prometheus sends its alerts to this Alertmanager (its Watchdog is there)".to_owned()
        } else if listed && !watchdog {
            "Prometheus lists this Alertmanager (whether its alerts arrive is not known while Watchdog does not fire)".to_owned()
        } else if listed {
            format!(
                "Prometheus lists {} as its Alertmanager, but its Watchdog has not arrived there in {} s: check scheme, path_prefix and credentials under alerting: in prometheus.yml, and Prometheus's log",
                apis.alertmanager_shown(),
                ALERTS_ARRIVE_WITHIN.as_secs()
            )
        } else if urls.is_empty() {
            "Prometheus sends its alerts to no Alertmanager (alerting: in prometheus.yml)"
                .to_owned()
        } else {
            format!(
                "Prometheus sends its alerts to {}, not to {}",
                urls.iter()
                    .map(|u| api::shown(u))
                    .collect::<Vec<_>>()
                    .join(", "),
                apis.alertmanager_shown()
            )
        },
    );
    Ok(Known {
        candidates: candidates(&rules, &accounts(apis).await?),
    })
}

/// The accounts Prometheus holds series of.
async fn accounts(apis: &Apis) -> Result<Vec<String>, DrillError> {
    let found = apis
        .prometheus("query?query=count%20by%20(account)%20(dexcom_up)")
        .await?;
    let mut accounts: Vec<String> = found["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["metric"]["account"].as_str().map(str::to_owned))
        .collect();
    accounts.sort();
    Ok(accounts)
}

/// Every alerting rule's labels: its name and what it sets, once per account for the rules
/// that read the exporter's per-account series.
fn candidates(rules: &Value, accounts: &[String]) -> Vec<silences::Labels> {
    let mut out = Vec::new();
    for rule in rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter(|r| r["type"].as_str() == Some("alerting"))
    {
        let mut labels = silences::Labels::new();
        for (name, value) in rule["labels"].as_object().into_iter().flatten() {
            labels.insert(name.clone(), value.as_str().unwrap_or_default().to_owned());
        }
        let Some(name) = rule["name"].as_str() else {
            continue;
        };
        labels.insert("alertname".to_owned(), name.to_owned());
        let per_account = rule["query"]
            .as_str()
            .is_some_and(|q| q.contains("dexcom_"));
        if per_account && !accounts.is_empty() {
            for account in accounts {
                let mut labels = labels.clone();
                labels.insert("account".to_owned(), account.clone());
                out.push(labels);
            }
        } else {
            out.push(labels);
        }
    }
    out
}

/// Whether Prometheus's `url` for an Alertmanager (`http://127.0.0.1:9093/api/v2/alerts`)
/// is the one at `base`, counting the loopback names as one.
fn same_place(url: &str, base: &str) -> bool {
    fn authority(url: &str) -> String {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or_default();
        // Without a user and password: they say nothing of where it is.
        let authority = authority.rsplit('@').next().unwrap_or_default();
        authority
            .replace("localhost", "127.0.0.1")
            .replace("[::1]", "127.0.0.1")
    }
    authority(url) == authority(base)
}

/// The string `field` of each object in the array `list` (none when it is not an array).
fn fields<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item[field].as_str())
        .collect()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A step that is fine when nothing is `found`, else names every finding after `problem`.
fn none_found(
    record: &mut dyn FnMut(&'static str, bool, String),
    step: &'static str,
    found: &[String],
    fine: &str,
    problem: &str,
) {
    let says = if found.is_empty() {
        fine.to_owned()
    } else {
        format!("{problem}: {}", found.join("; "))
    };
    record(step, found.is_empty(), says);
}

/// What the running configuration shows without sending anything.
fn config_checks(config: &AlertmanagerConfig, record: &mut dyn FnMut(&'static str, bool, String)) {
    none_found(
        record,
        "placeholders",
        &config.placeholders(),
        "No REPLACE- placeholder is left where Alertmanager shows it (tokens are tested by sending)",
        "Placeholders left in alertmanager.yml",
    );
    none_found(
        record,
        "routes",
        &config.silent_routes(),
        "Every route reaches at least one integration",
        "These alerts reach no phone (their receiver has no integration)",
    );
    match config.heartbeat() {
        Ok(receivers) => record(
            "heartbeat",
            true,
            format!(
                "Watchdog pings a heartbeat service (receiver {})",
                receivers.join(", ")
            ),
        ),
        Err(why) => record("heartbeat", false, why),
    }
    none_found(
        record,
        "quiet_endings",
        &config.loud_endings(),
        "An all-clear is sent quietly",
        "An all-clear would ring like the alarm: Pushover in",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_groups_are_the_shipped_ones() {
        let shipped = include_str!("../../deploy/prometheus/alerts.yml");
        let names: Vec<&str> = shipped
            .lines()
            .filter_map(|l| l.strip_prefix("  - name: "))
            .collect();
        assert_eq!(names, ALERT_GROUPS);
    }

    #[test]
    fn loopback_names_are_one_place() {
        assert!(same_place(
            "http://127.0.0.1:9093/api/v2/alerts",
            "http://localhost:9093"
        ));
        assert!(!same_place(
            "http://127.0.0.1:9094/api/v2/alerts",
            "http://127.0.0.1:9093/"
        ));
    }
}
