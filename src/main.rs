//! `dexcom_exporter`: parse, set up logging, build, run, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use dexcom_exporter::Exporter;
use dexcom_exporter::config::{
    CheckOutput, Cli, Command, Config, ConfigError, DefaultStateHolder, ProcessEnvironment,
    StorageAccess, default_state_holder,
};
use dexcom_exporter::{logging, shutdown};

/// Exit code for bad configuration, as for a bad command line.
const EXIT_CONFIG: u8 = 2;
/// Exit code when the state directory is held by another process.
const EXIT_STATE_IN_USE: u8 = 3;
/// Exit code when the state directory cannot be used for now (a full, read-only or failing
/// disk): `EX_TEMPFAIL`, which the unit restarts (unlike 2, which a person must fix).
const EXIT_STATE_MAY_PASS: u8 = 75;

fn main() -> ExitCode {
    let mut cli = match Cli::try_parse() {
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
    logging::init(cli.log_level, cli.log_format);
    let command = cli.command.take();
    // The drill reads no account: it asks Prometheus and Alertmanager.
    if let Some(Command::Drill {
        prometheus_url,
        alertmanager_url,
        output,
    }) = command
    {
        let settings = dexcom_exporter::drill::DrillSettings {
            prometheus_url,
            alertmanager_url,
        };
        return ExitCode::from(dexcom_exporter::drill::run(
            &settings,
            output == CheckOutput::Json,
        ));
    }
    let checking = matches!(command, Some(Command::Check { .. }));
    // A one-off command that logs in, told to keep a gate of its own: beside the running
    // service it would add its logins to the service's, which only the service's gate counts.
    if matches!(
        command,
        Some(Command::Check { .. } | Command::Backfill { .. })
    ) {
        match default_state_holder(cli.storage_path.as_deref(), &ProcessEnvironment) {
            DefaultStateHolder::Free => {}
            DefaultStateHolder::Held { path, holder } => {
                eprintln!(
                    "dexcom_exporter: error: the exporter service is running ({holder}, in {}): with --storage.path naming another place this command would log in beside it, and its failed logins would not count where the service's do; run it without --storage.path (`check` then sends nothing and shows what the service shows), or stop the service first",
                    path.display()
                );
                return ExitCode::from(EXIT_STATE_IN_USE);
            }
            DefaultStateHolder::Unknown { path } => tracing::warn!(
                path = %path.display(),
                "cannot tell whether the exporter service is running (its directory is closed to this user; run as root to know): if it is, this command's logins are not counted where the service's are"
            ),
        }
    }
    let config = match Config::from_cli(cli.clone(), &ProcessEnvironment) {
        Ok(config) => config,
        Err(error) => {
            let in_use = matches!(
                error,
                ConfigError::Storage(dexcom_exporter::StateError::Locked { .. })
            );
            let may_pass = matches!(&error, ConfigError::Storage(e) if e.may_pass());
            // `check` beside a running service: read what the gate's memory says, send nothing.
            let beside = if in_use && checking {
                Config::from_cli_with(cli, &ProcessEnvironment, StorageAccess::BesideHolder)
            } else {
                Err(error)
            };
            match beside {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("dexcom_exporter: error: {error}");
                    let code = if in_use && !checking {
                        EXIT_STATE_IN_USE
                    } else if may_pass {
                        EXIT_STATE_MAY_PASS
                    } else {
                        EXIT_CONFIG
                    };
                    return ExitCode::from(code);
                }
            }
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
        match command {
            Some(Command::Backfill { output }) => return run_backfill(config, output).await,
            Some(Command::Check { output, reset_gate }) => {
                return run_check(config, output, reset_gate).await;
            }
            Some(Command::Drill { .. }) | None => {}
        }
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

/// `dexcom_exporter check`: the findings on standard output; 0 when every account has a
/// current reading, 1 otherwise.
async fn run_check(config: Config, output: CheckOutput, reset_gate: bool) -> ExitCode {
    let clock = std::sync::Arc::new(dexcom_exporter::clock::SystemClock);
    match dexcom_exporter::check::check(&config, clock, reset_gate).await {
        Ok(found) => {
            let text = match output {
                CheckOutput::Text => dexcom_exporter::check::render_text(&found),
                CheckOutput::Json => dexcom_exporter::check::render_json(&found) + "\n",
            };
            print!("{text}");
            if found.iter().all(|f| f.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("dexcom_exporter: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `dexcom_exporter backfill`: 0 when every account was read, 1 when one was not (the others
/// are written all the same).
async fn run_backfill(config: Config, output: Option<std::path::PathBuf>) -> ExitCode {
    let clock = std::sync::Arc::new(dexcom_exporter::clock::SystemClock);
    let mut out: Box<dyn std::io::Write> = match &output {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Box::new(std::io::BufWriter::new(file)),
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "cannot create the backfill file");
                return ExitCode::FAILURE;
            }
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    match dexcom_exporter::backfill::backfill(config, &mut out, clock).await {
        Ok(summary) => {
            tracing::info!(
                readings = summary.readings,
                failed_accounts = summary.failed.len(),
                "backfill written; load it with `promtool tsdb create-blocks-from openmetrics FILE DIR`"
            );
            if summary.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            tracing::error!(%error, "backfill failed");
            ExitCode::FAILURE
        }
    }
}
