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
                let conflict =
                    |e| super::classify(e, &format!("merchant {}", merchant.id), "merchant");
                let mut tx = self.pool.begin().await?;
                let created =
                    ::sqlx::query_as::<_, super::MerchantRow>(super::sql::INSERT_MERCHANT)
                        .bind(&merchant.id)
                        .bind(&merchant.name)
                        .bind(::sqlx::types::Json(&merchant.allowed_domains))
                        .bind(&merchant.plan)
                        .bind(::chrono::Utc::now())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(conflict)?;
                for domain in super::merchant_domains::index_entries(&merchant.allowed_domains) {
                    ::sqlx::query(super::merchant_domains::sql::INSERT)
                        .bind(domain)
                        .bind(&merchant.id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(super::Merchant::from(created))
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

            async fn update_merchant_settings(
                &self,
                id: &str,
                settings: &super::MerchantSettings,
            ) -> super::StoreResult<super::Merchant> {
                // The list and its index change together or not at all; the UPDATE locks the
                // merchant's row first, so concurrent updates apply one after the other.
                let mut tx = self.pool.begin().await?;
                let updated =
                    ::sqlx::query_as::<_, super::MerchantRow>(super::sql::UPDATE_MERCHANT_SETTINGS)
                        .bind(id)
                        .bind(::sqlx::types::Json(&settings.allowed_domains))
                        .bind(&settings.plan)
                        .bind(::chrono::Utc::now())
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| super::StoreError::NotFound(format!("merchant {id}")))?;
                ::sqlx::query(super::merchant_domains::sql::DELETE_FOR_MERCHANT)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for domain in super::merchant_domains::index_entries(&settings.allowed_domains) {
                    ::sqlx::query(super::merchant_domains::sql::INSERT)
                        .bind(domain)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(super::Merchant::from(updated))
            }

            async fn any_merchant_allows_host(&self, host: &str) -> super::StoreResult<bool> {
                let Some(candidates) = super::merchant_domains::host_and_parents(host) else {
                    return Ok(false);
                };
                let sql = super::merchant_domains::any_domain_sql(candidates.len());
                let mut query = ::sqlx::query_scalar::<_, bool>(::sqlx::AssertSqlSafe(sql));
                for candidate in candidates {
                    query = query.bind(candidate);
                }
                Ok(query.fetch_one(&self.pool).await?)
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

            async fn revoke_merchant_api_key(
                &self,
                merchant_id: &str,
                id: &str,
            ) -> super::StoreResult<super::ApiKey> {
                ::sqlx::query_as::<_, super::ApiKeyRow>(super::sql::REVOKE_MERCHANT_API_KEY)
                    .bind(merchant_id)
                    .bind(id)
                    .bind(::chrono::Utc::now())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(super::ApiKey::from)
                    .ok_or_else(|| super::StoreError::NotFound(format!("API key {id}")))
            }

            async fn create_document(
                &self,
                document: &super::NewDocument,
            ) -> super::StoreResult<super::Document> {
                let fields = &document.fields;
                ::sqlx::query_as::<_, super::documents::DocumentRow>(super::documents::sql::INSERT)
                    .bind(&document.id)
                    .bind(&document.merchant_id)
                    .bind(&fields.title)
                    .bind(&fields.body)
                    .bind(::sqlx::types::Json(&fields.tags))
                    .bind(&fields.url)
                    .bind(::chrono::Utc::now())
                    .fetch_one(&self.pool)
                    .await
                    .map(super::Document::from)
                    .map_err(|e| {
                        super::classify(
                            e,
                            &format!("document {}", document.id),
                            &format!("merchant {}", document.merchant_id),
                        )
                    })
            }

            async fn get_document(
                &self,
                merchant_id: &str,
                id: &str,
            ) -> super::StoreResult<Option<super::Document>> {
                let row = ::sqlx::query_as::<_, super::documents::DocumentRow>(
                    super::documents::sql::GET,
                )
                .bind(merchant_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(super::Document::from))
            }

            async fn list_documents(
                &self,
                merchant_id: &str,
                after: Option<&super::PageKey>,
                limit: u32,
            ) -> super::StoreResult<Vec<super::Document>> {
                let limit = i64::from(limit);
                let rows = match after {
                    None => {
                        ::sqlx::query_as::<_, super::documents::DocumentRow>(
                            super::documents::sql::LIST_FIRST,
                        )
                        .bind(merchant_id)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?
                    }
                    Some(after) => {
                        ::sqlx::query_as::<_, super::documents::DocumentRow>(
                            super::documents::sql::LIST_AFTER,
                        )
                        .bind(merchant_id)
                        .bind(after.created_at)
                        .bind(&after.id)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?
                    }
                };
                Ok(rows.into_iter().map(super::Document::from).collect())
            }

            async fn update_document(
                &self,
                merchant_id: &str,
                id: &str,
                fields: &super::DocumentFields,
            ) -> super::StoreResult<super::Document> {
                ::sqlx::query_as::<_, super::documents::DocumentRow>(super::documents::sql::UPDATE)
                    .bind(merchant_id)
                    .bind(id)
                    .bind(&fields.title)
                    .bind(&fields.body)
                    .bind(::sqlx::types::Json(&fields.tags))
                    .bind(&fields.url)
                    .bind(::chrono::Utc::now())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(super::Document::from)
                    .ok_or_else(|| super::StoreError::NotFound(format!("document {id}")))
            }

            async fn delete_document(&self, merchant_id: &str, id: &str) -> super::StoreResult<()> {
                let deleted = ::sqlx::query(super::documents::sql::DELETE)
                    .bind(merchant_id)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                if deleted.rows_affected() == 0 {
                    return Err(super::StoreError::NotFound(format!("document {id}")));
                }
                Ok(())
            }

            async fn create_chat_session(
                &self,
                session: &super::NewChatSession,
            ) -> super::StoreResult<super::ChatSession> {
                ::sqlx::query_as::<_, super::sessions::ChatSessionRow>(super::sessions::sql::INSERT)
                    .bind(&session.id)
                    .bind(&session.merchant_id)
                    .bind(&session.user_id)
                    .bind(::chrono::Utc::now())
                    .fetch_one(&self.pool)
                    .await
                    .map(super::ChatSession::from)
                    .map_err(|e| {
                        super::classify(
                            e,
                            &format!("session {}", session.id),
                            &format!("merchant {}", session.merchant_id),
                        )
                    })
            }

            async fn get_chat_session(
                &self,
                merchant_id: &str,
                id: &str,
            ) -> super::StoreResult<Option<super::ChatSession>> {
                let row = ::sqlx::query_as::<_, super::sessions::ChatSessionRow>(
                    super::sessions::sql::GET,
                )
                .bind(merchant_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(super::ChatSession::from))
            }

            async fn end_chat_session(
                &self,
                merchant_id: &str,
                id: &str,
            ) -> super::StoreResult<super::SessionEnding> {
                let ended = ::sqlx::query_as::<_, super::sessions::ChatSessionRow>(
                    super::sessions::sql::END,
                )
                .bind(merchant_id)
                .bind(id)
                .bind(::chrono::Utc::now())
                .fetch_optional(&self.pool)
                .await?;
                if let Some(ended) = ended {
                    return Ok(super::SessionEnding::Ended(ended.into()));
                }
                // Nothing changed: either there is no such session, or it had ended already
                // (a session never becomes active again, so this read cannot race back).
                match self.get_chat_session(merchant_id, id).await? {
                    Some(session) => Ok(super::SessionEnding::AlreadyEnded(session)),
                    None => Err(super::StoreError::NotFound(format!("session {id}"))),
                }
            }
        }
    };
}

pub(super) use portable_store_impl;
