//! The exporter's HTTP side: the accept loop with its connection limits ([`serve`]), the
//! endpoints ([`routes`]) with the landing page ([`landing`]), and `--web.config.file` ([`web_config`], with `tls.rs` and
//! `basic_auth.rs`). The simulator reuses the accept loop.

mod basic_auth;
pub mod landing;
pub mod routes;
pub mod serve;
mod tls;
pub mod web_config;

pub use basic_auth::BasicAuth;
