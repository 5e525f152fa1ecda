//! The catalog and product sync: products, each merchant's sync configuration, sync runs (the
//! history) and the events outbox they write to.
//!
//! A run is applied in batches, each in its own transaction, so a backend killed mid-run leaves
//! the catalog as it was before or after each committed batch; the run itself is `processing`
//! with a heartbeat until it is finished, and a run whose heartbeat stopped is failed by
//! [`Store::fail_stale_sync_runs`](super::Store::fail_stale_sync_runs).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::sync::parse::{FieldMapping, ProductRecord, RowError};

/// Most row errors a run keeps; `errorCount` says how many there were in all.
pub const MAX_RUN_ERRORS: usize = 100;

/// A row error as a run keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    pub row: u64,
    pub field: String,
    pub message: String,
}

impl From<&RowError> for RunError {
    fn from(error: &RowError) -> Self {
        Self {
            row: error.row,
            field: error.field.clone(),
            message: error.message.clone(),
        }
    }
}

/// A product of a merchant's catalog, unique by (merchant, sku).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub id: String,
    pub merchant_id: String,
    pub sku: String,
    pub title: String,
    pub description: Option<String>,
    pub price: Option<f64>,
    pub image_url: Option<String>,
    pub category: Option<String>,
    pub in_stock: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A merchant's sync configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncConfig {
    pub merchant_id: String,
    pub sync_type: String,
    pub schedule: Option<String>,
    pub source_type: String,
    pub source_url: Option<String>,
    pub field_mapping: FieldMapping,
    pub status: String,
    /// Verifies pushes to `/sync/webhook`; shown once, when created or rotated.
    #[serde(skip)]
    pub webhook_secret: String,
    /// Credentials sent with pulls; never shown.
    #[serde(skip)]
    pub source_auth: Option<String>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a merchant sets; the secret is kept on update.
#[derive(Debug, Clone)]
pub struct SyncConfigFields {
    pub sync_type: String,
    pub schedule: Option<String>,
    pub source_type: String,
    pub source_url: Option<String>,
    pub field_mapping: FieldMapping,
    pub status: String,
    /// `None` keeps the stored credentials, `Some("")` removes them.
    pub source_auth: Option<String>,
    /// When a scheduled sync is due next (`None` unless scheduled and active).
    pub next_run_at: Option<DateTime<Utc>>,
}

/// How a run ended up, as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRun {
    pub id: String,
    pub merchant_id: String,
    /// `pending`, `processing`, `completed` or `failed`.
    pub status: String,
    /// `upload`, `trigger`, `schedule` or `webhook`.
    pub trigger: String,
    pub source_type: String,
    /// `upsert`, or `replace` (products absent from the source were removed).
    pub mode: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub products_processed: i64,
    pub products_created: i64,
    pub products_updated: i64,
    pub products_unchanged: i64,
    pub products_deleted: i64,
    pub products_failed: i64,
    /// The first [`MAX_RUN_ERRORS`] row errors.
    pub errors: Vec<RunError>,
    /// How many row errors there were in all.
    pub error_count: i64,
    /// Why a failed run failed.
    pub failure: Option<String>,
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewSyncRun {
    pub id: String,
    pub merchant_id: String,
    pub trigger: String,
    pub source_type: String,
    pub mode: String,
}

/// A verified platform push about to be applied: its Standard Webhooks `webhook-id`, and how
/// far back applied ids are remembered.
#[derive(Debug, Clone)]
pub struct NewPush {
    pub push_id: String,
    /// Ids received before this are forgotten (their timestamps are no longer accepted, so a
    /// replay of them is refused before it reaches the store).
    pub forget_before: DateTime<Utc>,
}

/// What [`Store::start_push_run`](super::Store::start_push_run) did.
#[derive(Debug, Clone)]
pub enum PushStart {
    /// The push is new (or its earlier run failed): this run applies it.
    Started(SyncRun),
    /// The push was applied (or is being applied) by this run: nothing to do.
    Repeated(SyncRun),
}

/// What one batch did to the catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
}

/// How a run finishes.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// `None`: completed; `Some(reason)`: failed.
    pub failure: Option<String>,
    /// Rows read (good and bad).
    pub processed: i64,
    pub failed: i64,
    /// The first row errors (at most [`MAX_RUN_ERRORS`]) and their total.
    pub errors: Vec<RunError>,
    pub error_count: i64,
    /// In `replace` mode, the SKUs the source held: every other product of the merchant is
    /// deleted when the run completes.
    pub keep_only: Option<std::collections::HashSet<String>>,
    /// SKUs to delete when the run completes (a platform's push of deletions).
    pub delete: Vec<String>,
}

impl SyncRun {
    /// The key a page that ends with this run continues from (`created_at` is its start).
    pub fn page_key(&self) -> super::PageKey {
        super::PageKey {
            created_at: self.started_at,
            id: self.id.clone(),
        }
    }
}

/// An event for the outbox.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub merchant_id: &'a str,
    pub event_type: &'static str,
    pub data: Value,
}

impl<'a> NewEvent<'a> {
    /// An event whose data is `subject` as the API shows it.
    pub fn about(merchant_id: &'a str, event_type: &'static str, subject: &impl Serialize) -> Self {
        Self {
            merchant_id,
            event_type,
            data: serde_json::to_value(subject).unwrap_or(Value::Null),
        }
    }
}

/// The event a run's state change records.
pub(super) fn run_event(run: &SyncRun) -> NewEvent<'_> {
    let event_type = match run.status.as_str() {
        "completed" => "sync.completed",
        "failed" => "sync.failed",
        _ => "sync.started",
    };
    NewEvent {
        merchant_id: &run.merchant_id,
        event_type,
        data: serde_json::to_value(run).unwrap_or(Value::Null),
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ProductRow {
    pub id: String,
    pub merchant_id: String,
    pub sku: String,
    pub title: String,
    pub description: Option<String>,
    pub price: Option<f64>,
    pub image_url: Option<String>,
    pub category: Option<String>,
    pub in_stock: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ProductRow> for Product {
    fn from(row: ProductRow) -> Self {
        Self {
            id: row.id,
            merchant_id: row.merchant_id,
            sku: row.sku,
            title: row.title,
            description: row.description,
            price: row.price,
            image_url: row.image_url,
            category: row.category,
            in_stock: row.in_stock,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SyncConfigRow {
    merchant_id: String,
    sync_type: String,
    schedule: Option<String>,
    source_type: String,
    source_url: Option<String>,
    field_mapping: sqlx::types::Json<FieldMapping>,
    status: String,
    webhook_secret: String,
    source_auth: Option<String>,
    next_run_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<SyncConfigRow> for SyncConfig {
    fn from(row: SyncConfigRow) -> Self {
        Self {
            merchant_id: row.merchant_id,
            sync_type: row.sync_type,
            schedule: row.schedule,
            source_type: row.source_type,
            source_url: row.source_url,
            field_mapping: row.field_mapping.0,
            status: row.status,
            webhook_secret: row.webhook_secret,
            source_auth: row.source_auth,
            next_run_at: row.next_run_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SyncRunRow {
    id: String,
    merchant_id: String,
    status: String,
    trigger: String,
    source_type: String,
    mode: String,
    started_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    #[allow(dead_code)]
    heartbeat_at: DateTime<Utc>,
    products_processed: i64,
    products_created: i64,
    products_updated: i64,
    products_unchanged: i64,
    products_deleted: i64,
    products_failed: i64,
    errors: sqlx::types::Json<Vec<RunError>>,
    error_count: i64,
    failure: Option<String>,
}

impl From<SyncRunRow> for SyncRun {
    fn from(row: SyncRunRow) -> Self {
        Self {
            id: row.id,
            merchant_id: row.merchant_id,
            status: row.status,
            trigger: row.trigger,
            source_type: row.source_type,
            mode: row.mode,
            started_at: row.started_at,
            completed_at: row.completed_at,
            products_processed: row.products_processed,
            products_created: row.products_created,
            products_updated: row.products_updated,
            products_unchanged: row.products_unchanged,
            products_deleted: row.products_deleted,
            products_failed: row.products_failed,
            errors: row.errors.0,
            error_count: row.error_count,
            failure: row.failure,
        }
    }
}

/// SQL that both databases accept as written. Every statement names the merchant.
pub(super) mod sql {
    pub const PUT_CONFIG: &str = "INSERT INTO sync_configs (merchant_id, sync_type, schedule, source_type, source_url, \
         field_mapping, status, webhook_secret, source_auth, next_run_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULLIF($9, ''), $10, $11, $11) \
         ON CONFLICT (merchant_id) DO UPDATE SET sync_type = excluded.sync_type, \
         schedule = excluded.schedule, source_type = excluded.source_type, \
         source_url = excluded.source_url, field_mapping = excluded.field_mapping, \
         status = excluded.status, next_run_at = excluded.next_run_at, \
         source_auth = NULLIF(COALESCE($9, sync_configs.source_auth), ''), \
         updated_at = excluded.updated_at RETURNING *";
    pub const DUE_CONFIGS: &str = "SELECT * FROM sync_configs WHERE status = 'active' \
         AND sync_type = 'scheduled' AND next_run_at <= $1 ORDER BY next_run_at LIMIT 100";
    pub const CLAIM_SCHEDULE: &str = "UPDATE sync_configs SET next_run_at = $3 \
         WHERE merchant_id = $1 AND next_run_at = $2";
    pub const GET_CONFIG: &str = "SELECT * FROM sync_configs WHERE merchant_id = $1";
    pub const ROTATE_SECRET: &str = "UPDATE sync_configs SET webhook_secret = $2, updated_at = $3 \
         WHERE merchant_id = $1 RETURNING *";

    /// Claims a push id for run `$3`: a new id, or one whose run failed. No row is written when
    /// the id belongs to a run that completed or is still processing.
    pub const CLAIM_PUSH: &str = "INSERT INTO sync_pushes (merchant_id, push_id, run_id, received_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (merchant_id, push_id) DO UPDATE \
         SET run_id = excluded.run_id, received_at = excluded.received_at \
         WHERE EXISTS (SELECT 1 FROM sync_runs AS r WHERE r.merchant_id = sync_pushes.merchant_id \
         AND r.id = sync_pushes.run_id AND r.status = 'failed')";
    pub const FORGET_PUSHES: &str = "DELETE FROM sync_pushes WHERE received_at < $1";
    pub const PUSH_RUN: &str = "SELECT r.* FROM sync_runs AS r JOIN sync_pushes AS p \
         ON p.merchant_id = r.merchant_id AND p.run_id = r.id WHERE p.merchant_id = $1 AND p.push_id = $2";

    pub const INSERT_RUN: &str = "INSERT INTO sync_runs (id, merchant_id, status, trigger, source_type, mode, \
         started_at, heartbeat_at) VALUES ($1, $2, 'processing', $3, $4, $5, $6, $6) RETURNING *";
    pub const ACTIVE_RUN: &str = "SELECT * FROM sync_runs WHERE merchant_id = $1 \
         AND status IN ('pending', 'processing')";
    pub const PROGRESS: &str = "UPDATE sync_runs SET heartbeat_at = $3, \
         products_created = products_created + $4, products_updated = products_updated + $5, \
         products_unchanged = products_unchanged + $6, products_processed = products_processed + $7 \
         WHERE merchant_id = $1 AND id = $2 AND status = 'processing'";
    pub const FINISH_RUN: &str = "UPDATE sync_runs SET status = $3, completed_at = $4, heartbeat_at = $4, \
         products_processed = $5, products_failed = $6, products_deleted = $7, errors = $8, \
         error_count = $9, failure = $10 \
         WHERE merchant_id = $1 AND id = $2 AND status = 'processing' RETURNING *";
    pub const STALE_RUNS: &str = "SELECT * FROM sync_runs WHERE status IN ('pending', 'processing') \
         AND heartbeat_at < $1";
    /// Fails a run still active whose heartbeat is still older than the cutoff (`$5`): a run
    /// that reported progress since it was listed as stale is left running.
    pub const FAIL_RUN: &str = "UPDATE sync_runs SET status = 'failed', completed_at = $3, failure = $4 \
         WHERE merchant_id = $1 AND id = $2 AND status IN ('pending', 'processing') \
         AND heartbeat_at < $5 RETURNING *";
    pub const LIST_RUNS_FIRST: &str = "SELECT * FROM sync_runs WHERE merchant_id = $1 \
         ORDER BY started_at DESC, id DESC LIMIT $2";
    pub const LIST_RUNS_AFTER: &str = "SELECT * FROM sync_runs WHERE merchant_id = $1 \
         AND (started_at, id) < ($2, $3) ORDER BY started_at DESC, id DESC LIMIT $4";

    /// A multi-row upsert by (merchant, sku): head, the rows (SQLite's `VALUES`; PostgreSQL's
    /// form is [`PG_UPSERT_UNNEST`]), [`UPSERT_SET`], [`UPSERT_WHERE`]. A row that would change
    /// nothing is not written (and not counted as affected).
    pub const UPSERT_HEAD: &str = "INSERT INTO products (id, merchant_id, sku, title, description, price, \
         image_url, category, in_stock, created_at, updated_at) ";
    pub const UPSERT_SET: &str = " ON CONFLICT (merchant_id, sku) DO UPDATE SET \
         title = excluded.title, description = excluded.description, price = excluded.price, \
         image_url = excluded.image_url, category = excluded.category, \
         in_stock = excluded.in_stock, updated_at = excluded.updated_at";
    /// PostgreSQL's addition to [`UPSERT_SET`]: a row whose text changes waits for the search
    /// indexer again (a price change leaves its search vector as it is).
    pub const PG_UPSERT_SEARCH: &str = ", search_pending = products.search_pending OR \
         (products.title, products.description, products.category) IS DISTINCT FROM \
         (excluded.title, excluded.description, excluded.category)";
    pub const UPSERT_WHERE: &str = " WHERE products.title IS DISTINCT FROM excluded.title \
         OR products.description IS DISTINCT FROM excluded.description \
         OR products.price IS DISTINCT FROM excluded.price \
         OR products.image_url IS DISTINCT FROM excluded.image_url \
         OR products.category IS DISTINCT FROM excluded.category \
         OR products.in_stock IS DISTINCT FROM excluded.in_stock";
    /// PostgreSQL's form of the upsert: the rows as one array per column.
    pub const PG_UPSERT_UNNEST: &str = "INSERT INTO products (id, merchant_id, sku, title, description, price, \
         image_url, category, in_stock, created_at, updated_at) \
         SELECT id, $1, sku, title, description, price, image_url, category, in_stock, $2, $2 \
         FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::text[], \
         $9::text[], $10::bool[]) AS t (id, sku, title, description, price, image_url, category, in_stock)";
    pub const PRODUCT_SKUS: &str = "SELECT sku FROM products WHERE merchant_id = $1";
    pub const LIST_PRODUCTS_FIRST: &str =
        "SELECT * FROM products WHERE merchant_id = $1 ORDER BY sku LIMIT $2";
    pub const LIST_PRODUCTS_AFTER: &str =
        "SELECT * FROM products WHERE merchant_id = $1 AND sku > $2 ORDER BY sku LIMIT $3";
    pub const COUNT_PRODUCTS: &str = "SELECT COUNT(*) FROM products WHERE merchant_id = $1";

    pub const INSERT_EVENT: &str = "INSERT INTO events (id, merchant_id, event_type, data, created_at) \
         VALUES ($1, $2, $3, $4, $5)";
}
