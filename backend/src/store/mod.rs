//! The store: one interface, [`Store`], implemented on SQLite ([`sqlite`]) and PostgreSQL
//! ([`postgres`]). Each implementation embeds its own migrations (`migrations/sqlite`,
//! `migrations/postgres`) so column types stay native to each database; the conformance
//! suite in `tests/store_conformance.rs` holds both to the same behaviour.
//!
//! # Layout
//! - this module: the [`Store`] trait, merchants and API keys, errors.
//! - [`documents`] and [`sessions`]: the knowledge base and chat sessions.
//! - `merchant_domains`: the index behind [`Store::any_merchant_allows_host`].
//! - `portable`: the trait's implementation, written once in SQL both databases accept.
//! - `text`: what every method checks first, that no text it is given holds NUL.
//! - [`retry`]: a transaction cut off by a lost connection runs again.
//! - `sqlite` / `postgres`: connecting, embedded migrations.

pub mod catalog;
pub mod chat;
pub mod documents;
mod merchant_domains;
mod portable;
mod postgres;
pub mod retry;
pub mod sessions;
mod sqlite;
mod text;
pub mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mindshop_config::{DatabaseConfig, DatabaseKind};
use serde::Serialize;

pub use catalog::{
    BatchCounts, FieldMapping, NewEvent, NewPush, NewSyncRun, Product, PushStart, RunError,
    RunOutcome, SyncConfig, SyncConfigFields, SyncRun,
};
pub use chat::{ChatMessage, CutShort, NewExchange, ProductQuery, Scored};
pub use documents::{Document, DocumentFields, NewDocument, PageKey};
pub use merchant_domains::DomainOverlap;
pub use postgres::PostgresStore;
pub use sessions::{ChatSession, NewChatSession, SessionEnding};
pub use sqlite::SqliteStore;
pub use webhooks::{
    AttemptNext, AttemptRecord, ClaimedDelivery, FailurePolicy, NewWebhookEndpoint, WebhookAttempt,
    WebhookDelivery, WebhookEndpoint, WebhookEndpointUpdate,
};

/// A merchant: a store that embeds the widget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Merchant {
    pub id: String,
    pub name: String,
    /// Host names whose pages may call the widget routes with this merchant's keys.
    pub allowed_domains: Vec<String>,
    pub plan: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewMerchant {
    pub id: String,
    pub name: String,
    pub allowed_domains: Vec<String>,
    pub plan: String,
}

/// What the portal may change about a merchant.
#[derive(Debug, Clone)]
pub struct MerchantSettings {
    /// Replaces the whole list; kept in the order given.
    pub allowed_domains: Vec<String>,
    /// `None` keeps the current plan.
    pub plan: Option<String>,
    /// Whether a domain may be added although another merchant lists it, or a domain above or
    /// under it (an admin's change); else such a domain is [`StoreError::DomainTaken`].
    pub may_share_domains: bool,
}

/// An API key as stored: never the key itself, only its hash and display prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub merchant_id: String,
    /// `publishable` or `secret`.
    pub kind: String,
    /// `test` or `live`.
    pub env: String,
    /// The first characters of the key, e.g. `pk_test_AbCd`, to recognise it by.
    pub prefix: String,
    #[serde(skip)]
    pub key_hash: String,
    pub permissions: Vec<String>,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub merchant_id: String,
    pub kind: String,
    pub env: String,
    pub prefix: String,
    pub key_hash: String,
    pub permissions: Vec<String>,
    pub name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same identity exists (e.g. a merchant id).
    #[error("{0} already exists")]
    Conflict(String),
    /// An allowed domain being added overlaps one of another merchant: the same, one above it
    /// or one under it (each admits the other's sites).
    #[error("{domain} overlaps another merchant's allowed domain ({overlap})")]
    DomainTaken {
        domain: String,
        overlap: DomainOverlap,
    },
    /// A row that the operation needs does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Text with NUL (U+0000), refused before any statement runs: PostgreSQL cannot hold it
    /// and SQLite would, so both refuse it alike. `field` names where (`title`, `tags[1]`).
    #[error("{field} must not contain the NUL character")]
    InvalidText { field: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The connection was lost while the commit was under way: the change may or may not be
    /// stored (see [`retry`]).
    #[error("connection lost during commit: {0}")]
    CommitInterrupted(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the database directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the backend and the operator commands persist.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Applies the embedded migrations that have not run yet.
    async fn migrate(&self) -> StoreResult<()>;
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;
    /// Closes every connection; later calls fail. For shutdown.
    async fn close(&self);

    /// Creates a merchant; [`StoreError::Conflict`] if the id is taken.
    async fn create_merchant(&self, merchant: &NewMerchant) -> StoreResult<Merchant>;
    async fn get_merchant(&self, id: &str) -> StoreResult<Option<Merchant>>;
    /// All merchants, oldest first.
    async fn list_merchants(&self) -> StoreResult<Vec<Merchant>>;
    /// Replaces the merchant's allowed domains (and the plan, when given), bumps `updated_at`;
    /// [`StoreError::NotFound`] if there is no such merchant. A domain it did not list before
    /// that overlaps another merchant's is [`StoreError::DomainTaken`] unless
    /// `may_share_domains`; the check and the write are one transaction, and such writes run
    /// one at a time, so two merchants claiming one domain at once cannot both succeed.
    async fn update_merchant_settings(
        &self,
        id: &str,
        settings: &MerchantSettings,
    ) -> StoreResult<Merchant>;
    /// True when some merchant's allowed domain is `host` or a parent domain of it
    /// (`acme.com` allows `shop.acme.com`, never `evilacme.com` or `acme.com.evil.io`).
    /// Case and a trailing dot do not matter; a host that is not a host name is never allowed.
    async fn any_merchant_allows_host(&self, host: &str) -> StoreResult<bool>;

    /// Stores a key for an existing merchant; [`StoreError::NotFound`] if there is none.
    async fn create_api_key(&self, key: &NewApiKey) -> StoreResult<ApiKey>;
    /// The merchant's keys, revoked ones included, oldest first.
    async fn list_api_keys(&self, merchant_id: &str) -> StoreResult<Vec<ApiKey>>;
    /// The key with this SHA-256 hash, revoked or not.
    async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>>;
    /// Marks a key revoked (keeping the first revocation time); [`StoreError::NotFound`] if
    /// there is no such key.
    async fn revoke_api_key(&self, id: &str) -> StoreResult<ApiKey>;
    /// [`Store::revoke_api_key`] for a key of this merchant only: another merchant's key is
    /// [`StoreError::NotFound`] and stays as it is.
    async fn revoke_merchant_api_key(&self, merchant_id: &str, id: &str) -> StoreResult<ApiKey>;

    /// Stores a document of an existing merchant; [`StoreError::NotFound`] if there is none,
    /// [`StoreError::Conflict`] if the id is taken.
    async fn create_document(&self, document: &NewDocument) -> StoreResult<Document>;
    /// The merchant's document with this id; another merchant's is `None`.
    async fn get_document(&self, merchant_id: &str, id: &str) -> StoreResult<Option<Document>>;
    /// Up to `limit` of the merchant's documents, newest first, after `after` when given.
    async fn list_documents(
        &self,
        merchant_id: &str,
        after: Option<&PageKey>,
        limit: u32,
    ) -> StoreResult<Vec<Document>>;
    /// Replaces the fields of the merchant's document and bumps `updated_at`;
    /// [`StoreError::NotFound`] if the merchant has no such document.
    async fn update_document(
        &self,
        merchant_id: &str,
        id: &str,
        fields: &DocumentFields,
    ) -> StoreResult<Document>;
    /// Deletes the merchant's document; [`StoreError::NotFound`] if it has no such document.
    async fn delete_document(&self, merchant_id: &str, id: &str) -> StoreResult<()>;

    /// Opens an active session for an existing merchant; [`StoreError::NotFound`] if there is
    /// none.
    async fn create_chat_session(&self, session: &NewChatSession) -> StoreResult<ChatSession>;
    /// The merchant's session with this id; another merchant's is `None`.
    async fn get_chat_session(
        &self,
        merchant_id: &str,
        id: &str,
    ) -> StoreResult<Option<ChatSession>>;
    /// Ends the merchant's session (status `ended`, `ended_at` stamped once);
    /// [`StoreError::NotFound`] if the merchant has no such session.
    async fn end_chat_session(&self, merchant_id: &str, id: &str) -> StoreResult<SessionEnding>;

    /// Creates or replaces the merchant's sync configuration; returns it and whether it was
    /// created. `new_secret` becomes the webhook secret only when the configuration is new.
    /// [`StoreError::NotFound`] if there is no such merchant.
    async fn put_sync_config(
        &self,
        merchant_id: &str,
        fields: &SyncConfigFields,
        new_secret: &str,
    ) -> StoreResult<(SyncConfig, bool)>;
    async fn get_sync_config(&self, merchant_id: &str) -> StoreResult<Option<SyncConfig>>;
    /// Active scheduled configurations whose `next_run_at` is not after `now` (at most 100).
    async fn due_sync_configs(&self, now: DateTime<Utc>) -> StoreResult<Vec<SyncConfig>>;
    /// Moves a due schedule from `due` to `next`; true for the one caller that did it, so
    /// with several backends each scheduled run happens once.
    async fn claim_scheduled_sync(
        &self,
        merchant_id: &str,
        due: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
    ) -> StoreResult<bool>;
    /// Replaces the webhook secret; [`StoreError::NotFound`] if there is no configuration.
    async fn rotate_sync_webhook_secret(
        &self,
        merchant_id: &str,
        secret: &str,
    ) -> StoreResult<SyncConfig>;

    /// Starts a run (`processing`) and records `sync.started`, in one transaction.
    /// [`StoreError::Conflict`] while the merchant has another active run.
    async fn start_sync_run(&self, run: &NewSyncRun) -> StoreResult<SyncRun>;
    /// [`Store::start_sync_run`] for a verified platform push, unless its id was applied
    /// already: claiming the id, starting the run and recording `sync.started` are one
    /// transaction, so two backends given the same push apply it once. Ids older than
    /// `push.forget_before` are dropped in the same transaction.
    async fn start_push_run(&self, run: &NewSyncRun, push: &NewPush) -> StoreResult<PushStart>;
    /// The merchant's active run, if any.
    async fn active_sync_run(&self, merchant_id: &str) -> StoreResult<Option<SyncRun>>;
    /// Upserts one batch of products by (merchant, sku) in one transaction, writing only rows
    /// that change something, and adds the batch to the run's progress (and heartbeat).
    async fn apply_product_batch(
        &self,
        merchant_id: &str,
        run_id: &str,
        records: &[catalog::ProductRecord],
    ) -> StoreResult<BatchCounts>;
    /// Finishes an active run (completed, or failed when `outcome.failure` is set) and records
    /// `sync.completed` / `sync.failed`, in one transaction; a completed `replace` run deletes
    /// the products it did not see in the same transaction.
    async fn finish_sync_run(
        &self,
        merchant_id: &str,
        run_id: &str,
        outcome: &RunOutcome,
    ) -> StoreResult<SyncRun>;
    /// Fails every active run whose heartbeat is older than `before` (its backend died), with
    /// `sync.failed` for each; returns them.
    async fn fail_stale_sync_runs(&self, before: DateTime<Utc>) -> StoreResult<Vec<SyncRun>>;
    /// Up to `limit` of the merchant's runs, newest first, after `after` when given.
    async fn list_sync_runs(
        &self,
        merchant_id: &str,
        after: Option<&PageKey>,
        limit: u32,
    ) -> StoreResult<Vec<SyncRun>>;

    /// Up to `limit` of the merchant's products by SKU, after `after_sku` when given.
    async fn list_products(
        &self,
        merchant_id: &str,
        after_sku: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Product>>;
    async fn count_products(&self, merchant_id: &str) -> StoreResult<i64>;

    /// The merchant's products best matching any of `query.terms` within its constraints, best
    /// first; with no terms, the products within the constraints, cheapest first.
    async fn search_products(
        &self,
        merchant_id: &str,
        query: &ProductQuery<'_>,
    ) -> StoreResult<Vec<Scored<Product>>>;
    /// Brings the product search index up to date for up to `limit` products written since
    /// they were last indexed (new, changed text, or deleted), in one transaction; how many it
    /// handled, 0 when none wait. Several backends may call it at once.
    async fn index_products(&self, limit: u32) -> StoreResult<u64>;
    /// Refreshes the planner's statistics on products, after a large indexing pass.
    async fn refresh_search_statistics(&self) -> StoreResult<()>;
    /// Merges what an indexing pass added into the search index's main structure, after the
    /// pass (PostgreSQL's GIN pending list, which searches would otherwise scan apart).
    async fn settle_search_index(&self) -> StoreResult<()>;
    /// How many products wait for [`Store::index_products`].
    async fn search_backlog(&self) -> StoreResult<i64>;
    /// The merchant's documents best matching any of `terms`, best first.
    async fn search_documents(
        &self,
        merchant_id: &str,
        terms: &[String],
        limit: u32,
    ) -> StoreResult<Vec<Scored<Document>>>;
    /// Writes an event that reports no other change (`chat.failed`) to the outbox.
    async fn record_event(&self, event: &NewEvent<'_>) -> StoreResult<()>;
    /// Stores a question, its answer and their `chat.completed` event in one transaction.
    async fn record_exchange(&self, exchange: &NewExchange) -> StoreResult<()>;
    /// Creates an endpoint (enabled) for an existing merchant.
    async fn create_webhook(&self, endpoint: &NewWebhookEndpoint) -> StoreResult<WebhookEndpoint>;
    async fn get_webhook(
        &self,
        merchant_id: &str,
        id: &str,
    ) -> StoreResult<Option<WebhookEndpoint>>;
    /// The merchant's endpoints, oldest first (at most 100).
    async fn list_webhooks(&self, merchant_id: &str) -> StoreResult<Vec<WebhookEndpoint>>;
    /// [`StoreError::NotFound`] when the merchant has no such endpoint.
    async fn update_webhook(
        &self,
        merchant_id: &str,
        id: &str,
        update: &WebhookEndpointUpdate,
    ) -> StoreResult<WebhookEndpoint>;
    /// Deletes the endpoint and its deliveries; [`StoreError::NotFound`] when absent.
    async fn delete_webhook(&self, merchant_id: &str, id: &str) -> StoreResult<()>;
    /// Replaces the secret; the old one keeps signing until `previous_expires_at`.
    async fn rotate_webhook_secret(
        &self,
        merchant_id: &str,
        id: &str,
        secret: &str,
        previous_expires_at: DateTime<Utc>,
    ) -> StoreResult<WebhookEndpoint>;
    /// Turns up to `limit` outbox events into deliveries for the endpoints that want them, and
    /// marks them done, in one transaction; how many events it took.
    async fn fan_out_events(&self, limit: u32, now: DateTime<Utc>) -> StoreResult<u64>;
    /// A delivery of an event that is not in the outbox (`webhook.test`) to one endpoint.
    async fn enqueue_delivery(
        &self,
        merchant_id: &str,
        endpoint_id: &str,
        event_type: &str,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> StoreResult<WebhookDelivery>;
    /// Claims up to `limit` deliveries due at `now` of enabled endpoints until `claim_until`.
    async fn claim_deliveries(
        &self,
        limit: u32,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records an attempt and its consequences (the delivery's state, the endpoint's failure
    /// count, disabling it) in one transaction; whether the endpoint is still enabled.
    async fn record_attempt(
        &self,
        record: &AttemptRecord,
        policy: &FailurePolicy,
    ) -> StoreResult<bool> {
        let recorded = self
            .record_attempts(&[(record.clone(), policy.clone())])
            .await?;
        Ok(recorded.first().copied().unwrap_or(false))
    }
    /// [`Store::record_attempt`] for several attempts, in order, in one transaction.
    async fn record_attempts(
        &self,
        attempts: &[(AttemptRecord, FailurePolicy)],
    ) -> StoreResult<Vec<bool>>;
    /// The endpoint's deliveries, newest first, each with its attempts.
    async fn list_deliveries(
        &self,
        merchant_id: &str,
        endpoint_id: &str,
        after: Option<&PageKey>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Makes a delivery due now again (a replay); [`StoreError::NotFound`] when absent.
    async fn retry_delivery(
        &self,
        merchant_id: &str,
        endpoint_id: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<WebhookDelivery>;
    /// Outbox events not fanned out plus deliveries not yet delivered or given up.
    async fn webhook_backlog(&self) -> StoreResult<i64>;
    /// The messages of the merchant's session, oldest first (at most 1,000).
    async fn list_messages(
        &self,
        merchant_id: &str,
        session_id: &str,
    ) -> StoreResult<Vec<ChatMessage>>;
}

/// Opens the database named by `database.url` (creating a SQLite file and its directory when
/// needed) and applies pending migrations.
pub async fn connect(config: &DatabaseConfig) -> StoreResult<Arc<dyn Store>> {
    let store = open(config).await?;
    store.migrate().await?;
    Ok(store)
}

/// Opens the database without migrating, for processes that run after [`connect`] has.
pub async fn open(config: &DatabaseConfig) -> StoreResult<Arc<dyn Store>> {
    Ok(match config.kind() {
        DatabaseKind::Sqlite => Arc::new(SqliteStore::connect(config).await?),
        DatabaseKind::Postgres => Arc::new(PostgresStore::connect(config).await?),
    })
}

/// Maps constraint violations to domain errors; everything else stays a database error.
fn classify(error: sqlx::Error, conflict: &str, missing: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_unique_violation() {
            return StoreError::Conflict(conflict.to_owned());
        }
        if db.is_foreign_key_violation() {
            return StoreError::NotFound(missing.to_owned());
        }
    }
    StoreError::Database(error)
}

/// Row shapes shared by both databases: sqlx decodes TEXT/JSON (SQLite) and
/// TIMESTAMPTZ/JSONB (PostgreSQL) into the same Rust types.
#[derive(sqlx::FromRow)]
struct MerchantRow {
    id: String,
    name: String,
    allowed_domains: sqlx::types::Json<Vec<String>>,
    plan: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<MerchantRow> for Merchant {
    fn from(row: MerchantRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            allowed_domains: row.allowed_domains.0,
            plan: row.plan,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    merchant_id: String,
    kind: String,
    env: String,
    prefix: String,
    key_hash: String,
    permissions: sqlx::types::Json<Vec<String>>,
    name: Option<String>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        Self {
            id: row.id,
            merchant_id: row.merchant_id,
            kind: row.kind,
            env: row.env,
            prefix: row.prefix,
            key_hash: row.key_hash,
            permissions: row.permissions.0,
            name: row.name,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// SQL that both databases accept as written (`$n` placeholders, `RETURNING`).
mod sql {
    pub const INSERT_MERCHANT: &str = "INSERT INTO merchants (id, name, allowed_domains, plan, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING *";
    pub const UPDATE_MERCHANT_SETTINGS: &str = "UPDATE merchants \
         SET allowed_domains = $2, plan = COALESCE($3, plan), updated_at = $4 WHERE id = $1 RETURNING *";
    pub const GET_MERCHANT: &str = "SELECT * FROM merchants WHERE id = $1";
    pub const LIST_MERCHANTS: &str = "SELECT * FROM merchants ORDER BY created_at, id";
    pub const INSERT_API_KEY: &str = "INSERT INTO api_keys (id, merchant_id, kind, env, prefix, key_hash, permissions, name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *";
    pub const LIST_API_KEYS: &str =
        "SELECT * FROM api_keys WHERE merchant_id = $1 ORDER BY created_at, id";
    pub const FIND_API_KEY_BY_HASH: &str = "SELECT * FROM api_keys WHERE key_hash = $1";
    pub const REVOKE_API_KEY: &str =
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING *";
    pub const REVOKE_MERCHANT_API_KEY: &str = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) \
         WHERE merchant_id = $1 AND id = $2 RETURNING *";
}
