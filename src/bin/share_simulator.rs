//! `share_simulator`: serves the simulated Dexcom Share API until SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use dexcom_exporter::simulator::{Simulator, SimulatorArgs};

#[tokio::main]
async fn main() -> ExitCode {
    let args = SimulatorArgs::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, as the exporter does.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let simulator = match args.scenario().and_then(Simulator::new) {
        Ok(simulator) => simulator,
        Err(message) => {
            eprintln!("share_simulator: {message}");
            return ExitCode::from(2);
        }
    };
    let running = match simulator.start(args.listen).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("share_simulator: cannot listen on {}: {error}", args.listen);
            return ExitCode::from(1);
        }
    };
    println!("listening on http://{}", running.addr());
    let _ = std::io::stdout().flush();
    tracing::info!(
        base_url = %running.base_url(),
        accounts = simulator.scenario().accounts.len(),
        interval = %humantime::format_duration(simulator.scenario().reading_interval),
        "Share simulator ready"
    );
    dexcom_exporter::shutdown::signal().await;
    running.stop().await;
    ExitCode::SUCCESS
}
