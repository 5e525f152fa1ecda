//! Verifying a platform's push to `/sync/webhook`.
//!
//! Pushes are signed the Standard Webhooks way (standardwebhooks.com), as our own outbound
//! deliveries are, so a platform can sign them with the official libraries:
//! - `webhook-id`: the push's unique id (at most 256 visible ASCII characters);
//! - `webhook-timestamp`: Unix seconds, within five minutes of our clock;
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the
//!   base64 part of the configuration's `whsec_…` secret; several, space separated, pass when
//!   any one matches (a platform in the middle of a rotation).
//!
//! The signature covers the id and the timestamp, so a captured push cannot be re-dated; within
//! the five minutes the backend remembers the ids it applied ([`crate::store::Store::start_push_run`])
//! and acknowledges a repeated one without applying it again.
//!
//! The original design's scheme, `X-Webhook-Signature` (the hex HMAC of the body alone) with
//! `X-Webhook-Timestamp`, covers neither: a captured push re-sent with a fresh timestamp passes.
//! It is refused unless `sync.legacy_push_signatures` is on.
//!
//! Comparisons are constant-time, and a signature of the wrong length is a mismatch, not a crash.

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ApiError;
use crate::webhooks::sign;

pub(crate) const ID_HEADER: &str = "webhook-id";
pub(crate) const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub(crate) const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";
pub(crate) const LEGACY_SIGNATURE_HEADER: &str = "x-webhook-signature";
pub(crate) const LEGACY_TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// How far a push's timestamp may be from now.
pub(crate) const TOLERANCE_SECS: i64 = 300;
/// Longest `webhook-id` accepted (the official libraries send `msg_` and 27 characters).
const MAX_ID_LEN: usize = 256;

/// A push whose signature holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verified {
    /// Signed with Standard Webhooks: applied once per id.
    Standard { id: String },
    /// Signed the body-only way (`sync.legacy_push_signatures`): no id to remember.
    Legacy,
}

/// Checks a push; `secret` is `None` when the merchant has no sync configuration.
pub(crate) fn verify(
    secret: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    now_unix_secs: i64,
    legacy_allowed: bool,
) -> Result<Verified, ApiError> {
    let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(signatures) = header(STANDARD_SIGNATURE_HEADER) {
        let id = header(ID_HEADER)
            .filter(|id| is_usable_id(id))
            .ok_or_else(|| {
                refuse(
                    "webhook-id is required: the push's unique id (at most 256 visible ASCII \
                     characters)",
                )
            })?;
        let timestamp = header(STANDARD_TIMESTAMP_HEADER)
            .ok_or_else(|| refuse("webhook-timestamp is required: the Unix time in seconds"))?;
        check_fresh(timestamp, now_unix_secs, "webhook-timestamp")?;
        let secret = secret.ok_or_else(bad_signature)?;
        let expected = sign::standard_mac(secret, id, timestamp, body);
        let matches = signatures
            .split(' ')
            .filter_map(|candidate| candidate.strip_prefix("v1,"))
            .filter_map(|encoded| STANDARD.decode(encoded).ok())
            // verify_slice compares in constant time and fails on any other length.
            .any(|signature| expected.clone().verify_slice(&signature).is_ok());
        return if matches {
            Ok(Verified::Standard { id: id.to_owned() })
        } else {
            Err(bad_signature())
        };
    }
    if header(LEGACY_SIGNATURE_HEADER).is_none() {
        return Err(refuse(
            "webhook-signature is required: sign pushes with Standard Webhooks (webhook-id, \
             webhook-timestamp, webhook-signature)",
        ));
    }
    if !legacy_allowed {
        return Err(refuse(
            "X-Webhook-Signature (an HMAC of the body alone) is not accepted: sign pushes with \
             Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)",
        ));
    }
    verify_legacy(secret, headers, body, now_unix_secs).map(|()| Verified::Legacy)
}

/// The body-only scheme: `X-Webhook-Signature` is the hex HMAC-SHA256 of the raw body keyed by
/// the whole secret string (`sha256=` may prefix it), beside a fresh `X-Webhook-Timestamp`.
fn verify_legacy(
    secret: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    now_unix_secs: i64,
) -> Result<(), ApiError> {
    let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
    let timestamp = header(LEGACY_TIMESTAMP_HEADER)
        .ok_or_else(|| refuse("X-Webhook-Timestamp is required: the Unix time in seconds"))?;
    check_fresh(timestamp, now_unix_secs, "X-Webhook-Timestamp")?;
    let signature = header(LEGACY_SIGNATURE_HEADER)
        .map(|value| value.trim().trim_start_matches("sha256="))
        .and_then(|value| hex::decode(value).ok())
        .ok_or_else(|| {
            refuse("X-Webhook-Signature is required: the hex HMAC-SHA256 of the body")
        })?;
    let secret = secret.ok_or_else(bad_signature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| bad_signature())?;
    mac.update(body);
    mac.verify_slice(&signature).map_err(|_| bad_signature())
}

/// Whether `timestamp` (Unix seconds, as sent) is within the tolerance of now.
fn check_fresh(timestamp: &str, now_unix_secs: i64, header: &str) -> Result<(), ApiError> {
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| refuse(&format!("{header} must be the Unix time in seconds")))?;
    if now_unix_secs.abs_diff(seconds) > TOLERANCE_SECS.unsigned_abs() {
        return Err(refuse(&format!(
            "{header} is more than 5 minutes from now; send pushes as they happen"
        )));
    }
    Ok(())
}

/// A push id the store can keep and a log can show as is.
fn is_usable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

fn bad_signature() -> ApiError {
    refuse("The signature does not match the push and this merchant's webhook secret")
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

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"products":[]}"#;
    const PYTHON_SIGNATURE_OF_OLD_SECRET: &str = "v1,fCn/Rj4dqeEFhHeyuEQkcdWl5HWqJGXpkbdaVuGa6E4=";

    fn standard(secret: &str, id: &str, body: &[u8], timestamp: i64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let signature = sign::standard_signature(secret, id, timestamp, body);
        headers.insert(ID_HEADER, HeaderValue::from_str(id).unwrap());
        headers.insert(STANDARD_TIMESTAMP_HEADER, HeaderValue::from(timestamp));
        headers.insert(
            STANDARD_SIGNATURE_HEADER,
            HeaderValue::from_str(&signature).unwrap(),
        );
        headers
    }

    fn legacy(secret: &str, body: &[u8], timestamp: i64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let signature = sign::body_signature(secret, body);
        headers.insert(
            LEGACY_SIGNATURE_HEADER,
            HeaderValue::from_str(&signature).unwrap(),
        );
        headers.insert(LEGACY_TIMESTAMP_HEADER, HeaderValue::from(timestamp));
        headers
    }

    fn check(headers: &HeaderMap, body: &[u8], legacy_allowed: bool) -> Result<Verified, String> {
        verify(Some(SECRET), headers, body, NOW, legacy_allowed).map_err(|e| e.to_string())
    }

    #[test]
    fn a_fresh_standard_signature_of_these_exact_bytes_passes_with_its_id() {
        let headers = standard(SECRET, "msg_1", BODY, NOW);
        assert_eq!(
            check(&headers, BODY, false),
            Ok(Verified::Standard { id: "msg_1".into() })
        );
        assert!(check(&standard(SECRET, "msg_1", BODY, NOW - 299), BODY, false).is_ok());
        // Re-serialized JSON (a space added) is other bytes.
        assert!(check(&headers, br#"{"products": []}"#, false).is_err());
        // Another secret, a stale or future timestamp, no configuration.
        assert!(check(&standard("whsec_b3RoZXI=", "msg_1", BODY, NOW), BODY, false).is_err());
        assert!(check(&standard(SECRET, "msg_1", BODY, NOW - 301), BODY, false).is_err());
        assert!(check(&standard(SECRET, "msg_1", BODY, NOW + 301), BODY, false).is_err());
        assert!(verify(None, &headers, BODY, NOW, false).is_err());
    }

    #[test]
    fn the_id_and_timestamp_are_signed_so_a_replay_cannot_be_re_dated_or_renamed() {
        let captured = standard(SECRET, "msg_1", BODY, NOW - 400);
        let mut redated = captured.clone();
        redated.insert(STANDARD_TIMESTAMP_HEADER, HeaderValue::from(NOW));
        assert!(check(&redated, BODY, false).is_err());
        let mut renamed = standard(SECRET, "msg_1", BODY, NOW);
        renamed.insert(ID_HEADER, HeaderValue::from_static("msg_2"));
        assert!(check(&renamed, BODY, false).is_err());
    }

    #[test]
    fn one_matching_signature_among_several_passes() {
        let mut headers = standard(SECRET, "msg_1", BODY, NOW);
        let good = headers[STANDARD_SIGNATURE_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let list = format!("v1,AAAA v2,xyz {good}");
        headers.insert(
            STANDARD_SIGNATURE_HEADER,
            HeaderValue::from_str(&list).unwrap(),
        );
        assert!(check(&headers, BODY, false).is_ok());
        headers.insert(
            STANDARD_SIGNATURE_HEADER,
            HeaderValue::from_static("v1,AAAA v1,!!!"),
        );
        assert!(check(&headers, BODY, false).is_err());
    }

    #[test]
    fn missing_or_unusable_headers_are_refused() {
        for name in [ID_HEADER, STANDARD_TIMESTAMP_HEADER] {
            let mut headers = standard(SECRET, "msg_1", BODY, NOW);
            headers.remove(name);
            assert!(check(&headers, BODY, false).is_err(), "{name}");
        }
        let mut spaced = standard(SECRET, "msg 1", BODY, NOW);
        spaced.insert(ID_HEADER, HeaderValue::from_static("msg 1"));
        assert!(check(&spaced, BODY, false).is_err());
        let long = "m".repeat(MAX_ID_LEN + 1);
        assert!(check(&standard(SECRET, &long, BODY, NOW), BODY, false).is_err());
        assert!(check(&HeaderMap::new(), BODY, true).is_err());
    }

    #[test]
    fn body_only_signatures_pass_only_when_the_operator_allows_them() {
        let headers = legacy(SECRET, BODY, NOW);
        let refused = check(&headers, BODY, false).unwrap_err();
        assert!(refused.contains("Standard Webhooks"), "{refused}");
        assert_eq!(check(&headers, BODY, true), Ok(Verified::Legacy));
        assert!(check(&legacy(SECRET, BODY, NOW - 301), BODY, true).is_err());
        assert!(check(&legacy("whsec_other", BODY, NOW), BODY, true).is_err());
        let mut short = legacy(SECRET, BODY, NOW);
        short.insert(LEGACY_SIGNATURE_HEADER, HeaderValue::from_static("abcd"));
        assert!(check(&short, BODY, true).is_err());
    }

    #[test]
    fn older_sync_secrets_sign_as_the_official_libraries_read_them() {
        // Sync secrets made before pushes were Standard Webhooks: 43 letters and digits, which
        // the Python library decodes as unpadded base64 (trailing bits ignored). The signature
        // below is what `standardwebhooks.Webhook(old).sign("msg_1", 1700000000, body)` gives.
        let old = "whsec_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
        let headers = standard(old, "msg_1", BODY, NOW);
        assert_eq!(
            headers[STANDARD_SIGNATURE_HEADER].to_str().unwrap(),
            PYTHON_SIGNATURE_OF_OLD_SECRET
        );
        assert!(verify(Some(old), &headers, BODY, NOW, false).is_ok());
    }
}

#[cfg(test)]
mod properties {
    use axum::http::{HeaderValue, StatusCode};
    use base64::Engine as _;
    use proptest::prelude::*;

    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn secret() -> impl Strategy<Value = String> {
        prop::collection::vec(any::<u8>(), 16..40)
            .prop_map(|key| format!("whsec_{}", STANDARD.encode(key)))
    }

    fn push_id() -> impl Strategy<Value = String> {
        prop_oneof![3 => "msg_[A-Za-z0-9]{27}", 1 => "[!-~]{1,256}"]
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..200)
    }

    /// A signature as a merchant's platform makes it with the official libraries (and as
    /// `tests/support/pipeline.rs` does): HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed by
    /// the base64 part of the secret, written `v1,<base64>`.
    fn platform_signature(secret: &str, id: &[u8], timestamp: &[u8], body: &[u8]) -> String {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
            .expect("a base64 secret");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
        for part in [id, b".", timestamp, b".", body] {
            mac.update(part);
        }
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The headers, or `None` when one cannot be a header value at all (no HTTP request
    /// could carry it).
    fn headers(values: &[(&'static str, &[u8])]) -> Option<HeaderMap> {
        let mut headers = HeaderMap::new();
        for (name, value) in values {
            headers.insert(*name, HeaderValue::from_bytes(value).ok()?);
        }
        Some(headers)
    }

    fn standard_push(id: &[u8], timestamp: &[u8], signature: &[u8]) -> Option<HeaderMap> {
        headers(&[
            (ID_HEADER, id),
            (STANDARD_TIMESTAMP_HEADER, timestamp),
            (STANDARD_SIGNATURE_HEADER, signature),
        ])
    }

    /// The 401 `INVALID_SIGNATURE` every refused push gets.
    fn is_refusal(result: &Result<Verified, ApiError>) -> bool {
        matches!(result, Err(error @ ApiError::Unauthorized { code: "INVALID_SIGNATURE", .. })
            if error.to_failure().0 == StatusCode::UNAUTHORIZED)
    }

    /// Which part of a push an attacker changes.
    #[derive(Debug, Clone, Copy)]
    enum Part {
        Body,
        Id,
        Timestamp,
        Signature,
    }

    proptest! {
        /// A push signed as the platforms sign it, within five minutes of our clock, is
        /// accepted with its id, alone or among signatures by other secrets (a rotation).
        #[test]
        fn platform_signed_pushes_verify(
            secret in secret(),
            id in push_id(),
            body in body(),
            offset in -TOLERANCE_SECS..=TOLERANCE_SECS,
            rotation in prop::option::of((secret(), any::<bool>())),
        ) {
            let timestamp = (NOW + offset).to_string();
            let (id_bytes, time_bytes) = (id.as_bytes(), timestamp.as_bytes());
            let mut signature = platform_signature(&secret, id_bytes, time_bytes, &body);
            if let Some((other, first)) = rotation {
                let other = platform_signature(&other, id_bytes, time_bytes, &body);
                signature = if first {
                    format!("{other} {signature}")
                } else {
                    format!("{signature} {other}")
                };
            }
            let headers = standard_push(id_bytes, time_bytes, signature.as_bytes()).expect("text");
            for legacy_allowed in [false, true] {
                prop_assert_eq!(
                    verify(Some(&secret), &headers, &body, NOW, legacy_allowed).ok(),
                    Some(Verified::Standard { id: id.clone() })
                );
            }
        }

        /// Any one byte of the body, the id, the timestamp or the signature changed, and the
        /// push is refused.
        #[test]
        fn a_push_with_any_byte_changed_is_refused(
            secret in secret(),
            id in push_id(),
            body in body(),
            offset in -TOLERANCE_SECS..=TOLERANCE_SECS,
            part in prop::sample::select(
                vec![Part::Body, Part::Id, Part::Timestamp, Part::Signature]
            ),
            at in any::<usize>(),
            replacement in any::<u8>(),
        ) {
            let timestamp = (NOW + offset).to_string();
            let signature = platform_signature(&secret, id.as_bytes(), timestamp.as_bytes(), &body);
            let (mut body, mut id, mut timestamp, mut signature) =
                (body, id.into_bytes(), timestamp.into_bytes(), signature.into_bytes());
            let bytes = match part {
                Part::Body => &mut body,
                Part::Id => &mut id,
                Part::Timestamp => &mut timestamp,
                Part::Signature => &mut signature,
            };
            if bytes.is_empty() {
                bytes.push(replacement);
            } else {
                let at = at % bytes.len();
                prop_assume!(bytes[at] != replacement);
                bytes[at] = replacement;
            }
            let Some(headers) = standard_push(&id, &timestamp, &signature) else {
                return Ok(());
            };
            for legacy_allowed in [false, true] {
                let result = verify(Some(&secret), &headers, &body, NOW, legacy_allowed);
                prop_assert!(is_refusal(&result), "{:?} changed, got {:?}", part, result);
            }
        }

        /// A correctly signed push is accepted exactly while its timestamp is within five
        /// minutes of our clock, either side.
        #[test]
        fn only_fresh_pushes_verify(
            secret in secret(),
            id in push_id(),
            body in body(),
            offset in prop_oneof![-400i64..400, any::<i64>()],
        ) {
            let timestamp = NOW.saturating_add(offset).to_string();
            let (id_bytes, time_bytes) = (id.as_bytes(), timestamp.as_bytes());
            let signature = platform_signature(&secret, id_bytes, time_bytes, &body);
            let headers = standard_push(id_bytes, time_bytes, signature.as_bytes()).expect("text");
            let result = verify(Some(&secret), &headers, &body, NOW, false);
            if NOW.abs_diff(NOW.saturating_add(offset)) <= TOLERANCE_SECS.unsigned_abs() {
                prop_assert_eq!(result.ok(), Some(Verified::Standard { id }));
            } else {
                prop_assert!(is_refusal(&result), "{:?}", result);
            }
        }

        /// Headers a caller made up (any bytes, plausible shapes, any of them missing), with or
        /// without a configured secret and the body-only scheme, are refused, never a panic.
        #[test]
        fn made_up_pushes_are_refused(
            secret in prop::option::of(secret()),
            values in prop::collection::vec(
                prop::option::of(prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..60),
                    (NOW - 300..NOW + 300).prop_map(|t| t.to_string().into_bytes()),
                    prop::collection::vec(any::<u8>(), 32)
                        .prop_map(|mac| format!("v1,{} v1,", STANDARD.encode(mac)).into_bytes()),
                    prop::collection::vec(any::<u8>(), 32)
                        .prop_map(|mac| format!("sha256={}", hex::encode(mac)).into_bytes()),
                    push_id().prop_map(String::into_bytes),
                ]),
                5,
            ),
            body in body(),
            legacy_allowed in any::<bool>(),
        ) {
            let names = [
                ID_HEADER,
                STANDARD_TIMESTAMP_HEADER,
                STANDARD_SIGNATURE_HEADER,
                LEGACY_SIGNATURE_HEADER,
                LEGACY_TIMESTAMP_HEADER,
            ];
            let mut headers = HeaderMap::new();
            for (name, value) in names.into_iter().zip(values) {
                if let Some(value) = value.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
                    headers.insert(name, value);
                }
            }
            let result = verify(secret.as_deref(), &headers, &body, NOW, legacy_allowed);
            prop_assert!(is_refusal(&result), "{:?}", result);
        }

        /// A body-only signature passes only when the operator allows the scheme, and only
        /// for the exact body.
        #[test]
        fn body_only_signatures_pass_only_when_allowed_and_exact(
            secret in secret(),
            body in body(),
            offset in -TOLERANCE_SECS..=TOLERANCE_SECS,
            at in any::<usize>(),
            flip in 1u8..,
        ) {
            // The original design's scheme: hex HMAC of the body, keyed by the whole secret.
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
            mac.update(&body);
            let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            let timestamp = (NOW + offset).to_string();
            let headers = headers(&[
                (LEGACY_SIGNATURE_HEADER, signature.as_bytes()),
                (LEGACY_TIMESTAMP_HEADER, timestamp.as_bytes()),
            ])
            .expect("header text");
            let allowed = verify(Some(&secret), &headers, &body, NOW, true);
            prop_assert_eq!(allowed.ok(), Some(Verified::Legacy));
            prop_assert!(is_refusal(&verify(Some(&secret), &headers, &body, NOW, false)));
            let mut changed = body.clone();
            match changed.len() {
                0 => changed.push(flip),
                len => changed[at % len] ^= flip,
            }
            prop_assert!(is_refusal(&verify(Some(&secret), &headers, &changed, NOW, true)));
        }
    }
}
