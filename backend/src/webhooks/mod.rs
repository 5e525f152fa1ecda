//! Outbound webhooks: every backend runs a [`Dispatcher`] that turns outbox events into
//! deliveries, claims the due ones and sends them, signed, with retries.
//!
//! - `sign`: secrets and the two signature schemes.
//! - [`Clock`]: the time the dispatcher schedules by; tests drive a manual one.
//!
//! A pass ([`Dispatcher::pass`]): fan out new events (one delivery per endpoint that wants the
//! event); claim due deliveries of enabled endpoints for twice the timeout plus 5 s; send them (up to
//! `webhooks.concurrency` at once); record each attempt with what follows (delivered, retry at
//! a time from `webhooks.retry_schedule_secs` or the answer's `Retry-After`, or give up), and
//! count failures against the endpoint (disabled after `max_consecutive_failures` in a row, at
//! once on 410 Gone). A backend killed mid-delivery leaves its claims to expire; another (or
//! the same, restarted) takes them again: at least once, deduplicated by the receiver with the
//! event id.
//!
//! Every request goes through one client that resolves names with the address check
//! ([`guard::is_public`]) and follows no redirect; if that client cannot be built the
//! dispatcher is not built either ([`ClientError`]), so the backend stops at start-up rather
//! than deliver without the check.

pub mod sign;

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use mindshop_config::WebhookSettings;
use prometheus::{
    Histogram, IntCounterVec, IntGauge, register_histogram, register_int_counter_vec,
    register_int_gauge,
};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use tokio::task::JoinHandle;

use crate::store::{
    AttemptNext, AttemptRecord, ClaimedDelivery, FailurePolicy, Store, StoreResult, WebhookAttempt,
};
use crate::sync::fetch::guard;

/// Outbox events fanned out per transaction.
const FANOUT_BATCH: u32 = 500;
/// Longest wait a `Retry-After` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Bytes of an answer kept with the attempt.
const EXCERPT_BYTES: usize = 512;

/// The time deliveries are scheduled by.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

struct WebhookMetrics {
    deliveries: IntCounterVec,
    latency: Histogram,
    disabled: IntCounterVec,
    backlog: IntGauge,
}

static METRICS: LazyLock<WebhookMetrics> = LazyLock::new(|| WebhookMetrics {
    deliveries: register_int_counter_vec!(
        "mindshop_webhook_attempts_total",
        "Delivery attempts by outcome: delivered, retry (failed, tried again later), failed \
         (failed with no attempts left).",
        &["outcome"]
    )
    .expect("metric names are valid and registered once"),
    latency: register_histogram!(
        "mindshop_webhook_attempt_duration_seconds",
        "Time from sending a delivery to its answer (or failure).",
        vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
        ]
    )
    .expect("metric names are valid and registered once"),
    disabled: register_int_counter_vec!(
        "mindshop_webhook_endpoints_disabled_total",
        "Endpoints disabled by their deliveries, by reason (gone: answered 410; failures: too \
         many failed attempts in a row).",
        &["reason"]
    )
    .expect("metric names are valid and registered once"),
    backlog: register_int_gauge!(
        "mindshop_webhook_backlog",
        "Outbox events not yet fanned out plus deliveries not yet delivered or given up, as \
         this backend last saw."
    )
    .expect("metric names are valid and registered once"),
});

/// Creates the series whose labels are known at 0.
pub(crate) fn init_metrics() {
    for outcome in ["delivered", "retry", "failed"] {
        METRICS.deliveries.with_label_values(&[outcome]);
    }
    for reason in ["gone", "failures"] {
        METRICS.disabled.with_label_values(&[reason]);
    }
}

/// Sends deliveries for one backend.
#[derive(Debug)]
pub struct Dispatcher {
    store: Arc<dyn Store>,
    pub settings: WebhookSettings,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
}

/// What one attempt came to, before it is recorded.
#[derive(Debug)]
struct Sent {
    status: Option<u16>,
    retry_after: Option<Duration>,
    excerpt: Option<String>,
    error: Option<String>,
}

/// The outbound HTTP client could not be built, so the backend does not start: a fallback
/// client would skip the destination check and follow redirects.
#[derive(Debug, thiserror::Error)]
#[error("the webhook HTTP client could not be built: {0}")]
pub struct ClientError(#[source] reqwest::Error);

/// `builder` with the rules every delivery relies on: the [`GuardedResolver`], no redirects,
/// the timeout. An error is returned as it is, never replaced by a client without them.
fn guarded_client(
    builder: reqwest::ClientBuilder,
    settings: &WebhookSettings,
) -> Result<reqwest::Client, ClientError> {
    let timeout = Duration::from_secs(settings.timeout_secs);
    builder
        // A redirect could lead past the destination check: a 3xx is a failure.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .dns_resolver(Arc::new(GuardedResolver {
            allow_private: settings.allow_private_destinations,
        }))
        .user_agent("mindshop-webhooks/1")
        .build()
        .map_err(ClientError)
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        settings: WebhookSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ClientError> {
        crate::install_crypto_provider();
        let client = guarded_client(reqwest::Client::builder(), &settings)?;
        Ok(Self {
            store,
            settings,
            clock,
            client,
        })
    }

    /// Runs passes until the task is aborted: at once again after a pass that found work,
    /// else after `webhooks.dispatch_interval_ms`.
    pub fn spawn(self: Arc<Self>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let idle = Duration::from_millis(self.settings.dispatch_interval_ms);
            loop {
                match self.pass().await {
                    Ok(0) => tokio::time::sleep(idle).await,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "webhook dispatch failed; retrying");
                        tokio::time::sleep(idle).await;
                    }
                }
            }
        })
    }

    /// One pass: fan out, claim, send, record. How many events and attempts it handled.
    pub async fn pass(&self) -> StoreResult<u64> {
        let mut handled = 0;
        loop {
            let fanned = self
                .store
                .fan_out_events(FANOUT_BATCH, self.clock.now())
                .await?;
            handled += fanned;
            if fanned < u64::from(FANOUT_BATCH) {
                break;
            }
        }
        let now = self.clock.now();
        let claim = Duration::from_secs(2 * self.settings.timeout_secs + 5);
        let claimed = self
            .store
            .claim_deliveries(
                self.settings.concurrency.saturating_mul(4),
                now,
                now + claim,
            )
            .await?;
        handled += u64::try_from(claimed.len()).unwrap_or(u64::MAX);
        let concurrency = usize::try_from(self.settings.concurrency).unwrap_or(1);
        let attempts: Vec<(AttemptRecord, FailurePolicy)> = futures_util::stream::iter(claimed)
            .map(|delivery| async move { self.deliver(&delivery).await })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        // One transaction for the pass's attempts (one commit, one fsync on SQLite). Were it
        // lost, the claims expire and the deliveries are sent again: at least once.
        let still_enabled = self.store.record_attempts(&attempts).await?;
        // Every endpoint claimed from was enabled at the claim, so one that is not now was
        // disabled by this pass: counted once.
        let mut disabled = std::collections::HashSet::new();
        for ((record, policy), enabled) in attempts.iter().zip(still_enabled) {
            if record.next != AttemptNext::Delivered
                && !enabled
                && disabled.insert(record.endpoint_id.clone())
            {
                tracing::warn!(endpoint_id = %record.endpoint_id, "webhook endpoint disabled");
                METRICS
                    .disabled
                    .with_label_values(&[if policy.disable_now.is_some() {
                        "gone"
                    } else {
                        "failures"
                    }])
                    .inc();
            }
        }
        METRICS.backlog.set(self.store.webhook_backlog().await?);
        Ok(handled)
    }

    /// Sends one delivery; what to record of the attempt.
    async fn deliver(&self, delivery: &ClaimedDelivery) -> (AttemptRecord, FailurePolicy) {
        let attempted_at = self.clock.now();
        let started = Instant::now();
        let sent = self.send(delivery, attempted_at).await;
        let took = started.elapsed();
        METRICS.latency.observe(took.as_secs_f64());

        let succeeded = sent
            .status
            .is_some_and(|status| (200..300).contains(&status));
        let gone = sent.status == Some(410);
        let next = if succeeded {
            AttemptNext::Delivered
        } else {
            let index = usize::try_from(delivery.attempts).unwrap_or(usize::MAX);
            match self.settings.retry_schedule_secs.get(index) {
                Some(wait) if !gone => {
                    let wait = Duration::from_secs(*wait)
                        .max(sent.retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
                    AttemptNext::RetryAt(
                        attempted_at + chrono::Duration::from_std(wait).unwrap_or_default(),
                    )
                }
                _ => AttemptNext::GiveUp,
            }
        };
        METRICS
            .deliveries
            .with_label_values(&[match next {
                AttemptNext::Delivered => "delivered",
                AttemptNext::RetryAt(_) => "retry",
                AttemptNext::GiveUp => "failed",
            }])
            .inc();
        let error = match (&sent.error, sent.status) {
            (Some(error), _) => Some(error.clone()),
            (None, Some(status)) if !succeeded => {
                Some(format!("the endpoint answered HTTP {status}"))
            }
            _ => None,
        };
        let record = AttemptRecord {
            delivery_id: delivery.id.clone(),
            endpoint_id: delivery.endpoint_id.clone(),
            attempt: WebhookAttempt {
                delivery_id: delivery.id.clone(),
                attempted_at,
                status_code: sent.status.map(i32::from),
                duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
                error,
                response_excerpt: sent.excerpt,
            },
            next,
        };
        let policy = FailurePolicy {
            max_consecutive_failures: i64::from(self.settings.max_consecutive_failures),
            disable_now: gone.then(|| "the endpoint answered 410 Gone".to_owned()),
        };
        (record, policy)
    }

    async fn send(&self, delivery: &ClaimedDelivery, at: DateTime<Utc>) -> Sent {
        let refused = |error: String| Sent {
            status: None,
            retry_after: None,
            excerpt: None,
            error: Some(error),
        };
        if let Err(reason) = self.check_destination(&delivery.url) {
            return refused(reason);
        }
        let timestamp = at.timestamp();
        let body = delivery.payload.as_bytes();
        let mut standard =
            sign::standard_signature(&delivery.secret, &delivery.event_id, timestamp, body);
        if let Some(previous) = &delivery.previous_secret {
            standard.push(' ');
            standard.push_str(&sign::standard_signature(
                previous,
                &delivery.event_id,
                timestamp,
                body,
            ));
        }
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        put("x-webhook-id", &delivery.event_id);
        put("x-webhook-timestamp", &timestamp.to_string());
        put(
            "x-webhook-signature",
            &sign::body_signature(&delivery.secret, body),
        );
        put("webhook-id", &delivery.event_id);
        put("webhook-timestamp", &timestamp.to_string());
        put("webhook-signature", &standard);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));

        let response = self
            .client
            .post(&delivery.url)
            .headers(headers)
            .body(delivery.payload.clone())
            .send()
            .await;
        let mut response = match response {
            Ok(response) => response,
            Err(error) => return refused(describe(&error, self.settings.timeout_secs)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| retry_after(value, at));
        let mut excerpt = Vec::new();
        while excerpt.len() < EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                _ => break,
            }
        }
        excerpt.truncate(EXCERPT_BYTES);
        Sent {
            status: Some(status),
            retry_after,
            excerpt: (!excerpt.is_empty()).then(|| shown_excerpt(&excerpt)),
            error: None,
        }
    }

    /// The destination rules that do not need a lookup: the scheme, and an address written in
    /// the URL (names are checked when they are resolved, by [`GuardedResolver`]).
    pub fn check_destination(&self, url: &str) -> Result<(), String> {
        let url: reqwest::Url = url
            .parse()
            .map_err(|_| "the endpoint URL is not a URL".to_owned())?;
        match url.scheme() {
            "https" => {}
            "http" if self.settings.allow_http => {}
            scheme => {
                return Err(format!(
                    "{scheme}:// endpoints are not allowed; use https://"
                ));
            }
        }
        let literal = url
            .host_str()
            .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|host| host.parse::<IpAddr>().ok());
        if let Some(ip) = literal
            && !self.settings.allow_private_destinations
            && !guard::is_public(ip)
        {
            return Err(format!(
                "the endpoint's address {ip} is loopback, private or link-local, which \
                 webhooks may not reach"
            ));
        }
        Ok(())
    }
}

/// `Retry-After` as a wait: seconds, or an HTTP date after `now`.
/// The first bytes of an endpoint's answer as the attempt log shows them: invalid UTF-8 and
/// NUL (which the store refuses, as PostgreSQL cannot hold it) become U+FFFD, so whatever an
/// endpoint answers, its attempt is recorded.
fn shown_excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}")
}

fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (date.with_timezone(&Utc) - now).to_std().ok()
}

fn describe(error: &reqwest::Error, timeout_secs: u64) -> String {
    if error.is_timeout() {
        format!("no answer within {timeout_secs} seconds")
    } else if error.is_connect() {
        // The resolver's refusal comes through here too, with its reason.
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
        while let Some(cause) = source {
            if let Some(refused) = cause.downcast_ref::<DestinationRefused>() {
                return refused.0.clone();
            }
            source = cause.source();
        }
        "the endpoint refused the connection or could not be reached".to_owned()
    } else {
        "the request could not be sent".to_owned()
    }
}

#[derive(Debug)]
struct DestinationRefused(String);

impl std::fmt::Display for DestinationRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DestinationRefused {}

/// Resolves endpoint hosts and refuses any that has a loopback, private, link-local or
/// metadata address (unless allowed); the connection then goes to exactly these addresses.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private
                && let Some(internal) = addresses.iter().find(|a| !guard::is_public(a.ip()))
            {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(DestinationRefused(format!(
                        "the host {host} resolves to {}, a loopback, private or link-local \
                         address, which webhooks may not reach",
                        internal.ip()
                    )));
                return Err(refused);
            }
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests;
