//! What of a receiver's error answer may be shown: its text with every credential the writer
//! sent taken out. A receiver, or a proxy in front of it, that echoes the request in its error
//! page (some do, to help debugging) would otherwise put the basic-auth password, the token, a
//! tenant header or the URL's key into the exporter's log.
//!
//! Each secret is taken out in every form it travelled in: as written in the file, as the
//! `Authorization` header carried it (base64 of `user:password` for basic auth), and, for the
//! URL's query, both percent-encoded and decoded. Every configured header value counts as a
//! secret, whatever its length: a tenant ID is not always harmless, and a short one costs only
//! a less readable message.

use base64::Engine;
use secrecy::ExposeSecret;

use crate::config::{RemoteWriteAuth, RemoteWriteTarget};

/// What a secret is replaced with.
const REDACTED: &str = "<redacted>";

/// The secrets one request carried, longest first (so one that contains another goes whole).
#[derive(Default)]
pub(super) struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

impl Secrets {
    /// The secrets of a request to `target` authenticated with `auth`.
    pub(super) fn of(target: &RemoteWriteTarget, auth: Option<&RemoteWriteAuth>) -> Self {
        let mut all: Vec<String> = Vec::new();
        match auth {
            Some(RemoteWriteAuth::Basic {
                username, password, ..
            }) => {
                let password = password.expose_secret();
                all.push(password.to_owned());
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                all.push(encoded);
            }
            Some(RemoteWriteAuth::Authorization { credentials, .. }) => {
                all.push(credentials.expose_secret().to_owned());
            }
            None => {}
        }
        for value in target.headers.values() {
            all.push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
        if let Some(query) = target.url.query() {
            for item in query.split('&') {
                // A bare item (`?s3cr3t`) is the secret itself; of `name=value`, the value.
                all.push(item.split_once('=').map_or(item, |(_, v)| v).to_owned());
            }
            for (name, value) in target.url.query_pairs() {
                all.push(if value.is_empty() { name } else { value }.into_owned());
            }
        }
        all.retain(|s| !s.trim().is_empty());
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Secrets(all)
    }

    /// The longest secret's length in bytes (0 without any).
    pub(super) fn longest(&self) -> usize {
        self.0.first().map_or(0, String::len)
    }

    /// `text` with each secret replaced by `<redacted>`, raw and in any JSON string literal
    /// (a receiver answering in JSON may escape a `/` of a URL's key).
    pub(super) fn scrub(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |out, secret| {
            crate::share::scrub_secret(&out, secret, REDACTED)
        })
    }

    /// `text`, read up to a cap that may have cut a secret in two, without the last
    /// `longest()` bytes: no secret's beginning survives at its end.
    pub(super) fn without_cut_tail(&self, text: &str) -> String {
        let mut end = text.len().saturating_sub(self.longest());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RemoteWriteTls;
    use reqwest::header::{HeaderMap, HeaderValue};
    use secrecy::SecretString;

    fn target(url: &str, headers: &[(&'static str, &str)]) -> RemoteWriteTarget {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        RemoteWriteTarget {
            name: "r".into(),
            url: url.parse().unwrap(),
            timeout: std::time::Duration::from_secs(1),
            headers: map,
            auth: None,
            tls: RemoteWriteTls::default(),
        }
    }

    #[test]
    fn every_credential_sent_is_taken_out_in_every_form_it_travelled_in() {
        let t = target(
            "http://127.0.0.1:1/w?api_key=k%2Fey-1&s3cr3t-bare",
            &[("x-scope-orgid", "tenant-77")],
        );
        let basic = RemoteWriteAuth::Basic {
            username: "dexcom".into(),
            password: SecretString::from("pa55word"),
            password_file: "/nonexistent".into(),
        };
        let secrets = Secrets::of(&t, Some(&basic));
        let echoed = format!(
            "bad request: authorization=Basic {} password=pa55word tenant=tenant-77 uri=/w?api_key=k%2Fey-1&s3cr3t-bare key=k/ey-1 {{\"key\":\"k\\/ey-1\"}}",
            base64::engine::general_purpose::STANDARD.encode("dexcom:pa55word")
        );
        let shown = secrets.scrub(&echoed);
        for secret in [
            "pa55word",
            "tenant-77",
            "k%2Fey-1",
            "k/ey-1",
            "s3cr3t-bare",
            "ZGV4Y29tOnBhNTV3b3Jk",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.starts_with("bad request: authorization=Basic <redacted>"));
        assert!(
            shown.contains("uri=/w?api_key=<redacted>&<redacted>"),
            "{shown}"
        );
        assert!(
            shown.ends_with(r#"{"key":"<redacted>"}"#),
            "in JSON: {shown}"
        );

        let bearer = RemoteWriteAuth::Authorization {
            scheme: "Bearer".into(),
            credentials: SecretString::from("tok-3n"),
            credentials_file: "/nonexistent".into(),
        };
        let shown = Secrets::of(&target("http://127.0.0.1:1/w", &[]), Some(&bearer))
            .scrub("invalid token Bearer tok-3n for tenant");
        assert_eq!(shown, "invalid token Bearer <redacted> for tenant");
    }

    #[test]
    fn an_answer_cut_at_the_cap_loses_the_tail_a_secret_may_begin_in() {
        let t = target("http://127.0.0.1:1/w?key=abcdefgh", &[]);
        let secrets = Secrets::of(&t, None);
        assert_eq!(secrets.longest(), 8);
        // The cap fell inside the key: its first half must not be shown.
        let cut = secrets.without_cut_tail("error near key=abcd");
        assert!(!cut.contains("abcd"), "{cut}");
        assert_eq!(cut, "error near ");
        // Multi-byte characters are not split.
        assert_eq!(secrets.without_cut_tail("ééééé"), "é");
    }
}
