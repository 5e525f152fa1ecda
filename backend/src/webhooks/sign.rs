//! Endpoint secrets and the two signatures every delivery carries.
//!
//! - `X-Webhook-Signature`: lowercase hex of HMAC-SHA256 over the raw body, keyed by the whole
//!   secret string (`whsec_…`): the original design's scheme.
//! - `webhook-signature` (Standard Webhooks): `v1,` + base64 of HMAC-SHA256 over
//!   `{id}.{timestamp}.{body}`, keyed by the base64-decoded part of the secret after `whsec_`;
//!   during a rotation one signature per secret, space separated, the new one first.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// A new secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", STANDARD.encode(bytes))
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key"))
}

/// `X-Webhook-Signature` of `body`.
pub fn body_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = mac(secret.as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// One `v1,<base64>` signature of the Standard Webhooks scheme.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = standard_mac(secret, id, &timestamp.to_string(), body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The Standard Webhooks HMAC over `{id}.{timestamp}.{body}`, not yet finalized, so that a
/// verifier can compare it in constant time (`verify_slice`). `timestamp` is the header's text
/// as sent. The key is the base64 part of the secret after `whsec_`, read as leniently as the
/// official libraries read it (padding optional, trailing bits ignored), so the sync secrets
/// made before pushes used this scheme (43 letters and digits) sign alike on both sides; a
/// secret that is not base64 at all is its own bytes.
pub fn standard_mac(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let key = secret
        .strip_prefix(PREFIX)
        .and_then(|encoded| LENIENT.decode(encoded).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let mut mac = mac(&key);
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_decodable() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&a[6..]).unwrap().len(), 32);
    }

    /// The Standard Webhooks specification's own example (standardwebhooks.com).
    #[test]
    fn the_standard_signature_matches_the_specification() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            standard_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn the_body_signature_is_hex_hmac_of_the_body_alone() {
        let signature = body_signature("whsec_abc", b"{}");
        assert_eq!(signature.len(), 64);
        assert_ne!(signature, body_signature("whsec_abd", b"{}"));
        assert_ne!(signature, body_signature("whsec_abc", b"{ }"));
    }
}
