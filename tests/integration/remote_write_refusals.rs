//! Remote write refused, not failed: a receiver that refuses the credentials (held and
//! delivered once fixed), one that answers 404 or a redirect (held too), one whose error answer
//! is endless (read 64 KiB deep), one that echoes the credentials it was sent (never logged),
//! and a key in the URL's query (sent, never shown). Against the scripted receiver of
//! `remote_write_faults`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{USERNAME, capture_logs, sample};
use crate::harness::{TestApp, wait_until};
use crate::remote_write_faults::{Received, glucose_times, receiver, remote_labels};

/// The app with its account and a `remote_write:` section in one `--config.file`: `secret` is
/// written to a file (mode 0600) whose path `section` is given.
async fn start_with_remote_write(
    secret: &'static str,
    section: impl FnOnce(&Path) -> String + 'static,
) -> TestApp {
    let mut options = crate::harness::AppOptions::new(Duration::from_millis(500), &[]);
    let args = std::mem::replace(&mut options.args, Box::new(|_, _| Vec::new()));
    options.args = Box::new(move |base, dir| {
        let config = dir.join("remote.yml");
        std::fs::write(
            &config,
            format!(
                "accounts:\n  - username: {USERNAME}\n    base_url: {base}\nremote_write:\n{}",
                section(&secret_file(dir, secret))
            ),
        )
        .unwrap();
        let mut out = args(base, dir);
        // The account comes from the file: drop the username and base URL flags.
        out.drain(0..4);
        out.extend(["--config.file".to_owned(), config.display().to_string()]);
        out
    });
    TestApp::start_with(options).await
}

/// Writes `secret` to a file in `dir`, mode 0600, and returns its path.
fn secret_file(dir: &Path, secret: &str) -> std::path::PathBuf {
    let path = dir.join("secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

/// The requests held (refused for credentials or URL) as `scrape` counts them for `labels`,
/// after checking that none of the held readings was counted as failed.
fn held_requests(scrape: &str, labels: &str) -> f64 {
    assert_eq!(
        sample(scrape, "dexcom_remote_storage_samples_failed_total", labels),
        Some(0.0),
        "a held request drops nothing"
    );
    sample(
        scrape,
        "dexcom_remote_storage_requests_unauthorized_total",
        labels,
    )
    .unwrap()
}

/// Whether every reading held is among the glucose samples of `taken`.
fn all_taken(app: &TestApp, taken: &[Received]) -> bool {
    let held: Vec<i64> = app.exporter.histories[0]
        .snapshot()
        .iter()
        .map(|r| r.timestamp_ms)
        .collect();
    let got = glucose_times(taken);
    held.len() >= 288 && held.iter().all(|t| got.contains(t))
}

/// A receiver that refuses the credentials (401) until the token file is fixed: the readings are
/// held, the file is read again before each try, and every reading arrives once the fix is in,
/// without a restart. Nothing is counted as failed.
#[tokio::test]
async fn refused_credentials_hold_the_readings_until_a_fixed_token_file_is_taken() {
    let (_guard, logs) = capture_logs();
    let receiver = receiver(Box::new(|got, _| {
        let authorization = got
            .headers
            .iter()
            .find(|(name, _)| name == "authorization")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if authorization == "Bearer right-token" {
            (204, String::new())
        } else {
            (401, "invalid token".into())
        }
    }))
    .await;
    let url = receiver.url.clone();
    let app = start_with_remote_write("wrong-token", move |token| {
        format!(
            "  - url: {url}\n    authorization:\n      credentials_file: {}\n",
            token.display()
        )
    })
    .await;
    let labels = remote_labels(&receiver);
    wait_until(Duration::from_secs(10), "three refused requests", || {
        receiver.received.lock().unwrap().len() >= 3
    })
    .await;
    let token = app.dir_path().join("secret");
    std::fs::write(&token, "right-token\n").unwrap();
    wait_until(
        Duration::from_secs(30),
        "every reading taken after the fix",
        || {
            let taken: Vec<Received> = receiver
                .received
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.headers.iter().any(|h| h.1 == "Bearer right-token"))
                .cloned()
                .collect();
            all_taken(&app, &taken)
        },
    )
    .await;
    let refused = held_requests(&app.scrape().await, &labels);
    assert!(refused >= 3.0, "{refused}");
    let text = logs.text();
    assert_eq!(
        text.matches("refuses the credentials").count(),
        1,
        "said once: {text}"
    );
    assert!(!text.contains("right-token") && !text.contains("wrong-token"));
    app.stop().await;
}

/// A receiver whose error answer is endless: at most 64 KiB of it is read, the rest never.
#[tokio::test]
async fn a_huge_error_answer_is_read_only_64_kib_deep() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    let written: Arc<Mutex<Vec<usize>>> = Arc::default();
    let sink = written.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                // Read the request (headers and body) as far as it comes at once.
                let mut buffer = vec![0u8; 1 << 20];
                let mut got = Vec::new();
                loop {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    got.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&got);
                    if n == 0 {
                        return;
                    }
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let total = 200usize << 20;
                let head = format!(
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: {total}\r\n\r\n"
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = 0;
                while sent < total {
                    match socket.write_all(&chunk).await {
                        Ok(()) => sent += chunk.len(),
                        Err(_) => break,
                    }
                }
                sink.lock().unwrap().push(sent);
            });
        }
    });
    let app = TestApp::start(Duration::from_millis(500), &["--remote-write.url", &url]).await;
    wait_until(Duration::from_secs(20), "two answers cut short", || {
        written.lock().unwrap().len() >= 2
    })
    .await;
    let sent = written.lock().unwrap().clone();
    // What the exporter did not read sits in the kernel's socket buffers at most (a few MiB on
    // loopback); a reader of the whole answer would take all 200 MiB.
    for bytes in &sent {
        assert!(
            *bytes < 16 << 20,
            "{} MiB written before the exporter hung up",
            bytes >> 20
        );
    }
    eprintln!("bytes written per refused answer before the hang-up: {sent:?}");
    app.stop().await;
    server.abort();
}

/// A credential in the receiver URL's query (`?api_key=…`, as some hosted receivers document
/// it) is sent, but is in no label, log line or error: its values show as `<redacted>`.
#[tokio::test]
async fn a_key_in_the_url_query_is_sent_but_never_shown() {
    let (_guard, logs) = capture_logs();
    let receiver = receiver(Box::new(|_, index| {
        if index == 0 {
            (503, "warming up".into())
        } else {
            (204, String::new())
        }
    }))
    .await;
    let url = format!("{}?api_key=s3cret-key-9&tenant=home", receiver.url);
    let app = TestApp::start(Duration::from_millis(500), &["--remote-write.url", &url]).await;
    wait_until(Duration::from_secs(10), "a request taken", || {
        receiver.received.lock().unwrap().len() >= 2
    })
    .await;
    let scrape = app.scrape().await;
    assert!(!scrape.contains("s3cret-key-9"), "{scrape}");
    assert!(
        scrape.contains("?api_key=<redacted>&tenant=<redacted>\""),
        "the url label names the keys: {scrape}"
    );
    let text = logs.text();
    assert!(text.contains("api_key=<redacted>"), "{text}");
    assert!(!text.contains("s3cret-key-9"), "{text}");
    app.stop().await;
}

/// A receiver answering 404 (a wrong path) and a redirect (a moved receiver, not followed):
/// the URL's fault, not the readings', so they are held and retried like a credential refusal,
/// counted as held requests, said once, and every reading arrives once the receiver takes
/// them. Nothing is counted as failed.
#[tokio::test]
async fn a_404_or_a_redirect_holds_the_readings_until_the_receiver_takes_them() {
    let (_guard, logs) = capture_logs();
    let receiver = receiver(Box::new(|_, index| match index {
        0 | 2 => (404, "404 page not found".into()),
        1 => (308, String::new()),
        _ => (204, String::new()),
    }))
    .await;
    let app = TestApp::start(
        Duration::from_millis(500),
        &["--remote-write.url", &receiver.url],
    )
    .await;
    wait_until(Duration::from_secs(30), "every reading taken", || {
        all_taken(&app, &receiver.after(3))
    })
    .await;
    let held = held_requests(&app.scrape().await, &remote_labels(&receiver));
    assert_eq!(held, 3.0, "three requests held");
    let text = logs.text();
    assert_eq!(
        text.matches("answers that nothing is there").count(),
        1,
        "said once: {text}"
    );
    assert!(
        !text.contains("refused samples; they are not sent again"),
        "{text}"
    );
    app.stop().await;
}

/// A receiver that echoes the request in its error answers (the URL, the authorization header
/// and the tenant header): the basic-auth password (as written and as the header carried it),
/// the tenant, the URL's key and a bare token in its query are in no log line; the rest of the
/// answer is.
#[tokio::test]
async fn credentials_a_receiver_echoes_are_taken_out_of_the_log() {
    use base64::Engine as _;
    let (_guard, logs) = capture_logs();
    let receiver = receiver(Box::new(|got, index| {
        let header = |name: &str| {
            got.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let authorization = header("authorization");
        let decoded = authorization
            .strip_prefix("Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let echo = format!(
            "cannot route {} for tenant {} (authorization: {authorization}, that is {decoded})",
            got.uri,
            header("x-scope-orgid")
        );
        match index {
            0 => (500, echo),
            1 => (401, echo),
            _ => (204, String::new()),
        }
    }))
    .await;
    let url = format!("{}?api_key=qu3ry-k3y&bare-s3cr3t", receiver.url);
    let app = start_with_remote_write("pa55-s3cr3t", move |password| {
        format!(
            "  - url: {url}\n    headers:\n      X-Scope-OrgID: tenant-s3cr3t\n    basic_auth:\n      username: dexcom\n      password_file: {}\n",
            password.display()
        )
    })
    .await;
    wait_until(
        Duration::from_secs(20),
        "the echoes said in the log",
        || {
            let text = logs.text();
            text.contains("remote write failed") && text.contains("refuses the credentials")
        },
    )
    .await;
    let first = receiver.received.lock().unwrap()[0].clone();
    assert!(
        first.uri.contains("qu3ry-k3y"),
        "the key is sent: {first:?}"
    );
    let text = logs.text();
    let encoded = base64::engine::general_purpose::STANDARD.encode("dexcom:pa55-s3cr3t");
    for secret in [
        "pa55-s3cr3t",
        encoded.as_str(),
        "tenant-s3cr3t",
        "qu3ry-k3y",
        "bare-s3cr3t",
    ] {
        assert!(!text.contains(secret), "{secret} logged: {text}");
    }
    assert_eq!(
        text.matches("cannot route /api/v1/write?api_key=<redacted>&<redacted> for tenant <redacted> (authorization: Basic <redacted>, that is dexcom:<redacted>)")
            .count(),
        2,
        "the rest of each answer is shown: {text}"
    );
    app.stop().await;
}
