//! The long-running processes: `serve` (edge + backend in one process), `edge`, `backend`.
//!
//! Shutdown: SIGTERM stops accepting, lets in-flight requests finish within
//! `edge.shutdown_grace_secs`, and exits 0. SIGINT exits at once. Pingora (`serve`, `edge`)
//! always waits out the whole grace period; the backend alone stops as soon as it is drained.
//!
//! `serve` and `edge` also write `edge.pid_file`, reload their configuration on SIGHUP
//! (`reload`), and with `--upgrade` take their listening sockets over from the process that
//! pid file names (`process`), which then finishes its requests and exits.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use mindshop_backend::{AppState, store};
use mindshop_config::Config;
use nix::unistd::Pid;
use pingora::server::configuration::Opt;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{BackgroundService, background_service};
use rand::Rng;

use crate::LogLevel;
use crate::admin::run_blocking;
use crate::cli::ProcessArgs;
use crate::directory::StoreDirectory;
use crate::process::{self, PidFile};
use crate::reload::Reloader;

/// How a long-running `serve` or `edge` was started.
pub struct Process {
    /// `--config`, which a reload reads again.
    config_path: Option<PathBuf>,
    upgrade: bool,
    log: LogLevel,
}

impl Process {
    pub fn new(config_path: &Option<PathBuf>, args: ProcessArgs, log: LogLevel) -> Self {
        Self {
            config_path: config_path.clone(),
            upgrade: args.upgrade,
            log,
        }
    }

    /// With `--upgrade`, the running process to take over from.
    fn predecessor(&self, config: &Config) -> anyhow::Result<Option<Pid>> {
        if !self.upgrade {
            return Ok(None);
        }
        process::running(&config.pid_file())
            .map(Some)
            .context("--upgrade needs the running process")
    }

    /// Takes over from `predecessor` if any, writes the pid file, listens for SIGHUP and runs
    /// the server until it stops.
    fn run(
        self,
        mut server: Server,
        config: Config,
        edge: mindshop_proxy::EdgeHandle,
        predecessor: Option<Pid>,
    ) -> anyhow::Result<()> {
        if let Some(old) = predecessor {
            process::take_over(&mut server, old, &config.upgrade_socket())?;
        }
        let _pid_file = PidFile::write(&config.pid_file())?;
        let phases = server.watch_execution_phase();
        Reloader::new(self.config_path, config, edge, self.log).listen(phases)?;
        server.run(RunArgs::default());
        tracing::info!("stopped");
        Ok(())
    }
}

/// Edge, backend and metrics in one process, on the embedded defaults.
pub fn serve(config: Config, process: Process) -> anyhow::Result<()> {
    let internal_secret = match &config.internal.secret {
        Some(secret) => secret.expose().to_owned(),
        // Both halves live in this process, so a per-run secret is enough.
        None => random_secret(),
    };
    prepare(&config)?;
    let predecessor = process.predecessor(&config)?;
    if predecessor.is_none() {
        check_edge_ports_free(&config)?;
    }
    raise_open_file_limit();
    // While the old process still serves on `backend.listen`, this one's backend takes a
    // loopback port of its own: each edge then talks only to the backend of its own process
    // (which shares its per-run internal secret), and nothing is refused in the hand-over.
    let backend_listener = match predecessor {
        Some(_) => bind_backend_beside(&config)?,
        None => bind_backend(&config)?,
    };
    let local_backend = loopback_of(backend_listener.local_addr()?);

    let mut server = new_server(&config, predecessor.is_some());
    let edge = add_edge(&mut server, &config, &internal_secret, Some(local_backend))?;
    let handover = Duration::from_secs(config.edge.shutdown_grace_secs).min(Duration::from_secs(1));
    let mut backend = background_service(
        "mindshop backend",
        BackendService {
            listener: Mutex::new(Some(backend_listener)),
            config: config.clone(),
            internal_secret,
            handover,
        },
    );
    // Pingora gives a background service one thread unless told otherwise.
    backend.threads = Some(std::thread::available_parallelism().map_or(2, |n| n.get()));
    server.add_service(backend);
    process.run(server, config, edge, predecessor)
}

/// The edge alone, in front of `edge.backends`.
pub fn edge(config: Config, process: Process) -> anyhow::Result<()> {
    let internal_secret = required_internal_secret(&config)?;
    let predecessor = process.predecessor(&config)?;
    if predecessor.is_none() {
        check_edge_ports_free(&config)?;
    }
    raise_open_file_limit();
    let mut server = new_server(&config, predecessor.is_some());
    let edge = add_edge(&mut server, &config, &internal_secret, None)?;
    process.run(server, config, edge, predecessor)
}

/// The Pingora server of `serve` and `edge`: worker threads, the SIGTERM grace period, and the
/// socket listening sockets are handed over on in an upgrade.
fn new_server(config: &Config, upgrade: bool) -> Server {
    let options = upgrade.then(|| Opt {
        upgrade: true,
        ..Opt::default()
    });
    mindshop_proxy::new_server(config, options)
}

/// The backend alone, behind one or more edges.
pub fn backend(config: Config) -> anyhow::Result<()> {
    let internal_secret = required_internal_secret(&config)?;
    let listener = bind_backend(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let store = store::connect(&config.database)
            .await
            .context("cannot open the database")?;
        let state = AppState::new(&config, store.clone(), &internal_secret)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let metrics_listener = tokio::net::TcpListener::bind(config.backend.metrics_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on backend.metrics_listen {}",
                    config.backend.metrics_listen
                )
            })?;
        let metrics = tokio::spawn(mindshop_backend::serve_metrics(metrics_listener));

        tokio::spawn(ignore_hangups());
        let (signalled, mut signal) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let _ = signalled.send(Some(termination().await));
        });
        let mut stop = signal.clone();
        let server = mindshop_backend::serve(listener, state, async move {
            let _ = stop.wait_for(Option::is_some).await;
        });
        // SIGTERM drains for at most the grace period; SIGINT does not wait.
        let grace = Duration::from_secs(config.edge.shutdown_grace_secs);
        let deadline = async move {
            let received = signal.wait_for(Option::is_some).await.ok().and_then(|s| *s);
            if received == Some(Termination::Graceful) {
                tokio::time::sleep(grace).await;
            }
        };
        tokio::select! {
            served = server => served?,
            () = deadline => tracing::warn!("stopping with requests still in flight"),
        }
        metrics.abort();
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// The edge's services, with the store as its directory of keys and domains.
/// `local_backend`: the backend of this process (`serve`), used while `edge.backends` is empty.
fn add_edge(
    server: &mut Server,
    config: &Config,
    internal_secret: &str,
    local_backend: Option<SocketAddr>,
) -> anyhow::Result<mindshop_proxy::EdgeHandle> {
    let directory = Arc::new(StoreDirectory::new(config.database.clone()));
    mindshop_proxy::add_edge_services(server, config, internal_secret, directory, local_backend)
        .map_err(anyhow::Error::msg)
}

/// Work done before any listener opens, so a bad database or data directory fails at once:
/// migrations, and the JWT secret file that `mindshop admin token` must agree with.
fn prepare(config: &Config) -> anyhow::Result<()> {
    config.resolve_jwt_secret()?;
    run_blocking(async {
        store::connect(&config.database)
            .await
            .context("cannot open the database")?;
        Ok(())
    })
}

fn required_internal_secret(config: &Config) -> anyhow::Result<String> {
    match &config.internal.secret {
        Some(secret) => Ok(secret.expose().to_owned()),
        None => bail!(
            "internal.secret is required when edge and backend run apart: set MINDSHOP_INTERNAL_SECRET \
             (at least 32 characters) to the same value for every edge and backend"
        ),
    }
}

/// Pingora retries a busy port for a long while; an operator is better served by an error now.
fn check_edge_ports_free(config: &Config) -> anyhow::Result<()> {
    let tls = config
        .edge
        .tls_listen
        .map(|address| ("edge.tls_listen", address));
    for (key, address) in [
        ("edge.listen", config.edge.listen),
        ("edge.metrics_listen", config.edge.metrics_listen),
    ]
    .into_iter()
    .chain(tls)
    {
        StdTcpListener::bind(address)
            .with_context(|| format!("cannot listen on {key} {address}"))?;
    }
    Ok(())
}

/// Every client connection is a file handle: the soft limit (often 1,024) would refuse
/// connections long before `edge.max_connections`, so it is raised to the hard limit.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(open_files = limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

/// The backend of a `serve --upgrade`: a fresh port on `backend.listen`'s address.
fn bind_backend_beside(config: &Config) -> anyhow::Result<StdTcpListener> {
    let address = SocketAddr::new(config.backend.listen.ip(), 0);
    let listener = StdTcpListener::bind(address).with_context(|| {
        format!(
            "cannot listen on a port of backend.listen's {}",
            address.ip()
        )
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// `address` with an unspecified IP (`0.0.0.0`, `[::]`) as loopback, to connect to.
fn loopback_of(mut address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => address.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(ip) if ip.is_unspecified() => address.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    address
}

fn bind_backend(config: &Config) -> anyhow::Result<StdTcpListener> {
    let listener = StdTcpListener::bind(config.backend.listen)
        .with_context(|| format!("cannot listen on backend.listen {}", config.backend.listen))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn random_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Termination {
    /// SIGTERM: stop accepting, let in-flight requests finish within the grace period.
    Graceful,
    /// SIGINT (Ctrl-C): stop now.
    Immediate,
}

/// The backend alone has nothing to reload (its settings apply at restart), but a SIGHUP sent
/// to every mindshop process must not end it, as the default action would.
async fn ignore_hangups() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: the backend applies configuration changes at its next restart");
    }
}

/// Resolves on SIGTERM or SIGINT, saying which.
async fn termination() -> Termination {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: draining");
                    Termination::Graceful
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: stopping");
                    Termination::Immediate
                }
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stopping on ctrl-c only");
            let _ = tokio::signal::ctrl_c().await;
            Termination::Immediate
        }
    }
}

/// The backend as a Pingora background service, so it shares the server's lifecycle.
struct BackendService {
    listener: Mutex<Option<StdTcpListener>>,
    config: Config,
    internal_secret: String,
    /// How long the backend keeps serving after shutdown starts, so requests the edge accepted
    /// just before still reach it.
    handover: Duration,
}

#[async_trait]
impl BackgroundService for BackendService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(listener) = self.listener.lock().ok().and_then(|mut l| l.take()) else {
            return;
        };
        let started = async {
            // `serve` migrated before starting (see `prepare`).
            let store = store::open(&self.config.database).await?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let state = AppState::new(&self.config, store.clone(), &self.internal_secret)?;
            anyhow::Ok((store, listener, state))
        };
        let (store, listener, state) = match started.await {
            Ok(started) => started,
            Err(error) => {
                // Straight to stderr: the log writer thread would not outlive `exit`.
                eprintln!("error: the backend cannot start: {error:#}");
                std::process::exit(1);
            }
        };
        let handover = self.handover;
        let stop = async move {
            let _ = shutdown.changed().await;
            tokio::time::sleep(handover).await;
        };
        if let Err(error) = mindshop_backend::serve(listener, state, stop).await {
            tracing::error!(%error, "the backend stopped with an error");
        }
        store.close().await;
    }
}
