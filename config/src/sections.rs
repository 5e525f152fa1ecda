//! The configuration sections and their embedded defaults.
//!
//! Every default serves the embedded mode: one `mindshop serve` process on loopback ports with
//! SQLite in `data/`, so a fresh checkout starts without a config file.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Secret, addr};

pub(crate) const fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// The axum backend: the API behind the edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    /// Address the backend's HTTP listener binds to; only the edge should reach it.
    #[serde(with = "addr::one")]
    pub listen: SocketAddr,
    /// Longest a backend request may run before it is cut off, in seconds.
    pub request_timeout_secs: u64,
    /// Prometheus listener of `mindshop backend` run apart (sync metrics); under `serve` the
    /// edge's `edge.metrics_listen` serves them.
    #[serde(with = "addr::one")]
    pub metrics_listen: SocketAddr,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            listen: loopback(8081),
            request_timeout_secs: 30,
            metrics_listen: loopback(9465),
        }
    }
}

/// The store: SQLite for the embedded mode, PostgreSQL for deployments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Connection URL: `sqlite:…`, `postgres://…` or `postgresql://…`; it may hold a password,
    /// which [`crate::Config::redacted_toml`] hides.
    pub url: String,
    /// Most connections the pool keeps open at once.
    pub max_connections: u32,
    /// Time allowed to obtain a connection before a request fails, in seconds.
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/mindshop.db".to_owned(),
            max_connections: 10,
            connect_timeout_secs: 5,
        }
    }
}

/// Which database engine a [`DatabaseConfig::url`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres://` and `postgresql://` URLs.
    Postgres,
}

impl DatabaseConfig {
    /// The engine the URL names. Call after [`crate::Config::validate`]: an URL with another
    /// scheme is reported as [`DatabaseKind::Postgres`] here and rejected there.
    pub fn kind(&self) -> DatabaseKind {
        if self.url.starts_with(SQLITE_PREFIX) {
            DatabaseKind::Sqlite
        } else {
            DatabaseKind::Postgres
        }
    }
}

pub(crate) const SQLITE_PREFIX: &str = "sqlite:";
pub(crate) const POSTGRES_PREFIXES: [&str; 2] = ["postgres://", "postgresql://"];

/// Credentials: portal JWTs for merchant users and admins, and the edge's API-key cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HMAC key that signs and verifies portal JWTs (HS256), at least 32 bytes; when unset, one
    /// is created once in `data.dir` (see [`crate::Config::resolve_jwt_secret`]).
    pub jwt_secret: Option<Secret>,
    /// The one algorithm portal JWTs may use: `HS256` (with `jwt_secret`), `RS256` or `ES256`
    /// (with `jwt_public_key_file`). Tokens with any other `alg` are refused.
    pub jwt_algorithm: JwtAlgorithm,
    /// PEM public key that verifies RS256/ES256 tokens.
    pub jwt_public_key_file: Option<PathBuf>,
    /// When set, every token must carry this `iss` claim; one without `iss` is refused.
    pub jwt_issuer: Option<String>,
    /// When set, every token must carry this `aud` claim; one without `aud` is refused.
    pub jwt_audience: Option<String>,
    /// Clock tolerance for `exp` and `nbf`, in seconds.
    pub jwt_leeway_secs: u64,
    /// When set, a token whose `exp` lies more than this many seconds (plus the leeway) ahead
    /// is refused, so a leaked token cannot be one that lasts for years; `mindshop admin
    /// token` issues no longer-lived ones.
    pub jwt_max_lifetime_secs: Option<u64>,
    /// How long an edge reuses an API-key lookup, in seconds: a revoked key or a changed
    /// permission takes effect at every edge within this time.
    pub key_cache_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_algorithm: JwtAlgorithm::Hs256,
            jwt_public_key_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway_secs: 30,
            jwt_max_lifetime_secs: None,
            key_cache_ttl_secs: 5,
        }
    }
}

/// The signing algorithm pinned for portal JWTs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    #[default]
    #[serde(rename = "HS256")]
    Hs256,
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "ES256")]
    Es256,
}

/// The signed identity headers the edge adds for the backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternalConfig {
    /// HMAC key shared by edge and backend, at least 32 bytes; `serve` generates one per run when
    /// unset, while `edge` and `backend` run apart refuse to start without it.
    pub secret: Option<Secret>,
    /// How far a signed request's timestamp may be from the backend's clock, in seconds; bounds
    /// how long a captured request could be replayed.
    pub max_clock_skew_secs: u64,
}

impl Default for InternalConfig {
    fn default() -> Self {
        Self {
            secret: None,
            max_clock_skew_secs: 30,
        }
    }
}

/// Local files: the SQLite database by default and the generated JWT secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Directory for local state, created when missing; relative paths start at the working
    /// directory.
    pub dir: PathBuf,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data"),
        }
    }
}

/// Process logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` `EnvFilter` directives, e.g. `info` or `mindshop_proxy=debug,info`; the default
    /// keeps sqlx's per-statement notices out.
    pub level: String,
    /// Line format: `text` for people at a terminal, `json` for log collectors.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info,sqlx=warn".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
