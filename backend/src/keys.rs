//! Creating API keys: the rules that `mindshop admin key create` and the portal's
//! `POST /api/merchants/:id/api-keys` share, so a key means the same wherever it was made.
//!
//! A request names the kind (`publishable` keys may hold only browser-safe permissions), the
//! environment, optionally the permissions (each from the catalogue; when omitted, the kind's
//! defaults) and optionally a name. The key is generated here, stored as a hash, and its
//! plaintext returned exactly once, in [`CreatedKey`].

use mindshop_wire::api_key::{self, KeyEnv, KeyKind, PermissionError};
use serde::Serialize;

use crate::store::{ApiKey, NewApiKey, Store, StoreError};

/// Longest key name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// What the caller asks for.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub merchant_id: String,
    pub kind: KeyKind,
    pub env: KeyEnv,
    /// `None`: the kind's defaults (browser-safe set for publishable keys, `*` for secret).
    pub permissions: Option<Vec<String>>,
    pub name: Option<String>,
}

/// A stored key and, this one time, the key itself.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub stored: ApiKey,
    /// The only time the key is shown; the store keeps its hash.
    pub key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Permission(#[from] PermissionError),
    #[error("a key must hold at least one permission; leave permissions out for the defaults")]
    NoPermissions,
    #[error("the name must be 1 to {MAX_NAME_CHARS} characters, without control characters")]
    InvalidName,
    /// The merchant does not exist ([`StoreError::NotFound`]) or the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates the request and stores a new key for it.
pub async fn create(store: &dyn Store, request: KeyRequest) -> Result<CreatedKey, KeyError> {
    let (permissions, name) = validate(&request)?;
    let generated = api_key::generate(request.kind, request.env);
    let stored = store
        .create_api_key(&NewApiKey {
            id: mindshop_wire::ids::new_id("key"),
            merchant_id: request.merchant_id,
            kind: request.kind.as_str().to_owned(),
            env: request.env.as_str().to_owned(),
            prefix: generated.prefix,
            key_hash: generated.hash,
            permissions,
            name,
        })
        .await?;
    Ok(CreatedKey {
        stored,
        key: generated.plaintext,
    })
}

/// The permissions (checked, sorted, deduplicated) and the name (trimmed) a key gets.
fn validate(request: &KeyRequest) -> Result<(Vec<String>, Option<String>), KeyError> {
    let permissions = match &request.permissions {
        None => request.kind.default_permissions(),
        Some(asked) if asked.is_empty() => return Err(KeyError::NoPermissions),
        Some(asked) => asked.clone(),
    };
    let permissions = api_key::validate_permissions(request.kind, &permissions)?;
    let name = match request.name.as_deref().map(str::trim) {
        None => None,
        Some(name) if valid_name(name) => Some(name.to_owned()),
        Some(_) => return Err(KeyError::InvalidName),
    };
    Ok((permissions, name))
}

fn valid_name(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: KeyKind, permissions: Option<&[&str]>) -> KeyRequest {
        KeyRequest {
            merchant_id: "acme".to_owned(),
            kind,
            env: KeyEnv::Test,
            permissions: permissions.map(|p| p.iter().map(|s| (*s).to_owned()).collect()),
            name: None,
        }
    }

    #[test]
    fn omitted_permissions_take_the_kinds_defaults() {
        let (secret, _) = validate(&request(KeyKind::Secret, None)).unwrap();
        assert_eq!(secret, ["*"]);
        let (publishable, _) = validate(&request(KeyKind::Publishable, None)).unwrap();
        assert!(publishable.contains(&"chat:write".to_owned()));
        assert!(
            publishable
                .iter()
                .all(|p| api_key::BROWSER_SAFE.contains(&p.as_str())),
            "{publishable:?}"
        );
    }

    #[test]
    fn asked_permissions_are_checked_and_an_empty_list_is_refused() {
        assert!(matches!(
            validate(&request(KeyKind::Publishable, Some(&["documents:write"]))),
            Err(KeyError::Permission(PermissionError::NotBrowserSafe(p))) if p == "documents:write"
        ));
        assert!(matches!(
            validate(&request(KeyKind::Secret, Some(&["documents:fly"]))),
            Err(KeyError::Permission(PermissionError::Unknown(_)))
        ));
        assert!(matches!(
            validate(&request(KeyKind::Secret, Some(&[]))),
            Err(KeyError::NoPermissions)
        ));
        let (permissions, _) = validate(&request(
            KeyKind::Secret,
            Some(&["documents:write", "documents:read", "documents:write"]),
        ))
        .unwrap();
        assert_eq!(permissions, ["documents:read", "documents:write"]);
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        let named = |name: &str| KeyRequest {
            name: Some(name.to_owned()),
            ..request(KeyKind::Secret, None)
        };
        assert_eq!(
            validate(&named("  server  ")).unwrap().1.as_deref(),
            Some("server")
        );
        assert_eq!(
            validate(&named(&"é".repeat(MAX_NAME_CHARS))).unwrap().1,
            Some("é".repeat(MAX_NAME_CHARS))
        );
        for bad in ["", "   ", "line\nbreak", &"a".repeat(MAX_NAME_CHARS + 1)] {
            assert!(
                matches!(validate(&named(bad)), Err(KeyError::InvalidName)),
                "{bad:?}"
            );
        }
    }
}
