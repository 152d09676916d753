//! Silences that mute an alarm. A silence set for a sensor change at 22:00 and meant to end
//! at 23:00, set to end a day later by a slip, mutes every urgent low of the night, and
//! nothing else says so: the rules fire, Alertmanager keeps quiet. So the drill reads the
//! active silences and names each one that would mute one of the shipped alerts (or the
//! drill's own test alerts), and when what it mutes would ring a phone, says it would not.
//!
//! A silence's matchers are checked against the alerts firing now and the drill's own, whose
//! labels are all known (one they lack is the empty string, as Alertmanager reads it), and
//! against what the rules' alerts would carry as far as the drill can know (the alert's name,
//! the rule's labels, each series of the exporter, what its expression selects, Prometheus's
//! external labels), where a label the expression groups by, whose value cannot be known, is
//! taken to match: it may. A label none of these has is empty, as for a firing alert. A silence set to start later tonight
//! (within 12 hours) is named too: it will mute.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::known::{ANY_VALUE, Labels};

/// How far ahead a silence set to start later is looked at.
const PENDING_WITHIN: Duration = Duration::from_secs(12 * 3600);

/// An active silence and what it mutes of `candidates`.
#[derive(Debug, Clone)]
pub struct Muting<'a> {
    /// Who set it, until when and why, in one line.
    pub about: String,
    /// The candidates it mutes.
    pub mutes: Vec<&'a Labels>,
}

/// The active silences among `silences` (Alertmanager's `/api/v2/silences`), and those
/// starting within 12 hours, that mute at least one of `candidates`.
pub fn muting<'a>(
    silences: &[Value],
    complete: &'a [Labels],
    partial: &'a [Labels],
) -> Vec<Muting<'a>> {
    let mut out = Vec::new();
    let soon = SystemTime::now() + PENDING_WITHIN;
    for silence in silences {
        let starts = silence["startsAt"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(SystemTime::from);
        match silence["status"]["state"].as_str() {
            Some("active") => {}
            Some("pending") if starts.is_some_and(|t| t <= soon) => {}
            _ => continue,
        }
        let matchers: Vec<&Value> = silence["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        if matchers.is_empty() {
            continue;
        }
        let mutes: Vec<&Labels> = complete
            .iter()
            .filter(|labels| matchers.iter().all(|m| holds(m, labels, true)))
            .chain(
                partial
                    .iter()
                    .filter(|labels| matchers.iter().all(|m| holds(m, labels, false))),
            )
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

/// Whether `matcher` (`{name, value, isRegex, isEqual}`) may hold for `labels`, which are
/// all the alert's (`complete`) or what the drill can know of them.
fn holds(matcher: &Value, labels: &Labels, complete: bool) -> bool {
    let Some(name) = matcher["name"].as_str() else {
        return false;
    };
    let empty = String::new();
    let actual = match labels.get(name) {
        // A label the rule's expression groups by, whose value the drill cannot know.
        Some(any) if !complete && any == ANY_VALUE => return true,
        Some(actual) => actual,
        // As Alertmanager reads it: a label the alert does not have is the empty string.
        None => &empty,
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

/// "silence ID by NAME [from TIME] until TIME (COMMENT)": the whole ID, as `amtool silence
/// expire` takes it; "from" for one that has not started.
fn about(silence: &Value) -> String {
    let time = |field: &str| {
        silence[field]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or_else(
                || "?".to_owned(),
                |t| crate::clock::local_time(t.as_millisecond()),
            )
    };
    let by = silence["createdBy"].as_str().unwrap_or("?");
    let from = if silence["status"]["state"].as_str() == Some("pending") {
        format!(" from {}", time("startsAt"))
    } else {
        String::new()
    };
    let comment = silence["comment"].as_str().unwrap_or_default();
    let id = silence["id"].as_str().unwrap_or("?");
    format!(
        "silence {id} by {by}{from} until {} ({comment})",
        time("endsAt")
    )
}

/// An alert as a person names it: `DexcomGlucoseUrgentLow for kid`, or the drill's own
/// `test DexcomSignalLoss`.
pub fn named(labels: &Labels) -> String {
    let name = labels.get("alertname").map_or("?", String::as_str);
    if labels.contains_key("drill_run") {
        return format!("the drill's test {name}");
    }
    match labels.get("account") {
        Some(account) => format!("{name} for {account}"),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::known::fixtures::labels;
    use super::*;
    use serde_json::json;

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
        let soon = humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(600))
            .to_string();
        let silence = |state: &str, matchers: Value| {
            json!({"id": "0123456789ab", "status": {"state": state}, "matchers": matchers,
                   "startsAt": soon, "endsAt": "2099-12-08T07:00:00.000Z", "createdBy": "mum",
                   "comment": "sensor change"})
        };
        let silences = [
            // Every alert of kid.
            silence(
                "active",
                json!([{"name": "account", "value": "kid", "isRegex": false, "isEqual": true}]),
            ),
            // On a label none of them has (another job's alerts): mutes none.
            silence(
                "active",
                json!([{"name": "job", "value": "node", "isRegex": false}]),
            ),
            // Highs only, by a regular expression Alertmanager anchors.
            silence(
                "active",
                json!([{"name": "alertname", "value": "DexcomGlucose(High|Low)", "isRegex": true}]),
            ),
            // Over, or starting in two days: mutes nothing tonight.
            silence(
                "expired",
                json!([{"name": "account", "value": "dad", "isRegex": false}]),
            ),
            {
                let mut later = silence(
                    "pending",
                    json!([{"name": "account", "value": "dad", "isRegex": false}]),
                );
                later["startsAt"] = json!("2099-12-06T22:00:00.000Z");
                later
            },
            // Starting in ten minutes: it will.
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
        let found = muting(&silences, &candidates, &[]);
        // Known only in part, a label the rule groups by (`integration`) may match; one
        // no alert of it has (`device`) does not.
        let partial = [labels(&[
            ("alertname", "AlertmanagerNotificationsFailing"),
            ("integration", ANY_VALUE),
        ])];
        let by_device = [silence(
            "active",
            json!([{"name": "device", "value": "sda1", "isRegex": false}]),
        )];
        assert!(muting(&by_device, &[], &partial).is_empty());
        let by_integration = [silence(
            "active",
            json!([{"name": "integration", "value": "webhook", "isRegex": false}]),
        )];
        assert_eq!(muting(&by_integration, &[], &partial).len(), 1);
        assert!(muting(&by_integration, &partial, &[]).is_empty());
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
                vec!["DexcomGlucoseUrgentLow for dad"],
            ]
        );
        assert!(found[2].about.contains(" from 20"), "{}", found[2].about);
        assert!(
            found[0]
                .about
                .starts_with("silence 0123456789ab by mum until 2099-12-08"),
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
