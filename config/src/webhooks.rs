//! `[webhooks]`: how outbound webhooks are delivered.

use serde::{Deserialize, Serialize};

/// Delivery of outbox events to merchants' endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Waits before each retry of a failed delivery, in seconds; a delivery gets one attempt
    /// plus one per entry.
    pub retry_schedule_secs: Vec<u64>,
    /// An answer must come within this long, in seconds.
    pub timeout_secs: u64,
    /// An endpoint is disabled after this many failed attempts in a row.
    pub max_consecutive_failures: u32,
    /// Let endpoints use `http://` (development); `https://` only by default.
    pub allow_http: bool,
    /// Let endpoints resolve to loopback, private or link-local addresses (development, tests).
    pub allow_private_destinations: bool,
    /// How often each backend looks for events to deliver, in milliseconds.
    pub dispatch_interval_ms: u64,
    /// Deliveries one backend sends at once.
    pub concurrency: u32,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            retry_schedule_secs: vec![60, 300, 900],
            timeout_secs: 5,
            max_consecutive_failures: 10,
            allow_http: false,
            allow_private_destinations: false,
            dispatch_interval_ms: 500,
            concurrency: 16,
        }
    }
}
