//! The one shutdown path: SIGINT or SIGTERM. And SIGHUP, which by default would end the
//! process, asks for a re-read of the configuration that can change while running.

/// Completes on the first SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Starts listening for SIGHUP: from here on it no longer ends the process.
#[cfg(unix)]
pub fn hangups() -> Option<tokio::signal::unix::Signal> {
    let listening = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    if listening.is_err() {
        tracing::warn!("cannot listen for SIGHUP");
    }
    listening.ok()
}

/// Calls `reload` on every SIGHUP `hangups` receives until `stop` is cancelled.
#[cfg(unix)]
pub async fn on_hangup(
    hangups: Option<tokio::signal::unix::Signal>,
    stop: tokio_util::sync::CancellationToken,
    reload: impl Fn(),
) {
    let Some(mut hangups) = hangups else {
        return;
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            received = hangups.recv() => {
                if received.is_none() {
                    return;
                }
                reload();
            }
        }
    }
}
