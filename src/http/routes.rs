//! The exporter's HTTP endpoints: the landing page, the telemetry path, `/-/healthy` and
//! `/-/ready`. Handlers only read: the registry is frozen and every value is an atomic, so a
//! scrape never waits for a poll.

use std::fmt::Write as _;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request};
use prometheus_client::registry::Registry;

use super::serve::{HttpResponse, respond};
use super::web_config::LiveWebConfig;
use crate::metrics::{self, Metrics};

/// What the handlers need.
#[derive(Debug)]
pub struct ServerState {
    registry: Registry,
    metrics: Arc<Metrics>,
    telemetry_path: String,
    web: Arc<LiveWebConfig>,
}

impl ServerState {
    /// State serving `metrics` under `telemetry_path`, with the basic auth and headers of
    /// `web` as they are at each request. The registry holding the metrics is built here, once.
    pub fn new(metrics: Arc<Metrics>, telemetry_path: String, web: Arc<LiveWebConfig>) -> Self {
        ServerState {
            registry: metrics.registry(),
            metrics,
            telemetry_path,
            web,
        }
    }
}

/// Answers one request: authentication first (every path, as in the exporter toolkit), then
/// routing, then the configured extra headers.
pub async fn handle(state: Arc<ServerState>, request: Request<Incoming>) -> HttpResponse {
    let web = state.web.current();
    let mut response = match &web.basic_auth {
        Some(auth)
            if !auth
                .allows(request.headers().get(hyper::header::AUTHORIZATION))
                .await =>
        {
            let mut denied = respond(401, "text/plain; charset=utf-8", "Unauthorized\n");
            denied.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Basic realm=\"dexcom_exporter\""),
            );
            denied
        }
        _ => route(&state, &request),
    };
    for (name, value) in &web.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

fn route(state: &ServerState, request: &Request<Incoming>) -> HttpResponse {
    let path = request.uri().path();
    let known =
        path == "/" || path == state.telemetry_path || path == "/-/healthy" || path == "/-/ready";
    if !known {
        return respond(404, "text/plain; charset=utf-8", "Not Found\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = respond(405, "text/plain; charset=utf-8", "Method Not Allowed\n");
        response.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return response;
    }
    if path == state.telemetry_path {
        let mut response = respond(200, metrics::CONTENT_TYPE, metrics::render(&state.registry));
        response.headers_mut().insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static("no-store"),
        );
        return response;
    }
    match path {
        "/-/healthy" => respond(200, "text/plain; charset=utf-8", "Healthy\n"),
        "/-/ready" => {
            let waiting = state
                .metrics
                .accounts()
                .iter()
                .filter(|a| !a.polled_once())
                .count();
            if waiting == 0 {
                respond(200, "text/plain; charset=utf-8", "Ready\n")
            } else {
                respond(
                    503,
                    "text/plain; charset=utf-8",
                    format!("Not ready: waiting for the first poll of {waiting} account(s)\n"),
                )
            }
        }
        _ => respond(200, "text/html; charset=utf-8", landing_page(state)),
    }
}

fn landing_page(state: &ServerState) -> String {
    let path = escape(&state.telemetry_path);
    let mut rows = String::new();
    for account in state.metrics.accounts() {
        let status = if !account.polled_once() {
            "waiting for the first poll".to_owned()
        } else if account.is_up() {
            "up".to_owned()
        } else {
            format!(
                "down ({})",
                account.last_error().map(|r| r.as_str()).unwrap_or("error")
            )
        };
        let latest = account
            .latest()
            .map(|l| {
                let age_ms = state.metrics.now_ms() - l.reading.timestamp_ms;
                let age = std::time::Duration::from_secs(u64::try_from(age_ms / 1000).unwrap_or(0));
                format!("{} ago", humantime::format_duration(age))
            })
            .unwrap_or_else(|| "none yet".to_owned());
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(account.name()),
            escape(&status),
            escape(&latest)
        );
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Dexcom Exporter</title></head>\n<body>\n<h1>Dexcom Exporter</h1>\n<p>Prometheus exporter for Dexcom Share CGM readings, version {version}.</p>\n<ul><li><a href=\"{path}\">Metrics</a></li><li><a href=\"/-/healthy\">Health</a></li><li><a href=\"/-/ready\">Readiness</a></li></ul>\n<table><thead><tr><th>Account</th><th>Share</th><th>Latest reading</th></tr></thead><tbody>{rows}</tbody></table>\n</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
