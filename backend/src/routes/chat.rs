//! The assistant, through the merchant's API keys (the widget's publishable key):
//! - `POST /api/chat` (`chat:write`) `{sessionId, query}`: a grounded answer, the products it
//!   recommends and the documents it used; the exchange is stored with a `chat.completed` event.
//! - `GET /api/sessions/{id}/messages` (`sessions:read`): the conversation so far.
//!
//! Another merchant's or an unknown session is a 404; an ended one is 410 `SESSION_ENDED`.

use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::access::{ChatWrite, KeyAccess, SessionsRead};
use crate::chat::answer::{compose, excerpt};
use crate::chat::understand::understand;
use crate::extract::{ApiJson, ApiPath};
use crate::store::{ChatMessage, ChatSession, NewExchange, ProductQuery, sessions};
use crate::{ApiError, AppState, Envelope};

/// Longest question, in characters.
const MAX_QUERY_CHARS: usize = 1000;
/// Products recommended per answer.
const MAX_RECOMMENDATIONS: u32 = 5;
/// Documents used per answer.
const MAX_SOURCES: u32 = 3;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/chat", post(chat))
        .route("/api/sessions/{id}/messages", get(messages))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChatInput {
    session_id: String,
    query: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Recommendation {
    sku: String,
    title: String,
    price: Option<f64>,
    image_url: Option<String>,
    category: Option<String>,
    in_stock: Option<bool>,
    score: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    id: String,
    title: String,
    url: Option<String>,
    excerpt: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ChatAnswer {
    session_id: String,
    answer: String,
    recommendations: Vec<Recommendation>,
    sources: Vec<Source>,
    /// Milliseconds the backend took to answer.
    execution_time: u64,
}

async fn chat(
    State(state): State<AppState>,
    access: KeyAccess<ChatWrite>,
    ApiJson(input): ApiJson<ChatInput>,
) -> Result<Envelope<ChatAnswer>, ApiError> {
    let started = Instant::now();
    let query = input.query.trim();
    if !(1..=MAX_QUERY_CHARS).contains(&query.chars().count()) {
        return Err(ApiError::invalid(
            "query",
            format!("must be 1 to {MAX_QUERY_CHARS} characters"),
        ));
    }
    let session = active_session(&state, &access.merchant_id, &input.session_id).await?;

    let understood = understand(query);
    let products = state
        .store
        .search_products(
            &access.merchant_id,
            &ProductQuery {
                terms: &understood.terms,
                min_price: understood.min_price,
                max_price: understood.max_price,
                in_stock_only: understood.in_stock_only,
                limit: MAX_RECOMMENDATIONS,
            },
        )
        .await?;
    let documents = state
        .store
        .search_documents(&access.merchant_id, &understood.terms, MAX_SOURCES)
        .await?;
    let answer = compose(&understood, &products, &documents);
    let recommendations: Vec<Recommendation> = products
        .into_iter()
        .map(|scored| Recommendation {
            sku: scored.item.sku,
            title: scored.item.title,
            price: scored.item.price,
            image_url: scored.item.image_url,
            category: scored.item.category,
            in_stock: scored.item.in_stock,
            score: scored.score,
        })
        .collect();
    let sources: Vec<Source> = documents
        .into_iter()
        .map(|scored| Source {
            excerpt: excerpt(&scored.item.body),
            id: scored.item.id,
            title: scored.item.title,
            url: scored.item.url,
        })
        .collect();
    let execution_time = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let recommendations_json = json!(recommendations);
    let sources_json = json!(sources);
    state
        .store
        .record_exchange(&NewExchange {
            merchant_id: access.merchant_id.clone(),
            session_id: session.id.clone(),
            question: query.to_owned(),
            answer: answer.clone(),
            recommendations: recommendations_json.clone(),
            sources: sources_json.clone(),
            event: json!({
                "sessionId": session.id,
                "query": query,
                "answer": answer,
                "recommendations": recommendations_json,
                "sources": sources_json,
                "executionTime": execution_time,
            }),
        })
        .await?;
    Ok(Envelope::new(
        &access.context,
        ChatAnswer {
            session_id: session.id,
            answer,
            recommendations,
            sources,
            execution_time,
        },
    ))
}

#[derive(Debug, Serialize)]
struct Messages {
    items: Vec<ChatMessage>,
}

async fn messages(
    State(state): State<AppState>,
    access: KeyAccess<SessionsRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Envelope<Messages>, ApiError> {
    let session = active_session(&state, &access.merchant_id, &id).await?;
    let items = state
        .store
        .list_messages(&access.merchant_id, &session.id)
        .await?;
    Ok(Envelope::new(&access.context, Messages { items }))
}

/// The merchant's session `id` while it is active.
async fn active_session(
    state: &AppState,
    merchant_id: &str,
    id: &str,
) -> Result<ChatSession, ApiError> {
    let session = state
        .store
        .get_chat_session(merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("session {id} not found")))?;
    if session.status != sessions::ACTIVE {
        return Err(ApiError::Gone {
            code: "SESSION_ENDED",
            message: format!("session {id} has ended; start a new one"),
        });
    }
    Ok(session)
}
