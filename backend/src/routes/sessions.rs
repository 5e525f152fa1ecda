//! Chat sessions, through the merchant's API keys (the widget's publishable key):
//! - `POST /api/chat/sessions` (`chat:write`) `{userId, merchantId?}`: opens a session for the
//!   key's merchant; a `merchantId` naming another merchant is 403 `MERCHANT_MISMATCH`.
//! - `GET /api/sessions/{id}` (`sessions:read`): the session; another merchant's is a 404.
//! - `POST /api/sessions/{id}/end` (`sessions:write`): ends it; a second end is 409
//!   `SESSION_ENDED`.

use axum::extract::State;
use serde::Deserialize;

use crate::access::{ChatWrite, KeyAccess, SessionsRead, SessionsWrite};
use crate::extract::{ApiJson, ApiPath};
use crate::routes::Routes;
use crate::store::{ChatSession, NewChatSession, SessionEnding, StoreError};
use crate::{ApiError, AppState, Envelope};

/// Longest `userId`, in characters.
const MAX_USER_ID_CHARS: usize = 128;

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .post("/api/chat/sessions", create)
        .get("/api/sessions/{id}", show)
        .post("/api/sessions/{id}/end", end)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SessionInput {
    /// The merchant's own id for the shopper.
    user_id: String,
    /// Optional, for widgets that send it: must be the key's merchant.
    merchant_id: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    access: KeyAccess<ChatWrite>,
    ApiJson(input): ApiJson<SessionInput>,
) -> Result<Envelope<ChatSession>, ApiError> {
    if input
        .merchant_id
        .as_deref()
        .is_some_and(|asked| asked != access.merchant_id)
    {
        return Err(ApiError::Forbidden {
            code: "MERCHANT_MISMATCH",
            message: "merchantId is not the merchant of this API key".to_owned(),
        });
    }
    let session = state
        .store
        .create_chat_session(&NewChatSession {
            id: mindshop_wire::ids::new_id("sess"),
            merchant_id: access.merchant_id.clone(),
            user_id: validate_user_id(&input.user_id)?,
        })
        .await?;
    Ok(Envelope::new(&access.context, session))
}

async fn show(
    State(state): State<AppState>,
    access: KeyAccess<SessionsRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Envelope<ChatSession>, ApiError> {
    let session = state
        .store
        .get_chat_session(&access.merchant_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Envelope::new(&access.context, session))
}

async fn end(
    State(state): State<AppState>,
    access: KeyAccess<SessionsWrite>,
    ApiPath(id): ApiPath<String>,
) -> Result<Envelope<ChatSession>, ApiError> {
    match state.store.end_chat_session(&access.merchant_id, &id).await {
        Ok(SessionEnding::Ended(session)) => Ok(Envelope::new(&access.context, session)),
        Ok(SessionEnding::AlreadyEnded(_)) => Err(ApiError::Conflict {
            code: "SESSION_ENDED",
            message: format!("session {id} has already ended"),
        }),
        Err(StoreError::NotFound(_)) => Err(not_found(&id)),
        Err(other) => Err(other.into()),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("session {id} not found"))
}

/// 1 to 128 characters, trimmed, no control characters.
fn validate_user_id(user_id: &str) -> Result<String, ApiError> {
    let user_id = user_id.trim();
    let chars = user_id.chars().count();
    if (1..=MAX_USER_ID_CHARS).contains(&chars) && !user_id.chars().any(char::is_control) {
        Ok(user_id.to_owned())
    } else {
        Err(ApiError::invalid(
            "userId",
            format!("must be 1 to {MAX_USER_ID_CHARS} characters, without control characters"),
        ))
    }
}

#[cfg(test)]
mod tests;
