//! Inhibit rules that keep an alarm quiet. An inhibit rule written the wrong way round
//! (source `severity="warning"`, target `severity="critical"`) mutes every urgent low while
//! a high fires for the same child, and nothing says so: Alertmanager holds the alarm as
//! suppressed and tells nobody. So the drill names each rule under which an alert that is
//! no alarm would silence an alarm, and each alarm Alertmanager holds inhibited right now.
//! An alarm silencing another (an urgent low its own "low soon") is what the shipped rules
//! do, and is fine.

use serde_json::{Value, json};

use super::known::{Labels, is_alarm, labels_of};
use super::routing::{AlertmanagerConfig, matches};
use super::silences::named;

/// The rules of `config` under which an alert that is no alarm would silence an alarm among
/// `candidates`, one line per rule: "inhibit rule N: SOURCE would silence TARGET". A source
/// is fine only when what it matches is all alarms that ring themselves (urgent or "cannot be
/// seen"); one that matches none of the known alerts may match any other job's (a `HostDown`),
/// and `Watchdog` always fires. The `equal` labels are not relied on: they narrow, not widen.
pub fn risky(config: &AlertmanagerConfig, candidates: &[Labels]) -> Vec<String> {
    let mut out = Vec::new();
    for (index, rule) in config.inhibit_rules().iter().enumerate() {
        let side = |prefix: &str| {
            json!({
                "matchers": rule[format!("{prefix}_matchers")],
                "match": rule[format!("{prefix}_match")],
                "match_re": rule[format!("{prefix}_match_re")],
            })
        };
        let (source, target) = (side("source"), side("target"));
        let mut muted: Vec<&Labels> = candidates
            .iter()
            .filter(|l| is_alarm(l) && matches(&target, l))
            .collect();
        // The urgent low first: it is the one a parent must hear of.
        muted.sort_by_key(|l| {
            l.get("alertname")
                .is_none_or(|n| n != "DexcomGlucoseUrgentLow")
        });
        let Some(first) = muted.first() else {
            continue;
        };
        let more = match muted.len() - 1 {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let sources: Vec<&Labels> = candidates.iter().filter(|l| matches(&source, l)).collect();
        let by = match sources.iter().find(|l| !rings(l)) {
            Some(quiet) => format!("{} (no alarm)", named(quiet)),
            None if sources.is_empty() => format!(
                "any alert matching {} (none of the exporter's)",
                matchers_text(&source)
            ),
            None => continue,
        };
        out.push(format!(
            "inhibit rule {}: {by} would silence {}{more}",
            index + 1,
            named(first)
        ));
    }
    out
}

/// Whether an alert with `labels` rings a phone itself: urgent, or "cannot be seen". Not
/// `Watchdog`, which always fires.
fn rings(labels: &Labels) -> bool {
    is_alarm(labels) && labels.get("alertname").is_none_or(|n| n != "Watchdog")
}

/// A rule side's matchers as written.
fn matchers_text(side: &Value) -> String {
    let mut parts: Vec<String> = side["matchers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    for (key, op) in [("match", "="), ("match_re", "=~")] {
        for (name, value) in side[key].as_object().into_iter().flatten() {
            parts.push(format!(
                "{name}{op}\"{}\"",
                value.as_str().unwrap_or_default()
            ));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// The alarms among `alerts` (Alertmanager's `/api/v2/alerts`) that it holds inhibited now
/// by an alert that is no alarm (one inhibited by an alarm is rung for by that one).
pub fn inhibited_now(alerts: &[Value]) -> Vec<String> {
    let by_fingerprint = |fingerprint: &str| {
        alerts
            .iter()
            .find(|a| a["fingerprint"].as_str() == Some(fingerprint))
            .map(|a| labels_of(&a["labels"]))
    };
    let mut out = Vec::new();
    for alert in alerts {
        let labels = labels_of(&alert["labels"]);
        if !is_alarm(&labels) {
            continue;
        }
        let sources: Vec<Labels> = alert["status"]["inhibitedBy"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(by_fingerprint)
            .filter(|source| !is_alarm(source))
            .collect();
        if let Some(source) = sources.first() {
            out.push(format!(
                "{} is inhibited now by {}",
                named(&labels),
                named(source)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::known::fixtures::labels;
    use super::*;

    #[test]
    fn a_rule_the_wrong_way_round_is_named_and_the_shipped_ones_are_not() {
        let candidates = [
            labels(&[
                ("alertname", "DexcomGlucoseUrgentLow"),
                ("severity", "critical"),
                ("account", "alex"),
            ]),
            labels(&[
                ("alertname", "DexcomGlucoseUrgentLowSoon"),
                ("severity", "critical"),
                ("account", "alex"),
            ]),
            labels(&[
                ("alertname", "DexcomGlucoseHigh"),
                ("severity", "warning"),
                ("account", "alex"),
            ]),
            labels(&[("alertname", "Watchdog"), ("severity", "none")]),
            labels(&[
                ("alertname", "AlertmanagerNotificationsFailing"),
                ("severity", "critical"),
            ]),
        ];
        let shipped =
            AlertmanagerConfig::parse(include_str!("../../deploy/alertmanager/alertmanager.yml"))
                .unwrap();
        assert!(risky(&shipped, &candidates).is_empty());
        let reversed = AlertmanagerConfig::parse(
            "route: {receiver: x}\nreceivers: [{name: x}]\ninhibit_rules:\n  - source_matchers: ['severity=\"warning\"']\n    target_matchers: ['severity=\"critical\"']\n    equal: [account]\n",
        )
        .unwrap();
        assert_eq!(
            risky(&reversed, &candidates),
            [
                "inhibit rule 1: DexcomGlucoseHigh for alex (no alarm) would silence DexcomGlucoseUrgentLow for alex and 2 more"
            ]
        );
        let foreign = AlertmanagerConfig::parse(
            "route: {receiver: x}\nreceivers: [{name: x}]\ninhibit_rules:\n  - source_matchers: ['alertname=\"HostDown\"']\n    target_matchers: ['severity=\"critical\"']\n  - source_matchers: ['alertname=\"Watchdog\"']\n    target_matchers: ['severity=\"critical\"']\n",
        )
        .unwrap();
        assert_eq!(
            risky(&foreign, &candidates),
            [
                "inhibit rule 1: any alert matching {alertname=\"HostDown\"} (none of the exporter's) would silence DexcomGlucoseUrgentLow for alex and 2 more",
                "inhibit rule 2: Watchdog (no alarm) would silence DexcomGlucoseUrgentLow for alex and 2 more",
            ]
        );
        let held = serde_json::json!([
            {"fingerprint": "1", "labels": {"alertname": "DexcomGlucoseUrgentLow", "severity": "critical", "account": "alex"},
             "status": {"inhibitedBy": ["3"]}},
            {"fingerprint": "2", "labels": {"alertname": "DexcomGlucoseUrgentLowSoon", "severity": "critical", "account": "sam"},
             "status": {"inhibitedBy": ["4"]}},
            {"fingerprint": "3", "labels": {"alertname": "DexcomGlucoseHigh", "severity": "warning", "account": "alex"},
             "status": {"inhibitedBy": []}},
            {"fingerprint": "4", "labels": {"alertname": "DexcomGlucoseUrgentLow", "severity": "critical", "account": "sam"},
             "status": {"inhibitedBy": []}},
        ]);
        assert_eq!(
            inhibited_now(held.as_array().unwrap()),
            ["DexcomGlucoseUrgentLow for alex is inhibited now by DexcomGlucoseHigh for alex"]
        );
    }
}
