//! [`WindowMap`]: a value per key for the key's current window, the state both stores keep in
//! process (the in-process store's counters, the Redis store's leases).
//!
//! Every edge request passes here, so the map is split into shards chosen by the key's hash:
//! two requests contend only when their keys land in the same shard, and a shard's lock is held
//! for one hash-map lookup. Updating a key already in the map allocates nothing; a new key
//! costs one boxed copy of its text.
//!
//! Memory stays bounded by the keys active within one window: a shard drops the entries whose
//! window has passed whenever it is touched at or after the earliest end it holds (so at most
//! once per second per shard), and each such pass also sweeps one other shard in turn, so a
//! flood of distinct keys is forgotten once it stops. [`WindowMap::prune_expired`] sweeps
//! everything at once for callers that want a periodic sweep.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use super::Window;

/// Number of shards: enough that the edge's worker threads rarely meet on one lock.
pub(crate) const SHARDS: usize = 64;

/// A `V` per key, for the key's current window; a key's value starts from `V::default()` in
/// each window.
pub(crate) struct WindowMap<V> {
    /// Picks a key's shard; separate from the maps' own hashers so that keys sharing a shard
    /// are still spread over their map's buckets.
    shard_hasher: RandomState,
    shards: Box<[Mutex<Shard<V>>]>,
    /// The next shard a prune pass sweeps besides its own.
    sweep_cursor: AtomicUsize,
}

/// One shard of the map.
struct Shard<V> {
    entries: HashMap<Box<str>, Entry<V>>,
    /// No entry here ends before this second (`u64::MAX` when empty): until then a prune
    /// pass would find nothing, so it is skipped.
    earliest_end: u64,
}

/// A key's value and the window it belongs to.
struct Entry<V> {
    window_start: u64,
    window_end: u64,
    value: V,
}

impl<V: Default> WindowMap<V> {
    pub(crate) fn new() -> Self {
        Self {
            shard_hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            sweep_cursor: AtomicUsize::new(0),
        }
    }

    /// Runs `f` on `key`'s value for `window`. A key new to the window (or seen last in another
    /// window: a later one, or an earlier one after the clock was set back) starts afresh.
    pub(crate) fn update<R>(&self, key: &str, window: Window, f: impl FnOnce(&mut V) -> R) -> R {
        let index = self.shard_index(key);
        let (result, pruned) = {
            let mut shard = lock(&self.shards[index]);
            let result = shard.update(key, window, f);
            (result, shard.prune_if_due(window.now))
        };
        if pruned {
            self.sweep_one_other(index, window.now);
        }
        result
    }

    /// Runs `f` on `key`'s value if the map holds one for `window`; `None` (and nothing
    /// changed) if it holds none, or one of another window.
    pub(crate) fn update_existing<R>(
        &self,
        key: &str,
        window: Window,
        f: impl FnOnce(&mut V) -> R,
    ) -> Option<R> {
        let mut shard = lock(&self.shards[self.shard_index(key)]);
        shard
            .entries
            .get_mut(key)
            .filter(|entry| entry.window_start == window.start)
            .map(|entry| f(&mut entry.value))
    }

    /// Drops every entry whose window ended at or before `now` (Unix seconds), in all shards.
    pub(crate) fn prune_expired(&self, now: u64) {
        for shard in self.shards.iter() {
            lock(shard).prune_if_due(now);
        }
    }

    /// How many keys have an entry (expired ones included until pruned).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).entries.len()).sum()
    }

    fn shard_index(&self, key: &str) -> usize {
        // Truncating the hash is fine: only its spread matters.
        (self.shard_hasher.hash_one(key) as usize) % SHARDS
    }

    /// Prunes the next shard in turn unless it is busy (then the next pass will get to it).
    fn sweep_one_other(&self, own: usize, now: u64) {
        let index = self.sweep_cursor.fetch_add(1, Ordering::Relaxed) % SHARDS;
        if index == own {
            return;
        }
        let mut shard = match self.shards[index].try_lock() {
            Ok(shard) => shard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        shard.prune_if_due(now);
    }
}

/// Locks a shard. Callers change a value with plain stores and no code that can panic midway,
/// so a poisoned lock is used as is rather than failing every later request.
fn lock<V>(shard: &Mutex<Shard<V>>) -> MutexGuard<'_, Shard<V>> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<V: Default> Shard<V> {
    fn new() -> Self {
        Self {
            entries: HashMap::new(),
            earliest_end: u64::MAX,
        }
    }

    /// Runs `f` on `key`'s value for `window`, started afresh if it held another window's.
    fn update<R>(&mut self, key: &str, window: Window, f: impl FnOnce(&mut V) -> R) -> R {
        let fresh = || Entry {
            window_start: window.start,
            window_end: window.end,
            value: V::default(),
        };
        if let Some(entry) = self.entries.get_mut(key) {
            if entry.window_start != window.start {
                // A new window (or a clock set back): the same entry starts again, no
                // allocation.
                *entry = fresh();
                self.earliest_end = self.earliest_end.min(window.end);
            }
            return f(&mut entry.value);
        }
        self.earliest_end = self.earliest_end.min(window.end);
        f(&mut self.entries.entry(key.into()).or_insert_with(fresh).value)
    }

    /// Drops the entries whose window ended at or before `now`, if any can have; says whether
    /// it looked.
    fn prune_if_due(&mut self, now: u64) -> bool {
        if now < self.earliest_end {
            return false;
        }
        self.entries.retain(|_, entry| entry.window_end > now);
        self.earliest_end = self
            .entries
            .values()
            .map(|entry| entry.window_end)
            .min()
            .unwrap_or(u64::MAX);
        // A map keeps its capacity when emptied; give a flood's worth of memory back.
        if self.entries.capacity() > 4 * self.entries.len().max(16) {
            self.entries.shrink_to_fit();
        }
        true
    }
}
