//! API keys: their shape, their hash and the permission catalogue.
//!
//! A key looks like `pk_test_<32 base62 chars>` (publishable, safe in a browser) or
//! `sk_live_<…>` (secret, server side only). It is shown once when created; the store keeps
//! only its SHA-256 (hex) and a short prefix for people to recognise it by.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// Random characters after `pk_test_`: 32 base62 characters, about 190 bits.
const SECRET_LEN: usize = 32;
/// Characters of the key kept in clear for display: `pk_test_` plus four random ones.
const DISPLAY_PREFIX_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `pk_`: embedded in a store's pages; browser-safe permissions only.
    Publishable,
    /// `sk_`: for the merchant's servers.
    Secret,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publishable => "publishable",
            Self::Secret => "secret",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Publishable => "pk",
            Self::Secret => "sk",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "publishable" => Some(Self::Publishable),
            "secret" => Some(Self::Secret),
            _ => None,
        }
    }

    /// Permissions a new key of this kind gets when none are asked for.
    pub fn default_permissions(self) -> Vec<String> {
        match self {
            Self::Publishable => BROWSER_SAFE.iter().map(|p| (*p).to_owned()).collect(),
            Self::Secret => vec!["*".to_owned()],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEnv {
    Test,
    Live,
}

impl KeyEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Live => "live",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "test" => Some(Self::Test),
            "live" => Some(Self::Live),
            _ => None,
        }
    }
}

/// A freshly generated key: the plaintext (to show once), its hash and display prefix.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    pub plaintext: String,
    pub hash: String,
    pub prefix: String,
}

pub fn generate(kind: KeyKind, env: KeyEnv) -> GeneratedKey {
    let random: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect();
    let plaintext = format!("{}_{}_{random}", kind.tag(), env.as_str());
    GeneratedKey {
        hash: hash(&plaintext),
        prefix: plaintext[..DISPLAY_PREFIX_LEN].to_owned(),
        plaintext,
    }
}

/// SHA-256 of the key, lowercase hex: what the store keeps and looks keys up by.
pub fn hash(plaintext: &str) -> String {
    hash_of(&digest(plaintext))
}

/// SHA-256 of the key, as bytes (what the edge's key cache is keyed by).
pub fn digest(plaintext: &str) -> [u8; 32] {
    Sha256::digest(plaintext.as_bytes()).into()
}

/// [`hash`] from a [`digest`] already taken.
pub fn hash_of(digest: &[u8; 32]) -> String {
    crate::lower_hex(digest)
}

/// Every permission a key may hold. `*` grants everything; `<resource>:*` every permission
/// of that resource.
pub const PERMISSIONS: &[&str] = &[
    "*",
    "chat:*",
    "chat:write",
    "sessions:*",
    "sessions:read",
    "sessions:write",
    "documents:*",
    "documents:read",
    "documents:write",
    "products:*",
    "products:read",
    "products:write",
    "sync:*",
    "sync:read",
    "sync:write",
    "webhooks:*",
    "webhooks:read",
    "webhooks:write",
];

/// What a publishable key may hold: what the widget needs in a shopper's browser.
pub const BROWSER_SAFE: &[&str] = &[
    "chat:write",
    "sessions:read",
    "sessions:write",
    "documents:read",
    "products:read",
];

/// Whether the permissions a key holds grant `required`: the permission itself, `*`, or the
/// resource's wildcard (`documents:*` grants `documents:read` and `documents:write`).
pub fn permission_grants(held: &[String], required: &str) -> bool {
    let resource = required.split_once(':').map(|(resource, _)| resource);
    held.iter().any(|permission| {
        permission == "*"
            || permission == required
            || resource.is_some_and(|resource| {
                permission
                    .strip_suffix(":*")
                    .is_some_and(|held| held == resource)
            })
    })
}

/// Why a permission list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    #[error("unknown permission {0:?}; known permissions: {known}", known = PERMISSIONS.join(", "))]
    Unknown(String),
    #[error("a publishable key may not hold {0:?}; it may hold only {safe}", safe = BROWSER_SAFE.join(", "))]
    NotBrowserSafe(String),
}

/// Checks names against the catalogue and the key kind; returns them sorted, deduplicated.
pub fn validate_permissions(
    kind: KeyKind,
    requested: &[String],
) -> Result<Vec<String>, PermissionError> {
    let mut permissions = Vec::with_capacity(requested.len());
    for permission in requested {
        if !PERMISSIONS.contains(&permission.as_str()) {
            return Err(PermissionError::Unknown(permission.clone()));
        }
        if kind == KeyKind::Publishable && !BROWSER_SAFE.contains(&permission.as_str()) {
            return Err(PermissionError::NotBrowserSafe(permission.clone()));
        }
        permissions.push(permission.clone());
    }
    permissions.sort();
    permissions.dedup();
    Ok(permissions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape_and_hash() {
        let key = generate(KeyKind::Publishable, KeyEnv::Test);
        assert!(key.plaintext.starts_with("pk_test_"));
        assert_eq!(key.plaintext.len(), "pk_test_".len() + SECRET_LEN);
        assert_eq!(key.prefix, key.plaintext[..12]);
        assert_eq!(key.hash, hash(&key.plaintext));
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "SHA-256 in lowercase hex"
        );
        assert_eq!(key.hash.len(), 64);
        assert!(!key.hash.contains(&key.plaintext[8..]));
        let secret = generate(KeyKind::Secret, KeyEnv::Live);
        assert!(secret.plaintext.starts_with("sk_live_"));
        assert_ne!(
            secret.plaintext,
            generate(KeyKind::Secret, KeyEnv::Live).plaintext
        );
    }

    #[test]
    fn wildcards_grant_what_they_name_and_no_more() {
        let held = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(permission_grants(&held(&["*"]), "documents:write"));
        assert!(permission_grants(
            &held(&["documents:*"]),
            "documents:write"
        ));
        assert!(permission_grants(
            &held(&["documents:read"]),
            "documents:read"
        ));
        assert!(!permission_grants(
            &held(&["documents:read"]),
            "documents:write"
        ));
        assert!(!permission_grants(&held(&["documents:*"]), "sessions:read"));
        assert!(!permission_grants(&held(&["docs:*"]), "documents:read"));
        assert!(!permission_grants(&held(&[]), "chat:write"));
    }

    #[test]
    fn permissions_are_checked_against_catalogue_and_kind() {
        let ask = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            validate_permissions(KeyKind::Secret, &ask(&["documents:write", "*", "*"])),
            Ok(ask(&["*", "documents:write"]))
        );
        assert_eq!(
            validate_permissions(KeyKind::Secret, &ask(&["documents:delete"])),
            Err(PermissionError::Unknown("documents:delete".into()))
        );
        assert_eq!(
            validate_permissions(KeyKind::Publishable, &ask(&["documents:write"])),
            Err(PermissionError::NotBrowserSafe("documents:write".into()))
        );
        assert!(validate_permissions(KeyKind::Publishable, &ask(BROWSER_SAFE)).is_ok());
        assert!(
            validate_permissions(
                KeyKind::Publishable,
                &KeyKind::Publishable.default_permissions()
            )
            .is_ok()
        );
    }
}
