//! `mindshop`: one binary for the edge, the backend and the operator commands.
//!
//! The binary only parses arguments, loads the configuration and hands over:
//! `serve`, `edge` and `backend` to [`run`]; `migrate`, `admin` and `config check` to [`admin`].
//!
//! # Layout
//! - `cli`: the clap definitions of every command.
//! - `run`: the long-running processes and their shutdown.
//! - `admin`: operator commands that print JSON on stdout.

mod admin;
mod cli;
mod run;

use std::process::ExitCode;

use clap::Parser;
use mindshop_config::{Config, LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, ConfigCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config.log);

    let outcome = match cli.command {
        Command::Serve => run::serve(config),
        Command::Edge => run::edge(config),
        Command::Backend => run::backend(config),
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            print!("{}", config.redacted_toml());
            Ok(())
        }
        Command::Migrate => admin::run_blocking(admin::migrate(&config)),
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

/// Logs go to stderr (stdout is for the JSON of admin commands). `RUST_LOG`, when set,
/// overrides `log.level`.
fn init_tracing(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
