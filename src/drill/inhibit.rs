//! Inhibit rules that keep an alarm quiet. An inhibit rule written the wrong way round
//! (source `severity="warning"`, target `severity="critical"`) mutes every urgent low while
//! a high fires for the same child, and nothing says so: Alertmanager holds the alarm as
//! suppressed and tells nobody. So the drill names each rule under which an alert that is
//! no alarm would silence an alarm, and each alarm Alertmanager holds inhibited right now.
//! An alarm silencing another (an urgent low its own "low soon") is what the shipped rules
//! do, and is fine.

use serde_json::{Value, json};

use super::known::{Labels, is_alarm};
use super::routing::{AlertmanagerConfig, matches};
use super::silences::named;

/// The rules of `config` under which one of `candidates` that is no alarm would silence one
/// that is, as "inhibit rule N: SOURCE silences TARGET".
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
        let equal: Vec<&str> = rule["equal"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let value = |labels: &Labels, name: &str| labels.get(name).cloned().unwrap_or_default();
        'targets: for muted in candidates
            .iter()
            .filter(|l| is_alarm(l) && matches(&target, l))
        {
            for by in candidates
                .iter()
                .filter(|l| !is_alarm(l) && matches(&source, l))
            {
                if equal.iter().all(|e| value(by, e) == value(muted, e)) {
                    out.push(format!(
                        "inhibit rule {}: {} (no alarm) silences {}",
                        index + 1,
                        named(by),
                        named(muted)
                    ));
                    continue 'targets;
                }
            }
        }
    }
    out.dedup();
    out
}

/// The alarms among `alerts` (Alertmanager's `/api/v2/alerts`) that it holds inhibited now
/// by an alert that is no alarm (one inhibited by an alarm is rung for by that one).
pub fn inhibited_now(alerts: &[Value]) -> Vec<String> {
    let labels_of = |alert: &Value| -> Labels {
        alert["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    };
    let by_fingerprint = |fingerprint: &str| {
        alerts
            .iter()
            .find(|a| a["fingerprint"].as_str() == Some(fingerprint))
            .map(labels_of)
    };
    let mut out = Vec::new();
    for alert in alerts {
        let labels = labels_of(alert);
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
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

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
                "inhibit rule 1: DexcomGlucoseHigh for alex (no alarm) silences DexcomGlucoseUrgentLow for alex",
                "inhibit rule 1: DexcomGlucoseHigh for alex (no alarm) silences DexcomGlucoseUrgentLowSoon for alex",
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
