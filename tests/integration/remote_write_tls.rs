//! Remote write over TLS, end to end, against Debian's Prometheus serving its remote-write
//! receiver behind `--web.config.file`: a server certificate from a private CA issued for a
//! name that is not the URL's host (so `server_name` must be used), client certificates
//! required (so `cert_file`/`key_file` must be sent), and basic auth (so `password_file` must
//! be read). One exporter writes to four receivers that differ only in their `tls_config`; the
//! exporter's own per-receiver metrics and Prometheus's stored samples say which got through.

use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};

use crate::common::{
    KillOnDrop, USERNAME, capture_logs, free_port, prometheus_command, sample, tool,
};
use crate::harness::{ScratchDir, TestApp, wait_until};

const SERVER_NAME: &str = "receiver.dexcom.test";
const USER: &str = "dexcom";
const PASSWORD: &str = "remote-write secret";

/// A private CA and the server and client certificates it issues, written as PEM files.
struct Pki {
    ca: std::path::PathBuf,
    other_ca: std::path::PathBuf,
    server_cert: std::path::PathBuf,
    server_key: std::path::PathBuf,
    client_cert: std::path::PathBuf,
    client_key: std::path::PathBuf,
    client_pem: Vec<u8>,
    ca_pem: Vec<u8>,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> (String, String) {
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dexcom_exporter test");
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki(dir: &Path) -> Pki {
    let authority = ca("dexcom test CA");
    let stranger = ca("some other CA");
    let (server_cert, server_key) = leaf(
        vec![SERVER_NAME.to_owned()],
        ExtendedKeyUsagePurpose::ServerAuth,
        &authority,
    );
    let (client_cert, client_key) = leaf(
        vec!["exporter.dexcom.test".to_owned()],
        ExtendedKeyUsagePurpose::ClientAuth,
        &authority,
    );
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", &authority.pem()),
        other_ca: write("other-ca.pem", &stranger.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server-key.pem", &server_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client-key.pem", &client_key),
        client_pem: format!("{client_cert}{client_key}").into_bytes(),
        ca_pem: authority.pem().into_bytes(),
    }
}

/// Prometheus with its remote-write receiver behind TLS, client certificates and basic auth.
struct TlsPrometheus {
    port: u16,
    http: reqwest::Client,
    _process: KillOnDrop,
}

impl TlsPrometheus {
    async fn start(dir: &Path, pki: &Pki) -> Option<Self> {
        let binary = tool("prometheus")?;
        let port = free_port();
        let web = dir.join("web.yml");
        let hash = bcrypt::hash(PASSWORD, 4).unwrap();
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\nbasic_auth_users:\n  {USER}: {hash}\n",
                pki.server_cert.display(),
                pki.server_key.display(),
                pki.ca.display()
            ),
        )
        .unwrap();
        let child = prometheus_command(
            &binary,
            dir,
            port,
            "storage:\n  tsdb:\n    out_of_order_time_window: 1d\n",
        )
        .arg(format!("--web.config.file={}", web.display()))
        .arg("--web.enable-remote-write-receiver")
        .spawn()
        .unwrap();
        let process = KillOnDrop(child);
        // The test's own client: trusts the private CA, shows the client certificate, and
        // reaches 127.0.0.1 under the certificate's name.
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pki.ca_pem).unwrap()])
            .identity(reqwest::Identity::from_pem(&pki.client_pem).unwrap())
            .resolve(SERVER_NAME, ([127, 0, 0, 1], port).into())
            .build()
            .unwrap();
        let prometheus = TlsPrometheus {
            port,
            http,
            _process: process,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !prometheus.ready().await {
            assert!(Instant::now() < deadline, "Prometheus did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Some(prometheus)
    }

    fn url(&self, path: &str) -> String {
        format!("https://{SERVER_NAME}:{}{path}", self.port)
    }

    async fn ready(&self) -> bool {
        self.http
            .get(self.url("/-/ready"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// How many glucose samples Prometheus holds for the account.
    async fn glucose_samples(&self) -> usize {
        let body: serde_json::Value = self
            .http
            .get(self.url("/api/v1/query"))
            .basic_auth(USER, Some(PASSWORD))
            .query(&[(
                "query",
                format!("count_over_time(dexcom_reading_glucose_mg_per_dl{{account=\"{USERNAME}\"}}[1d])"),
            )])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

#[tokio::test]
async fn remote_write_reaches_a_tls_receiver_only_with_the_right_ca_name_and_client_certificate() {
    let dir = ScratchDir::new();
    let pki = pki(dir.path());
    let Some(prometheus) = TlsPrometheus::start(dir.path(), &pki).await else {
        return;
    };
    let password_file = dir.path().join("remote-write-password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    std::fs::set_permissions(
        &password_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // The URL names 127.0.0.1; the certificate names only SERVER_NAME.
    let url = format!("https://127.0.0.1:{}/api/v1/write", prometheus.port);
    let receiver = |name: &str, tls: &str| {
        format!(
            "  - url: {url}\n    name: {name}\n    remote_timeout: 2s\n    basic_auth:\n      username: {USER}\n      password_file: {}\n    tls_config:\n{tls}",
            password_file.display()
        )
    };
    let client_identity = format!(
        "      cert_file: {}\n      key_file: {}\n",
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let config = dir.path().join("remote-write.yml");
    std::fs::write(
        &config,
        format!(
            "remote_write:\n{}{}{}{}",
            receiver(
                "trusted",
                &format!(
                    "      ca_file: {}\n      server_name: {SERVER_NAME}\n{client_identity}",
                    pki.ca.display()
                )
            ),
            receiver(
                "other_ca",
                &format!(
                    "      ca_file: {}\n      server_name: {SERVER_NAME}\n{client_identity}",
                    pki.other_ca.display()
                )
            ),
            receiver(
                "no_client_cert",
                &format!(
                    "      ca_file: {}\n      server_name: {SERVER_NAME}\n",
                    pki.ca.display()
                )
            ),
            receiver(
                "wrong_name",
                &format!("      ca_file: {}\n{client_identity}", pki.ca.display())
            ),
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let (_guard, logs) = capture_logs();
    let app = TestApp::start(
        Duration::from_millis(500),
        &["--config.file", config_arg.as_str()],
    )
    .await;
    let history = app.exporter.histories[0].clone();
    wait_until(Duration::from_secs(10), "the first read", || {
        !history.snapshot().is_empty()
    })
    .await;
    let held = history.snapshot().len();
    let labels = |name: &str| format!("remote_name=\"{name}\",url=\"{url}\"");
    let sent = |scrape: &str, name: &str| {
        sample(scrape, "dexcom_remote_storage_samples_total", &labels(name)).unwrap_or(0.0)
    };
    // Two series per reading (glucose and trend).
    let scrape = app
        .scrape_until(Duration::from_secs(30), |scrape| {
            (sent(scrape, "trusted") >= 2.0 * held as f64).then(|| scrape.to_owned())
        })
        .await;
    for refused in ["other_ca", "no_client_cert", "wrong_name"] {
        assert_eq!(sent(&scrape, refused), 0.0, "{refused}: {scrape}");
        let pending = sample(
            &scrape,
            "dexcom_remote_storage_samples_pending",
            &labels(refused),
        )
        .unwrap_or(0.0);
        assert!(
            pending >= 2.0 * held as f64,
            "{refused}: kept for a retry, not dropped ({pending} pending)"
        );
        let dropped = sample(
            &scrape,
            "dexcom_remote_storage_samples_failed_total",
            &labels(refused),
        )
        .unwrap_or(0.0);
        assert_eq!(dropped, 0.0, "{refused}: a TLS failure is not permanent");
    }
    let stored = prometheus.glucose_samples().await;
    // Each refusal is logged with its cause, not only "error sending request".
    let text = logs.text();
    for (refused, cause) in [
        ("other_ca", "UnknownIssuer"),
        ("no_client_cert", "may require a client certificate"),
        ("wrong_name", "not valid for name"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("remote_name={refused} ")) && l.contains(cause)),
            "{refused}: no log line names {cause:?}:\n{text}"
        );
    }
    assert!(!text.contains(PASSWORD), "the password reached the log");
    assert!(
        stored >= held,
        "Prometheus holds {stored} glucose samples for {held} readings"
    );
    app.stop().await;
}
