//! The [`Store`](super::Store) methods whose SQL both databases accept as written.
//!
//! SQLite and PostgreSQL both take `$n` placeholders and `RETURNING`, and sqlx decodes their
//! column types into the same row structs, so these bodies are written once and expanded for
//! each pool type by [`portable_store_impl!`]. Methods whose SQL must differ per database are
//! written in `sqlite.rs` / `postgres.rs` and called from here through `Self::`.

/// Implements [`Store`](super::Store) for a type with a `pool` field and a `MIGRATIONS` static
/// in scope at the call site. Expanded in `sqlite.rs` and `postgres.rs`, so `super::` is the
/// `store` module.
macro_rules! portable_store_impl {
    ($store:ty) => {
        #[::async_trait::async_trait]
        impl super::Store for $store {
            async fn migrate(&self) -> super::StoreResult<()> {
                MIGRATIONS.run(&self.pool).await?;
                Ok(())
            }

            async fn ping(&self) -> super::StoreResult<()> {
                ::sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn create_merchant(
                &self,
                merchant: &super::NewMerchant,
            ) -> super::StoreResult<super::Merchant> {
                ::sqlx::query_as::<_, super::MerchantRow>(super::sql::INSERT_MERCHANT)
                    .bind(&merchant.id)
                    .bind(&merchant.name)
                    .bind(::sqlx::types::Json(&merchant.allowed_domains))
                    .bind(&merchant.plan)
                    .bind(::chrono::Utc::now())
                    .fetch_one(&self.pool)
                    .await
                    .map(super::Merchant::from)
                    .map_err(|e| {
                        super::classify(e, &format!("merchant {}", merchant.id), "merchant")
                    })
            }

            async fn get_merchant(&self, id: &str) -> super::StoreResult<Option<super::Merchant>> {
                let row = ::sqlx::query_as::<_, super::MerchantRow>(super::sql::GET_MERCHANT)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(super::Merchant::from))
            }

            async fn list_merchants(&self) -> super::StoreResult<Vec<super::Merchant>> {
                let rows = ::sqlx::query_as::<_, super::MerchantRow>(super::sql::LIST_MERCHANTS)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(super::Merchant::from).collect())
            }

            async fn create_api_key(
                &self,
                key: &super::NewApiKey,
            ) -> super::StoreResult<super::ApiKey> {
                ::sqlx::query_as::<_, super::ApiKeyRow>(super::sql::INSERT_API_KEY)
                    .bind(&key.id)
                    .bind(&key.merchant_id)
                    .bind(&key.kind)
                    .bind(&key.env)
                    .bind(&key.prefix)
                    .bind(&key.key_hash)
                    .bind(::sqlx::types::Json(&key.permissions))
                    .bind(&key.name)
                    .bind(::chrono::Utc::now())
                    .fetch_one(&self.pool)
                    .await
                    .map(super::ApiKey::from)
                    .map_err(|e| {
                        super::classify(e, "API key", &format!("merchant {}", key.merchant_id))
                    })
            }

            async fn list_api_keys(
                &self,
                merchant_id: &str,
            ) -> super::StoreResult<Vec<super::ApiKey>> {
                let rows = ::sqlx::query_as::<_, super::ApiKeyRow>(super::sql::LIST_API_KEYS)
                    .bind(merchant_id)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(super::ApiKey::from).collect())
            }

            async fn find_api_key_by_hash(
                &self,
                key_hash: &str,
            ) -> super::StoreResult<Option<super::ApiKey>> {
                let row = ::sqlx::query_as::<_, super::ApiKeyRow>(super::sql::FIND_API_KEY_BY_HASH)
                    .bind(key_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(super::ApiKey::from))
            }

            async fn revoke_api_key(&self, id: &str) -> super::StoreResult<super::ApiKey> {
                ::sqlx::query_as::<_, super::ApiKeyRow>(super::sql::REVOKE_API_KEY)
                    .bind(id)
                    .bind(::chrono::Utc::now())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(super::ApiKey::from)
                    .ok_or_else(|| super::StoreError::NotFound(format!("API key {id}")))
            }
        }
    };
}

pub(super) use portable_store_impl;
