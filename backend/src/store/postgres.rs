//! [`Store`] on PostgreSQL: for several edges and backends sharing one database.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use mindshop_config::DatabaseConfig;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::StoreResult;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    const BEGIN: &str = "BEGIN";
    /// Settings writes one at a time, so that two merchants cannot each add one domain at once
    /// while neither sees the other's uncommitted rows. The mode conflicts with itself and with
    /// row writes (a merchant created meanwhile waits), not with reads: the edge's host
    /// lookups go on.
    const LOCK_DOMAINS: Option<&str> =
        Some("LOCK TABLE merchant_domains IN SHARE ROW EXCLUSIVE MODE");
    const SEARCH_PRODUCTS: &str = super::chat::sql::PG_SEARCH_PRODUCTS;
    const SEARCH_PRODUCTS_BROADER: &str = super::chat::sql::PG_SEARCH_PRODUCTS_BROADER;
    const SEARCH_DOCUMENTS: &str = super::chat::sql::PG_SEARCH_DOCUMENTS;
    const SEARCH_BACKLOG: &str = "SELECT COUNT(*) FROM products WHERE search_pending";
    const SEARCH_CANDIDATES: i64 = super::chat::PG_SEARCH_CANDIDATES;
    /// Planner statistics after many products were indexed at once: without them, right after
    /// a large import, a search may be planned as a walk over the merchant's products (40 ms
    /// instead of 5 on 100,000) until autovacuum analyzes the table.
    const REFRESH_STATISTICS: &str = "ANALYZE products, product_search";
    /// The indexer's vectors go to the GIN index's pending list (`fastupdate`), which is merged
    /// here in one sorted pass: inserting each vector's words into the index one by one made
    /// indexing a 100,000-product import about 25% slower.
    const SETTLE_SEARCH_INDEX: Option<&str> =
        Some("SELECT gin_clean_pending_list('product_search_vector')");
    /// Several backends fan out at once, each taking events the others have not locked.
    const PENDING_EVENTS: &str = "SELECT seq, id, merchant_id, event_type, data, created_at \
         FROM events WHERE fanned_out_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED";

    /// A `to_tsquery` expression matching any (`|`) or every (`&`) of `terms` (plain words:
    /// letters and digits).
    fn match_expression(terms: &[&str], operator: super::chat::Operator) -> String {
        terms.join(match operator {
            super::chat::Operator::Any => " | ",
            super::chat::Operator::Every => " & ",
        })
    }
    /// The words to search for: all of them. PostgreSQL does not look words up one by one
    /// first: its planner may answer "is this word anywhere" with a full scan (15 ms on 100,000
    /// products for an absent word), while a search for every word that finds too few falls
    /// back to any word, ranked, in a few milliseconds with the GIN index.
    async fn present_terms<'t>(&self, terms: Vec<&'t str>) -> StoreResult<Vec<&'t str>> {
        Ok(terms)
    }

    /// Connects to a `postgres://` URL.
    pub async fn connect(config: &DatabaseConfig) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(&config.url)?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs(config.connect_timeout_secs))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

super::portable::portable_store_impl!(PostgresStore);

impl PostgresStore {
    /// Commits `tx`. When the connection is lost during the commit, the transaction's id
    /// (taken just before) tells whether it committed: PostgreSQL keeps each transaction's
    /// fate (`txid_status`), so a commit that happened is a success, one that did not is
    /// rolled back and may run again, and only an answer that cannot be had stays
    /// [`StoreError::CommitInterrupted`](super::StoreError::CommitInterrupted).
    async fn commit(&self, mut tx: sqlx::Transaction<'_, sqlx::Postgres>) -> StoreResult<()> {
        let txid: i64 = sqlx::query_scalar("SELECT txid_current()")
            .fetch_one(&mut *tx)
            .await?;
        let Err(error) = tx.commit().await else {
            return Ok(());
        };
        if !super::retry::connection_lost(&error) {
            return Err(error.into());
        }
        match self.transaction_fate(txid).await {
            Some(true) => Ok(()),
            Some(false) => Err(super::StoreError::Database(error)),
            None => Err(super::StoreError::CommitInterrupted(error)),
        }
    }

    /// Whether transaction `txid` committed (`Some(true)`) or was rolled back
    /// (`Some(false)`), asked on a fresh connection; `None` if that cannot be told.
    async fn transaction_fate(&self, txid: i64) -> Option<bool> {
        for _ in 0..super::retry::RETRIES + 1 {
            let status: Result<Option<String>, _> = sqlx::query_scalar("SELECT txid_status($1)")
                .bind(txid)
                .fetch_one(&self.pool)
                .await;
            match status.as_ref().map(Option::as_deref) {
                Ok(Some("committed")) => return Some(true),
                Ok(Some("aborted")) => return Some(false),
                // Still in progress (the old session not yet gone), or the server not back.
                Ok(Some(_)) | Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Too old to be known.
                Ok(None) => return None,
            }
        }
        None
    }
}

impl super::portable::HasDb for PostgresStore {
    type Db = sqlx::Postgres;
}

impl PostgresStore {
    /// Upserts `batch`, writing only rows that change something; (created, updated). One
    /// statement whose rows arrive as one array per column (`UNNEST`): planning it costs the
    /// same for 1 row or 1,000, where a `VALUES` list of 11,000 parameters is planned anew each
    /// time. A row comes back for each row written, and `xmax = 0` marks an insert.
    async fn write_products(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        merchant_id: &str,
        batch: &super::portable::Batch<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<(i64, i64)> {
        let records: Vec<_> = batch.values().copied().collect();
        let column = |field: fn(&super::catalog::ProductRecord) -> Option<String>| {
            records.iter().map(|r| field(r)).collect::<Vec<_>>()
        };
        static UPSERT: LazyLock<String> = LazyLock::new(|| {
            use super::catalog::sql::{
                PG_UPSERT_SEARCH, PG_UPSERT_UNNEST, UPSERT_SET, UPSERT_WHERE,
            };
            format!(
                "{PG_UPSERT_UNNEST}{UPSERT_SET}{PG_UPSERT_SEARCH}{UPSERT_WHERE} RETURNING (xmax = 0)"
            )
        });
        let inserted: Vec<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(UPSERT.as_str()))
            .bind(merchant_id)
            .bind(now)
            .bind(
                records
                    .iter()
                    .map(|_| mindshop_wire::ids::new_id("prod"))
                    .collect::<Vec<_>>(),
            )
            .bind(records.iter().map(|r| r.sku.as_str()).collect::<Vec<_>>())
            .bind(records.iter().map(|r| r.title.as_str()).collect::<Vec<_>>())
            .bind(column(|r| r.description.clone()))
            .bind(records.iter().map(|r| r.price).collect::<Vec<_>>())
            .bind(column(|r| r.image_url.clone()))
            .bind(column(|r| r.category.clone()))
            .bind(records.iter().map(|r| r.in_stock).collect::<Vec<_>>())
            .fetch_all(&mut **tx)
            .await?;
        let created = inserted.iter().filter(|inserted| **inserted).count();
        let updated = inserted.len() - created;
        Ok((
            i64::try_from(created).unwrap_or(i64::MAX),
            i64::try_from(updated).unwrap_or(i64::MAX),
        ))
    }
}

impl PostgresStore {
    /// Computes the search vectors of up to `limit` products whose text is new or changed,
    /// one statement: it clears their flag and writes their vectors from the text it read
    /// under the row lock, so a change committed meanwhile flags the row again. `SKIP LOCKED`
    /// lets several backends index at once, each its own rows, and passes over rows an import
    /// is writing (they are indexed once it commits).
    async fn index_pending_products(&self, limit: u32) -> StoreResult<u64> {
        const INDEX: &str = "WITH batch AS (SELECT id FROM products WHERE search_pending \
             LIMIT $1 FOR UPDATE SKIP LOCKED), \
             done AS (UPDATE products p SET search_pending = FALSE FROM batch \
             WHERE p.id = batch.id \
             RETURNING p.id, p.merchant_id, p.title, p.category, p.sku, p.description) \
             INSERT INTO product_search (product_id, merchant_id, search) \
             SELECT id, merchant_id, \
             setweight(to_tsvector('english', title), 'A') \
             || setweight(to_tsvector('english', coalesce(category, '') || ' ' || sku), 'B') \
             || setweight(to_tsvector('english', coalesce(description, '')), 'C') FROM done \
             ON CONFLICT (product_id) DO UPDATE SET search = excluded.search";
        Ok(sqlx::query(INDEX)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

impl PostgresStore {
    /// Claims due deliveries of enabled endpoints and returns them with their endpoints, one
    /// statement; `SKIP LOCKED` lets several backends claim at once, each its own.
    async fn claim_due_deliveries(
        &self,
        limit: u32,
        now: chrono::DateTime<chrono::Utc>,
        claim_until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<super::ClaimedDelivery>> {
        static CLAIM: LazyLock<String> = LazyLock::new(|| {
            format!(
                "WITH due AS (SELECT d.id FROM webhook_deliveries d \
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = TRUE \
                 WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
                 AND (d.claimed_until IS NULL OR d.claimed_until < $1) \
                 ORDER BY d.next_attempt_at LIMIT $2 FOR UPDATE OF d SKIP LOCKED) \
                 UPDATE webhook_deliveries d SET claimed_until = $3 \
                 FROM due, webhook_endpoints e WHERE d.id = due.id AND e.id = d.endpoint_id \
                 RETURNING {}",
                super::webhooks::sql::CLAIM_COLUMNS
            )
        });
        let rows: Vec<super::webhooks::ClaimedRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(CLAIM.as_str()))
                .bind(now)
                .bind(i64::from(limit))
                .bind(claim_until)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|row| row.at(now)).collect())
    }
}
