//! The exporter's HTTP side: the accept loop with its connection limits (`serve.rs`), the
//! endpoints (`routes.rs`) with the landing page (`landing.rs`), and `--web.config.file`
//! (`web_config.rs`, with `tls.rs` and `basic_auth.rs`). The simulator reuses the accept loop,
//! which is all this module shows outside the crate ([`serve`], [`respond`], [`ServeLimits`]).

mod basic_auth;
mod chart;
pub(crate) mod landing;
pub(crate) mod routes;
pub(crate) mod serve;
mod tls;
pub(crate) mod web_config;

pub use serve::{HttpResponse, ServeLimits, TlsSource, respond, serve};
pub use tls::TlsError;
pub use web_config::WebConfigError;
