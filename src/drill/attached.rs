//! Whether what Prometheus sends reaches this Alertmanager. Prometheus's list of
//! Alertmanagers names a URL, which says nothing of whether sending to it works: a wrong
//! scheme, `path_prefix` or password sends every alert nowhere while host and port match. An
//! alert found in Alertmanager proves little either: it may be one sent before a change to
//! `prometheus.yml`, or another Prometheus's. What proves it is Prometheus's own count of what
//! it sent to that URL (`prometheus_notifications_sent_total`) rising while its count of
//! failed sends there (`prometheus_notifications_errors_total`) does not. Prometheus sends a
//! firing alert again every minute (`--rules.alert.resend-delay`), so a send is seen within
//! that, a rule evaluation and some slack.

use std::time::{Duration, Instant};

use super::api::{self, Apis, DrillError};

/// How long to wait for Prometheus to send to Alertmanager: its resend delay (1 min), one
/// evaluation (15 s in the shipped `prometheus.yml`) and slack.
pub(super) const SENDS_SEEN_WITHIN: Duration = Duration::from_secs(90);

/// Prometheus's counts of what it sent to one Alertmanager URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sent {
    alerts: u64,
    errors: u64,
}

/// Whether Prometheus's sends reach the Alertmanager at `apis`' URL, in one line. Only asked
/// when Watchdog fires (otherwise Prometheus may have nothing to send).
pub(super) async fn sends_arrive(
    apis: &Apis,
    listed: &[&str],
) -> Result<(bool, String), DrillError> {
    let ours: Vec<&str> = listed
        .iter()
        .copied()
        .filter(|u| same_place(u, apis.alertmanager_url()))
        .collect();
    if ours.is_empty() {
        return Ok((false, not_listed(apis, listed)));
    }
    let shown = api::shown(ours[0]);
    let Ok(first) = apis.prometheus_metrics().await.map(|t| sent_to(&t, &ours)) else {
        return Ok((
            false,
            format!(
                "Prometheus lists {shown}, but its own /metrics cannot be read, so whether its sends arrive is not known"
            ),
        ));
    };
    let deadline = Instant::now() + SENDS_SEEN_WITHIN;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = sent_to(&apis.prometheus_metrics().await?, &ours);
        if now.alerts > first.alerts || Instant::now() >= deadline {
            let errors = now.errors.saturating_sub(first.errors);
            return Ok(if now.alerts <= first.alerts {
                (
                    false,
                    format!(
                        "Prometheus lists {shown} but sent it nothing in {} s while Watchdog fires: see Prometheus's log",
                        SENDS_SEEN_WITHIN.as_secs()
                    ),
                )
            } else if errors > 0 {
                (
                    false,
                    format!(
                        "Prometheus's sends to {shown} fail ({errors} failed just now): check scheme, path_prefix and credentials under alerting: in prometheus.yml, and \"Error sending alert\" in Prometheus's log"
                    ),
                )
            } else {
                (
                    true,
                    format!(
                        "Prometheus sends its alerts to this Alertmanager ({shown} took its latest)"
                    ),
                )
            });
        }
    }
}

/// What to say when Prometheus does not list the Alertmanager at `apis`' URL.
fn not_listed(apis: &Apis, listed: &[&str]) -> String {
    if listed.is_empty() {
        "Prometheus sends its alerts to no Alertmanager (alerting: in prometheus.yml)".to_owned()
    } else {
        format!(
            "Prometheus sends its alerts to {}, not to {}",
            listed
                .iter()
                .map(|u| api::shown(u))
                .collect::<Vec<_>>()
                .join(", "),
            apis.alertmanager_shown()
        )
    }
}

/// Prometheus's two notification counters, summed over the Alertmanager URLs `urls`.
fn sent_to(metrics: &str, urls: &[&str]) -> Sent {
    let mut sent = Sent::default();
    for (name, url, value) in metrics
        .lines()
        .filter_map(|l| api::count_line(l, "alertmanager"))
    {
        if !urls.contains(&url) {
            continue;
        }
        match name {
            "prometheus_notifications_sent_total" => sent.alerts += value,
            "prometheus_notifications_errors_total" => sent.errors += value,
            _ => {}
        }
    }
    sent
}

/// Whether Prometheus's `url` for an Alertmanager (`http://127.0.0.1:9093/api/v2/alerts`)
/// is the one at `base`, counting the loopback names as one.
pub(super) fn same_place(url: &str, base: &str) -> bool {
    fn authority(url: &str) -> String {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or_default();
        // Without a user and password: they say nothing of where it is.
        let authority = authority.rsplit('@').next().unwrap_or_default();
        authority
            .replace("localhost", "127.0.0.1")
            .replace("[::1]", "127.0.0.1")
    }
    authority(url) == authority(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_are_one_place() {
        assert!(same_place(
            "http://127.0.0.1:9093/api/v2/alerts",
            "http://localhost:9093"
        ));
        assert!(!same_place(
            "http://127.0.0.1:9094/api/v2/alerts",
            "http://127.0.0.1:9093/"
        ));
    }

    #[test]
    fn counts_only_the_urls_asked_for() {
        let text = "# HELP x\n\
            prometheus_notifications_sent_total{alertmanager=\"http://127.0.0.1:9093/wrong/api/v2/alerts\"} 7\n\
            prometheus_notifications_errors_total{alertmanager=\"http://127.0.0.1:9093/wrong/api/v2/alerts\"} 7\n\
            prometheus_notifications_sent_total{alertmanager=\"http://127.0.0.1:9094/api/v2/alerts\"} 3\n";
        assert_eq!(
            sent_to(text, &["http://127.0.0.1:9093/wrong/api/v2/alerts"]),
            Sent {
                alerts: 7,
                errors: 7
            }
        );
        assert_eq!(
            sent_to(text, &["http://127.0.0.1:9095/api/v2/alerts"]),
            Sent::default()
        );
    }
}
