//! The portal's key management (same rules as `mindshop admin key create`, see
//! [`crate::keys`]):
//! - `POST /api/merchants/{merchant_id}/api-keys`: 201, the record and, this once, the key.
//! - `GET /api/merchants/{merchant_id}/api-keys`: the merchant's keys, prefixes only.
//! - `DELETE /api/merchants/{merchant_id}/api-keys/{key_id}`: revokes; another merchant's key
//!   is a 404 and stays valid.

use axum::extract::State;
use axum::http::StatusCode;
use mindshop_wire::api_key::{KeyEnv, KeyKind, PermissionError};
use serde::{Deserialize, Serialize};

use crate::access::PortalAccess;
use crate::extract::{ApiJson, ApiPath};
use crate::keys::{self, CreatedKey, KeyError, KeyRequest};
use crate::routes::Routes;
use crate::store::{ApiKey, StoreError};
use crate::{ApiError, AppState, Envelope};

pub(super) fn routes(routes: Routes) -> Routes {
    let keys = "/api/merchants/{merchant_id}/api-keys";
    routes
        .get(keys, list)
        .post(keys, create)
        .delete(&format!("{keys}/{{key_id}}"), revoke)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyInput {
    /// `publishable` or `secret`.
    kind: String,
    /// `test` (default) or `live`.
    env: Option<String>,
    /// Omitted: the kind's defaults.
    permissions: Option<Vec<String>>,
    name: Option<String>,
}

#[derive(Debug, Serialize)]
struct KeyList {
    items: Vec<ApiKey>,
}

async fn create(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiJson(input): ApiJson<KeyInput>,
) -> Result<Envelope<CreatedKey>, ApiError> {
    let request = key_request(access.merchant_id.clone(), input)?;
    let asked = request.permissions.clone();
    let created = keys::create(state.store.as_ref(), request)
        .await
        .map_err(|error| key_error(error, asked.as_deref(), &access.merchant_id))?;
    Ok(Envelope::new(&access.context, created).status(StatusCode::CREATED))
}

async fn list(
    State(state): State<AppState>,
    access: PortalAccess,
) -> Result<Envelope<KeyList>, ApiError> {
    if state
        .store
        .get_merchant(&access.merchant_id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "merchant {} not found",
            access.merchant_id
        )));
    }
    let items = state.store.list_api_keys(&access.merchant_id).await?;
    Ok(Envelope::new(&access.context, KeyList { items }))
}

async fn revoke(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiPath((_, key_id)): ApiPath<(String, String)>,
) -> Result<Envelope<ApiKey>, ApiError> {
    let revoked = state
        .store
        .revoke_merchant_api_key(&access.merchant_id, &key_id)
        .await?;
    Ok(Envelope::new(&access.context, revoked))
}

/// The body as a [`KeyRequest`]: `kind` and `env` spelled as the CLI spells them.
fn key_request(merchant_id: String, input: KeyInput) -> Result<KeyRequest, ApiError> {
    let kind = KeyKind::parse(&input.kind)
        .ok_or_else(|| ApiError::invalid("kind", "must be publishable or secret"))?;
    let env = match input.env.as_deref() {
        None => KeyEnv::Test,
        Some(env) => {
            KeyEnv::parse(env).ok_or_else(|| ApiError::invalid("env", "must be test or live"))?
        }
    };
    Ok(KeyRequest {
        merchant_id,
        kind,
        env,
        permissions: input.permissions,
        name: input.name,
    })
}

/// A refused key as an envelope: a refused permission is named with its index.
fn key_error(error: KeyError, asked: Option<&[String]>, merchant_id: &str) -> ApiError {
    let message = error.to_string();
    match error {
        KeyError::Permission(PermissionError::Unknown(permission))
        | KeyError::Permission(PermissionError::NotBrowserSafe(permission)) => {
            let index = asked.and_then(|asked| asked.iter().position(|p| *p == permission));
            let field =
                index.map_or_else(|| "permissions".to_owned(), |i| format!("permissions[{i}]"));
            ApiError::invalid(field, message)
        }
        KeyError::NoPermissions => ApiError::invalid("permissions", message),
        KeyError::InvalidName => ApiError::invalid("name", message),
        KeyError::Store(StoreError::NotFound(_)) => {
            ApiError::NotFound(format!("merchant {merchant_id} not found"))
        }
        KeyError::Store(other) => other.into(),
    }
}

#[cfg(test)]
mod tests;
