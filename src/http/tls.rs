//! TLS settings from the `tls_server_config` section of `--web.config.file`, built into a
//! rustls server configuration with the versions and client-certificate rules the exporter
//! toolkit knows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use serde::Deserialize;

/// The `tls_server_config` section of `--web.config.file`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsServerConfig {
    pub(super) cert_file: PathBuf,
    pub(super) key_file: PathBuf,
    pub(super) client_auth_type: Option<String>,
    pub(super) client_ca_file: Option<PathBuf>,
    pub(super) min_version: Option<String>,
    pub(super) max_version: Option<String>,
}

/// Why the TLS settings cannot be used; the web configuration names its file around it.
#[derive(Debug, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "a field is named for what it holds, and the #[error] message shows it in context"
)]
pub enum TlsError {
    /// A certificate, key or CA file cannot be loaded.
    #[error("cannot load {what} {file}: {message}")]
    Pem {
        /// Which item (certificate, key, client CA).
        what: &'static str,
        /// The PEM file.
        file: PathBuf,
        message: String,
    },
    /// The TLS settings are inconsistent.
    #[error("{message}")]
    Settings { message: String },
}

/// The TLS settings and the files they were read from.
pub(super) struct LoadedTls {
    pub(super) config: Arc<rustls::ServerConfig>,
    pub(super) files: Vec<PathBuf>,
}

/// Builds the rustls configuration of `tls`, its files relative to `base`.
pub(super) fn tls_config(base: &Path, tls: TlsServerConfig) -> Result<LoadedTls, TlsError> {
    let pem_error = |what: &'static str, file: &Path, message: String| TlsError::Pem {
        what,
        file: file.to_owned(),
        message,
    };
    let cert_file = base.join(&tls.cert_file);
    let key_file = base.join(&tls.key_file);
    let mut files = vec![cert_file.clone(), key_file.clone()];
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
    let tls_error = |message: String| TlsError::Settings { message };
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
            files.push(ca_file.clone());
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
    Ok(LoadedTls {
        config: Arc::new(config),
        files,
    })
}
