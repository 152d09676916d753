//! The exporter's HTTP endpoints: the landing page, the telemetry path, `/-/healthy`,
//! `/-/ready` (once every account was polled or its login deferred: one held account does not
//! hold a whole pod unready) and the history as OpenMetrics (`/api/v1/history`, for a backfill
//! while the service runs). Handlers only read: the registry is frozen and every value is an atomic, so a
//! scrape never waits for a poll.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request};
use prometheus_client::registry::Registry;

use super::serve::{HttpResponse, respond};
use super::web_config::LiveWebConfig;
use crate::history::History;
use crate::metrics::{self, Metrics};
use crate::openmetrics::{HISTORY_PATH, OPENMETRICS_CONTENT_TYPE, history_openmetrics};

/// What the handlers need.
#[derive(Debug)]
pub struct ServerState {
    registry: Registry,
    metrics: Arc<Metrics>,
    histories: Vec<Arc<History>>,
    telemetry_path: String,
    web: Arc<LiveWebConfig>,
    external_labels: Vec<(String, String)>,
    simulated: bool,
}

impl ServerState {
    /// State serving `metrics` under `telemetry_path` (and each account's history, in the
    /// same order, on the landing page), with the basic auth and headers of `web` as they are
    /// at each request. The registry holding the metrics is built here, once.
    pub fn new(
        metrics: Arc<Metrics>,
        histories: Vec<Arc<History>>,
        telemetry_path: String,
        web: Arc<LiveWebConfig>,
        external_labels: Vec<(String, String)>,
    ) -> Self {
        ServerState {
            registry: metrics.registry(),
            metrics,
            histories,
            telemetry_path,
            web,
            external_labels,
            simulated: false,
        }
    }

    /// The same state, its landing page saying the accounts are simulated (`--demo`).
    pub fn simulated(self, simulated: bool) -> Self {
        ServerState { simulated, ..self }
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
    let known = path == "/"
        || path == state.telemetry_path
        || path == "/-/healthy"
        || path == "/-/ready"
        || path == HISTORY_PATH;
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
        HISTORY_PATH => {
            let text = history_openmetrics(&state.histories, &state.external_labels);
            let mut response = respond(200, OPENMETRICS_CONTENT_TYPE, text);
            response.headers_mut().insert(
                hyper::header::CACHE_CONTROL,
                hyper::header::HeaderValue::from_static("no-store"),
            );
            response
        }
        "/-/healthy" => respond(200, "text/plain; charset=utf-8", "Healthy\n"),
        "/-/ready" => {
            let waiting = state.metrics.accounts_awaiting_first_poll();
            if waiting == 0 {
                respond(200, "text/plain; charset=utf-8", "Ready\n")
            } else {
                respond(
                    503,
                    "text/plain; charset=utf-8",
                    format!(
                        "Not ready: waiting for the first poll (or login deferral) of {waiting} account(s)\n"
                    ),
                )
            }
        }
        _ => {
            let page = super::landing::render(
                &state.metrics,
                &state.histories,
                &state.telemetry_path,
                state.simulated,
            );
            let mut response = respond(200, "text/html; charset=utf-8", page);
            response.headers_mut().insert(
                hyper::header::CONTENT_SECURITY_POLICY,
                hyper::header::HeaderValue::from_static(super::landing::CONTENT_SECURITY_POLICY),
            );
            response
        }
    }
}
