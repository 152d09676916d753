//! The night alarm as a parent installs it, on this machine only: the shipped
//! `alertmanager.yml` filled in as a user who keeps Pushover, the heartbeat and the ntfy relay
//! would fill it (Telegram deleted), Debian's Alertmanager and Prometheus, and Pushover's and
//! the heartbeat service's HTTPS APIs stood in on loopback.
//!
//! Those APIs have fixed names (`api.pushover.net`, `hc-ping.com`) that Alertmanager resolves
//! and checks certificates for. So the test runs again inside a private network and mount
//! namespace (`unshare --net --mount`, as root; CI runs as root), where `/etc/hosts` is a bind
//! mount mapping both names to 127.0.0.1, port 443 is free to take, and a CA made for the run
//! is trusted by Alertmanager alone (`SSL_CERT_FILE`). Nothing leaves the namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dexcom_exporter::http::{ServeLimits, TlsSource, respond, serve};
use http_body_util::BodyExt;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::common::{
    KillOnDrop, alertmanager_command, free_port, prometheus_command, repo, root_for,
    start_alertmanager, tool, wait_until_ready,
};

pub const PUSHOVER: &str = "api.pushover.net";
pub const HEARTBEAT: &str = "hc-ping.com";
/// What fills the shipped file's placeholders.
pub const CHECK_UUID: &str = "5e1f2c3a-0000-4000-8000-00000000d3c0";
const USER_KEY: &str = "uTestUserKey0000000000000000000";
const APP_TOKEN: &str = "aTestAppToken000000000000000000";
/// Set in the test's environment inside the namespace.
const INSIDE: &str = "DEXCOM_TEST_INSIDE_NAMESPACE";
/// Pushover's answer to a revoked or mistyped application token.
const TOKEN_INVALID: &str = r#"{"token":"invalid","errors":["application token is invalid"],"status":0,"request":"5c4f9a6e-test"}"#;

/// True inside the namespace (go on with the test). Outside it, runs the test `name` (its
/// path in this binary) again inside one, asserts it passed, and returns false. Without root
/// outside CI, says so and returns false; in CI that fails ([`root_for`]).
pub fn enter(name: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    if !root_for(&format!("{name} (a private network namespace)")) {
        return false;
    }
    let (Some(unshare), Some(ip)) = (tool("unshare"), tool("ip")) else {
        return false;
    };
    let dir = crate::harness::ScratchDir::new();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost {PUSHOVER} {HEARTBEAT}\n::1 localhost\n"),
    )
    .unwrap();
    let status = std::process::Command::new(unshare)
        .args(["--net", "--mount", "--", "sh", "-c"])
        .arg(r#"set -e; "$1" link set lo up; mount --bind "$2" /etc/hosts; exec "$3" --exact "$4" --nocapture --test-threads=1"#)
        .arg("sh")
        .arg(ip)
        .arg(&hosts)
        .arg(std::env::current_exe().unwrap())
        .arg(name)
        .env(INSIDE, "1")
        .status()
        .unwrap();
    assert!(status.success(), "{name} failed inside its namespace");
    false
}

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `api.pushover.net`, `hc-ping.com` or `relay`.
    pub host: String,
    pub path: String,
    /// Query and form fields (Pushover's message), or the JSON body as `body`.
    pub fields: BTreeMap<String, String>,
    pub at: Instant,
}

/// The HTTPS stand-ins on 127.0.0.1:443 and the ntfy relay's on a free port.
pub struct Standins {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// While set, Pushover answers 400 "application token is invalid".
    pub refuse_pushover: Arc<AtomicBool>,
    /// The CA Alertmanager is told to trust.
    pub ca_file: PathBuf,
    /// The relay's URL, for the shipped file's `http://127.0.0.1:8000/hook`.
    pub relay: String,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for Standins {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Standins {
    /// What reached `host` so far.
    pub fn at(&self, host: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.host == host)
            .cloned()
            .collect()
    }
}

struct FixedTls(Arc<rustls::ServerConfig>);

impl TlsSource for FixedTls {
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.0.clone()
    }
}

/// Percent-decoding of a form or query (`+` is a space).
fn form(text: &str, into: &mut BTreeMap<String, String>) {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        into.insert(decode(k), decode(v));
    }
}

/// Starts the stand-ins; their certificate (for both names) comes from a new CA written to
/// `dir/ca.pem`.
pub async fn start_standins(dir: &Path) -> Standins {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alarm test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![PUSHOVER.to_owned(), HEARTBEAT.to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();

    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let refuse_pushover = Arc::new(AtomicBool::new(false));
    let stop = tokio_util::sync::CancellationToken::new();
    let handler = |relay: bool| {
        let (seen, refuse) = (seen.clone(), refuse_pushover.clone());
        move |request: hyper::Request<hyper::body::Incoming>| {
            let (seen, refuse) = (seen.clone(), refuse.clone());
            async move {
                let host = if relay {
                    "relay".to_owned()
                } else {
                    let header = request.headers().get(hyper::header::HOST);
                    let host = header.and_then(|h| h.to_str().ok()).unwrap_or_default();
                    host.split(':').next().unwrap_or_default().to_owned()
                };
                let path = request.uri().path().to_owned();
                let mut fields = BTreeMap::new();
                form(request.uri().query().unwrap_or_default(), &mut fields);
                let body = request.into_body().collect().await.map(|b| b.to_bytes());
                let body = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
                if body.starts_with('{') || body.starts_with('[') {
                    fields.insert("body".to_owned(), body);
                } else {
                    form(&body, &mut fields);
                }
                let pushover = host == PUSHOVER;
                seen.lock().unwrap().push(Seen {
                    host,
                    path,
                    fields,
                    at: Instant::now(),
                });
                if pushover && refuse.load(Ordering::SeqCst) {
                    respond(400, "application/json", TOKEN_INVALID)
                } else if pushover {
                    respond(
                        200,
                        "application/json",
                        r#"{"status":1,"request":"5c4f9a6e-test"}"#,
                    )
                } else {
                    respond(200, "text/plain", "OK")
                }
            }
        }
    };
    let https = tokio::net::TcpListener::bind("127.0.0.1:443")
        .await
        .unwrap();
    tokio::spawn(serve(
        https,
        handler(false),
        stop.clone(),
        ServeLimits::default(),
        Some(Arc::new(FixedTls(Arc::new(tls)))),
    ));
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = format!("http://{}/hook", plain.local_addr().unwrap());
    tokio::spawn(serve(
        plain,
        handler(true),
        stop.clone(),
        ServeLimits::default(),
        None,
    ));
    Standins {
        seen,
        refuse_pushover,
        ca_file,
        relay,
        stop,
    }
}

/// `text` (an alertmanager.yml) filled in: Pushover's user key and token and the heartbeat
/// check's UUID in place of every `REPLACE-` value, the relay at `relay`, and every Telegram
/// entry deleted. As JSON, which Alertmanager reads as YAML, so a test can patch it.
pub fn filled(text: &str, relay: &str) -> serde_json::Value {
    let text = text
        .replace("REPLACE-WITH-PUSHOVER-USER-KEY", USER_KEY)
        .replace("REPLACE-WITH-PUSHOVER-APP-TOKEN", APP_TOKEN)
        .replace("REPLACE-WITH-YOUR-CHECK-UUID", CHECK_UUID)
        .replace("http://127.0.0.1:8000/hook", relay);
    let mut config: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    for receiver in config["receivers"].as_array_mut().unwrap() {
        receiver.as_object_mut().unwrap().remove("telegram_configs");
    }
    config
}

/// Sets `key` (`group_wait`, `group_interval`) to `value` on the routes to `receiver`.
pub fn set_timer(config: &mut serde_json::Value, receiver: &str, key: &str, value: &str) {
    for route in config["route"]["routes"].as_array_mut().unwrap() {
        if route["receiver"] == receiver {
            route[key] = value.into();
        }
    }
}

/// Prometheus and Alertmanager, both on free loopback ports, talking to each other; killed
/// on drop.
pub struct Chain {
    pub prometheus: String,
    pub alertmanager: String,
    pub alertmanager_log: PathBuf,
    _alertmanager: KillOnDrop,
    _prometheus: KillOnDrop,
}

/// Starts Alertmanager with `config` (trusting `standins`' CA only) and Prometheus with the
/// rule files `rules`, scraping Alertmanager and, when given, the exporter at `exporter`
/// (job `dexcom`), every 15 s as the shipped `prometheus.yml` does, evaluating every 15 s.
pub async fn start_chain(
    dir: &Path,
    config: &serde_json::Value,
    standins: &Standins,
    rules: &[PathBuf],
    exporter: Option<&str>,
) -> Option<Chain> {
    start_chain_sending_to(dir, config, standins, rules, exporter, "").await
}

/// [`start_chain`], with `path_prefix` (`/elsewhere`, or "" for none) in what Prometheus is
/// told of Alertmanager: a non-empty one is a mistake Prometheus's API does not show.
pub async fn start_chain_sending_to(
    dir: &Path,
    config: &serde_json::Value,
    standins: &Standins,
    rules: &[PathBuf],
    exporter: Option<&str>,
    path_prefix: &str,
) -> Option<Chain> {
    let (Some(alertmanager_bin), Some(prometheus_bin)) =
        (tool("prometheus-alertmanager"), tool("prometheus"))
    else {
        return None;
    };
    let am_port = free_port();
    let alertmanager_log = dir.join("alertmanager.log");
    let mut command = alertmanager_command(&alertmanager_bin, dir, am_port, &config.to_string());
    command
        .env("SSL_CERT_FILE", &standins.ca_file)
        .stderr(std::fs::File::create(&alertmanager_log).unwrap());
    let alertmanager = start_alertmanager(command, am_port).await;
    let rule_files: Vec<String> = rules
        .iter()
        .map(|r| format!("  - {}\n", r.display()))
        .collect();
    let exporter_job = exporter.map_or(String::new(), |addr| {
        format!("  - job_name: dexcom\n    static_configs:\n      - targets: ['{addr}']\n")
    });
    let prom_port = free_port();
    let prom_config = format!(
        "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nrule_files:\n{}alerting:\n  alertmanagers:\n    - path_prefix: '{path_prefix}/'\n      static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: alertmanager\n    static_configs:\n      - targets: ['127.0.0.1:{am_port}']\n{exporter_job}",
        rule_files.concat()
    );
    let prometheus = KillOnDrop(
        prometheus_command(&prometheus_bin, dir, prom_port, &prom_config)
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{prom_port}");
    assert!(
        wait_until_ready(
            &format!("{base}/-/ready"),
            std::time::Duration::from_secs(30)
        )
        .await,
        "Prometheus did not start"
    );
    Some(Chain {
        prometheus: base,
        alertmanager: format!("http://127.0.0.1:{am_port}"),
        alertmanager_log,
        _alertmanager: alertmanager,
        _prometheus: prometheus,
    })
}

/// The shipped rule files.
pub fn shipped_rules() -> Vec<PathBuf> {
    vec![
        repo().join("deploy/prometheus/alerts.yml"),
        repo().join("deploy/prometheus/recording.yml"),
    ]
}
