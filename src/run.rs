//! The long-running processes: `serve` (edge + backend in one process), `edge`, `backend`.
//!
//! Shutdown: SIGTERM stops accepting, lets in-flight requests finish within
//! `edge.shutdown_grace_secs`, and exits 0. SIGINT exits at once. Pingora (`serve`, `edge`)
//! always waits out the whole grace period; the backend alone stops as soon as it is drained.

use std::net::TcpListener as StdTcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use mindshop_backend::{AppState, store};
use mindshop_config::{Config, JwtAlgorithm};
use pingora::server::{RunArgs, ShutdownWatch};
use pingora::services::background::{BackgroundService, background_service};
use rand::Rng;

use crate::admin::run_blocking;
use crate::directory::StoreDirectory;

/// Edge, backend and metrics in one process, on the embedded defaults.
pub fn serve(config: Config) -> anyhow::Result<()> {
    let internal_secret = match &config.internal.secret {
        Some(secret) => secret.expose().to_owned(),
        // Both halves live in this process, so a per-run secret is enough.
        None => random_secret(),
    };
    prepare(&config)?;
    check_edge_ports_free(&config)?;
    raise_open_file_limit();
    let backend_listener = bind_backend(&config)?;

    let mut server = mindshop_proxy::new_server(&config);
    add_edge(&mut server, &config, &internal_secret)?;
    let handover = Duration::from_secs(config.edge.shutdown_grace_secs).min(Duration::from_secs(1));
    let mut backend = background_service(
        "mindshop backend",
        BackendService {
            listener: Mutex::new(Some(backend_listener)),
            config,
            internal_secret,
            handover,
        },
    );
    // Pingora gives a background service one thread unless told otherwise.
    backend.threads = Some(std::thread::available_parallelism().map_or(2, |n| n.get()));
    server.add_service(backend);
    server.run(RunArgs::default());
    tracing::info!("stopped");
    Ok(())
}

/// The edge alone, in front of `edge.backends`.
pub fn edge(config: Config) -> anyhow::Result<()> {
    let internal_secret = required_internal_secret(&config)?;
    check_edge_ports_free(&config)?;
    raise_open_file_limit();
    let mut server = mindshop_proxy::new_server(&config);
    add_edge(&mut server, &config, &internal_secret)?;
    server.run(RunArgs::default());
    tracing::info!("stopped");
    Ok(())
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
fn add_edge(
    server: &mut pingora::server::Server,
    config: &Config,
    internal_secret: &str,
) -> anyhow::Result<()> {
    let jwt_key = match config.auth.jwt_algorithm {
        JwtAlgorithm::Hs256 => config.resolve_jwt_secret()?.expose().as_bytes().to_vec(),
        JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => {
            let path = config
                .auth
                .jwt_public_key_file
                .as_ref()
                .context("auth.jwt_public_key_file is required for RS256/ES256")?;
            std::fs::read(path).with_context(|| {
                format!("cannot read auth.jwt_public_key_file {}", path.display())
            })?
        }
    };
    let directory = Arc::new(StoreDirectory::new(config.database.clone()));
    mindshop_proxy::add_edge_services(server, config, internal_secret, directory, &jwt_key)
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
