//! The assistant, through the merchant's API keys (the widget's publishable key):
//! - `POST /api/chat` (`chat:write`) `{sessionId, query}`: an answer from the merchant's
//!   catalog and documents, the products it recommends and the documents it used; the exchange
//!   is stored with a `chat.completed` event. With `Accept: text/event-stream` the same answer
//!   streams as server-sent events: `context` (the products and documents, as soon as they are
//!   found), `answer` (`{"delta": …}` text chunks), then `done` (the whole answer, as the JSON
//!   answer's `data`) or `error` (an error envelope).
//! - `GET /api/sessions/{id}/messages` (`sessions:read`): the conversation so far; an answer
//!   the model was stopped in carries `cutShort` (`client_closed`, `timed_out`).
//!
//! Another merchant's or an unknown session is a 404; an ended one is 410 `SESSION_ENDED`. A
//! question refused or failed on a session of the merchant writes `chat.failed`.
//!
//! The answer is the grounded one (composed from what retrieval found) unless `[chat]` names a
//! language model; a model that fails or times out is replaced by the grounded answer.
//!
//! A model's answer is stopped, and stored as far as it got with `cutShort` (in the message and
//! its `chat.completed` event), when the shopper closes the stream (`client_closed`: a shopper
//! who left should not keep a model busy) or when it runs past `chat.llm_total_timeout_secs`
//! in a stream (`timed_out`; the stream then ends with an `error` event `ANSWER_TIMEOUT`). A
//! JSON answer past that time is the grounded one, as on any model failure: the caller has seen
//! nothing yet, and a whole answer serves it better than a 504.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::access::{ChatWrite, KeyAccess, SessionsRead};
use crate::chat::answer::{compose, excerpt};
use crate::chat::understand::understand;
use crate::chat::{llm, metrics};
use crate::extract::{ApiJson, ApiPath};
use crate::routes::Routes;
use crate::store::{
    ChatMessage, ChatSession, CutShort, Document, NewEvent, NewExchange, Product, ProductQuery,
    Scored, sessions,
};
use crate::{ApiError, AppState, Envelope, RequestContext};

/// Longest question, in characters.
const MAX_QUERY_CHARS: usize = 1000;
/// Products recommended per answer.
const MAX_RECOMMENDATIONS: u32 = 5;
/// Documents used per answer.
const MAX_SOURCES: u32 = 3;
/// Earlier messages of the session given to a language model.
const HISTORY_MESSAGES: usize = 6;

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .post("/api/chat", chat)
        .get("/api/sessions/{id}/messages", messages)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChatInput {
    session_id: String,
    query: String,
}

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
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

/// A question of an open session and what retrieval found for it.
struct Retrieved {
    session: ChatSession,
    query: String,
    products: Vec<Scored<Product>>,
    documents: Vec<Scored<Document>>,
    /// The answer composed from the findings alone.
    grounded: String,
}

/// How the answer's text was written: its label in metrics and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnsweredBy {
    Grounded,
    Llm,
    /// The model failed; the grounded answer was given.
    Fallback,
}

impl AnsweredBy {
    fn label(self) -> &'static str {
        match self {
            Self::Grounded => "grounded",
            Self::Llm => "llm",
            Self::Fallback => "fallback",
        }
    }
}

/// The answer's text as written, by whom, and whether the model was stopped in it.
struct Written {
    text: String,
    by: AnsweredBy,
    /// Set when `text` is what the model wrote before it was stopped.
    cut_short: Option<CutShort>,
}

/// How asking the model ended.
enum Asked {
    Whole,
    /// Stopped; the text so far stands.
    CutShort(CutShort),
    Failed(llm::LlmError),
}

/// Where answer chunks go while the answer is written: a server-sent event stream, or nowhere
/// (a JSON answer waits for the whole text). The stream's receiver is the response body, so
/// the sender sees it closed once the shopper has gone and hyper dropped the body.
type Chunks = Option<mpsc::Sender<Result<Event, Infallible>>>;

async fn chat(
    State(state): State<AppState>,
    access: KeyAccess<ChatWrite>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<ChatInput>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let streaming = wants_event_stream(&headers);
    let mode = if streaming { "stream" } else { "json" };
    let retrieved = match retrieve(&state, &access.merchant_id, input).await {
        Ok(retrieved) => retrieved,
        Err((session, query, error)) => {
            if let Some(session) = session {
                report_failure(&state, &session, &query, &error).await;
            }
            metrics::finished("failed", "none", mode, started.elapsed());
            return Err(error);
        }
    };
    if streaming {
        return Ok(stream(state, access.context, retrieved, started).into_response());
    }
    let written = write_answer(&state, &retrieved, &None).await;
    let by = written.by;
    match record(&state, &retrieved, written, started).await {
        Ok(answer) => {
            metrics::finished("completed", by.label(), mode, started.elapsed());
            Ok(Envelope::new(&access.context, answer).into_response())
        }
        Err(error) => {
            report_failure(&state, &retrieved.session, &retrieved.query, &error).await;
            metrics::finished("failed", "none", mode, started.elapsed());
            Err(error)
        }
    }
}

/// Whether the caller asked for server-sent events.
fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|kind| kind.trim().starts_with("text/event-stream"))
}

/// The session (which must be the merchant's and open), the checked question, and what the
/// catalog and documents hold for it. On failure, the session when it was the merchant's, so
/// the failure can be reported on it.
async fn retrieve(
    state: &AppState,
    merchant_id: &str,
    input: ChatInput,
) -> Result<Retrieved, (Option<ChatSession>, String, ApiError)> {
    let query = input.query.trim().to_owned();
    let session = state
        .store
        .get_chat_session(merchant_id, &input.session_id)
        .await
        .map_err(|error| (None, query.clone(), error.into()))?
        .ok_or_else(|| (None, query.clone(), session_not_found(&input.session_id)))?;
    let fail =
        |session: &ChatSession, error: ApiError| (Some(session.clone()), query.clone(), error);
    if session.status != sessions::ACTIVE {
        return Err(fail(&session, session_ended(&session.id)));
    }
    if !(1..=MAX_QUERY_CHARS).contains(&query.chars().count()) {
        return Err(fail(
            &session,
            ApiError::invalid(
                "query",
                format!("must be 1 to {MAX_QUERY_CHARS} characters"),
            ),
        ));
    }

    let searching = Instant::now();
    let understood = understand(&query);
    let products = state
        .store
        .search_products(
            merchant_id,
            &ProductQuery {
                terms: &understood.terms,
                min_price: understood.min_price,
                max_price: understood.max_price,
                in_stock_only: understood.in_stock_only,
                limit: MAX_RECOMMENDATIONS,
            },
        )
        .await;
    let documents = state
        .store
        .search_documents(merchant_id, &understood.terms, MAX_SOURCES)
        .await;
    metrics::retrieval(searching.elapsed());
    let (products, documents) = match (products, documents) {
        (Ok(products), Ok(documents)) => (products, documents),
        (Err(error), _) | (_, Err(error)) => return Err(fail(&session, error.into())),
    };
    let grounded = compose(&understood, &products, &documents);
    Ok(Retrieved {
        session,
        query,
        products,
        documents,
        grounded,
    })
}

/// The answer's text, sending its chunks to `chunks` as they are written: the language
/// model's when one is configured and it answers in time (or as far as it got when it was
/// stopped), else the grounded answer.
async fn write_answer(state: &AppState, retrieved: &Retrieved, chunks: &Chunks) -> Written {
    // With nothing found there is nothing to ground a model's answer in: say so plainly.
    let found = !(retrieved.products.is_empty() && retrieved.documents.is_empty());
    let grounded = || Written {
        text: retrieved.grounded.clone(),
        by: AnsweredBy::Grounded,
        cut_short: None,
    };
    let Some(model) = state.llm.as_ref().filter(|_| found) else {
        send_chunk(chunks, &retrieved.grounded).await;
        return grounded();
    };
    let mut text = String::new();
    match ask_model(state, model, retrieved, chunks, &mut text).await {
        Asked::Whole => Written {
            text,
            by: AnsweredBy::Llm,
            cut_short: None,
        },
        Asked::CutShort(cut) => {
            tracing::info!(
                session_id = %retrieved.session.id,
                cut_short = cut.label(),
                "the language model was stopped; storing its answer as far as it got"
            );
            Written {
                text,
                by: AnsweredBy::Llm,
                cut_short: Some(cut),
            }
        }
        Asked::Failed(error) => {
            tracing::warn!(
                session_id = %retrieved.session.id,
                %error,
                "the language model failed; answering from retrieval"
            );
            metrics::llm_fallback(error.code());
            // The `done` event's answer replaces whatever chunks were sent.
            Written {
                by: AnsweredBy::Fallback,
                ..grounded()
            }
        }
    }
}

/// Asks the model, writing its answer into `text` and `chunks`, until it ends, the shopper
/// closes the stream, or `chat.llm_total_timeout_secs` has passed. Stopping drops the model's
/// stream, which closes its connection, so the model stops writing too.
async fn ask_model(
    state: &AppState,
    model: &llm::Llm,
    retrieved: &Retrieved,
    chunks: &Chunks,
    text: &mut String,
) -> Asked {
    let deadline = tokio::time::Instant::now() + model.total_timeout();
    let gone = async {
        match chunks {
            Some(sender) => sender.closed().await,
            None => std::future::pending().await,
        }
    };
    // The sends to the shopper race too: one who stops reading cannot hold the model open.
    let asking = write_model_answer(state, model, retrieved, chunks, text);
    tokio::select! {
        biased;
        () = gone => Asked::CutShort(CutShort::ClientClosed),
        () = tokio::time::sleep_until(deadline) => match chunks {
            Some(_) => Asked::CutShort(CutShort::TimedOut),
            None => Asked::Failed(model.total_timeout_error()),
        },
        written = asking => match written {
            Ok(()) => Asked::Whole,
            Err(error) => Asked::Failed(error),
        },
    }
}

async fn write_model_answer(
    state: &AppState,
    model: &llm::Llm,
    retrieved: &Retrieved,
    chunks: &Chunks,
    text: &mut String,
) -> Result<(), llm::LlmError> {
    let history = match state
        .store
        .list_messages(&retrieved.session.merchant_id, &retrieved.session.id)
        .await
    {
        Ok(messages) => messages,
        Err(error) => {
            tracing::warn!(%error, "the session's history could not be read; asking without it");
            Vec::new()
        }
    };
    let skip = history.len().saturating_sub(HISTORY_MESSAGES);
    let history: Vec<(String, String)> = history
        .into_iter()
        .skip(skip)
        .map(|message| (message.role, message.content))
        .collect();
    let prompt = llm::prompt(
        &retrieved.query,
        &history,
        &retrieved.products,
        &retrieved.documents,
    );
    let mut stream = model.stream(&prompt).await?;
    while let Some(delta) = stream.next().await {
        let delta = delta?;
        // Kept before it is sent: a shopper who leaves during the send has it stored.
        text.push_str(&delta);
        send_chunk(chunks, &delta).await;
    }
    if text.trim().is_empty() {
        return Err(llm::LlmError::Malformed("the answer was empty".to_owned()));
    }
    Ok(())
}

async fn send_chunk(chunks: &Chunks, text: &str) {
    if let Some(sender) = chunks {
        // A shopper who left has closed the channel; `ask_model` notices and stops.
        let _ = sender
            .send(Ok(event("answer", &json!({ "delta": text }))))
            .await;
    }
}

fn event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name).data("null"))
}

/// Stores the exchange with its `chat.completed` event and returns the answer.
async fn record(
    state: &AppState,
    retrieved: &Retrieved,
    written: Written,
    started: Instant,
) -> Result<ChatAnswer, ApiError> {
    let Written {
        text,
        by,
        cut_short,
    } = written;
    let recommendations = recommendations(&retrieved.products);
    let sources = sources(&retrieved.documents);
    let execution_time = millis(started.elapsed());
    let session = &retrieved.session;
    let recommendations_json = json!(recommendations);
    let sources_json = json!(sources);
    // Model output is not client input: a NUL in it (which PostgreSQL cannot store) is shown
    // as U+FFFD, not refused.
    let stored_text = text.replace('\0', "\u{FFFD}");
    state
        .store
        .record_exchange(&NewExchange {
            merchant_id: session.merchant_id.clone(),
            session_id: session.id.clone(),
            question: retrieved.query.clone(),
            answer: stored_text.clone(),
            cut_short,
            recommendations: recommendations_json.clone(),
            sources: sources_json.clone(),
            event: json!({
                "sessionId": session.id,
                "merchantId": session.merchant_id,
                "userId": session.user_id,
                "query": retrieved.query,
                "answer": stored_text,
                "answeredBy": by.label(),
                "cutShort": cut_short,
                "recommendations": recommendations_json,
                "sources": sources_json,
                "executionTime": execution_time,
            }),
        })
        .await?;
    Ok(ChatAnswer {
        session_id: session.id.clone(),
        answer: text,
        recommendations,
        sources,
        execution_time,
    })
}

/// The answer as server-sent events, written by a task of its own: the response body only
/// relays what it sends, so when the shopper closes the stream and hyper drops the body, the
/// task stops the model and can still await the store write of what was written.
fn stream(
    state: AppState,
    context: RequestContext,
    retrieved: Retrieved,
    started: Instant,
) -> impl IntoResponse {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        let found = json!({
            "recommendations": recommendations(&retrieved.products),
            "sources": sources(&retrieved.documents),
        });
        let _ = sender.send(Ok(event("context", &found))).await;
        let chunks = Some(sender);
        let written = write_answer(&state, &retrieved, &chunks).await;
        let Some(sender) = chunks else { return };
        let (by, cut_short) = (written.by, written.cut_short);
        let error_event = |error: &ApiError| {
            let (_, failure) = error.to_failure();
            let envelope: Value = serde_json::from_slice(&failure.to_json(&context.request_id))
                .unwrap_or(Value::Null);
            Ok(event("error", &envelope))
        };
        match record(&state, &retrieved, written, started).await {
            Ok(answer) => {
                let outcome = cut_short.map_or("completed", CutShort::label);
                metrics::finished(outcome, by.label(), "stream", started.elapsed());
                match cut_short {
                    None => {
                        let _ = sender.send(Ok(event("done", &answer))).await;
                    }
                    Some(CutShort::TimedOut) => {
                        // Only a model's answer times out, so there is one.
                        let secs = state
                            .llm
                            .as_ref()
                            .map_or(0, |m| m.total_timeout().as_secs());
                        let _ = sender
                            .send(error_event(&ApiError::AnswerTimeout(secs)))
                            .await;
                    }
                    // Nobody is listening.
                    Some(CutShort::ClientClosed) => {}
                }
            }
            Err(error) => {
                report_failure(&state, &retrieved.session, &retrieved.query, &error).await;
                metrics::finished("failed", "none", "stream", started.elapsed());
                let _ = sender.send(error_event(&error)).await;
            }
        }
    });
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (event, receiver))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// Writes `chat.failed` for a question on `session` that was refused or failed. Best effort:
/// the caller gets its answer whether or not the event could be written.
async fn report_failure(state: &AppState, session: &ChatSession, query: &str, error: &ApiError) {
    let (_, failure) = error.to_failure();
    let event = NewEvent {
        merchant_id: &session.merchant_id,
        event_type: "chat.failed",
        data: json!({
            "sessionId": session.id,
            "merchantId": session.merchant_id,
            "userId": session.user_id,
            "query": query,
            "error": failure.error,
            "errorCode": failure.code,
        }),
    };
    if let Err(error) = state.store.record_event(&event).await {
        tracing::error!(session_id = %session.id, %error, "chat.failed could not be written");
    }
}

fn recommendations(products: &[Scored<Product>]) -> Vec<Recommendation> {
    products
        .iter()
        .map(|scored| Recommendation {
            sku: scored.item.sku.clone(),
            title: scored.item.title.clone(),
            price: scored.item.price,
            image_url: scored.item.image_url.clone(),
            category: scored.item.category.clone(),
            in_stock: scored.item.in_stock,
            score: scored.score,
        })
        .collect()
}

fn sources(documents: &[Scored<Document>]) -> Vec<Source> {
    documents
        .iter()
        .map(|scored| Source {
            id: scored.item.id.clone(),
            title: scored.item.title.clone(),
            url: scored.item.url.clone(),
            excerpt: excerpt(&scored.item.body),
        })
        .collect()
}

fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
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
    let session = state
        .store
        .get_chat_session(&access.merchant_id, &id)
        .await?
        .ok_or_else(|| session_not_found(&id))?;
    if session.status != sessions::ACTIVE {
        return Err(session_ended(&id));
    }
    let items = state
        .store
        .list_messages(&access.merchant_id, &session.id)
        .await?;
    Ok(Envelope::new(&access.context, Messages { items }))
}

fn session_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("session {id} not found"))
}

fn session_ended(id: &str) -> ApiError {
    ApiError::Gone {
        code: "SESSION_ENDED",
        message: format!("session {id} has ended; start a new one"),
    }
}
