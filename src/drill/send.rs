//! The sending half of the drill: a test alert through each route that can ring, watched
//! through Alertmanager's own counters (it has no API that says whether a notification got
//! through), then the endings, watched the same way. Alertmanager tells an ending only where
//! it told the alarm, so an integration that refused the alarm is not expected to hear it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use super::api::{Apis, Counters, DrillError};
use super::logged;
use super::routing::{AlertmanagerConfig, Integration};

/// How long past a route's own wait a notification may take to be counted.
const SLACK: Duration = Duration::from_secs(20);
/// How long before a notification is due the counters are read: later than the alert's own
/// posting, so little else is counted with it, early enough not to miss it.
const MARGIN: Duration = Duration::from_secs(3);
/// The test alerts last this long unless ended first (so an interrupted drill ends by itself).
const TEST_ALERT_LIFETIME: Duration = Duration::from_secs(600);

/// A test alert: its labels, its annotations and what a parent calls it.
struct TestAlert {
    step: &'static str,
    what: &'static str,
    short: &'static str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// The test alerts, for an `account` of their own per run: Alertmanager groups by account,
/// and a group left from an earlier drill (still waiting to tell its ending) would hold a new
/// alert back until that group's next flush.
fn test_alerts() -> [TestAlert; 2] {
    let account = format!(
        "drill-{}",
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    let alert = |(step, what, short), alertname: &str, severity: &str, summary: &str| TestAlert {
        step,
        what,
        short,
        labels: BTreeMap::from([
            ("alertname".to_owned(), alertname.to_owned()),
            ("severity".to_owned(), severity.to_owned()),
            ("account".to_owned(), account.clone()),
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

/// Sends each test alert, then ends them all, watching the counters.
pub(super) async fn send_and_end(
    apis: &Apis,
    config: &AlertmanagerConfig,
    record: &mut dyn FnMut(&'static str, bool, String),
) -> Result<(), DrillError> {
    let alerts = test_alerts();
    let mut fired = Vec::new();
    let mut not_told: Vec<String> = Vec::new();
    for alert in &alerts {
        let destinations = config.destinations(&alert.labels);
        let receivers: Vec<&str> = destinations.iter().map(|d| d.receiver.as_str()).collect();
        let integrations: Vec<Integration> = receivers
            .iter()
            .flat_map(|r| config.integrations(r))
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
            SystemTime::now() + TEST_ALERT_LIFETIME,
        )
        .await?;
        let expected = count(integrations.iter());
        let seen = watch(apis, Some(before), posted + wait, &expected).await?;
        record(
            alert.step,
            seen.refused.is_empty(),
            format!(
                "{} (to {}): {}",
                alert.what,
                receivers.join(", "),
                seen.says
            ),
        );
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
    let all: Vec<_> = fired
        .iter()
        .map(|f| (f.alert.labels.clone(), f.alert.annotations.clone()))
        .collect();
    apis.post_alerts(&all, SystemTime::now()).await?;
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
    /// Per kind: accepted, failed and why, or not sent.
    says: String,
    /// When every expected attempt had been counted.
    at: Option<Instant>,
}

/// Watches for the notification Alertmanager sends at about `due`: the counters are read
/// from `before` (or, with none, from a few seconds before `due`, so other alerts' traffic
/// in between is not taken for this one) until each integration kind in `expected` has made
/// that many more attempts, or `SLACK` after `due`.
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
        let (a0, f0) = before.get(kind).copied().unwrap_or_default();
        let (a1, f1) = after.get(kind).copied().unwrap_or_default();
        (a1.saturating_sub(a0), f1.saturating_sub(f0))
    };
    let mut after = apis.counters().await?;
    let mut at = None;
    loop {
        if expected
            .iter()
            .all(|(kind, n)| delta(&after, kind).0 as usize >= *n)
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
    let mut parts = Vec::new();
    for (kind, n) in expected {
        let (attempts, failed) = delta(&after, kind);
        let part = if failed > 0 {
            refused.push(kind.clone());
            let why = logged::reason(kind, since).await;
            format!("{kind} FAILED ({failed} of {attempts} refused: {why})")
        } else if (attempts as usize) < *n {
            refused.push(kind.clone());
            format!("{kind} not sent")
        } else {
            format!("{kind} accepted")
        };
        parts.push(part);
    }
    Ok(Seen {
        refused,
        says: parts.join(", "),
        at,
    })
}
