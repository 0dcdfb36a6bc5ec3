//! The command line: its root (`jhf-warp <subcommand>`) and running the subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{App, shutdown_signal};
use crate::config::{HealthcheckArgs, LogArgs, ServeArgs, StoreArgs};
use crate::store::{Store, StoreOptions};

/// jhf-warp: orchestration control plane for teams of OpenClaw agents.
#[derive(Debug, Parser)]
#[command(name = "jhf-warp", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC API and the HTTP shim on one port.
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(StoreArgs),
    /// The operator CLI: a client of a running server.
    Ctl(Box<crate::ctl::CtlArgs>),
    /// Exit 0 when the server's `/ready` answers 200 (container health checks, no curl needed).
    Healthcheck(HealthcheckArgs),
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    // Held until `run` returns: its drop flushes the last lines ("stopped", a start-up error).
    let _log = crate::telemetry::init(&cli.log.log_filter, cli.log.log_format);
    if matches!(cli.command, Command::Ctl(_) | Command::Healthcheck(_)) {
        return run_client(cli.command);
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Serve(args) = &cli.command
        && let Some(threads) = args.serving.worker_threads
    {
        builder.worker_threads(usize::from(threads));
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => {
                let app = App::build(*args).await?;
                app.run_until_stopped(shutdown_signal()).await
            }
            Command::Migrate(args) => {
                std::fs::create_dir_all(&args.data_dir).map_err(|source| {
                    crate::app::StartupError::DataDir { path: args.data_dir.clone(), source }
                })?;
                // A one-off migration may wait for a database that is still starting.
                let options = StoreOptions { acquire_timeout: std::time::Duration::from_secs(10) };
                let store = Store::connect(&args.database_url(), options).await?;
                store.migrate().await?;
                tracing::info!(backend = store.backend_name(), "migrations applied");
                store.close().await?;
                Ok(())
            }
            // Handled by `run_client` before the server runtime starts.
            Command::Ctl(_) | Command::Healthcheck(_) => Ok(()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "jhf-warp failed");
            eprintln!("jhf-warp: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `ctl` and `healthcheck`: a small current-thread runtime, no server state.
fn run_client(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("jhf-warp: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match command {
            Command::Ctl(args) => crate::ctl::run(*args).await,
            Command::Healthcheck(args) => {
                crate::ctl::healthcheck(&args.url, std::time::Duration::from_secs(args.timeout_secs)).await
            }
            Command::Serve(_) | Command::Migrate(_) => ExitCode::FAILURE,
        }
    })
}
