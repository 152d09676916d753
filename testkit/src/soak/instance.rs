//! One exporter instance of the soak on a runtime of its own, killed as SIGKILL kills a
//! process (every task dropped where it stands, no shutdown path) and started again on the same
//! state directory.

use std::net::SocketAddr;
use std::sync::Arc;

use dexcom_exporter::Exporter;
use dexcom_exporter::clock::Clock;
use dexcom_exporter::config::{Cli, Config};

use super::USER;

/// One exporter process, as far as a restart can tell.
pub(super) struct Instance {
    pub(super) runtime: Option<tokio::runtime::Runtime>,
    pub(super) addr: SocketAddr,
}

impl Instance {
    fn start(
        base_url: &str,
        state: &std::path::Path,
        password: &'static str,
        clock: Arc<dyn Clock>,
        dispatch: &tracing::Dispatch,
    ) -> Self {
        let runtime = soak_runtime(dispatch);
        let storage = state.display().to_string();
        let cli = <Cli as clap::Parser>::try_parse_from([
            "dexcom_exporter",
            "--dexcom.username",
            USER,
            "--dexcom.base-url",
            base_url,
            "--dexcom.reading-interval",
            "5m",
            "--dexcom.request-timeout",
            "300ms",
            "--storage.path",
            &storage,
        ])
        .unwrap();
        // A killed instance's tasks are dropped on the runtime's threads as it goes down; the
        // state directory's lock goes with them, as the kernel drops a killed process's lock.
        let mut tries = 0;
        let config = loop {
            match Config::from_cli(cli.clone(), &crate::TestEnv::password(password)) {
                Err(dexcom_exporter::config::ConfigError::Storage(
                    dexcom_exporter::StateError::Locked { .. },
                )) if tries < 500 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.unwrap(),
            }
        };
        let addr = runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let exporter = Exporter::with_listener(config, listener, clock)
                .await
                .unwrap();
            let addr = exporter.local_addr();
            tokio::spawn(exporter.run(std::future::pending()));
            addr
        });
        Instance {
            runtime: Some(runtime),
            addr,
        }
    }

    /// Stops every task where it stands, as SIGKILL would.
    fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The exporter instance of the run, and how to kill and start it.
pub(super) struct Exporters<'a> {
    pub(super) base_url: &'a str,
    pub(super) state: &'a std::path::Path,
    pub(super) clock: &'a Arc<dyn Clock>,
    pub(super) dispatch: &'a tracing::Dispatch,
    pub(super) current: Option<Instance>,
    /// Abrupt stops so far.
    pub(super) kills: usize,
}

impl Exporters<'_> {
    /// Stops the running instance, if any, as SIGKILL would.
    pub(super) fn kill(&mut self) {
        if let Some(current) = self.current.take() {
            current.kill();
            self.kills += 1;
        }
    }

    /// Kills the running instance, if any, and starts one with `password`.
    pub(super) fn restart(&mut self, password: &'static str) {
        self.kill();
        self.current = Some(Instance::start(
            self.base_url,
            self.state,
            password,
            self.clock.clone(),
            self.dispatch,
        ));
    }
}

/// The names of the soak's threads, so its panics and logs are told from other tests'.
pub(super) const THREAD_PREFIX: &str = "soak-";

/// A runtime whose threads log into the soak's own subscriber (and nowhere else), named so
/// that the panic hook can tell them.
pub(super) fn soak_runtime(dispatch: &tracing::Dispatch) -> tokio::runtime::Runtime {
    let dispatch = dispatch.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(format!("{THREAD_PREFIX}runtime"))
        .on_thread_start(move || {
            // For the life of the thread; the guard would otherwise end it at once.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .enable_all()
        .build()
        .unwrap()
}
