//! Share as it really answered: a loopback server that replays recorded replies of
//! `share2.dexcom.com` (VCR cassettes, `tests/fixtures/share-recorded/`) verbatim: the recorded
//! status line, headers and body, chunked when the recording was chunked and with the recorded
//! `Content-Length` when it was not. Each reply's `Date` runs on from its recorded one by the
//! time since the server started, so Share's clock reads as it did on the day of the
//! recording (and jumps where the recording jumps, between two sessions of recording).
//!
//! Each endpoint answers with its recorded replies in the order they were recorded, one per
//! request, and repeats its last once they run out (a server that keeps rejecting a password
//! keeps saying so). The requests themselves are not matched against the recording: the
//! exporter asks differently from the client that recorded (other parameters, other
//! passwords), and what is under test is how it takes Share's answers. An endpoint with no
//! recording answers 404, and every request is counted by endpoint, so a test can say how many
//! password-bearing requests a flow cost.
//!
//! Raw HTTP/1.1 on a `TcpListener` rather than a server library: the framing (chunked or not)
//! and the header spelling must be the recording's, not the library's.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The path every Share endpoint sits under.
const SERVICES: &str = "/ShareWebServices/Services/";
/// The largest request head or body read; the exporter's are a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A VCR cassette as pydexcom's tests write it; only what replaying needs is read.
#[derive(Deserialize)]
struct Cassette {
    interactions: Vec<RawInteraction>,
}

#[derive(Deserialize)]
struct RawInteraction {
    request: RawRequest,
    response: RawResponse,
}

#[derive(Deserialize)]
struct RawRequest {
    uri: String,
}

#[derive(Deserialize)]
struct RawResponse {
    body: RawBody,
    headers: BTreeMap<String, Vec<String>>,
    status: RawStatus,
}

#[derive(Deserialize)]
struct RawBody {
    string: String,
}

#[derive(Deserialize)]
struct RawStatus {
    code: u16,
    message: String,
}

/// One recorded reply, and the endpoint it answered.
#[derive(Debug, Clone)]
pub struct RecordedReply {
    /// The endpoint below `/ShareWebServices/Services/`, e.g. `General/LoginPublisherAccountById`.
    pub endpoint: String,
    /// The HTTP status code.
    pub status: u16,
    /// The reason phrase of the status line.
    pub reason: String,
    /// The headers, each name with its values in recorded order.
    pub headers: Vec<(String, Vec<String>)>,
    /// The body, exactly as recorded.
    pub body: String,
}

impl RecordedReply {
    /// The recorded values of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[String]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether the recording was sent chunked.
    pub fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.iter().any(|v| v.eq_ignore_ascii_case("chunked")))
    }

    /// The recorded `Date`.
    pub fn date(&self) -> Option<SystemTime> {
        self.header("date")
            .and_then(|v| v.first())
            .and_then(|v| httpdate::parse_http_date(v).ok())
    }
}

/// Every reply of the cassette at `path`, in recorded order. Panics on a cassette that cannot
/// be read, or whose recorded `Content-Length` is not its body's length (a damaged fixture).
pub fn load(path: &Path) -> Vec<RecordedReply> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the recording {}: {e}", path.display()));
    let cassette: Cassette = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("cannot parse the recording {}: {e}", path.display()));
    cassette
        .interactions
        .into_iter()
        .map(|i| {
            let path_and_query = i.request.uri.split_once(SERVICES).map_or("", |(_, p)| p);
            let endpoint = path_and_query.split('?').next().unwrap_or_default();
            let reply = RecordedReply {
                endpoint: endpoint.to_owned(),
                status: i.response.status.code,
                reason: i.response.status.message,
                headers: i.response.headers.into_iter().collect(),
                body: i.response.body.string,
            };
            if let Some(length) = reply.header("content-length").and_then(|v| v.first()) {
                assert_eq!(
                    length.parse::<usize>().ok(),
                    Some(reply.body.len()),
                    "{}: Content-Length {length} is not the body's length",
                    path.display()
                );
            }
            reply
        })
        .collect()
}

/// Requests answered so far, by endpoint.
type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// A replay server on a loopback port; stopped when dropped.
pub struct ReplayServer {
    addr: SocketAddr,
    counts: Counts,
    task: JoinHandle<()>,
}

impl ReplayServer {
    /// Serves `replies` (several cassettes' replies may be chained: a login cassette and a
    /// readings one, as pydexcom's own tests combine them) on `127.0.0.1:0`.
    pub async fn start(replies: Vec<RecordedReply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("a bound address");
        let mut by_endpoint: HashMap<String, Vec<RecordedReply>> = HashMap::new();
        for reply in replies {
            by_endpoint
                .entry(reply.endpoint.clone())
                .or_default()
                .push(reply);
        }
        let state = Arc::new(Replay {
            by_endpoint,
            started: Instant::now(),
        });
        let counts = Counts::default();
        let task_counts = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (state, counts) = (state.clone(), task_counts.clone());
                tokio::spawn(async move { serve(stream, &state, &counts).await });
            }
        });
        ReplayServer { addr, counts, task }
    }

    /// The base URL to give the client: `http://127.0.0.1:PORT/ShareWebServices/Services/`.
    pub fn base_url(&self) -> String {
        format!("http://{}{SERVICES}", self.addr)
    }

    /// Requests made so far to `endpoint` (e.g. `General/AuthenticatePublisherAccount`).
    pub fn requests(&self, endpoint: &str) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the server replays, and since when.
struct Replay {
    by_endpoint: HashMap<String, Vec<RecordedReply>>,
    started: Instant,
}

impl Replay {
    /// Share's clock for `reply`: its recorded `Date` run on by the time since the server
    /// started (this host's clock for a reply recorded without one).
    fn date(&self, reply: Option<&RecordedReply>) -> String {
        let recorded = reply.and_then(RecordedReply::date);
        let now = recorded.map_or_else(SystemTime::now, |d| d + self.started.elapsed());
        httpdate::fmt_http_date(now)
    }
}

/// Answers the requests of one connection (kept alive, as Share keeps it) until it closes.
async fn serve(mut stream: TcpStream, replay: &Replay, counts: &Counts) {
    let mut buffer = Vec::new();
    while let Some(target) = read_request(&mut stream, &mut buffer).await {
        let path = target.split('?').next().unwrap_or_default();
        let endpoint = path.strip_prefix(SERVICES).unwrap_or(path).to_owned();
        let index = {
            let mut counts = counts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = counts.entry(endpoint.clone()).or_default();
            *n += 1;
            *n - 1
        };
        let answer = match replay.by_endpoint.get(&endpoint) {
            Some(replies) => {
                let reply = &replies[index.min(replies.len() - 1)];
                encode(reply, &replay.date(Some(reply)))
            }
            None => format!(
                "HTTP/1.1 404 Not Found\r\nDate: {}\r\nContent-Length: 0\r\n\r\n",
                replay.date(None)
            )
            .into_bytes(),
        };
        if stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// The recorded reply as bytes on the wire, its `Date` replaced by `date`.
fn encode(reply: &RecordedReply, date: &str) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reply.reason);
    for (name, values) in &reply.headers {
        for value in values {
            let value = if name.eq_ignore_ascii_case("date") {
                date
            } else {
                value
            };
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if reply.chunked() {
        if !reply.body.is_empty() {
            out.extend_from_slice(format!("{:x}\r\n", reply.body.len()).as_bytes());
            out.extend_from_slice(reply.body.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(reply.body.as_bytes());
    }
    out
}

/// Reads one request (head and `Content-Length` body) and returns its target; `None` once the
/// connection closes or sends something too large.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_REQUEST_BYTES || !fill(stream, buffer).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let target = head.split_whitespace().nth(1)?.to_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    if length > MAX_REQUEST_BYTES {
        return None;
    }
    while buffer.len() < head_end + length {
        if !fill(stream, buffer).await {
            return None;
        }
    }
    buffer.drain(..head_end + length);
    Some(target)
}

/// Reads what the peer sent next into `buffer`; false once it closed (or after 30 s idle).
async fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buffer.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}
