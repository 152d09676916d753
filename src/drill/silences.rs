//! Silences that mute an alarm. A silence set for a sensor change at 22:00 and meant to end
//! at 23:00, set to end a day later by a slip, mutes every urgent low of the night, and
//! nothing else says so: the rules fire, Alertmanager keeps quiet. So the drill reads the
//! active silences and names each one that would mute one of the shipped alerts (or the
//! drill's own test alerts), and when what it mutes would ring a phone, says it would not.
//!
//! A silence's matchers are checked against the labels the drill can know: the alert's name
//! and the labels its rule sets (severity), and the accounts Prometheus sees. A matcher on
//! any other label (`instance`, `job`) is taken to match: it may, and a silence that might
//! mute an alarm is worth a line.

use std::collections::BTreeMap;

use serde_json::Value;

/// Labels of an alert that may fire.
pub type Labels = BTreeMap<String, String>;

/// An active silence and what it mutes of `candidates`.
#[derive(Debug, Clone)]
pub struct Muting<'a> {
    /// Who set it, until when and why, in one line.
    pub about: String,
    /// The candidates it mutes.
    pub mutes: Vec<&'a Labels>,
}

/// The active silences among `silences` (Alertmanager's `/api/v2/silences`) that mute at
/// least one of `candidates`.
pub fn muting<'a>(silences: &[Value], candidates: &'a [Labels]) -> Vec<Muting<'a>> {
    let mut out = Vec::new();
    for silence in silences {
        if silence["status"]["state"].as_str() != Some("active") {
            continue;
        }
        let matchers: Vec<&Value> = silence["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        if matchers.is_empty() {
            continue;
        }
        let mutes: Vec<&Labels> = candidates
            .iter()
            .filter(|labels| matchers.iter().all(|m| holds(m, labels)))
            .collect();
        if mutes.is_empty() {
            continue;
        }
        out.push(Muting {
            about: about(silence),
            mutes,
        });
    }
    out
}

/// Whether `matcher` (`{name, value, isRegex, isEqual}`) may hold for `labels`.
fn holds(matcher: &Value, labels: &Labels) -> bool {
    let Some(name) = matcher["name"].as_str() else {
        return false;
    };
    let Some(actual) = labels.get(name) else {
        // A label the drill cannot know: it may match.
        return true;
    };
    let value = matcher["value"].as_str().unwrap_or_default();
    let equal = matcher["isEqual"].as_bool().unwrap_or(true);
    let found = if matcher["isRegex"].as_bool().unwrap_or(false) {
        regex_automata::meta::Regex::new(&format!("^(?:{value})$"))
            .map(|re| re.is_match(actual.as_str()))
            // One Alertmanager accepted but this cannot read: it may match.
            .unwrap_or(true)
    } else {
        actual == value
    };
    found == equal
}

/// "silence ID by NAME until TIME (COMMENT)": the whole ID, as `amtool silence expire`
/// takes it.
fn about(silence: &Value) -> String {
    let by = silence["createdBy"].as_str().unwrap_or("?");
    let until = silence["endsAt"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or_else(
            || "?".to_owned(),
            |t| crate::clock::local_time(t.as_millisecond()),
        );
    let comment = silence["comment"].as_str().unwrap_or_default();
    let id = silence["id"].as_str().unwrap_or("?");
    format!("silence {id} by {by} until {until} ({comment})")
}

/// An alert as a person names it: `DexcomGlucoseUrgentLow for kid`.
pub fn named(labels: &Labels) -> String {
    let name = labels.get("alertname").map_or("?", String::as_str);
    match labels.get("account") {
        Some(account) => format!("{name} for {account}"),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn names_an_active_silence_and_what_it_mutes() {
        let candidates = [
            labels(&[
                ("alertname", "DexcomGlucoseUrgentLow"),
                ("severity", "critical"),
                ("account", "kid"),
            ]),
            labels(&[
                ("alertname", "DexcomGlucoseUrgentLow"),
                ("severity", "critical"),
                ("account", "dad"),
            ]),
            labels(&[
                ("alertname", "DexcomGlucoseHigh"),
                ("severity", "warning"),
                ("account", "kid"),
            ]),
        ];
        let silence = |state: &str, matchers: Value| {
            json!({"id": "0123456789ab", "status": {"state": state}, "matchers": matchers,
                   "endsAt": "2026-12-08T07:00:00.000Z", "createdBy": "mum", "comment": "sensor change"})
        };
        let silences = [
            // Every alert of kid, on one instance: the instance cannot be known, so it may.
            silence(
                "active",
                json!([{"name": "account", "value": "kid", "isRegex": false, "isEqual": true},
                                     {"name": "instance", "value": "pi:9150", "isRegex": false}]),
            ),
            // Highs only, by a regular expression Alertmanager anchors.
            silence(
                "active",
                json!([{"name": "alertname", "value": "DexcomGlucose(High|Low)", "isRegex": true}]),
            ),
            // Over, or not started: mutes nothing now.
            silence(
                "expired",
                json!([{"name": "account", "value": "dad", "isRegex": false}]),
            ),
            silence(
                "pending",
                json!([{"name": "account", "value": "dad", "isRegex": false}]),
            ),
            // Everyone but kid: a negative matcher.
            silence(
                "active",
                json!([{"name": "account", "value": "kid", "isRegex": false, "isEqual": false},
                                     {"name": "severity", "value": "critical", "isRegex": false}]),
            ),
        ];
        let found = muting(&silences, &candidates);
        let mutes: Vec<Vec<String>> = found
            .iter()
            .map(|m| m.mutes.iter().map(|l| named(l)).collect())
            .collect();
        assert_eq!(
            mutes,
            [
                vec![
                    "DexcomGlucoseUrgentLow for kid",
                    "DexcomGlucoseHigh for kid"
                ],
                vec!["DexcomGlucoseHigh for kid"],
                vec!["DexcomGlucoseUrgentLow for dad"],
            ]
        );
        assert!(
            found[0]
                .about
                .starts_with("silence 0123456789ab by mum until 2026-12-08"),
            "{}",
            found[0].about
        );
        assert!(
            found[0].about.ends_with("(sensor change)"),
            "{}",
            found[0].about
        );
    }
}
