//! `mindshop`: one binary for the edge, the backend and the operator commands.
//!
//! The binary only parses arguments, loads the configuration and hands over:
//! `serve`, `edge` and `backend` to [`run`]; `migrate`, `admin` and `config check` to [`admin`].
//!
//! # Layout
//! - `cli`: the clap definitions of every command.
//! - `run`: the long-running processes and their shutdown.
//! - `directory`: the edge's view of API keys and merchant domains, over the store.
//! - `reload`: SIGHUP and `mindshop reload`: the configuration swapped in while running.
//! - `process`: the pid file, and handing the listening sockets to a new process
//!   (`--upgrade`).
//! - `admin`: operator commands that print JSON on stdout.

mod admin;
mod cli;
mod directory;
mod process;
mod reload;
mod run;
mod self_signed;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use mindshop_config::{Config, LogConfig, LogFormat};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload as filter_reload};

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
    let (_log_writer, log) = match init_tracing(&config.log) {
        Ok(logging) => logging,
        Err(error) => {
            eprintln!("error: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };

    let outcome = match cli.command {
        Command::Serve(args) => run::serve(config, run::Process::new(&cli.config, args, log)),
        Command::Edge(args) => run::edge(config, run::Process::new(&cli.config, args, log)),
        Command::Backend => run::backend(config),
        Command::Reload => reload::run(&config),
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
/// `log.level`; an invalid `log.level` is a configuration error. The filter can be replaced
/// later ([`LogLevel`]), by a reload.
fn init_tracing(log: &LogConfig) -> Result<(WorkerGuard, LogLevel), String> {
    let from_env = EnvFilter::try_from_default_env().ok();
    let overridden = from_env.is_some();
    let filter = match from_env {
        Some(filter) => filter,
        None => parse_level(&log.level)?,
    };
    let (filter, handle) = filter_reload::Layer::new(filter);
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    // Colour codes only for a person at a terminal, not for log files and collectors.
    let lines = fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let registry = tracing_subscriber::registry().with(filter);
    match log.format {
        LogFormat::Json => registry.with(lines.json()).init(),
        LogFormat::Text => registry.with(lines).init(),
    }
    Ok((guard, LogLevel { handle, overridden }))
}

fn parse_level(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(level).map_err(|error| format!("log.level: {error} in {level:?}"))
}

/// The process's log filter, which a reload replaces with a new `log.level` (unless `RUST_LOG`
/// set it, which keeps precedence).
pub(crate) struct LogLevel {
    handle: filter_reload::Handle<EnvFilter, Registry>,
    overridden: bool,
}

impl LogLevel {
    /// The filter for `level`, or `None` while `RUST_LOG` decides.
    fn filter(&self, level: &str) -> Result<Option<EnvFilter>, String> {
        let filter = parse_level(level)?;
        Ok((!self.overridden).then_some(filter))
    }

    /// Puts `filter` in place (from [`LogLevel::filter`]).
    fn replace(&self, filter: Option<EnvFilter>) {
        if let Some(filter) = filter
            && let Err(error) = self.handle.reload(filter)
        {
            tracing::warn!(%error, "cannot replace the log filter");
        }
    }
}
