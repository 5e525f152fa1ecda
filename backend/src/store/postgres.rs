//! [`Store`] on PostgreSQL: for several edges and backends sharing one database.

use std::str::FromStr;
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
