//! Documents: a merchant's knowledge base, the texts the assistant answers from.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A stored document. Every read and write is scoped to one merchant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub id: String,
    pub merchant_id: String,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a caller writes: all of it on creation, all of it again on replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentFields {
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: String,
    pub merchant_id: String,
    pub fields: DocumentFields,
}

/// Where a newest-first page ends: the last row's creation time and id. The next page holds
/// the rows strictly older in that order, so rows created meanwhile never shift it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKey {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

impl Document {
    /// The key a page that ends with this document continues from.
    pub fn page_key(&self) -> PageKey {
        PageKey {
            created_at: self.created_at,
            id: self.id.clone(),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DocumentRow {
    id: String,
    merchant_id: String,
    title: String,
    body: String,
    tags: sqlx::types::Json<Vec<String>>,
    url: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<DocumentRow> for Document {
    fn from(row: DocumentRow) -> Self {
        Self {
            id: row.id,
            merchant_id: row.merchant_id,
            title: row.title,
            body: row.body,
            tags: row.tags.0,
            url: row.url,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// SQL that both databases accept as written. Every statement names the merchant, so no
/// caller can reach another merchant's row by id alone.
pub(super) mod sql {
    pub const INSERT: &str = "INSERT INTO documents (id, merchant_id, title, body, tags, url, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *";
    pub const GET: &str = "SELECT * FROM documents WHERE merchant_id = $1 AND id = $2";
    pub const LIST_FIRST: &str = "SELECT * FROM documents WHERE merchant_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2";
    pub const LIST_AFTER: &str = "SELECT * FROM documents WHERE merchant_id = $1 \
         AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4";
    pub const UPDATE: &str = "UPDATE documents SET title = $3, body = $4, tags = $5, url = $6, updated_at = $7 \
         WHERE merchant_id = $1 AND id = $2 RETURNING *";
    pub const DELETE: &str = "DELETE FROM documents WHERE merchant_id = $1 AND id = $2";
}
