use axum::http::StatusCode;
use mindshop_wire::api_key::{self, BROWSER_SAFE};
use serde_json::{Value, json};

use crate::AppState;
use crate::test_support::{admin, call, signed, signed_json, state, user, with_merchants};

const ACME_KEYS: &str = "/api/merchants/acme/api-keys";

async fn create(state: &AppState, body: Value) -> Value {
    let (status, body) = call(state, signed_json("POST", ACME_KEYS, &user("acme"), &body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["data"].clone()
}

async fn listed(state: &AppState, merchant: &str) -> Vec<Value> {
    let uri = format!("/api/merchants/{merchant}/api-keys");
    let (status, body) = call(state, signed("GET", &uri, &user(merchant))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn a_new_key_is_shown_once_and_listed_by_prefix_only() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let created = create(&state, json!({"kind": "publishable"})).await;
    let key = created["key"]
        .as_str()
        .expect("the key, shown once")
        .to_owned();
    assert!(key.starts_with("pk_test_"), "{created}");
    assert!(created["id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(created["merchantId"], "acme");
    assert_eq!(created["prefix"], &key[..12]);
    assert!(created.get("keyHash").is_none(), "{created}");
    let permissions = created["permissions"].as_array().unwrap();
    assert!(!permissions.is_empty());
    assert!(
        permissions
            .iter()
            .all(|p| BROWSER_SAFE.contains(&p.as_str().unwrap())),
        "publishable defaults are browser-safe: {created}"
    );

    // The edge finds it by hash, for this merchant.
    let stored = state
        .store
        .find_api_key_by_hash(&api_key::hash(&key))
        .await
        .unwrap()
        .expect("stored by its hash");
    assert_eq!(stored.merchant_id, "acme");

    let items = listed(&state, "acme").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], created["id"]);
    assert_eq!(items[0]["prefix"], &key[..12]);
    let text = Value::Array(items).to_string();
    assert!(
        !text.contains(&key[12..]),
        "a list never shows the key: {text}"
    );
    assert!(!text.contains(&stored.key_hash), "nor its hash: {text}");
}

#[tokio::test]
async fn secret_keys_take_env_permissions_and_name() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let created = create(
        &state,
        json!({
            "kind": "secret",
            "env": "live",
            "permissions": ["documents:write", "documents:read", "documents:write"],
            "name": "  import server  ",
        }),
    )
    .await;
    assert!(created["key"].as_str().unwrap().starts_with("sk_live_"));
    assert_eq!(created["kind"], "secret");
    assert_eq!(created["env"], "live");
    assert_eq!(
        created["permissions"],
        json!(["documents:read", "documents:write"])
    );
    assert_eq!(created["name"], "import server");

    let default_secret = create(&state, json!({"kind": "secret"})).await;
    assert_eq!(default_secret["permissions"], json!(["*"]));
    assert_eq!(default_secret["env"], "test");
    assert_eq!(default_secret["name"], Value::Null);
}

#[tokio::test]
async fn refused_requests_name_the_field_and_leave_no_key() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let cases = [
        (
            json!({"kind": "admin"}),
            "kind",
            "must be publishable or secret",
        ),
        (
            json!({"kind": "secret", "env": "prod"}),
            "env",
            "must be test or live",
        ),
        (
            json!({"kind": "secret", "permissions": ["documents:read", "documents:fly"]}),
            "permissions[1]",
            "unknown permission",
        ),
        (
            json!({"kind": "publishable", "permissions": ["chat:write", "documents:write"]}),
            "permissions[1]",
            "publishable key may not hold",
        ),
        (
            json!({"kind": "publishable", "permissions": ["*"]}),
            "permissions[0]",
            "publishable key may not hold",
        ),
        (
            json!({"kind": "secret", "permissions": []}),
            "permissions",
            "at least one",
        ),
        (
            json!({"kind": "secret", "name": "  "}),
            "name",
            "1 to 100 characters",
        ),
        (
            json!({"kind": "secret", "scopes": ["*"]}),
            "scopes",
            "not a known field",
        ),
        (json!({"env": "test"}), "kind", "is required"),
    ];
    for (body, field, message) in cases {
        let (status, answer) =
            call(&state, signed_json("POST", ACME_KEYS, &user("acme"), &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_eq!(answer["code"], "VALIDATION_ERROR", "{answer}");
        assert_eq!(answer["field"], field, "{body} → {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(message), "{body} → {error}");
    }
    assert_eq!(listed(&state, "acme").await, Vec::<Value>::new());
}

#[tokio::test]
async fn another_merchants_user_cannot_create_list_or_revoke() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let acme_key = create(&state, json!({"kind": "secret"})).await;
    let acme_key_id = acme_key["id"].as_str().unwrap();
    let intruder = user("globex");

    let (status, body) = call(
        &state,
        signed_json("POST", ACME_KEYS, &intruder, &json!({"kind": "secret"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "Access denied");
    let (status, body) = call(&state, signed("GET", ACME_KEYS, &intruder)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.to_string().contains(acme_key_id), "{body}");
    let acme_uri = format!("{ACME_KEYS}/{acme_key_id}");
    let (status, _) = call(&state, signed("DELETE", &acme_uri, &intruder)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Through its own merchant's path, the other merchant's key is simply not there.
    let own_uri = format!("/api/merchants/globex/api-keys/{acme_key_id}");
    let (status, body) = call(&state, signed("DELETE", &own_uri, &intruder)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "NOT_FOUND");

    let items = listed(&state, "acme").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["revokedAt"], Value::Null, "the key still works");
    assert_eq!(listed(&state, "globex").await, Vec::<Value>::new());
}

#[tokio::test]
async fn revoking_answers_the_record_and_keeps_the_first_time() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let created = create(&state, json!({"kind": "secret"})).await;
    let uri = format!("{ACME_KEYS}/{}", created["id"].as_str().unwrap());

    let (status, body) = call(&state, signed("DELETE", &uri, &user("acme"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["id"], created["id"]);
    let revoked_at = body["data"]["revokedAt"].clone();
    assert!(revoked_at.is_string(), "{body}");
    assert!(body["data"].get("key").is_none(), "{body}");

    let (status, again) = call(&state, signed("DELETE", &uri, &user("acme"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["data"]["revokedAt"], revoked_at);
    assert_eq!(listed(&state, "acme").await[0]["revokedAt"], revoked_at);

    let (status, body) = call(
        &state,
        signed("DELETE", &format!("{ACME_KEYS}/key_ghost"), &user("acme")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "API key key_ghost not found");
}

#[tokio::test]
async fn an_unknown_merchant_is_404_for_admins() {
    let (state, _dir) = state().await;
    let uri = "/api/merchants/nobody/api-keys";
    let (status, body) = call(
        &state,
        signed_json("POST", uri, &admin(), &json!({"kind": "secret"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "merchant nobody not found");
    let (status, _) = call(&state, signed("GET", uri, &admin())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
