//! Outbound webhooks: a merchant's endpoints, the deliveries of outbox events to them, and the
//! attempts of each delivery.
//!
//! Events reach deliveries in two steps: the outbox (`events`, written with each change) is
//! fanned out into one delivery per subscribed endpoint, then deliveries are claimed and sent.
//! Both steps are safe with several backends: fan-out takes unmarked events with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, and a claim lasts until `claimed_until`, after which
//! a delivery whose backend died is taken again (at least once).
//!
//! An endpoint is owed the events written while it is enabled, told apart by the outbox's
//! `seq` (never by time: stamps come from each backend's clock, kept to a different precision
//! by each database): those above `events_after_seq` (the last event when it was created or
//! re-enabled) and, once disabled, none above `events_until_seq` (the last event then). What
//! it was owed before being disabled waits as deliveries and is sent when it is re-enabled;
//! re-enabling turns what it was owed and is still in the outbox into deliveries at once,
//! since the new window starts above it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::PageKey;

/// A merchant's endpoint, as the API shows it (never its secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpoint {
    pub id: String,
    pub merchant_id: String,
    pub url: String,
    /// Event types, or `["*"]`.
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why the endpoint was disabled, when it was by deliveries (not by the merchant).
    pub disabled_reason: Option<String>,
    pub consecutive_failures: i64,
    /// When the secret before the last rotation stops signing.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub id: String,
    pub merchant_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub secret: String,
}

/// A change of an endpoint: `None` keeps the field.
#[derive(Debug, Clone, Default)]
pub struct WebhookEndpointUpdate {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// `Some(true)` also clears the failure count and the disabled reason.
    pub enabled: Option<bool>,
}

/// One event for one endpoint, with every attempt so far (newest last).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event: String,
    /// `pending`, `delivered` or `failed` (no attempts left).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub attempt_log: Vec<WebhookAttempt>,
}

impl WebhookDelivery {
    pub fn page_key(&self) -> PageKey {
        PageKey {
            created_at: self.created_at,
            id: self.id.clone(),
        }
    }
}

/// One try at delivering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAttempt {
    #[serde(skip)]
    pub delivery_id: String,
    pub attempted_at: DateTime<Utc>,
    /// `None` when no answer came (timeout, refused connection, refused destination).
    pub status_code: Option<i32>,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// The first bytes of the answer's body.
    pub response_excerpt: Option<String>,
}

/// A delivery a backend has claimed, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: String,
    pub endpoint_id: String,
    pub merchant_id: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub attempts: i64,
    pub url: String,
    pub secret: String,
    /// The secret before a rotation, while it still signs.
    pub previous_secret: Option<String>,
}

/// What an attempt came to, and what happens next.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: String,
    pub endpoint_id: String,
    pub attempt: WebhookAttempt,
    pub next: AttemptNext,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttemptNext {
    /// 2xx: done; the endpoint's failure count starts again.
    Delivered,
    /// Failed; try again at this time.
    RetryAt(DateTime<Utc>),
    /// Failed with no attempts left.
    GiveUp,
}

/// How attempts count against an endpoint: disabled after `max_consecutive_failures` failed
/// attempts in a row, or at once with `disable_now` (410 Gone); `reason` is shown to the
/// merchant.
#[derive(Debug, Clone)]
pub struct FailurePolicy {
    pub max_consecutive_failures: i64,
    pub disable_now: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(super) struct EndpointRow {
    id: String,
    merchant_id: String,
    url: String,
    events: sqlx::types::Json<Vec<String>>,
    description: Option<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    consecutive_failures: i32,
    previous_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<EndpointRow> for WebhookEndpoint {
    fn from(row: EndpointRow) -> Self {
        Self {
            id: row.id,
            merchant_id: row.merchant_id,
            url: row.url,
            events: row.events.0,
            description: row.description,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            consecutive_failures: i64::from(row.consecutive_failures),
            previous_secret_expires_at: row.previous_expires_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DeliveryRow {
    pub(super) id: String,
    endpoint_id: String,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

impl DeliveryRow {
    pub(super) fn with_attempts(self, attempt_log: Vec<WebhookAttempt>) -> WebhookDelivery {
        WebhookDelivery {
            next_attempt_at: (self.status == "pending").then_some(self.next_attempt_at),
            id: self.id,
            endpoint_id: self.endpoint_id,
            event_id: self.event_id,
            event: self.event_type,
            status: self.status,
            attempts: i64::from(self.attempts),
            last_error: self.last_error,
            created_at: self.created_at,
            delivered_at: self.delivered_at,
            attempt_log,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ClaimedRow {
    pub(super) id: String,
    endpoint_id: String,
    merchant_id: String,
    event_id: String,
    event_type: String,
    payload: String,
    attempts: i32,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_expires_at: Option<DateTime<Utc>>,
}

impl ClaimedRow {
    pub(super) fn at(self, now: DateTime<Utc>) -> ClaimedDelivery {
        let previous_signs = self.previous_expires_at.is_some_and(|until| until > now);
        ClaimedDelivery {
            id: self.id,
            endpoint_id: self.endpoint_id,
            merchant_id: self.merchant_id,
            event_id: self.event_id,
            event_type: self.event_type,
            payload: self.payload,
            attempts: i64::from(self.attempts),
            url: self.url,
            secret: self.secret,
            previous_secret: self.previous_secret.filter(|_| previous_signs),
        }
    }
}

/// An outbox event waiting to be fanned out.
#[derive(sqlx::FromRow)]
pub(super) struct PendingEvent {
    pub seq: i64,
    pub id: String,
    pub merchant_id: String,
    pub event_type: String,
    pub data: sqlx::types::Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl PendingEvent {
    /// The body every attempt sends: `{"id", "event", "timestamp", "data"}`.
    pub(super) fn payload(&self) -> String {
        serde_json::json!({
            "id": self.id,
            "event": self.event_type,
            "timestamp": self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": self.data.0,
        })
        .to_string()
    }
}

/// An endpoint as fan-out sees it: what it subscribed to and the window of events it is owed.
#[derive(sqlx::FromRow)]
pub(super) struct Subscriber {
    pub id: String,
    events: sqlx::types::Json<Vec<String>>,
    /// Owed only events above this `seq`: those written after it was created or re-enabled.
    pub events_after_seq: i64,
    /// Set while disabled: owed no event above this `seq`.
    pub events_until_seq: Option<i64>,
}

impl Subscriber {
    /// Whether the endpoint is owed `event`: one of its types, written while it was enabled.
    pub(super) fn owes(&self, event: &PendingEvent) -> bool {
        event.seq > self.events_after_seq
            && self.events_until_seq.is_none_or(|until| event.seq <= until)
            && self
                .events
                .0
                .iter()
                .any(|e| e == "*" || *e == event.event_type)
    }
}

/// Endpoint rows are read with `SELECT *`: [`EndpointRow`] leaves the secrets out.
pub(super) mod sql {
    /// The highest event written so far: an endpoint is owed only events above it from the
    /// moment it is created or re-enabled, and none above it once disabled. (A macro, so
    /// that `concat!` can put it into the statements below.)
    macro_rules! last_event {
        () => {
            "(SELECT COALESCE(MAX(seq), 0) FROM events)"
        };
    }
    pub const INSERT_ENDPOINT: &str = concat!(
        "INSERT INTO webhook_endpoints (id, merchant_id, url, events, description, secret, \
         enabled, events_after_seq, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, TRUE, ",
        last_event!(),
        ", $7, $7)"
    );
    pub const GET_ENDPOINT: &str =
        "SELECT * FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2";
    pub const LIST_ENDPOINTS: &str =
        "SELECT * FROM webhook_endpoints WHERE merchant_id = $1 ORDER BY created_at, id LIMIT 100";
    /// Enabling a disabled endpoint starts its events afresh (none from while it was
    /// disabled); disabling an enabled one ends them at the last event so far.
    pub const UPDATE_ENDPOINT: &str = concat!(
        "UPDATE webhook_endpoints SET \
         url = COALESCE($3, url), events = COALESCE($4, events), \
         description = COALESCE($5, description), enabled = COALESCE($6, enabled), \
         disabled_reason = CASE WHEN $6 = TRUE THEN NULL ELSE disabled_reason END, \
         consecutive_failures = CASE WHEN $6 = TRUE THEN 0 ELSE consecutive_failures END, \
         events_after_seq = CASE WHEN $6 = TRUE AND enabled = FALSE THEN ",
        last_event!(),
        " ELSE events_after_seq END, \
         events_until_seq = CASE WHEN $6 = TRUE THEN NULL \
             WHEN $6 = FALSE AND enabled = TRUE THEN ",
        last_event!(),
        " ELSE events_until_seq END, \
         updated_at = $7 WHERE merchant_id = $1 AND id = $2"
    );
    pub const DELETE_ENDPOINT: &str =
        "DELETE FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2";
    pub const ROTATE_SECRET: &str = "UPDATE webhook_endpoints SET previous_secret = secret, \
         previous_expires_at = $4, secret = $3, updated_at = $5 WHERE merchant_id = $1 AND id = $2";
    /// The endpoints of one merchant that may be owed events from `seq` `$2` on: the enabled
    /// ones, and the disabled ones owed events from before they were disabled. Which events
    /// each is owed is decided in Rust ([`super::Subscriber::owes`]).
    pub const MERCHANT_SUBSCRIBERS: &str = "SELECT id, events, events_after_seq, \
         events_until_seq FROM webhook_endpoints WHERE merchant_id = $1 \
         AND (enabled = TRUE OR events_until_seq >= $2)";
    /// The endpoint, when it is disabled and still owed events from before.
    pub const DISABLED_SUBSCRIBER: &str = "SELECT id, events, events_after_seq, \
         events_until_seq FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2 \
         AND enabled = FALSE AND events_until_seq IS NOT NULL";
    /// The merchant's events not yet fanned out with `seq` in `($2, $3]`.
    pub const PENDING_EVENTS_OWED: &str = "SELECT seq, id, merchant_id, event_type, data, \
         created_at FROM events WHERE fanned_out_at IS NULL AND merchant_id = $1 \
         AND seq > $2 AND seq <= $3 ORDER BY seq";
    pub const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries (id, endpoint_id, merchant_id, \
         event_id, event_type, payload, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) \
         ON CONFLICT (endpoint_id, event_id) DO NOTHING";
    pub const MARK_FANNED_OUT: &str = "UPDATE events SET fanned_out_at = $2 WHERE seq = $1";
    pub const CLAIM_COLUMNS: &str = "d.id, d.endpoint_id, d.merchant_id, d.event_id, d.event_type, \
         d.payload, d.attempts, e.url, e.secret, e.previous_secret, e.previous_expires_at";
    pub const GET_DELIVERY: &str = "SELECT id, endpoint_id, event_id, event_type, status, attempts, \
         next_attempt_at, last_error, created_at, delivered_at FROM webhook_deliveries \
         WHERE merchant_id = $1 AND endpoint_id = $2 AND id = $3";
    pub const LIST_DELIVERIES_FIRST: &str = "SELECT id, endpoint_id, event_id, event_type, status, \
         attempts, next_attempt_at, last_error, created_at, delivered_at FROM webhook_deliveries \
         WHERE merchant_id = $1 AND endpoint_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3";
    pub const LIST_DELIVERIES_AFTER: &str = "SELECT id, endpoint_id, event_id, event_type, status, \
         attempts, next_attempt_at, last_error, created_at, delivered_at FROM webhook_deliveries \
         WHERE merchant_id = $1 AND endpoint_id = $2 AND (created_at, id) < ($3, $4) \
         ORDER BY created_at DESC, id DESC LIMIT $5";
    pub const ATTEMPTS_OF: &str = "SELECT delivery_id, attempted_at, status_code, duration_ms, error, \
         response_excerpt FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempted_at, id";
    pub const RETRY_NOW: &str = "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $4, \
         claimed_until = NULL WHERE merchant_id = $1 AND endpoint_id = $2 AND id = $3";
    pub const INSERT_ATTEMPT: &str = "INSERT INTO webhook_attempts (id, delivery_id, attempted_at, \
         status_code, duration_ms, error, response_excerpt) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    pub const DELIVERED: &str = "UPDATE webhook_deliveries SET status = 'delivered', \
         attempts = attempts + 1, delivered_at = $2, claimed_until = NULL, last_error = NULL \
         WHERE id = $1";
    pub const RETRY_LATER: &str = "UPDATE webhook_deliveries SET attempts = attempts + 1, \
         next_attempt_at = $2, claimed_until = NULL, last_error = $3 WHERE id = $1";
    pub const GIVE_UP: &str = "UPDATE webhook_deliveries SET status = 'failed', \
         attempts = attempts + 1, claimed_until = NULL, last_error = $2 WHERE id = $1";
    pub const ENDPOINT_SUCCEEDED: &str =
        "UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id = $1";
    /// Counts a failure; disables the endpoint when `$2` (a reason) is set or the count reaches
    /// `$3`. Disabling ends the events it is owed at the last event so far.
    pub const ENDPOINT_FAILED: &str = concat!(
        "UPDATE webhook_endpoints SET \
         consecutive_failures = consecutive_failures + 1, \
         enabled = CASE WHEN $2 IS NOT NULL OR consecutive_failures + 1 >= $3 THEN FALSE ELSE enabled END, \
         disabled_reason = CASE WHEN $2 IS NOT NULL THEN $2 \
             WHEN consecutive_failures + 1 >= $3 AND enabled = TRUE THEN $4 \
             ELSE disabled_reason END, \
         events_until_seq = CASE WHEN enabled = TRUE AND ($2 IS NOT NULL OR consecutive_failures + 1 >= $3) \
             THEN ",
        last_event!(),
        " ELSE events_until_seq END \
         WHERE id = $1 RETURNING enabled"
    );
    pub const BACKLOG: &str = "SELECT (SELECT COUNT(*) FROM events WHERE fanned_out_at IS NULL) \
         + (SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending')";
}
