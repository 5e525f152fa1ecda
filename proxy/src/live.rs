//! What a reload changes while the edge runs.
//!
//! [`Settings`] is everything a request of the edge reads from the configuration: the gate
//! (route table, CORS, credentials, limits) and the proxying knobs. It is built whole from one
//! `Config` and swapped in at once ([`EdgeHandle::reload`]): a request takes the settings
//! current when it arrives and keeps them to its end, so requests in flight finish under the
//! configuration they started with, and no request ever sees half of one reload. What must
//! outlive a reload — the key cache, the rate-limit counters, the listeners and their
//! connections — is not in `Settings`, so nothing is dropped or reset (a counter starts over
//! only when `limits.window_secs` changes, as its window is then another one).
//!
//! Which keys apply live and which wait for a restart is [`applies_live`]; the binary logs
//! the others when they change.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use mindshop_config::Config;

use crate::gate::{Gate, Stores};
use crate::tls::{CertificateResolver, Certificates};

/// The configuration every request reads, as one value.
pub(crate) struct Settings {
    pub gate: Gate,
    pub backends: Vec<SocketAddr>,
    pub max_body_bytes: u64,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub keepalive_secs: u64,
    pub body_read_timeout: Duration,
    pub body_min_bytes_per_sec: u64,
    /// The HTTPS port plain requests are redirected to (`edge.redirect_http_to_https`).
    pub redirect_to_port: Option<u16>,
}

/// What the process set up at start-up that the settings depend on and a reload cannot change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement {
    /// The port of the HTTPS listener, if the process opened one.
    pub tls_port: Option<u16>,
    /// The backend in this process (`serve`), for an empty `edge.backends`.
    pub local_backend: Option<SocketAddr>,
}

impl Settings {
    pub fn new(config: &Config, stores: Arc<Stores>, place: Placement) -> Result<Self, String> {
        let edge = &config.edge;
        let backends = match place.local_backend {
            Some(local) if edge.backends.is_empty() => vec![local],
            _ => config.edge_backends(),
        };
        Ok(Self {
            gate: Gate::new(config, stores)?,
            backends,
            max_body_bytes: edge.max_body_bytes,
            connect_timeout: Duration::from_millis(edge.upstream_connect_timeout_ms),
            read_timeout: Duration::from_millis(edge.upstream_read_timeout_ms),
            keepalive_secs: edge.keepalive_timeout_secs,
            body_read_timeout: Duration::from_millis(edge.body_read_timeout_ms),
            body_min_bytes_per_sec: edge.body_min_bytes_per_sec,
            redirect_to_port: place.tls_port.filter(|_| edge.redirect_http_to_https),
        })
    }
}

/// Keys (and whole sections) a reload applies. `log.level` is the binary's to apply.
const LIVE: &[&str] = &[
    "routes",
    "cors",
    "auth",
    "limits",
    "log.level",
    "edge.backends",
    "edge.tls_certificates",
    "edge.redirect_http_to_https",
    "edge.max_body_bytes",
    "edge.upstream_connect_timeout_ms",
    "edge.upstream_read_timeout_ms",
    "edge.keepalive_timeout_secs",
    "edge.body_read_timeout_ms",
    "edge.body_min_bytes_per_sec",
];

/// Keys inside a live section that still need a restart: where the counters live.
const RESTART_ONLY: &[&str] = &["limits.store", "limits.redis_lease_max"];

/// Whether a reload applies the configuration key `key` (dotted, as `edge.backends`); every
/// other key is applied at the next restart.
pub fn applies_live(key: &str) -> bool {
    let within = |prefix: &&str| {
        key.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    LIVE.iter().any(within) && !RESTART_ONLY.iter().any(within)
}

/// The running edge's reloadable parts, for the process that owns it.
pub struct EdgeHandle {
    settings: Arc<ArcSwap<Settings>>,
    stores: Arc<Stores>,
    certificates: Option<Arc<CertificateResolver>>,
    place: Placement,
    draining: Arc<AtomicBool>,
}

impl EdgeHandle {
    pub(crate) fn new(
        settings: Arc<ArcSwap<Settings>>,
        stores: Arc<Stores>,
        certificates: Option<Arc<CertificateResolver>>,
        place: Placement,
        draining: Arc<AtomicBool>,
    ) -> Self {
        Self {
            draining,
            settings,
            stores,
            certificates,
            place,
        }
    }

    /// Builds everything `config` says the edge should apply live and swaps it in, or changes
    /// nothing and says why (an unreadable certificate or JWT key, named by its key). The
    /// caller has validated `config`.
    pub fn reload(&self, config: &Config) -> Result<(), String> {
        let settings = Settings::new(config, self.stores.clone(), self.place)?;
        // The HTTPS listener exists only if it did at start-up; without `edge.tls_listen` in
        // the new file (a restart-only change), its certificates stay as they are.
        let certificates = match &self.certificates {
            Some(_) if config.edge.tls_listen.is_some() => Some(Certificates::load(&config.edge)?),
            _ => None,
        };
        // Everything is built: from here on nothing can fail.
        self.settings.store(Arc::new(settings));
        if let (Some(resolver), Some(certificates)) = (&self.certificates, certificates) {
            resolver.replace(certificates);
        }
        self.stores.set_key_cache_ttl(config);
        Ok(())
    }

    /// From now on every answer closes its connection (`Connection: close`): the process is
    /// handing over to a successor or stopping, and its clients should reconnect.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The route groups currently switched off, by label.
    pub fn disabled_routes(&self) -> Vec<&'static str> {
        self.settings
            .load()
            .gate
            .routes()
            .disabled()
            .map(|group| group.label())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_keys_are_the_reloadable_sections_and_edge_knobs() {
        for key in [
            "routes.sync.enabled",
            "cors.widget_origins",
            "cors.allowed_origins",
            "auth.jwt_secret",
            "auth.key_cache_ttl_secs",
            "limits.documents",
            "limits.window_secs",
            "limits.plan_multipliers.pro",
            "log.level",
            "edge.tls_certificates",
            "edge.backends",
        ] {
            assert!(applies_live(key), "{key}");
        }
        for key in [
            "edge.listen",
            "edge.tls_listen",
            "edge.threads",
            "edge.metrics_listen",
            "database.url",
            "internal.secret",
            "limits.store",
            "limits.redis_lease_max",
            "redis.url",
            "log.format",
            "log.levels",
            "chat.llm_model",
            "edge.backends_extra",
        ] {
            assert!(!applies_live(key), "{key}");
        }
    }
}
