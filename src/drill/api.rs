//! The HTTP calls of `drill`, each against a base URL the caller chose (so tests point them at
//! their own Prometheus and Alertmanager): Prometheus's query API for targets, rules, alerts
//! and attached Alertmanagers; Alertmanager's API v2 for its configuration and to post and end
//! alerts; its `/metrics` for the notification counters. Nothing from the network is trusted
//! to have a shape: a missing field reads as absent, never as a panic.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why Prometheus or Alertmanager could not be asked (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// Prometheus did not answer, or answered something that is not its API.
    #[error("cannot reach Prometheus at {url}: {reason}")]
    Prometheus {
        /// The base URL asked.
        url: String,
        /// What went wrong, in one line.
        reason: String,
    },
    /// Alertmanager did not answer, or answered something that is not its API.
    #[error("cannot reach Alertmanager at {url}: {reason}")]
    Alertmanager {
        /// The base URL asked.
        url: String,
        /// What went wrong, in one line.
        reason: String,
    },
}

/// What Alertmanager counted for one integration kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Notifications begun (`alertmanager_notifications_total`): counted when Alertmanager
    /// starts one, before it knows whether it gets through.
    pub begun: u64,
    /// Notifications given up on after their retries (`..._notifications_failed_total`):
    /// counted only when the retries end, which for an error that may pass is minutes later.
    pub given_up: u64,
    /// Requests sent, each retry one (`alertmanager_notification_requests_total`).
    pub requests: u64,
    /// Requests that failed (`alertmanager_notification_requests_failed_total`).
    pub requests_failed: u64,
}

impl Tally {
    /// What happened between `self` (earlier) and `later`.
    pub fn since(&self, later: &Tally) -> Tally {
        Tally {
            begun: later.begun.saturating_sub(self.begun),
            given_up: later.given_up.saturating_sub(self.given_up),
            requests: later.requests.saturating_sub(self.requests),
            requests_failed: later.requests_failed.saturating_sub(self.requests_failed),
        }
    }

    /// Requests the far end took: the only sign that a notification got through.
    pub fn delivered(&self) -> u64 {
        self.requests.saturating_sub(self.requests_failed)
    }
}

/// What Alertmanager counted, per integration kind.
pub type Counters = BTreeMap<String, Tally>;

/// Label or annotation names and values.
pub type Pairs = BTreeMap<String, String>;

/// `url` without the user and password it may carry (basic auth in front of Prometheus or
/// Alertmanager): what drill prints is pasted where others read it.
pub fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        // A query string may hold a token, and has no place in a base URL.
        Ok(mut parsed)
            if !parsed.username().is_empty()
                || parsed.password().is_some()
                || parsed.query().is_some() =>
        {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.as_str().trim_end_matches('/').to_owned()
        }
        // One that does not parse as meant (a mistyped port, no scheme) may still hold a
        // password: everything between the scheme and the last `@` of the authority goes.
        _ => {
            // The password may hold `/`, `?` or `#` unencoded: everything up to the last `@`
            // goes (a path with an `@` is then shown short, never a password).
            let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            if scheme.is_empty() {
                host.to_owned()
            } else {
                format!("{scheme}://{host}")
            }
        }
    }
}

/// Prometheus and Alertmanager at their base URLs.
#[derive(Debug, Clone)]
pub struct Apis {
    client: reqwest::Client,
    prometheus: String,
    alertmanager: String,
}

impl Apis {
    /// The two APIs at `prometheus` and `alertmanager` (`http://HOST:PORT`, a trailing `/`
    /// allowed).
    pub fn new(prometheus: &str, alertmanager: &str) -> Result<Self, DrillError> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| DrillError::Prometheus {
                url: shown(prometheus),
                reason: e.to_string(),
            })?;
        Ok(Apis {
            client,
            prometheus: prometheus.trim_end_matches('/').to_owned(),
            alertmanager: alertmanager.trim_end_matches('/').to_owned(),
        })
    }

    /// The Alertmanager base URL.
    pub fn alertmanager_url(&self) -> &str {
        &self.alertmanager
    }

    /// The Prometheus base URL as it may be shown (no user or password in it).
    pub fn prometheus_shown(&self) -> String {
        shown(&self.prometheus)
    }

    /// The Alertmanager base URL as it may be shown (no user or password in it).
    pub fn alertmanager_shown(&self) -> String {
        shown(&self.alertmanager)
    }

    /// `data` of Prometheus's `GET /api/v1/PATH`.
    pub async fn prometheus(&self, path: &str) -> Result<Value, DrillError> {
        let error = |reason: String| DrillError::Prometheus {
            url: shown(&self.prometheus),
            reason,
        };
        let body = self
            .get_json(&format!("{}/api/v1/{path}", self.prometheus))
            .await
            .map_err(error)?;
        if body["status"] != "success" {
            return Err(error(format!("/api/v1/{path} answered {body}")));
        }
        Ok(body["data"].clone())
    }

    /// Prometheus's own `/metrics`, as text.
    pub async fn prometheus_metrics(&self) -> Result<String, DrillError> {
        let url = format!("{}/metrics", self.prometheus);
        let error = |reason: String| DrillError::Prometheus {
            url: shown(&self.prometheus),
            reason,
        };
        self.client
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| error(one_line(&e)))?
            .text()
            .await
            .map_err(|e| error(one_line(&e)))
    }

    /// Alertmanager's `GET /api/v2/status`.
    pub async fn alertmanager_status(&self) -> Result<Value, DrillError> {
        self.get_json(&format!("{}/api/v2/status", self.alertmanager))
            .await
            .map_err(|reason| self.am_error(reason))
    }

    /// Posts `alerts` (labels and annotations), ending at `ends` (now for an ending).
    pub async fn post_alerts(
        &self,
        alerts: &[(Pairs, Pairs)],
        ends: SystemTime,
    ) -> Result<(), DrillError> {
        let body: Vec<Value> = alerts
            .iter()
            .map(|(labels, annotations)| {
                json!({
                    "labels": labels,
                    "annotations": annotations,
                    "endsAt": humantime::format_rfc3339_millis(ends).to_string(),
                })
            })
            .collect();
        let response = self
            .client
            .post(format!("{}/api/v2/alerts", self.alertmanager))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.am_error(one_line(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(self.am_error(format!("posting an alert answered {status}: {text}")));
        }
        Ok(())
    }

    /// Alertmanager's alerts whose labels match every one of `matchers`
    /// (`alertname="Watchdog"`), silenced and inhibited ones too. Each matcher is its own
    /// `filter` parameter: Alertmanager takes one matcher per parameter.
    pub async fn alertmanager_alerts(&self, matchers: &[&str]) -> Result<Vec<Value>, DrillError> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v2/alerts", self.alertmanager),
            matchers.iter().map(|m| ("filter", *m)),
        )
        .map_err(|e| self.am_error(e.to_string()))?;
        let body = self
            .get_json(url.as_str())
            .await
            .map_err(|reason| self.am_error(reason))?;
        Ok(body.as_array().cloned().unwrap_or_default())
    }

    /// Alertmanager's silences (active, pending and expired).
    pub async fn silences(&self) -> Result<Vec<Value>, DrillError> {
        let body = self
            .get_json(&format!("{}/api/v2/silences", self.alertmanager))
            .await
            .map_err(|reason| self.am_error(reason))?;
        Ok(body.as_array().cloned().unwrap_or_default())
    }

    /// The four notification counters per integration, summed over any other label (newer
    /// Alertmanagers add `reason` to failures).
    pub async fn counters(&self) -> Result<Counters, DrillError> {
        let text = self
            .client
            .get(format!("{}/metrics", self.alertmanager))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| self.am_error(one_line(&e)))?
            .text()
            .await
            .map_err(|e| self.am_error(one_line(&e)))?;
        Ok(parse_counters(&text))
    }

    fn am_error(&self, reason: String) -> DrillError {
        DrillError::Alertmanager {
            url: shown(&self.alertmanager),
            reason,
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| one_line(&e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| one_line(&e))?;
        // The URL as shown: a password in it must not reach the drill's output.
        let url = shown(url);
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        serde_json::from_str(&text).map_err(|_| format!("{url} did not answer JSON"))
    }
}

/// An error and its causes on one line ("error sending request: connection refused").
fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One sample line of Prometheus's text format: its metric name, the value of its label
/// `label`, and its value as a whole count (counters are; the float is the format's). `None`
/// for a comment, a line without that label, or a value that is not a number.
pub fn count_line<'a>(line: &'a str, label: &str) -> Option<(&'a str, &'a str, u64)> {
    let (name, rest) = line.split_once('{')?;
    let (labels, value) = rest.split_once('}')?;
    let wanted = labels
        .split(',')
        .find_map(|l| l.trim().strip_prefix(label)?.strip_prefix("=\""))
        .and_then(|v| v.strip_suffix('"'))?;
    let value = value.trim().parse::<f64>().ok()?;
    Some((name, wanted, value.max(0.0) as u64))
}

/// The four notification counters per integration from Prometheus text.
fn parse_counters(text: &str) -> Counters {
    let mut out = Counters::new();
    for (name, integration, value) in text.lines().filter_map(|l| count_line(l, "integration")) {
        let field: fn(&mut Tally) -> &mut u64 = match name {
            "alertmanager_notifications_total" => |t| &mut t.begun,
            "alertmanager_notifications_failed_total" => |t| &mut t.given_up,
            "alertmanager_notification_requests_total" => |t| &mut t.requests,
            "alertmanager_notification_requests_failed_total" => |t| &mut t.requests_failed,
            _ => continue,
        };
        *field(out.entry(integration.to_owned()).or_default()) += value;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_per_integration() {
        let text = "# HELP x\nalertmanager_notifications_total{integration=\"pushover\"} 3\n\
            alertmanager_notifications_failed_total{integration=\"pushover\",reason=\"clientError\"} 1\n\
            alertmanager_notifications_failed_total{integration=\"pushover\",reason=\"other\"} 1\n\
            alertmanager_notification_requests_total{integration=\"pushover\"} 5\n\
            alertmanager_notification_requests_failed_total{integration=\"pushover\"} 4\n\
            alertmanager_notifications_total{integration=\"webhook\"} 7\n";
        let counters = parse_counters(text);
        let pushover = counters["pushover"];
        assert_eq!((pushover.begun, pushover.given_up), (3, 2));
        assert_eq!(pushover.delivered(), 1);
        assert_eq!(counters["webhook"].begun, 7);
    }
}

#[cfg(test)]
mod shown_tests {
    use super::*;

    #[test]
    fn a_user_and_password_in_a_url_are_never_shown() {
        assert_eq!(
            shown("http://admin:SECRET@127.0.0.1:9093/"),
            "http://127.0.0.1:9093"
        );
        assert_eq!(shown("http://127.0.0.1:9093"), "http://127.0.0.1:9093");
        // Mistyped: no URL, still no password.
        assert_eq!(
            shown("http://admin:SECRET@127.0.0.1:9O90/x"),
            "http://127.0.0.1:9O90/x"
        );
        assert_eq!(shown("admin:SECRET@[::1:9090"), "[::1:9090");
        assert_eq!(
            shown("http://127.0.0.1:1/?token=SECRET"),
            "http://127.0.0.1:1"
        );
        for secret in ["pa#SECRET", "pa/SECRET", "pa?SECRET"] {
            let said = shown(&format!("http://admin:{secret}@127.0.0.1:9090"));
            assert_eq!(said, "http://127.0.0.1:9090");
        }
        assert_eq!(shown("http://[::1]:9093/am"), "http://[::1]:9093/am");
        let error = Apis::new("http://u:SECRET@127.0.0.1:1", "http://127.0.0.1:2")
            .unwrap()
            .am_error("x".into())
            .to_string();
        assert!(!error.contains("SECRET"), "{error}");
        assert_eq!(
            shown("http://admin:SECRET@127.0.0.1:9090/api/v1/status/buildinfo"),
            "http://127.0.0.1:9090/api/v1/status/buildinfo"
        );
    }
}
