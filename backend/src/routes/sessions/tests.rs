use axum::http::StatusCode;
use mindshop_wire::identity::Identity;
use serde_json::{Value, json};

use crate::AppState;
use crate::test_support::{call, key, signed, signed_json, state, with_merchants};

/// The widget's publishable key.
fn widget(merchant: &str) -> Identity {
    key(merchant, &["chat:write", "sessions:read", "sessions:write"])
}

async fn open(state: &AppState, merchant: &str) -> Value {
    let body = json!({"userId": "shopper-1"});
    let (status, answer) = call(
        state,
        signed_json("POST", "/api/chat/sessions", &widget(merchant), &body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["data"].clone()
}

#[tokio::test]
async fn a_session_opens_for_the_keys_merchant() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let session = open(&state, "acme").await;
    assert!(
        session["sessionId"].as_str().unwrap().starts_with("sess_"),
        "{session}"
    );
    assert_eq!(session["merchantId"], "acme");
    assert_eq!(session["userId"], "shopper-1");
    assert_eq!(session["status"], "active");
    assert!(session["createdAt"].is_string());
    assert!(session.get("endedAt").is_none(), "{session}");

    let same = json!({"userId": "shopper-2", "merchantId": "acme"});
    let (status, body) = call(
        &state,
        signed_json("POST", "/api/chat/sessions", &widget("acme"), &same),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "naming its own merchant is fine: {body}"
    );
    assert_eq!(body["data"]["merchantId"], "acme");
}

#[tokio::test]
async fn naming_another_merchant_is_a_mismatch() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let body = json!({"userId": "shopper-1", "merchantId": "globex"});
    let (status, answer) = call(
        &state,
        signed_json("POST", "/api/chat/sessions", &widget("acme"), &body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["code"], "MERCHANT_MISMATCH");
    assert_eq!(answer["success"], false);
}

#[tokio::test]
async fn session_routes_need_their_permissions() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let id = open(&state, "acme").await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let read_only = key("acme", &["sessions:read"]);
    let body = json!({"userId": "u"});
    let (status, answer) = call(
        &state,
        signed_json("POST", "/api/chat/sessions", &read_only, &body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["requiredPermissions"], json!(["chat:write"]));
    let (status, answer) = call(
        &state,
        signed("POST", &format!("/api/sessions/{id}/end"), &read_only),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["requiredPermissions"], json!(["sessions:write"]));
    let (status, answer) = call(
        &state,
        signed(
            "GET",
            &format!("/api/sessions/{id}"),
            &key("acme", &["chat:write"]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["requiredPermissions"], json!(["sessions:read"]));
    let (status, _) = call(
        &state,
        signed(
            "GET",
            &format!("/api/sessions/{id}"),
            &key("acme", &["sessions:*"]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn another_merchants_session_is_not_found_and_stays_open() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let id = open(&state, "acme").await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = call(
        &state,
        signed("GET", &format!("/api/sessions/{id}"), &widget("globex")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], format!("session {id} not found"));
    let (status, _) = call(
        &state,
        signed(
            "POST",
            &format!("/api/sessions/{id}/end"),
            &widget("globex"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = call(
        &state,
        signed("GET", &format!("/api/sessions/{id}"), &widget("acme")),
    )
    .await;
    assert_eq!(body["data"]["status"], "active");
}

#[tokio::test]
async fn ending_stamps_the_time_once_and_twice_is_409() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let id = open(&state, "acme").await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let end = format!("/api/sessions/{id}/end");
    let (status, body) = call(&state, signed("POST", &end, &widget("acme"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "ended");
    let ended_at = body["data"]["endedAt"].clone();
    assert!(ended_at.is_string(), "{body}");

    let (status, body) = call(&state, signed("POST", &end, &widget("acme"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "SESSION_ENDED");

    let (_, body) = call(
        &state,
        signed("GET", &format!("/api/sessions/{id}"), &widget("acme")),
    )
    .await;
    assert_eq!(body["data"]["status"], "ended");
    assert_eq!(body["data"]["endedAt"], ended_at);

    let (status, _) = call(
        &state,
        signed("POST", "/api/sessions/sess_ghost/end", &widget("acme")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_session_requests_name_the_field() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let long = "u".repeat(129);
    for (body, field) in [
        (json!({}), "userId"),
        (json!({"userId": "  "}), "userId"),
        (json!({"userId": long}), "userId"),
        (json!({"userId": 42}), "userId"),
        (json!({"userId": "u", "sessionId": "x"}), "sessionId"),
    ] {
        let (status, answer) = call(
            &state,
            signed_json("POST", "/api/chat/sessions", &widget("acme"), &body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["code"], "VALIDATION_ERROR");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
}
