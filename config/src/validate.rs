//! [`Config::validate`]: the rules serde's types cannot express.

use crate::sections::{POSTGRES_PREFIXES, SQLITE_PREFIX};
use mindshop_wire::origin::Origin;

use crate::{Config, ConfigError, JwtAlgorithm, LimitStore, Secret};

/// Shortest accepted HMAC key: 256 bits, the output size of the SHA-256 it keys.
const MIN_SECRET_BYTES: usize = 32;

impl Config {
    /// Checks the rules types cannot express (non-zero timeouts, URL schemes, secret lengths)
    /// and reports the first broken one, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let edge = &self.edge;
        positive("edge.max_body_bytes", edge.max_body_bytes)?;
        positive("edge.threads", edge.threads as u64)?;
        positive(
            "edge.upstream_connect_timeout_ms",
            edge.upstream_connect_timeout_ms,
        )?;
        positive(
            "edge.upstream_read_timeout_ms",
            edge.upstream_read_timeout_ms,
        )?;
        // `serve` binds all three listeners in one process, so no two may share an address;
        // port 0 (tests) asks the OS for a fresh port each time.
        let backend = self.backend.listen;
        for (key, address, other_key, other) in [
            (
                "edge.metrics_listen",
                edge.metrics_listen,
                "edge.listen",
                edge.listen,
            ),
            ("backend.listen", backend, "edge.listen", edge.listen),
            (
                "backend.listen",
                backend,
                "edge.metrics_listen",
                edge.metrics_listen,
            ),
            // `backend` run apart binds these two.
            (
                "backend.metrics_listen",
                self.backend.metrics_listen,
                "backend.listen",
                backend,
            ),
        ] {
            if address == other && address.port() != 0 {
                return Err(ConfigError::invalid(
                    key,
                    format!("must differ from {other_key} ({other})"),
                ));
            }
        }
        positive(
            "backend.request_timeout_secs",
            self.backend.request_timeout_secs,
        )?;
        self.validate_edge_tls()?;
        self.validate_client_limits()?;

        let db = &self.database;
        let url = db.url.as_str();
        if !url.starts_with(SQLITE_PREFIX) && !POSTGRES_PREFIXES.iter().any(|p| url.starts_with(p))
        {
            return Err(ConfigError::invalid(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        positive("database.max_connections", u64::from(db.max_connections))?;
        positive("database.connect_timeout_secs", db.connect_timeout_secs)?;

        long_enough("auth.jwt_secret", self.auth.jwt_secret.as_ref())?;
        long_enough("internal.secret", self.internal.secret.as_ref())?;
        positive(
            "internal.max_clock_skew_secs",
            self.internal.max_clock_skew_secs,
        )?;

        self.validate_policy()?;

        if self.data.dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("data.dir", "must not be empty"));
        }
        for (name, switch) in self.routes.switches() {
            positive(
                &format!("routes.{name}.retry_after_secs"),
                switch.retry_after_secs,
            )?;
        }
        // sockaddr_un holds 108 bytes, the terminating NUL included.
        let socket = self.upgrade_socket();
        if socket.as_os_str().len() > 107 {
            return Err(ConfigError::invalid(
                "edge.upgrade_socket",
                format!(
                    "{} is {} bytes; a Unix socket path has at most 107",
                    socket.display(),
                    socket.as_os_str().len()
                ),
            ));
        }
        if self.log.level.trim().is_empty() {
            return Err(ConfigError::invalid(
                "log.level",
                "must not be empty (an EnvFilter directive such as \"info\")",
            ));
        }
        Ok(())
    }
}

impl Config {
    /// `[auth]` beyond secrets, `[cors]`, `[limits]`, `[redis]`.
    fn validate_policy(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        if auth.jwt_algorithm != JwtAlgorithm::Hs256 && auth.jwt_public_key_file.is_none() {
            return Err(ConfigError::invalid(
                "auth.jwt_public_key_file",
                "is required when auth.jwt_algorithm is RS256 or ES256",
            ));
        }
        if auth.jwt_max_lifetime_secs == Some(0) {
            return Err(ConfigError::invalid(
                "auth.jwt_max_lifetime_secs",
                "must be greater than 0 (leave it out for no bound)",
            ));
        }
        positive("auth.key_cache_ttl_secs", auth.key_cache_ttl_secs)?;

        for (key, origins) in [
            ("cors.allowed_origins", &self.cors.allowed_origins),
            ("cors.portal_origins", &self.cors.portal_origins),
        ] {
            for origin in origins {
                if Origin::parse(origin).is_none() {
                    return Err(ConfigError::invalid(
                        key,
                        format!(
                            "{origin:?} is not an origin such as https://shop.example.com[:port]"
                        ),
                    ));
                }
            }
        }

        let sync = &self.sync;
        positive("sync.scheduler_interval_secs", sync.scheduler_interval_secs)?;
        positive("sync.stale_run_secs", sync.stale_run_secs)?;
        positive("sync.fetch_timeout_secs", sync.fetch_timeout_secs)?;
        positive("sync.max_fetch_bytes", sync.max_fetch_bytes)?;
        if let Some(endpoint) = &sync.s3_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::invalid(
                "sync.s3_endpoint",
                "must be an http:// or https:// URL",
            ));
        }

        let chat = &self.chat;
        positive("chat.llm_timeout_secs", chat.llm_timeout_secs)?;
        positive("chat.llm_total_timeout_secs", chat.llm_total_timeout_secs)?;
        // A whole answer shorter than the wait for its first chunk would make that wait a lie.
        if chat.llm_total_timeout_secs < chat.llm_timeout_secs {
            return Err(ConfigError::invalid(
                "chat.llm_total_timeout_secs",
                "must be at least chat.llm_timeout_secs",
            ));
        }
        positive("chat.llm_max_tokens", u64::from(chat.llm_max_tokens))?;
        positive("chat.index_interval_ms", chat.index_interval_ms)?;
        if let Some(url) = &chat.llm_base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::invalid(
                "chat.llm_base_url",
                "must be an http:// or https:// URL",
            ));
        }

        let webhooks = &self.webhooks;
        positive("webhooks.timeout_secs", webhooks.timeout_secs)?;
        positive(
            "webhooks.max_consecutive_failures",
            u64::from(webhooks.max_consecutive_failures),
        )?;
        positive(
            "webhooks.dispatch_interval_ms",
            webhooks.dispatch_interval_ms,
        )?;
        positive("webhooks.concurrency", u64::from(webhooks.concurrency))?;

        let limits = &self.limits;
        positive("limits.window_secs", limits.window_secs)?;
        for (key, limit) in [
            ("limits.chat", limits.chat),
            ("limits.sessions", limits.sessions),
            ("limits.widget_per_ip", limits.widget_per_ip),
            ("limits.documents", limits.documents),
            ("limits.products", limits.products),
            ("limits.portal", limits.portal),
            ("limits.sync_writes", limits.sync_writes),
            ("limits.sync_webhook", limits.sync_webhook),
            ("limits.refused_per_ip", limits.refused_per_ip),
            ("limits.redis_lease_max", limits.redis_lease_max),
        ] {
            positive(key, u64::from(limit))?;
        }
        for (plan, multiplier) in &limits.plan_multipliers {
            if !(multiplier.is_finite() && *multiplier > 0.0) {
                return Err(ConfigError::invalid(
                    &format!("limits.plan_multipliers.{plan}"),
                    "must be a number greater than 0",
                ));
            }
        }

        match &self.redis.url {
            Some(url)
                if !["redis://", "rediss://"]
                    .iter()
                    .any(|s| url.expose().starts_with(s)) =>
            {
                return Err(ConfigError::invalid(
                    "redis.url",
                    "must start with redis:// or rediss://",
                ));
            }
            None if limits.store == LimitStore::Redis => {
                return Err(ConfigError::invalid(
                    "redis.url",
                    "is required when limits.store is \"redis\"",
                ));
            }
            _ => {}
        }
        let prefix = &self.redis.key_prefix;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::invalid(
                "redis.key_prefix",
                "must be non-empty visible ASCII",
            ));
        }
        Ok(())
    }
}

impl Config {
    /// The HTTPS listener: its address apart from the others, certificates to serve, names
    /// they can be chosen by. The files themselves are read when the edge starts.
    fn validate_edge_tls(&self) -> Result<(), ConfigError> {
        let edge = &self.edge;
        let Some(tls) = edge.tls_listen else {
            if !edge.tls_certificates.is_empty() {
                return Err(ConfigError::invalid(
                    "edge.tls_certificates",
                    "are set but edge.tls_listen is not; set it to serve HTTPS",
                ));
            }
            if edge.redirect_http_to_https {
                return Err(ConfigError::invalid(
                    "edge.redirect_http_to_https",
                    "needs edge.tls_listen, the listener to redirect to",
                ));
            }
            return Ok(());
        };
        for (other_key, other) in [
            ("edge.listen", edge.listen),
            ("edge.metrics_listen", edge.metrics_listen),
            ("backend.listen", self.backend.listen),
        ] {
            if tls == other && tls.port() != 0 {
                return Err(ConfigError::invalid(
                    "edge.tls_listen",
                    format!("must differ from {other_key} ({other})"),
                ));
            }
        }
        if edge.tls_certificates.is_empty() {
            return Err(ConfigError::invalid(
                "edge.tls_certificates",
                "must list at least one certificate ([[edge.tls_certificates]] with cert_file, \
                 key_file and hosts) when edge.tls_listen is set",
            ));
        }
        for (index, certificate) in edge.tls_certificates.iter().enumerate() {
            for (name, path) in [
                ("cert_file", &certificate.cert_file),
                ("key_file", &certificate.key_file),
            ] {
                if path.as_os_str().is_empty() {
                    return Err(ConfigError::invalid(
                        &format!("edge.tls_certificates[{index}].{name}"),
                        "must name a PEM file",
                    ));
                }
            }
            for host in &certificate.hosts {
                if !is_sni_pattern(host) {
                    return Err(ConfigError::invalid(
                        &format!("edge.tls_certificates[{index}].hosts"),
                        format!(
                            "{host:?} is not a lowercase host name or a wildcard \
                             `*.example.com`"
                        ),
                    ));
                }
            }
        }
        positive(
            "edge.h2_max_concurrent_streams",
            u64::from(edge.h2_max_concurrent_streams),
        )?;
        positive(
            "edge.h2_max_header_list_bytes",
            u64::from(edge.h2_max_header_list_bytes),
        )?;
        positive("edge.h2_idle_timeout_secs", edge.h2_idle_timeout_secs)?;
        Ok(())
    }

    /// Deadlines and connection caps: 0 would refuse every client or none.
    fn validate_client_limits(&self) -> Result<(), ConfigError> {
        let edge = &self.edge;
        positive("edge.header_read_timeout_ms", edge.header_read_timeout_ms)?;
        positive("edge.keepalive_timeout_secs", edge.keepalive_timeout_secs)?;
        positive("edge.body_read_timeout_ms", edge.body_read_timeout_ms)?;
        positive("edge.max_connections", edge.max_connections as u64)?;
        positive(
            "edge.max_connections_per_ip",
            edge.max_connections_per_ip as u64,
        )?;
        if edge.max_connections_per_ip > edge.max_connections {
            return Err(ConfigError::invalid(
                "edge.max_connections_per_ip",
                format!(
                    "must not exceed edge.max_connections ({})",
                    edge.max_connections
                ),
            ));
        }
        Ok(())
    }
}

/// `shop.example.com` or `*.example.com`: lowercase labels of letters, digits and hyphens.
fn is_sni_pattern(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be greater than 0"));
    }
    Ok(())
}

fn long_enough(key: &str, secret: Option<&Secret>) -> Result<(), ConfigError> {
    match secret {
        Some(secret) if secret.expose().len() < MIN_SECRET_BYTES => Err(ConfigError::invalid(
            key,
            format!(
                "must be at least {MIN_SECRET_BYTES} bytes (got {}); generate one with \
                 `openssl rand -hex 32`",
                secret.expose().len()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(config: &Config) -> String {
        match config.validate() {
            Ok(()) => panic!("expected {config:?} to be rejected"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn zero_limits_name_their_key() {
        let mut config = Config::default();
        config.edge.threads = 0;
        assert!(error_of(&config).starts_with("edge.threads: must be greater than 0"));

        let mut config = Config::default();
        config.edge.max_body_bytes = 0;
        assert!(error_of(&config).starts_with("edge.max_body_bytes:"));

        let mut config = Config::default();
        config.database.max_connections = 0;
        assert!(error_of(&config).starts_with("database.max_connections:"));
    }

    #[test]
    fn database_url_needs_a_known_scheme() {
        let mut config = Config::default();
        config.database.url = "mysql://root@localhost/shop".to_owned();
        assert_eq!(
            error_of(&config),
            "database.url: must start with sqlite:, postgres:// or postgresql://"
        );
        for ok in ["sqlite::memory:", "postgres://u@h/d", "postgresql://u@h/d"] {
            config.database.url = ok.to_owned();
            assert!(config.validate().is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn short_secrets_are_rejected_without_being_shown() {
        let mut config = Config::default();
        config.internal.secret = Some(Secret::new("short-internal".to_owned()));
        let message = error_of(&config);
        assert!(message.starts_with("internal.secret: must be at least 32 bytes"));
        assert!(!message.contains("short-internal"));

        let mut config = Config::default();
        config.auth.jwt_secret = Some(Secret::new("x".repeat(31)));
        assert!(error_of(&config).starts_with("auth.jwt_secret:"));
        config.auth.jwt_secret = Some(Secret::new("x".repeat(32)));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn edge_policy_settings_are_checked() {
        let mut config = Config::default();
        config.auth.jwt_algorithm = JwtAlgorithm::Rs256;
        assert!(error_of(&config).starts_with("auth.jwt_public_key_file:"));

        let mut config = Config::default();
        config.auth.jwt_max_lifetime_secs = Some(0);
        assert!(error_of(&config).starts_with("auth.jwt_max_lifetime_secs: must be greater"));
        config.auth.jwt_max_lifetime_secs = Some(3600);
        assert!(config.validate().is_ok());

        let mut config = Config::default();
        config.cors.allowed_origins = vec!["https://ok.example".into(), "ok.example/x".into()];
        assert!(error_of(&config).starts_with("cors.allowed_origins:"));

        let mut config = Config::default();
        config.limits.store = LimitStore::Redis;
        assert!(error_of(&config).starts_with("redis.url: is required"));
        config.redis.url = Some(Secret::new("http://localhost".into()));
        assert!(error_of(&config).starts_with("redis.url: must start"));
        config.redis.url = Some(Secret::new("redis://127.0.0.1:6379".into()));
        assert!(config.validate().is_ok());

        let mut config = Config::default();
        config.limits.sync_writes = 0;
        assert!(error_of(&config).starts_with("limits.sync_writes:"));
        let mut config = Config::default();
        config.limits.plan_multipliers.insert("pro".into(), -1.0);
        assert!(error_of(&config).starts_with("limits.plan_multipliers.pro:"));
    }

    #[test]
    fn listeners_must_not_collide_unless_port_zero() {
        let mut config = Config::default();
        config.edge.metrics_listen = config.edge.listen;
        assert!(error_of(&config).starts_with("edge.metrics_listen: must differ"));
        let mut config = Config::default();
        config.backend.listen = config.edge.listen;
        assert!(error_of(&config).starts_with("backend.listen: must differ from edge.listen"));

        let any_port = "127.0.0.1:0".parse().expect("literal address");
        config.edge.listen = any_port;
        config.edge.metrics_listen = any_port;
        assert!(config.validate().is_ok());
    }

    #[test]
    fn empty_log_level_is_rejected() {
        let mut config = Config::default();
        config.log.level = "  ".to_owned();
        assert!(error_of(&config).starts_with("log.level: must not be empty"));
    }
}
