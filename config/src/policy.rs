//! The sections that steer the edge's filters: `[cors]`, `[limits]` and `[redis]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Secret;

/// Which browser origins may call which routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins (`https://host[:port]`) admitted on the widget routes for every merchant, on top
    /// of each merchant's own allowed domains; e.g. a staging storefront.
    pub allowed_origins: Vec<String>,
    /// Origins of the developer portal, admitted on `/api/merchants/:id/**`.
    pub portal_origins: Vec<String>,
    /// How long a browser may cache a preflight answer, in seconds.
    pub max_age_secs: u64,
    /// Which origins the widget's API routes (chat, sessions, documents, products) admit:
    /// `merchant_domains` (each key's merchant's allowed domains plus `allowed_origins`), or
    /// `allowlist` (`allowed_origins` only, whatever the merchants list: the original design's
    /// global whitelist, for rolling back).
    pub widget_origins: WidgetOrigins,
}

/// Where the widget routes' admitted origins come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WidgetOrigins {
    /// The allowed domains of the API key's merchant, plus `cors.allowed_origins`.
    #[default]
    MerchantDomains,
    /// `cors.allowed_origins` alone.
    Allowlist,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            portal_origins: Vec::new(),
            max_age_secs: 600,
            widget_origins: WidgetOrigins::MerchantDomains,
        }
    }
}

/// Where rate-limit counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitStore {
    /// In this process: the embedded default, exact for a single edge.
    #[default]
    Memory,
    /// In Redis (`redis.url`): one budget shared by every edge.
    Redis,
}

/// What the edge does with a request when the limit store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLimitStoreError {
    /// Let the request through (and count the error): availability first.
    #[default]
    Allow,
    /// Answer 503: protection first.
    Deny,
}

/// Rate limits: requests per window, per credential and route group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Where counters live: `memory` or `redis`.
    pub store: LimitStore,
    /// `allow` or `deny` (503) requests while the limit store fails.
    pub on_store_error: OnLimitStoreError,
    /// Length of one window, in seconds; every limit below counts requests per window.
    pub window_secs: u64,
    /// `/api/chat/**`, per API key.
    pub chat: u32,
    /// `/api/sessions/**`, per API key.
    pub sessions: u32,
    /// Chat and sessions again, per client IP: one shopper cannot use up a store's budget.
    pub widget_per_ip: u32,
    /// `/api/documents/**`, per API key.
    pub documents: u32,
    /// `/api/products/**`, per API key.
    pub products: u32,
    /// `/api/merchants/:id/**`, per portal user.
    pub portal: u32,
    /// Sync writes (`POST|PUT …/sync/configure`, `POST …/sync/trigger`, `POST …/sync/upload`),
    /// per portal user; 20 per minute as the original design has it.
    pub sync_writes: u32,
    /// `POST /api/merchants/:id/sync/webhook`, per merchant: pushes whose signature held (a
    /// refused push counts against `refused_per_ip` instead, so nobody can spend it unsigned).
    pub sync_webhook: u32,
    /// Requests whose credential or push signature was refused (401), per client IP: throttles
    /// key guessing and unsigned pushes.
    pub refused_per_ip: u32,
    /// With `store = "redis"`: most counts of one budget an edge takes from Redis in one call
    /// and hands to the budget's next requests itself (a lease, at most 1/32 of what remains of
    /// the window), so a busy budget costs Redis one call per lease. The shared limit is never
    /// exceeded; counts leased and unused when the window ends are lost. 1 counts every request
    /// in Redis.
    pub redis_lease_max: u32,
    /// Multiplier of every per-key and per-merchant limit by merchant plan, e.g. `pro = 5.0`;
    /// plans not listed get 1.
    pub plan_multipliers: BTreeMap<String, f64>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            store: LimitStore::Memory,
            on_store_error: OnLimitStoreError::Allow,
            window_secs: 60,
            chat: 120,
            sessions: 120,
            widget_per_ip: 60,
            documents: 300,
            products: 300,
            portal: 300,
            sync_writes: 20,
            sync_webhook: 120,
            refused_per_ip: 60,
            redis_lease_max: 64,
            plan_multipliers: BTreeMap::new(),
        }
    }
}

/// Redis, for limits shared by several edges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]` (or `rediss://`); required by `limits.store = "redis"`.
    /// Redacted when printed: it may hold a password.
    pub url: Option<Secret>,
    /// Prefix of every key mindshop writes, so several deployments can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "mindshop".to_owned(),
        }
    }
}
