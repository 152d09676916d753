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
mod attached;
mod inhibit;
mod known;
mod logged;
mod routing;
mod send;
mod silences;

use serde::Serialize;
use serde_json::Value;

use api::Apis;
pub use api::DrillError;
use known::{Known, Labels, is_alarm};
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
    let run = send::run_id();
    match Apis::new(&settings.prometheus_url, &settings.alertmanager_url) {
        Err(error) => record("reach", false, error.to_string()),
        Ok(apis) => {
            let finished = tokio::select! {
                result = chain(&apis, &run, &mut record) => Some(result),
                () = shutdown => None,
            };
            match finished {
                Some(Ok(())) => {}
                Some(Err(error)) => record("reach", false, error.to_string()),
                None => {
                    let says = match send::end_all(&apis, &run).await {
                        Ok(true) => "Interrupted: the test alarms were ended".to_owned(),
                        Ok(false) => "Interrupted, and Alertmanager still holds a test alarm after it was ended: it ends by itself within minutes".to_owned(),
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
    run: &str,
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
    if known.alert_relabels > 0 {
        record(
            "alert_relabel",
            false,
            format!(
                "Prometheus rewrites its alerts before sending them ({} alert_relabel_configs under alerting: in prometheus.yml): the drill sends its test alerts as they are, so one that rewriting drops or reroutes would pass here and never ring; check a real alert's labels with `amtool config routes test`",
                known.alert_relabels
            ),
        );
    }
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
    let tests = send::test_alerts(run, &known, &config);
    silences(apis, &known, &tests, record).await?;
    let mut inhibiting = inhibit::risky(&config, &known.candidates);
    inhibiting.extend(inhibit::inhibited_now(
        &apis.alertmanager_alerts(&["alertname=~\".+\""]).await?,
    ));
    none_found(
        record,
        "inhibitions",
        &inhibiting,
        "No inhibit rule lets an alert that is no alarm silence an alarm",
        "An alarm would be kept quiet by an inhibit rule",
    );
    send::send_and_end(apis, &config, run, &tests, record).await
}

/// The active silences (and those starting tonight) that mute one of the shipped alerts, or
/// one of the drill's own.
async fn silences(
    apis: &Apis,
    known: &Known,
    tests: &[send::TestAlert],
    record: &mut dyn FnMut(&'static str, bool, String),
) -> Result<(), DrillError> {
    // The drill's own first: a silence that mutes them is named before the rest.
    let complete: Vec<Labels> = tests
        .iter()
        .map(|t| t.labels.clone())
        .chain(known.firing.iter().cloned())
        .collect();
    let found = silences::muting(&apis.silences().await?, &complete, &known.candidates);
    if found.is_empty() {
        record("silences", true, "No silence mutes an alert".to_owned());
        return Ok(());
    }
    let mut alarm_muted = false;
    let said: Vec<String> = found
        .iter()
        .map(|m| {
            let mut mutes = m.mutes.clone();
            // Alarms first: they are what a parent must hear of.
            mutes.sort_by_key(|l| !is_alarm(l));
            alarm_muted |= mutes.iter().any(|l| is_alarm(l));
            let mut names: Vec<String> = mutes.iter().map(|l| silences::named(l)).collect();
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
                "A silence mutes alarms (or the heartbeat's Watchdog), so they would not ring: {} (`amtool silence expire ID` ends one)",
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
    let mut problems: Vec<String> = ALERT_GROUPS
        .iter()
        .filter(|g| !loaded.contains(g))
        .map(|g| format!("the group {g} is not loaded (rule_files: alerts.yml)"))
        .collect();
    problems.extend(known::alarm_rule_problems(&rules));
    none_found(
        record,
        "rules",
        &problems,
        "Prometheus has the alert rules loaded, and the alarm rules evaluate",
        "Prometheus's alarm rules would not fire, or not as the drill can test them",
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
    let listed = urls
        .iter()
        .any(|u| attached::same_place(u, apis.alertmanager_url()));
    let (ok, says) = if listed && !watchdog {
        (
            true,
            "Prometheus lists this Alertmanager (whether its sends arrive is not known while Watchdog does not fire)".to_owned(),
        )
    } else {
        attached::sends_arrive(apis, &urls).await?
    };
    record("attached", ok, says);
    Known::ask(apis, &rules, &alerts).await
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
}
