//! A merchant's knowledge base, through the merchant's API keys:
//! - `POST /api/documents` (`documents:write`): 201 and the document.
//! - `GET /api/documents?limit=&cursor=` (`documents:read`): newest first,
//!   `{items, nextCursor}`.
//! - `GET|PUT|DELETE /api/documents/{id}` (read / write / write): PUT replaces every field.
//!
//! Every store call names the key's merchant, so another merchant's document is a 404: never
//! read, changed or deleted.

mod input;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::access::{DocumentsRead, DocumentsWrite, KeyAccess};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::Routes;
use crate::routes::page;
use crate::store::{Document, NewDocument, StoreError};
use crate::{ApiError, AppState, Envelope};
use input::DocumentInput;

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/api/documents", list)
        .post("/api/documents", create)
        .get("/api/documents/{id}", show)
        .put("/api/documents/{id}", replace)
        .delete("/api/documents/{id}", remove)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DocumentPage {
    items: Vec<Document>,
    /// Pass as `?cursor=` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct Deleted {
    id: String,
    deleted: bool,
}

async fn create(
    State(state): State<AppState>,
    access: KeyAccess<DocumentsWrite>,
    ApiJson(input): ApiJson<DocumentInput>,
) -> Result<Envelope<Document>, ApiError> {
    let document = state
        .store
        .create_document(&NewDocument {
            id: mindshop_wire::ids::new_id("doc"),
            merchant_id: access.merchant_id.clone(),
            fields: input.validate()?,
        })
        .await?;
    Ok(Envelope::new(&access.context, document).status(StatusCode::CREATED))
}

async fn list(
    State(state): State<AppState>,
    access: KeyAccess<DocumentsRead>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Envelope<DocumentPage>, ApiError> {
    let limit = page::parse_limit(query.limit.as_deref())?;
    let after = query
        .cursor
        .as_deref()
        .map(page::decode_cursor)
        .transpose()?;
    // One more than asked tells whether another page follows.
    let items = state
        .store
        .list_documents(&access.merchant_id, after.as_ref(), limit + 1)
        .await?;
    let (items, next_cursor) =
        page::split(items, limit, |last| page::encode_cursor(&last.page_key()));
    Ok(Envelope::new(
        &access.context,
        DocumentPage { items, next_cursor },
    ))
}

async fn show(
    State(state): State<AppState>,
    access: KeyAccess<DocumentsRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Envelope<Document>, ApiError> {
    let document = state
        .store
        .get_document(&access.merchant_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Envelope::new(&access.context, document))
}

async fn replace(
    State(state): State<AppState>,
    access: KeyAccess<DocumentsWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<DocumentInput>,
) -> Result<Envelope<Document>, ApiError> {
    let fields = input.validate()?;
    let document = state
        .store
        .update_document(&access.merchant_id, &id, &fields)
        .await
        .map_err(|error| scoped(error, &id))?;
    Ok(Envelope::new(&access.context, document))
}

async fn remove(
    State(state): State<AppState>,
    access: KeyAccess<DocumentsWrite>,
    ApiPath(id): ApiPath<String>,
) -> Result<Envelope<Deleted>, ApiError> {
    state
        .store
        .delete_document(&access.merchant_id, &id)
        .await
        .map_err(|error| scoped(error, &id))?;
    Ok(Envelope::new(
        &access.context,
        Deleted { id, deleted: true },
    ))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("document {id} not found"))
}

fn scoped(error: StoreError, id: &str) -> ApiError {
    match error {
        StoreError::NotFound(_) => not_found(id),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests;
