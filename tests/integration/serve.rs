//! The shared accept loop: idle and slow clients are cut off by the header-read timeout, and
//! shutdown drains within its deadline.

use std::time::{Duration, Instant};

use dexcom_exporter::http::serve::{ServeLimits, respond, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn start(
    limits: ServeLimits,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let handler = |_request| async { respond(200, "text/plain", "ok") };
    let task = tokio::spawn(serve(listener, handler, token.clone(), limits, None));
    (addr, token, task)
}

fn limits() -> ServeLimits {
    ServeLimits {
        header_read_timeout: Duration::from_millis(300),
        max_connections: 4,
        drain_deadline: Duration::from_millis(500),
    }
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("server closed the connection");
    out
}

#[tokio::test]
async fn idle_connection_is_closed_by_the_header_timeout() {
    let (addr, token, task) = start(limits()).await;
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let sent = read_to_close(&mut idle).await;
    assert!(!String::from_utf8_lossy(&sent).contains("200 OK"));
    assert!(started.elapsed() >= Duration::from_millis(250));
    token.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn slowloris_headers_are_cut_off() {
    let (addr, token, task) = start(limits()).await;
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let writer = async {
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // The header never completes; the server must give up long before the 1.5 s it would take.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    let sent = read_to_close(&mut slow).await;
    assert!(!String::from_utf8_lossy(&sent).contains("200 OK"));
    token.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_held_connection_does_not_block_others_or_shutdown() {
    let (addr, token, task) = start(ServeLimits {
        header_read_timeout: Duration::from_secs(30),
        ..limits()
    })
    .await;
    let _held = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = reqwest::get(format!("http://{addr}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
    let started = Instant::now();
    token.cancel();
    task.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drain is bounded by its deadline"
    );
}
