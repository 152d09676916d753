//! The simulator's request handling: routing, fault injection, and the three endpoints'
//! semantics in the order Share applies them (lockout before password check, unknown session
//! before expired session, …). Parameters are read in `params.rs`.

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::params::{NotAString, Params, query_params};
use super::scenario::AuthErrorStyle;
use super::{Fault, SessionRecord, Simulator, edge, wire};
use crate::http::serve::{HttpResponse, respond};
use crate::share::{Endpoint, NIL_UUID};

const SERVICES_PREFIX: &str = "/ShareWebServices/Services/";
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Handles one HTTP request. Every answer carries the simulated clock in `Date`, as Share's
/// carries Share's: clients compare it with their own and with reading times.
pub(super) async fn handle(
    sim: Arc<Simulator>,
    request: Request<Incoming>,
    shutdown: CancellationToken,
) -> HttpResponse {
    let endpoint =
        strip_prefix_ignore_case(request.uri().path(), SERVICES_PREFIX).and_then(|rest| {
            Endpoint::ALL
                .into_iter()
                .find(|e| e.path().eq_ignore_ascii_case(rest))
        });
    let mut response = route(&sim, request, shutdown).await;
    if let Some(endpoint) = endpoint {
        wire::as_share_sends(&mut response, endpoint);
    }
    if let Ok(date) =
        hyper::header::HeaderValue::from_str(&httpdate::fmt_http_date(sim.clock.now()))
    {
        response.headers_mut().insert(hyper::header::DATE, date);
    }
    response
}

async fn route(
    sim: &Arc<Simulator>,
    request: Request<Incoming>,
    shutdown: CancellationToken,
) -> HttpResponse {
    let path = request.uri().path().to_owned();
    let Some(rest) = strip_prefix_ignore_case(&path, SERVICES_PREFIX) else {
        return respond(404, "text/plain; charset=utf-8", "Not Found\n");
    };
    if rest.eq_ignore_ascii_case("General/LoginPublisherAccountByName") {
        // The retired endpoint still answers, with the nil UUID, for every login.
        return json(200, format!("\"{NIL_UUID}\""));
    }
    let Some(endpoint) = Endpoint::ALL
        .into_iter()
        .find(|e| e.path().eq_ignore_ascii_case(rest))
    else {
        return respond(404, "text/plain; charset=utf-8", "Not Found\n");
    };
    if request.method() != Method::POST {
        let mut response = respond(405, "text/plain; charset=utf-8", "Method Not Allowed\n");
        response.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("POST"),
        );
        return response;
    }
    let query = query_params(request.uri().query().unwrap_or(""));
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return respond(413, "text/plain; charset=utf-8", "Payload Too Large\n"),
    };
    let params = Params::new(query, &body);

    let account = sim.attribute(endpoint, &params);
    sim.count(endpoint, account);

    match sim.take_fault(endpoint) {
        Some(Fault::Slow(delay)) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return respond(503, "text/plain", ""),
            }
        }
        Some(fault) => return sim.fault_response(fault),
        None => {}
    }

    match endpoint {
        Endpoint::Authenticate => sim.authenticate(&params),
        Endpoint::LoginById => sim.login_by_id(&params),
        Endpoint::ReadGlucose => sim.read(&params),
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// One of Share's JSON answers; `handle` adds the headers Share sends with it.
fn json(status: u16, body: String) -> HttpResponse {
    respond(status, "application/json", body)
}

impl Simulator {
    fn share_fault(&self, code: &str, message: &str) -> HttpResponse {
        json(
            500,
            wire::fault_body(self.scenario.subcode_style, code, message, self.clock.now()),
        )
    }

    fn invalid_argument(&self, detail: &str) -> HttpResponse {
        self.share_fault(
            "InvalidArgument",
            &format!("Missing required field(s): {detail}"),
        )
    }

    fn bad_credentials(&self, by: &str, who: &str) -> HttpResponse {
        match self.scenario.auth_error_style {
            AuthErrorStyle::AccountPasswordInvalid => {
                self.share_fault("AccountPasswordInvalid", "Publisher account password failed")
            }
            AuthErrorStyle::SsoInternalError => self.share_fault(
                "SSO_InternalError",
                &format!(
                    "Synchronization of SSO account during authenticate call failed Time out issue.  \
                     {by}={who} Error encountered accessing Keycloak endpoint: UAM_ERROR: \
                     HttpStatus='401 UNAUTHORIZED(401)' Msg=Cannot Authenticate by {by}='{who}'"
                ),
            ),
        }
    }

    fn fault_response(&self, fault: Fault) -> HttpResponse {
        match fault {
            Fault::Html500 => respond(502, "text/html", wire::HTML_BAD_GATEWAY),
            Fault::EdgeChallenge => edge::challenge(edge::CHALLENGE_STATUS),
            Fault::EdgeChallengeOk => edge::challenge(200),
            Fault::EdgeRateLimited { status } => edge::rate_limited(status),
            Fault::EdgeOriginError { status } => edge::origin_error(status),
            Fault::EmptyBody200 => respond(200, "application/json", ""),
            Fault::JsonWithoutCode => respond(500, "application/json", wire::JSON_WITHOUT_CODE),
            Fault::RateLimited { retry_after } => {
                let mut response = respond(429, "text/plain; charset=utf-8", "Too Many Requests\n");
                let header = retry_after.and_then(|after| {
                    hyper::header::HeaderValue::from_str(&after.as_secs().max(1).to_string()).ok()
                });
                if let Some(value) = header {
                    response
                        .headers_mut()
                        .insert(hyper::header::RETRY_AFTER, value);
                }
                response
            }
            Fault::ShareFault { code, message } => self.share_fault(&code, &message),
            Fault::Slow(_) => respond(500, "text/plain", ""),
            Fault::Raw {
                status,
                content_type,
                body,
            } => respond(status, content_type, body),
            Fault::Redirect { location } => {
                let mut response = respond(307, "text/plain", "");
                if let Ok(value) = hyper::header::HeaderValue::from_str(&location) {
                    response
                        .headers_mut()
                        .insert(hyper::header::LOCATION, value);
                }
                response
            }
        }
    }

    /// Which account a request is about, for the per-account request counters.
    fn attribute(&self, endpoint: Endpoint, params: &Params) -> Option<usize> {
        match endpoint {
            Endpoint::Authenticate => {
                let name = params.body_string("accountName").ok()??;
                self.account_by_name(name)
            }
            Endpoint::LoginById => {
                let id = Uuid::parse_str(params.body_string("accountId").ok()??).ok()?;
                self.accounts.iter().position(|a| a.id == id)
            }
            Endpoint::ReadGlucose => {
                let id = Uuid::parse_str(&params.any_text("sessionId")?).ok()?;
                self.lock().sessions.get(&id).map(|s| s.account)
            }
        }
    }

    fn account_by_name(&self, name: &str) -> Option<usize> {
        self.accounts.iter().position(|a| {
            a.spec.region.unwrap_or(self.scenario.region) == self.scenario.region
                && a.spec.names().any(|n| n.eq_ignore_ascii_case(name))
        })
    }

    fn count(&self, endpoint: Endpoint, account: Option<usize>) {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        match account {
            Some(i) => {
                state.counts[i].bump(endpoint);
                if endpoint == Endpoint::Authenticate {
                    state.authenticate_times[i].push(now);
                }
            }
            None => state.unattributed.bump(endpoint),
        }
    }

    fn take_fault(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut state = self.lock();
        if let Some(position) = state
            .planned
            .iter()
            .position(|p| p.endpoint.is_none_or(|e| e == endpoint))
        {
            let planned = &mut state.planned[position];
            let fault = planned.fault.clone();
            planned.remaining = planned.remaining.saturating_sub(1);
            if planned.remaining == 0 {
                state.planned.remove(position);
            }
            return Some(fault);
        }
        let rates = &self.scenario.faults;
        let roll = state.rng.f64();
        let mut threshold = 0.0;
        let candidates = [
            (rates.html_500, Fault::Html500),
            (
                rates.rate_limit,
                Fault::RateLimited {
                    retry_after: Some(rates.retry_after),
                },
            ),
            (rates.slow, Fault::Slow(rates.slow_delay)),
            (rates.empty_body, Fault::EmptyBody200),
        ];
        for (rate, fault) in candidates {
            threshold += rate;
            if roll < threshold {
                return Some(fault);
            }
        }
        None
    }

    /// Locked accounts answer with the max-attempts code, even to the right password.
    fn locked(&self, account: usize) -> bool {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let failures = &mut state.failures[account];
        match failures.locked_until_ms {
            Some(until) if now < until => true,
            Some(_) => {
                *failures = Default::default();
                false
            }
            None => false,
        }
    }

    fn record_password(&self, account: usize, correct: bool) {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let failures = &mut state.failures[account];
        if correct {
            failures.consecutive = 0;
            return;
        }
        failures.consecutive += 1;
        if failures.consecutive >= self.scenario.lockout_after {
            failures.locked_until_ms =
                Some(now + super::duration_ms(self.scenario.lockout_duration));
        }
    }

    fn credential_fields<'p>(
        &self,
        params: &'p Params,
        id_field: &str,
    ) -> Result<(Option<&'p str>, &'p str), Box<HttpResponse>> {
        if !params.body_is_json || params.body.is_none() {
            return Err(Box::new(self.invalid_argument(
                "JSON parse error: the request body must be a JSON object",
            )));
        }
        let id = params
            .body_string(id_field)
            .map_err(|NotAString { found }| Box::new(self.invalid_argument(&format!(
                "JSON parse error: Cannot deserialize value of type `java.util.UUID` from String {found}: UUID has to be represented by standard 36-char representation"
            ))))?;
        let password = match params.body_string("password") {
            Ok(Some(p)) if !p.is_empty() => p,
            _ => return Err(Box::new(self.invalid_argument("password"))),
        };
        match params.body_string("applicationId") {
            Ok(Some(app))
                if self
                    .scenario
                    .region
                    .accepted_application_ids()
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(app)) => {}
            _ => return Err(Box::new(self.invalid_argument("applicationId"))),
        }
        Ok((id, password))
    }

    fn authenticate(&self, params: &Params) -> HttpResponse {
        let (name, password) = match self.credential_fields(params, "accountName") {
            Ok(fields) => fields,
            Err(response) => return *response,
        };
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return self.invalid_argument("accountName");
        };
        let Some(account) = self.account_by_name(name) else {
            return self.bad_credentials("AccountName", name);
        };
        self.check_password(account, password, "AccountName", name)
            .unwrap_or_else(|| json(200, format!("\"{}\"", self.accounts[account].id)))
    }

    /// `None` when the password is right and the account is not locked.
    fn check_password(
        &self,
        account: usize,
        password: &str,
        by: &str,
        who: &str,
    ) -> Option<HttpResponse> {
        if self.locked(account) {
            return Some(self.share_fault(
                &self.scenario.max_attempts_code,
                "Maximum authentication attempts exceeded",
            ));
        }
        let correct = self.accounts[account].spec.password == password;
        self.record_password(account, correct);
        (!correct).then(|| self.bad_credentials(by, who))
    }

    fn login_by_id(&self, params: &Params) -> HttpResponse {
        let (id_text, password) = match self.credential_fields(params, "accountId") {
            Ok(fields) => fields,
            Err(response) => return *response,
        };
        let id_text = id_text.unwrap_or("");
        if id_text.is_empty() {
            return json(200, format!("\"{NIL_UUID}\""));
        }
        let Ok(id) = Uuid::parse_str(id_text) else {
            return self.invalid_argument(&format!(
                "JSON parse error: Cannot deserialize value of type `java.util.UUID` from String \"{id_text}\": UUID has to be represented by standard 36-char representation"
            ));
        };
        if id.is_nil() {
            return json(200, format!("\"{NIL_UUID}\""));
        }
        let Some(account) = self.accounts.iter().position(|a| {
            a.id == id && a.spec.region.unwrap_or(self.scenario.region) == self.scenario.region
        }) else {
            return self.bad_credentials("AccountId", id_text);
        };
        if let Some(rejection) = self.check_password(account, password, "AccountId", id_text) {
            return rejection;
        }
        let session = Uuid::new_v4();
        let expires_ms = self.clock.now_ms() + super::duration_ms(self.scenario.session_ttl);
        self.lock().sessions.insert(
            session,
            SessionRecord {
                account,
                expires_ms,
            },
        );
        json(200, format!("\"{session}\""))
    }

    fn read(&self, params: &Params) -> HttpResponse {
        let Some(session_text) = params.any_text("sessionId") else {
            return self.invalid_argument("sessionId");
        };
        let Ok(session_id) = Uuid::parse_str(&session_text) else {
            return self.invalid_argument(&format!(
                "JSON parse error: Cannot deserialize value of type `java.util.UUID` from String \"{session_text}\": UUID has to be represented by standard 36-char representation"
            ));
        };
        if session_id.is_nil() {
            // Share answers the nil session with a non-JSON empty body.
            return respond(500, "text/plain", "");
        }
        let parse = |name: &str| {
            params
                .any_text(name)
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let (Some(minutes), Some(max_count)) = (parse("minutes"), parse("maxCount")) else {
            return self.invalid_argument("minutes, maxCount");
        };
        let now = self.clock.now_ms();
        let record = self.lock().sessions.get(&session_id).copied();
        let Some(record) = record else {
            return self.share_fault(
                "SessionIdNotFound",
                &format!("Failed to find session object. [SessionId = {session_id}]"),
            );
        };
        if now >= record.expires_ms {
            return self.share_fault(
                "SessionNotValid",
                &format!("Session not active or timed out. [SessionId = {session_id}]"),
            );
        }
        if minutes <= 0 || max_count <= 0 || !self.accounts[record.account].spec.has_follower {
            return json(200, "[]".to_owned());
        }
        let window_ms = minutes.saturating_mul(60_000);
        let count = usize::try_from(max_count).unwrap_or(usize::MAX);
        let readings = self.window(record.account, now, window_ms, count);
        {
            let mut state = self.lock();
            let log = &mut state.read_logs[record.account];
            log.reads += 1;
            log.day_reads += u64::from(max_count >= i64::from(crate::share::MAX_COUNT));
            log.rows_served += readings.len() as u64;
            log.last_read = Some((minutes, max_count));
            log.first_read = log.first_read.or(log.last_read);
        }
        json(
            200,
            wire::readings_body(&readings, self.scenario.legacy_format),
        )
    }
}
