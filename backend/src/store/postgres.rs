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
            let sql = &super::catalog::sql::PG_UPSERT_UNNEST;
            format!(
                "{sql}{} RETURNING (xmax = 0)",
                super::catalog::sql::UPSERT_TAIL
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
