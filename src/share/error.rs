//! What can go wrong when talking to Share, classified so the poller can act on it.
//!
//! Share answers almost every failure with HTTP 500, so the status code alone says nothing:
//! a wrong password must never be retried like an outage (Dexcom locks accounts after repeated
//! failures). Each variant maps to one [`ErrorReason`], the `reason` label of
//! `dexcom_poll_errors_total`. Error text never contains the password or a session ID: server
//! messages are passed through [`redact_excerpt`] first.
//!
//! Share sits behind Cloudflare, which answers some requests itself (a challenge page, its 1015
//! rate-limit page, its 52x origin errors): those are [`ShareError::Edge`], never a verdict on
//! the password, with reasons of their own (`edge_challenge`, `edge_rate_limited`,
//! `edge_error`) so a person can tell the web front from Share and from their own setup.

use std::fmt;
use std::time::Duration;

use super::region::Endpoint;

/// The stable classification of a failed poll, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorReason {
    /// Share rejected the credentials (or the region is wrong).
    AuthFailed,
    /// Share locked the account after too many failed logins.
    LockedOut,
    /// The session was unknown or expired, even after one re-login.
    SessionExpired,
    /// Share answered HTTP 429.
    RateLimited,
    /// Share failed on its side: 5xx without a known code, HTML or empty bodies.
    ServerError,
    /// No answer within the request timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// Share answered, but not in a form we understand.
    InvalidResponse,
    /// Dexcom's web front (Cloudflare) answered with a challenge for browsers (`cf-mitigated:
    /// challenge`, "Just a moment…"); never retried sooner than an interval.
    EdgeChallenge,
    /// Dexcom's web front (Cloudflare) is rate limiting this address (its error 1015 page).
    EdgeRateLimited,
    /// Dexcom's web front (Cloudflare) failed to get Share's answer: its 52x origin errors, or
    /// any 5xx whose body is not Share's JSON.
    EdgeError,
}

impl ErrorReason {
    /// Every reason, so that counters can start at zero for each.
    pub const ALL: [ErrorReason; 11] = [
        ErrorReason::AuthFailed,
        ErrorReason::LockedOut,
        ErrorReason::SessionExpired,
        ErrorReason::RateLimited,
        ErrorReason::ServerError,
        ErrorReason::Timeout,
        ErrorReason::Connection,
        ErrorReason::InvalidResponse,
        ErrorReason::EdgeChallenge,
        ErrorReason::EdgeRateLimited,
        ErrorReason::EdgeError,
    ];

    /// The label value (`auth_failed`, `locked_out`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::AuthFailed => "auth_failed",
            ErrorReason::LockedOut => "locked_out",
            ErrorReason::SessionExpired => "session_expired",
            ErrorReason::RateLimited => "rate_limited",
            ErrorReason::ServerError => "server_error",
            ErrorReason::Timeout => "timeout",
            ErrorReason::Connection => "connection",
            ErrorReason::InvalidResponse => "invalid_response",
            ErrorReason::EdgeChallenge => "edge_challenge",
            ErrorReason::EdgeRateLimited => "edge_rate_limited",
            ErrorReason::EdgeError => "edge_error",
        }
    }

    /// Whether the failure concerns the credentials, which must never be retried quickly.
    pub fn is_credential_failure(self) -> bool {
        matches!(self, ErrorReason::AuthFailed | ErrorReason::LockedOut)
    }

    /// Whether Dexcom's web front (Cloudflare), not Share, answered.
    pub fn is_edge(self) -> bool {
        matches!(
            self,
            ErrorReason::EdgeChallenge | ErrorReason::EdgeRateLimited | ErrorReason::EdgeError
        )
    }
}

/// What Dexcom's web front (Cloudflare) answered on its own, in place of Share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeAnswer {
    /// A challenge page for browsers: HTTP 403 "Just a moment…", or any answer with
    /// `cf-mitigated: challenge`.
    Challenge,
    /// Its rate-limit page, error 1015 (HTTP 429, sometimes 403).
    RateLimited,
    /// It could not get Share's answer: 520–526, or another 5xx whose body is not Share's JSON.
    Failed,
}

impl EdgeAnswer {
    /// The reason this answer is counted under.
    pub fn reason(self) -> ErrorReason {
        match self {
            EdgeAnswer::Challenge => ErrorReason::EdgeChallenge,
            EdgeAnswer::RateLimited => ErrorReason::EdgeRateLimited,
            EdgeAnswer::Failed => ErrorReason::EdgeError,
        }
    }
}

/// What Cloudflare's own status codes mean, in words (its documented 52x errors).
fn edge_status_words(status: u16) -> &'static str {
    match status {
        520 => "Share's servers gave it an answer it could not use",
        521 => "Share's servers refused its connection",
        522 => "its connection to Share's servers timed out",
        523 => "it could not route to Share's servers",
        524 => "Share's servers took too long to answer",
        525 => "its TLS handshake with Share's servers failed",
        526 => "Share's servers showed it an invalid certificate",
        _ => "the page it served is not Share's answer",
    }
}

fn edge_text(answer: EdgeAnswer, status: u16, retry_after: Option<Duration>) -> String {
    match answer {
        EdgeAnswer::Challenge => format!("a challenge page meant for browsers (HTTP {status})"),
        EdgeAnswer::RateLimited => format!(
            "its rate-limit page, error 1015 (HTTP {status}){}",
            retry_after_text(retry_after)
        ),
        EdgeAnswer::Failed => format!("HTTP {status}: {}", edge_status_words(status)),
    }
}

impl fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed exchange with Dexcom Share.
#[derive(Debug, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "a field is named for what it holds, and the #[error] message shows it in context"
)]
pub enum ShareError {
    /// Share rejected the credentials: `AccountPasswordInvalid`, `SSO_InternalError` with
    /// "Cannot Authenticate…", or a legacy `SSO_Authenticate*` code. A wrong region looks the same.
    #[error(
        "Dexcom Share rejected the login ({code} on {endpoint}): check the username or account ID, \
         the password, the region (us, ous or jp) and that these are the publisher's credentials, \
         not a follower's"
    )]
    AuthFailed {
        /// The endpoint that rejected the login.
        endpoint: Endpoint,
        /// The Share error code.
        code: String,
    },
    /// A login answered with the all-zero UUID, which is how Share reports a silent failure.
    #[error(
        "Dexcom Share answered {endpoint} with the all-zero ID, i.e. the login failed: check the \
         username or account ID, the password and the region"
    )]
    NilUuid {
        /// The endpoint that answered with the nil UUID.
        endpoint: Endpoint,
    },
    /// Share locked the account after too many failed logins (`SSO_AuthenticateMaxAttempts…`).
    #[error(
        "Dexcom Share locked the account after too many failed logins ({code}): wait at least an \
         hour, then check the credentials and region before logging in again"
    )]
    LockedOut {
        /// The Share error code, as spelled by the server.
        code: String,
    },
    /// The session ID is unknown or expired (`SessionIdNotFound`, `SessionNotValid`).
    #[error("Dexcom Share no longer accepts the session ({code})")]
    SessionExpired {
        /// The Share error code.
        code: String,
    },
    /// Share rejected our request's arguments (`InvalidArgument`); from a login endpoint this
    /// usually means a malformed account ID or an empty field.
    #[error("Dexcom Share rejected the arguments of {endpoint} (InvalidArgument): {message}")]
    InvalidArgument {
        /// The endpoint that rejected the request.
        endpoint: Endpoint,
        /// The server's message, shortened and with IDs redacted.
        message: String,
    },
    /// Share is rate limiting (HTTP 429).
    #[error("Dexcom Share is rate limiting requests (HTTP 429 on {endpoint}){}", retry_after_text(*.retry_after))]
    RateLimited {
        /// The endpoint that was limited.
        endpoint: Endpoint,
        /// How long the server asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Dexcom's web front (Cloudflare) answered on its own: a challenge, its rate limit, or an
    /// origin error. Not a verdict on the password.
    #[error(
        "Dexcom's web front (Cloudflare) answered {endpoint} with {}, not Share's answer",
        edge_text(*.answer, *.status, *.retry_after)
    )]
    Edge {
        /// The endpoint asked.
        endpoint: Endpoint,
        /// What the web front answered.
        answer: EdgeAnswer,
        /// The HTTP status.
        status: u16,
        /// How long it asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Share failed on its side: an unknown error code, or a JSON error body without one.
    #[error("Dexcom Share failed on {endpoint}: HTTP {status}{}: {detail}", code_text(code.as_deref()))]
    Server {
        /// The endpoint that failed.
        endpoint: Endpoint,
        /// The HTTP status.
        status: u16,
        /// The Share error code, when the body carried one.
        code: Option<String>,
        /// The server's message or a body excerpt, shortened and with IDs redacted.
        detail: String,
    },
    /// No complete answer within the request timeout.
    #[error(
        "Dexcom Share at {host} did not answer {endpoint} within {timeout:?} (a slow network, or a firewall that drops the traffic)"
    )]
    Timeout {
        /// The host (and port) tried.
        host: String,
        /// The endpoint that timed out.
        endpoint: Endpoint,
        /// The configured request timeout.
        timeout: Duration,
    },
    /// The connection could not be established or broke mid-way.
    #[error(
        "could not reach Dexcom Share at {host} for {endpoint}: {cause} (check the network, DNS, and any firewall or proxy)"
    )]
    Connection {
        /// The host (and port) tried.
        host: String,
        /// The endpoint we tried to reach.
        endpoint: Endpoint,
        /// What went wrong, in words a person can act on (the deepest cause: "Connection
        /// refused", a name that does not resolve, a certificate problem).
        cause: String,
        /// The transport error, with the URL (which may hold a session ID) removed.
        #[source]
        source: reqwest::Error,
    },
    /// Share answered with a body we cannot use (not JSON, not a UUID, malformed readings).
    #[error("Dexcom Share sent an invalid response to {endpoint}: {detail}")]
    InvalidResponse {
        /// The endpoint whose answer was invalid.
        endpoint: Endpoint,
        /// What was wrong, with IDs redacted.
        detail: String,
    },
    /// A readings request with `minutes` or `maxCount` outside what Share serves; never sent.
    #[error("invalid readings request: {detail}")]
    InvalidRequest {
        /// Which parameter was out of range.
        detail: String,
    },
    /// Share (or something in front of it) answered with a redirect, which is never followed:
    /// it would carry the password or the session ID to another host.
    #[error(
        "Dexcom Share answered {endpoint} with a redirect (HTTP {status}) to {target}, which is not followed: check --dexcom.base-url / the region"
    )]
    Redirected {
        endpoint: Endpoint,
        /// The HTTP status (3xx).
        status: u16,
        /// The host the redirect pointed at.
        target: String,
    },
    /// The login gate's memory cannot be read or saved, so the password was not sent (fail
    /// closed: an attempt that cannot be counted could lock the account).
    #[error("the password was not sent: {fault}{}", if matches!(fault, super::gate::StoreFault::Duplicate { .. }) { "" } else { "; fix the state directory (free space, a writable disk, the files' owner); the exporter tries again each reading interval" })]
    StateUnavailable {
        /// The next time the exporter tries again.
        until: std::time::SystemTime,
        /// What cannot be read or written.
        fault: super::gate::StoreFault,
    },
    /// The login gate holds back the password after failed attempts (or too many re-logins).
    #[error("login deferred until {}: {}", httpdate::fmt_http_date(*.until), if *.confirmed { "re-logins are limited to one per reading interval and 12 an hour" } else { "the password failed before and Dexcom locks accounts after repeated failures" })]
    LoginDeferred {
        /// The earliest time a login may start.
        until: std::time::SystemTime,
        /// Whether the password had been confirmed (a re-login limit, not a password problem).
        confirmed: bool,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("could not build the HTTP client: {source}")]
    ClientBuild {
        #[source]
        source: reqwest::Error,
    },
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!(", retry after {}", humantime::format_duration(d)))
        .unwrap_or_default()
}

fn code_text(code: Option<&str>) -> String {
    code.map(|c| format!(" ({c})")).unwrap_or_default()
}

impl ShareError {
    /// The metric label for this failure.
    pub fn reason(&self) -> ErrorReason {
        match self {
            ShareError::AuthFailed { .. } | ShareError::NilUuid { .. } => ErrorReason::AuthFailed,
            ShareError::LockedOut { .. } => ErrorReason::LockedOut,
            ShareError::SessionExpired { .. } => ErrorReason::SessionExpired,
            // A login rejected for its arguments is a configuration problem (e.g. a malformed
            // account ID): retrying it fast would only count against the account.
            ShareError::InvalidArgument { endpoint, .. } if endpoint.is_login() => {
                ErrorReason::AuthFailed
            }
            ShareError::InvalidArgument { .. }
            | ShareError::InvalidResponse { .. }
            | ShareError::InvalidRequest { .. } => ErrorReason::InvalidResponse,
            ShareError::RateLimited { .. } => ErrorReason::RateLimited,
            ShareError::Edge { answer, .. } => answer.reason(),
            ShareError::Server { .. } | ShareError::Redirected { .. } => ErrorReason::ServerError,
            ShareError::LoginDeferred {
                confirmed: true, ..
            } => ErrorReason::SessionExpired,
            ShareError::LoginDeferred { .. } | ShareError::StateUnavailable { .. } => {
                ErrorReason::AuthFailed
            }
            ShareError::Timeout { .. } => ErrorReason::Timeout,
            ShareError::Connection { .. } | ShareError::ClientBuild { .. } => {
                ErrorReason::Connection
            }
        }
    }

    /// How long the server asked us to wait, for rate limiting.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ShareError::RateLimited { retry_after, .. } | ShareError::Edge { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// Classifies a Share fault envelope (`{"Code": …, "Message": …}`).
    pub(crate) fn from_fault(endpoint: Endpoint, status: u16, code: &str, message: &str) -> Self {
        let credential_code = matches!(
            code,
            "AccountPasswordInvalid"
                | "SSO_AuthenticatePasswordInvalid"
                | "SSO_AuthenticateAccountNotFound"
        ) || (code == "SSO_InternalError"
            && message.contains("Cannot Authenticate"));
        if credential_code {
            return ShareError::AuthFailed {
                endpoint,
                code: code.to_owned(),
            };
        }
        // The server spells it "…Exceeed"; a prefix match survives any later fix of the typo.
        if code.starts_with("SSO_AuthenticateMaxAttempts") {
            return ShareError::LockedOut {
                code: code.to_owned(),
            };
        }
        match code {
            "SessionIdNotFound" | "SessionNotValid" => ShareError::SessionExpired {
                code: code.to_owned(),
            },
            "InvalidArgument" => ShareError::InvalidArgument {
                endpoint,
                message: redact_excerpt(message),
            },
            _ => ShareError::Server {
                endpoint,
                status,
                code: Some(code.to_owned()),
                detail: redact_excerpt(message),
            },
        }
    }
}

/// The longest server text we quote in an error.
const EXCERPT_CHARS: usize = 160;

/// Shortens server text for an error message: whitespace collapsed, at most
/// [`EXCERPT_CHARS`] characters, and anything shaped like a UUID (session and account IDs)
/// replaced by `<id>`, because Share echoes session IDs in its messages.
pub(crate) fn redact_excerpt(text: &str) -> String {
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(collapsed.len().min(EXCERPT_CHARS + 8));
    let chars: Vec<char> = collapsed.chars().collect();
    let mut i = 0;
    let mut kept = 0;
    while i < chars.len() && kept < EXCERPT_CHARS {
        if looks_like_uuid(&chars[i..]) {
            out.push_str("<id>");
            i += 36;
            kept += 4;
            continue;
        }
        out.push(chars[i]);
        i += 1;
        kept += 1;
    }
    if i < chars.len() {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("(empty body)");
    }
    out
}

fn looks_like_uuid(chars: &[char]) -> bool {
    chars.len() >= 36
        && chars[..36].iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_codes_map_to_reasons() {
        let cases = [
            (
                "AccountPasswordInvalid",
                "Publisher account password failed",
                ErrorReason::AuthFailed,
            ),
            (
                "SSO_InternalError",
                "… Msg=Cannot Authenticate by AccountName='x'",
                ErrorReason::AuthFailed,
            ),
            (
                "SSO_InternalError",
                "Time out issue",
                ErrorReason::ServerError,
            ),
            (
                "SSO_AuthenticatePasswordInvalid",
                "",
                ErrorReason::AuthFailed,
            ),
            (
                "SSO_AuthenticateAccountNotFound",
                "",
                ErrorReason::AuthFailed,
            ),
            (
                "SSO_AuthenticateMaxAttemptsExceeed",
                "",
                ErrorReason::LockedOut,
            ),
            (
                "SSO_AuthenticateMaxAttemptsExceeded",
                "",
                ErrorReason::LockedOut,
            ),
            (
                "SessionIdNotFound",
                "Failed to find session object.",
                ErrorReason::SessionExpired,
            ),
            (
                "SessionNotValid",
                "Session not active or timed out.",
                ErrorReason::SessionExpired,
            ),
            ("SomethingNew", "what", ErrorReason::ServerError),
        ];
        for (code, message, reason) in cases {
            let err = ShareError::from_fault(Endpoint::ReadGlucose, 500, code, message);
            assert_eq!(err.reason(), reason, "{code}");
        }
        let login = ShareError::from_fault(Endpoint::LoginById, 500, "InvalidArgument", "UUID");
        assert_eq!(login.reason(), ErrorReason::AuthFailed);
        let read = ShareError::from_fault(Endpoint::ReadGlucose, 500, "InvalidArgument", "x");
        assert_eq!(read.reason(), ErrorReason::InvalidResponse);
    }

    #[test]
    fn excerpts_redact_ids_and_stay_short() {
        let message =
            "Failed to find session object. [SessionId = 33333333-3333-3333-3333-333333333333]";
        let excerpt = redact_excerpt(message);
        assert_eq!(excerpt, "Failed to find session object. [SessionId = <id>]");
        let long = "x".repeat(1000);
        assert!(redact_excerpt(&long).chars().count() <= EXCERPT_CHARS + 1);
        assert_eq!(redact_excerpt("  "), "(empty body)");
    }

    #[test]
    fn every_reason_has_a_distinct_label() {
        let mut labels: Vec<_> = ErrorReason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ErrorReason::ALL.len());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn the_classifier_never_panics_and_never_calls_a_credential_code_transient(
            code in "\\PC{0,40}",
            message in "\\PC{0,200}",
            status in 400u16..600,
        ) {
            for endpoint in Endpoint::ALL {
                let error = ShareError::from_fault(endpoint, status, &code, &message);
                let reason = error.reason();
                if code.starts_with("SSO_AuthenticateMaxAttempts") {
                    prop_assert_eq!(reason, ErrorReason::LockedOut);
                }
                if ["AccountPasswordInvalid", "SSO_AuthenticatePasswordInvalid", "SSO_AuthenticateAccountNotFound"].contains(&code.as_str()) {
                    prop_assert_eq!(reason, ErrorReason::AuthFailed);
                }
                // Quoted server text is shortened, whatever it was.
                prop_assert!(error.to_string().chars().count() < 600);
            }
        }
    }
}
