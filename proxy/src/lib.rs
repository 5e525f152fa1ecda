//! The mindshop edge: a Pingora proxy that runs the request filters of `mindshop-filters` in
//! the architecture's order, forwards the signed identity to a backend, and exports metrics.
//!
//! # Layout
//! - [`Edge`] (`edge.rs`): the `ProxyHttp` implementation; one hook per pipeline phase.
//! - `gate.rs`: the admission steps after routing: CORS, authentication, authorization,
//!   rate limits.
//! - [`directory`]: API keys and merchant domains as the edge sees them, cached for
//!   `auth.key_cache_ttl_secs`.
//! - `answer.rs`: writing the edge's own answers (404, 413, 502, …) as envelopes.
//! - [`metrics`]: the Prometheus metrics and the `/metrics` listener.
//! - `widget.rs`: `/v1/widget.js` (`assets/widget.js`, built in) and the widget's load reports.
//! - [`add_edge_services`] / [`new_server`]: assembling the Pingora server from config.

mod answer;
pub mod directory;
mod edge;
mod gate;
pub mod metrics;
mod widget;

use std::sync::Arc;

use mindshop_config::Config;
use pingora::apps::http_app::HttpServer;
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;

pub use directory::{Directory, DirectoryError, ResolvedKey};
pub use edge::Edge;

/// A Pingora server configured from `edge.*`: worker threads and the SIGTERM grace period
/// during which in-flight requests finish.
pub fn new_server(config: &Config) -> Server {
    let conf = ServerConf {
        threads: config.edge.threads,
        grace_period_seconds: Some(config.edge.shutdown_grace_secs),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    Server::new_with_opt_and_conf(None, conf)
}

/// Adds the proxy on `edge.listen` and the metrics listener on `edge.metrics_listen`.
/// `jwt_key` is the HS256 secret, or the PEM public key for RS256/ES256.
pub fn add_edge_services(
    server: &mut Server,
    config: &Config,
    internal_secret: &str,
    directory: Arc<dyn Directory>,
    jwt_key: &[u8],
) -> Result<(), String> {
    let edge = Edge::new(config, internal_secret, directory, jwt_key)?;
    let mut proxy =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, edge, "mindshop edge");
    proxy.add_tcp(&config.edge.listen.to_string());
    server.add_service(proxy);

    let mut metrics = Service::new(
        "mindshop metrics".to_owned(),
        HttpServer::new_app(metrics::MetricsEndpoint),
    );
    metrics.add_tcp(&config.edge.metrics_listen.to_string());
    server.add_service(metrics);
    tracing::info!(
        edge = %config.edge.listen,
        metrics = %config.edge.metrics_listen,
        backends = ?config.edge_backends(),
        "edge configured"
    );
    Ok(())
}
