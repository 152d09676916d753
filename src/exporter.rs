//! The assembled exporter: accounts → Share clients → pollers → metrics → HTTP server, with
//! one shutdown path that stops the server and every poller and waits for all of them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::{AccountConfig, Config};
use crate::history::History;
use crate::http::routes::{self, ServerState};
use crate::http::serve::{self, ServeLimits, TlsSource};
use crate::http::web_config::LiveWebConfig;
use crate::metrics::{Metrics, Thresholds};
use crate::poll::{self, AccountPoller};
use crate::remote_write::{Sender, SenderAccount, WriteClient};
use crate::share::{ClientSettings, Login, Region, ShareClient, ShareError};
use crate::simulator::{
    AccountSpec, GlucoseProfile, RunningSimulator, Scenario, ScenarioError, Simulator,
};
use crate::state::AccountStateFile;

/// Connect timeout for Share.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {source} (is another exporter running, or is the port privileged?)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client for Share could not be built (the TLS backend failed to start).
    #[error("cannot create the HTTP client for Dexcom Share: {0}")]
    HttpClient(#[source] ShareError),
    /// The demo scenario was refused (a bug: it is built in).
    #[error("cannot start the demo Share simulator: {0}")]
    DemoScenario(#[from] ScenarioError),
    /// The demo simulator could not listen on a loopback port.
    #[error("cannot start the demo Share simulator: cannot listen on loopback: {0}")]
    DemoListen(#[source] std::io::Error),
    /// A remote-write receiver's client could not be built.
    #[error(transparent)]
    RemoteWrite(#[from] crate::remote_write::ClientError),
    /// The demo simulator's address did not make a URL (a bug).
    #[error("cannot start the demo Share simulator: bad base URL: {0}")]
    DemoUrl(#[source] <reqwest::Url as std::str::FromStr>::Err),
}

/// A bound, ready-to-run exporter.
#[derive(Debug)]
pub struct Exporter {
    listener: TcpListener,
    state: Arc<ServerState>,
    web: Arc<LiveWebConfig>,
    tls: Option<Arc<dyn TlsSource>>,
    metrics: Arc<Metrics>,
    histories: Vec<Arc<History>>,
    history_changed: Arc<tokio::sync::Notify>,
    senders: Vec<Sender>,
    pollers: Vec<AccountPoller>,
    interval: Duration,
    demo: Option<RunningSimulator>,
    /// Holds the state directory's lock for as long as the exporter lives.
    _storage: Option<crate::state::StateDir>,
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

impl Exporter {
    /// Binds the configured address and builds everything, on the system clock.
    ///
    /// # Errors
    /// [`ExporterError`] when the address cannot be bound or a client cannot be built.
    pub async fn build(config: Config) -> Result<Self, ExporterError> {
        let listener = TcpListener::bind(config.listen_address)
            .await
            .map_err(|source| ExporterError::Bind {
                addr: config.listen_address,
                source,
            })?;
        Self::with_listener(config, listener, Arc::new(SystemClock)).await
    }

    /// Builds everything around an already bound listener and an injected clock.
    ///
    /// # Errors
    /// [`ExporterError`] when a client cannot be built or the demo simulator cannot start.
    pub async fn with_listener(
        mut config: Config,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ExporterError> {
        let demo = start_demo_if_asked(&mut config).await?;
        // Every judgement of time is made on Share's clock, which answers correct.
        let share_clock = crate::clock::ShareClock::new(clock);
        let clock: Arc<dyn Clock> = share_clock.clone();
        let metrics = Arc::new(Metrics::new(
            config
                .accounts
                .iter()
                .map(|a| (a.name.clone(), a.thresholds)),
            config.max_age,
            clock.clone(),
        ));
        let history_changed = Arc::new(tokio::sync::Notify::new());
        let histories: Vec<Arc<History>> = config
            .accounts
            .iter()
            .map(|a| Arc::new(History::new(&a.name, history_changed.clone())))
            .collect();
        let state_files: Vec<Option<Arc<AccountStateFile>>> = config
            .accounts
            .iter()
            .map(|a| {
                config
                    .storage
                    .as_ref()
                    .map(|dir| Arc::new(dir.account(&a.name)))
            })
            .collect();
        let mut senders = Vec::with_capacity(config.remote_write.len());
        for target in &config.remote_write {
            let accounts = histories
                .iter()
                .zip(&state_files)
                .map(|(history, state)| {
                    SenderAccount::new(history.clone(), state.clone(), &target.name)
                })
                .collect();
            let metrics = metrics.remote_write(&target.name, &target.shown_url());
            tracing::info!(remote_name = %target.name, url = %target.shown_url(), "remote write on: every reading is pushed at its sensor time");
            senders.push(Sender::new(
                WriteClient::new(target.clone())?,
                metrics,
                accounts,
                config.external_labels.clone(),
            ));
        }
        let http = share_http(&config)?;
        let mut pollers = Vec::with_capacity(config.accounts.len());
        for (((account, account_metrics), history), state) in config
            .accounts
            .iter()
            .zip(metrics.accounts())
            .zip(&histories)
            .zip(state_files)
        {
            let client = share_client(&config, &http, account, state.clone(), clock.clone());
            pollers.push(AccountPoller::new(
                client,
                account_metrics.clone(),
                metrics.request_durations(),
                config.reading_interval,
                share_clock.clone(),
                state,
                history.clone(),
            ));
        }
        if config.shard.count > 1 {
            tracing::info!(
                shard = config.shard.index,
                shards = config.shard.count,
                accounts = config.accounts.len(),
                configured = config.accounts_configured,
                "shard {} of {}: polling {} of the {} configured accounts (the others belong to the other replicas)",
                config.shard.index,
                config.shard.count,
                config.accounts.len(),
                config.accounts_configured
            );
            if config.accounts.is_empty() {
                tracing::warn!(
                    "no account falls in this shard: this replica serves no account (fewer accounts than replicas?)"
                );
            }
        }
        match (&config.storage, demo.is_some()) {
            (Some(dir), _) => {
                tracing::info!(path = %dir.path().display(), "state directory: login limits survive restarts");
            }
            (None, false) => tracing::warn!(
                "no --storage.path (and no $STATE_DIRECTORY): failed login attempts (and what remote write sent) are remembered only until the exporter stops, so the login limits will not survive a restart"
            ),
            (None, true) => {}
        }
        let web = Arc::new(LiveWebConfig::new(config.web));
        let tls = web.tls_source();
        let state = Arc::new(ServerState::new(
            metrics.clone(),
            histories.clone(),
            config.telemetry_path.clone(),
            web.clone(),
            config.external_labels.clone(),
        ));
        Ok(Exporter {
            listener,
            state,
            web,
            tls,
            metrics,
            histories,
            history_changed,
            senders,
            pollers,
            interval: config.reading_interval,
            demo,
            _storage: config.storage.clone(),
        })
    }

    /// The address being served.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The metrics, for tests.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Each account's history, in configuration order.
    pub fn histories(&self) -> &[Arc<History>] {
        &self.histories
    }

    /// The demo simulator, when running with `--demo`.
    pub fn demo_simulator(&self) -> Option<Arc<Simulator>> {
        self.demo.as_ref().map(|d| d.simulator.clone())
    }

    /// Serves and polls until `shutdown` completes, then stops both and waits for them.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let token = CancellationToken::new();
        // Before anything is announced: a SIGHUP from then on re-reads, never ends the process.
        let hangups = crate::shutdown::hangups();
        let addr = self.local_addr();
        tracing::info!(
            address = %addr,
            accounts = self.pollers.len(),
            interval = %humantime::format_duration(self.interval),
            demo = self.demo.is_some(),
            tls = self.tls.is_some(),
            "dexcom_exporter {} listening on {}://{addr}",
            env!("CARGO_PKG_VERSION"),
            if self.tls.is_some() { "https" } else { "http" },
        );
        let state = self.state.clone();
        let handler = move |request| routes::handle(state.clone(), request);
        let server_task = tokio::spawn(serve::serve(
            self.listener,
            handler,
            token.clone(),
            ServeLimits::default(),
            self.tls,
        ));
        let pollers_task = tokio::spawn(poll::run_all(self.pollers, self.interval, token.clone()));
        let mut sender_tasks = tokio::task::JoinSet::new();
        for sender in self.senders {
            sender_tasks.spawn(sender.run(self.history_changed.clone(), token.clone()));
        }
        let web = self.web.clone();
        let hangup_task = tokio::spawn(crate::shutdown::on_hangup(
            hangups,
            token.clone(),
            move || {
                if web.reload() {
                    tracing::info!("SIGHUP: re-reading --web.config.file");
                } else {
                    tracing::info!(
                        "SIGHUP: no --web.config.file to re-read; accounts and flags need a restart"
                    );
                }
            },
        ));
        shutdown.await;
        token.cancel();
        let _ = hangup_task.await;
        if let Err(error) = server_task.await {
            tracing::error!(%error, "HTTP server task failed");
        }
        if let Err(error) = pollers_task.await {
            tracing::error!(%error, "poller task failed");
        }
        while let Some(result) = sender_tasks.join_next().await {
            if let Err(error) = result {
                tracing::error!(%error, "remote-write task failed");
            }
        }
        if let Some(demo) = self.demo {
            demo.stop().await;
        }
        tracing::info!("stopped");
    }
}

/// The one connection pool every account's Share client uses: accounts then hold as many
/// connections to Share as poll at once (at most [`poll::MAX_CONCURRENT_POLLS`]), not one
/// each, which a clinic's hundreds of accounts from one address would otherwise open.
pub(crate) fn share_http(config: &Config) -> Result<reqwest::Client, ExporterError> {
    crate::share::http_client(
        CONNECT_TIMEOUT.min(config.request_timeout),
        config.request_timeout,
    )
    .map_err(ExporterError::HttpClient)
}

/// The Share client of `account` on the shared pool `http`, its login gate on `clock` and
/// kept in `state`.
pub(crate) fn share_client(
    config: &Config,
    http: &reqwest::Client,
    account: &AccountConfig,
    state: Option<Arc<AccountStateFile>>,
    clock: Arc<dyn Clock>,
) -> ShareClient {
    ShareClient::with_http(
        ClientSettings {
            base_url: account.base_url.clone(),
            application_id: account.region.application_id().to_owned(),
            login: account.login.clone(),
            password: account.password.clone(),
            connect_timeout: CONNECT_TIMEOUT.min(config.request_timeout),
            request_timeout: config.request_timeout,
        },
        http.clone(),
    )
    .with_gate(
        config.reading_interval,
        state.map(|file| file as Arc<dyn crate::share::gate::GateStore>),
        clock,
    )
}

/// With `--demo`: starts the built-in simulator and puts its accounts into `config`.
pub(crate) async fn start_demo_if_asked(
    config: &mut Config,
) -> Result<Option<RunningSimulator>, ExporterError> {
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
) -> Result<(RunningSimulator, Vec<AccountConfig>), ExporterError> {
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
        .map_err(ExporterError::DemoListen)?;
    let base_url = reqwest::Url::parse(&running.base_url()).map_err(ExporterError::DemoUrl)?;
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
