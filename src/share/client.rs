//! The HTTP client for the three Share endpoints, with the session life cycle.
//!
//! Login is two steps: `AuthenticatePublisherAccount` turns an account name into the account ID
//! (stable, cached for the life of the client) and `LoginPublisherAccountById` turns that ID into
//! a session ID. When a read fails with a session error we log in again once, by ID only, and
//! retry the read once: anything more would replay the password on every hiccup.
//!
//! This file holds the client and the read; logging in (behind the account's [`LoginGate`]) is
//! in `login.rs`, one request and the meaning of its answer (size cap, no redirects, no
//! `Referer`, classification) in `transport.rs`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::error::{ShareError, redact_excerpt};
use super::gate::{GateState, GateStore, Hold, LoginGate, StoreFault};
use super::model::{Reading, WireBatch, parse_wire_readings};
use super::region::Endpoint;
use super::{MAX_MINUTES, MAX_ROWS};
use crate::clock::{Clock, SystemClock, from_unix_ms};

/// The largest answer read from Share: a full day of readings is about 30 KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// bcrypt cost of the password fingerprint kept in the state directory: slow enough that the
/// file does not give the password away, fast enough (tens of ms) to check once per start.
pub(super) const FINGERPRINT_COST: u32 = 10;

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
    /// When the answer arrived, on the client's monotonic clock ([`crate::clock::Clock::monotonic`]):
    /// with Share's time then, it dates the readings the answer carried.
    pub answered: Duration,
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
    /// A login (one or two requests) was made and its password left the process (a login
    /// that could not connect is not reported).
    fn login_started(&self);
    /// A request to `endpoint` finished (successfully or not) after `elapsed`.
    fn request_finished(&self, endpoint: Endpoint, elapsed: Duration);
    /// Share answered with this `Date` header to a request sent at `sent` and answered at
    /// `answered` (both on the client's monotonic clock): Share's clock, to compare with ours.
    fn server_date(&self, _date: std::time::SystemTime, _sent: Duration, _answered: Duration) {}
}

struct NoObserver;

impl ClientObserver for NoObserver {
    fn login_started(&self) {}
    fn request_finished(&self, _: Endpoint, _: Duration) {}
}

/// A client for one publisher account. Not shared: each account's poller owns one.
pub struct ShareClient {
    pub(super) http: reqwest::Client,
    pub(super) settings: ClientSettings,
    pub(super) account_id: Option<Uuid>,
    pub(super) session_id: Option<SecretString>,
    pub(super) observer: Arc<dyn ClientObserver>,
    pub(super) gate: LoginGate,
    pub(super) gate_store: Option<Arc<dyn GateStore>>,
    /// Set while the gate's memory cannot be read or written: no password leaves until it can
    /// (fail closed); every login first tries again.
    pub(super) store_fault: Option<StoreFault>,
    /// The fault the log has said, so an episode is said once, not at every retry.
    pub(super) said_fault: Option<super::gate::StoreFaultKind>,
    pub(super) clock: Arc<dyn Clock>,
    /// Whether the saved state's fingerprint has been compared with this password yet.
    pub(super) fingerprint_checked: bool,
    /// Whether the log has said that Share ends sessions right after login.
    pub(super) said_instant_expiry: bool,
    /// Logins whose password left the process.
    pub(super) logins_sent: u64,
}

impl std::fmt::Debug for ShareClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareClient")
            .field("base_url", &self.settings.base_url.as_str())
            .field("has_session", &self.session_id.is_some())
            .finish_non_exhaustive()
    }
}

impl ShareClient {
    /// Builds a client. No request is made until the first read.
    ///
    /// # Errors
    /// [`ShareError::ClientBuild`] if the TLS backend cannot be initialised.
    pub fn new(settings: ClientSettings) -> Result<Self, ShareError> {
        let http = http_client(settings.connect_timeout, settings.request_timeout)?;
        Ok(Self::with_http(settings, http))
    }

    /// A client on a shared connection pool (see [`http_client`]): many accounts then use as
    /// many connections to Share as poll at once, not one each.
    pub(crate) fn with_http(settings: ClientSettings, http: reqwest::Client) -> Self {
        let account_id = match &settings.login {
            Login::AccountId(id) => Some(*id),
            Login::Username(_) => None,
        };
        ShareClient {
            http,
            settings,
            account_id,
            session_id: None,
            observer: Arc::new(NoObserver),
            gate: LoginGate::new(GateState::default(), DEFAULT_INTERVAL),
            gate_store: None,
            store_fault: None,
            said_fault: None,
            clock: Arc::new(SystemClock),
            fingerprint_checked: false,
            said_instant_expiry: false,
            logins_sent: 0,
        }
    }

    /// Puts the login gate on the host's `clock` and the sensor cadence `interval`, kept in memory only
    /// (a client without a state directory, as in the tests).
    pub fn with_gate(self, interval: Duration, clock: Arc<dyn Clock>) -> Self {
        self.with_saved_gate(interval, None, clock)
    }

    /// Puts the login gate on the host's `clock` and the sensor cadence `interval`, starting from what
    /// `store` saved (if anything) and saving every change there.
    pub(crate) fn with_saved_gate(
        mut self,
        interval: Duration,
        store: Option<Arc<dyn GateStore>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        self.gate = LoginGate::new(GateState::default(), interval);
        self.gate_store = store;
        self.clock = clock;
        self.reload_gate();
        self
    }

    /// Reads the gate's memory from its store (after a fault: again); on failure the
    /// password is held (fail closed).
    pub(super) fn reload_gate(&mut self) {
        let Some(store) = self.gate_store.clone() else {
            return;
        };
        let interval = self.gate.interval();
        let saved = match store.load() {
            Ok(saved) => saved.unwrap_or_default(),
            Err(fault) => {
                self.hold_for(fault);
                return;
            }
        };
        let in_flight = saved.in_flight_ms.is_some();
        self.gate = LoginGate::restore(saved, interval, self.clock.now_ms());
        self.fingerprint_checked = false;
        let saved = if in_flight {
            // The previous run ended mid-login: the count is made once, here.
            store.save(self.gate.state())
        } else {
            Ok(())
        };
        match saved {
            // A duplicate is for the life of the process; a file read again is no longer
            // unreadable (an unwritable one is cleared only by a save that succeeds).
            Ok(()) => {
                if matches!(self.store_fault, Some(StoreFault::Unreadable { .. })) {
                    self.store_fault = None;
                }
            }
            Err(fault) => self.hold_for(fault),
        }
    }

    /// Holds the password because the gate's memory cannot be kept; said once per episode.
    pub(super) fn hold_for(&mut self, fault: StoreFault) {
        if self.said_fault != Some(fault.kind()) {
            self.said_fault = Some(fault.kind());
            if matches!(fault, StoreFault::Duplicate { .. }) {
                tracing::error!(error = %fault, "this entry stops logging in: list each Dexcom account once in the configuration");
                self.store_fault = Some(fault);
                return;
            }
            tracing::error!(error = %fault, "the password is held until the login gate's memory can be kept: a login that cannot be counted could lock the Dexcom account. Check the state directory: free space, a writable disk, the files' owner (a file written by root is given to the directory's owner)");
        }
        self.store_fault = Some(fault);
    }

    /// When the next read needs a login and the gate holds it back: the earliest time the
    /// password may go. `None` when a login may start now, or when a live session needs none.
    pub fn login_not_before(&self) -> Option<std::time::SystemTime> {
        self.login_hold().map(|hold| from_unix_ms(hold.until_ms))
    }

    /// Why and until when the login gate holds the password, when the next read needs a
    /// login it holds back.
    pub(crate) fn login_hold(&self) -> Option<Hold> {
        if self.session_id.is_some() {
            return None;
        }
        let now = self.gate_now();
        let now_ms = now.wall_ms;
        if let Some(fault) = &self.store_fault {
            // Tried again at the next poll, one interval on.
            let interval_ms = i64::try_from(self.gate.interval().as_millis()).unwrap_or(i64::MAX);
            return Some(Hold {
                until_ms: self
                    .gate
                    .next_allowed_ms(now)
                    .max(now_ms.saturating_add(interval_ms)),
                after: None,
                failures_today: 0,
                failures_in_a_row: self.gate.state().failures_in_a_row,
                fault: Some(fault.kind()),
            });
        }
        self.gate.hold(now)
    }

    /// Now, for the login gate: the host's wall clock (what its saved times are in) and the
    /// monotonic clock (what its in-process limit is in).
    pub(super) fn gate_now(&self) -> super::gate::GateNow {
        super::gate::GateNow {
            wall_ms: self.clock.now_ms(),
            mono_ms: self.clock.monotonic_ms(),
        }
    }

    /// Forgets the identity's failures in a row (`check --reset-gate`) and saves that.
    ///
    /// # Errors
    /// [`StoreFault`] when the state cannot be read or saved.
    pub async fn reset_gate(&mut self) -> Result<u32, StoreFault> {
        // Unreadable: the person chose to start afresh, and the file is replaced below.
        // Unwritable: nothing can be reset.
        if let Some(fault @ StoreFault::Unwritable { .. }) = &self.store_fault {
            return Err(fault.clone());
        }
        self.store_fault = None;
        let forgotten = self.gate.state().failures_in_a_row;
        self.gate.reset_failures();
        self.save_gate().await?;
        Ok(forgotten)
    }

    /// Logins made so far whose password left the process.
    pub fn logins_sent(&self) -> u64 {
        self.logins_sent
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
    /// 1–576 (nothing is sent); otherwise whatever the exchange produced, classified.
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
        if !(1..=MAX_ROWS).contains(&max_count) {
            return Err(ShareError::InvalidRequest {
                detail: format!("maxCount must be 1–{MAX_ROWS}, got {max_count}"),
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
            answered: answer.answered,
        })
    }
}

/// The HTTP client Share requests go through: JSON headers, our `User-Agent`, the timeouts,
/// no redirects (a redirect would carry the password elsewhere), no `Referer`. Holds no
/// per-account state (sessions travel in the query and body, never in cookies), so one can
/// serve every account.
///
/// # Errors
/// [`ShareError::ClientBuild`] if the TLS backend cannot be initialised.
pub fn http_client(
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, ShareError> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .default_headers(headers)
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .map_err(|source| ShareError::ClientBuild { source })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn client(password: &str) -> ShareClient {
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
