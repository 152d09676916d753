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
/// The test alerts last this long unless ended first (so an interrupted drill ends by itself).
const TEST_ALERT_LIFETIME: Duration = Duration::from_secs(600);

/// A test alert: its labels, its annotations and what a parent calls it.
struct TestAlert {
    step: &'static str,
    what: &'static str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn test_alerts() -> [TestAlert; 2] {
    let alert = |step, what, alertname: &str, severity: &str, summary: &str| TestAlert {
        step,
        what,
        labels: BTreeMap::from([
            ("alertname".to_owned(), alertname.to_owned()),
            ("severity".to_owned(), severity.to_owned()),
            ("account".to_owned(), "drill".to_owned()),
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
            "urgent_low_sent",
            "The urgent-low alarm",
            "DexcomGlucoseUrgentLow",
            "critical",
            "drill: test of the urgent-low alarm",
        ),
        alert(
            "unseen_sent",
            "The \"glucose cannot be seen\" alarm",
            "DexcomSignalLoss",
            "warning",
            "drill: test of the \"glucose cannot be seen\" alarm",
        ),
    ]
}

/// Sends each test alert, then ends them all, watching the counters.
pub(super) async fn send_and_end(
    apis: &Apis,
    config: &AlertmanagerConfig,
    record: &mut dyn FnMut(&'static str, bool, String),
) -> Result<(), DrillError> {
    let alerts = test_alerts();
    let mut ending: BTreeMap<String, usize> = BTreeMap::new();
    let mut ending_wait = Duration::ZERO;
    let mut sent = Vec::new();
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
        let before = apis.counters().await?;
        apis.post_alerts(
            &[(alert.labels.clone(), alert.annotations.clone())],
            SystemTime::now() + TEST_ALERT_LIFETIME,
        )
        .await?;
        sent.push((alert.labels.clone(), alert.annotations.clone()));
        let expected = count(integrations.iter());
        let (refused, says) = watch(apis, &before, &expected, wait + SLACK).await?;
        record(
            alert.step,
            refused.is_empty(),
            format!("{} (to {}): {says}", alert.what, receivers.join(", ")),
        );
        // Alertmanager tells an ending only where it told the alarm.
        let told = integrations
            .iter()
            .filter(|i| i.send_resolved && !refused.contains(&i.kind));
        for (kind, n) in count(told) {
            *ending.entry(kind).or_default() += n;
        }
        not_told.extend(refused);
        ending_wait = ending_wait.max(
            destinations
                .iter()
                .map(|d| d.group_interval)
                .max()
                .unwrap_or_default(),
        );
    }
    if sent.is_empty() {
        return Ok(());
    }
    let before = apis.counters().await?;
    apis.post_alerts(&sent, SystemTime::now()).await?;
    if ending.is_empty() {
        record(
            "all_clear",
            true,
            "The test alerts are ended (no integration is told of an ending)".to_owned(),
        );
        return Ok(());
    }
    let (refused, says) = watch(apis, &before, &ending, ending_wait + SLACK).await?;
    let quiet = config.loud_endings().is_empty();
    not_told.sort();
    not_told.dedup();
    let skipped = if not_told.is_empty() {
        String::new()
    } else {
        format!(" ({} not told: it took no alarm)", not_told.join(", "))
    };
    record(
        "all_clear",
        refused.is_empty(),
        if refused.is_empty() {
            format!(
                "The all-clear went out{}: {says}{skipped}",
                if quiet { " quietly" } else { "" }
            )
        } else {
            format!("The all-clear did not go out everywhere: {says}{skipped}")
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

/// Waits (at most `within`) until each integration kind in `expected` has made that many
/// attempts more than in `before`; says per kind whether they were accepted, and returns the
/// kinds that failed or sent nothing.
async fn watch(
    apis: &Apis,
    before: &Counters,
    expected: &BTreeMap<String, usize>,
    within: Duration,
) -> Result<(Vec<String>, String), DrillError> {
    let since = SystemTime::now();
    let deadline = Instant::now() + within;
    let mut after = apis.counters().await?;
    let delta = |after: &Counters, kind: &str| {
        let (a0, f0) = before.get(kind).copied().unwrap_or_default();
        let (a1, f1) = after.get(kind).copied().unwrap_or_default();
        (a1.saturating_sub(a0), f1.saturating_sub(f0))
    };
    while Instant::now() < deadline
        && expected
            .iter()
            .any(|(kind, n)| (delta(&after, kind).0 as usize) < *n)
    {
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
            format!("{kind} not sent within {}s", within.as_secs())
        } else {
            format!("{kind} accepted")
        };
        parts.push(part);
    }
    Ok((refused, parts.join(", ")))
}
