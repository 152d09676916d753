//! The assembled exporter: accounts → Share clients → pollers → metrics → HTTP server, with
//! one shutdown path that stops the server and every poller and waits for all of them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::{AccountConfig, Config};
use crate::demo::DemoError;
use crate::history::History;
use crate::http::routes::{self, ServerState};
use crate::http::serve::{self, ServeLimits, TlsSource};
use crate::http::web_config::LiveWebConfig;
use crate::metrics::Metrics;
use crate::poll::{self, AccountPoller};
use crate::remote_write::{Sender, SenderAccount, WriteClient};
use crate::share::{ClientSettings, ShareClient, ShareError};
use crate::simulator::{RunningSimulator, Simulator};
use crate::state::AccountStateFile;

/// Connect timeout for Share.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "a field is named for what it holds, and the #[error] message shows it in context"
)]
pub enum ExporterError {
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {source} (is another exporter running, or is the port privileged?)"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client for Share could not be built (the TLS backend failed to start).
    #[error("cannot create the HTTP client for Dexcom Share: {0}")]
    HttpClient(#[source] ShareError),
    /// The demo's simulator could not start.
    #[error(transparent)]
    Demo(#[from] DemoError),
    /// A remote-write receiver's client could not be built.
    #[error(transparent)]
    RemoteWrite(#[from] crate::remote_write::ClientError),
}

/// What the assembly builds for one account, before it is handed to the poller and senders.
struct AccountParts {
    config: AccountConfig,
    metrics: Arc<crate::metrics::AccountMetrics>,
    history: Arc<History>,
    state: Option<Arc<AccountStateFile>>,
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
        let demo = crate::demo::start_demo_if_asked(&mut config).await?;
        // One Share clock per Share host, estimated from its answers; the metrics (ages on the
        // monotonic clock, login holds on the wall clock) and the login gates (saved times on
        // the wall clock) stay on the host's clock.
        let share_clocks = crate::clock::ShareClocks::new(clock.clone());
        let metrics = Arc::new(Metrics::new(
            config
                .accounts
                .iter()
                .map(|a| (a.name.clone(), a.thresholds)),
            config.max_age,
            clock.clone(),
        ));
        let history_changed = Arc::new(tokio::sync::Notify::new());
        // Each account's parts, built once, side by side.
        let parts: Vec<AccountParts> = config
            .accounts
            .iter()
            .zip(metrics.accounts())
            .map(|(account, account_metrics)| AccountParts {
                config: account.clone(),
                metrics: account_metrics.clone(),
                history: Arc::new(History::new(&account.name, history_changed.clone())),
                state: config
                    .storage
                    .as_ref()
                    .map(|dir| Arc::new(dir.account(&account.name))),
            })
            .collect();
        let histories: Vec<Arc<History>> = parts.iter().map(|p| p.history.clone()).collect();
        let mut senders = Vec::with_capacity(config.remote_write.len());
        for target in &config.remote_write {
            let accounts = parts
                .iter()
                .map(|p| SenderAccount::new(p.history.clone(), p.state.clone(), &target.name))
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
        let pollers: Vec<AccountPoller> = parts
            .into_iter()
            .map(|p| {
                let client =
                    share_client(&config, &http, &p.config, p.state.clone(), clock.clone());
                AccountPoller::new(
                    client,
                    p.metrics,
                    metrics.request_durations(),
                    config.reading_interval,
                    share_clocks.for_url(&p.config.base_url),
                    p.state,
                    p.history,
                )
            })
            .collect();
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
        // Without one (--storage.path=none) it was said at WARN where it was read.
        if let Some(dir) = &config.storage {
            tracing::info!(path = %dir.path().display(), found = ?config.storage_source, "state directory: the login gate's memory survives restarts and is shared with `check` and `backfill`");
        }
        let web = Arc::new(LiveWebConfig::new(config.web));
        let tls = web.tls_source();
        let state = Arc::new(
            ServerState::new(
                metrics.clone(),
                histories.clone(),
                config.telemetry_path.clone(),
                web.clone(),
                config.external_labels.clone(),
            )
            .simulated(demo.is_some()),
        );
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

/// The Share client of `account` on the shared pool `http`, its login gate on the host's
/// `clock` (wall clock for what it saves, monotonic for its in-process limit) and kept in
/// `state`.
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
    .with_saved_gate(
        config.reading_interval,
        gate_store(config, account, state.as_deref()),
        clock,
    )
}

/// The login gate's memory of `account`'s Dexcom identity, in the state directory (none
/// without one: `--storage.path=none` or `--demo`).
fn gate_store(
    config: &Config,
    account: &AccountConfig,
    state: Option<&AccountStateFile>,
) -> Option<Arc<dyn crate::share::gate::GateStore>> {
    let (dir, file) = (config.storage.as_ref()?, state?);
    Some(Arc::new(dir.gate(&account.identity(), file)))
}
