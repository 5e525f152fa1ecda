//! Portal JWTs: one pinned algorithm (`auth.jwt_algorithm`), `exp`/`nbf` with leeway, `iss`
//! and `aud` required and matched when configured, a longest lifetime when configured, and the
//! merchant-access rule.
//!
//! Pinning means a token's own `alg` header is never trusted: `none`, and HS256 tokens signed
//! with an RSA public key as the HMAC secret (the classic confusion), fail as "wrong algorithm".

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mindshop_config::JwtAlgorithm;
use serde::Deserialize;

use crate::Rejection;

/// The claims the portal's tokens carry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PortalClaims {
    pub sub: String,
    /// The merchant the user belongs to; absent for a pure admin.
    #[serde(rename = "merchantId", default)]
    pub merchant_id: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

impl PortalClaims {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role == "admin")
    }

    /// `/api/merchants/:id/**` needs `merchantId == :id` or the `admin` role.
    pub fn may_access(&self, merchant_id: &str) -> bool {
        self.is_admin() || self.merchant_id.as_deref() == Some(merchant_id)
    }
}

/// What a token is decoded into: the claims, and `exp` for the lifetime check (jsonwebtoken
/// checks `exp` itself but does not hand it out). `f64`, as jsonwebtoken accepts a fractional
/// `exp` too.
#[derive(Deserialize)]
struct Decoded {
    #[serde(flatten)]
    claims: PortalClaims,
    exp: f64,
}

/// Why a token was refused; the `reason` label of `mindshop_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtRefusal {
    Expired,
    NotYetValid,
    BadSignature,
    WrongAlgorithm,
    WrongIssuer,
    MissingIssuer,
    WrongAudience,
    MissingAudience,
    /// `exp` lies further ahead than `auth.jwt_max_lifetime_secs` (plus the leeway).
    LifetimeTooLong,
    Malformed,
}

impl JwtRefusal {
    pub fn label(self) -> &'static str {
        match self {
            Self::Expired => "jwt_expired",
            Self::NotYetValid => "jwt_not_yet_valid",
            Self::BadSignature => "jwt_bad_signature",
            Self::WrongAlgorithm => "jwt_wrong_algorithm",
            Self::WrongIssuer => "jwt_wrong_issuer",
            Self::MissingIssuer => "jwt_missing_issuer",
            Self::WrongAudience => "jwt_wrong_audience",
            Self::MissingAudience => "jwt_missing_audience",
            Self::LifetimeTooLong => "jwt_lifetime_too_long",
            Self::Malformed => "jwt_malformed",
        }
    }

    pub fn rejection(self) -> Rejection {
        let message = match self {
            Self::Expired => "The token has expired",
            Self::NotYetValid => "The token is not valid yet",
            Self::BadSignature => "The token's signature is invalid",
            Self::WrongAlgorithm => {
                "The token is signed with an algorithm this API does not accept"
            }
            Self::WrongIssuer => "The token was issued by someone else",
            Self::MissingIssuer => "The token has no issuer (iss claim); this API requires one",
            Self::WrongAudience => "The token is meant for another audience",
            Self::MissingAudience => "The token has no audience (aud claim); this API requires one",
            Self::LifetimeTooLong => {
                "The token expires further ahead than this API accepts; request a shorter-lived one"
            }
            Self::Malformed => "The token is malformed",
        };
        Rejection::new(401, "INVALID_TOKEN", message)
    }
}

/// Verifies portal tokens.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    /// Latest `exp` accepted, as seconds from now (`auth.jwt_max_lifetime_secs` plus the
    /// leeway); `None` for no bound.
    max_exp_ahead_secs: Option<u64>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// What a verifier is built from.
#[derive(Debug, Clone, Copy)]
pub struct JwtSettings<'a> {
    pub algorithm: JwtAlgorithm,
    /// The HMAC secret for HS256, or the PEM public key for RS256/ES256.
    pub key: &'a [u8],
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub leeway_secs: u64,
    /// Longest a token may still be valid, counted from now (`auth.jwt_max_lifetime_secs`).
    pub max_lifetime_secs: Option<u64>,
}

impl JwtVerifier {
    pub fn new(settings: JwtSettings<'_>) -> Result<Self, String> {
        let (algorithm, key) = match settings.algorithm {
            JwtAlgorithm::Hs256 => (Algorithm::HS256, DecodingKey::from_secret(settings.key)),
            JwtAlgorithm::Rs256 => (
                Algorithm::RS256,
                DecodingKey::from_rsa_pem(settings.key)
                    .map_err(|e| format!("auth.jwt_public_key_file: not an RSA public key: {e}"))?,
            ),
            JwtAlgorithm::Es256 => (
                Algorithm::ES256,
                DecodingKey::from_ec_pem(settings.key)
                    .map_err(|e| format!("auth.jwt_public_key_file: not an EC public key: {e}"))?,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = settings.leeway_secs;
        validation.validate_nbf = true;
        // jsonwebtoken matches `iss` and `aud` only when a token has them; a configured one is
        // also made required, or a token that leaves the claim out would pass.
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = settings.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let max_exp_ahead_secs = settings
            .max_lifetime_secs
            .map(|max| max.saturating_add(settings.leeway_secs));
        Ok(Self {
            key,
            validation,
            max_exp_ahead_secs,
        })
    }

    pub fn verify(&self, token: &str) -> Result<PortalClaims, JwtRefusal> {
        let decoded = jsonwebtoken::decode::<Decoded>(token, &self.key, &self.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => JwtRefusal::Expired,
                ErrorKind::ImmatureSignature => JwtRefusal::NotYetValid,
                ErrorKind::InvalidSignature => JwtRefusal::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    JwtRefusal::WrongAlgorithm
                }
                ErrorKind::InvalidIssuer => JwtRefusal::WrongIssuer,
                ErrorKind::InvalidAudience => JwtRefusal::WrongAudience,
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => {
                    JwtRefusal::MissingIssuer
                }
                ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => {
                    JwtRefusal::MissingAudience
                }
                _ => JwtRefusal::Malformed,
            })?
            .claims;
        // A stolen long-lived token stays useful for its whole life: bound it. jsonwebtoken
        // has no such check, so it is made here on the `exp` it already validated.
        if let Some(ahead) = self.max_exp_ahead_secs {
            let latest = jsonwebtoken::get_current_timestamp().saturating_add(ahead);
            if decoded.exp > latest as f64 {
                return Err(JwtRefusal::LifetimeTooLong);
            }
        }
        Ok(decoded.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"a-portal-secret-of-at-least-32-bytes!!";

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(JwtSettings {
            algorithm: JwtAlgorithm::Hs256,
            key: SECRET,
            issuer: None,
            audience: None,
            leeway_secs: 5,
            max_lifetime_secs: None,
        })
        .unwrap()
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn token(claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn accepts_a_valid_token_and_applies_the_merchant_rule() {
        let claims = verifier()
            .verify(&token(
                json!({"sub": "u1", "merchantId": "acme", "exp": now() + 60}),
                SECRET,
            ))
            .unwrap();
        assert_eq!(claims.sub, "u1");
        assert!(claims.may_access("acme"));
        assert!(!claims.may_access("other"));
        let admin = PortalClaims {
            sub: "a".into(),
            merchant_id: None,
            roles: vec!["admin".into()],
        };
        assert!(admin.may_access("other"));
    }

    #[test]
    fn refuses_expired_forged_unsigned_and_premature_tokens() {
        let v = verifier();
        let expired = token(json!({"sub": "u", "exp": now() - 60}), SECRET);
        assert_eq!(v.verify(&expired), Err(JwtRefusal::Expired));
        let forged = token(
            json!({"sub": "u", "exp": now() + 60}),
            b"another-secret-another-secret-xx",
        );
        assert_eq!(v.verify(&forged), Err(JwtRefusal::BadSignature));
        let early = token(
            json!({"sub": "u", "exp": now() + 600, "nbf": now() + 300}),
            SECRET,
        );
        assert_eq!(v.verify(&early), Err(JwtRefusal::NotYetValid));

        // alg: none — header {"alg":"none","typ":"JWT"}, no signature.
        let b64 = |v: serde_json::Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"})),
            b64(json!({"sub": "u", "merchantId": "acme", "exp": now() + 60}))
        );
        assert!(matches!(
            v.verify(&none),
            Err(JwtRefusal::WrongAlgorithm | JwtRefusal::Malformed)
        ));
        assert_eq!(v.verify("not a token"), Err(JwtRefusal::Malformed));
        let no_exp = token(json!({"sub": "u"}), SECRET);
        assert_eq!(v.verify(&no_exp), Err(JwtRefusal::Malformed));
    }

    #[test]
    fn issuer_and_audience_are_enforced_when_configured() {
        let v = JwtVerifier::new(JwtSettings {
            algorithm: JwtAlgorithm::Hs256,
            key: SECRET,
            issuer: Some("https://portal.mindshop"),
            audience: Some("mindshop-api"),
            leeway_secs: 0,
            max_lifetime_secs: None,
        })
        .unwrap();
        let good = json!({"sub": "u", "exp": now() + 60, "iss": "https://portal.mindshop", "aud": "mindshop-api"});
        assert!(v.verify(&token(good, SECRET)).is_ok());
        let other_iss = json!({"sub": "u", "exp": now() + 60, "iss": "x", "aud": "mindshop-api"});
        assert_eq!(
            v.verify(&token(other_iss, SECRET)),
            Err(JwtRefusal::WrongIssuer)
        );
        let other_aud =
            json!({"sub": "u", "exp": now() + 60, "iss": "https://portal.mindshop", "aud": "x"});
        assert_eq!(
            v.verify(&token(other_aud, SECRET)),
            Err(JwtRefusal::WrongAudience)
        );

        // Configured means required: a token that leaves the claim out does not pass.
        let no_iss = json!({"sub": "u", "exp": now() + 60, "aud": "mindshop-api"});
        assert_eq!(
            v.verify(&token(no_iss, SECRET)),
            Err(JwtRefusal::MissingIssuer)
        );
        let no_aud = json!({"sub": "u", "exp": now() + 60, "iss": "https://portal.mindshop"});
        assert_eq!(
            v.verify(&token(no_aud, SECRET)),
            Err(JwtRefusal::MissingAudience)
        );
        for refusal in [JwtRefusal::MissingIssuer, JwtRefusal::MissingAudience] {
            let rejection = refusal.rejection();
            assert_eq!(rejection.status, 401);
            assert_eq!(rejection.failure.code, "INVALID_TOKEN");
            assert!(rejection.failure.error.contains("claim"), "{rejection:?}");
        }
    }

    #[test]
    fn without_issuer_or_audience_configured_tokens_need_neither() {
        let bare = json!({"sub": "u", "exp": now() + 60});
        assert!(verifier().verify(&token(bare, SECRET)).is_ok());
    }

    #[test]
    fn a_token_living_longer_than_the_configured_maximum_is_refused() {
        let v = JwtVerifier::new(JwtSettings {
            algorithm: JwtAlgorithm::Hs256,
            key: SECRET,
            issuer: None,
            audience: None,
            leeway_secs: 30,
            max_lifetime_secs: Some(3600),
        })
        .unwrap();
        let expiring_in = |secs: i64| token(json!({"sub": "u", "exp": now() + secs}), SECRET);
        assert!(v.verify(&expiring_in(3000)).is_ok());
        // Within the leeway of the maximum: a clock a little ahead of ours.
        assert!(v.verify(&expiring_in(3600 + 20)).is_ok());
        assert_eq!(
            v.verify(&expiring_in(3600 + 120)),
            Err(JwtRefusal::LifetimeTooLong)
        );
        assert_eq!(
            v.verify(&expiring_in(10 * 365 * 24 * 3600)),
            Err(JwtRefusal::LifetimeTooLong)
        );
        // No maximum configured: a long-lived token is the issuer's business.
        assert!(
            verifier()
                .verify(&expiring_in(10 * 365 * 24 * 3600))
                .is_ok()
        );
    }
}
