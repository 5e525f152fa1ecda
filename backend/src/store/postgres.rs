//! [`Store`] on PostgreSQL: for several edges and backends sharing one database.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use mindshop_config::DatabaseConfig;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::types::Json;

use super::{
    ApiKey, ApiKeyRow, Merchant, MerchantRow, NewApiKey, NewMerchant, Store, StoreError,
    StoreResult, classify, sql,
};

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

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATIONS.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn create_merchant(&self, merchant: &NewMerchant) -> StoreResult<Merchant> {
        sqlx::query_as::<_, MerchantRow>(sql::INSERT_MERCHANT)
            .bind(&merchant.id)
            .bind(&merchant.name)
            .bind(Json(&merchant.allowed_domains))
            .bind(&merchant.plan)
            .bind(Utc::now())
            .fetch_one(&self.pool)
            .await
            .map(Merchant::from)
            .map_err(|e| classify(e, &format!("merchant {}", merchant.id), "merchant"))
    }

    async fn get_merchant(&self, id: &str) -> StoreResult<Option<Merchant>> {
        let row = sqlx::query_as::<_, MerchantRow>(sql::GET_MERCHANT)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Merchant::from))
    }

    async fn list_merchants(&self) -> StoreResult<Vec<Merchant>> {
        let rows = sqlx::query_as::<_, MerchantRow>(sql::LIST_MERCHANTS)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Merchant::from).collect())
    }

    async fn create_api_key(&self, key: &NewApiKey) -> StoreResult<ApiKey> {
        sqlx::query_as::<_, ApiKeyRow>(sql::INSERT_API_KEY)
            .bind(&key.id)
            .bind(&key.merchant_id)
            .bind(&key.kind)
            .bind(&key.env)
            .bind(&key.prefix)
            .bind(&key.key_hash)
            .bind(Json(&key.permissions))
            .bind(&key.name)
            .bind(Utc::now())
            .fetch_one(&self.pool)
            .await
            .map(ApiKey::from)
            .map_err(|e| classify(e, "API key", &format!("merchant {}", key.merchant_id)))
    }

    async fn list_api_keys(&self, merchant_id: &str) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query_as::<_, ApiKeyRow>(sql::LIST_API_KEYS)
            .bind(merchant_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query_as::<_, ApiKeyRow>(sql::FIND_API_KEY_BY_HASH)
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(ApiKey::from))
    }

    async fn revoke_api_key(&self, id: &str) -> StoreResult<ApiKey> {
        sqlx::query_as::<_, ApiKeyRow>(sql::REVOKE_API_KEY)
            .bind(id)
            .bind(Utc::now())
            .fetch_optional(&self.pool)
            .await?
            .map(ApiKey::from)
            .ok_or_else(|| StoreError::NotFound(format!("API key {id}")))
    }
}
