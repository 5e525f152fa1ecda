//! Outbound webhooks through the real binary: endpoints managed from the portal, events of the
//! API delivered signed to receivers on loopback and verified with the guide's own examples
//! (docs/WEBHOOK_INTEGRATION.md), deliveries held to their merchant, and nothing lost when the
//! backend is killed mid-way.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::pipeline::{create_key, create_merchant, portal_token};
use support::webhook_guide::{NodeReceiver, verify};
use support::{Launch, Reply, Server, Workdir, client, free_addr};

/// Delivery settings for tests: loopback and http allowed, quick passes, short retries.
fn launch() -> Launch {
    Launch::serve()
        .env("MINDSHOP_WEBHOOKS_ALLOW_HTTP", "true")
        .env("MINDSHOP_WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS", "true")
        .env("MINDSHOP_WEBHOOKS_DISPATCH_INTERVAL_MS", "50")
        .env("MINDSHOP_WEBHOOKS_TIMEOUT_SECS", "1")
        .env("MINDSHOP_WEBHOOKS_RETRY_SCHEDULE_SECS", "1,1,1,1,1,1,1,1")
}

struct Shop {
    workdir: Workdir,
    token: String,
    other_token: String,
    key: String,
}

fn shop() -> Shop {
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["acme.com"]);
    create_merchant(&workdir, "globex", &["globex.com"]);
    Shop {
        token: portal_token(&workdir, "acme", &[]),
        other_token: portal_token(&workdir, "globex", &[]),
        key: create_key(&workdir, "acme", "secret", &["documents:write"]).key,
        workdir,
    }
}

/// What a receiver got: (headers, raw body) per request.
type Captured = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

/// A receiver on loopback that records every request and answers 200.
async fn capturing_receiver() -> (String, Captured) {
    let captured: Captured = Arc::default();
    let seen = Arc::clone(&captured);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let headers = headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect();
                seen.lock().unwrap().push((headers, body.to_vec()));
                async { "ok" }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, captured)
}

async fn create_endpoint(server: &Server, token: &str, url: &str, events: Value) -> Value {
    Reply::of(
        client()
            .post(server.url("/api/merchants/acme/webhooks"))
            .bearer_auth(token)
            .json(&json!({"url": url, "events": events, "description": "test receiver"})),
    )
    .await
    .success(201)
}

async fn create_document(server: &Server, key: &str, title: &str) -> Value {
    Reply::of(
        client()
            .post(server.url("/api/documents"))
            .header("X-API-Key", key)
            .json(&json!({"title": title, "body": "Returns are free within 30 days."})),
    )
    .await
    .success(201)
}

/// Waits until `captured` holds at least `count` requests.
async fn received(captured: &Captured, count: usize) -> Vec<(Vec<(String, String)>, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = captured.lock().unwrap().clone();
        if got.len() >= count {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "only {} deliveries arrived",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_created_document_reaches_the_receiver_signed_both_ways() {
    let shop = shop();
    let server = launch().start_in(shop.workdir).await;
    let (url, captured) = capturing_receiver().await;
    let endpoint = create_endpoint(&server, &shop.token, &url, json!(["document.created"])).await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let webhook_id = endpoint["id"].as_str().unwrap().to_owned();

    let document = create_document(&server, &shop.key, "Returns policy").await;
    let got = received(&captured, 1).await;
    let (headers, body) = &got[0];
    // The guide's Rust example accepts it, over the exact bytes sent: with the Standard
    // Webhooks signature, and with only the hex one (as the original design's receivers check).
    verify(&secret, headers, body, now_unix()).expect("a valid delivery");
    let hex_only: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("webhook-signature"))
        .cloned()
        .collect();
    verify(&secret, &hex_only, body, now_unix()).expect("a valid hex signature");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    let sent = headers
        .iter()
        .find(|(name, _)| name == "x-webhook-signature")
        .map(|(_, value)| value.as_str());
    assert_eq!(sent, Some(expected.as_str()));
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["event"], "document.created");
    assert_eq!(event["data"]["id"], document["id"]);
    // A wrong secret is refused by the same code.
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw+xBmA2a/Xzw=";
    assert!(verify(other, headers, body, now_unix()).is_err());

    // The merchant sees the delivery and its attempt.
    let deliveries = Reply::of(
        client()
            .get(server.url(&format!(
                "/api/merchants/acme/webhooks/{webhook_id}/deliveries"
            )))
            .bearer_auth(&shop.token),
    )
    .await
    .success(200);
    let delivery = &deliveries["items"][0];
    assert_eq!(delivery["status"], "delivered", "{deliveries}");
    assert_eq!(delivery["eventId"], event["id"]);
    assert_eq!(delivery["attemptLog"][0]["statusCode"], 200);
    assert_eq!(delivery["attemptLog"][0]["responseExcerpt"], "ok");

    // The guide's Node.js example verifies a real delivery too: a test event sent to it.
    let node = NodeReceiver::start(&secret).await;
    Reply::of(
        client()
            .put(server.url(&format!("/api/merchants/acme/webhooks/{webhook_id}")))
            .bearer_auth(&shop.token)
            .json(&json!({"url": node.url(), "events": ["*"]})),
    )
    .await
    .success(200);
    create_document(&server, &shop.key, "Shipping policy").await;
    let logged = node.logged(1).await;
    assert_eq!(logged[0]["valid"], true, "{logged:?}");
    assert_eq!(logged[0]["event"], "document.created");
}

#[tokio::test]
async fn endpoints_are_checked_and_held_to_their_merchant() {
    let shop = shop();
    let server = launch().start_in(shop.workdir).await;
    let (url, _captured) = capturing_receiver().await;

    let refused = Reply::of(
        client()
            .post(server.url("/api/merchants/acme/webhooks"))
            .bearer_auth(&shop.token)
            .json(&json!({"url": "ftp://example.com/x", "events": ["document.created", "nope"]})),
    )
    .await;
    let body = refused.failure(400, "VALIDATION_ERROR");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["url", "events[1]"], "{body}");

    let endpoint = create_endpoint(&server, &shop.token, &url, json!(["*"])).await;
    let webhook_id = endpoint["id"].as_str().unwrap();
    create_document(&server, &shop.key, "Policy").await;

    // The list never shows the secret.
    let listed = Reply::of(
        client()
            .get(server.url("/api/merchants/acme/webhooks"))
            .bearer_auth(&shop.token),
    )
    .await
    .success(200);
    assert_eq!(listed["items"][0]["id"], webhook_id);
    assert!(listed["items"][0].get("secret").is_none(), "{listed}");

    // Another merchant's token: refused at acme's paths, and acme's ids are unknown at its own.
    for path in [
        format!("/api/merchants/acme/webhooks/{webhook_id}"),
        format!("/api/merchants/acme/webhooks/{webhook_id}/deliveries"),
    ] {
        Reply::of(
            client()
                .get(server.url(&path))
                .bearer_auth(&shop.other_token),
        )
        .await
        .failure(403, "FORBIDDEN");
    }
    Reply::of(
        client()
            .get(server.url(&format!(
                "/api/merchants/globex/webhooks/{webhook_id}/deliveries"
            )))
            .bearer_auth(&shop.other_token),
    )
    .await
    .failure(404, "NOT_FOUND");
    Reply::of(
        client()
            .post(server.url(&format!(
                "/api/merchants/globex/webhooks/{webhook_id}/deliveries/whd_x/retry"
            )))
            .bearer_auth(&shop.other_token),
    )
    .await
    .failure(404, "NOT_FOUND");

    // Rotation: a new secret, the old one still signing beside it.
    let rotated = Reply::of(
        client()
            .post(server.url(&format!(
                "/api/merchants/acme/webhooks/{webhook_id}/rotate-secret"
            )))
            .bearer_auth(&shop.token),
    )
    .await
    .success(200);
    assert_ne!(rotated["secret"], endpoint["secret"]);
    assert!(rotated["previousSecretExpiresAt"].is_string(), "{rotated}");
}

#[tokio::test]
async fn a_backend_killed_with_deliveries_pending_delivers_them_after_restart() {
    let shop = shop();
    let server = launch().start_in(shop.workdir).await;
    // The receiver is down at first: its port is free, nothing listens.
    let receiver_addr = free_addr();
    let url = format!("http://{receiver_addr}/hook");
    create_endpoint(&server, &shop.token, &url, json!(["document.created"])).await;
    let mut ids = HashSet::new();
    for i in 0..5 {
        let document = create_document(&server, &shop.key, &format!("Doc {i}")).await;
        ids.insert(document["id"].as_str().unwrap().to_owned());
    }
    // Wait until every delivery has failed once (so each is pending with a retry), then crash.
    let token = shop.token.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let webhooks = Reply::of(
        client()
            .get(server.url("/api/merchants/acme/webhooks"))
            .bearer_auth(&token),
    )
    .await
    .success(200);
    let webhook_id = webhooks["items"][0]["id"].as_str().unwrap().to_owned();
    loop {
        let deliveries = Reply::of(
            client()
                .get(server.url(&format!(
                    "/api/merchants/acme/webhooks/{webhook_id}/deliveries"
                )))
                .bearer_auth(&token),
        )
        .await
        .success(200);
        let items = deliveries["items"].as_array().unwrap();
        if items.len() == 5 && items.iter().all(|d| d["attempts"].as_i64() >= Some(1)) {
            assert!(
                items.iter().all(|d| d["status"] == "pending"),
                "{deliveries}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never failed: {deliveries}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let workdir = server.kill_hard();

    // The receiver comes up; the backend restarts on the same database.
    let captured: Captured = Arc::default();
    let seen = Arc::clone(&captured);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            seen.lock().unwrap().push((Vec::new(), body.to_vec()));
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind(receiver_addr).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let _server = launch().start_in(workdir).await;

    let got = received(&captured, 5).await;
    let delivered: HashSet<String> = got
        .iter()
        .map(|(_, body)| {
            let event: Value = serde_json::from_slice(body).unwrap();
            event["data"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(delivered, ids, "every event arrived");
}
