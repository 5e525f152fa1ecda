//! The edge's [`Directory`] over the store: API keys with their merchant, and merchant domains.
//!
//! The store is opened on first use, inside the edge's own runtime: PostgreSQL connections
//! belong to the runtime that opened them.

use std::sync::Arc;

use async_trait::async_trait;
use mindshop_backend::store::{self, Store};
use mindshop_config::DatabaseConfig;
use mindshop_proxy::{Directory, DirectoryError, ResolvedKey};
use tokio::sync::OnceCell;

pub struct StoreDirectory {
    database: DatabaseConfig,
    store: OnceCell<Arc<dyn Store>>,
}

impl StoreDirectory {
    pub fn new(database: DatabaseConfig) -> Self {
        Self {
            database,
            store: OnceCell::new(),
        }
    }

    async fn store(&self) -> Result<&Arc<dyn Store>, DirectoryError> {
        self.store
            .get_or_try_init(|| store::open(&self.database))
            .await
            .map_err(failed)
    }
}

fn failed(error: store::StoreError) -> DirectoryError {
    DirectoryError(error.to_string())
}

#[async_trait]
impl Directory for StoreDirectory {
    async fn api_key(&self, key_hash: &str) -> Result<Option<ResolvedKey>, DirectoryError> {
        let store = self.store().await?;
        let Some(key) = store.find_api_key_by_hash(key_hash).await.map_err(failed)? else {
            return Ok(None);
        };
        // A key's merchant always exists (foreign key); a missing one reads as no key.
        let Some(merchant) = store.get_merchant(&key.merchant_id).await.map_err(failed)? else {
            return Ok(None);
        };
        Ok(Some(ResolvedKey {
            revoked: key.revoked_at.is_some(),
            key_id: key.id,
            merchant_id: key.merchant_id,
            permissions: key.permissions,
            allowed_domains: merchant.allowed_domains,
            plan: merchant.plan,
        }))
    }

    async fn any_merchant_allows_host(&self, host: &str) -> Result<bool, DirectoryError> {
        self.store()
            .await?
            .any_merchant_allows_host(host)
            .await
            .map_err(failed)
    }
}
