//! Helpers shared by the integration tests: a simulator on a loopback port, clients for it.
#![allow(dead_code, missing_docs)]

use std::time::Duration;

use dexcom_exporter::share::{ClientSettings, Login, Region, ShareClient};
use dexcom_exporter::simulator::{AccountSpec, RunningSimulator, Scenario, Simulator};

pub const USERNAME: &str = "publisher@example.com";
pub const PASSWORD: &str = "correct horse battery staple";

/// A scenario with one typical account and the given cadence.
pub fn scenario(interval: Duration) -> Scenario {
    Scenario {
        reading_interval: interval,
        accounts: vec![AccountSpec::new(USERNAME, PASSWORD)],
        ..Scenario::default()
    }
}

/// Starts a simulator on 127.0.0.1 with an OS-chosen port.
pub async fn start(scenario: Scenario) -> RunningSimulator {
    let simulator = Simulator::new(scenario).expect("valid scenario");
    simulator
        .start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind loopback")
}

/// Client settings pointing at `base_url`.
pub fn settings(base_url: &str, login: Login, password: &str) -> ClientSettings {
    ClientSettings {
        base_url: base_url.parse().expect("url"),
        application_id: Region::Us.application_id().to_owned(),
        login,
        password: password.to_owned().into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
    }
}

/// A client logging in by username.
pub fn client(sim: &RunningSimulator, username: &str, password: &str) -> ShareClient {
    ShareClient::new(settings(
        &sim.base_url(),
        Login::Username(username.to_owned()),
        password,
    ))
    .expect("client")
}

/// Whether the tests run in CI, where a missing tool is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}
