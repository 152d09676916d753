//! `--web.config.file`: TLS and basic authentication for the exporter's endpoints, in the
//! Prometheus exporter-toolkit format, so the same file works for this exporter and the Go ones.
//!
//! Supported: `tls_server_config` (`cert_file`, `key_file`, `client_auth_type`
//! `NoClientCert`/`RequireAndVerifyClientCert` with `client_ca_file`, `min_version`,
//! `max_version`), `http_server_config.headers`, and `basic_auth_users` (bcrypt hashes). Keys
//! we do not implement are rejected by name rather than silently ignored. The file is read once
//! at start-up; restart the exporter to pick up new certificates.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine;
use hyper::header::{HeaderName, HeaderValue};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// What is wrong with a web configuration file; the exporter exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file cannot be read.
    #[error("cannot read --web.config.file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid --web.config.file {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A certificate, key or CA file cannot be loaded.
    #[error("--web.config.file {path}: cannot load {what} {file}: {message}")]
    Pem {
        /// The web configuration file.
        path: PathBuf,
        /// Which item (certificate, key, client CA).
        what: &'static str,
        /// The PEM file.
        file: PathBuf,
        /// Why.
        message: String,
    },
    /// The TLS settings are inconsistent.
    #[error("--web.config.file {path}: {message}")]
    Tls {
        /// The web configuration file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    tls_server_config: Option<TlsServerConfig>,
    http_server_config: Option<HttpServerConfig>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpServerConfig {
    headers: Option<BTreeMap<String, String>>,
    http2: Option<bool>,
}

/// The validated web configuration.
#[derive(Debug, Default, Clone)]
pub struct WebConfig {
    /// TLS, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Basic authentication, when users are configured.
    pub basic_auth: Option<Arc<BasicAuth>>,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl WebConfig {
    /// Loads and validates `path`.
    ///
    /// # Errors
    /// A [`WebConfigError`] naming the problem.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: WebConfigFile =
            serde_saphyr::from_str(&text).map_err(|e| WebConfigError::Syntax {
                path: path.to_owned(),
                message: e.to_string().lines().next().unwrap_or_default().to_owned(),
            })?;
        // Relative certificate paths are relative to the configuration file, as in the toolkit.
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let tls = file
            .tls_server_config
            .map(|tls| tls_config(path, base, tls))
            .transpose()?;
        let mut headers = Vec::new();
        if let Some(http) = file.http_server_config {
            if http.http2 == Some(true) {
                tracing::info!("http_server_config.http2 is ignored: the exporter serves HTTP/1.1");
            }
            for (name, value) in http.headers.unwrap_or_default() {
                let header = HeaderName::from_bytes(name.as_bytes())
                    .ok()
                    .zip(HeaderValue::from_str(&value).ok())
                    .ok_or_else(|| WebConfigError::Syntax {
                        path: path.to_owned(),
                        message: format!("header {name:?} is not a valid HTTP header"),
                    })?;
                headers.push(header);
            }
        }
        let basic_auth = match file.basic_auth_users {
            Some(users) if !users.is_empty() => {
                for (user, hash) in &users {
                    if hash.parse::<bcrypt::HashParts>().is_err() {
                        return Err(WebConfigError::Syntax {
                            path: path.to_owned(),
                            message: format!(
                                "basic_auth_users.{user} is not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')"
                            ),
                        });
                    }
                }
                Some(Arc::new(BasicAuth::new(users.into_iter().collect())))
            }
            _ => None,
        };
        Ok(WebConfig {
            tls,
            basic_auth,
            headers,
        })
    }
}

fn tls_config(
    path: &Path,
    base: &Path,
    tls: TlsServerConfig,
) -> Result<Arc<rustls::ServerConfig>, WebConfigError> {
    let pem_error = |what: &'static str, file: &Path, message: String| WebConfigError::Pem {
        path: path.to_owned(),
        what,
        file: file.to_owned(),
        message,
    };
    let cert_file = base.join(&tls.cert_file);
    let key_file = base.join(&tls.key_file);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .map_err(|e| pem_error("certificate", &cert_file, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error("certificate", &cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error(
            "certificate",
            &cert_file,
            "no certificate in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| pem_error("key", &key_file, e.to_string()))?;
    let tls_error = |message: String| WebConfigError::Tls {
        path: path.to_owned(),
        message,
    };
    let version =
        |text: &Option<String>, default: &'static rustls::SupportedProtocolVersion| match text
            .as_deref()
        {
            None => Ok(default),
            Some("TLS12") => Ok(&rustls::version::TLS12),
            Some("TLS13") => Ok(&rustls::version::TLS13),
            Some(other) => Err(tls_error(format!(
                "TLS version {other:?} is not supported: use TLS12 or TLS13"
            ))),
        };
    let min = version(&tls.min_version, &rustls::version::TLS12)?;
    let max = version(&tls.max_version, &rustls::version::TLS13)?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| {
                let rank = |x: &rustls::SupportedProtocolVersion| {
                    if x.version == rustls::ProtocolVersion::TLSv1_2 {
                        0
                    } else {
                        1
                    }
                };
                rank(v) >= rank(min) && rank(v) <= rank(max)
            })
            .collect();
    if versions.is_empty() {
        return Err(tls_error("min_version is above max_version".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| tls_error(e.to_string()))?;
    let builder = match tls.client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" => {
            let ca_file = tls.client_ca_file.map(|f| base.join(f)).ok_or_else(|| {
                tls_error("client_auth_type RequireAndVerifyClientCert needs client_ca_file".into())
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&ca_file)
                .map_err(|e| pem_error("client CA", &ca_file, e.to_string()))?
            {
                let cert = cert.map_err(|e| pem_error("client CA", &ca_file, e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| pem_error("client CA", &ca_file, e.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| tls_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err(tls_error(format!(
                "client_auth_type {other:?} is not supported: use NoClientCert or RequireAndVerifyClientCert"
            )));
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        tls_error(format!(
            "certificate and key do not form a usable pair: {e}"
        ))
    })?;
    Ok(Arc::new(config))
}

/// Basic authentication against bcrypt hashes. bcrypt is slow by design (tens of ms), so a
/// verified `Authorization` header is remembered (by a keyed hash, never in clear) and later
/// scrapes with the same header cost one hash lookup, without a lock.
#[derive(Debug)]
pub struct BasicAuth {
    users: HashMap<String, String>,
    verified: ArcSwap<HashSet<u64>>,
    keys: RandomState,
}

impl BasicAuth {
    fn new(users: HashMap<String, String>) -> Self {
        BasicAuth {
            users,
            verified: ArcSwap::from_pointee(HashSet::new()),
            keys: RandomState::new(),
        }
    }

    /// Whether the `Authorization` header carries valid credentials.
    pub async fn allows(self: &Arc<Self>, header: Option<&HeaderValue>) -> bool {
        let Some(header) = header.and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let fingerprint = self.keys.hash_one(header);
        if self.verified.load().contains(&fingerprint) {
            return true;
        }
        let Some((user, password)) = decode_basic(header) else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return false;
        };
        // bcrypt takes tens of milliseconds: keep it off the async workers.
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok {
            self.verified.rcu(|set| {
                let mut set = HashSet::clone(set);
                // Bounded: a handful of scrapers, never an attacker-sized set (only successes).
                if set.len() < 64 {
                    set.insert(fingerprint);
                }
                set
            });
        }
        ok
    }
}

fn decode_basic(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("web-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn rejects_what_it_does_not_implement_by_name() {
        let path = write("rate.yml", "rate_limit:\n  interval: 1s\n");
        let err = WebConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("rate_limit"), "{err}");
        let path = write("hash.yml", "basic_auth_users:\n  alice: plaintext\n");
        let err = WebConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("not a bcrypt hash") && !err.contains("plaintext"),
            "{err}"
        );
        let path = write(
            "cert.yml",
            "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
        );
        assert!(
            WebConfig::load(&path)
                .unwrap_err()
                .to_string()
                .contains("cannot load certificate")
        );
    }

    #[tokio::test]
    async fn basic_auth_checks_bcrypt_and_remembers_successes() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let path = write(
            "auth.yml",
            &format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
        );
        let auth = WebConfig::load(&path).unwrap().basic_auth.unwrap();
        let header = |user: &str, pass: &str| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            HeaderValue::from_str(&format!("Basic {token}")).unwrap()
        };
        assert!(auth.allows(Some(&header("prometheus", "s3cret"))).await);
        assert!(
            auth.allows(Some(&header("prometheus", "s3cret"))).await,
            "cached"
        );
        assert!(!auth.allows(Some(&header("prometheus", "wrong"))).await);
        assert!(!auth.allows(Some(&header("other", "s3cret"))).await);
        assert!(!auth.allows(None).await);
        assert!(
            !auth
                .allows(Some(&HeaderValue::from_static("Bearer x")))
                .await
        );
    }
}
