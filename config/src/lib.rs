//! Typed mindshop configuration: a TOML file under `MINDSHOP_<SECTION>_<KEY>` environment
//! overrides, with embedded defaults that serve the single-process mode and validation that
//! names the offending key at start-up, never a silent fallback.
//!
//! ```
//! let config = mindshop_config::Config::from_toml_str("[edge]\nthreads = 4\n").unwrap();
//! assert_eq!(config.edge.threads, 4);
//! assert_eq!(config.edge_backends(), vec![config.backend.listen]);
//! ```
//!
//! # Layout
//! - `lib.rs`: [`Config`] and its entry points ([`Config::load`], [`Config::redacted_toml`], …).
//! - `edge`: `[edge]`, listeners, TLS, trusted proxies and client limits.
//! - `routes`: `[routes.<group>]`, the switches that take a route group out of service.
//! - `sections`: one struct per TOML section, with its defaults (`sync`, `chat` and `webhooks` apart); `policy`: the sections that
//!   steer the edge's filters (`[cors]`, `[limits]`, `[redis]`).
//! - `load`: merges file and environment into one TOML table, deserializes it once and
//!   attributes errors to the file or variable the value came from.
//! - `env`: maps `MINDSHOP_*` variables to keys and coerces their text to each key's type.
//! - `diff`: [`Config::changed_keys`], what a reload changed.
//! - `validate`: the rules types cannot express (non-zero limits, URL schemes, secret lengths).
//! - `secret`: [`Secret`], a string that prints as `[redacted]`.
//! - `redact`: hides the password of a database URL for printing.
//! - `jwt_secret`: the JWT secret generated once in the data directory.
//! - `addr`: socket-address serde helpers whose errors quote the rejected text.
//! - `error`: [`ConfigError`].

mod addr;
mod chat;
mod diff;
mod edge;
mod env;
mod error;
mod jwt_secret;
mod load;
mod policy;
mod redact;
mod routes;
mod secret;
mod sections;
mod sync;
mod validate;
mod webhooks;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use chat::ChatSettings;
pub use edge::{EdgeConfig, TlsCertificate, canonical_ip};
pub use error::ConfigError;
pub use policy::{
    CorsConfig, LimitStore, LimitsConfig, OnLimitStoreError, RedisConfig, WidgetOrigins,
};
pub use routes::{RouteSwitch, RoutesConfig};
pub use secret::Secret;
pub use sections::{
    AuthConfig, BackendConfig, DataConfig, DatabaseConfig, DatabaseKind, InternalConfig,
    JwtAlgorithm, LogConfig, LogFormat,
};
pub use sync::SyncSettings;
pub use webhooks::WebhookSettings;

/// The file [`Config::load`] reads when no path is given, if it exists.
pub const DEFAULT_FILE: &str = "mindshop.toml";

/// The whole configuration, one field per TOML section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[edge]`: the Pingora edge's listeners, upstreams and limits.
    pub edge: EdgeConfig,
    /// `[backend]`: the axum backend's listener and request timeout.
    pub backend: BackendConfig,
    /// `[database]`: which store to use and how to pool connections to it.
    pub database: DatabaseConfig,
    /// `[auth]`: portal JWT signing.
    pub auth: AuthConfig,
    /// `[internal]`: the signed identity between edge and backend.
    pub internal: InternalConfig,
    /// `[data]`: where local state lives.
    pub data: DataConfig,
    /// `[log]`: log filter and format.
    pub log: LogConfig,
    /// `[cors]`: origins admitted on widget and portal routes.
    pub cors: CorsConfig,
    /// `[limits]`: rate limits per credential and route group.
    pub limits: LimitsConfig,
    /// `[redis]`: the shared store for limits across edges.
    pub redis: RedisConfig,
    /// `[routes.<group>]`: route groups switched off (the rollback switches).
    pub routes: RoutesConfig,
    /// `[sync]`: product sync's pulls and schedules.
    pub sync: SyncSettings,
    /// `[chat]`: how the assistant answers and how fast search follows the catalog.
    pub chat: ChatSettings,
    /// `[webhooks]`: delivery of events to merchants' endpoints.
    pub webhooks: WebhookSettings,
}

impl Config {
    /// Load: the TOML file (an explicit `path` must exist; when `None`, [`DEFAULT_FILE`] in the
    /// working directory if present, else the defaults), then the `MINDSHOP_<SECTION>_<KEY>`
    /// overrides found in `env` (pass `std::env::vars()`), then [`Config::validate`].
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (file, text) = match path {
            Some(path) => (path, Some(read(path)?)),
            None => {
                let path = Path::new(DEFAULT_FILE);
                match std::fs::read_to_string(path) {
                    Ok(text) => (path, Some(text)),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => (path, None),
                    Err(source) => return Err(read_error(path, source)),
                }
            }
        };
        let file = text.as_ref().map(|_| file);
        load::build(text.as_deref(), file, env)
    }

    /// Parses and validates TOML text without environment overrides.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        load::build(Some(text), None, std::iter::empty())
    }

    /// The upstream backends of the edge: `edge.backends`, or `[backend.listen]` when empty.
    ///
    /// A backend listening on every interface (`0.0.0.0`, `[::]`) is reached through loopback,
    /// since connecting to the unspecified address works on Linux only.
    pub fn edge_backends(&self) -> Vec<SocketAddr> {
        if !self.edge.backends.is_empty() {
            return self.edge.backends.clone();
        }
        let mut local = self.backend.listen;
        match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => local.set_ip(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => local.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        vec![local]
    }

    /// The effective config as TOML with every secret shown as `[redacted]` and the password of
    /// `database.url` replaced by `[redacted]` (the user stays). Unset secrets are left out.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        // Secrets already serialize as "[redacted]"; the URL is a plain string.
        shown.database.url = redact::database_url(&self.database.url);
        toml::to_string(&shown)
            .unwrap_or_else(|err| format!("# the configuration cannot be shown as TOML: {err}\n"))
    }

    /// `edge.pid_file`, or `<data.dir>/mindshop.pid`: where `serve` and `edge` write their
    /// process id, for `mindshop reload` and `--upgrade`.
    pub fn pid_file(&self) -> PathBuf {
        self.edge
            .pid_file
            .clone()
            .unwrap_or_else(|| self.data.dir.join("mindshop.pid"))
    }

    /// `edge.upgrade_socket`, or `<data.dir>/upgrade.sock`: the Unix socket over which a
    /// process started with `--upgrade` receives the running one's listening sockets.
    pub fn upgrade_socket(&self) -> PathBuf {
        self.edge
            .upgrade_socket
            .clone()
            .unwrap_or_else(|| self.data.dir.join("upgrade.sock"))
    }

    /// `auth.jwt_secret` if set; else the secret in `<data.dir>/jwt_secret`, created once at
    /// random (mode 0600, `data.dir` included) so every process on this host signs alike.
    pub fn resolve_jwt_secret(&self) -> Result<Secret, ConfigError> {
        match &self.auth.jwt_secret {
            Some(secret) => Ok(secret.clone()),
            None => jwt_secret::load_or_create(&self.data.dir),
        }
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| read_error(path, source))
}

fn read_error(path: &Path, source: io::Error) -> ConfigError {
    ConfigError::Read {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests;
