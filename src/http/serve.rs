//! The HTTP/1 accept loop shared by the exporter's server and the Share simulator.
//!
//! One place owns the connection rules, so that no client can hold the server: a header-read
//! timeout (idle or slow senders), a write deadline (clients that pipeline requests and never
//! read their answers, see `deadline.rs`), a bounded read buffer, a cap on open connections and
//! a smaller one per client address (one misbehaving host cannot take every slot from the
//! scraper and the health checks), and a graceful drain on shutdown bounded by a deadline so a
//! stuck client cannot keep the process alive.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A complete, buffered HTTP response.
pub type HttpResponse = Response<Full<Bytes>>;

/// Where each new TLS connection gets its settings, so they can change while serving
/// (renewed certificates).
pub trait TlsSource: Send + Sync + 'static {
    /// The settings for the next handshake.
    fn server_config(&self) -> Arc<rustls::ServerConfig>;
}

impl std::fmt::Debug for dyn TlsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSource")
    }
}

/// How much one client may hold of the server: the limits that keep a slow or hostile peer
/// from starving Prometheus's scrape.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// How long a client may take to send a request's headers (and how long an idle
    /// keep-alive connection is kept).
    pub header_read_timeout: Duration,
    /// The most connections served at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// The most connections from one client address; more are closed at once.
    pub max_connections_per_client: usize,
    /// How long writing an answer may make no progress before the connection is dropped.
    pub write_timeout: Duration,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub drain_deadline: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_connections_per_client: 32,
            write_timeout: Duration::from_secs(10),
            drain_deadline: Duration::from_secs(5),
        }
    }
}

/// The read buffer of one connection: room for any sane request head, and a bound on what a
/// client can make us hold (hyper's default is 400 KiB).
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerClient(std::sync::Mutex<HashMap<IpAddr, usize>>);

/// One counted connection; uncounted when dropped.
struct ClientSlot {
    clients: Arc<PerClient>,
    addr: IpAddr,
}

/// Whose connection this is, for the per-client cap: an IPv4 address, or an IPv6 address's
/// /64 (one host holds a whole /64, so counting addresses would let it open a cap per
/// address). An IPv4 address mapped into IPv6 counts as itself.
fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

impl PerClient {
    fn take(self: &Arc<Self>, addr: IpAddr, limit: usize) -> Option<ClientSlot> {
        let addr = client_key(addr);
        let mut open = self.0.lock().ok()?;
        let count = open.entry(addr).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            addr,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.clients.0.lock()
            && let Some(count) = open.get_mut(&self.addr)
        {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

/// Serves `handler` on `listener` (over TLS when `tls` is given) until `shutdown` is
/// cancelled, then drains.
pub async fn serve<H, Fut>(
    listener: TcpListener,
    handler: H,
    shutdown: CancellationToken,
    limits: ServeLimits,
    tls: Option<Arc<dyn TlsSource>>,
) where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = HttpResponse> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Arc::new(PerClient::default());
    let mut said_per_client = false;
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually EMFILE: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(client_slot) = clients.take(peer.ip(), limits.max_connections_per_client) else {
            if !std::mem::replace(&mut said_per_client, true) {
                tracing::warn!(client = %peer.ip(), limit = limits.max_connections_per_client, "a client holds too many connections; closing its new ones");
            }
            continue;
        };
        // A write (or flush) that makes no progress for the deadline fails with `TimedOut`:
        // hyper bounds how long request headers may take, not how long writing the answer
        // may, and a client that pipelines requests and never reads its answers would
        // otherwise hold its connection slot forever.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write_timeout));
        let stream = Box::pin(stream);
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler(request).await) }
        });
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(READ_BUFFER_BYTES);
        let watcher = graceful.watcher();
        let tls = tls
            .as_ref()
            .map(|source| tokio_rustls::TlsAcceptor::from(source.server_config()));
        tokio::spawn(async move {
            let result = match tls {
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(acceptor) => {
                    // The handshake gets the same deadline as the request headers.
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => {
                            watcher
                                .watch(http.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
            drop(client_slot);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain_deadline) => {
            tracing::warn!(deadline = ?limits.drain_deadline, "gave up waiting for HTTP connections to finish");
        }
    }
}

/// A response with a status, a content type and a body.
pub fn respond(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod client_keys {
    use super::*;

    #[test]
    fn an_ipv6_client_is_its_64_and_an_ipv4_one_its_address() {
        let key = |text: &str| client_key(text.parse().unwrap());
        assert_eq!(
            key("2001:db8:1:2:aaaa::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("2001:db8:1:2::1").to_string(), "2001:db8:1:2::");
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
    }

    #[test]
    fn the_cap_counts_a_64_as_one_client() {
        let clients = Arc::new(PerClient::default());
        let mut slots = Vec::new();
        for i in 0..4u16 {
            let addr = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 7, i, 0, 0, 1));
            slots.push(clients.take(addr, 4).expect("under the cap"));
        }
        let fifth = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 7, 99, 0, 0, 1));
        assert!(
            clients.take(fifth, 4).is_none(),
            "a fifth address of the same /64"
        );
        let other = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 8, 0, 0, 0, 1));
        assert!(
            clients.take(other, 4).is_some(),
            "another /64 is another client"
        );
        drop(slots);
        assert!(clients.take(fifth, 4).is_some(), "freed when they close");
    }
}
