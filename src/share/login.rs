//! Logging in: the two password-bearing requests, each behind the account's [`LoginGate`], and
//! the gate's memory kept with a fingerprint of the password it is about. Every path to
//! `AuthenticatePublisherAccount` and `LoginPublisherAccountById` starts at `ensure_session`,
//! which needs the gate's permit; the request methods take that permit as an argument, so no
//! code path can send the password without asking.

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::client::{FINGERPRINT_COST, Login, ShareClient};
use super::error::{ShareError, redact_excerpt};
use super::gate::{GateClosed, LoginGate, LoginOutcome, LoginPermit, StoreFault};
use super::region::Endpoint;
use crate::clock::from_unix_ms;

impl ShareClient {
    pub(super) async fn ensure_session(&mut self) -> Result<SecretString, ShareError> {
        if let Some(session) = &self.session_id {
            return Ok(session.clone());
        }
        if let Some(fault @ StoreFault::Duplicate { .. }) = &self.store_fault {
            // For good: another entry is this account. Looked at again each interval (nothing
            // is sent), so the poller wakes when `/metrics` says the next attempt is.
            return Err(self.state_unavailable(fault.clone()));
        }
        if self.store_fault.is_some() {
            // Fail closed until the gate's memory can be kept again: try now.
            self.reload_gate();
            if !matches!(
                self.store_fault,
                Some(StoreFault::Unreadable { .. } | StoreFault::Duplicate { .. })
            ) {
                // Read back (or never unreadable): can it be saved now?
                let _ = self.save_gate().await;
            }
            if let Some(hold) = self.login_hold().filter(|h| h.fault.is_some())
                && let Some(fault) = self.store_fault.clone()
            {
                return Err(ShareError::StateUnavailable {
                    until: from_unix_ms(hold.until_ms),
                    fault,
                });
            }
        }
        self.check_fingerprint().await;
        let permit = self
            .gate
            .open(self.gate_now())
            .map_err(|closed| self.deferred(closed))?;
        let (result, sent) = self.login(&permit).await;
        if sent {
            // Counted once the password may have left: a login that never connected is not
            // one (`dexcom_logins_total` would otherwise climb with no network at all).
            self.logins_sent += 1;
            self.observer.login_started();
        } else {
            self.gate.release(permit);
        }
        // A failure to save what came back is held on to (the next login waits for it); the
        // answer itself stands.
        let _ = self.save_gate().await;
        let session = SecretString::from(result?.hyphenated().to_string());
        self.session_id = Some(session.clone());
        Ok(session)
    }

    /// The login requests, each recorded with the gate as soon as it ends; also whether any
    /// of them may have reached Share (`false`: the password never left).
    async fn login(&mut self, permit: &LoginPermit) -> (Result<Uuid, ShareError>, bool) {
        let mut sent = false;
        let account_id = match (self.account_id, &self.settings.login) {
            (Some(id), _) => id,
            (None, Login::AccountId(id)) => *id,
            (None, Login::Username(name)) => {
                let name = name.clone();
                if let Err(error) = self.note_in_flight(permit).await {
                    return (Err(error), sent);
                }
                let result = self.authenticate(permit, &name).await;
                sent |= self.record(permit, &result);
                match result {
                    Ok(id) => {
                        self.account_id = Some(id);
                        if let Err(error) = self.resolved(id).await {
                            return (Err(error), sent);
                        }
                        id
                    }
                    Err(error) => return (Err(error), sent),
                }
            }
        };
        if let Err(error) = self.note_in_flight(permit).await {
            return (Err(error), sent);
        }
        let result = self.login_by_id(permit, account_id).await;
        sent |= self.record(permit, &result);
        (result, sent)
    }

    /// Share resolved the login name to `id`: the gate becomes that ID's, shared with every
    /// other spelling of the account (and refused when another entry is that account).
    async fn resolved(&mut self, id: Uuid) -> Result<(), ShareError> {
        let Some(store) = self.gate_store.clone() else {
            return Ok(());
        };
        let state = self.gate.state().clone();
        let merged = tokio::task::spawn_blocking(move || store.resolved(id, &state))
            .await
            .unwrap_or_else(|error| {
                Err(StoreFault::Unwritable {
                    path: "the state directory".into(),
                    detail: error.to_string(),
                })
            });
        match merged {
            Ok(state) => {
                self.gate.replace_state(state);
                Ok(())
            }
            Err(fault) => {
                self.hold_for(fault.clone());
                Err(self.state_unavailable(fault))
            }
        }
    }

    /// The error of a login not made because the gate's memory cannot be kept: until the
    /// gate's hold ends (the next try).
    fn state_unavailable(&self, fault: StoreFault) -> ShareError {
        let until = self
            .login_hold()
            .map_or_else(std::time::SystemTime::now, |h| from_unix_ms(h.until_ms));
        ShareError::StateUnavailable { until, fault }
    }

    /// Saves, before the password leaves, that it is about to: a run killed before the answer
    /// still has the attempt counted by the next one. When that cannot be saved durably the
    /// password does not leave (fail closed).
    async fn note_in_flight(&mut self, permit: &LoginPermit) -> Result<(), ShareError> {
        self.gate.begin_request(permit, self.clock.now_ms());
        match self.save_gate().await {
            Ok(()) => Ok(()),
            Err(fault) => {
                self.gate.abandon_request();
                Err(self.state_unavailable(fault))
            }
        }
    }

    /// Tells the gate how a login request ended; `true` when it may have reached Share.
    fn record<T>(&mut self, permit: &LoginPermit, result: &Result<T, ShareError>) -> bool {
        let outcome = login_outcome(result);
        self.gate.record(permit, self.clock.now_ms(), outcome);
        outcome != LoginOutcome::NotSent
    }

    fn deferred(&self, closed: GateClosed) -> ShareError {
        ShareError::LoginDeferred {
            until: from_unix_ms(closed.until_ms),
            confirmed: self.gate.confirmed(),
        }
    }

    /// Compares the saved state's password fingerprint with this password now rather than at
    /// the first login, so what the gate says at start is about the password in use.
    pub async fn check_saved_password(&mut self) {
        self.check_fingerprint().await;
    }

    /// Once per client: a saved state about a different password (the user fixed it) is
    /// dropped, so the new password is tried at once.
    async fn check_fingerprint(&mut self) {
        if std::mem::replace(&mut self.fingerprint_checked, true) {
            return;
        }
        let Some(fingerprint) = self.gate.state().fingerprint.clone() else {
            return;
        };
        let password = self.settings.password.clone();
        let same = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.expose_secret(), &fingerprint).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !same {
            if !self.gate.state().failures_ms.is_empty() {
                tracing::info!(
                    "the password differs from the one Dexcom Share refused before: trying it now"
                );
            }
            self.gate = LoginGate::new(self.gate.for_new_password(), self.gate.interval());
        }
    }

    /// Saves the gate's state with a fingerprint of this password, off the async workers
    /// (bcrypt and fsync are slow). A failure holds the password until a save succeeds.
    pub(super) async fn save_gate(&mut self) -> Result<(), StoreFault> {
        let Some(store) = self.gate_store.clone() else {
            return Ok(());
        };
        if self.gate.state().fingerprint.is_none() {
            let password = self.settings.password.clone();
            let hashed = tokio::task::spawn_blocking(move || {
                bcrypt::hash(password.expose_secret(), FINGERPRINT_COST).ok()
            })
            .await
            .ok()
            .flatten();
            if let Some(fingerprint) = hashed {
                self.gate.set_fingerprint(fingerprint);
            }
        }
        let state = self.gate.state().clone();
        let path_hint = format!("{store:?}");
        let saved = tokio::task::spawn_blocking(move || store.save(&state))
            .await
            .unwrap_or_else(|error| {
                Err(StoreFault::Unwritable {
                    path: path_hint,
                    detail: error.to_string(),
                })
            });
        match saved {
            Ok(()) => {
                match self.store_fault.take() {
                    Some(StoreFault::Unwritable { .. }) => {
                        self.said_fault = None;
                        tracing::info!("the login gate's memory is saved again: logins may go");
                    }
                    // A duplicate is for the life of the process.
                    Some(duplicate @ StoreFault::Duplicate { .. }) => {
                        self.store_fault = Some(duplicate);
                    }
                    // Unreadable was replaced by this save.
                    Some(StoreFault::Unreadable { .. }) | None => {}
                }
                Ok(())
            }
            Err(fault) => {
                self.hold_for(fault.clone());
                Err(fault)
            }
        }
    }

    async fn authenticate(&self, _permit: &LoginPermit, name: &str) -> Result<Uuid, ShareError> {
        let body = serde_json::json!({
            "accountName": name,
            "password": self.settings.password.expose_secret(),
            "applicationId": self.settings.application_id,
        });
        let answer = self.post(Endpoint::Authenticate, &[], Some(body)).await?;
        self.parse_uuid_body(Endpoint::Authenticate, &answer.bytes)
    }

    async fn login_by_id(
        &self,
        _permit: &LoginPermit,
        account_id: Uuid,
    ) -> Result<Uuid, ShareError> {
        let body = serde_json::json!({
            "accountId": account_id.hyphenated().to_string(),
            "password": self.settings.password.expose_secret(),
            "applicationId": self.settings.application_id,
        });
        let answer = self.post(Endpoint::LoginById, &[], Some(body)).await?;
        self.parse_uuid_body(Endpoint::LoginById, &answer.bytes)
    }

    /// Parses a login answer: a JSON string holding a UUID that is not the nil UUID.
    fn parse_uuid_body(&self, endpoint: Endpoint, body: &[u8]) -> Result<Uuid, ShareError> {
        let text: String =
            serde_json::from_slice(body).map_err(|_| ShareError::InvalidResponse {
                endpoint,
                detail: format!(
                    "expected a quoted UUID, got {}",
                    redact_excerpt(&self.scrub(&String::from_utf8_lossy(body)))
                ),
            })?;
        let id = Uuid::parse_str(text.trim()).map_err(|_| ShareError::InvalidResponse {
            endpoint,
            detail: format!(
                "expected a UUID, got {}",
                redact_excerpt(&self.scrub(&text))
            ),
        })?;
        if id.is_nil() {
            return Err(ShareError::NilUuid { endpoint });
        }
        Ok(id)
    }
}

/// How a login request's result counts against the account.
fn login_outcome<T>(result: &Result<T, ShareError>) -> LoginOutcome {
    match result {
        Ok(_) => LoginOutcome::Accepted,
        Err(ShareError::AuthFailed { .. } | ShareError::NilUuid { .. }) => LoginOutcome::Rejected,
        Err(ShareError::InvalidArgument { .. }) => LoginOutcome::Rejected,
        Err(ShareError::LockedOut { .. }) => LoginOutcome::LockedOut,
        Err(ShareError::Connection { source, .. }) if source.is_connect() => LoginOutcome::NotSent,
        Err(
            ShareError::InvalidRequest { .. }
            | ShareError::ClientBuild { .. }
            | ShareError::LoginDeferred { .. }
            | ShareError::StateUnavailable { .. },
        ) => LoginOutcome::NotSent,
        Err(_) => LoginOutcome::Ambiguous,
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::tests::client;
    use super::*;

    #[test]
    fn uuid_bodies() {
        let client = client("hunter22");
        let parse_uuid_body = |endpoint, body: &[u8]| client.parse_uuid_body(endpoint, body);
        let ok = parse_uuid_body(
            Endpoint::LoginById,
            br#""55555555-5555-5555-5555-555555555555""#,
        );
        assert_eq!(
            ok.unwrap().to_string(),
            "55555555-5555-5555-5555-555555555555"
        );
        let nil = parse_uuid_body(
            Endpoint::LoginById,
            br#""00000000-0000-0000-0000-000000000000""#,
        );
        assert!(matches!(nil, Err(ShareError::NilUuid { .. })));
        let bare = parse_uuid_body(
            Endpoint::Authenticate,
            b"55555555-5555-5555-5555-555555555555",
        );
        assert!(matches!(bare, Err(ShareError::InvalidResponse { .. })));
        let junk = parse_uuid_body(Endpoint::Authenticate, br#""hello""#);
        assert!(matches!(junk, Err(ShareError::InvalidResponse { .. })));
        let echo = parse_uuid_body(
            Endpoint::Authenticate,
            br#"<html>bad request: {"password":"hunter22"}</html>"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            !echo.contains("hunter22") && echo.contains("<password>"),
            "{echo}"
        );
    }

    /// A login whose connection is refused never sent the password: it must not count.
    #[tokio::test]
    async fn a_refused_connection_is_not_sent() {
        // Bound and dropped: nothing listens there now, so the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut client = client("hunter22");
        client.settings.base_url = format!("http://127.0.0.1:{port}/ShareWebServices/Services/")
            .parse()
            .unwrap();
        let result = client.post(Endpoint::Authenticate, &[], None).await;
        assert_eq!(login_outcome(&result), LoginOutcome::NotSent);
    }
}
