//! [`MemoryLimiter`]: the in-process store of the embedded mode (`mindshop serve`, one edge).
//!
//! A count per key for the key's current window, in a [`WindowMap`]: sharded so that requests
//! contend only when their keys share a shard, and pruned as windows pass, so memory stays
//! bounded by the keys active within one window.

use std::fmt;
use std::sync::Arc;

use super::windows::WindowMap;
use super::{Clock, LimiterError, Quota, RateDecision, RateLimiter, SystemClock, Window};

/// Counts requests per key in this process. Edges that run apart need [`super::RedisLimiter`]
/// instead: each process would otherwise grant the whole budget on its own.
pub struct MemoryLimiter {
    clock: Arc<dyn Clock>,
    /// Requests counted in each key's current window.
    counts: WindowMap<u32>,
}

impl MemoryLimiter {
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A limiter that reads the time from `clock` (a [`super::ManualClock`] in tests).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            counts: WindowMap::new(),
        }
    }

    /// Counts one request against `key`; the synchronous form of [`RateLimiter::hit`], which
    /// cannot fail (and spares the boxed future of the trait call).
    pub fn record_hit(&self, key: &str, quota: Quota) -> RateDecision {
        let window = Window::containing(self.clock.now(), quota);
        let count = self.counts.update(key, window, |count| {
            *count = count.saturating_add(1);
            *count
        });
        RateDecision::from_count(u64::from(count), quota, window)
    }

    /// The decision `key` would give a request now, without counting it: the synchronous form
    /// of [`RateLimiter::peek_all`].
    pub fn peek(&self, key: &str, quota: Quota) -> RateDecision {
        let window = Window::containing(self.clock.now(), quota);
        let count = self
            .counts
            .update_existing(key, window, |count| *count)
            .unwrap_or(0);
        RateDecision::from_count(u64::from(count) + 1, quota, window)
    }

    /// Drops every counter whose window has passed, in all shards.
    pub fn prune_expired(&self) {
        self.counts
            .prune_expired(super::since_epoch(self.clock.now()).as_secs());
    }

    /// How many keys have a counter in memory (expired ones included until pruned).
    pub fn tracked_keys(&self) -> usize {
        self.counts.len()
    }
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The counters themselves are too many to print and name credentials.
        f.debug_struct("MemoryLimiter")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl RateLimiter for MemoryLimiter {
    async fn hit_all(&self, budgets: &[(&str, Quota)]) -> Result<Vec<RateDecision>, LimiterError> {
        Ok(budgets
            .iter()
            .map(|(key, quota)| self.record_hit(key, *quota))
            .collect())
    }

    async fn peek_all(&self, budgets: &[(&str, Quota)]) -> Result<Vec<RateDecision>, LimiterError> {
        Ok(budgets
            .iter()
            .map(|(key, quota)| self.peek(key, *quota))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::rate_limit::ManualClock;
    use crate::rate_limit::windows::SHARDS;

    /// 20 s into a one-minute window: [1_699_999_980, 1_700_000_040).
    const T0: u64 = 1_700_000_000;
    const WINDOW_END: u64 = 1_700_000_040;

    fn per_minute(limit: u32) -> Quota {
        Quota::new(limit, Duration::from_secs(60))
    }

    fn limiter_at(secs: u64) -> (Arc<ManualClock>, MemoryLimiter) {
        let clock = Arc::new(ManualClock::at_unix_secs(secs));
        let limiter = MemoryLimiter::with_clock(clock.clone());
        (clock, limiter)
    }

    #[test]
    fn the_request_after_the_limit_is_refused_until_the_window_ends() {
        let (_clock, limiter) = limiter_at(T0);
        let quota = per_minute(3);
        let decisions: Vec<_> = (0..5)
            .map(|_| limiter.record_hit("chat:key_1", quota))
            .collect();
        let allowed: Vec<_> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, false, false]);
        let remaining: Vec<_> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [2, 1, 0, 0, 0]);
        for decision in &decisions {
            assert_eq!(decision.limit, 3);
            assert_eq!(decision.reset_unix_secs, WINDOW_END);
            assert_eq!(decision.reset_after_secs, WINDOW_END - T0);
        }
    }

    #[test]
    fn a_new_window_starts_with_the_whole_budget() {
        let (clock, limiter) = limiter_at(T0);
        let quota = per_minute(2);
        limiter.record_hit("k", quota);
        limiter.record_hit("k", quota);
        assert!(!limiter.record_hit("k", quota).allowed);

        // The last millisecond of the window still belongs to it.
        clock.set(std::time::UNIX_EPOCH + Duration::from_millis(WINDOW_END * 1000 - 1));
        let last = limiter.record_hit("k", quota);
        assert!(!last.allowed);
        assert_eq!(last.reset_after_secs, 1, "never 0, even in the last second");

        clock.advance(Duration::from_millis(1));
        let first = limiter.record_hit("k", quota);
        assert_eq!(
            first,
            RateDecision {
                allowed: true,
                limit: 2,
                remaining: 1,
                reset_unix_secs: WINDOW_END + 60,
                reset_after_secs: 60,
            }
        );
    }

    #[test]
    fn windows_are_aligned_to_the_epoch_not_to_the_first_request() {
        let (clock, limiter) = limiter_at(WINDOW_END - 1);
        let quota = per_minute(1);
        assert!(limiter.record_hit("k", quota).allowed);
        // One second later is a new window, though the first request was a second ago.
        clock.advance(Duration::from_secs(1));
        assert!(limiter.record_hit("k", quota).allowed);
        let hour = Quota::new(1, Duration::from_secs(3600));
        let decision = limiter.record_hit("hourly", hour);
        assert_eq!(decision.reset_unix_secs % 3600, 0);
        assert!(decision.reset_unix_secs > WINDOW_END);
        assert!(decision.reset_after_secs <= 3600);
    }

    #[test]
    fn a_peek_tells_the_next_decision_and_counts_nothing() {
        let (_clock, limiter) = limiter_at(T0);
        let quota = per_minute(2);
        let fresh = limiter.peek("push", quota);
        assert!(fresh.allowed);
        assert_eq!(fresh.remaining, 1);
        assert_eq!(limiter.peek("push", quota), fresh, "a peek counts nothing");
        limiter.record_hit("push", quota);
        assert_eq!(limiter.peek("push", quota).remaining, 0);
        assert!(limiter.peek("push", quota).allowed);
        limiter.record_hit("push", quota);
        assert!(!limiter.peek("push", quota).allowed);
        assert!(limiter.peek("other", quota).allowed);
    }

    #[test]
    fn keys_are_independent_budgets() {
        let (_clock, limiter) = limiter_at(T0);
        let quota = per_minute(1);
        assert!(limiter.record_hit("chat:key_a", quota).allowed);
        assert!(!limiter.record_hit("chat:key_a", quota).allowed);
        // Same credential in another group, another credential, keys that only differ
        // in where their ':' falls.
        for key in ["documents:key_a", "chat:key_b", "chat:key_a:", "chat:"] {
            assert!(limiter.record_hit(key, quota).allowed, "{key}");
        }
        assert_eq!(limiter.tracked_keys(), 5);
    }

    #[tokio::test]
    async fn the_trait_counts_like_record_hit() {
        let (_clock, limiter) = limiter_at(T0);
        let limiter: Arc<dyn RateLimiter> = Arc::new(limiter);
        let quota = per_minute(1);
        assert!(limiter.hit("k", quota).await.unwrap().allowed);
        assert!(!limiter.hit("k", quota).await.unwrap().allowed);
    }

    #[test]
    fn counters_of_past_windows_are_dropped() {
        let (clock, limiter) = limiter_at(T0);
        let quota = per_minute(5);
        for i in 0..1_000 {
            limiter.record_hit(&format!("portal:user_{i}"), quota);
        }
        assert_eq!(limiter.tracked_keys(), 1_000);
        clock.advance(Duration::from_secs(60));
        limiter.prune_expired();
        assert_eq!(limiter.tracked_keys(), 0);
    }

    #[test]
    fn a_flood_of_distinct_keys_does_not_grow_memory_across_windows() {
        let (clock, limiter) = limiter_at(T0);
        let quota = Quota::new(5, Duration::from_secs(1));
        let mut most = 0;
        for second in 0..30 {
            for i in 0..500 {
                limiter.record_hit(&format!("widget:ip_{second}_{i}"), quota);
            }
            most = most.max(limiter.tracked_keys());
            clock.advance(Duration::from_secs(1));
        }
        // 15,000 keys were seen; only the previous second's and the current one's may remain.
        assert!(most <= 1_000, "{most} counters kept");
        // After the flood, ordinary traffic on one key sweeps the other shards in turn.
        clock.advance(Duration::from_secs(1));
        for _ in 0..SHARDS {
            limiter.record_hit("chat:steady", quota);
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(limiter.tracked_keys(), 1);
    }

    #[test]
    fn concurrent_hits_never_exceed_the_limit() {
        let (_clock, limiter) = limiter_at(T0);
        let quota = per_minute(50);
        let allowed: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        (0..100)
                            .filter(|_| limiter.record_hit("chat:shared", quota).allowed)
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 50);
    }

    /// Many random sequences of keys, quotas and clock steps: in every window of every key the
    /// first `limit` requests pass and no more, and the headers' numbers match.
    #[test]
    fn allowed_requests_per_window_never_exceed_the_limit() {
        for seed in 0..300 {
            let mut rng = StdRng::seed_from_u64(seed);
            let quotas: Vec<(String, Quota)> = (0..4)
                .map(|k| {
                    let quota = Quota::new(
                        rng.random_range(1..=6),
                        Duration::from_secs(rng.random_range(1..=5)),
                    );
                    (format!("g:{k}"), quota)
                })
                .collect();
            let start = rng.random_range(0..1_000_000_000_000u64);
            let clock = Arc::new(ManualClock::new(
                std::time::UNIX_EPOCH + Duration::from_millis(start),
            ));
            let limiter = MemoryLimiter::with_clock(clock.clone());
            // (key, window start) -> (requests, allowed)
            let mut seen: HashMap<(usize, u64), (u32, u32)> = HashMap::new();
            let mut now_ms = start;
            for _ in 0..400 {
                let step = rng.random_range(0..1_500);
                clock.advance(Duration::from_millis(step));
                now_ms += step;
                let k = rng.random_range(0..quotas.len());
                let (key, quota) = &quotas[k];
                let decision = limiter.record_hit(key, *quota);

                let window = quota.window.as_secs();
                let now = now_ms / 1000;
                let window_start = now - now % window;
                let (requests, allowed) = seen.entry((k, window_start)).or_default();
                *requests += 1;
                *allowed += u32::from(decision.allowed);
                assert!(*allowed <= quota.limit, "seed {seed}: over the limit");
                assert_eq!(decision.allowed, *requests <= quota.limit, "seed {seed}");
                assert_eq!(
                    decision.remaining,
                    quota.limit.saturating_sub(*requests),
                    "seed {seed}"
                );
                assert_eq!(
                    decision.reset_unix_secs,
                    window_start + window,
                    "seed {seed}"
                );
                assert_eq!(
                    decision.reset_after_secs,
                    window_start + window - now,
                    "seed {seed}"
                );
            }
        }
    }
}
