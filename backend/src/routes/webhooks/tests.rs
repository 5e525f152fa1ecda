use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{Value, json};

use crate::AppState;
use crate::store::{DocumentFields, NewDocument};
use crate::test_support::{call, signed, signed_json, state, user, with_merchants};

const HOOKS: &str = "/api/merchants/acme/webhooks";

async fn create(state: &AppState, events: Value) -> (StatusCode, Value) {
    let body = json!({"url": "https://hooks.acme.com/in", "events": events});
    call(state, signed_json("POST", HOOKS, &user("acme"), &body)).await
}

async fn listed(state: &AppState) -> Vec<Value> {
    let (status, body) = call(state, signed("GET", HOOKS, &user("acme"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_million_stars_are_stored_as_one() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let (status, body) = create(&state, json!(vec!["*"; 1_000_000])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["events"], json!(["*"]));
    let items = listed(&state).await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["events"],
        json!(["*"]),
        "the list answer stays small"
    );
}

#[tokio::test]
async fn events_are_kept_once_in_order_and_star_covers_the_rest() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let repeated = json!(["document.created", "chat.completed", "document.created"]);
    let (status, body) = create(&state, repeated).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["data"]["events"],
        json!(["document.created", "chat.completed"])
    );
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let put = json!({"events": ["sync.failed", "*", "sync.failed", "chat.failed"]});
    let uri = format!("{HOOKS}/{id}");
    let (status, body) = call(&state, signed_json("PUT", &uri, &user("acme"), &put)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["events"], json!(["*"]));
}

#[tokio::test]
async fn an_unknown_event_is_named_and_nothing_is_created() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let (status, body) = create(&state, json!(["chat.completed", "*", "chat.nope"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert_eq!(body["field"], "events[2]");
    assert!(
        body["error"].as_str().unwrap().contains("\"chat.nope\""),
        "{body}"
    );
    assert!(listed(&state).await.is_empty());
}

#[tokio::test]
async fn a_flood_of_unknown_events_gets_a_short_refusal() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let (status, body) = create(&state, json!(vec!["nope"; 100_000])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 11, "ten named, then how many more");
    assert_eq!(errors[0]["field"], "events[0]");
    assert_eq!(errors[10]["message"], "99990 more entries are not events");
    assert!(listed(&state).await.is_empty());
}

/// Writes a `document.created` event for acme, as the documents API does.
async fn document_created(state: &AppState, id: &str) {
    state
        .store
        .create_document(&NewDocument {
            id: id.to_owned(),
            merchant_id: "acme".to_owned(),
            fields: DocumentFields {
                title: id.to_owned(),
                body: "text".to_owned(),
                tags: Vec::new(),
                url: None,
            },
        })
        .await
        .unwrap();
}

/// The documents the endpoint's deliveries report, by id (read from what is sent), after the
/// dispatcher's next fan-out.
async fn delivered_documents(state: &AppState, endpoint_id: &str) -> Vec<String> {
    state.store.fan_out_events(100, Utc::now()).await.unwrap();
    let now = Utc::now();
    let claimed = state
        .store
        .claim_deliveries(100, now, now + chrono::Duration::seconds(30))
        .await
        .unwrap();
    let mut documents: Vec<String> = claimed
        .iter()
        .filter(|d| d.endpoint_id == endpoint_id)
        .map(|d| {
            let payload: Value = serde_json::from_str(&d.payload).unwrap();
            payload["data"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    documents.sort();
    documents
}

#[tokio::test]
async fn a_new_endpoint_gets_no_event_from_before_it_existed() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    // Still in the outbox when the endpoint is created (the dispatcher has not passed yet).
    document_created(&state, "doc-before").await;
    let (status, body) = create(&state, json!(["document.created"])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    document_created(&state, "doc-after").await;
    assert_eq!(delivered_documents(&state, &id).await, ["doc-after"]);
}

#[tokio::test]
async fn a_re_enabled_endpoint_gets_what_happened_while_enabled_only() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let (_, body) = create(&state, json!(["*"])).await;
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let uri = format!("{HOOKS}/{id}");
    let enabled = |on: bool| signed_json("PUT", &uri, &user("acme"), &json!({"enabled": on}));
    document_created(&state, "doc-enabled").await;
    let (status, body) = call(&state, enabled(false)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    document_created(&state, "doc-disabled").await;
    let (status, body) = call(&state, enabled(true)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    document_created(&state, "doc-re-enabled").await;
    assert_eq!(
        delivered_documents(&state, &id).await,
        ["doc-enabled", "doc-re-enabled"]
    );
}
