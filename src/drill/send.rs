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
use super::logged;
use super::routing::{AlertmanagerConfig, Integration};

/// How long past a route's own wait a notification may take to be counted.
const SLACK: Duration = Duration::from_secs(20);
/// How long before a notification is due the counters are read: later than the alert's own
/// posting, so little else is counted with it, early enough not to miss it.
const MARGIN: Duration = Duration::from_secs(3);
/// How long a test alert outlives the sending it waits for: if the drill is killed (it ends
/// them itself on SIGINT and SIGTERM), they end by themselves soon after.
const LIFETIME_SLACK: Duration = Duration::from_secs(60);

/// A test alert: its labels, its annotations and what a parent calls it.
struct TestAlert {
    step: &'static str,
    what: &'static str,
    short: &'static str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// The account label of this run's test alerts: one of their own per run, as Alertmanager
/// groups by account, and a group left from an earlier drill (still waiting to tell its
/// ending) would hold a new alert back until that group's next flush.
pub(super) fn run_account() -> String {
    format!(
        "drill-{}",
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    )
}

/// The test alerts of the run whose account is `account`.
fn test_alerts(account: &str) -> [TestAlert; 2] {
    let alert = |(step, what, short), alertname: &str, severity: &str, summary: &str| TestAlert {
        step,
        what,
        short,
        labels: BTreeMap::from([
            ("alertname".to_owned(), alertname.to_owned()),
            ("severity".to_owned(), severity.to_owned()),
            ("account".to_owned(), account.to_owned()),
            ("instance".to_owned(), "drill".to_owned()),
            ("job".to_owned(), "dexcom".to_owned()),
        ]),
        annotations: BTreeMap::from([
            ("summary".to_owned(), summary.to_owned()),
            (
                "description".to_owned(),
                "A test by dexcom_exporter drill; no reading is involved. Acknowledge it."
                    .to_owned(),
            ),
        ]),
    };
    [
        alert(
            ("urgent_low_sent", "The urgent-low alarm", "urgent low"),
            "DexcomGlucoseUrgentLow",
            "critical",
            "drill: test of the urgent-low alarm",
        ),
        alert(
            (
                "unseen_sent",
                "The \"glucose cannot be seen\" alarm",
                "cannot be seen",
            ),
            "DexcomSignalLoss",
            "warning",
            "drill: test of the \"glucose cannot be seen\" alarm",
        ),
    ]
}

/// A test alert that went out, and what its ending is expected to reach.
struct Fired<'a> {
    alert: &'a TestAlert,
    /// When Alertmanager told it (about): its group's later flushes follow at `interval`.
    at: Instant,
    interval: Duration,
    /// The integration kinds that took the alarm and are told of an ending.
    ending: BTreeMap<String, usize>,
}

/// The labels of the run's test alerts (what the silences are checked against).
pub(super) fn test_labels(account: &str) -> Vec<BTreeMap<String, String>> {
    test_alerts(account).into_iter().map(|a| a.labels).collect()
}

/// Ends the run's test alerts at once (whether or not they were sent: Alertmanager tells
/// nobody of an ending it never told the start of).
pub(super) async fn end_all(apis: &Apis, account: &str) -> Result<(), DrillError> {
    let all: Vec<_> = test_alerts(account)
        .into_iter()
        .map(|a| (a.labels, a.annotations))
        .collect();
    apis.post_alerts(&all, SystemTime::now()).await
}

/// Sends each test alert, then ends them all, watching the counters.
pub(super) async fn send_and_end(
    apis: &Apis,
    config: &AlertmanagerConfig,
    account: &str,
    record: &mut dyn FnMut(&'static str, bool, String),
) -> Result<(), DrillError> {
    let alerts = test_alerts(account);
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
            wait + SLACK + MARGIN
        })
        .sum::<Duration>()
        + LIFETIME_SLACK;
    let mut fired = Vec::new();
    let mut not_told: Vec<String> = Vec::new();
    for alert in &alerts {
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
        let seen = watch(apis, Some(before), posted + wait, &expected).await?;
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
        record(alert.step, seen.refused.is_empty() && rang, says);
        // Alertmanager tells an ending only where it told the alarm.
        let told = integrations
            .iter()
            .filter(|i| i.send_resolved && !seen.refused.contains(&i.kind));
        fired.push(Fired {
            alert,
            at: seen.at.unwrap_or(posted + wait),
            interval,
            ending: count(told),
        });
        not_told.extend(seen.refused);
    }
    if fired.is_empty() {
        return Ok(());
    }
    let ended = Instant::now();
    end_all(apis, account).await?;
    // Each ending goes out at its group's first flush after it was posted.
    let mut endings: Vec<(Instant, &Fired)> = fired
        .iter()
        .filter(|f| !f.ending.is_empty())
        .map(|f| {
            let mut at = f.at + f.interval;
            while at < ended && !f.interval.is_zero() {
                at += f.interval;
            }
            (at, f)
        })
        .collect();
    endings.sort_by_key(|(at, _)| *at);
    let mut refused = Vec::new();
    let mut parts = Vec::new();
    for (at, f) in endings {
        let seen = watch(apis, None, at, &f.ending).await?;
        parts.push(format!("{}: {}", f.alert.short, seen.says));
        refused.extend(seen.refused);
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
    /// When every expected attempt had been counted.
    at: Option<Instant>,
}

/// How one integration kind fared with the notifications expected of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Its far end took them (after `refused` failed requests, which were retried).
    Delivered { refused: u64 },
    /// Its requests failed: `given_up` notifications ended failed, the rest still retrying.
    Refused { requests: u64, given_up: u64 },
    /// Nothing was tried.
    NotSent,
}

impl Fate {
    /// `delta` is what Alertmanager counted for the kind while `expected` notifications were
    /// due.
    fn of(delta: &Tally, expected: usize) -> Fate {
        let expected = expected as u64;
        if delta.delivered() >= expected {
            Fate::Delivered {
                refused: delta.requests_failed,
            }
        } else if delta.requests_failed > 0 || delta.given_up > 0 {
            Fate::Refused {
                requests: delta.requests_failed,
                given_up: delta.given_up,
            }
        } else {
            Fate::NotSent
        }
    }

    /// Whether nothing more is to be learnt by waiting: all delivered, or given up on.
    fn settled(delta: &Tally, expected: usize) -> bool {
        delta.delivered() + delta.given_up >= expected as u64
    }
}

/// Watches for the notification Alertmanager sends at about `due`: the counters are read
/// from `before` (or, with none, from a few seconds before `due`, so other alerts' traffic
/// in between is not taken for this one) until each integration kind in `expected` has
/// delivered (or given up on) that many, or `SLACK` after `due`.
async fn watch(
    apis: &Apis,
    before: Option<Counters>,
    due: Instant,
    expected: &BTreeMap<String, usize>,
) -> Result<Seen, DrillError> {
    let from = due.checked_sub(MARGIN).unwrap_or(due);
    let before = match before {
        Some(before) if from <= Instant::now() => before,
        _ => {
            tokio::time::sleep_until(from.into()).await;
            apis.counters().await?
        }
    };
    let since = SystemTime::now();
    let deadline = due + SLACK;
    let delta = |after: &Counters, kind: &str| {
        let start = before.get(kind).copied().unwrap_or_default();
        start.since(&after.get(kind).copied().unwrap_or_default())
    };
    let mut after = apis.counters().await?;
    let mut at = None;
    loop {
        if expected
            .iter()
            .all(|(kind, n)| Fate::settled(&delta(&after, kind), *n))
        {
            at = Some(Instant::now());
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = apis.counters().await?;
    }
    let mut refused = Vec::new();
    let mut accepted = Vec::new();
    let mut parts = Vec::new();
    for (kind, n) in expected {
        let fate = Fate::of(&delta(&after, kind), *n);
        let part = match fate {
            Fate::Delivered { refused: 0 } => format!("{kind} accepted"),
            Fate::Delivered { refused: r } => {
                format!("{kind} accepted (after {r} refused request{})", plural(r))
            }
            Fate::Refused { requests, given_up } => {
                let why = logged::reason(kind, since, apis.alertmanager_url()).await;
                let state = if given_up > 0 {
                    "gave up"
                } else {
                    "still retrying"
                };
                format!(
                    "{kind} FAILED (refused {requests} time{}, {state}: {why})",
                    plural(requests)
                )
            }
            Fate::NotSent => format!("{kind} not sent"),
        };
        if matches!(fate, Fate::Delivered { .. }) {
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
    /// only when the retries end, minutes later. Begun is not delivered.
    #[test]
    fn begun_is_not_delivered_and_a_retried_refusal_is_a_failure() {
        let retrying = tally(1, 0, 3, 3);
        assert_eq!(
            Fate::of(&retrying, 1),
            Fate::Refused {
                requests: 3,
                given_up: 0
            }
        );
        assert!(!Fate::settled(&retrying, 1));
        assert_eq!(Fate::of(&tally(1, 0, 0, 0), 1), Fate::NotSent);
        assert_eq!(
            Fate::of(&tally(1, 0, 2, 1), 1),
            Fate::Delivered { refused: 1 }
        );
        let gave_up = tally(1, 1, 1, 1);
        assert!(Fate::settled(&gave_up, 1));
        assert!(matches!(
            Fate::of(&gave_up, 1),
            Fate::Refused { given_up: 1, .. }
        ));
    }
}
