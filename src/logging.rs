//! Logging set-up: level and format from the configuration, stderr output, and journald-friendly
//! lines under systemd. Other crates log at warn only, so nothing below our code (which could
//! print request URLs carrying session IDs) reaches the log.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber. Call once, from `main`.
pub fn init(level: LogLevel, format: LogFormat) {
    let filter = EnvFilter::new(format!("warn,dexcom_exporter={}", level.as_str()));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text if under_journald => builder.without_time().with_ansi(false).init(),
        // Colour codes only for a person at a terminal, never into a file or a pipe.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}
