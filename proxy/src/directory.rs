//! What the edge needs to know about credentials and merchants, and the cache in front of it.
//!
//! [`Directory`] is implemented by the binary over the store, so this crate does not depend on
//! the backend. [`CachedDirectory`] answers from memory for `auth.key_cache_ttl_secs`: a
//! revoked key, a changed permission or a changed allowed domain takes effect at every edge
//! within that bound (a bounded TTL rather than pub/sub: nothing to lose when a message is
//! missed, and the bound holds with or without Redis). Concurrent misses for the same entry
//! share one lookup.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mindshop_wire::identity::{EncodedIdentity, Identity};
use moka::future::Cache;

/// An API key as the edge sees it, with its merchant's CORS and plan data.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedKey {
    pub key_id: String,
    pub merchant_id: String,
    pub permissions: Vec<String>,
    pub revoked: bool,
    /// The merchant's allowed domains, normalized.
    pub allowed_domains: Vec<String>,
    pub plan: String,
}

/// A resolved key with the identity every request made with it forwards, encoded once when
/// the key is cached.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownKey {
    pub key: ResolvedKey,
    pub identity: Arc<EncodedIdentity>,
}

impl KnownKey {
    fn new(key: ResolvedKey) -> Result<Self, DirectoryError> {
        let identity = EncodedIdentity::new(Identity {
            merchant: Some(key.merchant_id.clone()),
            principal: format!("key:{}", key.key_id),
            permissions: key.permissions.clone(),
            roles: Vec::new(),
        })
        // Merchant and key ids are checked when they are created; this is a corrupt row.
        .map_err(|_| DirectoryError(format!("key {} cannot be forwarded", key.key_id)))?;
        Ok(Self {
            key,
            identity: Arc::new(identity),
        })
    }
}

/// A lookup failed (the database is unreachable, …); the request gets 503.
#[derive(Debug, thiserror::Error)]
#[error("directory lookup failed: {0}")]
pub struct DirectoryError(pub String);

#[async_trait]
pub trait Directory: Send + Sync {
    /// The key whose SHA-256 (hex) is `key_hash`, revoked or not.
    async fn api_key(&self, key_hash: &str) -> Result<Option<ResolvedKey>, DirectoryError>;
    /// Whether some merchant's allowed domains admit `host` (itself or a parent domain).
    async fn any_merchant_allows_host(&self, host: &str) -> Result<bool, DirectoryError>;
}

/// [`Directory`] answers cached for a bounded time.
pub struct CachedDirectory {
    inner: Arc<dyn Directory>,
    keys: Cache<String, Option<Arc<KnownKey>>>,
    hosts: Cache<String, bool>,
}

impl std::fmt::Debug for CachedDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedDirectory")
            .field("keys", &self.keys.entry_count())
            .field("hosts", &self.hosts.entry_count())
            .finish()
    }
}

impl CachedDirectory {
    /// Caches up to 100,000 keys and 100,000 hosts, each for `ttl`.
    pub fn new(inner: Arc<dyn Directory>, ttl: Duration) -> Self {
        Self {
            inner,
            keys: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            hosts: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The key for `key_hash`; unknown keys are cached too, so guessing costs no database trip.
    pub async fn api_key(&self, key_hash: &str) -> Result<Option<Arc<KnownKey>>, DirectoryError> {
        self.keys
            .try_get_with_by_ref(key_hash, async {
                let key = self.inner.api_key(key_hash).await?;
                Ok(key.map(KnownKey::new).transpose()?.map(Arc::new))
            })
            .await
            .map_err(|e: Arc<DirectoryError>| DirectoryError(e.0.clone()))
    }

    pub async fn any_merchant_allows_host(&self, host: &str) -> Result<bool, DirectoryError> {
        self.hosts
            .try_get_with_by_ref(host, self.inner.any_merchant_allows_host(host))
            .await
            .map_err(|e: Arc<DirectoryError>| DirectoryError(e.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Default)]
    struct Counting {
        lookups: AtomicUsize,
        revoked: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl Directory for Counting {
        async fn api_key(&self, key_hash: &str) -> Result<Option<ResolvedKey>, DirectoryError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            Ok((key_hash == "known").then(|| ResolvedKey {
                key_id: "key_1".into(),
                merchant_id: "acme".into(),
                permissions: vec!["*".into()],
                revoked: self.revoked.load(Ordering::SeqCst),
                allowed_domains: vec![],
                plan: "free".into(),
            }))
        }

        async fn any_merchant_allows_host(&self, _host: &str) -> Result<bool, DirectoryError> {
            Err(DirectoryError("database down".into()))
        }
    }

    #[tokio::test]
    async fn lookups_are_cached_until_the_ttl_then_refreshed() {
        let inner = Arc::new(Counting::default());
        let directory = CachedDirectory::new(inner.clone(), Duration::from_millis(200));
        let known = directory.api_key("known").await.unwrap().unwrap();
        assert!(!known.key.revoked);
        assert_eq!(known.identity.identity().principal, "key:key_1");
        assert!(directory.api_key("unknown").await.unwrap().is_none());
        directory.api_key("known").await.unwrap();
        directory.api_key("unknown").await.unwrap();
        assert_eq!(
            inner.lookups.load(Ordering::SeqCst),
            2,
            "hits and misses are cached"
        );

        inner.revoked.store(true, Ordering::SeqCst);
        // moka's clock is real time; a short TTL keeps this test quick.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            directory
                .api_key("known")
                .await
                .unwrap()
                .unwrap()
                .key
                .revoked
        );
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let directory = CachedDirectory::new(Arc::new(Counting::default()), Duration::from_secs(5));
        assert!(
            directory
                .any_merchant_allows_host("acme.com")
                .await
                .is_err()
        );
        assert!(
            directory
                .any_merchant_allows_host("acme.com")
                .await
                .is_err()
        );
    }
}
