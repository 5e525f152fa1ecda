//! A merchant's outbound webhooks, from the developer portal (JWT with access to the merchant):
//! - `POST|GET /api/merchants/{merchant_id}/webhooks`: create (201, with the secret shown this
//!   once) and list.
//! - `GET|PUT|DELETE …/webhooks/{webhook_id}`: one endpoint; PUT changes the given fields
//!   (`enabled: true` also clears the failure count and the reason it was disabled).
//! - `POST …/{webhook_id}/rotate-secret`: a new secret; the old one signs beside it for 24 h.
//! - `POST …/{webhook_id}/test`: 202, a `webhook.test` event to this endpoint only.
//! - `GET …/{webhook_id}/deliveries?limit=&cursor=`: newest first, each with its attempts.
//! - `POST …/{webhook_id}/deliveries/{delivery_id}/retry`: 202, attempted again now.
//!
//! `events` is stored as each type once, or `["*"]` when it holds `*`; an entry outside
//! [`EVENT_TYPES`] is a 400 naming it. An endpoint receives the events that happen while it
//! is enabled: from its creation (or re-enabling) on, never one from before.
//!
//! Another merchant's endpoint or delivery is a 404.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::access::PortalAccess;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::Routes;
use crate::routes::page;
use crate::store::{
    NewWebhookEndpoint, StoreError, WebhookDelivery, WebhookEndpoint, WebhookEndpointUpdate,
};
use crate::webhooks::sign;
use crate::{ApiError, AppState, Envelope};

/// Events an endpoint may ask for; `*` is all of them.
pub const EVENT_TYPES: [&str; 11] = [
    "chat.completed",
    "chat.failed",
    "document.created",
    "document.updated",
    "document.deleted",
    "session.created",
    "session.ended",
    "sync.started",
    "sync.completed",
    "sync.failed",
    "webhook.test",
];
/// Entries of `events` that are not events named one by one in a refusal.
const MAX_REPORTED_EVENTS: usize = 10;
/// Longest URL and description.
const MAX_URL_CHARS: usize = 2048;
const MAX_DESCRIPTION_CHARS: usize = 500;
/// How long a rotated-out secret keeps signing.
const ROTATION_OVERLAP_HOURS: i64 = 24;

pub(super) fn routes(routes: Routes) -> Routes {
    let base = "/api/merchants/{merchant_id}/webhooks";
    let one = format!("{base}/{{webhook_id}}");
    routes
        .get(base, list)
        .post(base, create)
        .get(&one, show)
        .put(&one, update)
        .delete(&one, remove)
        .post(&format!("{one}/rotate-secret"), rotate)
        .post(&format!("{one}/test"), test)
        .get(&format!("{one}/deliveries"), deliveries)
        .post(&format!("{one}/deliveries/{{delivery_id}}/retry"), retry)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateInput {
    url: String,
    events: Vec<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateInput {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
}

/// The endpoint and, on creation and rotation only, its secret.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WithSecret {
    #[serde(flatten)]
    endpoint: WebhookEndpoint,
    secret: String,
}

#[derive(Debug, Serialize)]
struct Items<T> {
    items: Vec<T>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiJson(input): ApiJson<CreateInput>,
) -> Result<Envelope<WithSecret>, ApiError> {
    let mut errors = Vec::new();
    check_url(&state, &input.url, &mut errors);
    let events = normalize_events(&input.events, &mut errors);
    check_description(input.description.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let secret = sign::new_secret();
    let endpoint = state
        .store
        .create_webhook(&NewWebhookEndpoint {
            id: mindshop_wire::ids::new_id("whe"),
            merchant_id: access.merchant_id.clone(),
            url: input.url,
            events,
            description: input.description,
            secret: secret.clone(),
        })
        .await?;
    Ok(Envelope::new(&access.context, WithSecret { endpoint, secret }).status(StatusCode::CREATED))
}

async fn list(
    State(state): State<AppState>,
    access: PortalAccess,
) -> Result<Envelope<Items<WebhookEndpoint>>, ApiError> {
    let items = state.store.list_webhooks(&access.merchant_id).await?;
    Ok(Envelope::new(&access.context, Items { items }))
}

async fn show(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Envelope<WebhookEndpoint>, ApiError> {
    let endpoint = endpoint(&state, &access.merchant_id, &id).await?;
    Ok(Envelope::new(&access.context, endpoint))
}

async fn update(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiJson(input): ApiJson<UpdateInput>,
) -> Result<Envelope<WebhookEndpoint>, ApiError> {
    let mut errors = Vec::new();
    if let Some(url) = &input.url {
        check_url(&state, url, &mut errors);
    }
    let events = input
        .events
        .as_deref()
        .map(|events| normalize_events(events, &mut errors));
    check_description(input.description.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let updated = state
        .store
        .update_webhook(
            &access.merchant_id,
            &id,
            &WebhookEndpointUpdate {
                url: input.url,
                events,
                description: input.description,
                enabled: input.enabled,
            },
        )
        .await
        .map_err(|error| not_found(error, "webhook", &id))?;
    Ok(Envelope::new(&access.context, updated))
}

async fn remove(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Envelope<serde_json::Value>, ApiError> {
    state
        .store
        .delete_webhook(&access.merchant_id, &id)
        .await
        .map_err(|error| not_found(error, "webhook", &id))?;
    Ok(Envelope::new(
        &access.context,
        json!({"id": id, "deleted": true}),
    ))
}

async fn rotate(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Envelope<WithSecret>, ApiError> {
    let secret = sign::new_secret();
    let expires = Utc::now() + chrono::Duration::hours(ROTATION_OVERLAP_HOURS);
    let endpoint = state
        .store
        .rotate_webhook_secret(&access.merchant_id, &id, &secret, expires)
        .await
        .map_err(|error| not_found(error, "webhook", &id))?;
    Ok(Envelope::new(
        &access.context,
        WithSecret { endpoint, secret },
    ))
}

async fn test(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Envelope<WebhookDelivery>, ApiError> {
    let endpoint = endpoint(&state, &access.merchant_id, &id).await?;
    let delivery = state
        .store
        .enqueue_delivery(
            &access.merchant_id,
            &endpoint.id,
            "webhook.test",
            &json!({
                "endpointId": endpoint.id,
                "merchantId": access.merchant_id,
                "message": "A test event from mindshop: your endpoint is reachable.",
            }),
            Utc::now(),
        )
        .await?;
    Ok(Envelope::new(&access.context, delivery).status(StatusCode::ACCEPTED))
}

async fn deliveries(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Envelope<Page<WebhookDelivery>>, ApiError> {
    endpoint(&state, &access.merchant_id, &id).await?;
    let limit = page::parse_limit(query.limit.as_deref())?;
    let after = query
        .cursor
        .as_deref()
        .map(page::decode_cursor)
        .transpose()?;
    let items = state
        .store
        .list_deliveries(&access.merchant_id, &id, after.as_ref(), limit + 1)
        .await?;
    let (items, next_cursor) =
        page::split(items, limit, |last| page::encode_cursor(&last.page_key()));
    Ok(Envelope::new(&access.context, Page { items, next_cursor }))
}

async fn retry(
    State(state): State<AppState>,
    access: PortalAccess,
    ApiPath((_, id, delivery_id)): ApiPath<(String, String, String)>,
) -> Result<Envelope<WebhookDelivery>, ApiError> {
    let delivery = state
        .store
        .retry_delivery(&access.merchant_id, &id, &delivery_id, Utc::now())
        .await
        .map_err(|error| not_found(error, "delivery", &delivery_id))?;
    Ok(Envelope::new(&access.context, delivery).status(StatusCode::ACCEPTED))
}

async fn endpoint(
    state: &AppState,
    merchant_id: &str,
    id: &str,
) -> Result<WebhookEndpoint, ApiError> {
    state
        .store
        .get_webhook(merchant_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook {id} not found")))
}

fn not_found(error: StoreError, what: &str, id: &str) -> ApiError {
    match error {
        StoreError::NotFound(_) => ApiError::NotFound(format!("{what} {id} not found")),
        other => other.into(),
    }
}

/// `https://` (or `http://` when `webhooks.allow_http`), a host, no credentials, and no
/// address written in it that webhooks may not reach.
fn check_url(state: &AppState, url: &str, errors: &mut Vec<(String, String)>) {
    let mut refuse = |message: String| errors.push(("url".to_owned(), message));
    if url.chars().count() > MAX_URL_CHARS {
        return refuse(format!("must be at most {MAX_URL_CHARS} characters"));
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return refuse("must be an absolute https:// URL".to_owned());
    };
    let settings = &state.webhooks.settings;
    match parsed.scheme() {
        "https" => {}
        "http" if settings.allow_http => {}
        "http" => return refuse("must use https:// (http:// is for development only)".to_owned()),
        _ => return refuse("must be an https:// URL".to_owned()),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return refuse("must name a host".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return refuse("must not hold credentials; verify our signature instead".to_owned());
    }
    if let Err(reason) = state.webhooks.check_destination(url) {
        refuse(reason);
    }
}

/// The subscription as stored: each event type once, in the order given, or `["*"]` when `*`
/// is among them (it covers every type). So the list is at most the catalogue long, however
/// long the body's was. An entry that is not in the catalogue is refused by index; only the
/// first [`MAX_REPORTED_EVENTS`] are named, so a long list of them cannot make a long answer.
fn normalize_events(events: &[String], errors: &mut Vec<(String, String)>) -> Vec<String> {
    if events.is_empty() {
        errors.push((
            "events".to_owned(),
            "must name at least one event, or [\"*\"] for all".to_owned(),
        ));
    }
    let mut normalized: Vec<String> = Vec::new();
    let mut unknown = 0_usize;
    for (index, event) in events.iter().enumerate() {
        if event != "*" && !EVENT_TYPES.contains(&event.as_str()) {
            unknown += 1;
            if unknown <= MAX_REPORTED_EVENTS {
                errors.push((
                    format!("events[{index}]"),
                    format!("{event:?} is not an event; see docs/WEBHOOK_INTEGRATION.md"),
                ));
            }
        } else if !normalized.contains(event) {
            normalized.push(event.clone());
        }
    }
    if unknown > MAX_REPORTED_EVENTS {
        errors.push((
            "events".to_owned(),
            format!(
                "{} more entries are not events",
                unknown - MAX_REPORTED_EVENTS
            ),
        ));
    }
    if normalized.iter().any(|event| event == "*") {
        normalized = vec!["*".to_owned()];
    }
    normalized
}

fn check_description(description: Option<&str>, errors: &mut Vec<(String, String)>) {
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
        errors.push((
            "description".to_owned(),
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
}

#[cfg(test)]
mod tests;
