//! What Cloudflare, in front of Share, answers on its own: a managed challenge, its error 1015
//! rate limit and its 520–526 origin errors, each an HTML page with Cloudflare's headers
//! (`Server: cloudflare`, `CF-RAY`; `cf-mitigated: challenge` on a challenge), as Cloudflare
//! documents them. Third-party Share clients met such answers in 2026 while the Dexcom Follow
//! app kept working; a client must never read them as a verdict on the password. The pages
//! are short stand-ins carrying the marks a client can see, not Cloudflare's own markup.

use crate::http::serve::{HttpResponse, respond};

/// The managed challenge's status.
pub(super) const CHALLENGE_STATUS: u16 = 403;

/// A managed challenge: the page a browser runs a script on before it is let through.
const CHALLENGE_PAGE: &str = "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>\
<meta http-equiv=\"refresh\" content=\"390\"></head><body><noscript>Enable JavaScript and cookies to continue</noscript>\
<script src=\"/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1\"></script></body></html>\n";

/// Error 1015: the zone's rate-limiting rule matched this address.
const RATE_LIMIT_PAGE: &str = "<!DOCTYPE html><html><head><title>Access denied | share2.dexcom.com used Cloudflare to restrict access</title></head>\
<body><h1>Error 1015</h1><h2>You are being rate limited</h2>\
<p>The owner of this website (share2.dexcom.com) has banned you temporarily from accessing this website.</p>\
<p>Cloudflare Ray ID: 8f0e0d0c0b0a0908</p></body></html>\n";

/// Cloudflare's words for its origin errors.
fn origin_error_title(status: u16) -> &'static str {
    match status {
        520 => "Web server is returning an unknown error",
        521 => "Web server is down",
        522 => "Connection timed out",
        523 => "Origin is unreachable",
        524 => "A timeout occurred",
        525 => "SSL handshake failed",
        526 => "Invalid SSL certificate",
        _ => "Origin error",
    }
}

/// Cloudflare's headers on an answer it gives itself.
fn from_cloudflare(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::SERVER,
        hyper::header::HeaderValue::from_static("cloudflare"),
    );
    headers.insert(
        "cf-ray",
        hyper::header::HeaderValue::from_static("8f0e0d0c0b0a0908-EWR"),
    );
    response
}

/// HTTP `status` (Cloudflare's is 403), "Just a moment...", `cf-mitigated: challenge`.
pub(super) fn challenge(status: u16) -> HttpResponse {
    let mut response = from_cloudflare(respond(status, "text/html; charset=UTF-8", CHALLENGE_PAGE));
    response.headers_mut().insert(
        "cf-mitigated",
        hyper::header::HeaderValue::from_static("challenge"),
    );
    response
}

/// Error 1015 with `status` (429, or 403 as some zones answer it).
pub(super) fn rate_limited(status: u16) -> HttpResponse {
    from_cloudflare(respond(status, "text/html; charset=UTF-8", RATE_LIMIT_PAGE))
}

/// Origin error `status` (520–526).
pub(super) fn origin_error(status: u16) -> HttpResponse {
    let title = origin_error_title(status);
    from_cloudflare(respond(
        status,
        "text/html; charset=UTF-8",
        format!(
            "<!DOCTYPE html><html><head><title>share2.dexcom.com | {status}: {title}</title></head>\
             <body><h1>{title}</h1><span>Error code {status}</span>\
             <p>Cloudflare Ray ID: 8f0e0d0c0b0a0908</p></body></html>\n"
        ),
    ))
}
