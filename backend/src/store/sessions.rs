//! Chat sessions: one shopper's conversation with a merchant's assistant.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// `status` of a session that is still open.
pub const ACTIVE: &str = "active";
/// `status` of a session that was ended; it never opens again.
pub const ENDED: &str = "ended";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSession {
    #[serde(rename = "sessionId")]
    pub id: String,
    pub merchant_id: String,
    /// The merchant's own id for the shopper, as the widget sent it.
    pub user_id: String,
    /// [`ACTIVE`] or [`ENDED`].
    pub status: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewChatSession {
    pub id: String,
    pub merchant_id: String,
    pub user_id: String,
}

/// What ending a session did. Ending is not idempotent for the caller (a second end is an
/// error it should hear about), but the store reports both outcomes with the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnding {
    /// This call ended it.
    Ended(ChatSession),
    /// It had been ended before; the session is unchanged.
    AlreadyEnded(ChatSession),
}

#[derive(sqlx::FromRow)]
pub(super) struct ChatSessionRow {
    id: String,
    merchant_id: String,
    user_id: String,
    status: String,
    created_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
}

impl From<ChatSessionRow> for ChatSession {
    fn from(row: ChatSessionRow) -> Self {
        Self {
            id: row.id,
            merchant_id: row.merchant_id,
            user_id: row.user_id,
            status: row.status,
            created_at: row.created_at,
            ended_at: row.ended_at,
        }
    }
}

/// SQL that both databases accept as written; every statement names the merchant.
pub(super) mod sql {
    pub const INSERT: &str = "INSERT INTO chat_sessions (id, merchant_id, user_id, status, created_at) \
         VALUES ($1, $2, $3, 'active', $4) RETURNING *";
    pub const GET: &str = "SELECT * FROM chat_sessions WHERE merchant_id = $1 AND id = $2";
    /// Only an active session changes, so two concurrent ends cannot both succeed.
    pub const END: &str = "UPDATE chat_sessions SET status = 'ended', ended_at = $3 \
         WHERE merchant_id = $1 AND id = $2 AND status = 'active' RETURNING *";
}
