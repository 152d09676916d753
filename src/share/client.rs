//! The HTTP client for the three Share endpoints, with the session life cycle.
//!
//! Login is two steps: `AuthenticatePublisherAccount` turns an account name into the account ID
//! (stable, cached for the life of the client) and `LoginPublisherAccountById` turns that ID into
//! a session ID. When a read fails with a session error we log in again once, by ID only, and
//! retry the read once: anything more would replay the password on every hiccup.
//!
//! Both login requests carry the password, so both go through the account's [`LoginGate`]
//! (`gate.rs`): the login methods cannot be called without the permit it hands out, and each
//! request's outcome is recorded before anything else happens. Answers are read with a size cap,
//! redirects are refused (a redirect would carry the password, or the session ID, to another
//! host) and no `Referer` is sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, DATE, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::error::{ShareError, redact_excerpt};
use super::gate::{GateClosed, GateState, GateStore, LoginGate, LoginOutcome, LoginPermit};
use super::model::{Reading, WireBatch, parse_wire_readings};
use super::region::Endpoint;
use super::{MAX_COUNT, MAX_MINUTES};
use crate::clock::{Clock, SystemClock, from_unix_ms};

/// The largest answer read from Share: a full day of readings is about 30 KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// bcrypt cost of the password fingerprint kept in the state directory: slow enough that the
/// file does not give the password away, fast enough (tens of ms) to check once per start.
const FINGERPRINT_COST: u32 = 10;

/// The sensor cadence a client's gate assumes until told otherwise.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// One readings answer: the usable readings (newest sensor time first), the rows that were
/// skipped, and Share's clock when it answered.
#[derive(Debug, Clone, Default)]
pub struct ReadBatch {
    /// The rows, parsed one by one.
    pub batch: WireBatch,
    /// Share's `Date` header, if it sent one.
    pub server_date: Option<std::time::SystemTime>,
}

/// The `User-Agent` sent to Share: the exporter's name and version.
pub const USER_AGENT: &str = concat!("dexcom_exporter/", env!("CARGO_PKG_VERSION"));

/// How the publisher identifies itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// Username, e-mail or `+<country><number>` phone, resolved by `AuthenticatePublisherAccount`.
    Username(String),
    /// The account ID (a UUID), for accounts that log in with e-mail or phone.
    AccountId(Uuid),
}

/// Everything needed to build a [`ShareClient`].
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Base URL ending in `/ShareWebServices/Services/` (the region's, or an override).
    pub base_url: reqwest::Url,
    /// The application ID sent in login bodies.
    pub application_id: String,
    /// The publisher's login.
    pub login: Login,
    /// The publisher's password; `Debug` prints it redacted.
    pub password: SecretString,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on a whole request, response body included.
    pub request_timeout: Duration,
}

/// Notified of every request, so the exporter can count logins and time requests without the
/// client knowing about Prometheus.
pub trait ClientObserver: Send + Sync {
    /// A login (one or two requests) is about to start.
    fn login_started(&self);
    /// A request to `endpoint` finished (successfully or not) after `elapsed`.
    fn request_finished(&self, endpoint: Endpoint, elapsed: Duration);
    /// Share answered with this `Date` header: its clock, to compare with ours.
    fn server_date(&self, _date: std::time::SystemTime) {}
}

struct NoObserver;

impl ClientObserver for NoObserver {
    fn login_started(&self) {}
    fn request_finished(&self, _: Endpoint, _: Duration) {}
}

/// A client for one publisher account. Not shared: each account's poller owns one.
pub struct ShareClient {
    http: reqwest::Client,
    settings: ClientSettings,
    account_id: Option<Uuid>,
    session_id: Option<SecretString>,
    observer: Arc<dyn ClientObserver>,
    gate: LoginGate,
    gate_store: Option<Arc<dyn GateStore>>,
    clock: Arc<dyn Clock>,
    /// Whether the saved state's fingerprint has been compared with this password yet.
    fingerprint_checked: bool,
    /// Whether the log has said that Share ends sessions right after login.
    said_instant_expiry: bool,
}

impl std::fmt::Debug for ShareClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareClient")
            .field("base_url", &self.settings.base_url.as_str())
            .field("has_session", &self.session_id.is_some())
            .finish_non_exhaustive()
    }
}

/// An answer from Share: its status, body (at most [`MAX_BODY_BYTES`]) and clock.
struct Answer {
    status: reqwest::StatusCode,
    bytes: bytes::Bytes,
    date: Option<std::time::SystemTime>,
    retry_after: Option<Duration>,
}

/// The JSON fault envelope of Share errors.
#[derive(Deserialize)]
struct Fault {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
}

impl ShareClient {
    /// Builds a client. No request is made until the first read.
    ///
    /// # Errors
    /// [`ShareError::ClientBuild`] if the TLS backend cannot be initialised.
    pub fn new(settings: ClientSettings) -> Result<Self, ShareError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .build()
            .map_err(|source| ShareError::ClientBuild { source })?;
        let account_id = match &settings.login {
            Login::AccountId(id) => Some(*id),
            Login::Username(_) => None,
        };
        Ok(ShareClient {
            http,
            settings,
            account_id,
            session_id: None,
            observer: Arc::new(NoObserver),
            gate: LoginGate::new(GateState::default(), DEFAULT_INTERVAL),
            gate_store: None,
            clock: Arc::new(SystemClock),
            fingerprint_checked: false,
            said_instant_expiry: false,
        })
    }

    /// Puts the login gate on `clock` and the sensor cadence `interval`, starting from what
    /// `store` saved (if anything) and saving every change there.
    pub fn with_gate(
        mut self,
        interval: Duration,
        store: Option<Arc<dyn GateStore>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let saved = store.as_ref().and_then(|s| s.load()).unwrap_or_default();
        self.gate = LoginGate::new(saved, interval);
        self.gate_store = store;
        self.clock = clock;
        self
    }

    /// The earliest time the gate lets the next password-bearing request go, when that is
    /// later than now; `None` when a login may start now.
    pub fn login_not_before(&self) -> Option<std::time::SystemTime> {
        let now = self.clock.now_ms();
        let at = self.gate.next_allowed_ms(now);
        (at > now).then(|| from_unix_ms(at))
    }

    /// Whether the client holds a session (the next read needs no login).
    pub fn has_session(&self) -> bool {
        self.session_id.is_some()
    }

    /// Attaches an observer for logins and request timings.
    pub fn with_observer(mut self, observer: Arc<dyn ClientObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Reads up to `max_count` readings from the last `minutes`, newest first, logging in
    /// first if needed. On a session error: one re-login by account ID and one retry.
    ///
    /// # Errors
    /// [`ShareError::InvalidRequest`] for `minutes` outside 1–1440 or `max_count` outside
    /// 1–288 (nothing is sent); otherwise whatever the exchange produced, classified.
    pub async fn latest_readings(
        &mut self,
        minutes: u32,
        max_count: u32,
    ) -> Result<Vec<Reading>, ShareError> {
        self.latest_batch(minutes, max_count)
            .await
            .map(|read| read.batch.readings)
    }

    /// As [`ShareClient::latest_readings`], with the rows that were skipped and Share's clock.
    ///
    /// # Errors
    /// As [`ShareClient::latest_readings`].
    pub async fn latest_batch(
        &mut self,
        minutes: u32,
        max_count: u32,
    ) -> Result<ReadBatch, ShareError> {
        if !(1..=MAX_MINUTES).contains(&minutes) {
            return Err(ShareError::InvalidRequest {
                detail: format!("minutes must be 1–{MAX_MINUTES}, got {minutes}"),
            });
        }
        if !(1..=MAX_COUNT).contains(&max_count) {
            return Err(ShareError::InvalidRequest {
                detail: format!("maxCount must be 1–{MAX_COUNT}, got {max_count}"),
            });
        }
        let fresh_session = self.session_id.is_none();
        let session = self.ensure_session().await?;
        match self.read(&session, minutes, max_count).await {
            Err(ShareError::SessionExpired { code }) if !fresh_session => {
                tracing::info!(code, "Share session ended, logging in again by account ID");
                self.session_id = None;
                let session = self.ensure_session().await?;
                self.read(&session, minutes, max_count).await
            }
            Err(err @ ShareError::SessionExpired { .. }) => {
                self.session_id = None;
                if !self.said_instant_expiry {
                    self.said_instant_expiry = true;
                    tracing::warn!(
                        "Dexcom Share ended a session right after the login that made it; logging in again at most once per reading interval and 12 times an hour"
                    );
                }
                Err(err)
            }
            other => other,
        }
    }

    async fn ensure_session(&mut self) -> Result<SecretString, ShareError> {
        if let Some(session) = &self.session_id {
            return Ok(session.clone());
        }
        self.check_fingerprint().await;
        let permit = self
            .gate
            .open(self.clock.now_ms())
            .map_err(|closed| self.deferred(closed))?;
        self.observer.login_started();
        let result = self.login(&permit).await;
        self.save_gate().await;
        let session = SecretString::from(result?.hyphenated().to_string());
        self.session_id = Some(session.clone());
        Ok(session)
    }

    /// The login requests, each recorded with the gate as soon as it ends.
    async fn login(&mut self, permit: &LoginPermit) -> Result<Uuid, ShareError> {
        let account_id = match (self.account_id, &self.settings.login) {
            (Some(id), _) => id,
            (None, Login::AccountId(id)) => *id,
            (None, Login::Username(name)) => {
                let name = name.clone();
                let result = self.authenticate(permit, &name).await;
                self.gate
                    .record(permit, self.clock.now_ms(), login_outcome(&result));
                let id = result?;
                self.account_id = Some(id);
                id
            }
        };
        let result = self.login_by_id(permit, account_id).await;
        self.gate
            .record(permit, self.clock.now_ms(), login_outcome(&result));
        result
    }

    fn deferred(&self, closed: GateClosed) -> ShareError {
        ShareError::LoginDeferred {
            until: from_unix_ms(closed.until_ms),
            confirmed: self.gate.confirmed(),
        }
    }

    /// Once per client: a saved state about a different password (the user fixed it) is
    /// dropped, so the new password is tried at once.
    async fn check_fingerprint(&mut self) {
        if std::mem::replace(&mut self.fingerprint_checked, true) {
            return;
        }
        let Some(fingerprint) = self.gate.state().fingerprint.clone() else {
            return;
        };
        let password = self.settings.password.clone();
        let same = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.expose_secret(), &fingerprint).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !same {
            if !self.gate.state().failures_ms.is_empty() {
                tracing::info!(
                    "the password differs from the one Dexcom Share refused before: trying it now"
                );
            }
            self.gate = LoginGate::new(GateState::default(), self.gate_interval());
        }
    }

    fn gate_interval(&self) -> Duration {
        self.gate.interval()
    }

    /// Saves the gate's state with a fingerprint of this password, off the async workers
    /// (bcrypt and fsync are slow).
    async fn save_gate(&mut self) {
        let Some(store) = self.gate_store.clone() else {
            return;
        };
        if self.gate.state().fingerprint.is_none() {
            let password = self.settings.password.clone();
            let hashed = tokio::task::spawn_blocking(move || {
                bcrypt::hash(password.expose_secret(), FINGERPRINT_COST).ok()
            })
            .await
            .ok()
            .flatten();
            if let Some(fingerprint) = hashed {
                self.gate.set_fingerprint(fingerprint);
            }
        }
        let state = self.gate.state().clone();
        let _ = tokio::task::spawn_blocking(move || store.save(&state)).await;
    }

    async fn authenticate(&self, _permit: &LoginPermit, name: &str) -> Result<Uuid, ShareError> {
        let body = serde_json::json!({
            "accountName": name,
            "password": self.settings.password.expose_secret(),
            "applicationId": self.settings.application_id,
        });
        let answer = self.post(Endpoint::Authenticate, &[], Some(body)).await?;
        self.parse_uuid_body(Endpoint::Authenticate, &answer.bytes)
    }

    async fn login_by_id(
        &self,
        _permit: &LoginPermit,
        account_id: Uuid,
    ) -> Result<Uuid, ShareError> {
        let body = serde_json::json!({
            "accountId": account_id.hyphenated().to_string(),
            "password": self.settings.password.expose_secret(),
            "applicationId": self.settings.application_id,
        });
        let answer = self.post(Endpoint::LoginById, &[], Some(body)).await?;
        self.parse_uuid_body(Endpoint::LoginById, &answer.bytes)
    }

    async fn read(
        &self,
        session: &SecretString,
        minutes: u32,
        max_count: u32,
    ) -> Result<ReadBatch, ShareError> {
        let query = [
            ("sessionId", session.expose_secret().to_owned()),
            ("minutes", minutes.to_string()),
            ("maxCount", max_count.to_string()),
        ];
        let answer = self.post(Endpoint::ReadGlucose, &query, None).await?;
        let batch =
            parse_wire_readings(&answer.bytes).map_err(|error| ShareError::InvalidResponse {
                endpoint: Endpoint::ReadGlucose,
                detail: redact_excerpt(&error.to_string()),
            })?;
        Ok(ReadBatch {
            batch,
            server_date: answer.date,
        })
    }

    /// One POST; returns a 2xx answer or the classified error.
    async fn post(
        &self,
        endpoint: Endpoint,
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> Result<Answer, ShareError> {
        let url = self.settings.base_url.join(endpoint.path()).map_err(|e| {
            ShareError::InvalidRequest {
                detail: format!("cannot build the URL for {endpoint}: {e}"),
            }
        })?;
        let started = Instant::now();
        let result = self.exchange(endpoint, url, query, body).await;
        self.observer.request_finished(endpoint, started.elapsed());
        let answer = result?;
        if answer.status.is_success() {
            return Ok(answer);
        }
        Err(self.classify(endpoint, answer))
    }

    async fn exchange(
        &self,
        endpoint: Endpoint,
        url: reqwest::Url,
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> Result<Answer, ShareError> {
        let request = self
            .http
            .post(url)
            .query(query)
            .json(&body.unwrap_or_else(|| serde_json::json!({})));
        let mut response = request
            .send()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?;
        let status = response.status();
        let date = response
            .headers()
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        if let Some(date) = date {
            self.observer.server_date(date);
        }
        if status.is_redirection() {
            // Never followed: it would re-send the body (the password) or the session ID.
            let target = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| self.settings.base_url.join(v).ok())
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "an unnamed host".to_owned());
            return Err(ShareError::Redirected {
                endpoint,
                status: status.as_u16(),
                target,
            });
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let too_large = || ShareError::InvalidResponse {
            endpoint,
            detail: format!("the answer is larger than {} KiB", MAX_BODY_BYTES / 1024),
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut bytes = bytes::BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?
        {
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            bytes: bytes.freeze(),
            date,
            retry_after,
        })
    }

    /// Turns a non-2xx answer into an error. The body is scrubbed of the password first: a
    /// server or proxy that echoes the request must not put it into a log line.
    fn classify(&self, endpoint: Endpoint, answer: Answer) -> ShareError {
        if answer.status.as_u16() == 429 {
            return ShareError::RateLimited {
                endpoint,
                retry_after: answer.retry_after,
            };
        }
        let text = self.scrub(&String::from_utf8_lossy(&answer.bytes));
        match serde_json::from_str::<Fault>(&text) {
            Ok(Fault {
                code: Some(code),
                message,
            }) => ShareError::from_fault(
                endpoint,
                answer.status.as_u16(),
                &code,
                message.as_deref().unwrap_or(""),
            ),
            _ => ShareError::Server {
                endpoint,
                status: answer.status.as_u16(),
                code: None,
                detail: redact_excerpt(&text),
            },
        }
    }

    /// `text` with the password (raw and JSON-escaped) replaced.
    fn scrub(&self, text: &str) -> String {
        let password = self.settings.password.expose_secret();
        if password.is_empty() {
            return text.to_owned();
        }
        let escaped = serde_json::to_string(password).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        let mut out = text.replace(password, "<password>");
        if !escaped.is_empty() && escaped != password {
            out = out.replace(escaped, "<password>");
        }
        out
    }

    /// Parses a login answer: a JSON string holding a UUID that is not the nil UUID.
    fn parse_uuid_body(&self, endpoint: Endpoint, body: &[u8]) -> Result<Uuid, ShareError> {
        let text: String =
            serde_json::from_slice(body).map_err(|_| ShareError::InvalidResponse {
                endpoint,
                detail: format!(
                    "expected a quoted UUID, got {}",
                    redact_excerpt(&self.scrub(&String::from_utf8_lossy(body)))
                ),
            })?;
        let id = Uuid::parse_str(text.trim()).map_err(|_| ShareError::InvalidResponse {
            endpoint,
            detail: format!(
                "expected a UUID, got {}",
                redact_excerpt(&self.scrub(&text))
            ),
        })?;
        if id.is_nil() {
            return Err(ShareError::NilUuid { endpoint });
        }
        Ok(id)
    }

    fn transport_error(&self, endpoint: Endpoint, error: reqwest::Error) -> ShareError {
        // The URL can carry the session ID in its query: drop it before it reaches any text.
        let error = error.without_url();
        if error.is_timeout() {
            ShareError::Timeout {
                endpoint,
                timeout: self.settings.request_timeout,
            }
        } else {
            ShareError::Connection {
                endpoint,
                source: error,
            }
        }
    }
}

/// How a login request's result counts against the account.
fn login_outcome<T>(result: &Result<T, ShareError>) -> LoginOutcome {
    match result {
        Ok(_) => LoginOutcome::Accepted,
        Err(ShareError::AuthFailed { .. } | ShareError::NilUuid { .. }) => LoginOutcome::Rejected,
        Err(ShareError::InvalidArgument { .. }) => LoginOutcome::Rejected,
        Err(ShareError::LockedOut { .. }) => LoginOutcome::LockedOut,
        Err(ShareError::Connection { source, .. }) if source.is_connect() => LoginOutcome::NotSent,
        Err(
            ShareError::InvalidRequest { .. }
            | ShareError::ClientBuild { .. }
            | ShareError::LoginDeferred { .. },
        ) => LoginOutcome::NotSent,
        Err(_) => LoginOutcome::Ambiguous,
    }
}

/// `Retry-After` as delay-seconds; an HTTP date is turned into the time left until then.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(password: &str) -> ShareClient {
        ShareClient::new(ClientSettings {
            base_url: "https://share.example/ShareWebServices/Services/"
                .parse()
                .unwrap(),
            application_id: "app".into(),
            login: Login::Username("kid".into()),
            password: password.to_owned().into(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        })
        .unwrap()
    }

    #[test]
    fn uuid_bodies() {
        let client = client("hunter22");
        let parse_uuid_body = |endpoint, body: &[u8]| client.parse_uuid_body(endpoint, body);
        let ok = parse_uuid_body(
            Endpoint::LoginById,
            br#""55555555-5555-5555-5555-555555555555""#,
        );
        assert_eq!(
            ok.unwrap().to_string(),
            "55555555-5555-5555-5555-555555555555"
        );
        let nil = parse_uuid_body(
            Endpoint::LoginById,
            br#""00000000-0000-0000-0000-000000000000""#,
        );
        assert!(matches!(nil, Err(ShareError::NilUuid { .. })));
        let bare = parse_uuid_body(
            Endpoint::Authenticate,
            b"55555555-5555-5555-5555-555555555555",
        );
        assert!(matches!(bare, Err(ShareError::InvalidResponse { .. })));
        let junk = parse_uuid_body(Endpoint::Authenticate, br#""hello""#);
        assert!(matches!(junk, Err(ShareError::InvalidResponse { .. })));
        let echo = parse_uuid_body(
            Endpoint::Authenticate,
            br#"<html>bad request: {"password":"hunter22"}</html>"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            !echo.contains("hunter22") && echo.contains("<password>"),
            "{echo}"
        );
    }

    #[test]
    fn error_text_never_echoes_the_password() {
        let client = client("p\"w");
        for body in [
            r#"{"Code":"Weird","Message":"you sent p\"w"}"#,
            "echo: p\"w",
            r#"{"password":"p\\\"w"}"#,
        ] {
            let error = client.classify(
                Endpoint::LoginById,
                Answer {
                    status: reqwest::StatusCode::BAD_REQUEST,
                    bytes: bytes::Bytes::from(body.to_owned()),
                    date: None,
                    retry_after: None,
                },
            );
            let text = error.to_string();
            assert!(!text.contains("p\"w") && !text.contains("p\\\"w"), "{text}");
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("35"), Some(Duration::from_secs(35)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let settings = ClientSettings {
            base_url: reqwest::Url::parse("http://127.0.0.1:1/ShareWebServices/Services/").unwrap(),
            application_id: "app".into(),
            login: Login::Username("alice".into()),
            password: SecretString::from("hunter2-secret"),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        };
        assert!(!format!("{settings:?}").contains("hunter2-secret"));
        let client = ShareClient::new(settings).unwrap();
        assert!(!format!("{client:?}").contains("hunter2-secret"));
    }
}
