//! The search indexer: keeps the database's product search index up to date in the background.
//!
//! Imports write products without indexing them (indexing each row as it is written halved
//! import speed); the import notes which rows are new or changed, in its own transaction (a
//! queue on SQLite, `products.search_pending` on PostgreSQL). Every backend runs this loop, which takes
//! those rows off in batches, each in its own transaction; on PostgreSQL several backends share
//! the work without waiting for each other.
//!
//! How fresh search is: while this process imports, the indexer waits (imports keep the
//! database's writer and the CPU for themselves), taking one batch every 5 seconds of a long
//! import; once an import finishes, it is woken and drains what is left as fast as the database
//! indexes. A product is therefore searchable the backlog's indexing time after its import ends
//! (about 10 µs a product on SQLite: about a second for a 100,000-product first import).
//! `mindshop_search_index_backlog` shows what still waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{IntCounter, IntGauge, register_int_counter, register_int_gauge};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::store::{Store, StoreResult};

/// Products indexed per transaction.
pub const BATCH: u32 = 2000;
/// Products indexed in one pass after which the planner's statistics are refreshed.
pub const REFRESH_AFTER: u64 = 10_000;
/// Longest the indexer leaves the index alone while this process imports.
pub const MAX_DEFER: Duration = Duration::from_secs(5);

struct SearchMetrics {
    indexed: IntCounter,
    backlog: IntGauge,
}

static METRICS: LazyLock<SearchMetrics> = LazyLock::new(|| SearchMetrics {
    indexed: register_int_counter!(
        "mindshop_search_indexed_products_total",
        "Products (re)indexed for search by this process's indexer."
    )
    .expect("metric names are valid and registered once"),
    backlog: register_int_gauge!(
        "mindshop_search_index_backlog",
        "Products written but not yet searchable, as last seen by this process's indexer."
    )
    .expect("metric names are valid and registered once"),
});

/// When this process last wrote an import batch (ms since the epoch), and a wake-up for when an
/// import finishes. Process-wide, like the metrics: every import and the indexer of this
/// process share it.
struct ImportActivity {
    last_write_ms: AtomicU64,
    finished: Notify,
}

static IMPORTS: LazyLock<ImportActivity> = LazyLock::new(|| ImportActivity {
    last_write_ms: AtomicU64::new(0),
    finished: Notify::new(),
});

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// An import of this process has written a batch of products.
pub fn note_import_write() {
    IMPORTS.last_write_ms.store(now_ms(), Ordering::Relaxed);
}

/// An import of this process has finished: index what it wrote.
pub fn note_import_finished() {
    // Another import still going marks itself again with its next batch.
    IMPORTS.last_write_ms.store(0, Ordering::Relaxed);
    IMPORTS.finished.notify_one();
}

/// The indexing loop of one backend.
#[derive(Debug)]
pub struct Indexer {
    store: Arc<dyn Store>,
    interval: Duration,
    /// When this indexer last indexed a batch (ms since the epoch).
    last_batch_ms: AtomicU64,
}

impl Indexer {
    pub fn new(store: Arc<dyn Store>, interval: Duration) -> Self {
        Self {
            store,
            interval,
            last_batch_ms: AtomicU64::new(0),
        }
    }

    /// Runs until the task is aborted.
    pub fn spawn(self: Arc<Self>) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(error) = self.pass().await {
                    tracing::warn!(%error, "search indexing failed; retrying");
                }
                tokio::select! {
                    () = IMPORTS.finished.notified() => {}
                    () = tokio::time::sleep(self.interval) => {}
                }
            }
        })
    }

    /// One pass: batches until none wait. While this process imports, nothing, unless the
    /// last batch is [`MAX_DEFER`] old; then a single batch (so a long import still becomes
    /// searchable as it goes). Returns how many products it indexed.
    pub async fn pass(&self) -> StoreResult<u64> {
        if self.importing()
            && now_ms().saturating_sub(self.last_batch_ms.load(Ordering::Relaxed))
                < u64::try_from(MAX_DEFER.as_millis()).unwrap_or(u64::MAX)
        {
            return Ok(0);
        }
        self.last_batch_ms.store(now_ms(), Ordering::Relaxed);
        let mut total = 0;
        loop {
            let indexed = self.store.index_products(BATCH).await?;
            total += indexed;
            METRICS.indexed.inc_by(indexed);
            if indexed < u64::from(BATCH) || self.importing() {
                break;
            }
        }
        if total > 0 {
            self.store.settle_search_index().await?;
        }
        if total >= REFRESH_AFTER {
            self.store.refresh_search_statistics().await?;
        }
        METRICS.backlog.set(self.store.search_backlog().await?);
        Ok(total)
    }

    fn importing(&self) -> bool {
        let interval = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        now_ms().saturating_sub(IMPORTS.last_write_ms.load(Ordering::Relaxed)) < interval
    }
}
