//! `--demo`: the built-in Share simulator with three people, started in-process, and its
//! accounts put into the configuration, so a new user sees live metrics with no Dexcom account.
//! `sam`'s day is started where its curve is in range on the way into a nightly low, so the
//! low, and its alert, come within minutes.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{AccountConfig, Config};
use crate::metrics::Thresholds;
use crate::share::{Login, Region};
use crate::simulator::{
    AccountSpec, GlucoseProfile, RunningSimulator, Scenario, ScenarioError, Simulator,
};

/// Why the demo's simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The demo scenario was refused (a bug: it is built in).
    #[error("cannot start the demo Share simulator: {0}")]
    Scenario(#[from] ScenarioError),
    /// The demo simulator could not listen on a loopback port.
    #[error("cannot start the demo Share simulator: cannot listen on loopback: {0}")]
    Listen(#[source] std::io::Error),
    /// The demo simulator's address did not make a URL (a bug).
    #[error("cannot start the demo Share simulator: bad base URL: {0}")]
    Url(#[source] <reqwest::Url as std::str::FromStr>::Err),
}

/// The demo accounts: (name, profile, simulated time of day at start).
const DEMO_ACCOUNTS: [(&str, GlucoseProfile, Option<&str>); 3] = [
    ("alex", GlucoseProfile::Typical, None),
    // Starts in range a few readings before its nightly urgent low (the time of day is found
    // at start, see `demo_low_start`), so a new user sees the low and its alert within minutes.
    ("sam", GlucoseProfile::OvernightLow, None),
    ("robin", GlucoseProfile::RunsHigh, None),
];

/// The demo's seed: the same curves at every start.
const DEMO_SEED: u64 = 2026;

/// The time of day for the demo account `sam` to start at: the one, in 5-minute steps over
/// the whole day (which night's curve lies ahead depends on the date), from which its curve
/// is in range now (above 70 mg/dL) and reaches an urgent low (55 mg/dL) the soonest: the fall
/// is seen, then the low and urgent-low alerts. `None` at the rare times when no start does
/// (sam then simply follows its overnight-low profile).
fn demo_low_start(interval: Duration, password: &str) -> Option<String> {
    demo_low_start_at(
        interval,
        password,
        crate::clock::unix_ms(std::time::SystemTime::now()),
    )
}

/// [`demo_low_start`] as if it were `now` (Unix ms); the simulator's curve for a night
/// depends on the day.
fn demo_low_start_at(interval: Duration, password: &str, now: i64) -> Option<String> {
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    let mut best: Option<(usize, String)> = None;
    for minutes in (0..24 * 60).step_by(5) {
        let start = format!("{:02}:{:02}", minutes / 60, minutes % 60);
        let clock = crate::clock::ManualClock::starting_at(crate::clock::from_unix_ms(now));
        let Ok(simulator) =
            Simulator::with_clock(demo_low_scenario(interval, password, &start), clock)
        else {
            continue;
        };
        let ahead = simulator.readings_between("sam", now - interval_ms, now + 12 * interval_ms);
        let Some(first) = ahead.first() else {
            continue;
        };
        if first.mg_per_dl <= 70 {
            continue;
        }
        if let Some(low) = ahead.iter().position(|r| r.mg_per_dl <= 55)
            && low >= 1
            && best.as_ref().is_none_or(|(b, _)| low < *b)
        {
            best = Some((low, start));
        }
    }
    best.map(|(_, start)| start)
}

/// The demo account `sam` alone, its day starting at `start`: what the search above tries.
fn demo_low_scenario(interval: Duration, password: &str, start: &str) -> Scenario {
    Scenario {
        seed: DEMO_SEED,
        reading_interval: interval,
        accounts: vec![AccountSpec {
            profile: GlucoseProfile::OvernightLow,
            day_starts_at: Some(start.to_owned()),
            ..AccountSpec::new("sam", password)
        }],
        ..Scenario::default()
    }
}

/// With `--demo`: starts the built-in simulator and puts its accounts into `config`.
pub(crate) async fn start_demo_if_asked(
    config: &mut Config,
) -> Result<Option<RunningSimulator>, DemoError> {
    if !config.demo {
        return Ok(None);
    }
    let (running, accounts) = start_demo(config.reading_interval).await?;
    config.accounts = accounts;
    Ok(Some(running))
}

/// The demo's simulator and accounts.
async fn start_demo(
    interval: Duration,
) -> Result<(RunningSimulator, Vec<AccountConfig>), DemoError> {
    let password = uuid::Uuid::new_v4().to_string();
    let low_start = demo_low_start(interval, &password);
    let accounts = DEMO_ACCOUNTS
        .iter()
        .map(|(name, profile, day_start)| AccountSpec {
            profile: *profile,
            day_starts_at: day_start
                .map(str::to_owned)
                .or_else(|| (*name == "sam").then(|| low_start.clone()).flatten()),
            ..AccountSpec::new(name, &password)
        })
        .collect();
    let scenario = Scenario {
        seed: DEMO_SEED,
        reading_interval: interval,
        accounts,
        ..Scenario::default()
    };
    let simulator = Simulator::new(scenario)?;
    let running = simulator
        .start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(DemoError::Listen)?;
    let base_url = reqwest::Url::parse(&running.base_url()).map_err(DemoError::Url)?;
    tracing::info!(base_url = %base_url, "demo mode: polling the built-in Share simulator (accounts alex, sam, robin)");
    let configs = DEMO_ACCOUNTS
        .iter()
        .map(|(name, _, _)| AccountConfig {
            name: (*name).to_owned(),
            login: Login::Username((*name).to_owned()),
            password: SecretString::from(password.clone()),
            region: Region::Us,
            base_url: base_url.clone(),
            thresholds: Thresholds::default(),
        })
        .collect();
    Ok((running, configs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_low_comes_within_minutes_at_the_default_cadence() {
        let interval = Duration::from_secs(300);
        let start_now = crate::clock::unix_ms(std::time::SystemTime::now());
        // Any time of any day: every 7 hours 13 minutes over 60 days.
        let mut found = 0;
        let mut urgents = Vec::new();
        for step in 0..200 {
            let now = start_now + step * (7 * 3600 + 13 * 60 + 17) * 1000;
            let Some(start) = demo_low_start_at(interval, "pw", now) else {
                continue;
            };
            found += 1;
            let clock = crate::clock::ManualClock::starting_at(crate::clock::from_unix_ms(now));
            let simulator =
                Simulator::with_clock(demo_low_scenario(interval, "pw", &start), clock).unwrap();
            let ahead: Vec<u16> = simulator
                .readings_between("sam", now - 300_000, now + 12 * 300_000)
                .iter()
                .map(|r| r.mg_per_dl)
                .collect();
            let urgent = ahead.iter().position(|v| *v <= 55).expect("an urgent low");
            assert!(ahead[0] > 70, "starts in range: {ahead:?}");
            urgents.push(urgent);
        }
        assert!(
            found >= 180,
            "a start with a low ahead at only {found} of 200 times"
        );
        // How fast the night's low falls varies by day: the urgent low (55) comes within the
        // hour searched, and within six readings (half an hour) at nine times in ten.
        urgents.sort_unstable();
        let p90 = urgents[urgents.len() * 9 / 10];
        assert!(
            p90 <= 6,
            "urgent low after {p90} readings at the 90th percentile"
        );
        eprintln!("a start found at {found} of 200 times");
    }
}
