//! [`Store`] on SQLite: the embedded default, one file under `./data`.

use std::str::FromStr;
use std::time::Duration;

use mindshop_config::DatabaseConfig;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::{StoreError, StoreResult};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Commits `tx` (SQLite has no connection to lose; see [`super::retry::commit`]).
    async fn commit(&self, tx: sqlx::Transaction<'_, sqlx::Sqlite>) -> StoreResult<()> {
        super::retry::commit(tx).await
    }

    /// Every transaction writes, so each takes the write lock when it begins: one that began
    /// by reading and then wrote would fail at once (`SQLITE_BUSY`, no waiting) whenever
    /// another connection (an import, the search indexer) committed in between.
    const BEGIN: &str = "BEGIN IMMEDIATE";
    /// `BEGIN IMMEDIATE` already runs writes one at a time.
    const LOCK_DOMAINS: Option<&str> = None;
    const SEARCH_PRODUCTS: &str = super::chat::sql::SQLITE_SEARCH_PRODUCTS;
    const SEARCH_PRODUCTS_BROADER: &str = super::chat::sql::SQLITE_SEARCH_PRODUCTS_BROADER;
    const SEARCH_DOCUMENTS: &str = super::chat::sql::SQLITE_SEARCH_DOCUMENTS;
    const SEARCH_BACKLOG: &str = "SELECT COUNT(*) FROM products_search_queue";
    const SEARCH_CANDIDATES: i64 = super::chat::SQLITE_SEARCH_CANDIDATES;
    /// Planner statistics after many products were indexed at once.
    const REFRESH_STATISTICS: &str = "PRAGMA optimize";
    /// FTS5 merges its segments as it goes (automerge).
    const SETTLE_SEARCH_INDEX: Option<&str> = None;
    /// One writer at a time: the transaction's write lock keeps other fan-outs out.
    const PENDING_EVENTS: &str = "SELECT seq, id, merchant_id, event_type, data, created_at \
         FROM events WHERE fanned_out_at IS NULL ORDER BY seq LIMIT $1";

    /// An FTS5 query matching any (`OR`) or every (`AND`) of `terms`, each quoted so it is
    /// read as a plain word.
    fn match_expression(terms: &[&str], operator: super::chat::Operator) -> String {
        let joint = match operator {
            super::chat::Operator::Any => " OR ",
            super::chat::Operator::Every => " AND ",
        };
        terms
            .iter()
            .map(|term| format!("\"{term}\""))
            .collect::<Vec<_>>()
            .join(joint)
    }
    /// The words some product holds (any merchant's: the index is shared), in the question's
    /// order, each a quick index lookup, so a word no product holds does not empty a search
    /// for every word.
    async fn present_terms<'t>(&self, terms: Vec<&'t str>) -> StoreResult<Vec<&'t str>> {
        let mut present = Vec::with_capacity(terms.len());
        for term in terms {
            let found: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM products_search WHERE products_search MATCH $1)",
            )
            .bind(format!("\"{term}\""))
            .fetch_one(&self.pool)
            .await?;
            if found {
                present.push(term);
            }
        }
        Ok(present)
    }

    /// Opens (creating if missing) the database file of a `sqlite:` URL, and its directory.
    pub async fn connect(config: &DatabaseConfig) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(&config.url)?
            .create_if_missing(true)
            // WAL lets readers proceed while one writer commits; several processes
            // (serve plus an admin command) share the file safely.
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let path = options.get_filename();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs(config.connect_timeout_secs))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

super::portable::portable_store_impl!(SqliteStore);

impl super::portable::HasDb for SqliteStore {
    type Db = sqlx::Sqlite;
}

impl SqliteStore {
    /// Upserts `batch`, writing only rows that change something; (created, updated). SQLite
    /// counts the SKUs that exist first (an index lookup each), then the rows written: two
    /// statements of one result row each, which keeps sqlx's per-row hand-off out of the loop.
    ///
    /// New rows are queued for the search indexer by one more statement: inside this
    /// `IMMEDIATE` transaction no one else inserts, and SQLite gives each new row the largest
    /// rowid plus one, so the batch's new rows are those above the largest rowid before it.
    /// (Only once rowids reach 2^63 does SQLite pick them at random; no catalog gets there.)
    async fn write_products(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        merchant_id: &str,
        batch: &super::portable::Batch<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<(i64, i64)> {
        let mut count = sqlx::QueryBuilder::new(
            "SELECT COUNT(*), (SELECT coalesce(max(rowid), 0) FROM products) \
             FROM products WHERE merchant_id = ",
        );
        count.push_bind(merchant_id).push(" AND sku IN (");
        let mut skus = count.separated(", ");
        for sku in batch.keys() {
            skus.push_bind(*sku);
        }
        skus.push_unseparated(")");
        let (existing, last_rowid): (i64, i64) =
            count.build_query_as().fetch_one(&mut **tx).await?;
        let mut upsert = sqlx::QueryBuilder::new(super::catalog::sql::UPSERT_HEAD);
        upsert.push_values(batch.values(), |mut row, record| {
            row.push_bind(mindshop_wire::ids::new_id("prod"))
                .push_bind(merchant_id)
                .push_bind(&record.sku)
                .push_bind(&record.title)
                .push_bind(&record.description)
                .push_bind(record.price)
                .push_bind(&record.image_url)
                .push_bind(&record.category)
                .push_bind(record.in_stock)
                .push_bind(now)
                .push_bind(now);
        });
        upsert
            .push(super::catalog::sql::UPSERT_SET)
            .push(super::catalog::sql::UPSERT_WHERE);
        let written = upsert.build().execute(&mut **tx).await?.rows_affected();
        let distinct = i64::try_from(batch.len()).unwrap_or(i64::MAX);
        let created = distinct - existing;
        if created > 0 {
            // OR IGNORE: a deleted product's rowid, still queued, may have been given again.
            sqlx::query(
                "INSERT OR IGNORE INTO products_search_queue (product_rowid) \
                 SELECT rowid FROM products WHERE rowid > $1",
            )
            .bind(last_rowid)
            .execute(&mut **tx)
            .await?;
        }
        Ok((
            created,
            i64::try_from(written).unwrap_or(i64::MAX) - created,
        ))
    }
}

impl SqliteStore {
    /// Takes up to `limit` products off the search queue: forgets what the index held for each
    /// rowid, indexes the row's current text (a deleted product has none), in one transaction.
    async fn index_pending_products(&self, limit: u32) -> StoreResult<u64> {
        let mut tx = self.pool.begin_with(Self::BEGIN).await?;
        let rowids: Vec<i64> = sqlx::query_scalar(
            "SELECT product_rowid FROM products_search_queue ORDER BY product_rowid LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if rowids.is_empty() {
            return Ok(0);
        }
        let count = u64::try_from(rowids.len()).unwrap_or(u64::MAX);
        let batch = serde_json::Value::from(rowids).to_string();
        for statement in [
            "DELETE FROM products_search WHERE rowid IN (SELECT value FROM json_each($1))",
            "INSERT INTO products_search (rowid, title, category, sku, description) \
             SELECT rowid, title, category, sku, description FROM products \
             WHERE rowid IN (SELECT value FROM json_each($1))",
            "DELETE FROM products_search_queue \
             WHERE product_rowid IN (SELECT value FROM json_each($1))",
        ] {
            sqlx::query(statement)
                .bind(&batch)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(count)
    }
}

impl SqliteStore {
    /// Claims due deliveries of enabled endpoints, then reads them with their endpoints, in
    /// one transaction.
    async fn claim_due_deliveries(
        &self,
        limit: u32,
        now: chrono::DateTime<chrono::Utc>,
        claim_until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<super::ClaimedDelivery>> {
        let mut tx = self.pool.begin_with(Self::BEGIN).await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE webhook_deliveries SET claimed_until = $3 WHERE id IN (\
             SELECT d.id FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = TRUE \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
             AND (d.claimed_until IS NULL OR d.claimed_until < $1) \
             ORDER BY d.next_attempt_at LIMIT $2) RETURNING id",
        )
        .bind(now)
        .bind(i64::from(limit))
        .bind(claim_until)
        .fetch_all(&mut *tx)
        .await?;
        let rows: Vec<super::webhooks::ClaimedRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.id IN (SELECT value FROM json_each($1))",
            super::webhooks::sql::CLAIM_COLUMNS
        )))
        .bind(serde_json::Value::from(ids).to_string())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|row| row.at(now)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{documents, merchant_domains};

    /// SQLite's plan for `sql`, one detail line per step.
    async fn plan(store: &SqliteStore, sql: &str) -> String {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind("a")
                .bind("b")
                .bind("c")
                .bind(3_i64)
                .fetch_all(&store.pool)
                .await
                .expect("explain");
        rows.into_iter()
            .map(|(_, _, _, detail)| detail)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn hot_lookups_use_indexes_not_scans() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::connect(&DatabaseConfig {
            url: format!("sqlite://{}/plan.db", dir.path().display()),
            ..DatabaseConfig::default()
        })
        .await
        .expect("open");
        MIGRATIONS.run(&store.pool).await.expect("migrate");

        let hosts = plan(&store, &merchant_domains::any_domain_sql(3)).await;
        assert!(
            hosts.contains("SEARCH merchant_domains USING PRIMARY KEY (domain=?)"),
            "{hosts}"
        );
        let page = plan(&store, documents::sql::LIST_AFTER).await;
        assert!(
            page.contains("SEARCH documents USING INDEX documents_merchant_newest"),
            "{page}"
        );
        assert!(!page.contains("TEMP B-TREE"), "no sort step: {page}");
    }

    #[tokio::test]
    async fn product_search_starts_from_the_index_not_the_catalog() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::connect(&DatabaseConfig {
            url: format!("sqlite://{}/plan.db", dir.path().display()),
            ..DatabaseConfig::default()
        })
        .await
        .expect("open");
        MIGRATIONS.run(&store.pool).await.expect("migrate");
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            SqliteStore::SEARCH_PRODUCTS
        )))
        .bind("\"lamp\"")
        .bind("m")
        .bind(None::<f64>)
        .bind(Some(100.0))
        .bind(false)
        .bind(5_i64)
        .bind(1000_i64)
        .fetch_all(&store.pool)
        .await
        .expect("explain");
        let plan: Vec<String> = rows.into_iter().map(|(_, _, _, detail)| detail).collect();
        let index = plan
            .iter()
            .position(|step| step.contains("products_search VIRTUAL TABLE"));
        let product = plan
            .iter()
            .position(|step| step.contains("SEARCH p USING INTEGER PRIMARY KEY (rowid=?)"));
        assert!(index.is_some() && product.is_some(), "{plan:#?}");
        assert!(index < product, "the index is the outer loop: {plan:#?}");
        assert!(
            !plan.iter().any(|step| step.contains("merchant_id=?")),
            "{plan:#?}"
        );
    }
}
