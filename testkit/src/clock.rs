//! Clocks that are wrong, the two ways a host meets one: its own wall clock off (a Raspberry
//! Pi booted without a real-time clock before NTP syncs, a clock stepped by hand), and a Share
//! answer whose `Date` is off (a proxy, a middlebox, a bad edge node). [`OffClock`] is the
//! first, [`DateProxy`] the second: a loopback HTTP proxy in front of the simulator that
//! rewrites the `Date` of chosen answers and passes everything else through untouched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use dexcom_exporter::clock::{Clock, Sleep, SystemClock, from_unix_ms, unix_ms};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use tokio_util::sync::CancellationToken;

/// A host clock: `inner`'s wall clock off by an amount that can be stepped while it runs, its
/// monotonic time and its waits untouched (stepping a wall clock makes no time pass).
#[derive(Debug)]
pub struct OffClock {
    inner: Arc<dyn Clock>,
    off_ms: AtomicI64,
}

impl OffClock {
    /// `inner`, its wall clock `off_ms` ahead (negative: behind).
    pub fn new(inner: Arc<dyn Clock>, off_ms: i64) -> Arc<Self> {
        Arc::new(OffClock {
            inner,
            off_ms: AtomicI64::new(off_ms),
        })
    }

    /// The system clock, its wall clock `off_ms` ahead (negative: behind).
    pub fn system(off_ms: i64) -> Arc<Self> {
        Self::new(Arc::new(SystemClock), off_ms)
    }

    /// Steps the wall clock by `by_ms` more.
    pub fn step(&self, by_ms: i64) {
        self.off_ms.fetch_add(by_ms, Ordering::Relaxed);
    }

    /// How far the wall clock is off now, in ms.
    pub fn off_ms(&self) -> i64 {
        self.off_ms.load(Ordering::Relaxed)
    }
}

impl Clock for OffClock {
    fn now(&self) -> SystemTime {
        from_unix_ms(unix_ms(self.inner.now()).saturating_add(self.off_ms()))
    }

    fn monotonic(&self) -> Duration {
        self.inner.monotonic()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.inner.sleep(duration)
    }
}

/// What the proxy does to the `Date` of the answers it passes on.
#[derive(Debug, Default)]
struct Shift {
    /// Added to every answer's `Date`, in ms.
    always_ms: AtomicI64,
    /// Added to the next [`Shift::once_left`] answers' `Date` (on top of `always_ms`).
    once_ms: AtomicI64,
    once_left: AtomicU64,
    /// Answers whose `Date` was shifted by `once_ms`.
    shifted: AtomicU64,
    /// Answers passed on.
    answered: AtomicU64,
}

/// A loopback HTTP proxy in front of a Share simulator, rewriting the `Date` of its answers.
#[derive(Debug)]
pub struct DateProxy {
    addr: SocketAddr,
    shift: Arc<Shift>,
    shutdown: CancellationToken,
}

impl DateProxy {
    /// A proxy on a free loopback port passing every request on to the server at `upstream`
    /// (its origin, `http://127.0.0.1:PORT`, or any URL on it), answers unchanged until told
    /// otherwise. Not async, so it can be started where a simulator's URL is first known;
    /// it must be called within a tokio runtime.
    ///
    /// # Panics
    /// When no loopback port can be bound, `upstream` is no URL, or the HTTP client cannot be
    /// built: a test that gets here cannot run.
    pub fn start(upstream: &str) -> DateProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("non-blocking socket");
        let listener = tokio::net::TcpListener::from_std(listener).expect("within tokio");
        let addr = listener.local_addr().expect("bound address");
        let upstream = reqwest::Url::parse(upstream)
            .expect("upstream URL")
            .origin()
            .ascii_serialization();
        let shift = Arc::new(Shift::default());
        let shutdown = CancellationToken::new();
        // A fresh connection per request and a deadline: a pooled connection the simulator
        // closed, or a stuck one, is a 502 at once, never a hang the exporter must time out.
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        let (token, state) = (shutdown.clone(), shift.clone());
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let (http, upstream, state) = (http.clone(), upstream.clone(), state.clone());
                let service = hyper::service::service_fn(move |request| {
                    forward(http.clone(), upstream.clone(), state.clone(), request)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        DateProxy {
            addr,
            shift,
            shutdown,
        }
    }

    /// The base URL of Share's services through the proxy.
    pub fn base_url(&self) -> String {
        format!("http://{}/ShareWebServices/Services/", self.addr)
    }

    /// Shifts the `Date` of every answer from now on by `by_ms` (a Share host whose clock is
    /// off: its readings are not shifted, so only for what reads `Date` alone).
    pub fn shift_all(&self, by_ms: i64) {
        self.shift.always_ms.store(by_ms, Ordering::Relaxed);
    }

    /// Shifts the `Date` of the next `answers` answers by `by_ms`: one odd answer.
    pub fn shift_next(&self, answers: u64, by_ms: i64) {
        self.shift.once_ms.store(by_ms, Ordering::Relaxed);
        self.shift.once_left.store(answers, Ordering::Relaxed);
    }

    /// Answers whose `Date` [`DateProxy::shift_next`] shifted so far.
    pub fn shifted(&self) -> u64 {
        self.shift.shifted.load(Ordering::Relaxed)
    }

    /// Answers passed on so far.
    pub fn answered(&self) -> u64 {
        self.shift.answered.load(Ordering::Relaxed)
    }
}

impl Drop for DateProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Passes `request` on to `upstream` and its answer back, `Date` shifted as `shift` says. A
/// failure upstream is a 502, as a real proxy answers.
async fn forward(
    http: reqwest::Client,
    upstream: String,
    shift: Arc<Shift>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let bad_gateway = || {
        let mut response = Response::new(Full::new(Bytes::from_static(b"bad gateway")));
        *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
        Ok(response)
    };
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let method = request.method().clone();
    let content_type = request.headers().get(hyper::header::CONTENT_TYPE).cloned();
    let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
        return bad_gateway();
    };
    let mut outgoing = http.request(method, format!("{upstream}{path}")).body(body);
    if let Some(content_type) = content_type {
        outgoing = outgoing.header(hyper::header::CONTENT_TYPE, content_type);
    }
    let Ok(answer) = outgoing.send().await else {
        return bad_gateway();
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let Ok(bytes) = answer.bytes().await else {
        return bad_gateway();
    };
    let mut by_ms = shift.always_ms.load(Ordering::Relaxed);
    let once = shift
        .once_left
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok();
    if once {
        by_ms += shift.once_ms.load(Ordering::Relaxed);
        shift.shifted.fetch_add(1, Ordering::Relaxed);
    }
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name == hyper::header::DATE {
            let date = value
                .to_str()
                .ok()
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .map(|d| httpdate::fmt_http_date(from_unix_ms(unix_ms(d) + by_ms)));
            if let Some(Ok(value)) = date.map(|d| hyper::header::HeaderValue::from_str(&d)) {
                response.headers_mut().insert(hyper::header::DATE, value);
            }
        } else if name != hyper::header::CONTENT_LENGTH && name != hyper::header::TRANSFER_ENCODING
        {
            response.headers_mut().append(name, value.clone());
        }
    }
    shift.answered.fetch_add(1, Ordering::Relaxed);
    Ok(response)
}
