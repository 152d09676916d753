//! The sending half of the drill: a test alert through each route that can ring, watched
//! through Alertmanager's own counters (it has no API that says whether a notification got
//! through), then the endings, watched the same way. Alertmanager tells an ending only where
//! it told the alarm, so an integration that refused the alarm is not expected to hear it.
//!
//! A notification counts as delivered only when a request of its integration was taken
//! (`alertmanager_notification_requests_total` minus `..._failed_total`): Alertmanager counts
//! a notification as begun before it knows, and as failed only when its retries end, minutes
//! later for an error that may pass (a mail server that refuses), so neither says "got there".
//! And an alarm that reached only e-mail or a heartbeat ping woke nobody.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use super::api::{Apis, Counters, DrillError, Tally};
use super::known::{Known, Labels, labels_of};
use super::logged;
use super::routing::{AlertmanagerConfig, Integration};

/// How long past a route's own wait a notification may take to be counted.
const SLACK: Duration = Duration::from_secs(20);
/// How long a watch goes on once every expected request was counted: a failing one of
/// another receiver of the same kind may still be in flight.
const GRACE: Duration = Duration::from_secs(2);
/// How long a test alert outlives the sending it waits for: if the drill is killed (it ends
/// them itself on SIGINT and SIGTERM), they end by themselves soon after.
const LIFETIME_SLACK: Duration = Duration::from_secs(60);
/// How many times the endings are posted and checked: a posting cut short by an
/// interruption may still reach Alertmanager after them.
const ENDING_ROUNDS: usize = 4;

/// A test alert: its labels, its annotations and what a parent calls it.
pub(super) struct TestAlert {
    step: &'static str,
    what: String,
    /// Its labels, as Alertmanager routes and silences it.
    pub labels: Labels,
    annotations: Labels,
}

/// This run's name, in the `drill_run` label of every test alert (and, with no account
/// known, their `account`: Alertmanager groups by account, and a group left from an earlier
/// drill, still waiting to tell its ending, would hold a new alert back until its next flush).
pub(super) fn run_id() -> String {
    // With the process ID: two drills started in one second must not share their alerts.
    format!(
        "drill-{}-{}",
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        std::process::id()
    )
}

/// The test alerts of run `run`: for the urgent low and for "the glucose cannot be seen",
/// one per distinct route that the real alerts of the exporter's `series` take (labelled like
/// the first series that takes it), so a route for one child's account, or on `job`, is
/// tested as it is; with no series known, one with the drill's own account. The account is
/// the drill's own (`run`) unless the route depends on it.
pub(super) fn test_alerts(run: &str, known: &Known, config: &AlertmanagerConfig) -> Vec<TestAlert> {
    let series = &known.series;
    let own = Labels::from([
        ("account".to_owned(), run.to_owned()),
        ("instance".to_owned(), "drill".to_owned()),
        ("job".to_owned(), "dexcom".to_owned()),
    ]);
    let bases: Vec<&Labels> = if series.is_empty() {
        vec![&own]
    } else {
        series.iter().collect()
    };
    let kinds = [
        (
            "urgent_low_sent",
            "The urgent-low alarm",
            "DexcomGlucoseUrgentLow",
            "critical",
            "drill: test of the urgent-low alarm",
        ),
        (
            "unseen_sent",
            "The \"glucose cannot be seen\" alarm",
            "DexcomSignalLoss",
            "warning",
            "drill: test of the \"glucose cannot be seen\" alarm",
        ),
    ];
    let mut out = Vec::new();
    for (step, what, alertname, severity, summary) in kinds {
        let mut routes: Vec<(Vec<String>, Labels)> = Vec::new();
        let receivers = |labels: &Labels| -> Vec<String> {
            config
                .destinations(labels)
                .into_iter()
                .map(|d| d.receiver)
                .collect()
        };
        for base in &bases {
            let mut labels = (*base).clone();
            // As Prometheus would send the rule's alert: its own labels (the shipped
            // severity when it is not loaded), then the external labels.
            match known.rule_labels.get(alertname) {
                Some(own) => labels.extend(own.clone()),
                None => {
                    labels.insert("severity".to_owned(), severity.to_owned());
                }
            }
            for (name, value) in &known.external {
                labels.entry(name.clone()).or_insert_with(|| value.clone());
            }
            labels.insert("alertname".to_owned(), alertname.to_owned());
            labels.insert("drill_run".to_owned(), run.to_owned());
            let route = receivers(&labels);
            // The drill's own account where the route does not depend on it: a real
            // account's group (a real alarm firing, its inhibitions) is then left alone.
            let mut own = labels.clone();
            own.insert("account".to_owned(), run.to_owned());
            if receivers(&own) == route {
                labels = own;
            }
            if !routes.iter().any(|(r, _)| *r == route) {
                routes.push((route, labels));
            }
        }
        let several = routes.len() > 1;
        for (_, labels) in routes {
            let as_for = match labels.get("account") {
                Some(account) if several && account != run => format!(" as for {account}"),
                _ => String::new(),
            };
            out.push(TestAlert {
                step,
                what: format!("{what}{as_for}"),
                labels,
                annotations: Labels::from([
                    ("summary".to_owned(), summary.to_owned()),
                    (
                        "description".to_owned(),
                        "A test by dexcom_exporter drill; no reading is involved. Acknowledge it."
                            .to_owned(),
                    ),
                ]),
            });
        }
    }
    out
}

/// A test alert that went out, and what its ending is expected to reach.
struct Fired {
    /// When Alertmanager told it (about): its group's later flushes follow at each of its
    /// routes' `group_interval`.
    at: Instant,
    intervals: Vec<Duration>,
    /// The integration kinds that took the alarm and are told of an ending.
    ending: BTreeMap<String, usize>,
}

impl Fired {
    /// When its last ending is due, the endings posted at `ended`: each route's first flush
    /// after that.
    fn last_ending(&self, ended: Instant) -> Instant {
        self.intervals
            .iter()
            .map(|interval| {
                let mut at = self.at + *interval;
                while at < ended && !interval.is_zero() {
                    at += *interval;
                }
                at
            })
            .max()
            .unwrap_or(ended)
    }
}

/// Ends the test alerts of run `run` that Alertmanager holds, until it holds none: a posting
/// cut short by an interruption may reach it after the first ending. True when none is left.
pub(super) async fn end_all(apis: &Apis, run: &str) -> Result<bool, DrillError> {
    let filter = format!("drill_run=\"{run}\"");
    for round in 0..ENDING_ROUNDS {
        let left = apis.alertmanager_alerts(&[&filter]).await?;
        if left.is_empty() && round > 0 {
            return Ok(true);
        }
        let alerts: Vec<(Labels, Labels)> = left
            .iter()
            .map(|a| (labels_of(&a["labels"]), labels_of(&a["annotations"])))
            .collect();
        if !alerts.is_empty() {
            apis.post_alerts(&alerts, SystemTime::now()).await?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(apis.alertmanager_alerts(&[&filter]).await?.is_empty())
}

/// Sends each test alert, then ends them all, watching the counters.
pub(super) async fn send_and_end(
    apis: &Apis,
    config: &AlertmanagerConfig,
    run: &str,
    alerts: &[TestAlert],
    record: &mut dyn FnMut(&'static str, bool, String),
) -> Result<(), DrillError> {
    // Long enough for every alert's sending to be watched before the endings are posted.
    let lifetime = alerts
        .iter()
        .map(|a| {
            let wait = config
                .destinations(&a.labels)
                .iter()
                .map(|d| d.group_wait)
                .max()
                .unwrap_or_default();
            wait + SLACK + GRACE
        })
        .sum::<Duration>()
        + LIFETIME_SLACK;
    let mut fired = Vec::new();
    let mut not_told: Vec<String> = Vec::new();
    for alert in alerts {
        let destinations = config.destinations(&alert.labels);
        let receivers: Vec<&str> = destinations.iter().map(|d| d.receiver.as_str()).collect();
        let integrations: Vec<Integration> = receivers
            .iter()
            .flat_map(|r| config.integrations(r))
            .collect();
        // What can wake someone: not e-mail, not a heartbeat service's ping.
        let ringing: Vec<String> = receivers
            .iter()
            .filter(|r| !config.is_heartbeat(r))
            .flat_map(|r| config.integrations(r))
            .map(|i| i.kind)
            .filter(|k| k != "email")
            .collect();
        if integrations.is_empty() {
            record(
                alert.step,
                false,
                format!(
                    "{} reaches nobody: receiver {} has no integration",
                    alert.what,
                    receivers.join(", ")
                ),
            );
            continue;
        }
        // With a real account (its route depends on it), a real alarm of that account
        // firing now would be joined: its phone told again, with the test in its message.
        if let Some(real) = real_alarm_firing(apis, &alert.labels, run).await? {
            record(
                alert.step,
                false,
                format!(
                    "{} (to {}) is not tested now: {real} fires, and the test would join it; run the drill again when it is over",
                    alert.what,
                    receivers.join(", ")
                ),
            );
            continue;
        }
        let wait = destinations
            .iter()
            .map(|d| d.group_wait)
            .max()
            .unwrap_or_default();
        let interval = destinations
            .iter()
            .map(|d| d.group_interval)
            .max()
            .unwrap_or_default();
        let before = apis.counters().await?;
        let posted = Instant::now();
        apis.post_alerts(
            &[(alert.labels.clone(), alert.annotations.clone())],
            SystemTime::now() + lifetime,
        )
        .await?;
        let expected = count(integrations.iter());
        let due = posted + wait;
        // A group that already existed (a real alert of this account, or an earlier drill's
        // ending) tells it at its next flush instead.
        let window = Window {
            due,
            deadline: due + SLACK,
            extended: Some(due + interval + SLACK),
        };
        let seen = watch(apis, before, window, &expected).await?;
        let rang = seen.accepted.iter().any(|k| ringing.contains(k));
        let mut says = format!(
            "{} (to {}): {}",
            alert.what,
            receivers.join(", "),
            seen.says
        );
        if !rang && seen.refused.is_empty() {
            says.push_str(
                "; but nothing here rings a phone (e-mail and a heartbeat ping wake nobody)",
            );
        }
        // Silenced or inhibited as it went in: Alertmanager told nobody.
        let held = suppressed(apis, &alert.labels, run).await?;
        if let Some(why) = &held {
            says.push_str(&format!("; but Alertmanager holds it suppressed ({why})"));
        }
        // A route quiet part of the time lets an alarm then go unheard.
        let quiet: Vec<String> = destinations
            .iter()
            .flat_map(|d| {
                d.muted_during
                    .iter()
                    .map(move |m| format!("{} during {m}", d.receiver))
            })
            .collect();
        if !quiet.is_empty() {
            says.push_str(&format!(
                "; but its route is quiet part of the time, when this alarm would not ring: {}",
                quiet.join(", ")
            ));
        }
        record(
            alert.step,
            seen.refused.is_empty() && rang && quiet.is_empty() && held.is_none(),
            says,
        );
        // Alertmanager tells an ending only where it told the alarm.
        let told = integrations
            .iter()
            .filter(|i| i.send_resolved && !seen.refused.contains(&i.kind));
        fired.push(Fired {
            at: seen.at.unwrap_or(due),
            intervals: destinations.iter().map(|d| d.group_interval).collect(),
            ending: count(told),
        });
        not_told.extend(seen.refused);
    }
    if fired.is_empty() {
        return Ok(());
    }
    let before = apis.counters().await?;
    let ended = Instant::now();
    end_all(apis, run).await?;
    // One watch for every ending, from their posting to the last one due: routes of one
    // alert may tell its end at different times.
    let mut expected = BTreeMap::new();
    for f in &fired {
        for (kind, n) in &f.ending {
            *expected.entry(kind.clone()).or_default() += n;
        }
    }
    let mut parts = Vec::new();
    let mut refused = Vec::new();
    if !expected.is_empty() {
        let due = fired
            .iter()
            .filter(|f| !f.ending.is_empty())
            .map(|f| f.last_ending(ended))
            .max()
            .unwrap_or(ended);
        let window = Window {
            due,
            deadline: due + SLACK,
            extended: None,
        };
        let seen = watch(apis, before, window, &expected).await?;
        parts.push(seen.says);
        refused = seen.refused;
    }
    not_told.sort();
    not_told.dedup();
    if !not_told.is_empty() {
        parts.push(format!(
            "{} not told: it took no alarm",
            not_told.join(", ")
        ));
    }
    let quiet = config.loud_endings().is_empty();
    record(
        "all_clear",
        refused.is_empty(),
        if refused.is_empty() {
            format!(
                "The all-clear went out{}: {}",
                if quiet { " quietly" } else { "" },
                parts.join("; ")
            )
        } else {
            format!(
                "The all-clear did not go out everywhere: {}",
                parts.join("; ")
            )
        },
    );
    Ok(())
}

/// A matcher value as Alertmanager's filter reads it, quoted.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The real alert (not one of run `run`) of the same account and name as the test alert
/// `labels`, when the test carries a real account and such an alert is active.
async fn real_alarm_firing(
    apis: &Apis,
    labels: &Labels,
    run: &str,
) -> Result<Option<String>, DrillError> {
    let (Some(account), Some(name)) = (labels.get("account"), labels.get("alertname")) else {
        return Ok(None);
    };
    if account == run {
        return Ok(None);
    }
    let name_is = format!("alertname={}", quoted(name));
    let account_is = format!("account={}", quoted(account));
    let found = apis.alertmanager_alerts(&[&name_is, &account_is]).await?;
    Ok(found
        .iter()
        .any(|a| a["labels"]["drill_run"].is_null())
        .then(|| format!("a real {name} for {account}")))
}

/// Why Alertmanager holds the test alert `labels` suppressed ("silenced by ID", "inhibited
/// by FINGERPRINT"), if it does.
async fn suppressed(apis: &Apis, labels: &Labels, run: &str) -> Result<Option<String>, DrillError> {
    let filter = format!("drill_run={}", quoted(run));
    let ours = apis.alertmanager_alerts(&[&filter]).await?;
    let Some(alert) = ours.iter().find(|a| {
        labels
            .iter()
            .all(|(k, v)| a["labels"][k].as_str() == Some(v.as_str()))
    }) else {
        return Ok(None);
    };
    if alert["status"]["state"].as_str() != Some("suppressed") {
        return Ok(None);
    }
    let list = |key: &str| -> Vec<String> {
        alert["status"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let mut why = Vec::new();
    if !list("silencedBy").is_empty() {
        why.push(format!("silenced by {}", list("silencedBy").join(", ")));
    }
    if !list("inhibitedBy").is_empty() {
        why.push(format!("inhibited by {}", list("inhibitedBy").join(", ")));
    }
    Ok(Some(if why.is_empty() {
        "suppressed".to_owned()
    } else {
        why.join("; ")
    }))
}

fn count<'a>(integrations: impl Iterator<Item = &'a Integration>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for integration in integrations {
        *out.entry(integration.kind.clone()).or_default() += 1;
    }
    out
}

/// What one watch saw.
struct Seen {
    /// The integration kinds that failed or sent nothing.
    refused: Vec<String>,
    /// The integration kinds that delivered.
    accepted: Vec<String>,
    /// Per kind: accepted, failed and why, or not sent.
    says: String,
    /// When every expected request had been counted.
    at: Option<Instant>,
}

/// How one integration kind fared with the notifications expected of it. Alertmanager 0.25
/// counts requests per kind, not per receiver: a heartbeat's ping is a webhook like an ntfy
/// relay's. So a refused request of the kind while ours was due fails it, even when as many
/// got through as were expected (they may have been another receiver's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Its far end took them, and none of its kind was refused meanwhile.
    Delivered,
    /// Requests of its kind were refused: `given_up` notifications ended failed, the rest
    /// retrying or, when `delivered`, taken on a later try or by another receiver.
    Refused {
        refused: u64,
        requests: u64,
        given_up: u64,
        delivered: u64,
    },
    /// Nothing was tried.
    NotSent,
}

impl Fate {
    /// `delta` is what Alertmanager counted for the kind while `expected` notifications were
    /// due.
    fn of(delta: &Tally, expected: usize) -> Fate {
        if delta.requests_failed > 0 || delta.given_up > 0 {
            Fate::Refused {
                refused: delta.requests_failed,
                requests: delta.requests,
                given_up: delta.given_up,
                delivered: delta.delivered(),
            }
        } else if delta.delivered() >= expected as u64 {
            Fate::Delivered
        } else {
            Fate::NotSent
        }
    }

    /// Whether nothing more is to be learnt by waiting: all delivered, or given up on.
    fn settled(delta: &Tally, expected: usize) -> bool {
        delta.delivered() + delta.given_up >= expected as u64
    }
}

/// When a watch expects its notifications.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// When they are due: nothing counted before settles the watch.
    due: Instant,
    /// When to stop waiting.
    deadline: Instant,
    /// A later deadline, taken when nothing at all was tried by the first.
    extended: Option<Instant>,
}

/// Watches, from the counters `before`, for the notifications expected at `window.due` until
/// each integration kind in `expected` has delivered (or given up on) that many, or the
/// deadline; then a little longer, for a refusal still in flight.
async fn watch(
    apis: &Apis,
    before: Counters,
    window: Window,
    expected: &BTreeMap<String, usize>,
) -> Result<Seen, DrillError> {
    let since = SystemTime::now();
    let mut deadline = window.deadline;
    let mut extended = window.extended;
    let delta = |after: &Counters, kind: &str| {
        let start = before.get(kind).copied().unwrap_or_default();
        start.since(&after.get(kind).copied().unwrap_or_default())
    };
    let mut after = apis.counters().await?;
    let mut at = None;
    loop {
        let now = Instant::now();
        if now >= window.due
            && expected
                .iter()
                .all(|(kind, n)| Fate::settled(&delta(&after, kind), *n))
        {
            at = Some(now);
            tokio::time::sleep(GRACE).await;
            after = apis.counters().await?;
            break;
        }
        if now >= deadline {
            let tried = expected.keys().any(|kind| delta(&after, kind).requests > 0);
            match extended.take() {
                Some(later) if !tried => deadline = later,
                _ => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = apis.counters().await?;
    }
    let mut refused = Vec::new();
    let mut accepted = Vec::new();
    let mut parts = Vec::new();
    // Counters that went down started again: Alertmanager restarted, and what it did before
    // is not known.
    let restarted = expected.keys().any(|kind| {
        let (start, end) = (before.get(kind), after.get(kind));
        start.map_or(0, |t| t.requests) > end.map_or(0, |t| t.requests)
    });
    if restarted {
        return Ok(Seen {
            refused: expected.keys().cloned().collect(),
            accepted,
            says: "Alertmanager restarted while this was due, so whether it went out is not known: run the drill again".to_owned(),
            at,
        });
    }
    for (kind, n) in expected {
        let fate = Fate::of(&delta(&after, kind), *n);
        let part = match fate {
            Fate::Delivered => format!("{kind} accepted"),
            Fate::Refused {
                refused,
                requests,
                given_up,
                delivered,
            } => {
                let why = logged::reason(kind, since, apis.alertmanager_url()).await;
                let state = if given_up > 0 {
                    "gave up".to_owned()
                } else if delivered > 0 {
                    format!(
                        "{delivered} taken, by a retry or another {kind} receiver: Alertmanager does not say which"
                    )
                } else {
                    "still retrying".to_owned()
                };
                format!(
                    "{kind} FAILED (refused {refused} of {requests} request{}, {state}: {why})",
                    plural(requests)
                )
            }
            Fate::NotSent => format!("{kind} not sent"),
        };
        if fate == Fate::Delivered {
            accepted.push(kind.clone());
        } else {
            refused.push(kind.clone());
        }
        parts.push(part);
    }
    Ok(Seen {
        refused,
        accepted,
        says: parts.join(", "),
        at,
    })
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(begun: u64, given_up: u64, requests: u64, requests_failed: u64) -> Tally {
        Tally {
            begun,
            given_up,
            requests,
            requests_failed,
        }
    }

    /// A mail server that refuses: the notification is begun at once and its failure counted
    /// only when the retries end, minutes later. Begun is not delivered; and a refusal of the
    /// kind fails it even when as many got through (another receiver's, perhaps).
    #[test]
    fn begun_is_not_delivered_and_any_refusal_of_the_kind_fails_it() {
        let retrying = tally(1, 0, 3, 3);
        assert!(matches!(
            Fate::of(&retrying, 1),
            Fate::Refused {
                refused: 3,
                given_up: 0,
                delivered: 0,
                ..
            }
        ));
        assert!(!Fate::settled(&retrying, 1));
        assert_eq!(Fate::of(&tally(1, 0, 0, 0), 1), Fate::NotSent);
        assert_eq!(Fate::of(&tally(1, 0, 1, 0), 1), Fate::Delivered);
        assert!(matches!(
            Fate::of(&tally(2, 0, 5, 4), 1),
            Fate::Refused { delivered: 1, .. }
        ));
        let gave_up = tally(1, 1, 1, 1);
        assert!(Fate::settled(&gave_up, 1));
        assert!(matches!(
            Fate::of(&gave_up, 1),
            Fate::Refused { given_up: 1, .. }
        ));
    }

    /// A household whose alarms are routed per child: each route is tested as a real alert
    /// of that child's takes it; where the route does not depend on the account, the drill's
    /// own is used, so no real group is joined.
    #[test]
    fn test_alerts_take_the_routes_real_alerts_take() {
        let config = AlertmanagerConfig::parse(
            r#"
route:
  receiver: warnings
  routes:
    - receiver: alex-phone
      matchers: ['account="alex"', 'severity="critical"']
    - receiver: family
      matchers: ['job="dexcom"', 'alertname="DexcomSignalLoss"']
receivers:
  - {name: warnings, email_configs: [{to: a@b}]}
  - {name: alex-phone, webhook_configs: [{url: http://x}]}
  - {name: family, webhook_configs: [{url: http://y}]}
"#,
        )
        .unwrap();
        let known = Known {
            series: crate::drill::known::fixtures::series(&["alex", "sam"]),
            ..Known::default()
        };
        let alerts = test_alerts("drill-1", &known, &config);
        let got: Vec<(&str, &str, String)> = alerts
            .iter()
            .map(|a| {
                (
                    a.step,
                    a.labels["account"].as_str(),
                    config.destinations(&a.labels)[0].receiver.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("urgent_low_sent", "alex", "alex-phone".to_owned()),
                ("urgent_low_sent", "drill-1", "warnings".to_owned()),
                ("unseen_sent", "drill-1", "family".to_owned()),
            ]
        );
        assert_eq!(alerts[0].what, "The urgent-low alarm as for alex");
        assert!(alerts.iter().all(|a| a.labels["drill_run"] == "drill-1"));
        // With no series known, the drill's own labels.
        let own = test_alerts("drill-1", &Known::default(), &config);
        assert_eq!(own.len(), 2);
        assert_eq!(own[1].labels["instance"], "drill");
    }

    #[test]
    fn filter_values_are_quoted_as_alertmanager_reads_them() {
        assert_eq!(quoted("kid"), "\"kid\"");
        assert_eq!(quoted(r#"kid "A"\"#), r#""kid \"A\"\\""#);
    }

    #[test]
    fn routes_of_one_alert_end_at_their_own_flush() {
        let at = Instant::now();
        let fired = Fired {
            at,
            intervals: vec![Duration::from_secs(15), Duration::from_secs(60)],
            ending: BTreeMap::new(),
        };
        assert_eq!(
            fired.last_ending(at + Duration::from_secs(20)),
            at + Duration::from_secs(60)
        );
        assert_eq!(
            fired.last_ending(at + Duration::from_secs(70)),
            at + Duration::from_secs(120)
        );
    }
}
