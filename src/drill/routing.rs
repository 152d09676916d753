//! Alertmanager's running configuration, read the way Alertmanager routes: which receiver an
//! alert reaches, what each receiver can ring, and what a new user most often leaves wrong
//! (a `REPLACE-` placeholder, a route that reaches no phone, no heartbeat, an all-clear as loud
//! as the alarm). Kept apart from the HTTP calls so every rule is tested on plain text.
//!
//! The configuration comes from `/api/v2/status`, where Alertmanager shows secrets (tokens,
//! keys) as `<secret>`: a placeholder left in a secret is found by sending, not here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// Alertmanager's defaults for a route's timers, inherited unless a route sets its own.
const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(300);
const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
/// The longest a heartbeat service should wait between two pings: the shipped file says
/// "expects a ping at least every 10 minutes".
const HEARTBEAT_AT_LEAST_EVERY: Duration = Duration::from_secs(600);
/// The chat id of the shipped example, which is nobody's.
const EXAMPLE_CHAT_ID: i64 = 123_456_789;

/// Where an alert with given labels goes: the receiver and the timers that apply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The receiver's name.
    pub receiver: String,
    /// How long Alertmanager waits before the first notification of a new group.
    pub group_wait: Duration,
    /// How long it waits before telling a change (such as the end) of a group it told.
    pub group_interval: Duration,
    /// How long it waits before telling an unchanged, still firing group again.
    pub repeat_interval: Duration,
    /// Whether this is the top route's receiver, reached because no child route matched:
    /// the one every alert nobody routed ends up in.
    pub default_route: bool,
    /// The time intervals of the route that keep it quiet part of the time: its
    /// `mute_time_intervals`, and its `active_time_intervals` (quiet outside them). Not
    /// inherited, as in Alertmanager.
    pub muted_during: Vec<String>,
}

/// One integration of a receiver (`pushover`, `telegram`, `webhook`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    /// The kind, as Alertmanager names it in its metrics' `integration` label.
    pub kind: String,
    /// Whether it is told when an alert ends.
    pub send_resolved: bool,
}

/// Alertmanager's configuration, parsed.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    root: Value,
}

impl AlertmanagerConfig {
    /// Parses the YAML text Alertmanager reports as running, or says why it cannot.
    pub fn parse(text: &str) -> Result<Self, String> {
        let root: Value = serde_saphyr::from_str(text).map_err(|e| {
            e.to_string()
                .lines()
                .next()
                .unwrap_or("not YAML")
                .to_owned()
        })?;
        Ok(AlertmanagerConfig { root })
    }

    /// The receivers `labels` reaches, in Alertmanager's order (a route with `continue`
    /// lets the next matching sibling add its own).
    pub fn destinations(&self, labels: &BTreeMap<String, String>) -> Vec<Destination> {
        let mut out = Vec::new();
        let route = &self.root["route"];
        let timers = Timers {
            receiver: "",
            wait: DEFAULT_GROUP_WAIT,
            interval: DEFAULT_GROUP_INTERVAL,
            repeat: DEFAULT_REPEAT_INTERVAL,
        };
        walk(route, labels, timers, 0, &mut out);
        out
    }

    /// The integrations of receiver `name` (none when it has none or does not exist).
    pub fn integrations(&self, name: &str) -> Vec<Integration> {
        let Some(receiver) = self.receiver(name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(fields) = receiver.as_object() {
            for (key, configs) in fields {
                let Some(kind) = key.strip_suffix("_configs") else {
                    continue;
                };
                for config in configs.as_array().into_iter().flatten() {
                    out.push(Integration {
                        kind: kind.to_owned(),
                        send_resolved: config["send_resolved"].as_bool().unwrap_or(true),
                    });
                }
            }
        }
        out
    }

    fn receiver(&self, name: &str) -> Option<&Value> {
        self.root["receivers"]
            .as_array()?
            .iter()
            .find(|r| r["name"].as_str() == Some(name))
    }

    /// Every `REPLACE-` placeholder left where Alertmanager shows it, and the example's chat
    /// id, each as "receiver NAME, KIND FIELD: VALUE".
    pub fn placeholders(&self) -> Vec<String> {
        let mut found = Vec::new();
        for receiver in self.root["receivers"].as_array().into_iter().flatten() {
            let name = receiver["name"].as_str().unwrap_or("?");
            for (key, configs) in receiver.as_object().into_iter().flatten() {
                let kind = key.strip_suffix("_configs").unwrap_or(key);
                for config in configs.as_array().into_iter().flatten() {
                    for (field, value) in config.as_object().into_iter().flatten() {
                        if let Some(text) = value.as_str()
                            && let Some(at) = text.find("REPLACE-")
                        {
                            let word: String = text[at..]
                                .chars()
                                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                                .collect();
                            found.push(format!("receiver {name}, {kind} {field}: {word}"));
                        }
                        if field == "chat_id" && value.as_i64() == Some(EXAMPLE_CHAT_ID) {
                            found.push(format!(
                                "receiver {name}, {kind} chat_id: the example's {EXAMPLE_CHAT_ID}"
                            ));
                        }
                    }
                }
            }
        }
        found
    }

    /// Every route (the default one included) whose receiver has no integration at all, as
    /// "MATCHERS → RECEIVER": alerts sent there reach nobody.
    pub fn silent_routes(&self) -> Vec<String> {
        let mut out = Vec::new();
        silent(&self.root["route"], self, "every other alert", &mut out);
        out
    }

    /// The heartbeat: the receivers the always-firing `Watchdog` reaches through a route of
    /// its own that hold only webhooks (a heartbeat service's ping URL) and ping at least
    /// every 10 minutes. Or, when there is none, why not: the dead man's switch is missing,
    /// or would not page when this machine stops (pings hours apart), or shares a receiver
    /// with alerts (so its service is pinged by warnings too, and a receiver that also holds
    /// a phone integration rings that phone every few minutes).
    pub fn heartbeat(&self) -> Result<Vec<String>, String> {
        let watchdog = BTreeMap::from([
            ("alertname".to_owned(), "Watchdog".to_owned()),
            ("severity".to_owned(), "none".to_owned()),
        ]);
        let mut good = Vec::new();
        let mut why = Vec::new();
        for destination in self.destinations(&watchdog) {
            let name = destination.receiver;
            let kinds: Vec<String> = self
                .integrations(&name)
                .into_iter()
                .map(|i| i.kind)
                .collect();
            // A still-firing group is told again at the first flush once repeat_interval
            // has passed: flushes come every group_interval.
            let every = heartbeat_period(destination.repeat_interval, destination.group_interval);
            if !kinds.iter().any(|k| k == "webhook") {
                continue;
            } else if destination.default_route {
                why.push(format!(
                    "Watchdog reaches receiver {name} only as the default, with every alert no route takes: give it a route of its own (alertname=\"Watchdog\") to a receiver that holds just the ping URL"
                ));
            } else if let Some(other) = kinds.iter().find(|k| *k != "webhook") {
                why.push(format!(
                    "receiver {name}, which Watchdog pings, also holds {other}: it would be told every few minutes; keep only the heartbeat's ping URL in it"
                ));
            } else if every > HEARTBEAT_AT_LEAST_EVERY {
                why.push(format!(
                    "Watchdog pings receiver {name} only every {}: set repeat_interval: 5m on its route (a heartbeat service should expect a ping every 10 minutes)",
                    humantime::format_duration(every)
                ));
            } else {
                good.push(name);
            }
        }
        if !good.is_empty() {
            Ok(good)
        } else if why.is_empty() {
            Err("No heartbeat: Watchdog goes to no webhook, so if this machine stops nobody is paged".to_owned())
        } else {
            Err(format!("No working heartbeat: {}", why.join("; ")))
        }
    }

    /// Whether receiver `name` is a heartbeat: `Watchdog` reaches it and it holds only
    /// webhooks. An alert that reaches only such a receiver pings a heartbeat service, which
    /// wakes nobody.
    pub fn is_heartbeat(&self, name: &str) -> bool {
        let watchdog = BTreeMap::from([("alertname".to_owned(), "Watchdog".to_owned())]);
        let kinds = self.integrations(name);
        !kinds.is_empty()
            && kinds.iter().all(|i| i.kind == "webhook")
            && self
                .destinations(&watchdog)
                .iter()
                .any(|d| d.receiver == name)
    }

    /// The inhibit rules, as written.
    pub fn inhibit_rules(&self) -> &[Value] {
        self.root["inhibit_rules"]
            .as_array()
            .map_or(&[], Vec::as_slice)
    }

    /// Every Pushover entry that tells an ending at a priority above 0 (so the all-clear
    /// rings like the alarm), as "receiver NAME (priority P)". A priority that depends on
    /// `.Status` is taken as chosen per status.
    pub fn loud_endings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for receiver in self.root["receivers"].as_array().into_iter().flatten() {
            let name = receiver["name"].as_str().unwrap_or("?");
            for config in receiver["pushover_configs"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let resolved = config["send_resolved"].as_bool().unwrap_or(true);
                let priority = match &config["priority"] {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => "0".to_owned(),
                };
                let fixed = priority.trim().parse::<i64>().ok();
                if resolved && !priority.contains(".Status") && fixed.is_some_and(|p| p > 0) {
                    out.push(format!("receiver {name} (priority {priority})"));
                }
            }
        }
        out
    }
}

/// How often, at worst, an always-firing alert is told again: at a group flush (every
/// `interval`) once `repeat` has passed.
fn heartbeat_period(repeat: Duration, interval: Duration) -> Duration {
    if interval.is_zero() {
        return repeat;
    }
    // The flush at which repeat_interval has passed since the last notification, which is
    // itself logged a little after its flush: measured, a 4 s repeat at 2 s flushes came
    // every 4 or 6 s. So one flush more than the division says, at worst.
    let flushes = repeat.as_millis().div_ceil(interval.as_millis()).max(1) + 1;
    interval.saturating_mul(u32::try_from(flushes).unwrap_or(u32::MAX))
}

/// What a route passes to its children unless they set their own: its receiver and timers.
#[derive(Clone, Copy)]
struct Timers<'a> {
    receiver: &'a str,
    wait: Duration,
    interval: Duration,
    repeat: Duration,
}

/// The routes under `route` (at `depth`, 0 for the top) that `labels` reaches, with
/// inherited timers.
fn walk(
    route: &Value,
    labels: &BTreeMap<String, String>,
    inherited: Timers,
    depth: usize,
    out: &mut Vec<Destination>,
) {
    let timers = Timers {
        // A route without a receiver has its parent's.
        receiver: route["receiver"].as_str().unwrap_or(inherited.receiver),
        wait: duration(&route["group_wait"]).unwrap_or(inherited.wait),
        interval: duration(&route["group_interval"]).unwrap_or(inherited.interval),
        repeat: duration(&route["repeat_interval"]).unwrap_or(inherited.repeat),
    };
    let before = out.len();
    for child in route["routes"].as_array().into_iter().flatten() {
        if !matches(child, labels) {
            continue;
        }
        walk(child, labels, timers, depth + 1, out);
        if !child["continue"].as_bool().unwrap_or(false) {
            break;
        }
    }
    if out.len() == before {
        out.push(Destination {
            receiver: timers.receiver.to_owned(),
            muted_during: time_intervals(route),
            group_wait: timers.wait,
            group_interval: timers.interval,
            repeat_interval: timers.repeat,
            default_route: depth == 0,
        });
    }
}

fn silent(route: &Value, config: &AlertmanagerConfig, what: &str, out: &mut Vec<String>) {
    let receiver = route["receiver"].as_str().unwrap_or_default();
    if !receiver.is_empty() && config.integrations(receiver).is_empty() {
        out.push(format!("{what} → {receiver}"));
    }
    for child in route["routes"].as_array().into_iter().flatten() {
        let matchers: Vec<String> = child["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(str::to_owned))
            .chain(
                legacy(child)
                    .into_iter()
                    .map(|(n, op, v)| format!("{n}{op}\"{v}\"")),
            )
            .collect();
        silent(child, config, &format!("{{{}}}", matchers.join(", ")), out);
    }
}

/// A route's `mute_time_intervals` and `active_time_intervals`, as "night (muted)" and
/// "daytime (active only)".
fn time_intervals(route: &Value) -> Vec<String> {
    let names = |key: &str, how: &str| -> Vec<String> {
        route[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|name| format!("{name} ({how})"))
            .collect()
    };
    let mut out = names("mute_time_intervals", "muted");
    out.extend(names("active_time_intervals", "active only"));
    out
}

/// Alertmanager durations as it prints them (`30s`, `5m`, `1h`, `1h30m`).
fn duration(value: &Value) -> Option<Duration> {
    humantime::parse_duration(value.as_str()?).ok()
}

/// The older `match:` and `match_re:` maps as (name, operator, value).
fn legacy(route: &Value) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    for (key, op) in [("match", "="), ("match_re", "=~")] {
        for (name, value) in route[key].as_object().into_iter().flatten() {
            out.push((
                name.clone(),
                op,
                value.as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    out
}

/// Whether every matcher of `route` holds for `labels` (a missing label is the empty string).
pub(super) fn matches(route: &Value, labels: &BTreeMap<String, String>) -> bool {
    let mut all: Vec<(String, &'static str, String)> = legacy(route);
    for matcher in route["matchers"].as_array().into_iter().flatten() {
        match matcher.as_str().and_then(parse_matcher) {
            Some(m) => all.push(m),
            // One Alertmanager accepted but this cannot read: never assume it matches.
            None => return false,
        }
    }
    all.iter().all(|(name, op, value)| {
        let actual = labels.get(name).map(String::as_str).unwrap_or_default();
        match *op {
            "=" => actual == value,
            "!=" => actual != value,
            "=~" => full_match(value, actual),
            "!~" => !full_match(value, actual),
            _ => false,
        }
    })
}

/// `name="value"`, `name=~"regex"`, `name!="value"`, `name!~"regex"` (quotes optional).
fn parse_matcher(text: &str) -> Option<(String, &'static str, String)> {
    let at = text.find(['=', '!'])?;
    let (name, rest) = text.split_at(at);
    let (op, value) = ["=~", "!~", "!=", "="]
        .into_iter()
        .find_map(|op| rest.strip_prefix(op).map(|v| (op, v)))?;
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .map(|v| v.replace("\\\"", "\"").replace("\\\\", "\\"))
        .unwrap_or_else(|| value.to_owned());
    Some((name.trim().to_owned(), op, value))
}

/// Alertmanager anchors its regular expressions at both ends.
fn full_match(pattern: &str, text: &str) -> bool {
    regex_automata::meta::Regex::new(&format!("^(?:{pattern})$"))
        .map(|re| re.is_match(text))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::super::known::fixtures::labels;
    use super::*;

    const SHIPPED: &str = include_str!("../../deploy/alertmanager/alertmanager.yml");

    #[test]
    fn routes_like_alertmanager_with_inherited_timers() {
        let config = AlertmanagerConfig::parse(SHIPPED).unwrap();
        let low = config.destinations(&labels(&[
            ("alertname", "DexcomGlucoseUrgentLow"),
            ("severity", "critical"),
        ]));
        assert_eq!(
            low,
            [Destination {
                receiver: "glucose-critical".into(),
                group_wait: Duration::ZERO,
                group_interval: Duration::from_secs(60),
                repeat_interval: Duration::from_secs(300),
                default_route: false,
                muted_during: vec![],
            }]
        );
        let unseen = config.destinations(&labels(&[
            ("alertname", "DexcomSignalLoss"),
            ("severity", "warning"),
        ]));
        assert_eq!(unseen[0].receiver, "glucose-unseen");
        assert_eq!(unseen[0].group_wait, Duration::from_secs(30));
        let watchdog: Vec<String> = config
            .destinations(&labels(&[("alertname", "Watchdog")]))
            .into_iter()
            .map(|d| d.receiver)
            .collect();
        assert_eq!(watchdog, ["heartbeat", "daily-proof"]);
        let warning = config.destinations(&labels(&[("alertname", "DexcomGlucoseHigh")]));
        assert_eq!(warning[0].receiver, "glucose-warnings");
        assert_eq!(warning[0].group_interval, Duration::from_secs(300));
        assert_eq!(config.heartbeat(), Ok(vec!["heartbeat".to_owned()]));
        assert!(config.is_heartbeat("heartbeat") && !config.is_heartbeat("glucose-critical"));
    }

    #[test]
    fn names_what_the_shipped_file_leaves_to_fill() {
        let config = AlertmanagerConfig::parse(SHIPPED).unwrap();
        let found = config.placeholders();
        assert!(
            found.contains(
                &"receiver heartbeat, webhook url: REPLACE-WITH-YOUR-CHECK-UUID".to_owned()
            )
        );
        assert!(found.iter().any(|f| f.contains("chat_id: the example's")));
        assert!(config.silent_routes().is_empty());
        assert!(
            config.loud_endings().is_empty(),
            "{:?}",
            config.loud_endings()
        );
    }

    #[test]
    fn finds_a_silent_route_a_loud_ending_and_a_missing_heartbeat() {
        let text = r#"
route:
  receiver: nobody
  routes:
    - receiver: phone
      match_re: {alertname: "DexcomGlucose.*"}
receivers:
  - name: nobody
  - name: phone
    pushover_configs:
      - {user_key: x, token: y, priority: "2", send_resolved: true}
"#;
        let config = AlertmanagerConfig::parse(text).unwrap();
        assert_eq!(config.silent_routes(), ["every other alert → nobody"]);
        assert_eq!(config.loud_endings(), ["receiver phone (priority 2)"]);
        assert!(config.heartbeat().unwrap_err().starts_with("No heartbeat"));
        let low = config.destinations(&labels(&[("alertname", "DexcomGlucoseUrgentLow")]));
        assert_eq!(low[0].receiver, "phone");
        let other = config.destinations(&labels(&[("alertname", "XDexcomGlucose")]));
        assert_eq!(other[0].receiver, "nobody");
    }

    /// A webhook that Watchdog reaches is not a heartbeat unless a route of its own pings a
    /// receiver that holds only it, at least every 10 minutes.
    #[test]
    fn a_heartbeat_that_would_not_page_is_named() {
        let cases = [
            (
                // Everything, Watchdog included, to the default receiver.
                "route: {receiver: all}\nreceivers:\n  - name: all\n    webhook_configs: [{url: http://x}]\n",
                "only as the default",
            ),
            (
                "route:\n  receiver: w\n  routes:\n    - {receiver: hb, matchers: ['alertname=\"Watchdog\"']}\nreceivers:\n  - {name: w}\n  - name: hb\n    webhook_configs: [{url: http://x}]\n    email_configs: [{to: a@b}]\n",
                "also holds email",
            ),
            (
                // The default repeat_interval, 4 hours.
                "route:\n  receiver: w\n  routes:\n    - {receiver: hb, matchers: ['alertname=\"Watchdog\"']}\nreceivers:\n  - {name: w}\n  - name: hb\n    webhook_configs: [{url: http://x}]\n",
                "only every 4h",
            ),
        ];
        for (text, why) in cases {
            let config = AlertmanagerConfig::parse(text).unwrap();
            let said = config.heartbeat().unwrap_err();
            assert!(said.contains(why), "{why:?} not in {said:?}");
        }
        let good = cases[2]
            .0
            .replace("Watchdog\"']", "Watchdog\"'], repeat_interval: 5m");
        let config = AlertmanagerConfig::parse(&good).unwrap();
        assert_eq!(config.heartbeat(), Ok(vec!["hb".to_owned()]));
    }

    /// A child route without a receiver has its parent's; a route's time intervals are named.
    #[test]
    fn an_inherited_receiver_and_a_muted_route() {
        let text = r#"
route:
  receiver: phone
  routes:
    - matchers: ['severity="critical"']
      group_wait: 0s
      mute_time_intervals: [night]
time_intervals:
  - name: night
    time_intervals: [{times: [{start_time: "00:30", end_time: "07:00"}]}]
receivers:
  - name: phone
    webhook_configs: [{url: http://x}]
"#;
        let config = AlertmanagerConfig::parse(text).unwrap();
        let low = config.destinations(&labels(&[("severity", "critical")]));
        assert_eq!(low[0].receiver, "phone");
        assert!(!low[0].default_route);
        assert_eq!(low[0].muted_during, ["night (muted)"]);
        assert!(config.silent_routes().is_empty());
    }

    #[test]
    fn reads_every_matcher_form() {
        assert_eq!(
            parse_matcher(r#"alertname=~"A|B""#),
            Some(("alertname".into(), "=~", "A|B".into()))
        );
        assert_eq!(
            parse_matcher("severity != warning"),
            Some(("severity".into(), "!=", "warning".into()))
        );
        assert!(full_match("A|B", "B") && !full_match("A|B", "AB"));
    }
}
