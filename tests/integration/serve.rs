//! The shared accept loop: idle and slow clients are cut off by the header-read timeout, and
//! shutdown drains within its deadline.

use std::time::{Duration, Instant};

use dexcom_exporter::http::{ServeLimits, respond, serve};
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
        ..ServeLimits::default()
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

/// Serves a 64 KiB answer on every path, so clients that never read fill their socket buffers
/// after a few answers.
async fn start_big(limits: ServeLimits) -> (std::net::SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let handler = |_request| async { respond(200, "text/plain", vec![b'x'; 64 * 1024]) };
    tokio::spawn(serve(listener, handler, token.clone(), limits, None));
    (addr, token)
}

/// `count` connections from loopback address `from(i)`, each pipelining 400 requests and never
/// reading an answer; kept open until dropped.
async fn pipeliners(
    server: std::net::SocketAddr,
    count: usize,
    from: impl Fn(usize) -> std::net::Ipv4Addr,
) -> Vec<tokio::net::TcpStream> {
    let requests = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(400);
    let mut held = Vec::with_capacity(count);
    let open = async {
        for i in 0..count {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind((from(i), 0).into()).unwrap();
            let Ok(mut stream) = socket.connect(server).await else {
                continue;
            };
            // The server may already have closed it (over the per-client cap): the point.
            let _ = stream.write_all(requests.as_bytes()).await;
            held.push(stream);
        }
    };
    // Bounded: a server that stopped accepting would otherwise stall the connects.
    tokio::time::timeout(Duration::from_secs(20), open)
        .await
        .expect("the server keeps accepting connections");
    held
}

fn pipelining_limits() -> ServeLimits {
    ServeLimits {
        header_read_timeout: Duration::from_secs(5),
        max_connections: 64,
        max_connections_per_client: 16,
        write_timeout: Duration::from_secs(1),
        drain_deadline: Duration::from_millis(500),
    }
}

#[tokio::test]
async fn hundreds_of_pipelining_non_readers_from_one_host_cannot_hold_the_scraper_out() {
    let (addr, token) = start_big(pipelining_limits()).await;
    let _held = pipeliners(addr, 200, |_| std::net::Ipv4Addr::new(127, 0, 0, 2)).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        reqwest::get(format!("http://{addr}/-/healthy")),
    )
    .await
    .expect("answered while 200 connections from another host pipeline and never read")
    .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    token.cancel();
}

#[tokio::test]
async fn non_readers_from_many_hosts_are_dropped_by_the_write_deadline() {
    let (addr, token) = start_big(pipelining_limits()).await;
    // 100 hosts, more than the 64 slots: only the write deadline can free them.
    let _held = pipeliners(addr, 100, |i| {
        std::net::Ipv4Addr::new(127, 0, 1, u8::try_from(i + 1).unwrap())
    })
    .await;
    let answer = tokio::time::timeout(
        Duration::from_secs(15),
        reqwest::get(format!("http://{addr}/-/healthy")),
    )
    .await
    .expect("answered once the stalled connections hit their write deadline")
    .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    token.cancel();
}
