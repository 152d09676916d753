//! `dexcom_exporter`: parse, set up logging, build, run, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use dexcom_exporter::config::{Cli, Config, ProcessEnvironment};
use dexcom_exporter::exporter::Exporter;
use dexcom_exporter::{shutdown, telemetry};

/// Exit code for bad configuration, as for a bad command line.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let text = error.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid command line")
                .trim_start_matches("error: ");
            eprintln!("dexcom_exporter: error: {first} (see --help)");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Logging first, so what the configuration warns about (a readable password file) is seen.
    telemetry::init(cli.log_level, cli.log_format);
    let config = match Config::from_cli(cli, &ProcessEnvironment) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("dexcom_exporter: error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dexcom_exporter: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match Exporter::build(config).await {
            Ok(exporter) => {
                exporter.run(shutdown::signal()).await;
                ExitCode::SUCCESS
            }
            Err(error) => {
                // Said once, in the log's own format (a service's stderr is the journal).
                tracing::error!(%error, "cannot start");
                ExitCode::FAILURE
            }
        }
    });
    // Blocking work still running (a bcrypt check, a state-file fsync) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}
