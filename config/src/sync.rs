//! `[sync]`: how the backend pulls catalogs (schedules, timeouts, size caps, which addresses
//! and which S3 endpoint it may reach).

use serde::{Deserialize, Serialize};

/// Product sync's pulls and schedules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    /// How often each backend looks for scheduled syncs that are due and for runs whose backend
    /// died, in seconds.
    pub scheduler_interval_secs: u64,
    /// A run whose backend has reported no progress for this long is marked failed.
    pub stale_run_secs: u64,
    /// Longest a pull (connect, transfer) may take, in seconds.
    pub fetch_timeout_secs: u64,
    /// Largest file a pull may fetch, in bytes.
    pub max_fetch_bytes: u64,
    /// Let `api` and `ftp` sources resolve to loopback, private or link-local addresses (local
    /// development and tests); refused by default so a merchant cannot make the backend fetch
    /// from the internal network.
    pub allow_private_sources: bool,
    /// Region for `s3` sources.
    pub s3_region: String,
    /// Endpoint of an S3-compatible store (MinIO, Ceph, moto); unset means AWS.
    pub s3_endpoint: Option<String>,
    /// Let `s3` sources without `sourceAuth` use this backend's own AWS credentials (the usual
    /// `AWS_*` environment). Off by default: those credentials may read buckets of the operator
    /// or of other merchants.
    pub s3_environment_credentials: bool,
    /// Also accept platform pushes signed the original design's way: `X-Webhook-Signature`,
    /// the hex HMAC-SHA256 of the body alone, beside `X-Webhook-Timestamp`. Weaker: the
    /// signature does not cover the timestamp and carries no id, so a captured push can be sent
    /// again with a fresh timestamp and is applied again. Off by default; pushes are signed with
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    pub legacy_push_signatures: bool,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            scheduler_interval_secs: 30,
            stale_run_secs: 120,
            fetch_timeout_secs: 60,
            max_fetch_bytes: 100 * 1024 * 1024,
            allow_private_sources: false,
            s3_region: "us-east-1".to_owned(),
            s3_endpoint: None,
            s3_environment_credentials: false,
            legacy_push_signatures: false,
        }
    }
}
