//! The mindshop edge: a Pingora proxy that runs the request filters of `mindshop-filters` in
//! the architecture's order, forwards the signed identity to a backend, and exports metrics.
//!
//! # Layout
//! - [`Edge`] (`edge.rs`): the `ProxyHttp` implementation; one hook per pipeline phase.
//! - `gate.rs`: the admission steps after routing: the route's switch, CORS,
//!   authentication, authorization, rate limits.
//! - `live.rs`: the settings a reload replaces, and [`EdgeHandle`], which replaces them.
//! - [`directory`]: API keys and merchant domains as the edge sees them, cached for
//!   `auth.key_cache_ttl_secs`.
//! - `answer.rs`: writing the edge's own answers (404, 413, 502, …) as envelopes.
//! - `client.rs`: the client's address behind `edge.trusted_proxies`.
//! - `connections.rs`: connection caps per address and in total, the request-head deadline.
//! - `tls.rs`: the HTTPS listener's certificates, chosen by SNI.
//! - [`metrics`]: the Prometheus metrics and the `/metrics` listener.
//! - `widget.rs`: `/v1/widget.js` (`assets/widget.js`, built in) and the widget's load reports.
//! - [`add_edge_services`] / [`new_server`]: assembling the Pingora server from config.

mod answer;
mod client;
mod connections;
pub mod directory;
mod edge;
mod gate;
mod live;
pub mod metrics;
mod tls;
mod widget;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use mindshop_config::Config;
use std::time::Duration;

use pingora::apps::HttpServerOptions;
use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::TlsSettings;
use pingora::protocols::http::v2::server::H2Options;
use pingora::server::Server;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::listening::Service;

pub use directory::{Directory, DirectoryError, ResolvedKey};
pub use edge::Edge;
pub use live::{EdgeHandle, applies_live};

/// A Pingora server configured from `edge.*`: worker threads, the SIGTERM grace period
/// during which in-flight requests finish, and `edge.upgrade_socket`, over which it hands its
/// listening sockets to a successor (or, with `options.upgrade`, receives its predecessor's).
pub fn new_server(config: &Config, options: Option<Opt>) -> Server {
    let conf = ServerConf {
        threads: config.edge.threads,
        grace_period_seconds: Some(config.edge.shutdown_grace_secs),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: config.upgrade_socket().to_string_lossy().into_owned(),
        ..ServerConf::default()
    };
    Server::new_with_opt_and_conf(options, conf)
}

/// Adds the proxy on `edge.listen` (and `edge.tls_listen` for HTTPS, HTTP/2 by ALPN) and the
/// metrics listener on `edge.metrics_listen`, and returns the handle that reloads them. An
/// unreadable certificate or JWT key is an error naming its key.
///
/// `local_backend`: the backend in this process (`serve`), which the edge forwards to while
/// `edge.backends` is empty, whatever a reload says.
pub fn add_edge_services(
    server: &mut Server,
    config: &Config,
    internal_secret: &str,
    directory: Arc<dyn Directory>,
    local_backend: Option<SocketAddr>,
) -> Result<EdgeHandle, String> {
    let edge_config = &config.edge;
    metrics::EDGE_METRICS.init();
    answer::set_hsts(edge_config.hsts_max_age_secs);
    let trusted = client::TrustedProxies::new(&edge_config.trusted_proxies);
    let limits = connections::Limits::new(edge_config, trusted.clone());
    let stores = Arc::new(gate::Stores::new(config, directory)?);
    let tls_port = edge_config.tls_listen.map(|address| address.port());
    let place = live::Placement {
        tls_port,
        local_backend,
    };
    let settings = live::Settings::new(config, stores.clone(), place)?;
    let settings = Arc::new(ArcSwap::from_pointee(settings));
    let draining = Arc::new(AtomicBool::new(false));
    let edge = Edge::new(settings.clone(), internal_secret, trusted, draining.clone());
    let mut proxy = pingora::proxy::http_proxy(&server.configuration, edge);
    proxy.h2_options = Some(h2_options(edge_config));
    let mut options = HttpServerOptions::default();
    options.h2_idle_timeout = Some(Duration::from_secs(edge_config.h2_idle_timeout_secs));
    proxy.server_options = Some(options);
    let guarded = connections::Guarded {
        inner: Arc::new(proxy),
        limits: limits.clone(),
    };
    let mut service = Service::new("mindshop edge".to_owned(), guarded);
    service.add_tcp(&edge_config.listen.to_string());
    let mut resolver = None;
    if let Some(tls_listen) = edge_config.tls_listen {
        let certificates = Arc::new(tls::CertificateResolver::new(tls::Certificates::load(
            edge_config,
        )?));
        // The paths are unused: the resolver picks a certificate per handshake by SNI.
        let mut tls_settings =
            TlsSettings::intermediate("", "").map_err(|e| format!("edge.tls_listen: {e}"))?;
        tls_settings.set_cert_resolver(certificates.clone());
        tls_settings.enable_h2();
        service
            .endpoints()
            .set_pre_tls_callback(Arc::new(connections::CountBeforeHandshake(limits)));
        service.add_tls_with_settings(&tls_listen.to_string(), None, tls_settings);
        resolver = Some(certificates);
    }
    server.add_service(service);

    let mut metrics = Service::new(
        "mindshop metrics".to_owned(),
        HttpServer::new_app(metrics::MetricsEndpoint),
    );
    metrics.add_tcp(&edge_config.metrics_listen.to_string());
    server.add_service(metrics);
    tracing::info!(
        edge = %edge_config.listen,
        tls = ?edge_config.tls_listen,
        metrics = %edge_config.metrics_listen,
        backends = ?config.edge_backends(),
        "edge configured"
    );
    Ok(EdgeHandle::new(settings, stores, resolver, place, draining))
}

/// HTTP/2 limits from `edge.h2_*`: concurrent streams, header list size, and the reset
/// floods (streams a client resets before they are accepted; streams the edge resets for a
/// client's errors) after which a connection is closed.
fn h2_options(edge: &mindshop_config::EdgeConfig) -> H2Options {
    let mut options = pingora::protocols::http::v2::server::default_h2_options();
    options
        .max_concurrent_streams(edge.h2_max_concurrent_streams)
        .max_header_list_size(edge.h2_max_header_list_bytes)
        .max_pending_accept_reset_streams(edge.h2_max_pending_reset_streams)
        .max_local_error_reset_streams(Some(edge.h2_max_local_error_resets));
    options
}
