//! `--web.config.file`: the exporter served over TLS with basic authentication, checked with
//! a real HTTPS client; renewed certificates and changed passwords applied without a restart;
//! bad files rejected at start-up.

use std::path::Path;
use std::time::Duration;

use crate::common::{
    RunningExporter, exporter_args, password_env, scenario, spawn_exporter, start,
};
use dexcom_exporter::simulator::RunningSimulator;

/// A simulator, and the exporter polling it with `--web.config.file web`.
async fn start_with_web_config(web: &Path) -> (RunningSimulator, RunningExporter) {
    let sim = start(scenario(Duration::from_secs(1))).await;
    let base = sim.base_url();
    let web = web.display().to_string();
    let mut args = exporter_args(&base, "1s");
    args.extend(["--web.config.file", &web]);
    let exporter = spawn_exporter(&args, &password_env()).await;
    (sim, exporter)
}

#[tokio::test]
async fn tls_and_basic_auth() {
    let dir = std::env::temp_dir().join(format!("web-config-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = self_signed();
    std::fs::write(dir.join("server.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), cert.signing_key.serialize_pem()).unwrap();
    let hash = bcrypt::hash("scrape-secret", 4).unwrap();
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .unwrap();

    let (sim, exporter) = start_with_web_config(&dir.join("web.yml")).await;

    let client = trusting(&cert);
    let url = format!("https://127.0.0.1:{}/metrics", exporter.addr.port());
    let denied = client.get(&url).send().await.unwrap();
    assert_eq!(denied.status().as_u16(), 401);
    assert!(
        denied.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let wrong = client
        .get(&url)
        .basic_auth("prometheus", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let ok = client
        .get(&url)
        .basic_auth("prometheus", Some("scrape-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers()["x-frame-options"], "deny");
    assert!(ok.text().await.unwrap().contains("dexcom_up{"));
    // Plain HTTP on the TLS port gets nothing useful.
    let plain = reqwest::get(format!("http://127.0.0.1:{}/metrics", exporter.addr.port())).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    exporter.stop().await;
    sim.stop().await;
    std::fs::remove_dir_all(dir).ok();
}

fn self_signed() -> rcgen::CertifiedKey<rcgen::KeyPair> {
    rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
}

/// An HTTPS client that trusts only `cert`, with no pooled connections to reuse.
fn trusting(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[tokio::test]
async fn renewed_certificate_and_new_password_apply_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("web-config-renew-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (old, new) = (self_signed(), self_signed());
    let install = |cert: &rcgen::CertifiedKey<rcgen::KeyPair>, password: &str| {
        // Written to new files and renamed into place, as certbot and most tools do.
        for (name, text) in [
            ("server.crt", cert.cert.pem()),
            ("server.key", cert.signing_key.serialize_pem()),
            (
                "web.yml",
                format!(
                    "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: '{}'\n",
                    bcrypt::hash(password, 4).unwrap()
                ),
            ),
        ] {
            std::fs::write(dir.join(format!("{name}.new")), text).unwrap();
            std::fs::rename(dir.join(format!("{name}.new")), dir.join(name)).unwrap();
        }
    };
    install(&old, "old-secret");
    let (sim, exporter) = start_with_web_config(&dir.join("web.yml")).await;
    let url = format!("https://127.0.0.1:{}/metrics", exporter.addr.port());
    let scrape = |cert, password: &'static str| {
        let request = trusting(cert)
            .get(&url)
            .basic_auth("prometheus", Some(password));
        async move { request.send().await.map(|r| r.status().as_u16()) }
    };

    assert_eq!(scrape(&old, "old-secret").await.unwrap(), 200);
    assert!(
        scrape(&new, "old-secret").await.is_err(),
        "the new certificate is not served yet"
    );
    install(&new, "new-secret");
    assert_eq!(
        scrape(&new, "new-secret").await.unwrap(),
        200,
        "the next connection gets the new certificate and password"
    );
    assert_eq!(scrape(&new, "old-secret").await.unwrap(), 401);
    assert!(
        scrape(&old, "new-secret").await.is_err(),
        "the old one is gone"
    );

    // A broken edit is refused; scrapes go on with the last good settings.
    std::fs::write(dir.join("web.yml"), "tls_server_config: [\n").unwrap();
    assert_eq!(scrape(&new, "new-secret").await.unwrap(), 200);
    exporter.stop().await;
    sim.stop().await;
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_web_config_exits_2_with_one_line() {
    let dir = std::env::temp_dir().join(format!("web-config-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("missing.yml", None, "cannot read --web.config.file"),
        (
            "unknown.yml",
            Some("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n"),
            "cipher_suites",
        ),
        (
            "nocert.yml",
            Some("tls_server_config:\n  cert_file: none.crt\n  key_file: none.key\n"),
            "cannot load certificate",
        ),
    ];
    for (name, contents, expected) in cases {
        let path = dir.join(name);
        if let Some(contents) = contents {
            std::fs::write(&path, contents).unwrap();
        }
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_dexcom_exporter"))
            .args(["--demo", "--web.config.file", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// 300 distinct wrong passwords, 8 at a time (each one a bcrypt verify, run one at a time),
/// must not slow Prometheus's accepted scrape: its result is remembered, so it never queues
/// behind the verifies. The bound is relative to this run's own verify time: a scrape that
/// queued behind the eight requests in flight would wait eight verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_in_bulk_do_not_slow_the_accepted_scrape() {
    let dir = crate::harness::ScratchDir::new();
    let hash = bcrypt::hash("scrape-secret", 7).unwrap();
    std::fs::write(
        dir.path().join("web.yml"),
        format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
    )
    .unwrap();
    let (sim, exporter) = start_with_web_config(&dir.path().join("web.yml")).await;
    let url = format!("http://{}/metrics", exporter.addr);
    let client = reqwest::Client::new();
    let scrape = |client: reqwest::Client, url: String| async move {
        let started = std::time::Instant::now();
        let response = client
            .get(&url)
            .basic_auth("prometheus", Some("scrape-secret"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        started.elapsed()
    };
    // The first accepted scrape pays its verify; later ones are remembered.
    scrape(client.clone(), url.clone()).await;

    let storm_started = std::time::Instant::now();
    let storm = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..300 {
                let permit = limit.clone().acquire_owned().await.unwrap();
                let (client, url) = (client.clone(), url.clone());
                tasks.spawn(async move {
                    let status = client
                        .get(&url)
                        .basic_auth("prometheus", Some(format!("wrong-{i}")))
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16();
                    drop(permit);
                    status
                });
            }
            let mut refused = 0;
            while let Some(status) = tasks.join_next().await {
                refused += usize::from(status.unwrap() == 401);
            }
            refused
        })
    };
    let mut accepted = Vec::new();
    while !storm.is_finished() {
        accepted.push(scrape(client.clone(), url.clone()).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(storm.await.unwrap(), 300, "every wrong password refused");
    let per_verify = storm_started.elapsed() / 300;
    let slowest = accepted.iter().max().copied().unwrap();
    eprintln!(
        "{} accepted scrapes during 300 wrong passwords ({:?} per verify): slowest {slowest:?}",
        accepted.len(),
        per_verify
    );
    assert!(
        accepted.len() >= 10,
        "scrapes kept going: {}",
        accepted.len()
    );
    assert!(
        slowest < per_verify * 8,
        "an accepted scrape took {slowest:?}, as long as the eight verifies in flight ({:?})",
        per_verify * 8
    );
    exporter.stop().await;
    sim.stop().await;
}
