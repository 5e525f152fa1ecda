//! Verifies a mindshop webhook delivery: its signature, in either scheme, and its timestamp.
//!
//! Dependencies: `hmac = "0.12"`, `sha2 = "0.10"`, `base64 = "0.22"`, `hex = "0.4"`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far a delivery's timestamp may be from our clock, either way, in seconds.
pub const TOLERANCE_SECS: u64 = 5 * 60;

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The configured secret is not `whsec_` followed by base64.
    InvalidSecret,
    /// A header the delivery needs is absent; its name.
    MissingHeader(&'static str),
    /// The timestamp header is not a whole number of seconds.
    InvalidTimestamp,
    /// The timestamp is more than [`TOLERANCE_SECS`] from our clock: a replayed delivery, or
    /// a clock far off. `age_secs` is negative for a timestamp in the future.
    StaleTimestamp { age_secs: i64 },
    /// No signature matches: the body was changed, another secret signed it, or the signature
    /// is malformed.
    SignatureMismatch,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSecret => f.write_str("the webhook secret is not whsec_ and base64"),
            Self::MissingHeader(name) => write!(f, "the {name} header is missing"),
            Self::InvalidTimestamp => f.write_str("the timestamp is not a number of seconds"),
            Self::StaleTimestamp { age_secs } => {
                write!(
                    f,
                    "the timestamp is {age_secs} s from now (at most {TOLERANCE_SECS} s)"
                )
            }
            Self::SignatureMismatch => f.write_str("no signature matches"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Verifies one delivery before anything else reads it.
///
/// - `secret`: the endpoint's secret, `whsec_…`, as shown when the endpoint was created.
/// - `headers`: the request's headers, names in any case.
/// - `body`: the raw body bytes exactly as received, never a re-serialized object.
/// - `now_unix`: the current time in Unix seconds.
///
/// The Standard Webhooks signature (`webhook-signature`) decides when it is present: it covers
/// the event id and the timestamp as well as the body, and during a secret rotation it carries
/// a signature by the old secret too. Without it, the hex signature of the body
/// (`X-Webhook-Signature`) and `X-Webhook-Timestamp` are checked.
pub fn verify(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_unix: i64,
) -> Result<(), VerifyError> {
    let standard_key = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| BASE64.decode(encoded).ok())
        .filter(|key| !key.is_empty())
        .ok_or(VerifyError::InvalidSecret)?;
    if let Some(signatures) = header(headers, "webhook-signature") {
        let id = required(headers, "webhook-id")?;
        let timestamp = required(headers, "webhook-timestamp")?;
        check_timestamp(timestamp, now_unix)?;
        let mut mac = keyed(&standard_key);
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        // One signature, or two during a rotation ("v1,<new> v1,<old>"): any may match.
        // `verify_slice` compares in constant time and refuses a tag of another length.
        let matches = signatures
            .split_whitespace()
            .filter_map(|signature| signature.strip_prefix("v1,"))
            .filter_map(|encoded| BASE64.decode(encoded).ok())
            .any(|tag| mac.clone().verify_slice(&tag).is_ok());
        return if matches {
            Ok(())
        } else {
            Err(VerifyError::SignatureMismatch)
        };
    }
    let signature = header(headers, "x-webhook-signature")
        .ok_or(VerifyError::MissingHeader("webhook-signature"))?;
    let timestamp = required(headers, "x-webhook-timestamp")?;
    // The hex signature does not cover the timestamp, so a captured delivery could be sent
    // again with a fresh one: deduplicating by the event id in the signed body stops that.
    check_timestamp(timestamp, now_unix)?;
    let tag = hex::decode(signature.trim()).map_err(|_| VerifyError::SignatureMismatch)?;
    let mut mac = keyed(secret.as_bytes());
    mac.update(body);
    mac.verify_slice(&tag)
        .map_err(|_| VerifyError::SignatureMismatch)
}

/// A header's value by name, in any case.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn required<'a>(
    headers: &'a [(String, String)],
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    header(headers, name).ok_or(VerifyError::MissingHeader(name))
}

fn check_timestamp(timestamp: &str, now_unix: i64) -> Result<(), VerifyError> {
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::InvalidTimestamp)?;
    if now_unix.abs_diff(sent) > TOLERANCE_SECS {
        return Err(VerifyError::StaleTimestamp {
            age_secs: now_unix.saturating_sub(sent),
        });
    }
    Ok(())
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length; this cannot fail.
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}
