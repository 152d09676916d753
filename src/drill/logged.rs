//! Why Alertmanager could not deliver, in the words the far end used ("application token is
//! invalid"), read from Alertmanager's log where this machine keeps it: the journal of
//! Debian's `prometheus-alertmanager` unit (or an `alertmanager` unit). Alertmanager's API
//! does not say why; its counters only say that. Where there is no journal to read (a
//! container, another user's unit, an Alertmanager on another machine) the drill says where
//! to look instead: this machine's journal says nothing of an Alertmanager elsewhere.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the drill says when the log cannot be read.
const LOOK: &str = "Alertmanager's log says why: journalctl -u prometheus-alertmanager";
/// How long reading the journal may take.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest reason shown.
const MAX_REASON: usize = 160;

/// The reason Alertmanager logged since `since` for the latest failure of integration `kind`
/// (`pushover`), or where to look for it. Only an Alertmanager on this machine
/// (`alertmanager_url` on loopback) is looked up in the journal.
pub async fn reason(kind: &str, since: SystemTime, alertmanager_url: &str) -> String {
    if !on_this_machine(alertmanager_url) {
        return LOOK.replace("journalctl", "on its machine, journalctl");
    }
    // A few seconds early: the failure may have been logged as the alert was posted.
    let secs = since
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs().saturating_sub(5));
    let journal = tokio::process::Command::new("journalctl")
        .args([
            "--unit=prometheus-alertmanager.service",
            "--unit=alertmanager.service",
            &format!("--since=@{secs}"),
            "--output=cat",
            "--no-pager",
            "--quiet",
        ])
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(JOURNAL_TIMEOUT, journal).await {
        Ok(Ok(output)) if output.status.success() => {
            from_log(&String::from_utf8_lossy(&output.stdout), kind)
                .unwrap_or_else(|| LOOK.to_owned())
        }
        _ => LOOK.to_owned(),
    }
}

/// Whether `url`'s host is this machine's loopback.
fn on_this_machine(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let host = parsed.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The reason in the latest "Notify for alerts failed" line about `kind`: the far end's own
/// error message when it gave one as JSON (`"errors":["..."]`), else the end of the error.
fn from_log(log: &str, kind: &str) -> Option<String> {
    let line = log.lines().rev().find(|l| {
        l.contains("msg=\"Notify for alerts failed\"") && l.contains(&format!("/{kind}["))
    })?;
    let err = line.split_once(" err=\"")?.1;
    let err = err.strip_suffix('"').unwrap_or(err).replace("\\\"", "\"");
    let reason = match err.split_once("\"errors\":[\"") {
        Some((_, rest)) => rest.split('"').next().unwrap_or_default().to_owned(),
        None => err
            .rsplit_once("attempts: ")
            .map_or(err.as_str(), |(_, r)| r)
            .to_owned(),
    };
    Some(without_urls(&reason).chars().take(MAX_REASON).collect())
}

/// `text` with every URL cut to its scheme, host and port: a receiver's URL may hold its
/// credentials (Telegram's bot token in the path, a relay's key in the query, a password
/// before the host), and a drill's output is pasted where anyone reads it.
fn without_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = ["http://", "https://"]
        .iter()
        .filter_map(|scheme| rest.find(scheme).map(|i| (i, scheme.len())))
        .min()
    {
        let (before, url) = rest.split_at(at.0);
        out.push_str(before);
        let end = url
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(url.len());
        let (scheme, after) = url[..end].split_at(at.1);
        let authority = after.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        out.push_str(scheme);
        out.push_str(host);
        if host.len() < after.len() {
            out.push_str("/…");
        }
        rest = &url[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As Alertmanager 0.25 logs a token Pushover refuses.
    const REFUSED: &str = r#"ts=2026-12-07T20:15:45.300Z caller=dispatch.go:352 level=error component=dispatcher msg="Notify for alerts failed" num_alerts=1 err="glucose-critical/pushover[0]: notify retry canceled due to unrecoverable error after 1 attempts: unexpected status code 400: {\"token\":\"invalid\",\"errors\":[\"application token is invalid\"],\"status\":0,\"request\":\"5c4f9a6e-test\"}""#;

    #[test]
    fn only_an_alertmanager_here_is_looked_up_in_this_journal() {
        assert!(on_this_machine("http://127.0.0.1:9093"));
        assert!(on_this_machine("http://localhost:9093/"));
        assert!(on_this_machine("http://[::1]:9093"));
        assert!(!on_this_machine("http://alarm-pi.lan:9093"));
        assert!(!on_this_machine("https://192.168.1.20/alertmanager"));
    }

    #[test]
    fn the_far_ends_own_words() {
        assert_eq!(
            from_log(REFUSED, "pushover").as_deref(),
            Some("application token is invalid")
        );
        assert_eq!(from_log(REFUSED, "telegram"), None);
        let plain = r#"level=error msg="Notify for alerts failed" err="x/webhook[0]: notify retry canceled after 3 attempts: Post \"http://127.0.0.1:8000/hook\": connection refused""#;
        assert_eq!(
            from_log(plain, "webhook").as_deref(),
            Some(r#"Post "http://127.0.0.1:8000/…": connection refused"#)
        );
    }

    #[test]
    fn no_credential_of_a_receivers_url_is_shown() {
        let telegram = r#"level=error msg="Notify for alerts failed" err="x/telegram[0]: notify retry canceled after 3 attempts: telebot: Post "https://api.telegram.org/bot123456789:SECRET-BOT-TOKEN/sendMessage": dial tcp: i/o timeout""#;
        let relay = r#"level=error msg="Notify for alerts failed" err="x/webhook[0]: notify retry canceled after 1 attempts: unexpected status code 500: https://admin:SECRET-PW@relay.example:8443/ntfy?auth=SECRET-KEY: no""#;
        for (log, kind, host) in [
            (telegram, "telegram", "https://api.telegram.org/…"),
            (relay, "webhook", "https://relay.example:8443/…"),
        ] {
            let reason = from_log(log, kind).unwrap();
            assert!(!reason.contains("SECRET"), "{reason}");
            assert!(reason.contains(host), "{reason}");
        }
    }
}
