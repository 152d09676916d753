//! One remote-write request and the meaning of its answer: the standard headers, the
//! configured authentication and TLS, and the classification that decides what the sender
//! does next (retry, split, hold, or give up and count). The answer's text is shown only
//! through `scrub.rs`, without the credentials sent.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use secrecy::ExposeSecret;

use super::scrub::Secrets;
use crate::config::{RemoteWriteAuth, RemoteWriteTarget, RemoteWriteTls};

/// The most of an error answer kept for the log.
const MAX_DETAIL_CHARS: usize = 200;

/// The most of any answer read: the rest is discarded unread, so a receiver (or a proxy in
/// front of it) answering with a huge error page cannot cost memory.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Words receivers use for a sample they will never take again, whatever is retried:
/// Prometheus ("too old sample", "out of bounds", "duplicate sample for timestamp") and Mimir
/// ("out-of-order", "sample-timestamp-too-old", "out-of-bounds").
const NEVER_AGAIN: [&str; 7] = [
    "too old",
    "too-old",
    "out of bounds",
    "out-of-bounds",
    "out of order",
    "out-of-order",
    "duplicate sample for timestamp",
];

/// Why a request was not acknowledged; the sender acts on the variant.
#[derive(Debug, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "a field is named for what it holds, and the #[error] message shows it in context"
)]
pub enum SendError {
    /// Worth sending again after a pause: HTTP 5xx, 429, a timeout or a connection failure.
    #[error("{detail}")]
    Recoverable {
        /// What happened, for the log.
        detail: String,
        /// The receiver's `Retry-After`, when it sent one with a 429 or 503.
        retry_after: Option<Duration>,
    },
    /// The receiver refused samples as too old or out of order (Prometheus answers 500 "too
    /// old sample" beyond its out-of-order window, 400 "out of bounds" without one): sending
    /// the same samples again can never succeed, but the others in the request may.
    #[error("HTTP {status}: {detail}")]
    TooOld {
        status: u16,
        /// The receiver's message.
        detail: String,
    },
    /// The receiver refused who sent the request (401, 403: the credentials) or where it went
    /// (404, or a 3xx redirect, which is not followed so credentials never go elsewhere): not
    /// a fault of the samples. They are held and sent again with backoff, the credential files
    /// read again before each try.
    #[error("HTTP {status}: {detail}")]
    Held {
        status: u16,
        /// The receiver's message.
        detail: String,
    },
    /// Refused for good (any other 4xx: unknown tenant, wrong URL, a malformed request).
    #[error("HTTP {status}: {detail}")]
    Refused {
        status: u16,
        /// The receiver's message.
        detail: String,
    },
}

/// Why the writer for a receiver could not be built.
#[derive(Debug, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "a field is named for what it holds, and the #[error] message shows it in context"
)]
pub enum ClientError {
    /// The TLS settings did not make a client configuration.
    #[error("remote_write {url}: TLS settings: {source}")]
    Tls {
        url: String,
        #[source]
        source: rustls::Error,
    },
    /// The HTTP client could not be built.
    #[error("remote_write {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// Sends bodies to one receiver.
#[derive(Debug)]
pub struct WriteClient {
    http: reqwest::Client,
    target: RemoteWriteTarget,
    /// The authentication in use: the target's, until the files are read again.
    auth: std::sync::Mutex<Option<RemoteWriteAuth>>,
}

impl WriteClient {
    /// A client for `target`.
    ///
    /// # Errors
    /// [`ClientError`] when the TLS settings or the HTTP client cannot be built.
    pub fn new(target: RemoteWriteTarget) -> Result<Self, ClientError> {
        let url = target.shown_url();
        let tls = tls_config(&target.tls).map_err(|source| ClientError::Tls {
            url: url.clone(),
            source,
        })?;
        if target.tls.insecure_skip_verify {
            tracing::warn!(
                url,
                "remote_write: tls_config.insecure_skip_verify is set: the receiver's certificate is not checked"
            );
        }
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(target.timeout)
            .connect_timeout(target.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| ClientError::Http { url, source })?;
        Ok(WriteClient {
            http,
            auth: std::sync::Mutex::new(target.auth.clone()),
            target,
        })
    }

    /// Reads the credential files again (after the receiver refused them); a file that
    /// cannot be read now keeps the secret read before, and is logged.
    pub fn reread_credentials(&self) {
        let Ok(mut auth) = self.auth.lock() else {
            return;
        };
        let Some(current) = auth.as_ref() else {
            return;
        };
        match current.reread(&self.target.name) {
            Ok(fresh) => *auth = Some(fresh),
            Err(error) => {
                tracing::warn!(remote_name = %self.target.name, %error, "cannot read the remote-write credentials again; keeping the ones read before");
            }
        }
    }

    /// The receiver this client sends to, as configured.
    pub fn target(&self) -> &RemoteWriteTarget {
        &self.target
    }

    /// `detail` plus what to check when the receiver ended the handshake over a certificate
    /// and none is configured to show it.
    fn with_hint(&self, error: &reqwest::Error, detail: String) -> String {
        if self.target.tls.client_identity.is_none() && refused_for_certificate(error) {
            format!(
                "{detail} (the receiver may require a client certificate: set tls_config.cert_file and key_file)"
            )
        } else {
            detail
        }
    }

    /// Sends one compressed `WriteRequest`.
    ///
    /// # Errors
    /// [`SendError`], classified for the sender.
    pub async fn send(&self, body: Vec<u8>) -> Result<(), SendError> {
        let mut request = self
            .http
            .post(self.target.url.clone())
            .headers(self.target.headers.clone())
            .header(CONTENT_ENCODING, "snappy")
            .header(CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .header(USER_AGENT, crate::share::USER_AGENT)
            .body(body);
        let auth = self.auth.lock().ok().and_then(|a| a.clone());
        match &auth {
            Some(RemoteWriteAuth::Basic {
                username, password, ..
            }) => {
                request = request.basic_auth(username, Some(password.expose_secret()));
            }
            Some(RemoteWriteAuth::Authorization {
                scheme,
                credentials,
                ..
            }) => {
                let mut value =
                    HeaderValue::from_str(&format!("{scheme} {}", credentials.expose_secret()))
                        .map_err(|_| SendError::Refused {
                            status: 0,
                            detail: "the credentials file holds characters not allowed in a header"
                                .into(),
                        })?;
                value.set_sensitive(true);
                request = request.header(AUTHORIZATION, value);
            }
            None => {}
        }
        let mut response = request.send().await.map_err(|error| {
            // The URL's query may hold a credential: never in a message.
            let error = error.without_url();
            SendError::Recoverable {
                detail: self.with_hint(&error, describe(&error)),
                retry_after: None,
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let (text, cut) = read_capped(&mut response, MAX_ANSWER_BYTES).await;
        // The receiver's words decide what is done; only what is left of them once every
        // credential sent is taken out is shown.
        let collapse = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let lower = collapse(&text).to_ascii_lowercase();
        let too_old = NEVER_AGAIN.iter().any(|s| lower.contains(s));
        let secrets = Secrets::of(&self.target, auth.as_ref());
        let text = if cut {
            secrets.without_cut_tail(&text)
        } else {
            text
        };
        let detail: String = secrets
            .scrub(&collapse(&secrets.scrub(&text)))
            .chars()
            .take(MAX_DETAIL_CHARS)
            .collect();
        let code = status.as_u16();
        Err(match code {
            300..=399 | 401 | 403 | 404 => SendError::Held {
                status: code,
                detail,
            },
            400 | 500 if too_old => SendError::TooOld {
                status: code,
                detail,
            },
            429 => SendError::Recoverable {
                detail: format!("HTTP 429: {detail}"),
                retry_after,
            },
            500..=599 => SendError::Recoverable {
                detail: format!("HTTP {code}: {detail}"),
                retry_after: retry_after.filter(|_| code == 503),
            },
            _ => SendError::Refused {
                status: code,
                detail,
            },
        })
    }
}

/// The first `cap` bytes of an answer's body as text, and whether the cap cut it; the rest is
/// never read (the connection is dropped with it).
async fn read_capped(response: &mut reqwest::Response, cap: usize) -> (String, bool) {
    let mut kept = Vec::new();
    while kept.len() < cap {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    // A body of exactly `cap` bytes counts as cut: what followed it was not looked at.
    let cut = kept.len() >= cap;
    (String::from_utf8_lossy(&kept).into_owned(), cut)
}

/// Whether the receiver's TLS alert says it wanted (another) client certificate.
fn refused_for_certificate(error: &reqwest::Error) -> bool {
    use rustls::AlertDescription as Alert;
    crate::error_cause::chain(error).any(|e| {
        matches!(
            e.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::AlertReceived(
                Alert::BadCertificate
                    | Alert::CertificateRequired
                    | Alert::CertificateUnknown
                    | Alert::HandshakeFailure
            ))
        )
    })
}

/// A transport error in one phrase, without the URL's query (there is none) or any header.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".into();
    }
    let deepest = crate::error_cause::explain(error);
    if error.is_connect() {
        format!("cannot connect: {deepest}")
    } else {
        format!("request failed: {deepest}")
    }
}

fn tls_config(tls: &RemoteWriteTls) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if tls.ca_certs.is_empty() {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    } else {
        for cert in &tls.ca_certs {
            roots.add(cert.clone())?;
        }
    }
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| rustls::Error::General(e.to_string()))?;
    let server_name = match &tls.server_name {
        Some(name) => Some(
            ServerName::try_from(name.clone())
                .map_err(|e| rustls::Error::General(e.to_string()))?,
        ),
        None => None,
    };
    let verifier = Arc::new(Verifier {
        inner: webpki,
        server_name,
        check_chain: !tls.insecure_skip_verify,
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &tls.client_identity {
        Some(identity) => {
            builder.with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The standard verifier, checking the certificate against `server_name` instead of the URL's
/// host when one is configured, or (with `insecure_skip_verify`) not checking the chain.
#[derive(Debug)]
struct Verifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    server_name: Option<ServerName<'static>>,
    check_chain: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.check_chain {
            return Ok(ServerCertVerified::assertion());
        }
        let name = self.server_name.as_ref().unwrap_or(server_name);
        self.inner
            .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
