//! The assistant through the edge with a publishable key: answers grounded in the merchant's
//! synced catalog and documents, price and stock constraints applied, the conversation kept,
//! and sessions held to their merchant.

mod support;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use support::pipeline::{create_key, create_merchant, portal_token};
use support::{Launch, Reply, Server, Workdir, client};

const CATALOG: &str = "sku,title,description,price,category,inStock\n\
    L1,Oak floor lamp,Warm light for reading corners,89.00,Lighting,yes\n\
    L2,Brass desk lamp,Adjustable arm,120.00,Lighting,yes\n\
    L3,Paper lamp shade,Soft diffused light,15.00,Lighting,no\n\
    C1,Walnut chair,Solid walnut dining chair,60.00,Furniture,yes\n";

struct Shop {
    server: Server,
    key: String,
    other_key: String,
}

async fn shop() -> Shop {
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    create_merchant(&workdir, "globex", &["globex-store.com"]);
    let token = portal_token(&workdir, "acme", &[]);
    let key = create_key(&workdir, "acme", "publishable", &[]).key;
    let other_key = create_key(&workdir, "globex", "publishable", &[]).key;
    let admin_key = create_key(&workdir, "acme", "secret", &["documents:write"]).key;
    let server = Launch::serve().start_in(workdir).await;

    let form = Form::new().part(
        "file",
        Part::bytes(CATALOG.as_bytes().to_vec()).file_name("c.csv"),
    );
    Reply::of(
        client()
            .post(server.url("/api/merchants/acme/sync/upload"))
            .bearer_auth(&token)
            .multipart(form),
    )
    .await
    .success(200);
    Reply::of(
        client()
            .post(server.url("/api/documents"))
            .header("X-API-Key", &admin_key)
            .json(&json!({
                "title": "Returns policy",
                "body": "Returns are free within 30 days of delivery.",
                "tags": ["returns"]
            })),
    )
    .await
    .success(201);
    Shop {
        server,
        key,
        other_key,
    }
}

async fn session(shop: &Shop, key: &str) -> String {
    let reply = Reply::of(
        client()
            .post(shop.server.url("/api/chat/sessions"))
            .bearer_auth(key)
            .json(&json!({"userId": "shopper-1"})),
    )
    .await;
    reply.success(200)["sessionId"].as_str().unwrap().to_owned()
}

/// Asks as the widget does, from the page of the key's own merchant.
async fn ask(shop: &Shop, key: &str, session_id: &str, query: &str) -> Reply {
    let origin = if key == shop.key {
        "https://merchant-store.com"
    } else {
        "https://globex-store.com"
    };
    Reply::of(
        client()
            .post(shop.server.url("/api/chat"))
            .bearer_auth(key)
            .header("Origin", origin)
            .json(&json!({"sessionId": session_id, "query": query})),
    )
    .await
}

fn skus(answer: &Value) -> Vec<&str> {
    answer["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sku"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn answers_recommend_the_merchants_products_within_the_constraints() {
    let shop = shop().await;
    let session_id = session(&shop, &shop.key).await;

    let reply = ask(
        &shop,
        &shop.key,
        &session_id,
        "Do you have lamps under $100 in stock?",
    )
    .await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://merchant-store.com")
    );
    let answer = reply.success(200);
    assert_eq!(skus(&answer), ["L1"], "{answer}");
    assert_eq!(answer["recommendations"][0]["price"], 89.0);
    assert_eq!(answer["recommendations"][0]["inStock"], true);
    let text = answer["answer"].as_str().unwrap();
    assert!(
        text.contains("Oak floor lamp") && text.contains("$89.00"),
        "{text}"
    );
    assert!(!text.contains("Brass") && !text.contains("Paper"), "{text}");
    assert!(answer["executionTime"].is_u64());

    let answer = ask(&shop, &shop.key, &session_id, "LAMPS between 10 and 100")
        .await
        .success(200);
    let mut found = skus(&answer);
    found.sort_unstable();
    assert_eq!(found, ["L1", "L3"], "{answer}");

    let answer = ask(&shop, &shop.key, &session_id, "what is your returns policy")
        .await
        .success(200);
    assert_eq!(answer["sources"][0]["title"], "Returns policy", "{answer}");
    assert!(answer["answer"].as_str().unwrap().contains("30 days"));

    // Nothing in the catalog: said plainly, nothing invented.
    let answer = ask(&shop, &shop.key, &session_id, "do you sell surfboards")
        .await
        .success(200);
    assert_eq!(answer["recommendations"], json!([]));
    let text = answer["answer"].as_str().unwrap();
    assert!(text.starts_with("I couldn't find"), "{text}");
    assert!(!text.contains('$'), "{text}");

    // The conversation so far, oldest first.
    let messages = Reply::of(
        client()
            .get(
                shop.server
                    .url(&format!("/api/sessions/{session_id}/messages")),
            )
            .bearer_auth(&shop.key),
    )
    .await
    .success(200);
    let items = messages["items"].as_array().unwrap();
    assert_eq!(items.len(), 8, "{messages}");
    assert_eq!(items[0]["role"], "user");
    assert_eq!(
        items[0]["content"],
        "Do you have lamps under $100 in stock?"
    );
    assert_eq!(items[1]["role"], "assistant");
    assert_eq!(items[1]["recommendations"][0]["sku"], "L1");
}

#[tokio::test]
async fn sessions_are_held_to_their_merchant_and_to_being_open() {
    let shop = shop().await;
    let session_id = session(&shop, &shop.key).await;

    // Another merchant's key: its catalog is not ours, and our session is not found.
    ask(&shop, &shop.other_key, &session_id, "lamps")
        .await
        .failure(404, "NOT_FOUND");
    let other_session = session(&shop, &shop.other_key).await;
    let answer = ask(&shop, &shop.other_key, &other_session, "lamps")
        .await
        .success(200);
    assert_eq!(answer["recommendations"], json!([]), "{answer}");
    Reply::of(
        client()
            .get(
                shop.server
                    .url(&format!("/api/sessions/{session_id}/messages")),
            )
            .bearer_auth(&shop.other_key),
    )
    .await
    .failure(404, "NOT_FOUND");

    ask(&shop, &shop.key, "sess_unknown", "lamps")
        .await
        .failure(404, "NOT_FOUND");
    let reply = ask(&shop, &shop.key, &session_id, "   ").await;
    assert_eq!(reply.failure(400, "VALIDATION_ERROR")["field"], "query");

    Reply::of(
        client()
            .post(shop.server.url(&format!("/api/sessions/{session_id}/end")))
            .bearer_auth(&shop.key),
    )
    .await
    .success(200);
    ask(&shop, &shop.key, &session_id, "lamps")
        .await
        .failure(410, "SESSION_ENDED");
}
