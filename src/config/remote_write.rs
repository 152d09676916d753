//! The `remote_write:` section of `--config.file` (and `--remote-write.url` for the simple
//! case), with the keys Prometheus users know from `prometheus.yml`, checked into
//! [`RemoteWriteTarget`]s. Credentials come from files only (`password_file`,
//! `credentials_file`), like the Dexcom password: inline `password:` or `credentials:` are
//! refused by name, and a URL with a user or password in it too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::SecretString;

use super::ConfigError;
use super::file::{FileRemoteWrite, FileTls};
use super::loopback::is_loopback;

/// Default limit on one remote-write request, as in Prometheus.
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

/// How requests authenticate; `Debug` never shows the secret.
#[derive(Debug, Clone)]
pub enum RemoteWriteAuth {
    /// HTTP basic authentication.
    Basic {
        /// Sent as is; not a secret.
        username: String,
        /// The password, from `password_file`.
        password: SecretString,
        /// The file it was read from, read again when the receiver refuses the credentials.
        password_file: PathBuf,
    },
    /// An `Authorization: <scheme> <credentials>` header.
    Authorization {
        /// The scheme, `Bearer` unless given.
        scheme: String,
        /// The credentials, from `credentials_file`.
        credentials: SecretString,
        /// The file they were read from, read again when the receiver refuses them.
        credentials_file: PathBuf,
    },
}

impl RemoteWriteAuth {
    /// The same authentication with the secret read again from its file (rotated by the
    /// user or a secret manager while the exporter runs).
    ///
    /// # Errors
    /// The file cannot be read or is empty (the caller keeps the old secret).
    pub fn reread(&self, target: &str) -> Result<Self, ConfigError> {
        Ok(match self {
            RemoteWriteAuth::Basic {
                username,
                password_file,
                ..
            } => RemoteWriteAuth::Basic {
                username: username.clone(),
                password: read_secret(target, "basic_auth.password_file", password_file)?,
                password_file: password_file.clone(),
            },
            RemoteWriteAuth::Authorization {
                scheme,
                credentials_file,
                ..
            } => RemoteWriteAuth::Authorization {
                scheme: scheme.clone(),
                credentials: read_secret(
                    target,
                    "authorization.credentials_file",
                    credentials_file,
                )?,
                credentials_file: credentials_file.clone(),
            },
        })
    }
}

/// TLS towards the receiver: PEM files already read, so a bad file stops the start.
#[derive(Debug, Clone, Default)]
pub struct RemoteWriteTls {
    /// CA certificates that replace the system's roots, when given.
    pub ca_certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// A client certificate chain and its key, for receivers that require one.
    pub client_identity: Option<ClientIdentity>,
    /// The name to verify the receiver's certificate against, instead of the URL's host.
    pub server_name: Option<String>,
    /// Accept any certificate (for a test receiver only; logged at start).
    pub insecure_skip_verify: bool,
}

/// A client certificate and its key; `Debug` does not show the key.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The client certificate first, then its intermediates, as the PEM file lists them.
    pub chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// The certificate's private key, shared by every connection to the receiver.
    pub key: std::sync::Arc<rustls_pki_types::PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// One validated receiver.
#[derive(Clone)]
pub struct RemoteWriteTarget {
    /// The `remote_name` label of its metrics: `name`, else the URL's host and port.
    pub name: String,
    /// Where the readings are sent, with any query key (shown redacted: see `shown_url`).
    pub url: reqwest::Url,
    /// Limit on one request.
    pub timeout: Duration,
    /// Extra headers (values marked sensitive: they may hold tenant tokens).
    pub headers: HeaderMap,
    /// Authentication, if any.
    pub auth: Option<RemoteWriteAuth>,
    /// TLS settings.
    pub tls: RemoteWriteTls,
}

impl RemoteWriteTarget {
    /// The URL as labels, logs and errors show it: a query's values may be credentials (some
    /// hosted receivers document `?api_key=…`), so each is `<redacted>`; the names stay, so a
    /// person can still tell which URL it is. A bare item (`?s3cr3t`) is itself the secret,
    /// and is `<redacted>` whole.
    pub fn shown_url(&self) -> String {
        redacted_url(&self.url)
    }
}

/// `url` with every query value, and every bare query item, replaced by `<redacted>` (and no
/// user info, which is refused anyway, nor fragment).
pub fn redacted_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    let Some(query) = url.query().filter(|q| !q.is_empty()) else {
        shown.set_query(None);
        return shown.to_string();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{name}=<redacted>"),
            None if pair.is_empty() => String::new(),
            None => "<redacted>".to_owned(),
        })
        .collect();
    shown.set_query(None);
    format!("{shown}?{}", redacted.join("&"))
}

impl std::fmt::Debug for RemoteWriteTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWriteTarget")
            .field("name", &self.name)
            .field("url", &self.shown_url())
            .field("timeout", &self.timeout)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Headers the writer sets itself; Prometheus refuses them in `headers:` too.
const RESERVED_HEADERS: [&str; 6] = [
    "authorization",
    "content-encoding",
    "content-type",
    "host",
    "user-agent",
    "x-prometheus-remote-write-version",
];

/// The external labels: `job="dexcom"` unless the file says otherwise.
pub(super) fn external_labels(
    given: Option<BTreeMap<String, String>>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let labels = given.unwrap_or_else(|| BTreeMap::from([("job".into(), "dexcom".into())]));
    for name in labels.keys() {
        let valid = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if !valid || name.is_empty() || name.starts_with("__") || name == "account" {
            return Err(ConfigError::RemoteWrite {
                target: "external_labels".into(),
                problem: format!(
                    "{name:?} is not a usable label name (letters, digits and _, not starting with a digit or __; `account` is set per reading)"
                ),
            });
        }
    }
    Ok(labels.into_iter().collect())
}

/// Checks one receiver.
pub(super) fn validate_target(file: FileRemoteWrite) -> Result<RemoteWriteTarget, ConfigError> {
    let target = shown_url(file.url.trim());
    let problem = |problem: String| ConfigError::RemoteWrite {
        target: target.clone(),
        problem,
    };
    let url = reqwest::Url::parse(file.url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            problem("url must be an http(s) URL like http://127.0.0.1:9090/api/v1/write".into())
        })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(problem(
            "url must not hold a user or password: use basic_auth with password_file".into(),
        ));
    }
    let timeout = match file.remote_timeout.as_deref() {
        None => DEFAULT_REMOTE_TIMEOUT,
        Some(text) => humantime::parse_duration(text)
            .ok()
            .filter(|d| *d >= Duration::from_millis(100))
            .ok_or_else(|| {
                problem(format!(
                    "remote_timeout {text:?} is not a duration of at least 100ms, like 30s"
                ))
            })?,
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &file.headers {
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(problem(format!(
                "header {name:?} is set by the exporter and cannot be configured"
            )));
        }
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| problem(format!("{name:?} is not a valid header name")))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            problem(format!(
                "the value of header {name} is not a valid header value"
            ))
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let auth = match (file.basic_auth, file.authorization) {
        (Some(_), Some(_)) => {
            return Err(problem("give basic_auth or authorization, not both".into()));
        }
        (Some(basic), None) => {
            if basic.password.is_some() {
                return Err(problem(
                    "basic_auth.password is not accepted (it would sit in the file in clear): use basic_auth.password_file".into(),
                ));
            }
            let path = basic
                .password_file
                .ok_or_else(|| problem("basic_auth needs password_file".into()))?;
            Some(RemoteWriteAuth::Basic {
                username: basic.username,
                password: read_secret(&target, "basic_auth.password_file", &path)?,
                password_file: path,
            })
        }
        (None, Some(authorization)) => {
            if authorization.credentials.is_some() {
                return Err(problem(
                    "authorization.credentials is not accepted (it would sit in the file in clear): use authorization.credentials_file".into(),
                ));
            }
            let path = authorization
                .credentials_file
                .ok_or_else(|| problem("authorization needs credentials_file".into()))?;
            let scheme = authorization.scheme.unwrap_or_else(|| "Bearer".into());
            if scheme.is_empty()
                || !scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                return Err(problem(format!(
                    "authorization.type {scheme:?} is not a scheme like Bearer"
                )));
            }
            Some(RemoteWriteAuth::Authorization {
                scheme,
                credentials: read_secret(&target, "authorization.credentials_file", &path)?,
                credentials_file: path,
            })
        }
        (None, None) => None,
    };
    if auth.is_some() && url.scheme() == "http" && !is_loopback(&url) {
        return Err(problem(
            "credentials would travel in clear: use an https URL (or a receiver on this machine)"
                .into(),
        ));
    }
    let tls = match file.tls_config {
        None => RemoteWriteTls::default(),
        Some(tls) => validate_tls(&target, tls)?,
    };
    let name = file.name.unwrap_or_else(|| match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    });
    Ok(RemoteWriteTarget {
        name,
        url,
        timeout,
        headers,
        auth,
        tls,
    })
}

fn validate_tls(target: &str, tls: FileTls) -> Result<RemoteWriteTls, ConfigError> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let unusable = |key: &str, path: &Path, detail: String| ConfigError::RemoteWrite {
        target: target.to_owned(),
        problem: format!("tls_config.{key} {}: {detail}", path.display()),
    };
    let certs = |key: &str, path: &Path| -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let certs: Vec<_> = CertificateDer::pem_file_iter(path)
            .map_err(|e| unusable(key, path, e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| unusable(key, path, e.to_string()))?;
        if certs.is_empty() {
            return Err(unusable(key, path, "no PEM certificate in it".into()));
        }
        Ok(certs)
    };
    let ca_certs = match &tls.ca_file {
        Some(path) => certs("ca_file", path)?,
        None => Vec::new(),
    };
    let client_identity = match (&tls.cert_file, &tls.key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(ClientIdentity {
            chain: certs("cert_file", cert)?,
            key: std::sync::Arc::new(
                PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| unusable("key_file", key, e.to_string()))?,
            ),
        }),
        _ => {
            return Err(ConfigError::RemoteWrite {
                target: target.to_owned(),
                problem: "tls_config needs both cert_file and key_file, or neither".into(),
            });
        }
    };
    if let Some(name) = &tls.server_name
        && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
    {
        return Err(ConfigError::RemoteWrite {
            target: target.to_owned(),
            problem: format!("tls_config.server_name {name:?} is not a DNS name or IP address"),
        });
    }
    Ok(RemoteWriteTls {
        ca_certs,
        client_identity,
        server_name: tls.server_name,
        insecure_skip_verify: tls.insecure_skip_verify,
    })
}

/// The URL as error messages show it: scheme, host, port and path only, so a password put
/// in it by mistake is not printed.
fn shown_url(text: &str) -> String {
    match reqwest::Url::parse(text) {
        Ok(url) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}{}",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                url.path()
            )
        }
        Err(_) => "(url)".to_owned(),
    }
}

/// A credential file: bounded like a password file, trimmed of its final newline.
fn read_secret(target: &str, key: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text =
        super::password::read_secret_file(path).map_err(|detail| ConfigError::RemoteWrite {
            target: target.to_owned(),
            problem: format!("{key} {}: {detail}", path.display()),
        })?;
    let text = text.trim_end_matches(['\r', '\n']);
    if text.is_empty() {
        return Err(ConfigError::RemoteWrite {
            target: target.to_owned(),
            problem: format!("{key} {} is empty", path.display()),
        });
    }
    Ok(SecretString::from(text.to_owned()))
}

/// The target of `--remote-write.url`.
pub(super) fn from_flag(url: &str) -> Result<RemoteWriteTarget, ConfigError> {
    validate_target(FileRemoteWrite {
        url: url.to_owned(),
        ..FileRemoteWrite::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::OneOrMany;

    fn parse(yaml: &str) -> Result<RemoteWriteTarget, ConfigError> {
        let file: OneOrMany = crate::yaml::parse(yaml).expect("yaml");
        validate_target(file.into_vec().remove(0))
    }

    #[test]
    fn a_list_or_a_mapping_with_prometheus_keys() {
        let t = parse("- url: http://127.0.0.1:9090/api/v1/write\n  remote_timeout: 5s\n  headers:\n    X-Scope-OrgID: home\n").unwrap();
        assert_eq!(t.name, "127.0.0.1:9090");
        assert_eq!(t.timeout, Duration::from_secs(5));
        assert!(t.headers["x-scope-orgid"].is_sensitive());
        let t = parse("url: https://mimir.example/api/v1/push\nname: mimir\n").unwrap();
        let keyed =
            parse("url: https://hosted.example/api/v1/write?api_key=s3cret-key&tenant=t1\n")
                .unwrap();
        assert_eq!(
            keyed.shown_url(),
            "https://hosted.example/api/v1/write?api_key=<redacted>&tenant=<redacted>"
        );
        assert!(!format!("{keyed:?}").contains("s3cret-key"));
        assert_eq!(
            keyed.url.query(),
            Some("api_key=s3cret-key&tenant=t1"),
            "still sent"
        );
        assert_eq!(t.name, "mimir");
        assert_eq!(t.timeout, DEFAULT_REMOTE_TIMEOUT);
    }

    #[test]
    fn a_bare_query_token_is_redacted_whole() {
        for (url, shown) in [
            (
                "https://hosted.example/write?s3cr3t",
                "https://hosted.example/write?<redacted>",
            ),
            (
                "https://hosted.example/write?tenant=t1&s3cr3t",
                "https://hosted.example/write?tenant=<redacted>&<redacted>",
            ),
        ] {
            let t = parse(&format!("url: {url}\n")).unwrap();
            assert_eq!(t.shown_url(), shown);
            assert!(!format!("{t:?}").contains("s3cr3t"));
            assert!(t.url.query().unwrap().ends_with("s3cr3t"), "still sent");
        }
    }

    #[test]
    fn inline_secrets_and_secrets_in_clear_are_refused() {
        for (yaml, says) in [
            (
                "url: https://x/w\nbasic_auth:\n  username: u\n  password: hunter2\n",
                "password_file",
            ),
            (
                "url: https://x/w\nauthorization:\n  credentials: hunter2\n",
                "credentials_file",
            ),
            ("url: https://u:hunter2@x/w\n", "user or password"),
            ("url: ftp://x/w\n", "http(s) URL"),
            (
                "url: https://x/w\nheaders:\n  Authorization: Bearer hunter2\n",
                "set by the exporter",
            ),
            ("url: https://x/w\nremote_timeout: soon\n", "remote_timeout"),
            (
                "url: https://x/w\ntls_config:\n  cert_file: /nonexistent\n",
                "both cert_file and key_file",
            ),
        ] {
            let error = parse(yaml).unwrap_err().to_string();
            assert!(error.contains(says), "{yaml}: {error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn credentials_need_https_off_this_machine() {
        let dir = std::env::temp_dir().join(format!("rw-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cret-token\n").unwrap();
        let yaml = |url: &str| {
            format!(
                "url: {url}\nauthorization:\n  credentials_file: {}\n",
                token.display()
            )
        };
        let error = parse(&yaml("http://prometheus.lan:9090/api/v1/write")).unwrap_err();
        assert!(error.to_string().contains("in clear"), "{error}");
        let t = parse(&yaml("http://127.0.0.1:9090/api/v1/write")).unwrap();
        assert!(!format!("{t:?}").contains("s3cret-token"));
        match t.auth {
            Some(RemoteWriteAuth::Authorization {
                scheme,
                credentials,
                ..
            }) => {
                assert_eq!(scheme, "Bearer");
                assert_eq!(
                    secrecy::ExposeSecret::expose_secret(&credentials),
                    "s3cret-token"
                );
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn external_labels_default_to_the_job_and_refuse_reserved_names() {
        assert_eq!(
            external_labels(None).unwrap(),
            [("job".to_owned(), "dexcom".to_owned())]
        );
        for bad in ["account", "__name__", "1x", "a-b", ""] {
            let given = BTreeMap::from([(bad.to_owned(), "v".to_owned())]);
            assert!(external_labels(Some(given)).is_err(), "{bad}");
        }
    }
}
