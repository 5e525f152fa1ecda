use axum::body::Body;
use axum::http::StatusCode;
use mindshop_wire::identity::Identity;
use serde_json::{Value, json};

use crate::AppState;
use crate::test_support::{
    call, key, signed, signed_json, signed_with_body, state, user, with_merchants,
};

fn writer(merchant: &str) -> Identity {
    key(merchant, &["documents:write", "documents:read"])
}

fn faq(title: &str) -> Value {
    json!({
        "title": title,
        "body": "We ship worldwide within 3 days.",
        "tags": ["shipping", "faq"],
        "url": "https://acme.com/faq",
    })
}

async fn create(state: &AppState, merchant: &str, body: Value) -> Value {
    let (status, answer) = call(
        state,
        signed_json("POST", "/api/documents", &writer(merchant), &body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["data"].clone()
}

#[tokio::test]
async fn a_created_document_reads_back() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let created = create(&state, "acme", faq("Shipping")).await;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("doc_"), "{created}");
    assert_eq!(created["title"], "Shipping");
    assert_eq!(created["tags"], json!(["shipping", "faq"]));
    assert_eq!(created["url"], "https://acme.com/faq");
    assert_eq!(created["merchantId"], "acme");
    assert_eq!(created["createdAt"], created["updatedAt"]);

    let reader = key("acme", &["documents:read"]);
    let (status, body) = call(
        &state,
        signed("GET", &format!("/api/documents/{id}"), &reader),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], created);

    let (status, body) = call(&state, signed("GET", "/api/documents/doc_ghost", &reader)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "document doc_ghost not found");
}

#[tokio::test]
async fn permissions_are_checked_before_the_body() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let id = create(&state, "acme", faq("Shipping")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = format!("/api/documents/{id}");

    let none = key("acme", &[]);
    let (status, body) = call(&state, signed("GET", "/api/documents", &none)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "FORBIDDEN");
    assert_eq!(body["error"], "Insufficient permissions");
    assert_eq!(body["requiredPermissions"], json!(["documents:read"]));

    let read = key("acme", &["documents:read", "chat:write"]);
    for (method, uri) in [
        ("POST", "/api/documents"),
        ("PUT", one.as_str()),
        ("DELETE", one.as_str()),
    ] {
        let request = signed_with_body(
            method,
            uri,
            &read,
            Some("application/json"),
            Body::from("{"),
        );
        let (status, body) = call(&state, request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {body}");
        assert_eq!(body["requiredPermissions"], json!(["documents:write"]));
    }

    for granted in [&["documents:*"][..], &["*"]] {
        let identity = key("acme", granted);
        let (status, _) = call(&state, signed("GET", &one, &identity)).await;
        assert_eq!(status, StatusCode::OK, "{granted:?}");
        let (status, _) = call(&state, signed_json("PUT", &one, &identity, &faq("Again"))).await;
        assert_eq!(status, StatusCode::OK, "{granted:?}");
    }

    // A caller with no merchant (a portal admin, say) has no knowledge base here.
    let (status, body) = call(
        &state,
        signed(
            "GET",
            "/api/documents",
            &Identity {
                merchant: None,
                ..key("acme", &["*"])
            },
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["success"], false);
    // Nor does a portal user of the merchant, who holds no key permissions.
    let (status, _) = call(&state, signed("GET", "/api/documents", &user("acme"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn another_merchants_key_never_reads_or_changes_a_document() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let original = create(&state, "acme", faq("Acme secret pricing")).await;
    let uri = format!("/api/documents/{}", original["id"].as_str().unwrap());
    let globex = key("globex", &["*"]);

    let (status, body) = call(&state, signed("GET", &uri, &globex)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!body.to_string().contains("pricing"), "{body}");
    let (status, _) = call(&state, signed_json("PUT", &uri, &globex, &faq("Defaced"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&state, signed("DELETE", &uri, &globex)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call(&state, signed("GET", "/api/documents", &globex)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["items"], json!([]));

    let (status, body) = call(&state, signed("GET", &uri, &writer("acme"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], original, "untouched");
}

#[tokio::test]
async fn lists_are_newest_first_in_pages() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create(&state, "acme", faq(&format!("Doc {i}"))).await["id"].clone());
    }
    create(&state, "globex", faq("Not acme's")).await;
    ids.reverse();

    let reader = key("acme", &["documents:read"]);
    let (status, body) = call(&state, signed("GET", "/api/documents", &reader)).await;
    assert_eq!(status, StatusCode::OK);
    let all: Vec<Value> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(all, ids, "newest first, only acme's");
    assert_eq!(body["data"]["nextCursor"], Value::Null);

    let mut seen = Vec::new();
    let mut uri = "/api/documents?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, body) = call(&state, signed("GET", &uri, &reader)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pages += 1;
        let items = body["data"]["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|d| d["id"].clone()));
        match body["data"]["nextCursor"].as_str() {
            Some(cursor) => uri = format!("/api/documents?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn bad_list_parameters_are_named() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let reader = key("acme", &["documents:read"]);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
    ] {
        let (status, body) = call(
            &state,
            signed("GET", &format!("/api/documents?{query}"), &reader),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["code"], "VALIDATION_ERROR");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    let (status, _) = call(&state, signed("GET", "/api/documents?limit=100", &reader)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn put_replaces_every_field_and_bumps_updated_at() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let created = create(&state, "acme", faq("Shipping")).await;
    let uri = format!("/api/documents/{}", created["id"].as_str().unwrap());
    let replacement = json!({"title": "Shipping (2027)", "body": "Two days now."});
    let (status, body) = call(
        &state,
        signed_json("PUT", &uri, &writer("acme"), &replacement),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let updated = &body["data"];
    assert_eq!(updated["title"], "Shipping (2027)");
    assert_eq!(updated["body"], "Two days now.");
    assert_eq!(updated["tags"], json!([]), "omitted tags are cleared");
    assert_eq!(updated["url"], Value::Null, "an omitted url is cleared");
    assert_eq!(updated["createdAt"], created["createdAt"]);
    let before: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(created["updatedAt"].clone()).unwrap();
    let after: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(updated["updatedAt"].clone()).unwrap();
    assert!(after > before);

    let (status, body) = call(
        &state,
        signed_json(
            "PUT",
            &uri,
            &writer("acme"),
            &json!({"title": "", "body": "x"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "title");
}

#[tokio::test]
async fn delete_answers_the_id_and_the_document_is_gone() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let id = create(&state, "acme", faq("Shipping")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = format!("/api/documents/{id}");
    let (status, body) = call(&state, signed("DELETE", &uri, &writer("acme"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], json!({"id": id, "deleted": true}));
    let (status, _) = call(&state, signed("GET", &uri, &writer("acme"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&state, signed("DELETE", &uri, &writer("acme"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_documents_are_refused_naming_the_field() {
    let (state, _dir) = state().await;
    with_merchants(&state).await;
    let huge = "x".repeat(1024 * 1024 + 1);
    let cases = [
        (json!({"body": "b"}), "title", "title: is required"),
        (json!({"title": "t"}), "body", "body: is required"),
        (
            json!({"title": "a".repeat(201), "body": "b"}),
            "title",
            "title: must be 1 to 200 characters",
        ),
        (
            json!({"title": "t", "body": huge}),
            "body",
            "body: must be at most 1048576 bytes (1 MB)",
        ),
        (
            json!({"title": "t", "body": "b", "tags": ["ok", ""]}),
            "tags[1]",
            "tags[1]: must be 1 to 50",
        ),
        (
            json!({"title": "t", "body": "b", "tags": ["ok", 7]}),
            "tags[1]",
            "tags[1]: invalid type",
        ),
        (
            json!({"title": "t", "body": "b", "tags": vec!["t"; 21]}),
            "tags",
            "tags: at most 20 tags",
        ),
        (
            json!({"title": "t", "body": "b", "url": "ftp://acme.com"}),
            "url",
            "url: must be an http or https URL",
        ),
        (
            json!({"title": "t", "body": "b", "author": "me"}),
            "author",
            "author: is not a known field",
        ),
    ];
    for (body, field, message) in cases {
        let (status, answer) = call(
            &state,
            signed_json("POST", "/api/documents", &writer("acme"), &body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        assert_eq!(answer["code"], "VALIDATION_ERROR");
        assert_eq!(answer["field"], field);
        let error = answer["error"].as_str().unwrap();
        assert!(error.starts_with(message), "{error}");
    }
    let (status, body) = call(
        &state,
        signed_with_body(
            "POST",
            "/api/documents",
            &writer("acme"),
            None,
            Body::from("{}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["code"], "UNSUPPORTED_MEDIA_TYPE");

    let (_, body) = call(&state, signed("GET", "/api/documents", &writer("acme"))).await;
    assert_eq!(body["data"]["items"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_body_over_the_edge_limit_is_413() {
    let (mut state, _dir) = state().await;
    with_merchants(&state).await;
    state.max_body_bytes = 1024;
    let body = json!({"title": "t", "body": "x".repeat(2048)});
    let (status, answer) = call(
        &state,
        signed_json("POST", "/api/documents", &writer("acme"), &body),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["code"], "PAYLOAD_TOO_LARGE");
}
