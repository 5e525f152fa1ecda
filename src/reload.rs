//! Configuration reloads: SIGHUP (or `mindshop reload`, which sends it) re-reads the file and
//! the environment, validates all of it, and swaps in what can change live.
//!
//! The order makes a reload all or nothing: load and validate the whole file, build the log
//! filter, build the edge's new settings and certificates ([`EdgeHandle::reload`], which swaps
//! them in one step), and only then replace the log filter. An invalid file changes nothing;
//! its error, which names the key, is logged and counted. Keys that only a restart applies
//! (listeners, the database, threads, …) are logged, one line each, whenever they differ from
//! what the process started with.
//!
//! The outcome of each reload also goes to a small status file beside the pid file, so
//! `mindshop reload` can wait for it and exit non-zero when the process refused the file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use mindshop_config::Config;
use mindshop_proxy::EdgeHandle;
use mindshop_proxy::metrics::RELOAD_METRICS;
use nix::sys::signal::Signal;
use pingora::server::ExecutionPhase;
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast;

use crate::LogLevel;
use crate::process;

/// Reloads the configuration of a running `serve` or `edge`.
pub(crate) struct Reloader {
    /// `--config`, as the process was started with.
    path: Option<PathBuf>,
    edge: EdgeHandle,
    log: LogLevel,
    /// The configuration at start-up: what restart-only keys stay at until the next one.
    started: Config,
    /// The configuration in use.
    current: Mutex<Config>,
    status_file: PathBuf,
}

/// What the last reload did, as `mindshop reload` reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReloadStatus {
    pub pid: u32,
    /// Reloads since start-up, this one included.
    pub reloads: u64,
    pub applied: bool,
    /// Why the file was refused (names the key).
    pub error: Option<String>,
    /// Keys changed since the last configuration in use.
    pub changed: Vec<String>,
    /// Keys that differ from the start-up configuration and wait for a restart.
    pub restart_pending: Vec<String>,
}

impl Reloader {
    pub fn new(path: Option<PathBuf>, config: Config, edge: EdgeHandle, log: LogLevel) -> Self {
        Self {
            path,
            edge,
            log,
            status_file: status_file(&config.pid_file()),
            current: Mutex::new(config.clone()),
            started: config,
        }
    }

    /// Starts listening for SIGHUP on a thread of its own, before any listener opens, so a
    /// SIGHUP never finds the process without its handler (the default would end it). The same
    /// thread watches the server's `phases`: once it hands its sockets over or starts to stop,
    /// the edge drains ([`EdgeHandle::drain`]).
    pub fn listen(self, mut phases: broadcast::Receiver<ExecutionPhase>) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the reload thread's runtime")?;
        let mut hangups = {
            let _entered = runtime.enter();
            signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?
        };
        RELOAD_METRICS.started();
        let _ = std::fs::remove_file(&self.status_file);
        std::thread::Builder::new()
            .name("mindshop-reload".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut reloads = 0;
                    let mut watching = true;
                    loop {
                        tokio::select! {
                            hangup = hangups.recv() => {
                                if hangup.is_none() {
                                    return;
                                }
                                reloads += 1;
                                tracing::info!("SIGHUP: reloading the configuration");
                                self.reload(reloads);
                            }
                            phase = phases.recv(), if watching => match phase {
                                Ok(
                                    ExecutionPhase::GracefulUpgradeTransferringFds
                                    | ExecutionPhase::GracefulTerminate
                                    | ExecutionPhase::ShutdownStarted,
                                ) => {
                                    tracing::info!("draining: answers now close their connections");
                                    self.edge.drain();
                                }
                                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                                Err(broadcast::error::RecvError::Closed) => watching = false,
                            },
                        }
                    }
                });
            })
            .context("cannot start the reload thread")?;
        Ok(())
    }

    fn reload(&self, reloads: u64) {
        let mut status = ReloadStatus {
            pid: std::process::id(),
            reloads,
            ..ReloadStatus::default()
        };
        match self.apply() {
            Ok(config) => {
                RELOAD_METRICS.record(true);
                let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
                status.applied = true;
                status.changed = current.changed_keys(&config);
                status.restart_pending = self
                    .started
                    .changed_keys(&config)
                    .into_iter()
                    .filter(|key| !mindshop_proxy::applies_live(key))
                    .collect();
                for key in &status.restart_pending {
                    tracing::warn!(key = %key, "changed in the configuration: applied at the next restart");
                }
                tracing::info!(
                    changed = ?status.changed,
                    disabled_routes = ?self.edge.disabled_routes(),
                    "configuration reloaded"
                );
                *current = config;
            }
            Err(error) => {
                RELOAD_METRICS.record(false);
                tracing::error!(%error, "configuration reload refused; the configuration in use is unchanged");
                status.error = Some(error);
            }
        }
        if let Err(error) = write_status(&self.status_file, &status) {
            tracing::warn!(error = %format!("{error:#}"), "cannot write the reload status file");
        }
    }

    /// Loads and applies the configuration, all of it or nothing.
    fn apply(&self) -> Result<Config, String> {
        let config = Config::load(self.path.as_deref(), std::env::vars())
            .map_err(|error| error.to_string())?;
        let filter = self.log.filter(&config.log.level)?;
        self.edge.reload(&config)?;
        self.log.replace(filter);
        Ok(config)
    }
}

/// `mindshop reload`: sends the running process SIGHUP and waits (10 s at most) for its
/// verdict, printed as JSON; a file the process refused is an error. `config` was loaded from
/// the same file and environment before (`main`), so an invalid file is reported without
/// signalling anyone (the process's own environment may still differ).
pub(crate) fn run(config: &Config) -> anyhow::Result<()> {
    let pid = process::running(&config.pid_file())?;
    let status_file = status_file(&config.pid_file());
    let before = read_status(&status_file).map_or(0, |s| s.reloads);
    process::send(pid, Signal::SIGHUP)?;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(status) = read_status(&status_file).filter(|s| s.reloads > before) {
            println!("{}", serde_json::to_string_pretty(&status)?);
            if let Some(error) = status.error {
                anyhow::bail!("process {pid} refused the configuration: {error}");
            }
            return Ok(());
        }
    }
    anyhow::bail!("process {pid} was signalled but reported no reload within 10 s; see its log")
}

/// `mindshop.pid` → `mindshop.reload.json`, beside it.
fn status_file(pid_file: &Path) -> PathBuf {
    pid_file.with_extension("reload.json")
}

fn read_status(path: &Path) -> Option<ReloadStatus> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_status(path: &Path, status: &ReloadStatus) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(status)?)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}
