//! What may fire, as Prometheus knows it: the exporter's series (each account's labels as an
//! alert of the shipped rules carries them: `account`, `job`, `instance` and whatever the
//! scrape adds) and every alerting rule's labels. Routes and silences select on these labels,
//! so the drill routes its test alerts, and judges silences, with the real ones: a route for
//! one child's account, or on `job`, is then tested as it is, not missed.

use std::collections::BTreeMap;

use serde_json::Value;

use super::api::{Apis, DrillError};

/// Labels of an alert.
pub type Labels = BTreeMap<String, String>;

/// The string fields of the JSON object `value` as labels (none when it is not an object; a
/// value that is not a string reads as empty).
pub fn labels_of(value: &Value) -> Labels {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// The alerts that mean "the glucose cannot be seen", as the shipped `alertmanager.yml`
/// routes them to `glucose-unseen`: while one lasts, no low can page.
const UNSEEN: [&str; 6] = [
    "DexcomSignalLoss",
    "DexcomNoGlucoseValue",
    "DexcomShareLoginFailing",
    "DexcomLoginStateFailing",
    "DexcomShareUnavailable",
    "DexcomExporterDown",
];

/// The rules whose alerts are alarms: without each (or with one that fails to evaluate), an
/// alarm cannot fire at all.
const ALARM_RULES: [&str; 3] = [
    "DexcomGlucoseUrgentLow",
    "DexcomGlucoseUrgentLowSoon",
    "Watchdog",
];

/// Each alarm rule that is missing from `rules` (Prometheus's `/api/v1/rules`) or does not
/// evaluate (`health` not `ok`), with Prometheus's error.
pub fn alarm_rule_problems(rules: &Value) -> Vec<String> {
    let all: Vec<&Value> = alerting_rules(rules).collect();
    let mut out = Vec::new();
    for name in ALARM_RULES.iter().chain(UNSEEN.iter()) {
        let found: Vec<&&Value> = all
            .iter()
            .filter(|r| r["name"].as_str() == Some(name))
            .collect();
        if found.is_empty() {
            out.push(format!("no rule {name}"));
        }
        // Two rules of one name with different labels: the drill tests one of them.
        let mut label_sets: Vec<&Value> = found.iter().map(|r| &r["labels"]).collect();
        label_sets.dedup();
        if label_sets.len() > 1 {
            out.push(format!(
                "{} rules named {name} set different labels: the drill tests one of them",
                found.len()
            ));
        }
        for rule in found {
            // A label from a template takes its value per alert, which the drill cannot
            // know: its test alert would not route as a real one.
            for (label, value) in rule["labels"].as_object().into_iter().flatten() {
                if value.as_str().is_some_and(|v| v.contains("{{")) {
                    out.push(format!(
                        "{name} sets {label} from a template, which the drill cannot expand, so its test would not route as a real alert does"
                    ));
                }
            }
            let health = rule["health"].as_str().unwrap_or("unknown");
            // "unknown" is a rule not evaluated yet, just after a start.
            if health == "err" {
                let error = rule["lastError"].as_str().unwrap_or_default();
                out.push(format!("{name} fails to evaluate: {error}"));
            }
        }
    }
    out
}

/// What Prometheus says may fire.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Each alerting rule's labels, once per series of the exporter for the rules that read
    /// its series: what the rule's alerts would carry, as far as the drill can know (a rule's
    /// expression may add labels of its own, such as `integration`).
    pub candidates: Vec<Labels>,
    /// The alerts Prometheus has firing or pending now, with all their labels.
    pub firing: Vec<Labels>,
    /// The exporter's series (`dexcom_up`'s label sets), one per account it serves.
    pub series: Vec<Labels>,
    /// Each alerting rule's own labels (`severity`, and whatever a user added), by name.
    pub rule_labels: BTreeMap<String, Labels>,
    /// The labels Prometheus adds to every alert it sends (`global.external_labels`).
    pub external: Labels,
    /// How many `alerting.alert_relabel_configs` Prometheus applies to what it sends: the
    /// drill cannot apply them, so a rewritten or dropped alarm would go unseen by it.
    pub alert_relabels: usize,
}

impl Known {
    /// Asks Prometheus, whose rules are `rules` (its `/api/v1/rules`) and whose alerts are
    /// `alerts` (its `/api/v1/alerts`, already read for Watchdog).
    pub async fn ask(apis: &Apis, rules: &Value, alerts: &Value) -> Result<Known, DrillError> {
        let found = apis.prometheus("query?query=dexcom_up").await?;
        let mut series: Vec<Labels> = found["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let mut labels = labels_of(&r["metric"]);
                labels.remove("__name__");
                labels
            })
            .collect();
        series.sort();
        series.dedup();
        let config = apis.prometheus("status/config").await?;
        let config: Value = config["yaml"]
            .as_str()
            .and_then(|text| serde_saphyr::from_str(text).ok())
            .unwrap_or_default();
        let external = labels_of(&config["global"]["external_labels"]);
        let alert_relabels = config["alerting"]["alert_relabel_configs"]
            .as_array()
            .map_or(0, Vec::len);
        let mut firing: Vec<Labels> = alerts["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| labels_of(&a["labels"]))
            .collect();
        let mut candidates = candidates(rules, &series);
        // An alert that fires for no series (Watchdog) is known exactly from Prometheus.
        candidates.retain(|c| {
            c.contains_key("account")
                || !firing
                    .iter()
                    .any(|f| f.get("alertname") == c.get("alertname"))
        });
        for labels in candidates.iter_mut().chain(firing.iter_mut()) {
            for (name, value) in &external {
                labels.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
        Ok(Known {
            candidates,
            firing,
            series,
            rule_labels: rule_labels(rules),
            external,
            alert_relabels,
        })
    }
}

/// Each alerting rule's own labels, by name.
fn rule_labels(rules: &Value) -> BTreeMap<String, Labels> {
    alerting_rules(rules)
        .filter_map(|rule| {
            Some((
                rule["name"].as_str()?.to_owned(),
                labels_of(&rule["labels"]),
            ))
        })
        .collect()
}

/// The alerting rules of Prometheus's `/api/v1/rules`.
fn alerting_rules(rules: &Value) -> impl Iterator<Item = &Value> {
    rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter(|r| r["type"].as_str() == Some("alerting"))
}

/// Whether silencing an alert with `labels` means an alarm would not ring tonight: an urgent
/// one (`severity="critical"`), one that means the glucose cannot be seen, or `Watchdog`
/// (without it the heartbeat service pages for nothing, or is paused and pages for nothing
/// real).
pub fn is_alarm(labels: &Labels) -> bool {
    let name = labels.get("alertname").map_or("", String::as_str);
    labels.get("severity").is_some_and(|s| s == "critical")
        || UNSEEN.contains(&name)
        || name == "Watchdog"
}

/// Every alerting rule's labels: its name and what it sets, once per series for the rules
/// that read the exporter's series.
fn candidates(rules: &Value, series: &[Labels]) -> Vec<Labels> {
    let mut out = Vec::new();
    for rule in alerting_rules(rules) {
        let Some(name) = rule["name"].as_str() else {
            continue;
        };
        let query = rule["query"].as_str().unwrap_or_default();
        let mut labels = labels_of(&rule["labels"]);
        labels.insert("alertname".to_owned(), name.to_owned());
        let per_series = query.contains("dexcom_");
        if per_series && !series.is_empty() {
            for one in series {
                let mut labels = labels.clone();
                for (label, value) in one {
                    labels.entry(label.clone()).or_insert_with(|| value.clone());
                }
                out.push(labels);
            }
        } else {
            // What the expression says of its result: a selector's `job="dexcom"` is the
            // alert's, and a label it groups `by` has a value the drill cannot know.
            for (label, value) in selector_labels(query) {
                labels.entry(label).or_insert(value);
            }
            for label in grouped_by(query) {
                labels.entry(label).or_insert_with(|| ANY_VALUE.to_owned());
            }
            out.push(labels);
        }
    }
    out
}

/// The value of a label an alert has but the drill cannot know (one its rule groups `by`):
/// any silence matcher on it may hold.
pub const ANY_VALUE: &str = "\u{1}any";

/// The `name="value"` equality matchers in a PromQL expression.
fn selector_labels(query: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("=\"") {
        let before = &rest[..at];
        let name: String = before
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let after = &rest[at + 2..];
        let Some(end) = after.find('"') else {
            break;
        };
        // Not `!=` or `=~`, and a name that is one.
        if !name.is_empty() && !before.ends_with('!') {
            out.push((name, after[..end].to_owned()));
        }
        rest = &after[end + 1..];
    }
    out
}

/// The labels a PromQL expression groups `by (...)`.
fn grouped_by(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("by") {
        let after = rest[at + 2..].trim_start();
        let word_start =
            at == 0 || !rest[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        if word_start
            && let Some(list) = after.strip_prefix('(')
            && let Some(end) = list.find(')')
        {
            out.extend(
                list[..end]
                    .split(',')
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty()),
            );
        }
        rest = &rest[at + 2..];
    }
    out
}

/// Labels and series for the drill's unit tests.
#[cfg(test)]
pub mod fixtures {
    use super::Labels;

    /// Labels from pairs.
    pub fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// One exporter series per account, job `dexcom` on `pi:9150`.
    pub fn series(accounts: &[&str]) -> Vec<Labels> {
        accounts
            .iter()
            .map(|a| labels(&[("account", a), ("job", "dexcom"), ("instance", "pi:9150")]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::series;
    use super::*;

    #[test]
    fn the_unseen_alerts_are_the_shipped_routes() {
        let shipped = include_str!("../../deploy/alertmanager/alertmanager.yml");
        let line = shipped
            .lines()
            .find(|l| l.contains("alertname=~\"DexcomSignalLoss"))
            .unwrap();
        let names = line.split('"').nth(1).unwrap();
        assert_eq!(names.split('|').collect::<Vec<_>>(), UNSEEN);
    }

    #[test]
    fn the_alarm_rules_are_the_shipped_ones() {
        let shipped = include_str!("../../deploy/prometheus/alerts.yml");
        for name in ALARM_RULES.iter().chain(UNSEEN.iter()) {
            assert!(shipped.contains(&format!("- alert: {name}\n")), "{name}");
        }
        let broken = serde_json::json!({"groups": [{"rules": [
            {"type": "alerting", "name": "DexcomGlucoseUrgentLow", "health": "err",
             "lastError": "many-to-many matching not allowed"},
        ]}]});
        let found = alarm_rule_problems(&broken);
        let templated = serde_json::json!({"groups": [{"rules": [
            {"type": "alerting", "name": "Watchdog", "labels": {"phone": "{{ $labels.account }}"}},
            {"type": "alerting", "name": "DexcomSignalLoss", "labels": {"phone": "mum"}},
            {"type": "alerting", "name": "DexcomSignalLoss", "labels": {"phone": "dad"}},
        ]}]});
        let said = alarm_rule_problems(&templated);
        assert!(
            said.iter()
                .any(|p| p.starts_with("Watchdog sets phone from a template")),
            "{said:?}"
        );
        assert!(
            said.contains(
                &"2 rules named DexcomSignalLoss set different labels: the drill tests one of them"
                    .to_owned()
            ),
            "{said:?}"
        );
        assert!(
            found.contains(
                &"DexcomGlucoseUrgentLow fails to evaluate: many-to-many matching not allowed"
                    .to_owned()
            )
        );
        assert!(found.contains(&"no rule Watchdog".to_owned()));
    }

    #[test]
    fn what_an_expression_says_of_its_alerts_labels() {
        assert_eq!(
            selector_labels(r#"up{job="dexcom"} == 0 or absent(up{job!="x", job="dexcom"})"#),
            [
                ("job".to_owned(), "dexcom".to_owned()),
                ("job".to_owned(), "dexcom".to_owned())
            ]
        );
        assert_eq!(
            grouped_by("sum by (job, instance, integration) (increase(x[1h])) > 0"),
            ["job", "instance", "integration"]
        );
        assert!(grouped_by("standby(x)").is_empty());
    }

    #[test]
    fn rules_reading_the_exporter_are_told_apart_per_series() {
        let rules = serde_json::json!({"groups": [{"rules": [
            {"type": "alerting", "name": "DexcomGlucoseUrgentLow", "labels": {"severity": "critical"},
             "query": "dexcom_glucose_mg_per_dl < 55"},
            {"type": "alerting", "name": "Watchdog", "labels": {"severity": "none"}, "query": "vector(1)"},
            {"type": "recording", "name": "x", "query": "dexcom_up"},
        ]}]});
        let found = candidates(&rules, &series(&["kid", "dad"]));
        assert_eq!(found.len(), 3);
        assert_eq!(found[0]["account"], "kid");
        assert_eq!(found[0]["job"], "dexcom");
        assert_eq!(found[0]["severity"], "critical");
        assert!(is_alarm(&found[0]) && is_alarm(&found[2]));
        assert!(!found[2].contains_key("account"));
    }
}
