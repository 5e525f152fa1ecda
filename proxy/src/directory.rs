//! What the edge needs to know about credentials and merchants, and the cache in front of it.
//!
//! [`Directory`] is implemented by the binary over the store, so this crate does not depend on
//! the backend. [`CachedDirectory`] answers from memory for `auth.key_cache_ttl_secs`: a
//! revoked key, a changed permission or a changed allowed domain takes effect at every edge
//! within that bound (a bounded TTL rather than pub/sub: nothing to lose when a message is
//! missed, and the bound holds with or without Redis). Concurrent misses for the same entry
//! share one lookup.
//!
//! Every API-key request reads the key cache, so it is `quick_cache`'s: a hit is one read lock
//! on a shard and a clone of an `Arc`, with no bookkeeping behind it (`moka`, used before,
//! spent about 2 µs of edge CPU per request on its read log and housekeeping). Entries carry
//! the time they were looked up; an entry older than the TTL is looked up again, by one request
//! while the others wait for its answer.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mindshop_wire::api_key;
use mindshop_wire::identity::{EncodedIdentity, Identity};
use quick_cache::Equivalent;
use quick_cache::sync::{Cache, EntryAction, EntryResult};

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
    /// `auth.key_cache_ttl_secs` in milliseconds; a reload may change it (see
    /// [`CachedDirectory::set_ttl`]).
    ttl_ms: AtomicU64,
    /// By the key's SHA-256: the plaintext is never kept, and a lookup needs no hex.
    keys: Cache<[u8; 32], Looked<Option<Arc<KnownKey>>>>,
    hosts: Cache<String, Looked<bool>>,
}

/// An answer of the directory and when it was looked up.
#[derive(Debug, Clone)]
struct Looked<V> {
    value: V,
    at: Instant,
}

impl std::fmt::Debug for CachedDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedDirectory")
            .field("ttl", &self.ttl())
            .field("keys", &self.keys.len())
            .field("hosts", &self.hosts.len())
            .finish()
    }
}

impl CachedDirectory {
    /// Caches about 100,000 keys and 100,000 hosts, each for `ttl`.
    pub fn new(inner: Arc<dyn Directory>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl_ms: AtomicU64::new(millis(ttl)),
            keys: Cache::new(100_000),
            hosts: Cache::new(100_000),
        }
    }

    /// How long an answer is reused from now on, entries already cached included.
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms.store(millis(ttl), Ordering::Relaxed);
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    /// The key `plaintext` names; unknown keys are cached too, so guessing costs no database
    /// trip. The lookup is by SHA-256 of the key: the database compares hashes, so response
    /// times reveal nothing about the key itself.
    pub async fn api_key(&self, plaintext: &str) -> Result<Option<Arc<KnownKey>>, DirectoryError> {
        let digest = api_key::digest(plaintext);
        cached(&self.keys, &digest, self.ttl(), async {
            let key = self.inner.api_key(&api_key::hash_of(&digest)).await?;
            Ok(key.map(KnownKey::new).transpose()?.map(Arc::new))
        })
        .await
    }

    pub async fn any_merchant_allows_host(&self, host: &str) -> Result<bool, DirectoryError> {
        let load = self.inner.any_merchant_allows_host(host);
        cached(&self.hosts, host, self.ttl(), load).await
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The answer for `key` from `cache` if it is younger than `ttl`, else from `load` (cached
/// unless it failed). Requests that find the same key missing or stale while it loads wait
/// for that one load.
async fn cached<K, Q, V>(
    cache: &Cache<K, Looked<V>>,
    key: &Q,
    ttl: Duration,
    load: impl Future<Output = Result<V, DirectoryError>>,
) -> Result<V, DirectoryError>
where
    K: Eq + Hash,
    Q: Hash + Equivalent<K> + ToOwned<Owned = K> + ?Sized,
    V: Clone,
{
    let fresh = |looked: &Looked<V>| looked.at.elapsed() < ttl;
    // A hit: one read lock.
    if let Some(looked) = cache.get(key)
        && fresh(&looked)
    {
        return Ok(looked.value);
    }
    let entry = cache
        .entry_async(key, |_, looked| {
            if fresh(looked) {
                EntryAction::Retain(looked.value.clone())
            } else {
                EntryAction::ReplaceWithGuard
            }
        })
        .await;
    let guard = match entry {
        EntryResult::Retained(value) => return Ok(value),
        EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => guard,
        // Neither is asked for here (no `Remove`, no timeout): answer without caching.
        EntryResult::Removed(..) | EntryResult::Timeout => return load.await,
    };
    // A failed load drops the guard: nothing is cached, and the next request tries again.
    let value = load.await?;
    let _ = guard.insert(Looked {
        value: value.clone(),
        at: Instant::now(),
    });
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Default)]
    struct Counting {
        lookups: AtomicUsize,
        revoked: std::sync::atomic::AtomicBool,
        /// How long each lookup takes.
        latency: Duration,
    }

    #[async_trait]
    impl Directory for Counting {
        async fn api_key(&self, key_hash: &str) -> Result<Option<ResolvedKey>, DirectoryError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.latency).await;
            Ok((key_hash == api_key::hash("known")).then(|| ResolvedKey {
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
        // The cache's clock is real time; a short TTL keeps this test quick.
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
    async fn requests_that_miss_together_share_one_lookup() {
        let inner = Arc::new(Counting {
            latency: Duration::from_millis(100),
            ..Counting::default()
        });
        let directory = Arc::new(CachedDirectory::new(inner.clone(), Duration::from_secs(5)));
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let directory = directory.clone();
            requests.spawn(async move { directory.api_key("known").await });
        }
        while let Some(answer) = requests.join_next().await {
            let known = answer.unwrap().unwrap().unwrap();
            assert_eq!(known.key.key_id, "key_1");
        }
        assert_eq!(inner.lookups.load(Ordering::SeqCst), 1);
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
