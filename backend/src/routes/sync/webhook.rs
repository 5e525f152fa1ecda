//! Verifying a platform's push to `/sync/webhook`: `X-Webhook-Signature` is the hex HMAC-SHA256
//! of the raw body with the configuration's webhook secret (`sha256=` may prefix it), and
//! `X-Webhook-Timestamp` (Unix seconds) must be within five minutes of our clock. The
//! comparison is constant-time, and a signature of the wrong length is a mismatch, not a crash.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ApiError;

pub(crate) const SIGNATURE_HEADER: &str = "x-webhook-signature";
pub(crate) const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// How far a push's timestamp may be from now.
pub(crate) const TOLERANCE_SECS: i64 = 300;

/// Checks a push; `secret` is `None` when the merchant has no sync configuration.
pub(crate) fn verify(
    secret: Option<&[u8]>,
    headers: &HeaderMap,
    body: &[u8],
    now_unix_secs: i64,
) -> Result<(), ApiError> {
    let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
    let timestamp: i64 = header(TIMESTAMP_HEADER)
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| refuse("X-Webhook-Timestamp is required: the Unix time in seconds"))?;
    if (now_unix_secs - timestamp).abs() > TOLERANCE_SECS {
        return Err(refuse(
            "X-Webhook-Timestamp is more than 5 minutes from now; send pushes as they happen",
        ));
    }
    let signature = header(SIGNATURE_HEADER)
        .map(|value| value.trim().trim_start_matches("sha256="))
        .and_then(|value| hex::decode(value).ok())
        .ok_or_else(|| {
            refuse("X-Webhook-Signature is required: the hex HMAC-SHA256 of the body")
        })?;
    let secret = secret.ok_or_else(bad_signature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| bad_signature())?;
    mac.update(body);
    // verify_slice compares in constant time and fails on any other length.
    mac.verify_slice(&signature).map_err(|_| bad_signature())
}

fn bad_signature() -> ApiError {
    refuse("The signature does not match the body and this merchant's webhook secret")
}

fn refuse(message: &str) -> ApiError {
    ApiError::Unauthorized {
        code: "INVALID_SIGNATURE",
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn signed(secret: &[u8], body: &[u8], timestamp: i64) -> HeaderMap {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        let mut headers = HeaderMap::new();
        let signature = hex::encode(mac.finalize().into_bytes());
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).unwrap());
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from(timestamp));
        headers
    }

    #[test]
    fn only_a_fresh_signature_of_these_exact_bytes_passes() {
        let (secret, body, now) = (
            b"whsec_test".as_slice(),
            br#"{"products":[]}"#,
            1_700_000_000,
        );
        assert!(verify(Some(secret), &signed(secret, body, now), body, now).is_ok());
        assert!(verify(Some(secret), &signed(secret, body, now - 299), body, now).is_ok());
        // Re-serialized JSON (a space added) is other bytes.
        assert!(
            verify(
                Some(secret),
                &signed(secret, body, now),
                br#"{"products": []}"#,
                now
            )
            .is_err()
        );
        assert!(verify(Some(b"other"), &signed(secret, body, now), body, now).is_err());
        assert!(verify(Some(secret), &signed(secret, body, now - 301), body, now).is_err());
        assert!(verify(None, &signed(secret, body, now), body, now).is_err());

        let mut short = signed(secret, body, now);
        short.insert(SIGNATURE_HEADER, HeaderValue::from_static("abcd"));
        assert!(verify(Some(secret), &short, body, now).is_err());
        let mut missing = signed(secret, body, now);
        missing.remove(TIMESTAMP_HEADER);
        assert!(verify(Some(secret), &missing, body, now).is_err());
    }
}
