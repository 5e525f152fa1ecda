//! [`RedisLimiter`]: one budget shared by every edge, for deployments that run `mindshop edge`
//! more than once (each process counting alone would grant the budget once per edge).
//!
//! A request costs at most one round trip for all its budgets: one `MULTI`/`EXEC` transaction
//! that, for each budget's current window, runs `INCRBY` on its counter and `PEXPIRE … NX`,
//! which gives the counter an expiry whenever it has none. The transaction runs atomically, so
//! no key exists without an expiry (the original design sent `INCR`, then `PEXPIRE`; a failure
//! between the two left a counter that never expired and a budget that never came back).
//! `PEXPIRE … NX` needs Redis 7 or later (or Valkey). A Lua script did the same in one
//! `EVALSHA`, and Redis spent about 12 µs a call running it against about 2 µs for the
//! transaction.
//!
//! # Leases: a busy budget costs Redis one call per lease, not per request
//! An increment may take more than one count: Redis answers the counter's new value, and the
//! counts up to it are the edge's. The edge keeps those within the limit (a lease) and gives
//! them to the budget's next requests without a call, in order, so each still gets its own
//! count and `X-RateLimit-Remaining` counts down as it would one by one. The first request of
//! a window asks for one count (and learns where the window stands); then a lease is at most
//! 1/32 of what remains and at most `lease_max` (64 unless configured). The request that
//! leaves half a lease asks for the next one as well, so the budget's other requests never
//! find the edge empty-handed while it is on the wire (if they do, they ask for one count
//! each). Near the limit there are no leases, and once Redis has answered a count at or over
//! the limit the edge refuses the rest of the window itself, so a flood past the limit costs
//! Redis nothing.
//!
//! The shared limit is never exceeded: a count is granted once, by Redis, to one edge. What a
//! lease costs is the other way: counts an edge holds and no request on it uses before the
//! window ends (at most a lease and a half) are lost to the other edges, which count them as
//! spent. With a load balancer spreading a busy budget's requests over the edges, each edge
//! uses its counts within a few requests. `lease_max = 1` counts every request in Redis.
//!
//! # Batches
//! Requests that arrive while a call is on the wire are batched into the next call, and the
//! request that sends it is one of them: the first request to find no call on the wire leads;
//! it sends one transaction for itself and everything queued meanwhile, hands each queued
//! request its counts, then passes the lead to the oldest request still waiting, which sends
//! the next batch. No task of ours sits between the requests and the connection (only the
//! `redis` crate's own connection task), so a batch costs one wake-up per waiting request and
//! none for its leader. A counter named by many requests of a batch (one widget key's budget)
//! is sent once, incremented by their sum. Under load this turns many round trips into one,
//! which is most of the limiter's cost on both sides; an idle edge sends each request on its
//! own at once. A batch names many keys, so the limiter expects one Redis server (or a cluster whose
//! keys share a hash slot), not a sharded cluster.
//!
//! Counters are named `<key_prefix>:rl:<key>:<window start>`. The window start is the last
//! segment and is all digits, so a key with `:` in it can never be confused with another. The
//! window is computed from the edge's own clock (edges are expected to run NTP): every edge
//! then derives the same window and the same `X-RateLimit-Reset`. A counter expires a little
//! after its window ends, so an edge whose clock runs slightly behind still finds it.
//!
//! Every request is bounded by a short timeout, queueing included: a hung or unreachable Redis
//! yields a [`LimiterError`] quickly, and the edge decides whether the request passes.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Value};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::windows::WindowMap;
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

/// Most counts one lease holds unless [`RedisLimiter::with_lease_max`] says otherwise.
pub const DEFAULT_LEASE_MAX: u32 = 64;

/// A lease is at most this fraction (1/n) of what remains of a window's budget.
const LEASE_SHARE: u64 = 32;

/// Counts requests in Redis, shared by every edge that uses the same Redis and key prefix.
pub struct RedisLimiter {
    key_prefix: Box<str>,
    clock: Arc<dyn Clock>,
    batches: Arc<Batches>,
    /// What this edge knows of each budget's current window, and the counts it holds.
    leases: WindowMap<Lease>,
    lease_max: u64,
}

/// The connection and the requests waiting for the next call on it.
struct Batches {
    client: Client,
    call_timeout: Duration,
    /// Made on first use, inside the runtime that serves requests (the connection's own task
    /// runs there).
    connection: OnceLock<Result<ConnectionManager, LimiterError>>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// Whether some request leads: has a call on the wire, or is about to send one.
    led: bool,
    /// Requests waiting for the next call, oldest first.
    waiting: VecDeque<Job>,
}

/// A waiting request: its increments and where its turn goes.
struct Job {
    increments: Vec<Increment>,
    turn: oneshot::Sender<Turn>,
    /// When its caller stops waiting.
    deadline: Instant,
}

/// What a waiting request gets: its counts, or the lead (with its increments back) to send the
/// next batch itself.
enum Turn {
    Counted(Result<Vec<u64>, LimiterError>),
    Lead(Lead, Vec<Increment>, Instant),
}

/// The right to send the next call. Dropping it passes it on to the oldest request still
/// waiting, or frees it when none is: also when its holder is cancelled mid-call, or was handed
/// the lead and stopped waiting before it could read it.
struct Lead {
    batches: Option<Arc<Batches>>,
}

impl Drop for Lead {
    fn drop(&mut self) {
        if let Some(batches) = self.batches.take() {
            batches.pass_lead();
        }
    }
}

impl RedisLimiter {
    /// Connects to `url` and checks within a second that the server answers and knows
    /// `PEXPIRE … NX` (Redis 7 or later). `key_prefix` starts every key written, so
    /// deployments can share one Redis.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, LimiterError> {
        let limiter = Self::connect_lazy(url, key_prefix)?;
        tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut connection = limiter
                .batches
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
            key_prefix: key_prefix.into(),
            clock: Arc::new(SystemClock),
            leases: WindowMap::new(),
            lease_max: DEFAULT_LEASE_MAX.into(),
            batches: Arc::new(Batches {
                client,
                call_timeout: DEFAULT_CALL_TIMEOUT,
                connection: OnceLock::new(),
                queue: Mutex::default(),
            }),
        })
    }

    /// Reads the time from `clock` instead of the system clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Lets a lease hold up to `most` counts instead of [`DEFAULT_LEASE_MAX`]; 1 sends every
    /// request's count to Redis (0 is taken as 1).
    pub fn with_lease_max(mut self, most: u32) -> Self {
        self.lease_max = u64::from(most.max(1));
        self
    }

    /// Bounds each request by `timeout` instead of [`DEFAULT_CALL_TIMEOUT`]. Call it before
    /// the limiter is shared.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        if let Some(batches) = Arc::get_mut(&mut self.batches) {
            batches.call_timeout = timeout;
        }
        self
    }
}

impl Batches {
    /// Sends `increments` within the call timeout: now when no call is on the wire,
    /// else waits to be sent with the next batch (or to lead it).
    async fn count(self: &Arc<Self>, increments: Vec<Increment>) -> Result<Vec<u64>, LimiterError> {
        let deadline = Instant::now() + self.call_timeout;
        // Queued behind the call on the wire, or (with its increments back) the one to send now.
        let waiting = {
            let mut queue = self.lock();
            if queue.led {
                let (turn, waiting) = oneshot::channel();
                queue.waiting.push_back(Job {
                    increments,
                    turn,
                    deadline,
                });
                Ok(waiting)
            } else {
                queue.led = true;
                Err(increments)
            }
        };
        let waiting = match waiting {
            Ok(waiting) => waiting,
            Err(increments) => {
                let lead = Lead {
                    batches: Some(self.clone()),
                };
                return self.lead(lead, increments, deadline).await;
            }
        };
        // No timer of its own: each call ends by its sender's deadline, and a request is only
        // ever sent by itself or by one queued before it (whose deadline comes first), so its
        // turn comes by its deadline.
        match waiting.await {
            Ok(Turn::Counted(counts)) => counts,
            Ok(Turn::Lead(lead, increments, deadline)) => {
                self.lead(lead, increments, deadline).await
            }
            // The request that led this batch was cancelled mid-call.
            Err(_) => Err(LimiterError::Abandoned),
        }
    }

    /// Sends `own` and the requests waiting now in one call, hands them their counts, then
    /// passes the lead on (when `lead` drops).
    async fn lead(
        &self,
        lead: Lead,
        own: Vec<Increment>,
        deadline: Instant,
    ) -> Result<Vec<u64>, LimiterError> {
        let batch = {
            let mut queue = self.lock();
            let mut batch = Vec::with_capacity(queue.waiting.len().min(MAX_BATCH - 1));
            while batch.len() < MAX_BATCH - 1 {
                let Some(job) = self.next_to_send(&mut queue) else {
                    break;
                };
                batch.push(job);
            }
            batch
        };
        let counts = match self.connection() {
            Ok(connection) => {
                let groups = std::iter::once(own.as_slice())
                    .chain(batch.iter().map(|job| job.increments.as_slice()));
                let call = send(connection, groups, self.call_timeout);
                tokio::time::timeout_at(deadline, call)
                    .await
                    .unwrap_or(Err(LimiterError::Timeout(self.call_timeout)))
            }
            Err(err) => Err(err),
        };
        let mine = match counts {
            Ok(counts) => {
                let mut counts = counts.into_iter();
                let mine = counts.by_ref().take(own.len()).collect();
                for job in batch {
                    let theirs = counts.by_ref().take(job.increments.len()).collect();
                    let _ = job.turn.send(Turn::Counted(Ok(theirs)));
                }
                Ok(mine)
            }
            Err(err) => {
                for job in batch {
                    let _ = job.turn.send(Turn::Counted(Err(err.clone())));
                }
                Err(err)
            }
        };
        drop(lead);
        mine
    }

    /// Gives the lead to the oldest request still waiting, or frees it.
    fn pass_lead(self: Arc<Self>) {
        let mut queue = self.lock();
        while let Some(job) = self.next_to_send(&mut queue) {
            let lead = Lead {
                batches: Some(self.clone()),
            };
            match job
                .turn
                .send(Turn::Lead(lead, job.increments, job.deadline))
            {
                Ok(()) => return,
                // Its caller stopped waiting: take the lead back without passing it (the
                // queue is locked here), and try the next.
                Err(Turn::Lead(mut lead, ..)) => {
                    lead.batches = None;
                }
                Err(Turn::Counted(_)) => {}
            }
        }
        queue.led = false;
    }

    /// The oldest waiting request still to be sent. Those before it whose caller stopped
    /// waiting are dropped uncounted, and those whose time is up get a timeout.
    fn next_to_send(&self, queue: &mut Queue) -> Option<Job> {
        let now = Instant::now();
        while let Some(job) = queue.waiting.pop_front() {
            if job.turn.is_closed() {
                continue;
            }
            if job.deadline <= now {
                let timeout = LimiterError::Timeout(self.call_timeout);
                let _ = job.turn.send(Turn::Counted(Err(timeout)));
                continue;
            }
            return Some(job);
        }
        None
    }

    /// The connection, made on first use.
    fn connection(&self) -> Result<ConnectionManager, LimiterError> {
        self.connection
            .get_or_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.call_timeout))
                    .set_response_timeout(Some(self.call_timeout))
                    // No retries inside one call: the next batch starts a new attempt, and
                    // requests fail fast while Redis is down instead of waiting out a backoff.
                    .set_number_of_retries(0);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                    .map_err(|err| classify(err, self.call_timeout))
            })
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue stays consistent whatever panicked while holding it: each change is one
        // push or pop.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One increment of a counter in Redis.
struct Increment {
    counter: String,
    /// By how much: 1 for a request, more for a lease.
    by: u64,
    /// The counter's lifetime in ms, set when it has none.
    expire_ms: u64,
}

/// One transaction for every increment of `groups`; the counts they end at, in order. A counter
/// named by several increments is sent once, incremented by their sum, and they get the counts
/// that end at its new value, in the order they come: exactly what separate increments would
/// have returned.
async fn send<'a>(
    mut connection: ConnectionManager,
    groups: impl Iterator<Item = &'a [Increment]>,
    call_timeout: Duration,
) -> Result<Vec<u64>, LimiterError> {
    // Each distinct counter: (name, sum of its increments, lifetime in ms).
    let mut distinct: Vec<(&str, u64, u64)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    // For each increment: its counter, and the sum of it and the counter's increments before.
    let mut increments = Vec::new();
    for increment in groups.flatten() {
        let counter = increment.counter.as_str();
        let slot = *index.entry(counter).or_insert_with(|| {
            distinct.push((counter, 0, 0));
            distinct.len() - 1
        });
        let entry = &mut distinct[slot];
        entry.1 += increment.by;
        increments.push((slot, entry.1));
        entry.2 = entry.2.max(increment.expire_ms);
    }
    let mut transaction = redis::pipe();
    transaction.atomic();
    for (counter, sum, expire_ms) in &distinct {
        transaction.cmd("INCRBY").arg(*counter).arg(*sum);
        transaction
            .cmd("PEXPIRE")
            .arg(*counter)
            .arg(*expire_ms)
            .arg("NX")
            .ignore();
    }
    let reply: Value = transaction
        .query_async(&mut connection)
        .await
        .map_err(|err| classify(err, call_timeout))?;
    let totals: Option<Vec<u64>> = match &reply {
        Value::Array(items) if items.len() == distinct.len() => items
            .iter()
            .zip(&distinct)
            .map(|(item, (_, sum, _))| match item {
                Value::Int(count) if count.unsigned_abs() >= *sum && *count > 0 => {
                    Some(count.unsigned_abs())
                }
                _ => None,
            })
            .collect(),
        _ => None,
    };
    let totals = totals.ok_or_else(|| LimiterError::UnexpectedReply(format!("{reply:?}")))?;
    Ok(increments
        .into_iter()
        .map(|(slot, through)| totals[slot] - distinct[slot].1 + through)
        .collect())
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
        let now = self.clock.now();
        let windows: Vec<Window> = budgets
            .iter()
            .map(|(_, quota)| Window::containing(now, *quota))
            .collect();
        // Each budget's count for this request, from the lease where it can be; the rest are
        // asked of Redis, and their counts filled in from its answer.
        let mut counts = Vec::with_capacity(budgets.len());
        let mut asked = Vec::new();
        let mut increments = Vec::new();
        for (index, ((key, quota), window)) in budgets.iter().zip(&windows).enumerate() {
            let limit = u64::from(quota.limit);
            let step = self.leases.update(key, *window, |lease| {
                lease.next_step(limit, self.lease_max, self.batches.call_timeout)
            });
            // The count, and what to ask of Redis: by how much, and whether this request's
            // count is the answer's first.
            let (count, ask) = match step {
                Step::Take(count) => (count, None),
                Step::TakeAndLease(count, size) => (count, Some((size, false))),
                Step::Refuse => (limit + 1, None),
                // Filled in from Redis's answer.
                Step::Ask(by) => (0, Some((by, true))),
            };
            if let Some((by, uses_first)) = ask {
                asked.push((index, by, uses_first));
                increments.push(Increment {
                    counter: counter_name(&self.key_prefix, key, window.start),
                    by,
                    expire_ms: window.millis_left().saturating_add(EXPIRY_SLACK_MS),
                });
            }
            counts.push(count);
        }
        if !increments.is_empty() {
            let answers = self.batches.count(increments).await;
            // Settled whatever the answer: a failed lease call must not block the next one.
            for (position, &(index, by, uses_first)) in asked.iter().enumerate() {
                let (key, quota) = budgets[index];
                let limit = u64::from(quota.limit);
                let answer = answers.as_ref().ok().map(|answers| answers[position]);
                self.leases
                    .update_existing(key, windows[index], |lease| match answer {
                        Some(count) => lease.settle(count, by, limit, uses_first),
                        None if by > 1 => lease.asking_until = None,
                        None => {}
                    });
                if let (Some(count), true) = (answer, uses_first) {
                    // The first of the counts Redis gave this request: the one it uses.
                    counts[index] = count - by + 1;
                }
            }
            // A request that only asked for the next lease has its counts: a failure is the
            // next request's to meet, when the lease runs out.
            if asked.iter().any(|&(_, _, uses_first)| uses_first) {
                answers?;
            }
        }
        Ok(budgets
            .iter()
            .zip(windows)
            .zip(counts)
            .map(|(((_, quota), window), count)| RateDecision::from_count(count, *quota, window))
            .collect())
    }

    async fn peek_all(&self, budgets: &[(&str, Quota)]) -> Result<Vec<RateDecision>, LimiterError> {
        self.peek_counters(budgets).await
    }
}

impl RedisLimiter {
    /// [`RateLimiter::peek_all`]: one `MGET` of the budgets' counters, bounded by the call
    /// timeout. Counts this edge holds in a lease are counted in Redis already, so a peek errs
    /// towards refusing, never towards granting more than the limit.
    async fn peek_counters(
        &self,
        budgets: &[(&str, Quota)],
    ) -> Result<Vec<RateDecision>, LimiterError> {
        let now = self.clock.now();
        let windows: Vec<Window> = budgets
            .iter()
            .map(|(_, quota)| Window::containing(now, *quota))
            .collect();
        let counters: Vec<String> = budgets
            .iter()
            .zip(&windows)
            .map(|((key, _), window)| counter_name(&self.key_prefix, key, window.start))
            .collect();
        let timeout = self.batches.call_timeout;
        let mut connection = self.batches.connection()?;
        let counts: Vec<Option<u64>> = tokio::time::timeout(
            timeout,
            redis::cmd("MGET")
                .arg(&counters)
                .query_async(&mut connection),
        )
        .await
        .map_err(|_| LimiterError::Timeout(timeout))?
        .map_err(|err| classify(err, timeout))?;
        if counts.len() != budgets.len() {
            return Err(LimiterError::UnexpectedReply(format!("{counts:?}")));
        }
        Ok(budgets
            .iter()
            .zip(windows)
            .zip(counts)
            .map(|(((_, quota), window), count)| {
                RateDecision::from_count(count.unwrap_or(0) + 1, *quota, window)
            })
            .collect())
    }
}

/// What this edge knows of one budget's window in Redis, and the counts it holds there.
#[derive(Debug, Default)]
struct Lease {
    /// The highest count Redis has answered for the window; 0 until its first answer. Counts
    /// never go down within a window, so once it reaches the limit nothing more is granted.
    counted: u64,
    /// Counts Redis granted this edge that no request has used yet, all within the limit:
    /// those of the lease in use, then those of the next one once it has come.
    current: Counts,
    next: Counts,
    /// While a lease is asked for (until the call's deadline), other requests ask for no lease
    /// of their own.
    asking_until: Option<Instant>,
}

/// `left` counts from `first` on.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    first: u64,
    left: u64,
}

impl Counts {
    /// The counts `first..=last` (none when `last < first`).
    fn through(first: u64, last: u64) -> Self {
        Self {
            first,
            left: (last + 1).saturating_sub(first),
        }
    }

    fn take(&mut self) -> Option<u64> {
        (self.left > 0).then(|| {
            self.left -= 1;
            self.first += 1;
            self.first - 1
        })
    }
}

/// How a request's count against one budget is found.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// This count, from the lease.
    Take(u64),
    /// This count, from the lease, which is running low: the request also asks Redis for the
    /// next lease, of this size, and the budget's other requests go on using this one.
    TakeAndLease(u64, u64),
    /// None: the window's counts are all granted.
    Refuse,
    /// Asked of Redis, incremented by this much (1, or a lease's size).
    Ask(u64),
}

impl Lease {
    /// The step of the next request against a budget of `limit`.
    fn next_step(&mut self, limit: u64, lease_max: u64, call_timeout: Duration) -> Step {
        if self.current.left == 0 {
            self.current = std::mem::take(&mut self.next);
        }
        if let Some(count) = self.current.take() {
            let held = self.current.left + self.next.left;
            return match self.lease_size(limit, lease_max) {
                // Half of a lease left: time for the next.
                Some(size) if held <= size / 2 && self.start_asking(call_timeout) => {
                    Step::TakeAndLease(count, size)
                }
                _ => Step::Take(count),
            };
        }
        if self.counted >= limit {
            return Step::Refuse;
        }
        match self.lease_size(limit, lease_max) {
            Some(size) if self.start_asking(call_timeout) => Step::Ask(size),
            _ => Step::Ask(1),
        }
    }

    /// The size of a lease now, if one is worth asking for: the first request of a window
    /// learns where it stands first, and each edge leases at most a share of what remains, so
    /// near the limit there are no leases.
    fn lease_size(&self, limit: u64, lease_max: u64) -> Option<u64> {
        let size = (limit.saturating_sub(self.counted) / LEASE_SHARE).min(lease_max);
        (self.counted > 0 && size > 1).then_some(size)
    }

    /// Whether this request asks for the next lease: no other is asking now.
    fn start_asking(&mut self, call_timeout: Duration) -> bool {
        let now = Instant::now();
        if self.asking_until.is_some_and(|until| until > now) {
            return false;
        }
        self.asking_until = Some(now + call_timeout);
        true
    }

    /// Redis answered `count` to an increment by `by`: the counts `count - by + 1 ..= count`
    /// are this edge's. A lease keeps those within the limit, but for the first when the
    /// request that asked uses it (`uses_first`: it had no count from the lease before).
    fn settle(&mut self, count: u64, by: u64, limit: u64, uses_first: bool) {
        self.counted = self.counted.max(count);
        if by > 1 {
            self.asking_until = None;
            let first = count - by + 1 + u64::from(uses_first);
            let counts = Counts::through(first, count.min(limit));
            if self.current.left == 0 {
                self.current = counts;
            } else if self.next.left == 0 {
                self.next = counts;
            }
        }
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the client: its URL may hold a password.
        f.debug_struct("RedisLimiter")
            .field("key_prefix", &self.key_prefix)
            .field("clock", &self.clock)
            .field("call_timeout", &self.batches.call_timeout)
            .field("lease_max", &self.lease_max)
            .field("connected", &self.batches.connection.get().is_some())
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

    /// An edge's limiter on the test Redis, under `prefix`, reading `clock`.
    async fn edge_on(prefix: &str, clock: &Arc<ManualClock>) -> RedisLimiter {
        RedisLimiter::connect(&test_redis_url(), prefix)
            .await
            .expect("Redis at MINDSHOP_TEST_REDIS_URL answers")
            .with_clock(clock.clone())
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

    /// The request sending a call is cancelled while it waits for Redis (its client went away):
    /// the request queued behind it still gets its call sent, and does not wait for nothing.
    #[tokio::test]
    async fn a_cancelled_call_passes_the_lead_to_the_next_request() {
        // A server that records what it is sent and answers the connection's setup, but never
        // a rate-limit transaction (and nothing after one, as a hung Redis).
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::<u8>::new()));
        let heard = received.clone();
        let hung = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let heard = heard.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buffer = [0u8; 4096];
                    let mut stuck = false;
                    while let Ok(read @ 1..) = socket.read(&mut buffer).await {
                        heard.lock().unwrap().extend_from_slice(&buffer[..read]);
                        // Each command is an array, `*<n>`; none of these holds a `*`.
                        let text = String::from_utf8_lossy(&buffer[..read]).into_owned();
                        for command in text.split('*').filter(|c| !c.is_empty()) {
                            stuck |= command.contains("MULTI");
                            if !stuck {
                                socket.write_all(b"+OK\r\n").await.unwrap();
                            }
                        }
                    }
                });
            }
        });
        let sent = |key: &str| {
            let text = String::from_utf8_lossy(&received.lock().unwrap()).into_owned();
            text.contains(key)
        };
        let limiter = Arc::new(
            RedisLimiter::connect_lazy(&url, "p")
                .unwrap()
                .with_call_timeout(Duration::from_secs(10)),
        );

        let first = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.hit("chat:first", per_minute(5)).await }
        });
        while !sent("chat:first") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let second = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.hit("chat:second", per_minute(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!sent("chat:second"), "queued while the first call is out");

        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        let started = Instant::now();
        while !sent("chat:second") {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "the queued request was never sent"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        second.abort();
        hung.abort();
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

        // Requests queued behind a hung call time out as soon, each within its own bound.
        let limiter = Arc::new(limiter);
        let mut queued = Vec::new();
        for i in 0..4 {
            let limiter = limiter.clone();
            queued.push(tokio::spawn(async move {
                let started = Instant::now();
                let key = format!("chat:k{i}");
                let err = limiter.hit(&key, per_minute(5)).await.unwrap_err();
                (err, started.elapsed())
            }));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for request in queued {
            let (err, waited) = request.await.unwrap();
            assert!(matches!(err, LimiterError::Timeout(_)), "{err:?}");
            assert!(waited < Duration::from_millis(900), "{waited:?}");
        }
        hung.abort();
    }

    #[tokio::test]
    #[ignore = "needs MINDSHOP_TEST_REDIS_URL"]
    async fn a_peek_sees_what_every_edge_counted_and_counts_nothing() {
        let prefix = unique_prefix();
        let clock = Arc::new(ManualClock::at_unix_secs(T0));
        let edge_a = edge_on(&prefix, &clock).await;
        let edge_b = edge_on(&prefix, &clock).await;
        let quota = per_minute(2);
        let peek = async |edge: &RedisLimiter| {
            edge.peek_all(&[("push", quota), ("other", quota)])
                .await
                .unwrap()
        };
        let fresh = peek(&edge_b).await;
        assert!(fresh.iter().all(|d| d.allowed && d.remaining == 1));
        assert_eq!(peek(&edge_b).await, fresh, "a peek counts nothing");
        assert!(keys_under(&prefix).await.is_empty(), "nor writes a counter");
        edge_a.hit("push", quota).await.unwrap();
        edge_a.hit("push", quota).await.unwrap();
        let seen = peek(&edge_b).await;
        assert!(!seen[0].allowed, "edge b sees edge a's counts");
        assert!(seen[1].allowed);
        assert_eq!(seen[0].reset_unix_secs, 1_700_000_040);
    }

    #[tokio::test]
    #[ignore = "needs MINDSHOP_TEST_REDIS_URL"]
    async fn two_edges_share_one_budget() {
        let prefix = unique_prefix();
        let clock = Arc::new(ManualClock::at_unix_secs(T0));
        let edge_a = edge_on(&prefix, &clock).await;
        let edge_b = edge_on(&prefix, &clock).await;
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
        let prefix = unique_prefix();
        let clock = Arc::new(ManualClock::at_unix_secs(T0));
        let limiter = edge_on(&prefix, &clock).await;
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
        // Every count from Redis, none from a lease: this is about batches.
        let limiter = Arc::new(
            RedisLimiter::connect(&url, &unique_prefix())
                .await
                .unwrap()
                .with_lease_max(1),
        );
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
            // Large enough for leases: their counts come out one by one all the same.
            ("documents:k", Quota::new(200, Duration::from_secs(2))),
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

    const CALL: Duration = Duration::from_millis(250);

    #[test]
    fn a_lease_hands_out_its_counts_in_order_and_shrinks_near_the_limit() {
        let mut lease = Lease::default();
        // The window's first request learns where it stands.
        assert_eq!(lease.next_step(1_000, 64, CALL), Step::Ask(1));
        lease.settle(1, 1, 1_000, true);
        // Then a lease: 1/32 of the 999 left.
        assert_eq!(lease.next_step(1_000, 64, CALL), Step::Ask(31));
        // While it is on the wire, others ask for one count each.
        assert_eq!(lease.next_step(1_000, 64, CALL), Step::Ask(1));
        lease.settle(2, 1, 1_000, true);
        // Redis gave the lease 3..=33; its asker used 3, the next requests get 4..=33, and the
        // one that leaves half a lease (15 of 30) asks for the next lease too.
        lease.settle(33, 31, 1_000, true);
        let taken: Vec<_> = (4..=33).map(|_| lease.next_step(1_000, 64, CALL)).collect();
        let mut expected: Vec<_> = (4..=33).map(Step::Take).collect();
        expected[18 - 4] = Step::TakeAndLease(18, 30);
        assert_eq!(taken, expected);
        // That lease, 34..=63, is used whole once the first is.
        lease.settle(63, 30, 1_000, false);
        assert_eq!(lease.next_step(1_000, 64, CALL), Step::Take(34));

        // A lease is at most `lease_max` counts.
        let mut large = Lease::default();
        large.settle(1, 1, 100_000, true);
        assert_eq!(large.next_step(100_000, 64, CALL), Step::Ask(64));

        // Near the limit there are no leases.
        let mut near = Lease::default();
        near.settle(990, 1, 1_000, true);
        assert_eq!(near.next_step(1_000, 64, CALL), Step::Ask(1));
    }

    #[test]
    fn a_lease_never_holds_counts_past_the_limit_and_a_spent_window_is_refused_here() {
        let mut lease = Lease::default();
        lease.settle(1, 1, 100, true);
        assert_eq!(lease.next_step(100, 64, CALL), Step::Ask(3));
        // Other edges took counts meanwhile: of 99..=101 only 99 (its asker's) and 100 are
        // within the limit.
        lease.settle(101, 3, 100, true);
        assert_eq!(lease.next_step(100, 64, CALL), Step::Take(100));
        // Redis has answered past the limit: the rest of the window is refused without a call.
        assert_eq!(lease.next_step(100, 64, CALL), Step::Refuse);
        assert_eq!(lease.next_step(100, 64, CALL), Step::Refuse);

        // A lease that comes back wholly past the limit holds nothing.
        let mut late = Lease::default();
        late.settle(50, 1, 100, true);
        late.settle(130, 30, 100, true);
        assert_eq!(late.next_step(100, 64, CALL), Step::Refuse);

        // A budget of 0 refuses everything, without a call.
        assert_eq!(Lease::default().next_step(0, 64, CALL), Step::Refuse);
    }

    #[test]
    fn a_lease_call_that_never_came_back_does_not_block_the_next() {
        let mut lease = Lease::default();
        lease.settle(1, 1, 10_000, true);
        assert_eq!(lease.next_step(10_000, 64, Duration::ZERO), Step::Ask(64));
        // Its deadline has passed (its asker was cancelled, or timed out): lease again.
        assert_eq!(lease.next_step(10_000, 64, Duration::ZERO), Step::Ask(64));
        // With `lease_max = 1` every request asks for one count.
        assert_eq!(lease.next_step(10_000, 1, CALL), Step::Ask(1));
    }

    /// One edge, one busy budget: the counts come out one by one as without leases, and Redis
    /// is called once per lease.
    #[tokio::test]
    #[ignore = "needs MINDSHOP_TEST_REDIS_URL"]
    async fn a_busy_budget_costs_redis_one_call_per_lease() {
        let prefix = unique_prefix();
        let clock = Arc::new(ManualClock::at_unix_secs(T0));
        let edge_a = edge_on(&prefix, &clock).await;
        let quota = per_minute(100_000);
        for i in 1..=1_000u32 {
            let decision = edge_a.hit("documents:k", quota).await.unwrap();
            assert!(decision.allowed);
            assert_eq!(decision.remaining, 100_000 - i, "request {i}");
        }
        // One call for request 1, one for a lease of 64 counts from 2 on, then one for the next
        // lease each time half of one is left (at counts 33, 97, …, 993): 18 calls, and Redis
        // counts a lease ahead.
        let counted: u64 = redis::cmd("GET")
            .arg(format!("{prefix}:rl:documents:k:1699999980"))
            .query_async(&mut raw_connection().await)
            .await
            .unwrap();
        assert_eq!(counted, 1_089);
        // Another edge counts the 89 counts edge A holds as spent.
        let edge_b = edge_on(&prefix, &clock).await;
        let decision = edge_b.hit("documents:k", quota).await.unwrap();
        assert_eq!(decision.remaining, 100_000 - 1_090);
    }

    /// Two edges, many requests at once on each, leases on: exactly the limit passes, and once
    /// the window is spent the edges refuse without asking Redis.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs MINDSHOP_TEST_REDIS_URL"]
    async fn two_busy_edges_with_leases_pass_exactly_the_shared_limit() {
        let prefix = unique_prefix();
        let clock = Arc::new(ManualClock::at_unix_secs(T0));
        let mut edges = Vec::new();
        for _ in 0..2 {
            edges.push(Arc::new(edge_on(&prefix, &clock).await));
        }
        let quota = per_minute(3_000);
        // 16 clients per edge, each sending requests until one is refused.
        let mut clients = Vec::new();
        for edge in &edges {
            for _ in 0..16 {
                let edge = edge.clone();
                clients.push(tokio::spawn(async move {
                    let mut passed = Vec::new();
                    loop {
                        let decision = edge.hit("documents:k", quota).await.unwrap();
                        if !decision.allowed {
                            return passed;
                        }
                        passed.push(decision.remaining);
                    }
                }));
            }
        }
        let mut remaining = Vec::new();
        for client in clients {
            remaining.extend(client.await.unwrap());
        }
        remaining.sort_unstable();
        // Each count once: 3,000 requests passed, one per remaining value.
        assert_eq!(remaining, (0..3_000).collect::<Vec<u32>>());

        let counter = format!("{prefix}:rl:documents:k:1699999980");
        let read = || async {
            redis::cmd("GET")
                .arg(&counter)
                .query_async::<u64>(&mut raw_connection().await)
                .await
                .unwrap()
        };
        let spent = read().await;
        assert!(spent >= 3_000, "{spent}");
        for edge in &edges {
            for _ in 0..50 {
                assert!(!edge.hit("documents:k", quota).await.unwrap().allowed);
            }
        }
        assert_eq!(
            read().await,
            spent,
            "refusals past a spent window cost Redis nothing"
        );
    }
}
