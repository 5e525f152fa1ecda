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
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("", merchant)])?;
                    let conflict =
                        |e| super::classify(e, &format!("merchant {}", merchant.id), "merchant");
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
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
                    self.commit(tx).await?;
                    Ok(super::Merchant::from(created))
                })
            }

            async fn get_merchant(&self, id: &str) -> super::StoreResult<Option<super::Merchant>> {
                super::text::refuse_nul(&[("id", &id)])?;
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
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("id", &id), ("", settings)])?;
                    // The list and its index change together or not at all. Domain writes run one
                    // at a time (`LOCK_DOMAINS`; on SQLite the transaction's write lock), so the
                    // overlap check below sees every list committed before this one and none can
                    // commit between the check and the write.
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    if let Some(lock) = Self::LOCK_DOMAINS {
                        ::sqlx::query(lock).execute(&mut *tx).await?;
                    }
                    let updated =
                        ::sqlx::query_as::<_, super::MerchantRow>(super::sql::UPDATE_MERCHANT_SETTINGS)
                            .bind(id)
                            .bind(::sqlx::types::Json(&settings.allowed_domains))
                            .bind(&settings.plan)
                            .bind(::chrono::Utc::now())
                            .fetch_optional(&mut *tx)
                            .await?
                            .ok_or_else(|| super::StoreError::NotFound(format!("merchant {id}")))?;
                    let entries = super::merchant_domains::index_entries(&settings.allowed_domains);
                    if !settings.may_share_domains {
                        Self::refuse_taken_domains(&mut tx, id, &entries).await?;
                    }
                    ::sqlx::query(super::merchant_domains::sql::DELETE_FOR_MERCHANT)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    for domain in entries {
                        ::sqlx::query(super::merchant_domains::sql::INSERT)
                            .bind(domain)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    self.commit(tx).await?;
                    Ok(super::Merchant::from(updated))
                })
            }

            async fn any_merchant_allows_host(&self, host: &str) -> super::StoreResult<bool> {
                super::text::refuse_nul(&[("host", &host)])?;
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
                super::text::refuse_nul(&[("", key)])?;
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
                super::text::refuse_nul(&[("merchantId", &merchant_id)])?;
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
                super::text::refuse_nul(&[("keyHash", &key_hash)])?;
                let row = ::sqlx::query_as::<_, super::ApiKeyRow>(super::sql::FIND_API_KEY_BY_HASH)
                    .bind(key_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(super::ApiKey::from))
            }

            async fn revoke_api_key(&self, id: &str) -> super::StoreResult<super::ApiKey> {
                super::text::refuse_nul(&[("id", &id)])?;
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
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("id", &id)])?;
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
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("", document)])?;
                    let fields = &document.fields;
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    let created = ::sqlx::query_as::<_, super::documents::DocumentRow>(
                        super::documents::sql::INSERT,
                    )
                    .bind(&document.id)
                    .bind(&document.merchant_id)
                    .bind(&fields.title)
                    .bind(&fields.body)
                    .bind(::sqlx::types::Json(&fields.tags))
                    .bind(&fields.url)
                    .bind(::chrono::Utc::now())
                    .fetch_one(&mut *tx)
                    .await
                    .map(super::Document::from)
                    .map_err(|e| {
                        super::classify(
                            e,
                            &format!("document {}", document.id),
                            &format!("merchant {}", document.merchant_id),
                        )
                    })?;
                    Self::insert_event(&mut tx, &super::NewEvent::about(&created.merchant_id, "document.created", &created)).await?;
                    self.commit(tx).await?;
                    Ok(created)
                })
            }

            async fn get_document(
                &self,
                merchant_id: &str,
                id: &str,
            ) -> super::StoreResult<Option<super::Document>> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("id", &id)])?;
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
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("cursor", &after)])?;
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
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("merchantId", &merchant_id), ("id", &id), ("", fields)])?;
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    let updated = ::sqlx::query_as::<_, super::documents::DocumentRow>(
                        super::documents::sql::UPDATE,
                    )
                    .bind(merchant_id)
                    .bind(id)
                    .bind(&fields.title)
                    .bind(&fields.body)
                    .bind(::sqlx::types::Json(&fields.tags))
                    .bind(&fields.url)
                    .bind(::chrono::Utc::now())
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(super::Document::from)
                    .ok_or_else(|| super::StoreError::NotFound(format!("document {id}")))?;
                    Self::insert_event(&mut tx, &super::NewEvent::about(merchant_id, "document.updated", &updated)).await?;
                    self.commit(tx).await?;
                    Ok(updated)
                })
            }

            async fn delete_document(&self, merchant_id: &str, id: &str) -> super::StoreResult<()> {
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("merchantId", &merchant_id), ("id", &id)])?;
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    let deleted = ::sqlx::query(super::documents::sql::DELETE)
                        .bind(merchant_id)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if deleted.rows_affected() == 0 {
                        return Err(super::StoreError::NotFound(format!("document {id}")));
                    }
                    let data = ::serde_json::json!({"id": id, "merchantId": merchant_id});
                    Self::insert_event(&mut tx, &super::NewEvent::about(merchant_id, "document.deleted", &data)).await?;
                    self.commit(tx).await?;
                    Ok(())
                })
            }

            async fn create_chat_session(
                &self,
                session: &super::NewChatSession,
            ) -> super::StoreResult<super::ChatSession> {
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("", session)])?;
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    let created = ::sqlx::query_as::<_, super::sessions::ChatSessionRow>(
                        super::sessions::sql::INSERT,
                    )
                    .bind(&session.id)
                    .bind(&session.merchant_id)
                    .bind(&session.user_id)
                    .bind(::chrono::Utc::now())
                    .fetch_one(&mut *tx)
                    .await
                    .map(super::ChatSession::from)
                    .map_err(|e| {
                        super::classify(
                            e,
                            &format!("session {}", session.id),
                            &format!("merchant {}", session.merchant_id),
                        )
                    })?;
                    Self::insert_event(&mut tx, &super::NewEvent::about(&created.merchant_id, "session.created", &created)).await?;
                    self.commit(tx).await?;
                    Ok(created)
                })
            }

            async fn get_chat_session(
                &self,
                merchant_id: &str,
                id: &str,
            ) -> super::StoreResult<Option<super::ChatSession>> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("id", &id)])?;
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
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("merchantId", &merchant_id), ("id", &id)])?;
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    let ended = ::sqlx::query_as::<_, super::sessions::ChatSessionRow>(
                        super::sessions::sql::END,
                    )
                    .bind(merchant_id)
                    .bind(id)
                    .bind(::chrono::Utc::now())
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(ended) = ended {
                        let ended = super::ChatSession::from(ended);
                        Self::insert_event(&mut tx, &super::NewEvent::about(merchant_id, "session.ended", &ended)).await?;
                        self.commit(tx).await?;
                        return Ok(super::SessionEnding::Ended(ended));
                    }
                    drop(tx);
                    // Nothing changed: either there is no such session, or it had ended already
                    // (a session never becomes active again, so this read cannot race back).
                    match self.get_chat_session(merchant_id, id).await? {
                        Some(session) => Ok(super::SessionEnding::AlreadyEnded(session)),
                        None => Err(super::StoreError::NotFound(format!("session {id}"))),
                    }
                })
            }

            async fn put_sync_config(
                &self,
                merchant_id: &str,
                fields: &super::SyncConfigFields,
                new_secret: &str,
            ) -> super::StoreResult<(super::SyncConfig, bool)> {
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("merchantId", &merchant_id), ("", fields), ("webhookSecret", &new_secret)])?;
                    use super::catalog::{SyncConfigRow, sql};
                    let now = ::chrono::Utc::now();
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    let existed = ::sqlx::query(sql::GET_CONFIG)
                        .bind(merchant_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .is_some();
                    let row = ::sqlx::query_as::<_, SyncConfigRow>(sql::PUT_CONFIG)
                        .bind(merchant_id)
                        .bind(&fields.sync_type)
                        .bind(&fields.schedule)
                        .bind(&fields.source_type)
                        .bind(&fields.source_url)
                        .bind(::sqlx::types::Json(&fields.field_mapping))
                        .bind(&fields.status)
                        .bind(new_secret)
                        .bind(&fields.source_auth)
                        .bind(fields.next_run_at)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| super::classify(e, "sync configuration", "merchant"))?;
                    self.commit(tx).await?;
                    Ok((row.into(), !existed))
                })
            }

            async fn get_sync_config(
                &self,
                merchant_id: &str,
            ) -> super::StoreResult<Option<super::SyncConfig>> {
                super::text::refuse_nul(&[("merchantId", &merchant_id)])?;
                use super::catalog::{SyncConfigRow, sql};
                let row = ::sqlx::query_as::<_, SyncConfigRow>(sql::GET_CONFIG)
                    .bind(merchant_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(Into::into))
            }

            async fn due_sync_configs(
                &self,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> super::StoreResult<Vec<super::SyncConfig>> {
                use super::catalog::{SyncConfigRow, sql};
                let rows = ::sqlx::query_as::<_, SyncConfigRow>(sql::DUE_CONFIGS)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn claim_scheduled_sync(
                &self,
                merchant_id: &str,
                due: ::chrono::DateTime<::chrono::Utc>,
                next: Option<::chrono::DateTime<::chrono::Utc>>,
            ) -> super::StoreResult<bool> {
                super::text::refuse_nul(&[("merchantId", &merchant_id)])?;
                let done = ::sqlx::query(super::catalog::sql::CLAIM_SCHEDULE)
                    .bind(merchant_id)
                    .bind(due)
                    .bind(next)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn rotate_sync_webhook_secret(
                &self,
                merchant_id: &str,
                secret: &str,
            ) -> super::StoreResult<super::SyncConfig> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("webhookSecret", &secret)])?;
                use super::catalog::{SyncConfigRow, sql};
                ::sqlx::query_as::<_, SyncConfigRow>(sql::ROTATE_SECRET)
                    .bind(merchant_id)
                    .bind(secret)
                    .bind(::chrono::Utc::now())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(Into::into)
                    .ok_or_else(|| super::StoreError::NotFound("sync configuration".to_owned()))
            }

            async fn start_sync_run(
                &self,
                run: &super::NewSyncRun,
            ) -> super::StoreResult<super::SyncRun> {
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("", run)])?;
                    use super::catalog::{SyncRunRow, sql};
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    let started: super::SyncRun = ::sqlx::query_as::<_, SyncRunRow>(sql::INSERT_RUN)
                        .bind(&run.id)
                        .bind(&run.merchant_id)
                        .bind(&run.trigger)
                        .bind(&run.source_type)
                        .bind(&run.mode)
                        .bind(::chrono::Utc::now())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| super::classify(e, "an active sync run", "merchant"))?
                        .into();
                    Self::insert_event(&mut tx, &super::catalog::run_event(&started)).await?;
                    self.commit(tx).await?;
                    Ok(started)
                })
            }

            async fn start_push_run(
                &self,
                run: &super::NewSyncRun,
                push: &super::NewPush,
            ) -> super::StoreResult<super::PushStart> {
                $crate::store::retry::retry_before_commit!({
                    use super::catalog::{SyncRunRow, sql};
                    let now = ::chrono::Utc::now();
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    ::sqlx::query(sql::FORGET_PUSHES)
                        .bind(push.forget_before)
                        .execute(&mut *tx)
                        .await?;
                    let claimed = ::sqlx::query(sql::CLAIM_PUSH)
                        .bind(&run.merchant_id)
                        .bind(&push.push_id)
                        .bind(&run.id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| super::classify(e, "a push", "merchant"))?
                        .rows_affected();
                    if claimed == 0 {
                        let earlier: super::SyncRun = ::sqlx::query_as::<_, SyncRunRow>(sql::PUSH_RUN)
                            .bind(&run.merchant_id)
                            .bind(&push.push_id)
                            .fetch_one(&mut *tx)
                            .await?
                            .into();
                        tx.rollback().await?;
                        return Ok(super::PushStart::Repeated(earlier));
                    }
                    let started: super::SyncRun = ::sqlx::query_as::<_, SyncRunRow>(sql::INSERT_RUN)
                        .bind(&run.id)
                        .bind(&run.merchant_id)
                        .bind(&run.trigger)
                        .bind(&run.source_type)
                        .bind(&run.mode)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| super::classify(e, "an active sync run", "merchant"))?
                        .into();
                    Self::insert_event(&mut tx, &super::catalog::run_event(&started)).await?;
                    self.commit(tx).await?;
                    Ok(super::PushStart::Started(started))
                })
            }

            async fn active_sync_run(
                &self,
                merchant_id: &str,
            ) -> super::StoreResult<Option<super::SyncRun>> {
                super::text::refuse_nul(&[("merchantId", &merchant_id)])?;
                use super::catalog::{SyncRunRow, sql};
                let row = ::sqlx::query_as::<_, SyncRunRow>(sql::ACTIVE_RUN)
                    .bind(merchant_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(Into::into))
            }

            async fn apply_product_batch(
                &self,
                merchant_id: &str,
                run_id: &str,
                records: &[super::catalog::ProductRecord],
            ) -> super::StoreResult<super::BatchCounts> {
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("merchantId", &merchant_id), ("runId", &run_id), ("products", &records)])?;
                    use super::catalog::sql;
                    let mut counts = super::BatchCounts::default();
                    if records.is_empty() {
                        return Ok(counts);
                    }
                    // The last row of a SKU wins, so one statement never touches a row twice.
                    let mut latest: ::std::collections::HashMap<&str, &super::catalog::ProductRecord> =
                        ::std::collections::HashMap::with_capacity(records.len());
                    for record in records {
                        latest.insert(record.sku.as_str(), record);
                    }
                    let distinct = i64::try_from(latest.len()).unwrap_or(i64::MAX);
                    let now = ::chrono::Utc::now();
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;

                    let (created, updated) =
                        Self::write_products(&mut tx, merchant_id, &latest, now).await?;
                    counts.created = created;
                    counts.updated = updated;
                    counts.unchanged = distinct - created - updated;
                    // Duplicate SKUs within the batch count as processed rows of the run too.
                    let processed = i64::try_from(records.len()).unwrap_or(i64::MAX);
                    let progressed = ::sqlx::query(sql::PROGRESS)
                        .bind(merchant_id)
                        .bind(run_id)
                        .bind(now)
                        .bind(counts.created)
                        .bind(counts.updated)
                        .bind(counts.unchanged)
                        .bind(processed)
                        .execute(&mut *tx)
                        .await?;
                    // A run that is no longer active (failed by the sweep meanwhile, or not this
                    // merchant's) writes nothing: dropping the transaction rolls the batch back.
                    if progressed.rows_affected() != 1 {
                        return Err(super::StoreError::NotFound(format!(
                            "active sync run {run_id}"
                        )));
                    }
                    self.commit(tx).await?;
                    Ok(counts)
                })
            }

            async fn finish_sync_run(
                &self,
                merchant_id: &str,
                run_id: &str,
                outcome: &super::RunOutcome,
            ) -> super::StoreResult<super::SyncRun> {
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("merchantId", &merchant_id), ("runId", &run_id), ("", outcome)])?;
                    use super::catalog::{SyncRunRow, sql};
                    let now = ::chrono::Utc::now();
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    let mut deleted: i64 = 0;
                    if let (None, Some(keep)) = (&outcome.failure, &outcome.keep_only) {
                        let absent: Vec<String> = ::sqlx::query_scalar::<_, String>(sql::PRODUCT_SKUS)
                            .bind(merchant_id)
                            .fetch_all(&mut *tx)
                            .await?
                            .into_iter()
                            .filter(|sku| !keep.contains(sku))
                            .collect();
                        for chunk in absent.chunks(500) {
                            let mut delete =
                                ::sqlx::QueryBuilder::new("DELETE FROM products WHERE merchant_id = ");
                            delete.push_bind(merchant_id).push(" AND sku IN (");
                            let mut skus = delete.separated(", ");
                            for sku in chunk {
                                skus.push_bind(sku);
                            }
                            skus.push_unseparated(")");
                            let done = delete.build().execute(&mut *tx).await?;
                            deleted += i64::try_from(done.rows_affected()).unwrap_or(i64::MAX);
                        }
                    }
                    if outcome.failure.is_none() {
                        for chunk in outcome.delete.chunks(500) {
                            let mut delete =
                                ::sqlx::QueryBuilder::new("DELETE FROM products WHERE merchant_id = ");
                            delete.push_bind(merchant_id).push(" AND sku IN (");
                            let mut skus = delete.separated(", ");
                            for sku in chunk {
                                skus.push_bind(sku);
                            }
                            skus.push_unseparated(")");
                            let done = delete.build().execute(&mut *tx).await?;
                            deleted += i64::try_from(done.rows_affected()).unwrap_or(i64::MAX);
                        }
                    }
                    let status = if outcome.failure.is_some() {
                        "failed"
                    } else {
                        "completed"
                    };
                    let finished: super::SyncRun = ::sqlx::query_as::<_, SyncRunRow>(sql::FINISH_RUN)
                        .bind(merchant_id)
                        .bind(run_id)
                        .bind(status)
                        .bind(now)
                        .bind(outcome.processed)
                        .bind(outcome.failed)
                        .bind(deleted)
                        .bind(::sqlx::types::Json(&outcome.errors))
                        .bind(outcome.error_count)
                        .bind(&outcome.failure)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| {
                            super::StoreError::NotFound(format!("active sync run {run_id}"))
                        })?
                        .into();
                    Self::insert_event(&mut tx, &super::catalog::run_event(&finished)).await?;
                    self.commit(tx).await?;
                    Ok(finished)
                })
            }

            async fn fail_stale_sync_runs(
                &self,
                before: ::chrono::DateTime<::chrono::Utc>,
            ) -> super::StoreResult<Vec<super::SyncRun>> {
                $crate::store::retry::retry_before_commit!({
                    use super::catalog::{SyncRunRow, sql};
                    let stale = ::sqlx::query_as::<_, SyncRunRow>(sql::STALE_RUNS)
                        .bind(before)
                        .fetch_all(&self.pool)
                        .await?;
                    let mut failed = Vec::with_capacity(stale.len());
                    for run in stale.into_iter().map(super::SyncRun::from) {
                        let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                        // Another backend may have failed (or finished) it meanwhile: then no row.
                        let row = ::sqlx::query_as::<_, SyncRunRow>(sql::FAIL_RUN)
                            .bind(&run.merchant_id)
                            .bind(&run.id)
                            .bind(::chrono::Utc::now())
                            .bind("The backend running this sync stopped before it finished")
                            .bind(before)
                            .fetch_optional(&mut *tx)
                            .await?;
                        if let Some(row) = row {
                            let run = super::SyncRun::from(row);
                            Self::insert_event(&mut tx, &super::catalog::run_event(&run)).await?;
                            self.commit(tx).await?;
                            failed.push(run);
                        }
                    }
                    Ok(failed)
                })
            }

            async fn list_sync_runs(
                &self,
                merchant_id: &str,
                after: Option<&super::PageKey>,
                limit: u32,
            ) -> super::StoreResult<Vec<super::SyncRun>> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("cursor", &after)])?;
                use super::catalog::{SyncRunRow, sql};
                let limit = i64::from(limit);
                let rows = match after {
                    None => {
                        ::sqlx::query_as::<_, SyncRunRow>(sql::LIST_RUNS_FIRST)
                            .bind(merchant_id)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await?
                    }
                    Some(key) => {
                        ::sqlx::query_as::<_, SyncRunRow>(sql::LIST_RUNS_AFTER)
                            .bind(merchant_id)
                            .bind(key.created_at)
                            .bind(&key.id)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn list_products(
                &self,
                merchant_id: &str,
                after_sku: Option<&str>,
                limit: u32,
            ) -> super::StoreResult<Vec<super::Product>> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("cursor", &after_sku)])?;
                use super::catalog::{ProductRow, sql};
                let limit = i64::from(limit);
                let rows = match after_sku {
                    None => {
                        ::sqlx::query_as::<_, ProductRow>(sql::LIST_PRODUCTS_FIRST)
                            .bind(merchant_id)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await?
                    }
                    Some(sku) => {
                        ::sqlx::query_as::<_, ProductRow>(sql::LIST_PRODUCTS_AFTER)
                            .bind(merchant_id)
                            .bind(sku)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn search_products(
                &self,
                merchant_id: &str,
                query: &super::ProductQuery<'_>,
            ) -> super::StoreResult<Vec<super::Scored<super::Product>>> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("", query)])?;
                use super::chat::{
                    Operator, ScoredProductRow, merge_tiers, safe_terms, sql,
                };
                let terms = safe_terms(query.terms);
                if terms.is_empty() {
                    let rows = ::sqlx::query_as::<_, ScoredProductRow>(sql::FILTER_PRODUCTS)
                        .bind(merchant_id)
                        .bind(query.min_price)
                        .bind(query.max_price)
                        .bind(query.in_stock_only)
                        .bind(i64::from(query.limit))
                        .fetch_all(&self.pool)
                        .await?;
                    return Ok(rows.into_iter().map(Into::into).collect());
                }
                let present = self.present_terms(terms).await?;
                if present.is_empty() {
                    return Ok(Vec::new());
                }
                // Matching every word is selective and fast; then the last word alone; some
                // words only when too few do. Each asks first for a bounded set of matches
                // (SQLite: the best 1,000 by rank for every word, the first 1,000 for the
                // broader steps; see `chat::sql`), then for all when too few of those pass
                // the filters.
                let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
                let search = async |words: &[&str], operator, sql: &'static str, cap: i64| -> super::StoreResult<Vec<super::Scored<super::Product>>> {
                    let rows = ::sqlx::query_as::<_, ScoredProductRow>(sql)
                        .bind(Self::match_expression(words, operator))
                        .bind(merchant_id)
                        .bind(query.min_price)
                        .bind(query.max_price)
                        .bind(query.in_stock_only)
                        .bind(i64::from(query.limit))
                        .bind(cap)
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                };
                let complete = async |words: &[&str], operator, bounded: &'static str| -> super::StoreResult<Vec<super::Scored<super::Product>>> {
                    let found = search(words, operator, bounded, Self::SEARCH_CANDIDATES).await?;
                    if found.len() >= limit {
                        return Ok(found);
                    }
                    search(words, operator, Self::SEARCH_PRODUCTS, i64::MAX).await
                };
                let mut found = complete(&present, Operator::Every, Self::SEARCH_PRODUCTS).await?;
                if found.len() >= limit || present.len() == 1 {
                    return Ok(found);
                }
                // In a shopper's question the last word is most often the kind of product
                // ("compact speaker", "oak chair"): alone, it is narrower than any word.
                let last = complete(
                    &present[present.len() - 1..],
                    Operator::Every,
                    Self::SEARCH_PRODUCTS_BROADER,
                )
                .await?;
                found = merge_tiers(found, last, limit);
                if found.len() >= limit {
                    return Ok(found);
                }
                let any = complete(&present, Operator::Any, Self::SEARCH_PRODUCTS_BROADER).await?;
                Ok(merge_tiers(found, any, limit))
            }

            async fn search_documents(
                &self,
                merchant_id: &str,
                terms: &[String],
                limit: u32,
            ) -> super::StoreResult<Vec<super::Scored<super::Document>>> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("terms", &terms)])?;
                use super::chat::{Operator, ScoredDocumentRow, safe_terms};
                let terms = safe_terms(terms);
                if terms.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = ::sqlx::query_as::<_, ScoredDocumentRow>(Self::SEARCH_DOCUMENTS)
                    .bind(Self::match_expression(&terms, Operator::Any))
                    .bind(merchant_id)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn index_products(&self, limit: u32) -> super::StoreResult<u64> {
                self.index_pending_products(limit).await
            }

            async fn refresh_search_statistics(&self) -> super::StoreResult<()> {
                ::sqlx::query(Self::REFRESH_STATISTICS).execute(&self.pool).await?;
                Ok(())
            }

            async fn settle_search_index(&self) -> super::StoreResult<()> {
                if let Some(statement) = Self::SETTLE_SEARCH_INDEX {
                    ::sqlx::query(statement).execute(&self.pool).await?;
                }
                Ok(())
            }

            async fn search_backlog(&self) -> super::StoreResult<i64> {
                Ok(::sqlx::query_scalar::<_, i64>(Self::SEARCH_BACKLOG)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn record_event(&self, event: &super::NewEvent<'_>) -> super::StoreResult<()> {
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("", event)])?;
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    Self::insert_event(&mut tx, event).await?;
                    self.commit(tx).await?;
                    Ok(())
                })
            }

            async fn record_exchange(
                &self,
                exchange: &super::NewExchange,
            ) -> super::StoreResult<()> {
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("", exchange)])?;
                    let now = ::chrono::Utc::now();
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    let messages = [
                        (
                            "user",
                            &exchange.question,
                            ::serde_json::json!([]),
                            ::serde_json::json!([]),
                            None,
                        ),
                        (
                            "assistant",
                            &exchange.answer,
                            exchange.recommendations.clone(),
                            exchange.sources.clone(),
                            exchange.cut_short.map(super::CutShort::label),
                        ),
                    ];
                    for (offset, (role, content, recommendations, sources, cut_short)) in
                        messages.into_iter().enumerate()
                    {
                        ::sqlx::query(super::chat::sql::INSERT_MESSAGE)
                            .bind(::mindshop_wire::ids::new_id("msg"))
                            .bind(&exchange.session_id)
                            .bind(&exchange.merchant_id)
                            .bind(role)
                            .bind(content)
                            .bind(::sqlx::types::Json(recommendations))
                            .bind(::sqlx::types::Json(sources))
                            .bind(cut_short)
                            // The answer sorts after its question.
                            .bind(now + ::chrono::Duration::microseconds(offset as i64))
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| super::classify(e, "message", "session"))?;
                    }
                    Self::insert_event(
                        &mut tx,
                        &super::NewEvent {
                            merchant_id: &exchange.merchant_id,
                            event_type: "chat.completed",
                            data: exchange.event.clone(),
                        },
                    )
                    .await?;
                    self.commit(tx).await?;
                    Ok(())
                })
            }

            async fn list_messages(
                &self,
                merchant_id: &str,
                session_id: &str,
            ) -> super::StoreResult<Vec<super::ChatMessage>> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("sessionId", &session_id)])?;
                let rows = ::sqlx::query_as::<_, super::chat::ChatMessageRow>(
                    super::chat::sql::LIST_MESSAGES,
                )
                .bind(merchant_id)
                .bind(session_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn create_webhook(
                &self,
                endpoint: &super::NewWebhookEndpoint,
            ) -> super::StoreResult<super::WebhookEndpoint> {
                super::text::refuse_nul(&[("", endpoint)])?;
                use super::webhooks::sql;
                ::sqlx::query(sql::INSERT_ENDPOINT)
                    .bind(&endpoint.id)
                    .bind(&endpoint.merchant_id)
                    .bind(&endpoint.url)
                    .bind(::sqlx::types::Json(&endpoint.events))
                    .bind(&endpoint.description)
                    .bind(&endpoint.secret)
                    .bind(::chrono::Utc::now())
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        super::classify(
                            e,
                            &format!("webhook {}", endpoint.id),
                            &format!("merchant {}", endpoint.merchant_id),
                        )
                    })?;
                self.webhook_after_change(1, &endpoint.merchant_id, &endpoint.id)
                    .await
            }

            async fn get_webhook(
                &self,
                merchant_id: &str,
                id: &str,
            ) -> super::StoreResult<Option<super::WebhookEndpoint>> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("id", &id)])?;
                use super::webhooks::{EndpointRow, sql};
                let row = ::sqlx::query_as::<_, EndpointRow>(sql::GET_ENDPOINT)
                    .bind(merchant_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(Into::into))
            }

            async fn list_webhooks(
                &self,
                merchant_id: &str,
            ) -> super::StoreResult<Vec<super::WebhookEndpoint>> {
                super::text::refuse_nul(&[("merchantId", &merchant_id)])?;
                use super::webhooks::{EndpointRow, sql};
                let rows = ::sqlx::query_as::<_, EndpointRow>(sql::LIST_ENDPOINTS)
                    .bind(merchant_id)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn update_webhook(
                &self,
                merchant_id: &str,
                id: &str,
                update: &super::WebhookEndpointUpdate,
            ) -> super::StoreResult<super::WebhookEndpoint> {
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("merchantId", &merchant_id), ("id", &id), ("", update)])?;
                    use super::webhooks::{PendingEvent, Subscriber, sql};
                    let now = ::chrono::Utc::now();
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    if update.enabled == Some(true) {
                        // Re-enabling starts a new window of events; what the endpoint was owed
                        // from before it was disabled and is still in the outbox becomes its
                        // deliveries now, as fan-out would have made them.
                        let disabled = ::sqlx::query_as::<_, Subscriber>(sql::DISABLED_SUBSCRIBER)
                            .bind(merchant_id)
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                        if let Some(subscriber) = disabled {
                            let events = ::sqlx::query_as::<_, PendingEvent>(sql::PENDING_EVENTS_OWED)
                                .bind(merchant_id)
                                .bind(subscriber.events_after_seq)
                                .bind(subscriber.events_until_seq)
                                .fetch_all(&mut *tx)
                                .await?;
                            for event in events.iter().filter(|event| subscriber.owes(event)) {
                                Self::insert_delivery(&mut tx, event, &subscriber.id, &event.payload(), now)
                                    .await?;
                            }
                        }
                    }
                    let changed = ::sqlx::query(sql::UPDATE_ENDPOINT)
                        .bind(merchant_id)
                        .bind(id)
                        .bind(&update.url)
                        .bind(update.events.as_ref().map(::sqlx::types::Json))
                        .bind(&update.description)
                        .bind(update.enabled)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    self.commit(tx).await?;
                    self.webhook_after_change(changed, merchant_id, id).await
                })
            }

            async fn delete_webhook(&self, merchant_id: &str, id: &str) -> super::StoreResult<()> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("id", &id)])?;
                let deleted = ::sqlx::query(super::webhooks::sql::DELETE_ENDPOINT)
                    .bind(merchant_id)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    return Err(super::StoreError::NotFound(format!("webhook {id}")));
                }
                Ok(())
            }

            async fn rotate_webhook_secret(
                &self,
                merchant_id: &str,
                id: &str,
                secret: &str,
                previous_expires_at: ::chrono::DateTime<::chrono::Utc>,
            ) -> super::StoreResult<super::WebhookEndpoint> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("id", &id), ("secret", &secret)])?;
                let changed = ::sqlx::query(super::webhooks::sql::ROTATE_SECRET)
                    .bind(merchant_id)
                    .bind(id)
                    .bind(secret)
                    .bind(previous_expires_at)
                    .bind(::chrono::Utc::now())
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                self.webhook_after_change(changed, merchant_id, id).await
            }

            async fn fan_out_events(
                &self,
                limit: u32,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> super::StoreResult<u64> {
                $crate::store::retry::retry_before_commit!({
                    use super::webhooks::{PendingEvent, Subscriber, sql};
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    let events = ::sqlx::query_as::<_, PendingEvent>(Self::PENDING_EVENTS)
                        .bind(i64::from(limit))
                        .fetch_all(&mut *tx)
                        .await?;
                    // Per merchant, read at its first (lowest) event of the batch.
                    let mut subscribers: ::std::collections::HashMap<String, Vec<Subscriber>> =
                        ::std::collections::HashMap::new();
                    for event in &events {
                        if !subscribers.contains_key(&event.merchant_id) {
                            let rows = ::sqlx::query_as::<_, Subscriber>(sql::MERCHANT_SUBSCRIBERS)
                                .bind(&event.merchant_id)
                                .bind(event.seq)
                                .fetch_all(&mut *tx)
                                .await?;
                            subscribers.insert(event.merchant_id.clone(), rows);
                        }
                        let wanting = subscribers[&event.merchant_id]
                            .iter()
                            .filter(|endpoint| endpoint.owes(event));
                        let mut payload = None;
                        for endpoint in wanting {
                            let body = payload.get_or_insert_with(|| event.payload());
                            Self::insert_delivery(&mut tx, event, &endpoint.id, body, now).await?;
                        }
                        ::sqlx::query(sql::MARK_FANNED_OUT)
                            .bind(event.seq)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    self.commit(tx).await?;
                    Ok(u64::try_from(events.len()).unwrap_or(u64::MAX))
                })
            }

            async fn enqueue_delivery(
                &self,
                merchant_id: &str,
                endpoint_id: &str,
                event_type: &str,
                data: &::serde_json::Value,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> super::StoreResult<super::WebhookDelivery> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("endpointId", &endpoint_id), ("eventType", &event_type), ("data", data)])?;
                use super::webhooks::{DeliveryRow, PendingEvent, sql};
                let event = PendingEvent {
                    seq: 0,
                    id: ::mindshop_wire::ids::new_id("evt"),
                    merchant_id: merchant_id.to_owned(),
                    event_type: event_type.to_owned(),
                    data: ::sqlx::types::Json(data.clone()),
                    created_at: now,
                };
                let id = ::mindshop_wire::ids::new_id("whd");
                ::sqlx::query(sql::INSERT_DELIVERY)
                    .bind(&id)
                    .bind(endpoint_id)
                    .bind(merchant_id)
                    .bind(&event.id)
                    .bind(event_type)
                    .bind(event.payload())
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| super::classify(e, &format!("delivery {id}"), &format!("webhook {endpoint_id}")))?;
                let row = ::sqlx::query_as::<_, DeliveryRow>(sql::GET_DELIVERY)
                    .bind(merchant_id)
                    .bind(endpoint_id)
                    .bind(&id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.with_attempts(Vec::new()))
            }

            async fn claim_deliveries(
                &self,
                limit: u32,
                now: ::chrono::DateTime<::chrono::Utc>,
                claim_until: ::chrono::DateTime<::chrono::Utc>,
            ) -> super::StoreResult<Vec<super::ClaimedDelivery>> {
                self.claim_due_deliveries(limit, now, claim_until).await
            }

            async fn record_attempts(
                &self,
                attempts: &[(super::AttemptRecord, super::FailurePolicy)],
            ) -> super::StoreResult<Vec<bool>> {
                $crate::store::retry::retry_before_commit!({
                    super::text::refuse_nul(&[("attempts", &attempts)])?;
                    use super::webhooks::sql;
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    let mut still_enabled = Vec::with_capacity(attempts.len());
                    for (record, policy) in attempts {
                        let attempt = &record.attempt;
                        ::sqlx::query(sql::INSERT_ATTEMPT)
                            .bind(::mindshop_wire::ids::new_id("wha"))
                            .bind(&record.delivery_id)
                            .bind(attempt.attempted_at)
                            .bind(attempt.status_code)
                            .bind(attempt.duration_ms)
                            .bind(&attempt.error)
                            .bind(&attempt.response_excerpt)
                            .execute(&mut *tx)
                            .await?;
                        let enabled = match &record.next {
                            super::AttemptNext::Delivered => {
                                ::sqlx::query(sql::DELIVERED)
                                    .bind(&record.delivery_id)
                                    .bind(attempt.attempted_at)
                                    .execute(&mut *tx)
                                    .await?;
                                ::sqlx::query(sql::ENDPOINT_SUCCEEDED)
                                    .bind(&record.endpoint_id)
                                    .execute(&mut *tx)
                                    .await?;
                                true
                            }
                            next => {
                                match next {
                                    super::AttemptNext::RetryAt(at) => {
                                        ::sqlx::query(sql::RETRY_LATER)
                                            .bind(&record.delivery_id)
                                            .bind(*at)
                                            .bind(&attempt.error)
                                            .execute(&mut *tx)
                                            .await?;
                                    }
                                    _ => {
                                        ::sqlx::query(sql::GIVE_UP)
                                            .bind(&record.delivery_id)
                                            .bind(&attempt.error)
                                            .execute(&mut *tx)
                                            .await?;
                                    }
                                }
                                let limit =
                                    i32::try_from(policy.max_consecutive_failures).unwrap_or(i32::MAX);
                                ::sqlx::query_scalar::<_, bool>(sql::ENDPOINT_FAILED)
                                    .bind(&record.endpoint_id)
                                    .bind(&policy.disable_now)
                                    .bind(limit)
                                    .bind(format!("disabled after {limit} consecutive failed attempts"))
                                    .fetch_optional(&mut *tx)
                                    .await?
                                    .unwrap_or(false)
                            }
                        };
                        still_enabled.push(enabled);
                    }
                    self.commit(tx).await?;
                    Ok(still_enabled)
                })
            }

            async fn list_deliveries(
                &self,
                merchant_id: &str,
                endpoint_id: &str,
                after: Option<&super::PageKey>,
                limit: u32,
            ) -> super::StoreResult<Vec<super::WebhookDelivery>> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("endpointId", &endpoint_id), ("cursor", &after)])?;
                use super::webhooks::{DeliveryRow, sql};
                let limit = i64::from(limit);
                let rows = match after {
                    None => ::sqlx::query_as::<_, DeliveryRow>(sql::LIST_DELIVERIES_FIRST)
                        .bind(merchant_id)
                        .bind(endpoint_id)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?,
                    Some(key) => ::sqlx::query_as::<_, DeliveryRow>(sql::LIST_DELIVERIES_AFTER)
                        .bind(merchant_id)
                        .bind(endpoint_id)
                        .bind(key.created_at)
                        .bind(&key.id)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?,
                };
                let mut deliveries = Vec::with_capacity(rows.len());
                for row in rows {
                    deliveries.push(self.delivery_with_attempts(row).await?);
                }
                Ok(deliveries)
            }

            async fn retry_delivery(
                &self,
                merchant_id: &str,
                endpoint_id: &str,
                id: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> super::StoreResult<super::WebhookDelivery> {
                super::text::refuse_nul(&[("merchantId", &merchant_id), ("endpointId", &endpoint_id), ("id", &id)])?;
                use super::webhooks::{DeliveryRow, sql};
                let changed = ::sqlx::query(sql::RETRY_NOW)
                    .bind(merchant_id)
                    .bind(endpoint_id)
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if changed == 0 {
                    return Err(super::StoreError::NotFound(format!("delivery {id}")));
                }
                let row = ::sqlx::query_as::<_, DeliveryRow>(sql::GET_DELIVERY)
                    .bind(merchant_id)
                    .bind(endpoint_id)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                self.delivery_with_attempts(row).await
            }

            async fn webhook_backlog(&self) -> super::StoreResult<i64> {
                Ok(::sqlx::query_scalar::<_, i64>(super::webhooks::sql::BACKLOG)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn count_products(&self, merchant_id: &str) -> super::StoreResult<i64> {
                super::text::refuse_nul(&[("merchantId", &merchant_id)])?;
                Ok(
                    ::sqlx::query_scalar::<_, i64>(super::catalog::sql::COUNT_PRODUCTS)
                        .bind(merchant_id)
                        .fetch_one(&self.pool)
                        .await?,
                )
            }
        }

        impl $store {
            /// The endpoint after a write that `changed` rows of; absent when none.
            async fn webhook_after_change(
                &self,
                changed: u64,
                merchant_id: &str,
                id: &str,
            ) -> super::StoreResult<super::WebhookEndpoint> {
                let missing = || super::StoreError::NotFound(format!("webhook {id}"));
                if changed == 0 {
                    return Err(missing());
                }
                super::Store::get_webhook(self, merchant_id, id)
                    .await?
                    .ok_or_else(missing)
            }

            /// A delivery with its attempts, oldest first.
            async fn delivery_with_attempts(
                &self,
                row: super::webhooks::DeliveryRow,
            ) -> super::StoreResult<super::WebhookDelivery> {
                let attempts =
                    ::sqlx::query_as::<_, super::WebhookAttempt>(super::webhooks::sql::ATTEMPTS_OF)
                        .bind(&row.id)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(row.with_attempts(attempts))
            }

            /// [`super::StoreError::DomainTaken`] for the first of `entries` that merchant `id`
            /// does not list yet and that overlaps another merchant's domain. Domains it lists
            /// already are not judged again, so that an overlap an admin made does not block
            /// the merchant's other changes.
            async fn refuse_taken_domains(
                tx: &mut ::sqlx::Transaction<'_, <Self as super::portable::HasDb>::Db>,
                id: &str,
                entries: &[String],
            ) -> super::StoreResult<()> {
                use super::merchant_domains as domains;
                let current: Vec<String> = ::sqlx::query_scalar(domains::sql::OF_MERCHANT)
                    .bind(id)
                    .fetch_all(&mut **tx)
                    .await?;
                let added: Vec<String> = entries
                    .iter()
                    .filter(|entry| !current.contains(entry))
                    .cloned()
                    .collect();
                let Some(query) = domains::overlaps_sql(&added) else {
                    return Ok(());
                };
                let mut select =
                    ::sqlx::query_scalar::<_, String>(::sqlx::AssertSqlSafe(query.sql)).bind(id);
                for value in query.exact.iter().chain(&query.patterns) {
                    select = select.bind(value);
                }
                let others = select.fetch_all(&mut **tx).await?;
                for domain in &added {
                    if let Some(overlap) = others.iter().find_map(|o| domains::overlap(domain, o)) {
                        return Err(super::StoreError::DomainTaken {
                            domain: domain.clone(),
                            overlap,
                        });
                    }
                }
                Ok(())
            }

            /// A delivery of `event` to one endpoint (once: a second is ignored), inside the
            /// caller's transaction.
            async fn insert_delivery(
                tx: &mut ::sqlx::Transaction<'_, <Self as super::portable::HasDb>::Db>,
                event: &super::webhooks::PendingEvent,
                endpoint_id: &str,
                payload: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> super::StoreResult<()> {
                ::sqlx::query(super::webhooks::sql::INSERT_DELIVERY)
                    .bind(::mindshop_wire::ids::new_id("whd"))
                    .bind(endpoint_id)
                    .bind(&event.merchant_id)
                    .bind(&event.id)
                    .bind(&event.event_type)
                    .bind(payload)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Writes `event` to the outbox inside the caller's transaction.
            async fn insert_event(
                tx: &mut ::sqlx::Transaction<'_, <Self as super::portable::HasDb>::Db>,
                event: &super::NewEvent<'_>,
            ) -> super::StoreResult<()> {
                ::sqlx::query(super::catalog::sql::INSERT_EVENT)
                    .bind(::mindshop_wire::ids::new_id("evt"))
                    .bind(event.merchant_id)
                    .bind(event.event_type)
                    .bind(::sqlx::types::Json(&event.data))
                    .bind(::chrono::Utc::now())
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }
    };
}

pub(super) use portable_store_impl;

/// A batch of products keyed by SKU (the last row of each SKU).
pub(super) type Batch<'a> = ::std::collections::HashMap<&'a str, &'a super::catalog::ProductRecord>;

/// The sqlx database a store type runs on, so shared code can name its transactions.
pub(super) trait HasDb {
    type Db: ::sqlx::Database;
}
