//! The assistant through the edge with a publishable key: answers grounded in the merchant's
//! synced catalog and documents, price and stock constraints applied, the conversation kept,
//! and sessions held to their merchant.

mod support;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use support::pipeline::{
    counter, counter_reaching, create_key, create_merchant, portal_token, scrape,
};
use support::{Launch, Reply, Server, Workdir, client};

const CATALOG: &str = "sku,title,description,price,category,inStock\n\
    L1,Oak floor lamp,Warm light for reading corners,89.00,Lighting,yes\n\
    L2,Brass desk lamp,Adjustable arm,120.00,Lighting,yes\n\
    L3,Paper lamp shade,Soft diffused light,15.00,Lighting,no\n\
    C1,Walnut chair,Solid walnut dining chair,60.00,Furniture,yes\n\
    H1,Wireless headphones,Over-ear with 30 hours of battery,79.00,Audio,yes\n\
    H2,Wireless headphones Pro,Noise cancelling,149.00,Audio,yes\n\
    E1,Wired earphones,In-ear headphone with a 1.2 m cable,19.00,Audio,yes\n";

/// Another merchant's catalog, cheaper headphones included.
const OTHER_CATALOG: &str = "sku,title,price,category,inStock\n\
    G1,Wireless headphones Lite,39.00,Audio,yes\n";

struct Shop {
    server: Server,
    key: String,
    other_key: String,
}

async fn shop() -> Shop {
    shop_launched(Launch::serve()).await
}

async fn shop_launched(launch: Launch) -> Shop {
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    create_merchant(&workdir, "globex", &["globex-store.com"]);
    let token = portal_token(&workdir, "acme", &[]);
    let key = create_key(&workdir, "acme", "publishable", &[]).key;
    let other_key = create_key(&workdir, "globex", "publishable", &[]).key;
    let admin_key = create_key(&workdir, "acme", "secret", &["documents:write"]).key;
    let other_token = portal_token(&workdir, "globex", &[]);
    let server = launch.start_in(workdir).await;

    for (merchant, token, catalog) in [
        ("acme", &token, CATALOG),
        ("globex", &other_token, OTHER_CATALOG),
    ] {
        let form = Form::new().part(
            "file",
            Part::bytes(catalog.as_bytes().to_vec()).file_name("c.csv"),
        );
        Reply::of(
            client()
                .post(server.url(&format!("/api/merchants/{merchant}/sync/upload")))
                .bearer_auth(token)
                .multipart(form),
        )
        .await
        .success(200);
    }
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
    // The catalog is searchable once the backend's indexer has taken it in (in the background,
    // so imports stay fast).
    let indexed = counter_reaching(&server, "mindshop_search_indexed_products_total", &[], 8).await;
    assert_eq!(indexed, 8);
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
async fn headphones_under_a_price_are_the_merchants_own_and_in_price() {
    let shop = shop().await;
    let session_id = session(&shop, &shop.key).await;
    let answer = ask(
        &shop,
        &shop.key,
        &session_id,
        "wireless headphones under $100",
    )
    .await
    .success(200);
    let found = skus(&answer);
    // H1 fits; H2 is over the price; G1 is another merchant's; E1 (earphones, $19) may come
    // after as a weaker match, but nothing over $100 and nothing of globex ever does.
    assert_eq!(found.first(), Some(&"H1"), "{answer}");
    assert!(!found.contains(&"H2") && !found.contains(&"G1"), "{answer}");
    for recommendation in answer["recommendations"].as_array().unwrap() {
        assert!(
            recommendation["price"].as_f64().unwrap() <= 100.0,
            "{answer}"
        );
    }
    let text = answer["answer"].as_str().unwrap();
    assert!(!text.contains("Pro") && !text.contains("Lite"), "{text}");

    // And globex's shopper sees globex's headphones only.
    let other_session = session(&shop, &shop.other_key).await;
    let answer = ask(
        &shop,
        &shop.other_key,
        &other_session,
        "wireless headphones under $100",
    )
    .await
    .success(200);
    assert_eq!(skus(&answer), ["G1"], "{answer}");
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

/// The outbox as the backend wrote it: (event type, data), oldest first.
async fn events(server: &Server) -> Vec<(String, Value)> {
    use sqlx::Connection;
    let path = server.workdir().path().join("data/mindshop.db");
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the database");
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT event_type, data FROM events ORDER BY seq")
            .fetch_all(&mut db)
            .await
            .expect("read the outbox");
    rows.into_iter()
        .map(|(kind, data)| (kind, serde_json::from_str(&data).expect("JSON data")))
        .collect()
}

#[tokio::test]
async fn exchanges_and_failures_are_reported_in_the_outbox() {
    let shop = shop().await;
    let session_id = session(&shop, &shop.key).await;
    ask(&shop, &shop.key, &session_id, "lamps under $100")
        .await
        .success(200);
    let too_long = "lamp ".repeat(300);
    ask(&shop, &shop.key, &session_id, &too_long)
        .await
        .failure(400, "VALIDATION_ERROR");

    let events = events(&shop.server).await;
    let completed: Vec<&Value> = events
        .iter()
        .filter(|(kind, _)| kind == "chat.completed")
        .map(|(_, data)| data)
        .collect();
    assert_eq!(completed.len(), 1, "{events:?}");
    let data = completed[0];
    assert_eq!(data["sessionId"], session_id.as_str());
    assert_eq!(data["merchantId"], "acme");
    assert_eq!(data["userId"], "shopper-1");
    assert_eq!(data["query"], "lamps under $100");
    assert_eq!(data["answeredBy"], "grounded");
    assert!(data["executionTime"].is_u64(), "{data}");
    let mut recommended: Vec<&str> = data["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sku"].as_str().unwrap())
        .collect();
    recommended.sort_unstable();
    assert_eq!(recommended, ["L1", "L3"]);

    let failed: Vec<&Value> = events
        .iter()
        .filter(|(kind, _)| kind == "chat.failed")
        .map(|(_, data)| data)
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0]["errorCode"], "VALIDATION_ERROR");
    assert_eq!(failed[0]["sessionId"], session_id.as_str());
    assert!(failed[0]["error"].as_str().unwrap().contains("query"));

    let metrics = scrape(&shop.server).await;
    assert_eq!(
        counter(
            &metrics,
            "mindshop_chat_requests_total",
            &[("outcome", "completed"), ("answer", "grounded")]
        ),
        1
    );
    assert_eq!(
        counter(
            &metrics,
            "mindshop_chat_requests_total",
            &[("outcome", "failed")]
        ),
        1
    );
    assert_eq!(
        counter(&metrics, "mindshop_chat_retrieval_seconds_count", &[]),
        1
    );
}

/// Reads server-sent events from `response` until `until` names one; (event, data) pairs.
async fn read_events(
    response: &mut reqwest::Response,
    buffer: &mut String,
    until: &str,
) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
            if data.is_empty() {
                continue; // a keep-alive comment
            }
            let done = name == until;
            events.push((name, serde_json::from_str(&data).expect("JSON event data")));
            if done {
                return events;
            }
        }
        let chunk = response
            .chunk()
            .await
            .expect("read the stream")
            .unwrap_or_else(|| panic!("the stream ended before {until}: {events:?}"));
        buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
}

async fn ask_streaming(shop: &Shop, session_id: &str, query: &str) -> reqwest::Response {
    let response = client()
        .post(shop.server.url("/api/chat"))
        .bearer_auth(&shop.key)
        .header("Origin", "https://merchant-store.com")
        .header("Accept", "text/event-stream")
        .json(&json!({"sessionId": session_id, "query": query}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    response
}

#[tokio::test]
async fn a_streamed_answer_sends_the_products_then_the_text_then_the_whole_answer() {
    let shop = shop().await;
    let session_id = session(&shop, &shop.key).await;
    let mut response = ask_streaming(&shop, &session_id, "lamps under $100 in stock").await;
    let mut buffer = String::new();
    let events = read_events(&mut response, &mut buffer, "done").await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"context"), "{events:?}");
    assert_eq!(names.last(), Some(&"done"), "{events:?}");
    assert!(names.contains(&"answer"), "{events:?}");
    assert_eq!(events[0].1["recommendations"][0]["sku"], "L1");
    let streamed: String = events
        .iter()
        .filter(|(name, _)| name == "answer")
        .map(|(_, data)| data["delta"].as_str().unwrap())
        .collect();
    let done = &events.last().unwrap().1;
    assert_eq!(done["answer"].as_str(), Some(streamed.as_str()));
    assert_eq!(done["sessionId"], session_id.as_str());
    assert_eq!(done["recommendations"][0]["sku"], "L1");
    assert!(streamed.contains("Oak floor lamp"), "{streamed}");

    // The plain answer to the same question agrees.
    let plain = ask(&shop, &shop.key, &session_id, "lamps under $100 in stock")
        .await
        .success(200);
    assert_eq!(plain["answer"], done["answer"]);
    assert_eq!(plain["recommendations"], done["recommendations"]);
    assert_eq!(plain["sources"], done["sources"]);

    // Stored like any other answer.
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
    assert_eq!(messages["items"][1]["content"], done["answer"]);
    assert_eq!(messages["items"][3]["content"], done["answer"]);
}

/// An OpenAI-compatible chat-completions server on loopback: streams its first chunk, then
/// waits until the test lets it finish (or answers 500 when `fail` is set).
struct FakeModel {
    addr: std::net::SocketAddr,
    finish: tokio::sync::mpsc::Sender<()>,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

async fn fake_model(fail: bool) -> FakeModel {
    use axum::response::IntoResponse;
    use axum::response::sse::{Event, Sse};
    use std::sync::{Arc, Mutex};
    use tokio::sync::{Mutex as AsyncMutex, mpsc};

    let (finish, finished) = mpsc::channel::<()>(1);
    let finished = Arc::new(AsyncMutex::new(finished));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let finished = Arc::clone(&finished);
            seen.lock().unwrap().push(body);
            async move {
                if fail {
                    return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
                }
                let chunk = |text: &str| {
                    Ok::<_, std::convert::Infallible>(Event::default().data(
                        json!({"choices": [{"index": 0, "delta": {"content": text}}]}).to_string(),
                    ))
                };
                let first = futures_util::stream::iter([chunk("Our pick: ")]);
                let rest =
                    futures_util::StreamExt::flatten(futures_util::stream::once(async move {
                        finished.lock().await.recv().await;
                        futures_util::stream::iter([
                            chunk("the Oak floor lamp, $89.00."),
                            Ok(Event::default().data("[DONE]")),
                        ])
                    }));
                Sse::new(futures_util::StreamExt::chain(first, rest)).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeModel {
        addr,
        finish,
        requests,
    }
}

async fn shop_with_model(model: &FakeModel) -> Shop {
    shop_with_model_at(model.addr, &[]).await
}

/// A shop whose answers come from the model at `addr`, with `settings` as further variables.
async fn shop_with_model_at(addr: std::net::SocketAddr, settings: &[(&str, &str)]) -> Shop {
    let mut launch = Launch::serve()
        .env("MINDSHOP_CHAT_LLM_BASE_URL", &format!("http://{addr}/v1"))
        .env("MINDSHOP_CHAT_LLM_MODEL", "test-model")
        .env("MINDSHOP_CHAT_LLM_API_KEY", "sk-test-model-key")
        .env("MINDSHOP_CHAT_LLM_TIMEOUT_SECS", "5");
    for (name, value) in settings {
        launch = launch.env(name, value);
    }
    shop_launched(launch).await
}

#[tokio::test]
async fn a_language_model_answer_streams_through_the_edge_as_it_is_written() {
    let model = fake_model(false).await;
    let shop = shop_with_model(&model).await;
    let session_id = session(&shop, &shop.key).await;
    let mut response = ask_streaming(&shop, &session_id, "a lamp under $100").await;
    let mut buffer = String::new();

    // The first chunk arrives while the model is still holding the rest back: nothing on the
    // way (edge included) waits for the whole answer.
    let first = read_events(&mut response, &mut buffer, "answer").await;
    assert_eq!(first[0].0, "context");
    assert_eq!(first.last().unwrap().1["delta"], "Our pick: ");
    model.finish.send(()).await.expect("let the model finish");
    let rest = read_events(&mut response, &mut buffer, "done").await;
    let done = &rest.last().unwrap().1;
    assert_eq!(done["answer"], "Our pick: the Oak floor lamp, $89.00.");
    assert!(skus(done).contains(&"L1"), "{done}");

    // The model was given the merchant's products and the question, with our key.
    let request = model.requests.lock().unwrap()[0].clone();
    assert_eq!(request["model"], "test-model");
    assert_eq!(request["stream"], true);
    let prompt = request["messages"].to_string();
    assert!(prompt.contains("Oak floor lamp"), "{prompt}");
    assert!(prompt.contains("a lamp under $100"), "{prompt}");
}

#[tokio::test]
async fn a_failing_language_model_is_replaced_by_the_grounded_answer() {
    let model = fake_model(true).await;
    let shop = shop_with_model(&model).await;
    let session_id = session(&shop, &shop.key).await;
    let answer = ask(&shop, &shop.key, &session_id, "lamps under $100 in stock")
        .await
        .success(200);
    let text = answer["answer"].as_str().unwrap();
    assert!(
        text.contains("Oak floor lamp") && text.contains("$89.00"),
        "{text}"
    );
    assert_eq!(
        model.requests.lock().unwrap().len(),
        1,
        "the model was asked"
    );
    let metrics = scrape(&shop.server).await;
    assert_eq!(
        counter(
            &metrics,
            "mindshop_chat_llm_fallbacks_total",
            &[("reason", "LLM_STATUS")]
        ),
        1
    );
    assert_eq!(
        counter(
            &metrics,
            "mindshop_chat_requests_total",
            &[("outcome", "completed"), ("answer", "fallback")]
        ),
        1
    );
}

/// An OpenAI-compatible model on loopback that never finishes: "Our pick: ", then " lamp"
/// every 50 ms, for as long as its reader keeps the connection. It counts the answers it is
/// still writing, which drops to 0 once every caller has closed its connection.
struct EndlessModel {
    addr: std::net::SocketAddr,
    asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    writing: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Marks one answer as no longer written when the server drops its body (the caller left).
struct Writing(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Writing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn endless_model() -> EndlessModel {
    use axum::response::sse::{Event, Sse};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let asked = Arc::new(AtomicUsize::new(0));
    let writing = Arc::new(AtomicUsize::new(0));
    let (counted, open) = (Arc::clone(&asked), Arc::clone(&writing));
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            open.fetch_add(1, Ordering::SeqCst);
            let writing = Writing(Arc::clone(&open));
            async move {
                let chunks =
                    futures_util::stream::unfold((0_u64, writing), |(n, writing)| async move {
                        if n > 0 {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                        let text = if n == 0 { "Our pick: " } else { " lamp" };
                        let data = json!({"choices": [{"index": 0, "delta": {"content": text}}]});
                        let event = Event::default().data(data.to_string());
                        Some((Ok::<_, std::convert::Infallible>(event), (n + 1, writing)))
                    });
                Sse::new(chunks)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    EndlessModel {
        addr,
        asked,
        writing,
    }
}

impl EndlessModel {
    /// Whether every answer asked for has stopped being written, within a deadline generous
    /// enough for a loaded machine (the model alone would write for ever).
    async fn stopped(&self) -> bool {
        use std::sync::atomic::Ordering;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.asked.load(Ordering::SeqCst) == 0 || self.writing.load(Ordering::SeqCst) > 0 {
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        true
    }
}

/// The session's messages once it holds `count`, within a deadline.
async fn messages_reaching(shop: &Shop, session_id: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
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
        let items = messages["items"].as_array().unwrap().clone();
        if items.len() >= count || std::time::Instant::now() > deadline {
            assert_eq!(items.len(), count, "{messages}");
            return items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Whether `text` is what the endless model writes, stopped somewhere.
fn endless_answer_so_far(text: &str) -> bool {
    text.strip_prefix("Our pick: ")
        .is_some_and(|rest| rest.is_empty() || rest.split(" lamp").all(str::is_empty))
}

#[tokio::test]
async fn a_shopper_who_leaves_a_stream_stops_the_model_and_the_answer_is_kept_cut_short() {
    let model = endless_model().await;
    let shop = shop_with_model_at(model.addr, &[]).await;
    let session_id = session(&shop, &shop.key).await;
    let mut response = ask_streaming(&shop, &session_id, "a lamp under $100").await;
    let mut buffer = String::new();
    let first = read_events(&mut response, &mut buffer, "answer").await;
    assert_eq!(first.last().unwrap().1["delta"], "Our pick: ");

    // The shopper closes the page.
    drop(response);

    assert!(
        model.stopped().await,
        "the model kept writing after the shopper left"
    );
    let items = messages_reaching(&shop, &session_id, 2).await;
    assert_eq!(items[0]["content"], "a lamp under $100");
    assert_eq!(items[0]["cutShort"], Value::Null);
    assert_eq!(items[1]["role"], "assistant");
    assert_eq!(items[1]["cutShort"], "client_closed", "{items:?}");
    let kept = items[1]["content"].as_str().unwrap();
    assert!(endless_answer_so_far(kept), "{kept:?}");
    assert!(skus(&items[1]).contains(&"L1"), "{items:?}");

    let events = events(&shop.server).await;
    let completed: Vec<&Value> = events
        .iter()
        .filter(|(kind, _)| kind == "chat.completed")
        .map(|(_, data)| data)
        .collect();
    assert_eq!(completed.len(), 1, "{events:?}");
    assert_eq!(completed[0]["cutShort"], "client_closed");
    assert_eq!(completed[0]["answeredBy"], "llm");
    assert_eq!(completed[0]["answer"], kept);
    let left = counter_reaching(
        &shop.server,
        "mindshop_chat_requests_total",
        &[("outcome", "client_closed"), ("answer", "llm")],
        1,
    )
    .await;
    assert_eq!(left, 1);
}

#[tokio::test]
async fn an_answer_past_the_total_timeout_is_stopped() {
    let model = endless_model().await;
    let shop = shop_with_model_at(
        model.addr,
        &[
            ("MINDSHOP_CHAT_LLM_TIMEOUT_SECS", "1"),
            ("MINDSHOP_CHAT_LLM_TOTAL_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let session_id = session(&shop, &shop.key).await;

    // Streamed: what was written stays, and the stream ends with an error.
    let mut response = ask_streaming(&shop, &session_id, "a lamp under $100").await;
    let mut buffer = String::new();
    let events_seen = read_events(&mut response, &mut buffer, "error").await;
    let names: Vec<&str> = events_seen.iter().map(|(name, _)| name.as_str()).collect();
    assert!(!names.contains(&"done"), "{events_seen:?}");
    let streamed: String = events_seen
        .iter()
        .filter(|(name, _)| name == "answer")
        .map(|(_, data)| data["delta"].as_str().unwrap())
        .collect();
    assert!(streamed.starts_with("Our pick: "), "{streamed:?}");
    let error = &events_seen.last().unwrap().1;
    assert_eq!(error["success"], false);
    assert_eq!(error["code"], "ANSWER_TIMEOUT", "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("1 seconds"),
        "{error}"
    );
    while let Some(chunk) = response.chunk().await.expect("read the stream") {
        let rest = String::from_utf8_lossy(&chunk);
        assert!(!rest.contains("event:"), "an event after the error: {rest}");
    }
    assert!(
        model.stopped().await,
        "the model kept writing past the timeout"
    );

    let items = messages_reaching(&shop, &session_id, 2).await;
    assert_eq!(items[1]["cutShort"], "timed_out", "{items:?}");
    let kept = items[1]["content"].as_str().unwrap();
    assert!(endless_answer_so_far(kept), "{kept:?}");
    assert!(kept.starts_with(&streamed), "{kept:?} / {streamed:?}");
    let outbox = events(&shop.server).await;
    assert_eq!(outbox.last().unwrap().0, "chat.completed", "{outbox:?}");
    assert_eq!(outbox.last().unwrap().1["cutShort"], "timed_out");

    // As JSON: nothing was shown yet, so the answer composed from the catalog is given whole.
    let answer = ask(&shop, &shop.key, &session_id, "a lamp under $100")
        .await
        .success(200);
    let text = answer["answer"].as_str().unwrap();
    assert!(
        text.contains("Oak floor lamp") && text.contains("$89.00"),
        "{text}"
    );
    assert!(
        model.stopped().await,
        "the model kept writing past the timeout"
    );
    let items = messages_reaching(&shop, &session_id, 4).await;
    assert_eq!(items[3]["cutShort"], Value::Null);
    let metrics = scrape(&shop.server).await;
    assert_eq!(
        counter(
            &metrics,
            "mindshop_chat_llm_fallbacks_total",
            &[("reason", "LLM_TOTAL_TIMEOUT")]
        ),
        1
    );
    assert_eq!(
        counter(
            &metrics,
            "mindshop_chat_requests_total",
            &[("outcome", "timed_out"), ("answer", "llm")]
        ),
        1
    );
}
