//! One request to Share and what its answer means: the POST with its size cap and no redirects,
//! the `Date` and `Retry-After` headers, and the classification of a failed answer, with the
//! password scrubbed from any server text that becomes error text.

use std::time::{Duration, Instant};

use reqwest::header::{DATE, LOCATION, RETRY_AFTER};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::client::{MAX_BODY_BYTES, ShareClient};
use super::error::{EdgeAnswer, ShareError, redact_excerpt};
use super::region::Endpoint;

/// An answer from Share: its status, body (at most [`MAX_BODY_BYTES`]) and clock.
pub(super) struct Answer {
    pub(super) status: reqwest::StatusCode,
    pub(super) bytes: bytes::Bytes,
    pub(super) date: Option<std::time::SystemTime>,
    /// When it arrived, on the client's monotonic clock.
    pub(super) answered: Duration,
    pub(super) retry_after: Option<Duration>,
    /// Cloudflare's `cf-mitigated` header was set: it challenged the request.
    pub(super) cf_mitigated: bool,
}

/// Cloudflare's header on an answer it gave in place of the origin's (a challenge).
const CF_MITIGATED: &str = "cf-mitigated";

/// The JSON fault envelope of Share errors.
#[derive(Deserialize)]
struct Fault {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
}

impl ShareClient {
    /// One POST; returns a 2xx answer or the classified error.
    pub(super) async fn post(
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
        // `cf-mitigated` says the web front answered in Share's place, whatever the status.
        if answer.status.is_success() && !answer.cf_mitigated {
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
        let sent = self.clock.monotonic();
        let mut response = request
            .send()
            .await
            .map_err(|e| self.transport_error(endpoint, e))?;
        let answered = self.clock.monotonic();
        let status = response.status();
        let date = response
            .headers()
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        if let Some(date) = date {
            self.observer.server_date(date, sent, answered);
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
        let cf_mitigated = response.headers().contains_key(CF_MITIGATED);
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
            answered,
            retry_after,
            cf_mitigated,
        })
    }

    /// Turns a non-2xx answer (or one the web front answered) into an error. The body is scrubbed of the password first: a
    /// server or proxy that echoes the request must not put it into a log line.
    fn classify(&self, endpoint: Endpoint, answer: Answer) -> ShareError {
        let status = answer.status.as_u16();
        // Share answers its errors in JSON; Cloudflare's own pages are HTML or plain text.
        let json = serde_json::from_slice::<serde_json::Value>(&answer.bytes).is_ok();
        if let Some(edge) = edge_answer(status, answer.cf_mitigated, json, &answer.bytes) {
            return ShareError::Edge {
                endpoint,
                answer: edge,
                status,
                retry_after: answer.retry_after,
            };
        }
        if status == 429 {
            return ShareError::RateLimited {
                endpoint,
                retry_after: answer.retry_after,
            };
        }
        let text = self.scrub(&String::from_utf8_lossy(&answer.bytes));
        match serde_json::from_str::<Fault>(&text) {
            // Decoded text is scrubbed again: a JSON escape (`\/`, `\u0070`) hides the password
            // from the scrub of the raw answer and gives it back in clear once decoded.
            Ok(Fault {
                code: Some(code),
                message,
            }) => ShareError::from_fault(
                endpoint,
                answer.status.as_u16(),
                &self.scrub(&code),
                &self.scrub(message.as_deref().unwrap_or("")),
            ),
            _ if answer.status == reqwest::StatusCode::NOT_FOUND => ShareError::Server {
                endpoint,
                status: 404,
                code: None,
                detail: self.not_found_hint(),
            },
            _ => ShareError::Server {
                endpoint,
                status: answer.status.as_u16(),
                code: None,
                detail: redact_excerpt(&text),
            },
        }
    }

    /// What a 404 means here: almost always a base URL without the Share services path.
    fn not_found_hint(&self) -> String {
        let url = &self.settings.base_url;
        // Scheme, host, port and path only: never user information or a query.
        let base = format!(
            "{}://{}{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default(),
            url.path()
        );
        if url
            .path()
            .to_ascii_lowercase()
            .contains("/sharewebservices/services/")
        {
            format!("not found at {base}; check --dexcom.base-url and the region")
        } else {
            format!(
                "not found: the base URL {base} lacks the Share path; it must end in /ShareWebServices/Services/ (for example https://share2.dexcom.com/ShareWebServices/Services/)"
            )
        }
    }

    /// `text` with the password replaced in every form: raw, JSON-escaped as we would escape
    /// it, and inside any JSON string literal however that literal escapes it.
    pub(super) fn scrub(&self, text: &str) -> String {
        scrub_password(text, self.settings.password.expose_secret())
    }

    fn transport_error(&self, endpoint: Endpoint, error: reqwest::Error) -> ShareError {
        // The URL can carry the session ID in its query: drop it before it reaches any text.
        let error = error.without_url();
        let url = &self.settings.base_url;
        let host = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or(443)
        );
        if error.is_timeout() {
            ShareError::Timeout {
                host,
                endpoint,
                timeout: self.settings.request_timeout,
            }
        } else {
            ShareError::Connection {
                host,
                endpoint,
                cause: self.scrub(&crate::error_cause::explain(&error)),
                source: error,
            }
        }
    }
}

/// `text` with `password` replaced by `<password>`: raw, as `serde_json` escapes it, and in
/// every JSON string literal whose decoded value holds it (any escape: `\/`, `\u0070`,
/// surrogate pairs), the literal then written back with the password replaced.
pub(crate) fn scrub_password(text: &str, password: &str) -> String {
    scrub_secret(text, password, "<password>")
}

/// `text` with `secret` replaced by `marker` in every form [`scrub_password`] knows; remote
/// write uses it for the credentials a receiver may echo.
pub(crate) fn scrub_secret(text: &str, secret: &str, marker: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..start]);
        let literal = &rest[start..];
        let Some(end) = string_literal_end(literal) else {
            out.push_str(literal);
            rest = "";
            break;
        };
        let segment = &literal[..=end];
        match serde_json::from_str::<String>(segment) {
            Ok(decoded) if decoded.contains(secret) => {
                let clean = decoded.replace(secret, marker);
                out.push_str(&serde_json::to_string(&clean).unwrap_or_default());
            }
            _ => out.push_str(segment),
        }
        rest = &literal[end + 1..];
    }
    out.push_str(rest);
    let mut out = out.replace(secret, marker);
    let escaped = serde_json::to_string(secret).unwrap_or_default();
    let escaped = escaped.trim_matches('"');
    if !escaped.is_empty() && escaped != secret {
        out = out.replace(escaped, marker);
    }
    out
}

/// The byte index of the closing quote of the JSON string literal `text` starts with.
fn string_literal_end(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// What Cloudflare answered on its own, if the answer is its and not Share's: `cf-mitigated`
/// on any answer, a 403 challenge page, its 1015 rate-limit page (429 or 403), its 520–526
/// origin errors, and any other 5xx whose body is not JSON (Share answers its own errors in
/// JSON). Judged before anything else, so none of them can read as a verdict on the password.
fn edge_answer(status: u16, cf_mitigated: bool, json: bool, body: &[u8]) -> Option<EdgeAnswer> {
    let text = String::from_utf8_lossy(&body[..body.len().min(16 * 1024)]).to_ascii_lowercase();
    let cloudflare_page = text.contains("cloudflare");
    if cf_mitigated {
        return Some(EdgeAnswer::Challenge);
    }
    // Cloudflare answers API clients in plain text ("error code: 1015"), without its name.
    let rate_limit_code = text.contains("error code: 1015") || text.contains("error 1015");
    if matches!(status, 403 | 429)
        && (rate_limit_code || (cloudflare_page && text.contains("rate limited")))
    {
        return Some(EdgeAnswer::RateLimited);
    }
    // A challenge page, or a firewall rule's block (error 1020): the edge refuses the client.
    if status == 403
        && (text.contains("just a moment")
            || text.contains("challenge-platform")
            || text.contains("cf_chl")
            || text.contains("error code: 1020")
            || text.contains("you have been blocked"))
    {
        return Some(EdgeAnswer::Challenge);
    }
    if (520..=526).contains(&status) || (status >= 500 && !json) {
        return Some(EdgeAnswer::Failed);
    }
    None
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
mod scrub_tests {
    use super::scrub_password;

    #[test]
    fn the_password_is_scrubbed_in_every_json_escape_and_raw() {
        for password in [
            "pa/ss-kit-77",
            "qu\"ote\\back",
            "grün-ß-密码",
            "a/b\"c\\d-é",
        ] {
            let json = serde_json::to_string(password).unwrap();
            let inner = json.trim_matches('"');
            // Every character as \uXXXX (surrogate pairs beyond the BMP), and `/` as `\/`.
            let unicode: String = password
                .encode_utf16()
                .map(|u| format!("\\u{u:04x}"))
                .collect();
            let slashed = inner.replace('/', "\\/");
            for body in [
                format!(
                    r#"{{"Code":"SSO_InternalError","Message":"Authentication failed for password {slashed}"}}"#
                ),
                format!(r#"{{"Code":"X","Message":"echo \"{unicode}\" here"}}"#),
                format!("<html>raw {password} and json {inner}</html>"),
            ] {
                let scrubbed = scrub_password(&body, password);
                assert!(!scrubbed.contains(password), "{scrubbed}");
                assert!(
                    !scrubbed.contains(&unicode) && !scrubbed.contains(&slashed),
                    "{scrubbed}"
                );
                assert!(scrubbed.contains("<password>"), "{body} -> {scrubbed}");
                // Decoding what is left never gives the password back either.
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&scrubbed) {
                    assert!(!value.to_string().contains(password));
                    for field in ["Code", "Message"] {
                        let text = value[field].as_str().unwrap_or_default();
                        assert!(!text.contains(password), "{text}");
                    }
                }
            }
        }
    }

    #[test]
    fn text_without_the_password_is_left_as_it_is() {
        let body = r#"{"Code":"SessionIdNotFound","Message":"no \"session\" here"} tail"#;
        assert_eq!(scrub_password(body, "hunter22"), body);
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::tests::client;
    use super::*;

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
                    answered: Duration::ZERO,
                    retry_after: None,
                    cf_mitigated: false,
                },
            );
            let text = error.to_string();
            assert!(!text.contains("p\"w") && !text.contains("p\\\"w"), "{text}");
        }
    }

    #[test]
    fn cloudflare_s_own_answers_are_told_from_share_s() {
        let share_fault = br#"{"Code":"AccountPasswordInvalid","Message":"x"}"#;
        // Status, cf-mitigated, JSON body, body, what it is.
        type Case<'a> = (u16, bool, bool, &'a [u8], Option<EdgeAnswer>);
        let cases: [Case; 12] = [
            (
                403,
                false,
                false,
                b"<title>Just a moment...</title>",
                Some(EdgeAnswer::Challenge),
            ),
            (429, true, false, b"", Some(EdgeAnswer::Challenge)),
            (
                429,
                false,
                false,
                b"<h1>Error 1015</h1> Cloudflare",
                Some(EdgeAnswer::RateLimited),
            ),
            (
                403,
                false,
                false,
                b"error code: 1015 cloudflare",
                Some(EdgeAnswer::RateLimited),
            ),
            (
                522,
                false,
                false,
                b"<html>cloudflare</html>",
                Some(EdgeAnswer::Failed),
            ),
            (503, false, false, b"", Some(EdgeAnswer::Failed)),
            // As Cloudflare answers API clients: plain text, no name.
            (
                429,
                false,
                false,
                b"error code: 1015",
                Some(EdgeAnswer::RateLimited),
            ),
            (
                403,
                false,
                false,
                b"error code: 1020",
                Some(EdgeAnswer::Challenge),
            ),
            (
                403,
                false,
                false,
                b"<h1>Sorry, you have been blocked</h1>",
                Some(EdgeAnswer::Challenge),
            ),
            // Share's own answers, and pages that are not Cloudflare's.
            (500, false, true, share_fault, None),
            (429, false, false, b"Too Many Requests", None),
            (403, false, false, b"<html>Access denied</html>", None),
        ];
        for (status, cf_mitigated, json, body, expected) in cases {
            assert_eq!(
                edge_answer(status, cf_mitigated, json, body),
                expected,
                "{status} {}",
                String::from_utf8_lossy(body)
            );
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
}
