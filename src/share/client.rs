//! The HTTP client for the three Share endpoints, with the session life cycle.
//!
//! Login is two steps: `AuthenticatePublisherAccount` turns an account name into the account ID
//! (stable, cached for the life of the client) and `LoginPublisherAccountById` turns that ID into
//! a session ID. When a read fails with a session error we log in again once, by ID only, and
//! retry the read once: anything more would replay the password on every hiccup.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, DATE, HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::error::{ShareError, redact_excerpt};
use super::model::{Reading, parse_wire_readings};
use super::region::Endpoint;
use super::{MAX_COUNT, MAX_MINUTES};

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
}

impl std::fmt::Debug for ShareClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareClient")
            .field("base_url", &self.settings.base_url.as_str())
            .field("has_session", &self.session_id.is_some())
            .finish_non_exhaustive()
    }
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
        })
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
                Err(err)
            }
            other => other,
        }
    }

    async fn ensure_session(&mut self) -> Result<SecretString, ShareError> {
        if let Some(session) = &self.session_id {
            return Ok(session.clone());
        }
        self.observer.login_started();
        let account_id = match (self.account_id, &self.settings.login) {
            (Some(id), _) => id,
            (None, Login::AccountId(id)) => *id,
            (None, Login::Username(name)) => {
                let id = self.authenticate(name).await?;
                self.account_id = Some(id);
                id
            }
        };
        let session = self.login_by_id(account_id).await?;
        let session = SecretString::from(session.hyphenated().to_string());
        self.session_id = Some(session.clone());
        Ok(session)
    }

    async fn authenticate(&self, name: &str) -> Result<Uuid, ShareError> {
        let body = serde_json::json!({
            "accountName": name,
            "password": self.settings.password.expose_secret(),
            "applicationId": self.settings.application_id,
        });
        let bytes = self.post(Endpoint::Authenticate, &[], Some(body)).await?;
        parse_uuid_body(Endpoint::Authenticate, &bytes)
    }

    async fn login_by_id(&self, account_id: Uuid) -> Result<Uuid, ShareError> {
        let body = serde_json::json!({
            "accountId": account_id.hyphenated().to_string(),
            "password": self.settings.password.expose_secret(),
            "applicationId": self.settings.application_id,
        });
        let bytes = self.post(Endpoint::LoginById, &[], Some(body)).await?;
        parse_uuid_body(Endpoint::LoginById, &bytes)
    }

    async fn read(
        &self,
        session: &SecretString,
        minutes: u32,
        max_count: u32,
    ) -> Result<Vec<Reading>, ShareError> {
        let query = [
            ("sessionId", session.expose_secret().to_owned()),
            ("minutes", minutes.to_string()),
            ("maxCount", max_count.to_string()),
        ];
        let bytes = self.post(Endpoint::ReadGlucose, &query, None).await?;
        parse_wire_readings(&bytes).map_err(|error| ShareError::InvalidResponse {
            endpoint: Endpoint::ReadGlucose,
            detail: redact_excerpt(&error.to_string()),
        })
    }

    /// One POST; returns the body of a 2xx answer or the classified error.
    async fn post(
        &self,
        endpoint: Endpoint,
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> Result<bytes::Bytes, ShareError> {
        let url = self.settings.base_url.join(endpoint.path()).map_err(|e| {
            ShareError::InvalidRequest {
                detail: format!("cannot build the URL for {endpoint}: {e}"),
            }
        })?;
        let started = Instant::now();
        let result = self.exchange(endpoint, url, query, body).await;
        self.observer.request_finished(endpoint, started.elapsed());
        result
    }

    async fn exchange(
        &self,
        endpoint: Endpoint,
        url: reqwest::Url,
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> Result<bytes::Bytes, ShareError> {
        let request = self
            .http
            .post(url)
            .query(query)
            .json(&body.unwrap_or_else(|| serde_json::json!({})));
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?;
        let status = response.status();
        if let Some(date) = response
            .headers()
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
        {
            self.observer.server_date(date);
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?;
        if status.is_success() {
            return Ok(bytes);
        }
        if status.as_u16() == 429 {
            return Err(ShareError::RateLimited {
                endpoint,
                retry_after,
            });
        }
        match serde_json::from_slice::<Fault>(&bytes) {
            Ok(Fault {
                code: Some(code),
                message,
            }) => Err(ShareError::from_fault(
                endpoint,
                status.as_u16(),
                &code,
                message.as_deref().unwrap_or(""),
            )),
            _ => Err(ShareError::Server {
                endpoint,
                status: status.as_u16(),
                code: None,
                detail: redact_excerpt(&String::from_utf8_lossy(&bytes)),
            }),
        }
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

/// Parses a login answer: a JSON string holding a UUID that is not the nil UUID.
fn parse_uuid_body(endpoint: Endpoint, body: &[u8]) -> Result<Uuid, ShareError> {
    let text: String = serde_json::from_slice(body).map_err(|_| ShareError::InvalidResponse {
        endpoint,
        detail: format!(
            "expected a quoted UUID, got {}",
            redact_excerpt(&String::from_utf8_lossy(body))
        ),
    })?;
    let id = Uuid::parse_str(text.trim()).map_err(|_| ShareError::InvalidResponse {
        endpoint,
        detail: format!("expected a UUID, got {}", redact_excerpt(&text)),
    })?;
    if id.is_nil() {
        return Err(ShareError::NilUuid { endpoint });
    }
    Ok(id)
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

    #[test]
    fn uuid_bodies() {
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
