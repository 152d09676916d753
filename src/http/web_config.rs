//! `--web.config.file`: TLS and basic authentication for the exporter's endpoints, in the
//! Prometheus exporter-toolkit format, so the same file works for this exporter and the Go ones.
//!
//! Supported: `tls_server_config` (`cert_file`, `key_file`, `client_auth_type`
//! `NoClientCert`/`RequireAndVerifyClientCert` with `client_ca_file`, `min_version`,
//! `max_version`), `http_server_config.headers`, and `basic_auth_users` (bcrypt hashes). Keys
//! we do not implement are rejected by name rather than silently ignored.
//!
//! As in the toolkit, changes apply without a restart: each request checks whether the file or
//! the certificate, key and CA files it names have changed (a `stat` each) and re-reads them if
//! so, so a renewed certificate or a changed password takes effect on the next connection. A
//! file that no longer loads is refused with an error in the log and the last good
//! configuration stays in force: a typo must not take the exporter off the air at night.
//! Turning TLS on or off changes the URL scrapers use and so needs a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;

pub use super::basic_auth::BasicAuth;
use super::tls::{TlsError, TlsServerConfig, tls_config};

/// What is wrong with a web configuration file; the exporter exits with code 2.
#[derive(Debug, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "a field is named for what it holds, and the #[error] message shows it in context"
)]
pub enum WebConfigError {
    /// The file cannot be read.
    #[error("cannot read --web.config.file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid --web.config.file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// The TLS settings cannot be used (a certificate, key or CA file, or the settings).
    #[error("--web.config.file {path}: {source}")]
    Tls {
        /// The web configuration file.
        path: PathBuf,
        #[source]
        source: TlsError,
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
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The file this came from and the files it names, watched for changes.
    files: Vec<PathBuf>,
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
            crate::yaml::parse(&text).map_err(|error| WebConfigError::Syntax {
                path: path.to_owned(),
                message: error.message,
            })?;
        // Relative certificate paths are relative to the configuration file, as in the toolkit.
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let tls = file
            .tls_server_config
            .map(|tls| tls_config(base, tls))
            .transpose()
            .map_err(|source| WebConfigError::Tls {
                path: path.to_owned(),
                source,
            })?;
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
                    let Ok(parts) = hash.parse::<bcrypt::HashParts>() else {
                        return Err(WebConfigError::Syntax {
                            path: path.to_owned(),
                            message: format!(
                                "basic_auth_users.{user} is not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')"
                            ),
                        });
                    };
                    if parts.get_cost() > super::basic_auth::MAX_BCRYPT_COST {
                        return Err(WebConfigError::Syntax {
                            path: path.to_owned(),
                            message: format!(
                                "basic_auth_users.{user} has bcrypt cost {}: at most {} (each failed login costs one verify; 10 is usual)",
                                parts.get_cost(),
                                super::basic_auth::MAX_BCRYPT_COST
                            ),
                        });
                    }
                }
                Some(Arc::new(BasicAuth::new(users.into_iter().collect())))
            }
            _ => None,
        };
        let mut files = vec![path.to_owned()];
        if let Some(tls) = &tls {
            files.extend(tls.files.iter().cloned());
        }
        Ok(WebConfig {
            tls: tls.map(|tls| tls.config),
            basic_auth,
            headers,
            files,
        })
    }
}

/// Each watched file's modification time, size and inode (a file replaced by rename, as
/// certificate tools and Kubernetes do, gets a new inode); `None` for a file that is missing.
type Stamp = Vec<Option<(SystemTime, u64, u64)>>;

fn stamp(files: &[PathBuf]) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    files
        .iter()
        .map(|file| {
            let meta = std::fs::metadata(file).ok()?;
            Some((meta.modified().ok()?, meta.len(), meta.ino()))
        })
        .collect()
}

/// The web configuration in force, re-read when its files change.
#[derive(Debug)]
pub struct LiveWebConfig {
    current: ArcSwap<Watched>,
    /// Held while re-reading, so concurrent requests do not all re-read (they use the old
    /// configuration meanwhile). Only ever tried, never waited for.
    reloading: Mutex<()>,
}

#[derive(Debug)]
struct Watched {
    config: Arc<WebConfig>,
    /// The stamp of `config.files` when they were last read.
    stamp: Stamp,
    /// The last failed re-read: when, and what it said. A broken file is retried every
    /// [`RETRY_BROKEN`] (it may name a certificate that does not exist yet) but logged once.
    failed: Option<(Instant, String)>,
}

/// How often a web configuration that failed to load is tried again while nothing changes.
const RETRY_BROKEN: Duration = Duration::from_secs(10);

impl LiveWebConfig {
    /// Starts from `initial`; without a file (`WebConfig::default()`) nothing is watched.
    pub fn new(initial: WebConfig) -> Self {
        let stamp = stamp(&initial.files);
        LiveWebConfig {
            current: ArcSwap::from_pointee(Watched {
                config: Arc::new(initial),
                stamp,
                failed: None,
            }),
            reloading: Mutex::new(()),
        }
    }

    /// The configuration to apply to a request now: re-read first if a file changed.
    pub fn current(&self) -> Arc<WebConfig> {
        self.refresh(false)
    }

    /// Re-reads the file now, changed or not (SIGHUP); `false` when there is no file.
    pub fn reload(&self) -> bool {
        if self.current.load().config.files.is_empty() {
            return false;
        }
        self.refresh(true);
        true
    }

    fn refresh(&self, force: bool) -> Arc<WebConfig> {
        let watched = self.current.load();
        let Some(path) = watched.config.files.first() else {
            return watched.config.clone();
        };
        let now = stamp(&watched.config.files);
        let retry_due = watched
            .failed
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() >= RETRY_BROKEN);
        if now == watched.stamp && !retry_due && !force {
            return watched.config.clone();
        }
        let Ok(_guard) = self.reloading.try_lock() else {
            return watched.config.clone();
        };
        let refused = |message: String| {
            if watched.failed.as_ref().map(|(_, m)| m) != Some(&message) {
                tracing::error!(
                    "{message}; keeping the previous --web.config.file settings until it is fixed"
                );
            }
            Watched {
                config: watched.config.clone(),
                stamp: now.clone(),
                failed: Some((Instant::now(), message)),
            }
        };
        let next = match WebConfig::load(path) {
            Ok(new) if new.tls.is_some() != watched.config.tls.is_some() => refused(format!(
                "--web.config.file {} turns TLS {}: that needs a restart",
                path.display(),
                if new.tls.is_some() { "on" } else { "off" }
            )),
            Ok(new) => {
                tracing::info!(path = %path.display(), "--web.config.file re-read");
                Watched {
                    stamp: stamp(&new.files),
                    config: Arc::new(new),
                    failed: None,
                }
            }
            Err(error) => refused(error.to_string()),
        };
        let config = next.config.clone();
        self.current.store(Arc::new(next));
        config
    }

    /// Where new TLS connections get their settings, when TLS is on.
    pub fn tls_source(self: &Arc<Self>) -> Option<Arc<dyn super::serve::TlsSource>> {
        let fallback = self.current().tls.clone()?;
        Some(Arc::new(LiveTls {
            live: self.clone(),
            fallback,
        }))
    }
}

/// TLS settings that follow the live web configuration.
struct LiveTls {
    live: Arc<LiveWebConfig>,
    /// Never used in practice (TLS cannot be turned off while running); it spares a panic.
    fallback: Arc<rustls::ServerConfig>,
}

impl super::serve::TlsSource for LiveTls {
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.live
            .current()
            .tls
            .clone()
            .unwrap_or_else(|| self.fallback.clone())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

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

    fn basic(user: &str, pass: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    /// Writes by rename, as editors and certificate tools do.
    fn replace(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[tokio::test]
    async fn a_changed_file_applies_and_a_broken_one_keeps_the_last_good() {
        let first = bcrypt::hash("first", 4).unwrap();
        let path = write(
            "live.yml",
            &format!("basic_auth_users:\n  prometheus: '{first}'\n"),
        );
        let live = LiveWebConfig::new(WebConfig::load(&path).unwrap());
        let allows = |pass: &'static str| {
            let auth = live.current().basic_auth.clone().unwrap();
            async move { auth.allows(Some(&basic("prometheus", pass))).await }
        };
        assert!(allows("first").await);

        let second = bcrypt::hash("second", 4).unwrap();
        replace(
            &path,
            &format!(
                "basic_auth_users:\n  prometheus: '{second}'\nhttp_server_config:\n  headers:\n    X-Test: two\n"
            ),
        );
        assert!(allows("second").await, "the new password applies");
        assert!(!allows("first").await, "the old one, even cached, does not");
        assert_eq!(live.current().headers.len(), 1);

        replace(&path, "basic_auth_users: [not, a, map\n");
        assert!(allows("second").await, "a broken file keeps the last good");
        replace(
            &path,
            "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
        );
        assert!(
            allows("second").await,
            "so does one naming a missing certificate"
        );

        replace(&path, "http_server_config:\n  headers:\n    X-Test: open\n");
        assert!(
            live.current().basic_auth.is_none(),
            "fixed: applies at once, even to drop authentication"
        );
    }

    #[test]
    fn turning_tls_on_needs_a_restart() {
        let dir = std::env::temp_dir().join(format!("web-config-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.join("c.crt"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("c.key"), cert.signing_key.serialize_pem()).unwrap();
        let path = dir.join("web.yml");
        std::fs::write(&path, "http_server_config:\n  headers:\n    X-A: a\n").unwrap();
        let live = LiveWebConfig::new(WebConfig::load(&path).unwrap());
        replace(
            &path,
            "tls_server_config:\n  cert_file: c.crt\n  key_file: c.key\n",
        );
        let now = live.current();
        assert!(now.tls.is_none(), "still plain HTTP");
        assert_eq!(now.headers.len(), 1, "and still the previous settings");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_bcrypt_cost_above_12_is_refused_at_load() {
        let hash = bcrypt::hash("s3cret", 13).unwrap();
        let path = write(
            "costly.yml",
            &format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
        );
        let err = WebConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("cost 13") && err.contains("at most 12"),
            "{err}"
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
        let header = basic;
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
