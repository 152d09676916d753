//! The faults a test can inject into the simulator's next answers: what Share, or something
//! in front of it, has been seen to answer when things go wrong. Cloudflare's own answers
//! (challenge, rate limit, origin errors) are built in `edge.rs`.

use std::time::Duration;

/// A fault to inject into upcoming requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// An HTML 502 page (Cloudflare outage style): a 5xx whose body is not Share's JSON.
    Html500,
    /// Cloudflare's managed challenge: HTTP 403, an HTML "Just a moment..." page and
    /// `cf-mitigated: challenge`.
    EdgeChallenge,
    /// The same challenge page and `cf-mitigated: challenge` with HTTP 200: a success status
    /// on an answer that is not Share's.
    EdgeChallengeOk,
    /// Cloudflare's error 1015 rate-limit page, with this status (429, or 403).
    EdgeRateLimited {
        /// The HTTP status.
        status: u16,
    },
    /// One of Cloudflare's origin errors, 520–526, as its HTML page.
    EdgeOriginError {
        /// The HTTP status.
        status: u16,
    },
    /// HTTP 200 with an empty body.
    EmptyBody200,
    /// HTTP 500 with a JSON body that is not a Share fault envelope (no `Code`).
    JsonWithoutCode,
    /// HTTP 429, optionally with `Retry-After`.
    RateLimited {
        /// The `Retry-After` header, if any.
        retry_after: Option<Duration>,
    },
    /// The normal answer, but only after this delay.
    Slow(Duration),
    /// A Share fault envelope with this code and message.
    ShareFault {
        /// The `Code`.
        code: String,
        /// The `Message`.
        message: String,
    },
    /// Any answer at all: a web firewall's 401/403 page, an oversized body, readings with
    /// future-dated or malformed rows.
    Raw {
        /// The HTTP status.
        status: u16,
        /// The `Content-Type`.
        content_type: &'static str,
        /// Sent as is, whatever `content_type` says.
        body: String,
    },
    /// A redirect (307, which would re-send the request body) to `location`.
    Redirect {
        /// The `Location` header.
        location: String,
    },
}

impl Fault {
    /// A `200 OK` JSON answer with this body, in place of what Share would send.
    pub fn json(body: impl Into<String>) -> Self {
        Fault::Raw {
            status: 200,
            content_type: "application/json",
            body: body.into(),
        }
    }
}
