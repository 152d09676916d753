//! Polling: one task per account on a reading-aligned schedule. This is the only place where
//! the Share client and the metrics meet.

mod account;
mod intake;
mod observer;
mod schedule;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use account::AccountPoller;
pub use intake::latest_allowed_ms;
pub use schedule::first_poll_delay;

/// How many accounts may talk to Share at the same moment.
pub const MAX_CONCURRENT_POLLS: usize = 8;

/// Runs every poller until `shutdown`, then waits for all of them.
pub async fn run_all(pollers: Vec<AccountPoller>, interval: Duration, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_POLLS));
    let count = pollers.len();
    let mut tasks = JoinSet::new();
    for (index, poller) in pollers.into_iter().enumerate() {
        let delay = first_poll_delay(index, count, interval);
        tasks.spawn(poller.run(delay, permits.clone(), shutdown.clone()));
    }
    while let Some(result) = tasks.join_next().await {
        if let Err(error) = result {
            tracing::error!(%error, "a poller task panicked");
        }
    }
}
