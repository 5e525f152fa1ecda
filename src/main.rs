//! `mindshop`: one binary for the edge, the backend and the operator commands.
//!
//! The binary only parses arguments, loads the configuration and hands over:
//! `serve`, `edge` and `backend` to [`run`]; `migrate`, `admin` and `config check` to [`admin`].
//!
//! # Layout
//! - `cli`: the clap definitions of every command.
//! - `run`: the long-running processes and their shutdown.
//! - `directory`: the edge's view of API keys and merchant domains, over the store.
//! - `admin`: operator commands that print JSON on stdout.

mod admin;
mod cli;
mod directory;
mod run;
mod self_signed;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use mindshop_config::{Config, LogConfig, LogFormat};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use cli::{AdminCommand, Cli, Command, ConfigCommand, TlsCommand};

/// mimalloc rather than the system's malloc: the edge's request path allocates on one worker
/// thread and frees on another, which costs glibc's malloc dearly (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    mindshop_backend::install_crypto_provider();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    // Held until main returns, so buffered log lines are written before the process exits.
    let _log_writer = match init_tracing(&config.log) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("error: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };

    let outcome = match cli.command {
        Command::Serve => run::serve(config),
        Command::Edge => run::edge(config),
        Command::Backend => run::backend(config),
        Command::Config {
            command: ConfigCommand::Check,
        } => std::io::stdout()
            .write_all(config.redacted_toml().as_bytes())
            .map_err(anyhow::Error::from),
        Command::Migrate => admin::run_blocking(admin::migrate(&config)),
        // Needs no store.
        Command::Admin {
            command:
                AdminCommand::Tls {
                    command: TlsCommand::SelfSigned(args),
                },
        } => self_signed::run(&args),
        Command::Admin { command } => admin::run_blocking(admin::run(&config, command)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout is for the JSON of admin commands) through a writer thread, so
/// the edge's workers never block on a slow log pipe. `RUST_LOG`, when set, overrides
/// `log.level`; an invalid `log.level` is a configuration error.
fn init_tracing(log: &LogConfig) -> Result<WorkerGuard, String> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => EnvFilter::try_new(&log.level)
            .map_err(|error| format!("log.level: {error} in {:?}", log.level))?,
    };
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    // Colour codes only for a person at a terminal, not for log files and collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(guard)
}
