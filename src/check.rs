//! `dexcom_exporter check`: one command that says what is wrong, in words a parent
//! understands.
//!
//! The handful of problems people meet with every Share client are told apart here, in the
//! order they are likely: a wrong region looks exactly like a wrong password, a follower's
//! login is not the publisher's, an e-mail is not a username, sharing is off or has no
//! follower, the network or the host's clock is wrong. Each account is checked step by step
//! (resolve the Share host, connect to it, ask the login gate, log in, read the newest
//! reading), and the first step that fails is the finding, with its likely causes.
//!
//! It goes through the same login gate and state directory as the service, so running it
//! costs no extra attempt against Dexcom's lockout: a password the gate holds back is not
//! sent. Beside a running service (which holds the state directory) it does not log in at all,
//! nor consult the gate: it shows what the service shows, and says once that it sent nothing.
//! Times are the machine's local time with its zone, as the person at the terminal reads them.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::clock::{Clock, local_time, unix_ms};
use crate::config::{AccountConfig, Config};
use crate::exporter::{ExporterError, share_client, share_http};
use crate::metrics::AccountStatus;
use crate::poll::latest_allowed_ms;
use crate::share::gate::{
    FailureKind, Hold, MAX_CONSECUTIVE_FAILURES, MAX_FAILURES_PER_DAY, StoreFaultKind,
};
use crate::share::{ErrorReason, Region, ShareError};

/// How long resolving or connecting may take before it counts as failed.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);

/// What `check` found for one account.
#[derive(Debug, Clone, Serialize)]
pub struct AccountCheck {
    /// The `account` label.
    pub account: String,
    /// The configured region's name (`us`, `ous` or `jp`), shown first when a password is refused.
    pub region: &'static str,
    /// The Share host and port tried.
    pub host: String,
    /// Whether a current reading came back.
    pub ok: bool,
    /// The newest reading, when one came back.
    pub reading: Option<ReadingFound>,
    /// What went wrong, in one sentence (`None` when all is well).
    pub problem: Option<String>,
    /// The likely causes, most likely first.
    pub causes: Vec<String>,
    /// Whether a password-bearing request was sent by this check.
    pub password_sent: bool,
    /// Whether this is the running service's finding, read from its telemetry path: then the
    /// check sent nothing to Share for this account.
    pub from_service: bool,
}

/// The newest reading found.
#[derive(Debug, Clone, Serialize)]
pub struct ReadingFound {
    /// Glucose in mg/dL as Share reports it.
    pub mg_per_dl: u16,
    /// The trend's name.
    pub trend: String,
    /// Seconds since the sensor took it, by Share's clock.
    pub age_seconds: i64,
    /// Whether it is younger than `--glucose.max-age`.
    pub current: bool,
}

/// Checks every configured account, one after the other.
///
/// # Errors
/// [`ExporterError`] when the HTTP client cannot be built.
pub async fn check(
    config: &Config,
    clock: Arc<dyn Clock>,
    reset_gate: bool,
) -> Result<Vec<AccountCheck>, ExporterError> {
    let http = share_http(config)?;
    let beside_service = config.storage.as_ref().is_some_and(|s| s.read_only());
    let mut found = Vec::with_capacity(config.accounts.len());
    for account in &config.accounts {
        let ask = Ask {
            clock: clock.clone(),
            beside_service,
            reset_gate,
        };
        found.push(check_account(config, &http, account, ask).await);
    }
    Ok(found)
}

/// How one account is checked.
struct Ask {
    clock: Arc<dyn Clock>,
    beside_service: bool,
    /// `--reset-gate`: forget the failures in a row first.
    reset_gate: bool,
}

async fn check_account(
    config: &Config,
    http: &reqwest::Client,
    account: &AccountConfig,
    ask: Ask,
) -> AccountCheck {
    let Ask {
        clock,
        beside_service,
        reset_gate,
    } = ask;
    // The bare host: an IPv6 literal without its brackets, as the resolver wants it.
    let host = account
        .base_url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = account.base_url.port_or_known_default().unwrap_or(443);
    let mut finding = AccountCheck {
        account: account.name.clone(),
        region: account.region.as_str(),
        host: format!("{host}:{port}"),
        ok: false,
        reading: None,
        problem: None,
        causes: Vec::new(),
        password_sent: false,
        from_service: beside_service,
    };
    if let Err((problem, causes)) = reach(&host, port).await {
        finding.problem = Some(problem);
        finding.causes = causes;
        return finding;
    }
    if beside_service && reset_gate {
        finding.problem = Some(
            "--reset-gate needs the service stopped: it holds the login gate's memory".to_owned(),
        );
        finding.causes = vec!["stop the service (`sudo systemctl stop dexcom_exporter`), run `check --reset-gate`, then start it".to_owned()];
        return finding;
    }
    if beside_service {
        // The service owns the login: what it shows is the answer, read from its /metrics. The
        // gate is not consulted either: its saved state is the service's to act on.
        match service_view(config, &account.name).await {
            Some(view) => {
                finding.reading = view.reading;
                finding.ok = view.status == AccountStatus::Ok;
                if !finding.ok {
                    finding.problem = Some(format!(
                        "the running service shows no value: {} ({})",
                        view.status.as_str(),
                        view.status.words()
                    ));
                    finding.causes = vec![
                        "the service's log says why and what it does next: `journalctl -u dexcom_exporter -e`".to_owned(),
                        "for the full diagnosis here, stop it (`sudo systemctl stop dexcom_exporter`), run `check`, and start it again: while it is stopped no glucose alert can fire".to_owned(),
                    ];
                }
            }
            None => {
                finding.problem = Some(format!(
                    "the running service's view cannot be read at http://{}{} (TLS, basic auth or another address)",
                    config.listen_address, config.telemetry_path
                ));
                finding.causes = vec![
                    "see the service's own view: its landing page or `dexcom_account_status` on its /metrics".to_owned(),
                    "or stop the service (`sudo systemctl stop dexcom_exporter`) and run `check` again".to_owned(),
                ];
            }
        }
        return finding;
    }
    let state = config
        .storage
        .as_ref()
        .map(|dir| Arc::new(dir.account(&account.name)));
    // The gate on the host's clock, as the service has it: its saved times are in that clock.
    let mut client = share_client(config, http, account, state, clock.clone());
    client.check_saved_password().await;
    if reset_gate {
        match client.reset_gate().await {
            Ok(forgotten) => tracing::warn!(
                account = %account.name,
                forgotten,
                "login gate reset: {forgotten} failed logins in a row forgotten; the password is sent now. Dexcom locks an account after about five failures in a row, so if this one fails too, stop and check the password, region and username before trying again"
            ),
            Err(fault) => {
                finding.problem = Some(format!("cannot reset the login gate: {fault}"));
                return finding;
            }
        }
    }
    if let Some(hold) = client.login_hold() {
        finding.problem = Some(format!(
            "the login gate holds the password until {} ({}), so it was not sent",
            local_time(hold.until_ms),
            held_because(hold)
        ));
        finding.causes = match hold.after {
            Some(FailureKind::Rejected | FailureKind::LockedOut) => {
                rejected_causes(account, Some(hold))
            }
            _ => vec![attempts_left(hold)],
        };
        finding.causes.push(
            "a corrected password is tried at once: fix the password file and run `check` again; the service reads the password when it starts, so then `sudo systemctl restart dexcom_exporter`".to_owned(),
        );
        return finding;
    }
    let logins_before = client.logins_sent();
    let result = client.latest_batch(crate::share::MAX_MINUTES, 1).await;
    finding.password_sent = client.logins_sent() > logins_before;
    match result {
        Ok(read) => {
            // Share's time from the answer's own Date (one read, so no other to compare it with),
            // the host's clock when it sent none.
            let now_ms = read.server_date.map_or_else(|| clock.now_ms(), unix_ms);
            let latest_allowed = latest_allowed_ms(&read, now_ms);
            let newest = read
                .batch
                .readings
                .iter()
                .filter(|r| r.timestamp_ms <= latest_allowed)
                .max_by_key(|r| r.timestamp_ms)
                .copied();
            let Some(newest) = newest else {
                finding.problem =
                    Some("Share has no readings for this account in the last 24 hours".to_owned());
                finding.causes = vec![
                    "sharing is off in the Dexcom app: turn on Share (in the app's menu)".to_owned(),
                    "no follower is set up: Share serves readings only while at least one follower has accepted an invitation".to_owned(),
                    "the sensor or the phone has not uploaded for a day (sensor warm-up, phone off or without internet)".to_owned(),
                ];
                return finding;
            };
            let age_ms = now_ms.saturating_sub(newest.timestamp_ms);
            let max_age_ms = i64::try_from(config.max_age.as_millis()).unwrap_or(i64::MAX);
            let current = age_ms <= max_age_ms;
            finding.reading = Some(ReadingFound {
                mg_per_dl: newest.mg_per_dl,
                trend: newest.trend.to_string(),
                age_seconds: age_ms / 1000,
                current,
            });
            if current {
                finding.ok = true;
            } else {
                finding.problem = Some(format!(
                    "the newest reading is {} old, older than --glucose.max-age ({})",
                    humantime::format_duration(Duration::from_secs(
                        u64::try_from(age_ms / 1000).unwrap_or(0)
                    )),
                    humantime::format_duration(config.max_age)
                ));
                finding.causes = vec![
                    "the phone running the Dexcom app is off, has no internet, or lost the sensor (Bluetooth)".to_owned(),
                    "the sensor session ended or is warming up".to_owned(),
                ];
            }
        }
        Err(error) => {
            let hold = client.login_hold();
            finding.problem = Some(error.to_string());
            finding.causes = failure_causes(account, &error, hold);
        }
    }
    finding
}

/// What the running service shows for one account.
struct ServiceView {
    status: AccountStatus,
    reading: Option<ReadingFound>,
}

/// The account's status and value from the running service's telemetry path, at the
/// configured listen address; `None` when it cannot be read (TLS or basic auth in front, or
/// another address).
async fn service_view(config: &Config, account: &str) -> Option<ServiceView> {
    let url = format!("http://{}{}", config.listen_address, config.telemetry_path);
    let text = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?
        .get(&url)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let label = format!(
        "account=\"{}\"",
        account.replace('\\', "\\\\").replace('"', "\\\"")
    );
    let value = |name: &str, extra: &str| {
        let prefix = format!("{name}{{{label}{extra}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let status = AccountStatus::ALL.into_iter().find(|s| {
        value(
            "dexcom_account_status",
            &format!(",status=\"{}\"", s.as_str()),
        ) == Some(1.0)
    })?;
    let reading = value("dexcom_glucose_mg_per_dl", "").map(|mg| ReadingFound {
        mg_per_dl: mg as u16,
        trend: value("dexcom_glucose_trend", "")
            .and_then(|code| crate::share::Trend::from_code(code as i64))
            .map_or_else(String::new, |t| t.to_string()),
        age_seconds: value("dexcom_glucose_reading_age_seconds", "").unwrap_or(0.0) as i64,
        current: true,
    });
    Some(ServiceView { status, reading })
}

/// Resolves `host` and connects to it: the first two things that fail without a network.
async fn reach(host: &str, port: u16) -> Result<(), (String, Vec<String>)> {
    let resolved =
        tokio::time::timeout(NETWORK_TIMEOUT, tokio::net::lookup_host((host, port))).await;
    let addresses: Vec<std::net::SocketAddr> = match resolved {
        Ok(Ok(addresses)) => addresses.collect(),
        Ok(Err(error)) => {
            return Err((
                format!("cannot resolve {host}: {error}"),
                vec![
                    format!(
                        "this machine has no working DNS or no network yet: try `getent hosts {host}`"
                    ),
                    "the base URL or region is misspelt".to_owned(),
                    "a firewall or a captive portal (hotel, school Wi-Fi) blocks name lookups"
                        .to_owned(),
                ],
            ));
        }
        Err(_) => {
            return Err((
                format!("resolving {host} took over {}s", NETWORK_TIMEOUT.as_secs()),
                vec![
                    "the DNS server does not answer: check the network and /etc/resolv.conf"
                        .to_owned(),
                ],
            ));
        }
    };
    let mut last_error = String::from("no address");
    for address in &addresses {
        match tokio::time::timeout(NETWORK_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error)) => last_error = error.to_string(),
            Err(_) => last_error = format!("no answer within {}s", NETWORK_TIMEOUT.as_secs()),
        }
    }
    Err((
        format!("cannot connect to {host}:{port} ({last_error})"),
        vec![
            format!("a firewall blocks outgoing connections to port {port}"),
            "this network needs a proxy to reach the internet".to_owned(),
            "the machine is offline, or Dexcom Share is down (rare: try again in a few minutes)"
                .to_owned(),
        ],
    ))
}

fn held_because(hold: Hold) -> String {
    match hold.fault {
        Some(StoreFaultKind::Unwritable) => {
            return "the state directory cannot be written (a full or read-only disk, or files another user owns), and a login that cannot be counted is not made".to_owned();
        }
        Some(StoreFaultKind::Duplicate) => {
            return "Share says another configured entry is the same Dexcom account: list it once"
                .to_owned();
        }
        Some(StoreFaultKind::Unreadable) => {
            return "the login gate's state file cannot be read, so its count of failed logins is unknown".to_owned();
        }
        None if hold.is_cap() => {
            return format!(
                "{} logins failed in a row (the gate stops at {MAX_CONSECUTIVE_FAILURES}, one short of Dexcom's lockout): none more until a day after the last one let out, or `dexcom_exporter check --reset-gate` once the cause is fixed",
                hold.failures_in_a_row
            );
        }
        None => {}
    }
    match hold.after {
        Some(FailureKind::Rejected) => "Share rejected the password".to_owned(),
        Some(FailureKind::LockedOut) => "Dexcom locked the account".to_owned(),
        Some(FailureKind::Ambiguous) => {
            "a login of a password Share never accepted ended without a clear answer".to_owned()
        }
        Some(FailureKind::Unfinished) => {
            "an exporter stopped in the middle of a login with a password Share never accepted"
                .to_owned()
        }
        None => "the limits on logins per hour were reached".to_owned(),
    }
}

fn attempts_left(hold: Hold) -> String {
    let left_in_a_row = MAX_CONSECUTIVE_FAILURES.saturating_sub(hold.failures_in_a_row);
    let left_today =
        u32::try_from(MAX_FAILURES_PER_DAY.saturating_sub(hold.failures_today)).unwrap_or(u32::MAX);
    format!(
        "{} failed attempts in a row ({} in the last 24 hours); the gate allows {} more, the next at {} (Dexcom locks an account after about five in a row)",
        hold.failures_in_a_row,
        hold.failures_today,
        left_in_a_row.min(left_today),
        local_time(hold.until_ms)
    )
}

/// Why the gate's memory cannot be kept, and what to do: never the password's fault.
fn state_causes(fault: &crate::share::StoreFault) -> Vec<String> {
    match fault {
        crate::share::StoreFault::Duplicate { other, .. } => vec![format!(
            "the configuration lists this Dexcom account twice (here and as {other:?}): remove one entry"
        )],
        _ => vec![
            "the disk is full: free some space (`df -h`)".to_owned(),
            "the disk is read-only or failing (`dmesg`, `mount`)".to_owned(),
            "the state directory's files belong to another user: run `check` with sudo, or restart the service (`sudo systemctl restart dexcom_exporter`), which gives them back to it".to_owned(),
            "nothing was sent, so this did not count against the Dexcom account".to_owned(),
        ],
    }
}

/// The causes of a rejected password, most likely first.
fn rejected_causes(account: &AccountConfig, hold: Option<Hold>) -> Vec<String> {
    let others: Vec<String> = Region::ALL
        .iter()
        .filter(|r| **r != account.region)
        .map(|r| {
            format!(
                "{} ({})",
                r.as_str(),
                reqwest::Url::parse(r.base_url())
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default()
            )
        })
        .collect();
    let mut causes = vec![
        format!(
            "the region: this account is set to {}, and a wrong region is answered exactly like a wrong password; accounts made outside the US use {}",
            account.region.as_str(),
            others.join(", or ")
        ),
        "these must be the publisher's credentials (the person wearing the sensor, whose app shares), not a follower's".to_owned(),
        "username, e-mail or phone: use what the Dexcom app's account shows; an account that logs in with an e-mail or phone number may need `account_id` instead of `username`".to_owned(),
        "the password itself: log in to the Dexcom app with it to be sure (a password file must hold the password alone; a final newline is fine)".to_owned(),
    ];
    if let Some(hold) = hold {
        causes.push(attempts_left(hold));
    }
    causes
}

/// What `check` says when Cloudflare, in front of Share, answered in Share's place.
const EDGE_REFUSED: &str = "Dexcom's web front (Cloudflare) refused this request: this is not your password; the Dexcom Follow app may still work; this exporter will retry.";

fn failure_causes(account: &AccountConfig, error: &ShareError, hold: Option<Hold>) -> Vec<String> {
    if let ShareError::StateUnavailable { fault, .. } = error {
        return state_causes(fault);
    }
    match error.reason() {
        ErrorReason::AuthFailed => rejected_causes(account, hold),
        ErrorReason::LockedOut => vec![
            "Dexcom locked the account after too many failed logins: wait at least an hour (the exporter waits for you), then check the password in the Dexcom app".to_owned(),
        ],
        ErrorReason::Connection => {
            let text = error.to_string();
            let mut causes = Vec::new();
            if text.contains("check the host's clock") {
                causes.push("this machine's clock is wrong (a Raspberry Pi without a real-time clock, before NTP syncs): check `timedatectl`".to_owned());
            }
            causes.extend([
                "a firewall or proxy in the way of HTTPS to Dexcom".to_owned(),
                "the network dropped the connection: try again".to_owned(),
            ]);
            causes
        }
        ErrorReason::Timeout => vec![
            "the network is slow or a firewall silently drops the traffic".to_owned(),
            "Dexcom Share is slow right now: try again in a few minutes".to_owned(),
        ],
        ErrorReason::EdgeChallenge | ErrorReason::EdgeRateLimited | ErrorReason::EdgeError => {
            vec![EDGE_REFUSED.to_owned()]
        }
        ErrorReason::RateLimited | ErrorReason::ServerError => vec![
            "Dexcom Share has a problem right now (this is not your setup): try again in a few minutes".to_owned(),
        ],
        ErrorReason::SessionExpired | ErrorReason::InvalidResponse => vec![
            "Dexcom Share answered something unexpected: try again; if it stays, check --dexcom.base-url".to_owned(),
        ],
    }
}

/// The findings for a person: one line per account, then the causes of each problem. Beside
/// the running service, one line first says that nothing was sent.
pub fn render_text(found: &[AccountCheck]) -> String {
    let mut out = String::new();
    if found.iter().any(|f| f.from_service) {
        out.push_str("the exporter service is running and owns the logins: `check` sent nothing to Dexcom and shows what the service shows\n");
    }
    for f in found {
        match (&f.reading, &f.problem) {
            (Some(r), None) => out.push_str(&format!(
                "ok    {}: {} mg/dL ({:.1} mmol/L), {}, {} old; region {}, {}\n",
                f.account,
                r.mg_per_dl,
                crate::share::mg_per_dl_to_mmol_per_l(r.mg_per_dl),
                r.trend,
                humantime::format_duration(Duration::from_secs(
                    u64::try_from(r.age_seconds).unwrap_or(0)
                )),
                f.region,
                f.host
            )),
            (_, problem) => {
                out.push_str(&format!(
                    "FAIL  {}: {}; region {}, {}\n",
                    f.account,
                    problem.as_deref().unwrap_or("no current reading"),
                    f.region,
                    f.host
                ));
                if !f.causes.is_empty() {
                    out.push_str("      what to check, most likely first:\n");
                    for (i, cause) in f.causes.iter().enumerate() {
                        out.push_str(&format!("      {}. {cause}\n", i + 1));
                    }
                }
            }
        }
    }
    out
}

/// The findings for a script.
pub fn render_json(found: &[AccountCheck]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "ok": found.iter().all(|f| f.ok),
        "accounts": found,
    }))
    .unwrap_or_default()
}
