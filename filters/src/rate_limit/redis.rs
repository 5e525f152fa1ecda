//! [`RedisLimiter`]: one budget shared by every edge, for deployments that run `mindshop edge`
//! more than once (each process counting alone would grant the budget once per edge).
//!
//! A request costs one round trip for all its budgets: one `MULTI`/`EXEC` transaction that, for
//! each budget's current window, runs `INCRBY` on its counter and `PEXPIRE … NX`, which gives the
//! counter an expiry whenever it has none. The transaction runs atomically, so no key exists
//! without an expiry (the original design sent `INCR`, then `PEXPIRE`; a failure between the two
//! left a counter that never expired and a budget that never came back). `PEXPIRE … NX` needs
//! Redis 7 or later (or Valkey). A Lua script did the same in one `EVALSHA`, and Redis spent
//! about 12 µs a call running it against about 2 µs for the transaction.
//!
//! Requests that arrive while a call is on the wire are batched into the next call: one task per
//! edge sends one transaction for everything queued, then hands each request its counts. A
//! counter named by many requests of a batch (one widget key's budget) is sent once, counted by
//! how many. Under load this turns many round trips into one, which is most of the limiter's
//! cost on both sides; an idle edge sends each request on its own at once. A batch names many
//! keys, so the limiter expects one Redis server (or a cluster whose keys share a hash slot),
//! not a sharded cluster.
//!
//! Counters are named `<key_prefix>:rl:<key>:<window start>`. The window start is the last
//! segment and is all digits, so a key with `:` in it can never be confused with another. The
//! window is computed from the edge's own clock (edges are expected to run NTP): every edge
//! then derives the same window and the same `X-RateLimit-Reset`. A counter expires a little
//! after its window ends, so an edge whose clock runs slightly behind still finds it.
//!
//! Every request is bounded by a short timeout, queueing included: a hung or unreachable Redis
//! yields a [`LimiterError`] quickly, and the edge decides whether the request passes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Clock, LimiterError, Quota, RateDecision, RateLimiter, SystemClock, Window};

/// Bound on one request's counting (queueing and connecting included) unless
/// [`RedisLimiter::with_call_timeout`] says otherwise: long enough for a loaded Redis nearby,
/// short enough that a request never waits noticeably on a broken one.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(250);

/// Bound on [`RedisLimiter::connect`]'s check that the server answers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a counter outlives its window: covers edges whose clocks lag by up to this much.
const EXPIRY_SLACK_MS: u64 = 2_000;

/// Most requests sent in one call; more wait for the next.
const MAX_BATCH: usize = 256;

/// Requests that may wait for the batching task; more wait to be queued (within their timeout).
const QUEUE_DEPTH: usize = 4096;

/// Counts requests in Redis, shared by every edge that uses the same Redis and key prefix.
pub struct RedisLimiter {
    client: Client,
    key_prefix: Box<str>,
    clock: Arc<dyn Clock>,
    call_timeout: Duration,
    /// The batching task's inbox. The task is started on first use, inside the runtime that
    /// serves requests (it and the connection manager live there); it ends with the limiter.
    queue: OnceLock<mpsc::Sender<Job>>,
}

/// One request's counters (name, lifetime in ms) and where its counts go.
struct Job {
    counters: Vec<(String, u64)>,
    reply: oneshot::Sender<Result<Vec<u64>, LimiterError>>,
}

impl RedisLimiter {
    /// Connects to `url` and checks within a second that the server answers and knows
    /// `PEXPIRE … NX` (Redis 7 or later). `key_prefix` starts every key written, so
    /// deployments can share one Redis.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, LimiterError> {
        let limiter = Self::connect_lazy(url, key_prefix)?;
        tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut connection = limiter
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(|err| classify(err, CONNECT_TIMEOUT))?;
            // On a key that does not exist: changes nothing, and fails before Redis 7.
            redis::cmd("PEXPIRE")
                .arg(format!("{key_prefix}:rl:probe"))
                .arg(1)
                .arg("NX")
                .query_async::<i64>(&mut connection)
                .await
                .map(drop)
                .map_err(|err| classify(err, CONNECT_TIMEOUT))
        })
        .await
        .map_err(|_| LimiterError::Timeout(CONNECT_TIMEOUT))??;
        Ok(limiter)
    }

    /// A limiter for `url` that connects on its first request, so an edge can start while
    /// Redis is down (its requests then get [`LimiterError`]s until Redis is back). Only the
    /// URL is checked here; no runtime is needed to call this.
    pub fn connect_lazy(url: &str, key_prefix: &str) -> Result<Self, LimiterError> {
        let client = Client::open(url).map_err(LimiterError::InvalidUrl)?;
        Ok(Self {
            client,
            key_prefix: key_prefix.into(),
            clock: Arc::new(SystemClock),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            queue: OnceLock::new(),
        })
    }

    /// Reads the time from `clock` instead of the system clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Bounds each request by `timeout` instead of [`DEFAULT_CALL_TIMEOUT`].
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The batching task's inbox; starts the task on first use.
    fn queue(&self) -> &mpsc::Sender<Job> {
        self.queue.get_or_init(|| {
            let (sender, inbox) = mpsc::channel(QUEUE_DEPTH);
            let batcher = Batcher {
                client: self.client.clone(),
                call_timeout: self.call_timeout,
            };
            tokio::spawn(batcher.run(inbox));
            sender
        })
    }

    async fn count(&self, counters: Vec<(String, u64)>) -> Result<Vec<u64>, LimiterError> {
        let (reply, counts) = oneshot::channel();
        self.queue()
            .send(Job { counters, reply })
            .await
            .map_err(|_| LimiterError::UnexpectedReply("the batching task ended".to_owned()))?;
        counts
            .await
            .map_err(|_| LimiterError::UnexpectedReply("the batching task ended".to_owned()))?
    }
}

/// The task that sends queued requests to Redis, one call at a time.
struct Batcher {
    client: Client,
    call_timeout: Duration,
}

impl Batcher {
    async fn run(self, mut inbox: mpsc::Receiver<Job>) {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.call_timeout))
            .set_response_timeout(Some(self.call_timeout))
            // No retries inside one call: the next batch starts a new attempt, and requests
            // fail fast while Redis is down instead of waiting out a backoff.
            .set_number_of_retries(0);
        let mut connection = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|err| classify(err, self.call_timeout));
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        while inbox.recv_many(&mut jobs, MAX_BATCH).await > 0 {
            // Requests whose caller stopped waiting are not counted.
            jobs.retain(|job| !job.reply.is_closed());
            if jobs.is_empty() {
                continue;
            }
            let counts = match &mut connection {
                Ok(connection) => self.send(connection, &jobs).await,
                Err(err) => Err(err.clone()),
            };
            match counts {
                Ok(counts) => {
                    let mut counts = counts.into_iter();
                    for job in jobs.drain(..) {
                        let mine = counts.by_ref().take(job.counters.len()).collect();
                        let _ = job.reply.send(Ok(mine));
                    }
                }
                Err(err) => {
                    for job in jobs.drain(..) {
                        let _ = job.reply.send(Err(err.clone()));
                    }
                }
            }
        }
    }

    /// One transaction for every counter of `jobs`; the counts, in order. A counter named
    /// `n` times is sent once, counted by `n`, and its occurrences get the `n` counts that end
    /// at its new value, in the order they were queued: exactly what `n` separate increments
    /// would have returned.
    async fn send(
        &self,
        connection: &mut ConnectionManager,
        jobs: &[Job],
    ) -> Result<Vec<u64>, LimiterError> {
        // Each distinct counter: (name, occurrences, lifetime in ms).
        let mut distinct: Vec<(&str, u64, u64)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        // For each occurrence: its counter, and how many occurrences of it came before.
        let mut occurrences = Vec::new();
        for (counter, expire_ms) in jobs.iter().flat_map(|job| &job.counters) {
            let slot = *index.entry(counter.as_str()).or_insert_with(|| {
                distinct.push((counter.as_str(), 0, 0));
                distinct.len() - 1
            });
            let entry = &mut distinct[slot];
            occurrences.push((slot, entry.1));
            entry.1 += 1;
            entry.2 = entry.2.max(*expire_ms);
        }
        let mut transaction = redis::pipe();
        transaction.atomic();
        for (counter, times, expire_ms) in &distinct {
            transaction.cmd("INCRBY").arg(*counter).arg(*times);
            transaction
                .cmd("PEXPIRE")
                .arg(*counter)
                .arg(*expire_ms)
                .arg("NX")
                .ignore();
        }
        let reply: Value =
            tokio::time::timeout(self.call_timeout, transaction.query_async(connection))
                .await
                .map_err(|_| LimiterError::Timeout(self.call_timeout))?
                .map_err(|err| classify(err, self.call_timeout))?;
        let totals: Option<Vec<u64>> = match &reply {
            Value::Array(items) if items.len() == distinct.len() => items
                .iter()
                .zip(&distinct)
                .map(|(item, (_, times, _))| match item {
                    Value::Int(count) if count.unsigned_abs() >= *times && *count > 0 => {
                        Some(count.unsigned_abs())
                    }
                    _ => None,
                })
                .collect(),
            _ => None,
        };
        let totals = totals.ok_or_else(|| LimiterError::UnexpectedReply(format!("{reply:?}")))?;
        Ok(occurrences
            .into_iter()
            .map(|(slot, before)| totals[slot] - distinct[slot].1 + before + 1)
            .collect())
    }
}

/// The name of `key`'s counter for the window starting at `window_start`.
fn counter_name(key_prefix: &str, key: &str, window_start: u64) -> String {
    format!("{key_prefix}:rl:{key}:{window_start}")
}

/// The error for `err`; `timeout` is the bound that Redis's own timeouts enforce.
fn classify(err: RedisError, timeout: Duration) -> LimiterError {
    if err.is_timeout() {
        LimiterError::Timeout(timeout)
    } else if err.is_io_error()
        || err.is_connection_refusal()
        || err.is_connection_dropped()
        || err.is_unrecoverable_error()
    {
        LimiterError::Unreachable(err)
    } else {
        LimiterError::Command(err)
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisLimiter {
    async fn hit_all(&self, budgets: &[(&str, Quota)]) -> Result<Vec<RateDecision>, LimiterError> {
        if budgets.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let windows: Vec<Window> = budgets
            .iter()
            .map(|(_, quota)| Window::containing(now, *quota))
            .collect();
        let counters = budgets
            .iter()
            .zip(&windows)
            .map(|((key, _), window)| {
                let name = counter_name(&self.key_prefix, key, window.start);
                (name, window.millis_left().saturating_add(EXPIRY_SLACK_MS))
            })
            .collect();
        let counts = tokio::time::timeout(self.call_timeout, self.count(counters))
            .await
            .map_err(|_| LimiterError::Timeout(self.call_timeout))??;
        Ok(budgets
            .iter()
            .zip(windows)
            .zip(counts)
            .map(|(((_, quota), window), count)| RateDecision::from_count(count, *quota, window))
            .collect())
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the client: its URL may hold a password.
        f.debug_struct("RedisLimiter")
            .field("key_prefix", &self.key_prefix)
            .field("clock", &self.clock)
            .field("call_timeout", &self.call_timeout)
            .field("started", &self.queue.get().is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Instant, UNIX_EPOCH};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use tokio::net::TcpListener;

    use super::*;
    use crate::rate_limit::{ManualClock, MemoryLimiter};

    /// 20 s into a one-minute window: [1_699_999_980, 1_700_000_040).
    const T0: u64 = 1_700_000_000;

    fn per_minute(limit: u32) -> Quota {
        Quota::new(limit, Duration::from_secs(60))
    }

    fn test_redis_url() -> String {
        std::env::var("MINDSHOP_TEST_REDIS_URL").unwrap_or_else(|_| {
            panic!(
                "MINDSHOP_TEST_REDIS_URL is not set: the Redis tests need a Redis to talk to, \
                 e.g. MINDSHOP_TEST_REDIS_URL=redis://127.0.0.1:6379"
            )
        })
    }

    /// A key prefix no other test (or run) uses.
    fn unique_prefix() -> String {
        format!("mindshop-test-{}", uuid::Uuid::new_v4())
    }

    async fn raw_connection() -> redis::aio::MultiplexedConnection {
        Client::open(test_redis_url())
            .expect("valid MINDSHOP_TEST_REDIS_URL")
            .get_multiplexed_async_connection()
            .await
            .expect("Redis at MINDSHOP_TEST_REDIS_URL answers")
    }

    async fn keys_under(prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut raw_connection().await)
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// An address where nothing listens: bound once, then released.
    async fn closed_port_url() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("redis://{addr}")
    }

    #[test]
    fn counters_are_named_by_prefix_key_and_window_start() {
        assert_eq!(
            counter_name("mindshop", "chat:key_1", 1_699_999_980),
            "mindshop:rl:chat:key_1:1699999980"
        );
        // Keys that only differ in where ':' falls get different counters.
        assert_ne!(counter_name("p", "a:1", 2), counter_name("p", "a", 12));
        assert_ne!(counter_name("p", "a:1", 2), counter_name("p", "a:1:2", 2));
    }

    #[test]
    fn an_invalid_url_is_refused_and_a_password_is_never_printed() {
        let err = RedisLimiter::connect_lazy("http://127.0.0.1:6379", "p").unwrap_err();
        assert!(matches!(err, LimiterError::InvalidUrl(_)), "{err:?}");
        // TLS URLs (managed Redis services) are accepted.
        RedisLimiter::connect_lazy("rediss://redis.example.com:6380", "p").unwrap();
        let limiter = RedisLimiter::connect_lazy("redis://:hunter2@127.0.0.1:6379", "p").unwrap();
        let printed = format!("{limiter:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("key_prefix: \"p\""), "{printed}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_an_error_within_a_second() {
        let url = closed_port_url().await;

        let started = Instant::now();
        let err = RedisLimiter::connect(&url, "p").await.unwrap_err();
        assert!(matches!(err, LimiterError::Unreachable(_)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );

        // An edge that started anyway gets an error per request, just as fast, every time.
        let limiter = RedisLimiter::connect_lazy(&url, "p").unwrap();
        for _ in 0..3 {
            let started = Instant::now();
            let err = limiter.hit("chat:k", per_minute(5)).await.unwrap_err();
            assert!(matches!(err, LimiterError::Unreachable(_)), "{err:?}");
            assert_eq!(err.reason(), "unreachable");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
        }
    }

    #[tokio::test]
    async fn a_redis_that_never_answers_times_out() {
        // Accepts connections and reads nothing: a hung server.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let hung = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });

        let limiter = RedisLimiter::connect_lazy(&url, "p")
            .unwrap()
            .with_call_timeout(Duration::from_millis(200));
        for _ in 0..2 {
            let started = Instant::now();
            let err = limiter.hit("chat:k", per_minute(5)).await.unwrap_err();
            let waited = started.elapsed();
            assert!(matches!(err, LimiterError::Timeout(_)), "{err:?}");
            assert!(waited >= Duration::from_millis(190), "{waited:?}");
            assert!(waited < Duration::from_millis(900), "{waited:?}");
        }
        hung.abort();
    }

    #[tokio::test]
    #[ignore = "needs MINDSHOP_TEST_REDIS_URL"]
    async fn two_edges_share_one_budget() {
        let url = test_redis_url();
        let prefix = unique_prefix();
        let clock = Arc::new(ManualClock::at_unix_secs(T0));
        let edge_a = RedisLimiter::connect(&url, &prefix)
            .await
            .unwrap()
            .with_clock(clock.clone());
        let edge_b = RedisLimiter::connect(&url, &prefix)
            .await
            .unwrap()
            .with_clock(clock.clone());
        let quota = per_minute(4);

        let mut decisions = Vec::new();
        for i in 0..6 {
            let edge = if i % 2 == 0 { &edge_a } else { &edge_b };
            decisions.push(edge.hit("portal:user_1", quota).await.unwrap());
        }
        let allowed: Vec<_> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, true, false, false]);
        let remaining: Vec<_> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [3, 2, 1, 0, 0, 0]);
        for decision in &decisions {
            assert_eq!(decision.reset_unix_secs, 1_700_000_040);
            assert_eq!(decision.reset_after_secs, 40);
        }

        // Another key is another budget; the next window is a fresh one, on both edges.
        assert!(edge_b.hit("portal:user_2", quota).await.unwrap().allowed);
        clock.advance(Duration::from_secs(40));
        let fresh = edge_b.hit("portal:user_1", quota).await.unwrap();
        assert!(fresh.allowed);
        assert_eq!(fresh.remaining, 3);
        assert_eq!(fresh.reset_unix_secs, 1_700_000_100);
        assert_eq!(
            edge_a.hit("portal:user_1", quota).await.unwrap().remaining,
            2
        );
    }

    #[tokio::test]
    #[ignore = "needs MINDSHOP_TEST_REDIS_URL"]
    async fn every_counter_expires_after_its_window() {
        let url = test_redis_url();
        let prefix = unique_prefix();
        let clock = Arc::new(ManualClock::at_unix_secs(T0));
        let limiter = RedisLimiter::connect(&url, &prefix)
            .await
            .unwrap()
            .with_clock(clock.clone());
        let mut raw = raw_connection().await;

        // A counter the old INCR-then-PEXPIRE design could leave behind without expiry.
        let stranded = format!("{prefix}:rl:chat:old:1699999980");
        let _: () = redis::cmd("SET")
            .arg(&stranded)
            .arg(2)
            .query_async(&mut raw)
            .await
            .unwrap();

        for key in ["chat:old", "chat:a", "widget:203.0.113.9", "documents:k:x"] {
            limiter.hit(key, per_minute(5)).await.unwrap();
            limiter.hit(key, per_minute(5)).await.unwrap();
        }
        clock.advance(Duration::from_secs(60));
        limiter.hit("chat:a", per_minute(5)).await.unwrap();

        let keys = keys_under(&prefix).await;
        assert_eq!(keys.len(), 5, "{keys:?}");
        assert!(keys.contains(&stranded));
        let old: u64 = redis::cmd("GET")
            .arg(&stranded)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(old, 4, "the stranded counter kept counting");
        for key in &keys {
            let pttl: i64 = redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut raw)
                .await
                .unwrap();
            // At most the rest of the window (40 s, or 60 s for the second window) plus slack.
            let most = 60_000 + EXPIRY_SLACK_MS as i64;
            assert!(pttl > 0 && pttl <= most, "{key}: PTTL {pttl}");
        }
    }

    /// Requests counted in one batch get distinct counts, exactly as if sent one by one, and
    /// all budgets of one request are counted together.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs MINDSHOP_TEST_REDIS_URL"]
    async fn concurrent_requests_are_each_counted_once() {
        let url = test_redis_url();
        let limiter = Arc::new(RedisLimiter::connect(&url, &unique_prefix()).await.unwrap());
        let quota = per_minute(150);
        let requests = (0..200).map(|i| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let own = format!("chat_ip:ip:{i}");
                limiter
                    .hit_all(&[("chat:k", quota), (&own, per_minute(1))])
                    .await
                    .unwrap()
            })
        });
        let mut shared_remaining = Vec::new();
        for request in requests {
            let decisions = request.await.unwrap();
            assert_eq!(decisions.len(), 2);
            assert!(decisions[1].allowed, "each address's own budget is fresh");
            assert_eq!(decisions[1].remaining, 0);
            if decisions[0].allowed {
                shared_remaining.push(decisions[0].remaining);
            } else {
                assert_eq!(decisions[0].remaining, 0);
            }
        }
        shared_remaining.sort_unstable();
        assert_eq!(shared_remaining, (0..150).collect::<Vec<u32>>());
    }

    /// The same random requests through Redis and through memory, with one clock: the same
    /// decisions, request for request (windows passing, keys apart, refusals).
    #[tokio::test]
    #[ignore = "needs MINDSHOP_TEST_REDIS_URL"]
    async fn redis_and_memory_decide_alike() {
        let url = test_redis_url();
        let mut rng = StdRng::seed_from_u64(7);
        let start = UNIX_EPOCH + Duration::from_millis(T0 * 1000 + 123);
        let clock = Arc::new(ManualClock::new(start));
        let redis = RedisLimiter::connect(&url, &unique_prefix())
            .await
            .unwrap()
            .with_clock(clock.clone());
        let memory = MemoryLimiter::with_clock(clock.clone());
        let keys = [
            ("chat:k1", Quota::new(3, Duration::from_secs(2))),
            ("chat:k2", Quota::new(5, Duration::from_secs(3))),
            ("portal:u:1", Quota::new(2, Duration::from_secs(1))),
        ];
        let mut refused = 0;
        for step in 0..300 {
            clock.advance(Duration::from_millis(rng.random_range(0..400)));
            let (key, quota) = keys[rng.random_range(0..keys.len())];
            let from_redis = redis.hit(key, quota).await.unwrap();
            let from_memory = memory.record_hit(key, quota);
            assert_eq!(from_redis, from_memory, "step {step}, {key}");
            refused += usize::from(!from_redis.allowed);
        }
        assert!(refused > 0, "the sequence should reach the limits");
    }
}
