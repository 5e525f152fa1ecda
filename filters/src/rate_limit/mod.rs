//! Rate limits: counting requests per budget and telling the client where it stands.
//!
//! A budget is named by a key the edge builds (`"<route group>:<credential>"`) and sized by a
//! [`Quota`]. Each request is one [`RateLimiter::hit`]; the [`RateDecision`] it returns says
//! whether the request may pass and renders the headers every response on a limited route
//! carries ([`RateDecision::headers`]).
//!
//! # Window algorithm: fixed windows aligned to the Unix epoch
//! A window of `w` seconds that contains the instant `now` starts at `floor(now / w) * w` and
//! ends `w` seconds later; the first `limit` requests of a window pass, the rest are refused
//! until the next window starts afresh. We chose this over a sliding window or GCRA because:
//! - `X-RateLimit-Reset` and `Retry-After` are exact (the window's end, not an estimate), and
//!   every edge computes the same window from the time alone, with no per-key state to agree on;
//! - the Redis form is one `INCR` on a key named after the window, so it is one atomic round
//!   trip, and the in-process form is a counter per key: the two agree request for request;
//! - memory per key is one counter, dropped when its window has passed.
//!
//! The price is the known burst at a boundary: a client may spend a whole budget at the end of
//! one window and another at the start of the next (at most `2 × limit` within any `w` seconds).
//! The limits here protect the backend from floods and scripts, where that is acceptable.
//!
//! A request whose outcome decides which budget it counts against is first checked with
//! [`RateLimiter::peek_all`] (nothing counted), then counted with [`RateLimiter::hit_all`].
//!
//! Windows are counted in whole seconds ([`Quota::window_secs`]). Refused requests are counted
//! too (they never make a window's count smaller), so `remaining` stays 0 until the window ends.
//! A key names one budget: use one quota per key (two quotas on one key would share a counter).
//!
//! # Layout
//! - `mod.rs`: the types the edge sees ([`Quota`], [`RateDecision`], [`RateLimiter`],
//!   [`LimiterError`]) and the window arithmetic both stores share.
//! - [`memory`]: [`MemoryLimiter`], the in-process store of the embedded mode.
//! - [`redis`](mod@redis): [`RedisLimiter`], one budget shared by every edge.
//! - [`clock`]: [`Clock`], so windows are tested without sleeping.
//! - `windows`: the sharded map of a value per key and window that both stores keep in
//!   process (the in-process store's counts, the Redis store's leases).

pub mod clock;
pub mod memory;
pub mod redis;
mod windows;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{HeaderName, HeaderValue};

use crate::HeaderList;

pub use clock::{Clock, ManualClock, SystemClock};
pub use memory::MemoryLimiter;
pub use redis::RedisLimiter;

/// How many requests a budget allows per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed per window; 0 refuses everything.
    pub limit: u32,
    /// Length of a window: whole seconds, at least one (see [`Quota::window_secs`]).
    pub window: Duration,
}

impl Quota {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }

    /// The window in whole seconds, as the stores count it: fractions are dropped and anything
    /// shorter than a second counts as one second.
    pub fn window_secs(&self) -> u64 {
        self.window.as_secs().max(1)
    }
}

/// The outcome of counting one request against a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests left in this window after this one, saturating at 0.
    pub remaining: u32,
    /// When the current window ends (Unix seconds).
    pub reset_unix_secs: u64,
    /// Seconds until then, at least 1.
    pub reset_after_secs: u64,
}

impl RateDecision {
    /// The decision for the `count`-th request (counting this one) of `window`.
    pub(crate) fn from_count(count: u64, quota: Quota, window: Window) -> Self {
        let limit = u64::from(quota.limit);
        Self {
            allowed: count <= limit,
            limit: quota.limit,
            // Fits: at most `limit`, itself a u32.
            remaining: u32::try_from(limit.saturating_sub(count)).unwrap_or(0),
            reset_unix_secs: window.end,
            reset_after_secs: window.end.saturating_sub(window.now).max(1),
        }
    }

    /// Headers every response on a limited route carries: `X-RateLimit-Limit`,
    /// `X-RateLimit-Remaining`, `X-RateLimit-Reset` (Unix seconds), the IETF draft fields
    /// (draft-ietf-httpapi-ratelimit-headers) `RateLimit-Policy: "<policy>";q=<limit>;w=<window
    /// secs>` and `RateLimit: "<policy>";r=<remaining>;t=<reset_after_secs>`, and on a refusal
    /// `Retry-After` (seconds).
    ///
    /// `policy_name` is written as a structured-field string: `"` and `\` are escaped, and
    /// characters a header cannot carry (control characters, non-ASCII) become `?`.
    pub fn headers(&self, policy_name: &str, window: Duration) -> HeaderList {
        let mut headers = Vec::with_capacity(6);
        self.append_headers(policy_name, window, &mut headers);
        headers
    }

    /// [`RateDecision::headers`], appended to `out`. Every response on a limited route carries
    /// them, so their values share one buffer: one allocation for all of them.
    pub fn append_headers(&self, policy_name: &str, window: Duration, out: &mut HeaderList) {
        let window_secs = window.as_secs().max(1);
        let mut numbers = itoa::Buffer::new();
        let mut text = String::with_capacity(2 * policy_name.len() + 96);
        // Where each value ends in `text`; each starts where the one before ended.
        let mut ends = [0; 6];
        text.push_str(numbers.format(self.limit));
        ends[0] = text.len();
        text.push_str(numbers.format(self.remaining));
        ends[1] = text.len();
        text.push_str(numbers.format(self.reset_unix_secs));
        ends[2] = text.len();
        // `"<policy>";q=<limit>;w=<window>`, then `"<policy>";r=<remaining>;t=<reset after>`.
        push_sf_string(&mut text, policy_name);
        text.push_str(";q=");
        text.push_str(numbers.format(self.limit));
        text.push_str(";w=");
        text.push_str(numbers.format(window_secs));
        ends[3] = text.len();
        push_sf_string(&mut text, policy_name);
        text.push_str(";r=");
        text.push_str(numbers.format(self.remaining));
        text.push_str(";t=");
        text.push_str(numbers.format(self.reset_after_secs));
        ends[4] = text.len();
        if !self.allowed {
            text.push_str(numbers.format(self.reset_after_secs));
        }
        ends[5] = text.len();

        let text = Bytes::from(text);
        let value = |i: usize| {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            // Digits and what `push_sf_string` writes: printable ASCII, always a valid value.
            HeaderValue::from_maybe_shared(text.slice(start..ends[i]))
                .unwrap_or_else(|_| HeaderValue::from_static("?"))
        };
        out.extend([
            (X_RATELIMIT_LIMIT, value(0)),
            (X_RATELIMIT_REMAINING, value(1)),
            (X_RATELIMIT_RESET, value(2)),
            (RATELIMIT_POLICY, value(3)),
            (RATELIMIT, value(4)),
        ]);
        if !self.allowed {
            out.push((RETRY_AFTER, value(5)));
        }
    }
}

/// The rate-limit header names (lowercase, as `HeaderName` holds every name).
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Appends `text` as an RFC 8941 string item: quoted, with `"` and `\` escaped, and anything
/// outside printable ASCII (which a string item cannot hold) replaced by `?`.
fn push_sf_string(out: &mut String, text: &str) {
    out.push('"');
    // The edge's own policy names (`documents`, `chat_ip`) need no escaping: copied whole.
    if text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        out.push_str(text);
        out.push('"');
        return;
    }
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

/// Why a limiter could not count a request. The edge decides whether such a request passes
/// (`limits.on_store_error`); the texts never reach a client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimiterError {
    /// The Redis URL could not be parsed (or asks for something this build lacks).
    #[error("invalid Redis URL")]
    InvalidUrl(#[source] ::redis::RedisError),
    /// No connection to Redis could be made, or it broke.
    #[error("Redis is unreachable")]
    Unreachable(#[source] ::redis::RedisError),
    /// Redis answered with an error (a full memory, a wrong key type, a server older than
    /// Redis 7, …).
    #[error("Redis refused the rate-limit commands")]
    Command(#[source] ::redis::RedisError),
    /// Redis did not answer in time; a hung server must not stall requests.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered something the rate-limit commands never return.
    #[error("unexpected answer to the rate-limit commands: {0}")]
    UnexpectedReply(String),
    /// The request sending this request's batch was cancelled before Redis answered (its
    /// client went away or the edge is shutting down), so whether it was counted is unknown.
    #[error("the rate-limit call carrying this request was cancelled")]
    Abandoned,
}

impl LimiterError {
    /// A short, stable label for metrics (`mindshop_ratelimit_backend_errors_total{reason}`).
    /// Every [`LimiterError::reason`], for metrics that start at 0.
    pub const REASONS: [&'static str; 6] = [
        "invalid_url",
        "unreachable",
        "command",
        "timeout",
        "unexpected_reply",
        "abandoned",
    ];

    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "invalid_url",
            Self::Unreachable(_) => "unreachable",
            Self::Command(_) => "command",
            Self::Timeout(_) => "timeout",
            Self::UnexpectedReply(_) => "unexpected_reply",
            Self::Abandoned => "abandoned",
        }
    }
}

/// Counts requests per key. `key` is already `"<route group>:<credential>"`, built by the edge;
/// a limiter assumes nothing else about it (it may contain `:` and any printable ASCII).
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// Counts one request against every budget in `budgets` in one step (for Redis, one round
    /// trip) and returns a decision per budget, in order. Every budget is counted, also when
    /// another one refuses the request.
    async fn hit_all(&self, budgets: &[(&str, Quota)]) -> Result<Vec<RateDecision>, LimiterError>;

    /// The decision each budget would give a request now, without counting it: for a request
    /// that is counted only once its outcome is known (a platform push counts against its
    /// merchant once its signature held, against its sender's address once it did not).
    /// Requests peeked at the same moment may all pass, so a budget counted this way can be
    /// exceeded by the requests in flight at once.
    async fn peek_all(&self, budgets: &[(&str, Quota)]) -> Result<Vec<RateDecision>, LimiterError>;

    /// Counts one request against the budget `key` and says whether it may pass.
    async fn hit(&self, key: &str, quota: Quota) -> Result<RateDecision, LimiterError> {
        let decisions = self.hit_all(&[(key, quota)]).await?;
        decisions
            .into_iter()
            .next()
            .ok_or_else(|| LimiterError::UnexpectedReply("no decision".to_owned()))
    }
}

/// The window that holds an instant, in Unix seconds; shared so both stores agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// First second of the window (a multiple of the window length).
    pub start: u64,
    /// First second after the window.
    pub end: u64,
    /// The instant it was computed for, in whole seconds (`start <= now < end`).
    pub now: u64,
    /// The instant in milliseconds, for expiries finer than a second.
    pub now_millis: u64,
}

impl Window {
    pub(crate) fn containing(now: SystemTime, quota: Quota) -> Self {
        let since_epoch = since_epoch(now);
        let now_secs = since_epoch.as_secs();
        let length = quota.window_secs();
        let start = now_secs - now_secs % length;
        Self {
            start,
            end: start.saturating_add(length),
            now: now_secs,
            now_millis: u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Milliseconds from the instant to the window's end (at least 1).
    pub(crate) fn millis_left(&self) -> u64 {
        self.end
            .saturating_mul(1000)
            .saturating_sub(self.now_millis)
            .max(1)
    }
}

/// Time since the Unix epoch; a clock before 1970 is broken, and counting it as the epoch
/// keeps windows well formed.
pub(crate) fn since_epoch(now: SystemTime) -> Duration {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn text(headers: &HeaderList) -> Vec<(&str, &str)> {
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
            .collect()
    }

    fn decision(allowed: bool, remaining: u32) -> RateDecision {
        RateDecision {
            allowed,
            limit: 20,
            remaining,
            reset_unix_secs: 1_700_000_040,
            reset_after_secs: 40,
        }
    }

    #[test]
    fn an_allowed_request_carries_both_header_families_and_no_retry_after() {
        assert_eq!(
            text(&decision(true, 19).headers("sync_writes", MINUTE)),
            [
                ("x-ratelimit-limit", "20"),
                ("x-ratelimit-remaining", "19"),
                ("x-ratelimit-reset", "1700000040"),
                ("ratelimit-policy", "\"sync_writes\";q=20;w=60"),
                ("ratelimit", "\"sync_writes\";r=19;t=40"),
            ]
        );
    }

    #[test]
    fn a_refusal_adds_retry_after_in_seconds() {
        let headers = decision(false, 0).headers("chat", MINUTE);
        let headers = text(&headers);
        assert_eq!(headers.len(), 6);
        assert_eq!(headers[1], ("x-ratelimit-remaining", "0"));
        assert_eq!(headers[4], ("ratelimit", "\"chat\";r=0;t=40"));
        assert_eq!(headers[5], ("retry-after", "40"));
    }

    #[test]
    fn a_policy_name_is_a_valid_structured_field_string() {
        let headers = decision(true, 1).headers("a\"b\\c\u{e9}\n", Duration::from_secs(1));
        assert_eq!(headers[3].1, r#""a\"b\\c??";q=20;w=1"#);
        // A window under a second is counted as one, as the limiters do.
        let headers = decision(true, 1).headers("p", Duration::from_millis(10));
        assert_eq!(headers[3].1, "\"p\";q=20;w=1");
    }

    #[test]
    fn decisions_count_down_and_saturate() {
        let quota = Quota::new(2, MINUTE);
        let window = Window::containing(
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500),
            quota,
        );
        assert_eq!(
            (window.start, window.end, window.now),
            (1_699_999_980, 1_700_000_040, 1_700_000_000)
        );
        assert_eq!(window.millis_left(), 39_500);
        let remaining: Vec<_> = (1..=4)
            .map(|count| RateDecision::from_count(count, quota, window))
            .map(|d| (d.allowed, d.remaining, d.reset_after_secs))
            .collect();
        assert_eq!(
            remaining,
            [(true, 1, 40), (true, 0, 40), (false, 0, 40), (false, 0, 40)]
        );
        // Far more requests than a u32 holds still refuse.
        let flood = RateDecision::from_count(u64::MAX, quota, window);
        assert!(!flood.allowed);
        assert_eq!(flood.remaining, 0);
    }

    #[test]
    fn a_zero_limit_refuses_everything() {
        let quota = Quota::new(0, MINUTE);
        let window = Window::containing(SystemTime::UNIX_EPOCH, quota);
        let first = RateDecision::from_count(1, quota, window);
        assert!(!first.allowed);
        assert_eq!(first.remaining, 0);
    }

    #[test]
    fn limiter_errors_have_metric_labels() {
        assert_eq!(
            LimiterError::Timeout(Duration::from_millis(250)).reason(),
            "timeout"
        );
        assert_eq!(
            LimiterError::Timeout(Duration::from_millis(250)).to_string(),
            "Redis did not answer within 250ms"
        );
    }
}
