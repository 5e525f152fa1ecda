//! Product sync through the edge with portal tokens: the original design's flow, tenant
//! isolation, row errors, idempotent re-uploads, replace mode, dry runs, and every kind of bad
//! input answered with a 4xx envelope that changes nothing.

mod support;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use support::pipeline::{create_key, create_merchant, portal_token, signed_push_headers};
use support::{Launch, Reply, Server, Workdir, client};

const BASE: &str = "/api/merchants/acme";

/// `serve` with merchants `acme` and `globex`, and a portal token of each.
async fn portal() -> (Server, String, String) {
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    create_merchant(&workdir, "globex", &["globex-store.com"]);
    let acme = portal_token(&workdir, "acme", &[]);
    let globex = portal_token(&workdir, "globex", &[]);
    (Launch::serve().start_in(workdir).await, acme, globex)
}

async fn configure(server: &Server, token: &str, method: &str, body: Value) -> Reply {
    let url = server.url(&format!("{BASE}/sync/configure"));
    let request = match method {
        "PUT" => client().put(url),
        _ => client().post(url),
    };
    Reply::of(request.bearer_auth(token).json(&body)).await
}

/// Uploads `content` as the multipart field `file` named `name`, with `query` (`?dryRun=…`).
async fn upload(server: &Server, token: &str, name: &str, content: Vec<u8>, query: &str) -> Reply {
    let form = Form::new().part("file", Part::bytes(content).file_name(name.to_owned()));
    let url = server.url(&format!("{BASE}/sync/upload{query}"));
    Reply::of(client().post(url).bearer_auth(token).multipart(form)).await
}

async fn get(server: &Server, token: &str, path: &str) -> Reply {
    Reply::of(client().get(server.url(path)).bearer_auth(token)).await
}

/// The merchant's products as `sku → title`.
async fn catalog(server: &Server, token: &str) -> Vec<(String, String)> {
    let page = get(server, token, &format!("{BASE}/products?limit=100"))
        .await
        .success(200);
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| {
            (
                p["sku"].as_str().unwrap().to_owned(),
                p["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn history(server: &Server, token: &str) -> Vec<Value> {
    get(server, token, &format!("{BASE}/sync/history"))
        .await
        .success(200)["items"]
        .as_array()
        .expect("items")
        .clone()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test]
async fn the_original_designs_sync_flow_works_through_the_edge() {
    let (server, acme, _) = portal().await;

    let reply = configure(
        &server,
        &acme,
        "POST",
        json!({"syncType": "manual", "sourceType": "csv", "fieldMapping": {"sku": "sku", "title": "name"}}),
    )
    .await;
    let config = reply.success(201);
    assert_eq!(
        config["fieldMapping"],
        json!({"sku": "sku", "title": "name"})
    );
    assert_eq!(config["status"], "active");
    let secret = config["webhookSecret"].as_str().expect("secret shown once");
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );

    let reply = upload(
        &server,
        &acme,
        "products.csv",
        b"sku,name\nP001,Product 1".to_vec(),
        "",
    )
    .await;
    let report = reply.success(200);
    assert_eq!(report["productsProcessed"], 1, "{report}");
    assert_eq!(report["productsCreated"], 1);
    assert_eq!(report["productsFailed"], 0);
    assert_eq!(report["status"], "completed");
    let run_id = report["runId"].as_str().expect("a run id").to_owned();

    let runs = history(&server, &acme).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(runs[0]["id"], run_id.as_str());
    assert_eq!(runs[0]["productsProcessed"], 1);
    assert!(runs[0]["completedAt"].is_string());
    let status = get(&server, &acme, &format!("{BASE}/sync/status"))
        .await
        .success(200);
    assert_eq!(status["id"], run_id.as_str());

    assert_eq!(
        catalog(&server, &acme).await,
        owned(&[("P001", "Product 1")])
    );

    // Shown once: reading or updating the configuration never shows the secret again.
    let shown = get(&server, &acme, &format!("{BASE}/sync/configure"))
        .await
        .success(200);
    assert!(shown.get("webhookSecret").is_none(), "{shown}");
    let updated = configure(
        &server,
        &acme,
        "PUT",
        json!({"syncType": "manual", "sourceType": "csv", "fieldMapping": {"sku": "sku", "title": "name", "price": "cost"}}),
    )
    .await
    .success(200);
    assert_eq!(updated["fieldMapping"]["price"], "cost");
    assert!(updated.get("webhookSecret").is_none(), "{updated}");
}

#[tokio::test]
async fn another_merchants_token_reads_and_writes_nothing() {
    let (server, acme, globex) = portal().await;
    configure(
        &server,
        &acme,
        "POST",
        json!({"syncType": "manual", "sourceType": "csv", "fieldMapping": {"sku": "sku", "title": "title"}}),
    )
    .await
    .success(201);
    upload(&server, &acme, "p.csv", b"sku,title\nA1,Lamp".to_vec(), "")
        .await
        .success(200);

    for path in ["sync/configure", "sync/status", "sync/history", "products"] {
        get(&server, &globex, &format!("{BASE}/{path}"))
            .await
            .failure(403, "FORBIDDEN");
    }
    configure(
        &server,
        &globex,
        "PUT",
        json!({"syncType": "manual", "sourceType": "csv", "fieldMapping": {"sku": "x", "title": "y"}}),
    )
    .await
    .failure(403, "FORBIDDEN");
    upload(
        &server,
        &globex,
        "p.csv",
        b"sku,title\nEVIL,Hacked".to_vec(),
        "",
    )
    .await
    .failure(403, "FORBIDDEN");
    let reply = Reply::of(
        client()
            .post(server.url(&format!("{BASE}/sync/webhook-secret")))
            .bearer_auth(&globex),
    )
    .await;
    reply.failure(403, "FORBIDDEN");

    // acme's configuration, catalog and history are as acme left them.
    let config = get(&server, &acme, &format!("{BASE}/sync/configure"))
        .await
        .success(200);
    assert_eq!(config["fieldMapping"]["sku"], "sku");
    assert_eq!(catalog(&server, &acme).await, owned(&[("A1", "Lamp")]));
    assert_eq!(history(&server, &acme).await.len(), 1);

    // An admin may act for any merchant.
    let admin = portal_token(server.workdir(), "globex", &["--role", "admin"]);
    assert_eq!(catalog(&server, &admin).await, owned(&[("A1", "Lamp")]));
}

#[tokio::test]
async fn good_rows_are_stored_and_each_bad_row_is_explained() {
    let (server, acme, _) = portal().await;
    let file = "sku,title,price,inStock\n\
                A1,Desk lamp,19.99,yes\n\
                ,No sku,5,yes\n\
                A3,Chair,abc,no\n\
                A4,\"Table, oak\",120,true\n";
    let report = upload(&server, &acme, "catalog.csv", file.into(), "")
        .await
        .success(200);
    assert_eq!(report["productsProcessed"], 4, "{report}");
    assert_eq!(report["productsCreated"], 2);
    assert_eq!(report["productsFailed"], 2);
    let errors: Vec<(u64, &str)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(errors, [(2, "sku"), (3, "price")], "{report}");
    assert_eq!(
        catalog(&server, &acme).await,
        owned(&[("A1", "Desk lamp"), ("A4", "Table, oak")])
    );
    let products = get(&server, &acme, &format!("{BASE}/products"))
        .await
        .success(200);
    assert_eq!(products["items"][0]["price"], 19.99);
    assert_eq!(products["items"][0]["inStock"], true);

    // The same file again: nothing new, nothing rewritten.
    let again = upload(&server, &acme, "catalog.csv", file.into(), "")
        .await
        .success(200);
    assert_eq!(
        (
            again["productsCreated"].as_i64(),
            again["productsUpdated"].as_i64(),
            again["productsUnchanged"].as_i64()
        ),
        (Some(0), Some(0), Some(2)),
        "{again}"
    );

    // A dry run reports and writes nothing: no products, no run.
    let dry = upload(
        &server,
        &acme,
        "c.json",
        br#"{"products": [{"sku": "D1", "title": "Dry"}, {"title": "no sku"}]}"#.to_vec(),
        "?dryRun=true",
    )
    .await
    .success(200);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["productsProcessed"], 2);
    assert_eq!(dry["productsFailed"], 1);
    assert!(dry["runId"].is_null());
    assert_eq!(catalog(&server, &acme).await.len(), 2);
    assert_eq!(history(&server, &acme).await.len(), 2);

    // Replace mode: a full-catalog feed removes what it does not hold.
    let replaced = upload(
        &server,
        &acme,
        "feed.json",
        br#"[{"sku": "A4", "title": "Table, walnut"}, {"sku": "B1", "title": "Rug"}]"#.to_vec(),
        "?mode=replace",
    )
    .await
    .success(200);
    assert_eq!(replaced["productsDeleted"], 1, "{replaced}");
    assert_eq!(replaced["productsUpdated"], 1);
    assert_eq!(replaced["productsCreated"], 1);
    assert_eq!(
        catalog(&server, &acme).await,
        owned(&[("A4", "Table, walnut"), ("B1", "Rug")])
    );
    let runs = history(&server, &acme).await;
    assert_eq!(runs[0]["mode"], "replace");
    assert_eq!(runs[0]["productsDeleted"], 1);
}

#[tokio::test]
async fn bad_input_is_a_4xx_envelope_and_changes_nothing() {
    let (server, acme, _) = portal().await;
    upload(&server, &acme, "p.csv", b"sku,title\nK1,Kept".to_vec(), "")
        .await
        .success(200);

    // Configuration: wrong types, unknown fields, bad values — each named.
    let reply = configure(&server, &acme, "POST", json!({"syncType": 5})).await;
    assert_eq!(
        reply.failure(400, "VALIDATION_ERROR")["field"],
        "syncType",
        "{reply:?}"
    );
    let reply = configure(
        &server,
        &acme,
        "POST",
        json!({"syncType": "manual", "colour": "red"}),
    )
    .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    let reply = configure(
        &server,
        &acme,
        "POST",
        json!({"syncType": "scheduled", "schedule": "every day", "sourceType": "ftp", "fieldMapping": {"sku": "id"}}),
    )
    .await;
    let failure = reply.failure(400, "VALIDATION_ERROR");
    let fields: Vec<&str> = failure["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["schedule", "sourceUrl", "fieldMapping.title"],
        "{failure}"
    );
    // Every field valid, but no date is February 30th: it would never run.
    let reply = configure(
        &server,
        &acme,
        "POST",
        json!({"syncType": "scheduled", "schedule": "0 0 30 2 *", "sourceType": "csv",
               "fieldMapping": {"sku": "sku", "title": "title"}}),
    )
    .await;
    let failure = reply.failure(400, "VALIDATION_ERROR");
    assert_eq!(failure["field"], "schedule", "{reply:?}");
    assert!(
        failure["error"].as_str().unwrap().contains("never fires"),
        "{reply:?}"
    );
    get(&server, &acme, &format!("{BASE}/sync/configure"))
        .await
        .failure(404, "NOT_FOUND");

    // Files.
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "p.xlsx",
            b"PK\x03\x04".to_vec(),
            400,
            "UNSUPPORTED_FILE_TYPE",
        ),
        ("p.csv", Vec::new(), 400, "EMPTY_FILE"),
        ("p.json", b"{\"products\": [".to_vec(), 400, "INVALID_FILE"),
        ("p.json", b"{\"items\": []}".to_vec(), 400, "INVALID_FILE"),
        ("p.csv", b"id,name\n1,x".to_vec(), 400, "INVALID_FILE"),
        (
            "p.csv",
            vec![b'a'; 11 * 1024 * 1024],
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ];
    for (name, content, status, code) in cases {
        let reply = upload(&server, &acme, name, content, "").await;
        reply.failure(status, code);
    }
    let reply = upload(
        &server,
        &acme,
        "p.csv",
        b"sku,title\nX,Y".to_vec(),
        "?mode=everything",
    )
    .await;
    assert_eq!(reply.failure(400, "VALIDATION_ERROR")["field"], "mode");
    let not_multipart = Reply::of(
        client()
            .post(server.url(&format!("{BASE}/sync/upload")))
            .bearer_auth(&acme)
            .json(&json!({"sku": "X"})),
    )
    .await;
    not_multipart.failure(400, "INVALID_UPLOAD");

    // A broken CSV row is a row error; the file's good rows still count.
    let broken = upload(
        &server,
        &acme,
        "p.csv",
        b"sku,title\nB1,ok,extra\nB2,fine".to_vec(),
        "",
    )
    .await;
    let report = broken.success(200);
    assert_eq!(report["productsFailed"], 1, "{report}");
    assert_eq!(report["errors"][0]["row"], 1, "{report}");
    assert_eq!(report["productsCreated"], 1, "{report}");

    assert_eq!(
        history(&server, &acme).await.len(),
        2,
        "only the two readable files ran"
    );
    let skus: Vec<String> = catalog(&server, &acme)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert!(skus.contains(&"K1".to_owned()), "{skus:?}");
    assert!(!skus.contains(&"X".to_owned()), "{skus:?}");
}

#[tokio::test]
async fn api_keys_with_products_read_see_their_own_catalog_only() {
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    create_merchant(&workdir, "globex", &["globex-store.com"]);
    let acme_token = portal_token(&workdir, "acme", &[]);
    let acme_key = create_key(&workdir, "acme", "secret", &["products:read"]);
    let globex_key = create_key(&workdir, "globex", "secret", &["products:read"]);
    let no_products = create_key(&workdir, "acme", "secret", &["documents:read"]);
    let server = Launch::serve().start_in(workdir).await;
    upload(
        &server,
        &acme_token,
        "p.csv",
        b"sku,title\nA1,Lamp\nA2,Desk".to_vec(),
        "",
    )
    .await
    .success(200);

    let list = |key: String| {
        let server = &server;
        async move {
            Reply::of(
                client()
                    .get(server.url("/api/products?limit=1"))
                    .header("X-API-Key", key),
            )
            .await
        }
    };
    let page = list(acme_key.key.clone()).await.success(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["sku"], "A1");
    let cursor = page["nextCursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let next = Reply::of(
        client()
            .get(server.url(&format!("/api/products?limit=1&cursor={cursor}")))
            .header("X-API-Key", &acme_key.key),
    )
    .await
    .success(200);
    assert_eq!(next["items"][0]["sku"], "A2");
    assert!(next["nextCursor"].is_null());

    let other = list(globex_key.key).await.success(200);
    assert_eq!(other["items"], json!([]));
    let refused = list(no_products.key).await.failure(403, "FORBIDDEN");
    assert_eq!(refused["requiredPermissions"], json!(["products:read"]));
}

/// A catalog feed on loopback: `GET /feed.csv` answers `body` after `delay`; every other path
/// is a 404.
async fn feed(body: &'static str, delay: std::time::Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/feed.csv",
        axum::routing::get(move || async move {
            tokio::time::sleep(delay).await;
            ([("content-type", "text/csv")], body)
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Polls `…/sync/status` until the run is no longer `processing`.
async fn settled(server: &Server, token: &str) -> Value {
    for _ in 0..100 {
        let status = get(server, token, &format!("{BASE}/sync/status"))
            .await
            .success(200);
        if status["status"] != "processing" && status["status"] != "pending" {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the sync run did not finish in 10 s");
}

async fn serve_allowing_loopback_sources() -> (Server, String, String) {
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    create_merchant(&workdir, "globex", &["globex-store.com"]);
    let acme = portal_token(&workdir, "acme", &[]);
    let globex = portal_token(&workdir, "globex", &[]);
    let server = Launch::serve()
        .env("MINDSHOP_SYNC_ALLOW_PRIVATE_SOURCES", "true")
        .start_in(workdir)
        .await;
    (server, acme, globex)
}

#[tokio::test]
async fn a_trigger_pulls_the_api_source_in_the_background() {
    let (server, acme, _) = serve_allowing_loopback_sources().await;
    let source = feed(
        "id,name,cost\nF1,Fan,29.5\nF2,Heater,x\n",
        std::time::Duration::from_millis(700),
    )
    .await;
    configure(
        &server,
        &acme,
        "POST",
        json!({
            "syncType": "manual", "sourceType": "api",
            "sourceUrl": format!("http://{source}/feed.csv"), "sourceAuth": "Bearer feed-token",
            "fieldMapping": {"sku": "id", "title": "name", "price": "cost"}
        }),
    )
    .await
    .success(201);

    let trigger = || {
        Reply::of(
            client()
                .post(server.url(&format!("{BASE}/sync/trigger")))
                .bearer_auth(&acme),
        )
    };
    let started = trigger().await.success(202);
    assert_eq!(started["status"], "processing", "{started}");
    let run_id = started["id"].as_str().unwrap().to_owned();
    // While it runs, a second trigger is refused and names it.
    let busy = trigger().await.failure(409, "SYNC_IN_PROGRESS");
    assert!(busy["error"].as_str().unwrap().contains(&run_id), "{busy}");

    let done = settled(&server, &acme).await;
    assert_eq!(done["id"], run_id.as_str());
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["trigger"], "trigger");
    assert_eq!(done["productsCreated"], 1);
    assert_eq!(done["productsFailed"], 1);
    assert_eq!(done["errors"][0]["field"], "price");
    assert_eq!(catalog(&server, &acme).await, owned(&[("F1", "Fan")]));

    // A source that is not there: the run fails and says why.
    configure(
        &server,
        &acme,
        "PUT",
        json!({
            "syncType": "manual", "sourceType": "api",
            "sourceUrl": format!("http://{source}/missing.csv"),
            "fieldMapping": {"sku": "id", "title": "name"}
        }),
    )
    .await
    .success(200);
    trigger().await.success(202);
    let failed = settled(&server, &acme).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["failure"].as_str().unwrap().contains("HTTP 404"),
        "{failed}"
    );
    assert_eq!(catalog(&server, &acme).await, owned(&[("F1", "Fan")]));
}

#[tokio::test]
async fn sources_on_the_internal_network_are_refused_by_default() {
    let (server, acme, _) = portal().await;
    let source = feed("sku,title\nX,Y\n", std::time::Duration::ZERO).await;
    configure(
        &server,
        &acme,
        "POST",
        json!({
            "syncType": "manual", "sourceType": "api",
            "sourceUrl": format!("http://{source}/feed.csv"),
            "fieldMapping": {"sku": "sku", "title": "title"}
        }),
    )
    .await
    .success(201);
    Reply::of(
        client()
            .post(server.url(&format!("{BASE}/sync/trigger")))
            .bearer_auth(&acme),
    )
    .await
    .success(202);
    let failed = settled(&server, &acme).await;
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["failure"].as_str().unwrap().contains("127.0.0.1"),
        "{failed}"
    );
    assert!(catalog(&server, &acme).await.is_empty());

    // A csv configuration has nothing to pull.
    configure(
        &server,
        &acme,
        "PUT",
        json!({"syncType": "manual", "sourceType": "csv", "fieldMapping": {"sku": "sku", "title": "title"}}),
    )
    .await
    .success(200);
    Reply::of(
        client()
            .post(server.url(&format!("{BASE}/sync/trigger")))
            .bearer_auth(&acme),
    )
    .await
    .failure(400, "NOTHING_TO_PULL");
}

async fn send_push(server: &Server, headers: &[(String, String)], body: &str) -> Reply {
    let mut request = client()
        .post(server.url(&format!("{BASE}/sync/webhook")))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    Reply::of(request).await
}

async fn push(server: &Server, secret: &str, id: &str, body: &str, timestamp: u64) -> Reply {
    send_push(
        server,
        &signed_push_headers(secret, id, body, timestamp),
        body,
    )
    .await
}

/// The original design's body-only signature: hex HMAC-SHA256 of the raw body.
async fn legacy_push(server: &Server, secret: &str, body: &str, timestamp: u64) -> Reply {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let headers = [
        (
            "X-Webhook-Signature".to_owned(),
            hex::encode(mac.finalize().into_bytes()),
        ),
        ("X-Webhook-Timestamp".to_owned(), timestamp.to_string()),
    ];
    send_push(server, &headers, body).await
}

/// A webhook-sync configuration of `acme`; its secret.
async fn webhook_config(server: &Server, token: &str) -> String {
    let config = configure(
        server,
        token,
        "POST",
        json!({"syncType": "webhook", "sourceType": "api", "sourceUrl": "https://shop.example/feed",
               "fieldMapping": {"sku": "id", "title": "name"}}),
    )
    .await
    .success(201);
    config["webhookSecret"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_platform_pushes_upserts_and_deletions_signed_with_the_secret() {
    let (server, acme, _) = portal().await;
    let secret = webhook_config(&server, &acme).await;
    let now = support::pipeline::unix_now();

    let first = r#"{"products": [{"id": "W1", "name": "Wok"}, {"id": "W2", "name": "Pan"}]}"#;
    let report = push(&server, &secret, "msg_1", first, now)
        .await
        .success(200);
    assert_eq!(report["productsCreated"], 2, "{report}");

    // Wrong secret, stale timestamp, a body other than the signed one: 401, nothing written.
    let evil = r#"{"deleted": ["W1", "W2"]}"#;
    push(&server, "whsec_Z3Vlc3M=", "msg_e", evil, now)
        .await
        .failure(401, "INVALID_SIGNATURE");
    push(&server, &secret, "msg_e", evil, now - 301)
        .await
        .failure(401, "INVALID_SIGNATURE");
    let signed_other = signed_push_headers(&secret, "msg_e", first, now);
    send_push(&server, &signed_other, evil)
        .await
        .failure(401, "INVALID_SIGNATURE");
    send_push(&server, &[], evil)
        .await
        .failure(401, "INVALID_SIGNATURE");
    assert_eq!(
        catalog(&server, &acme).await,
        owned(&[("W1", "Wok"), ("W2", "Pan")])
    );

    let second = r#"{"products": [{"id": "W1", "name": "Carbon wok"}], "deleted": ["W2"]}"#;
    let report = push(&server, &secret, "msg_2", second, now)
        .await
        .success(200);
    assert_eq!(
        (
            report["productsUpdated"].as_i64(),
            report["productsDeleted"].as_i64()
        ),
        (Some(1), Some(1)),
        "{report}"
    );
    assert_eq!(
        catalog(&server, &acme).await,
        owned(&[("W1", "Carbon wok")])
    );
    let runs = history(&server, &acme).await;
    assert_eq!(runs[0]["trigger"], "webhook");
    // A NUL in a deleted SKU is refused before any run starts.
    let nul = r#"{"deleted": ["W\u0000"]}"#;
    push(&server, &secret, "msg_nul", nul, now)
        .await
        .failure(400, "VALIDATION_ERROR");
    assert_eq!(history(&server, &acme).await.len(), runs.len());

    // Rotating the secret retires the old one.
    let rotated = Reply::of(
        client()
            .post(server.url(&format!("{BASE}/sync/webhook-secret")))
            .bearer_auth(&acme),
    )
    .await
    .success(200);
    let new_secret = rotated["webhookSecret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    push(&server, &secret, "msg_3", second, now)
        .await
        .failure(401, "INVALID_SIGNATURE");
    push(&server, new_secret, "msg_3", second, now)
        .await
        .success(200);
    // A merchant without a configuration looks the same as a bad signature.
    let mut other = client()
        .post(server.url("/api/merchants/globex/sync/webhook"))
        .body("{}");
    for (name, value) in signed_push_headers(new_secret, "msg_g", "{}", now) {
        other = other.header(name, value);
    }
    let other = Reply::of(other).await;
    other.failure(401, "INVALID_SIGNATURE");
}

/// The attack that found the hole: a captured deletion sent again later deleted the product
/// again. Now a repeated id is acknowledged and changes nothing, and re-dating it breaks the
/// signature.
#[tokio::test]
async fn a_captured_push_sent_again_changes_nothing() {
    let (server, acme, _) = portal().await;
    let secret = webhook_config(&server, &acme).await;
    let now = support::pipeline::unix_now();
    let create = r#"{"products": [{"id": "L1", "name": "Lamp"}]}"#;
    let delete = r#"{"deleted": ["L1"]}"#;
    push(&server, &secret, "msg_create", create, now)
        .await
        .success(200);
    let captured = signed_push_headers(&secret, "msg_delete", delete, now);
    let deleted = send_push(&server, &captured, delete).await.success(200);
    assert_eq!(deleted["productsDeleted"], 1, "{deleted}");
    // The product comes back with a later push.
    push(&server, &secret, "msg_recreate", create, now)
        .await
        .success(200);
    let runs_before = history(&server, &acme).await.len();

    // The same bytes again: 200, the first run's report, marked repeated; nothing deleted.
    let replay = send_push(&server, &captured, delete).await.success(200);
    assert_eq!(replay["repeated"], true, "{replay}");
    assert_eq!(replay["runId"], deleted["runId"], "{replay}");
    assert_eq!(catalog(&server, &acme).await, owned(&[("L1", "Lamp")]));
    assert_eq!(history(&server, &acme).await.len(), runs_before);

    // With a fresh timestamp the signature no longer holds.
    let mut redated = captured.clone();
    redated[1].1 = (now + 60).to_string();
    send_push(&server, &redated, delete)
        .await
        .failure(401, "INVALID_SIGNATURE");
    assert_eq!(catalog(&server, &acme).await, owned(&[("L1", "Lamp")]));

    // The original design's body-only signature is refused by default, saying what to use.
    let legacy = legacy_push(&server, &secret, delete, now).await;
    let refused = legacy.failure(401, "INVALID_SIGNATURE");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("Standard Webhooks"),
        "{refused}"
    );
    assert_eq!(catalog(&server, &acme).await, owned(&[("L1", "Lamp")]));
}

#[tokio::test]
async fn body_only_signatures_pass_when_the_operator_allows_them() {
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    let acme = portal_token(&workdir, "acme", &[]);
    let server = Launch::serve()
        .env("MINDSHOP_SYNC_LEGACY_PUSH_SIGNATURES", "true")
        .start_in(workdir)
        .await;
    let secret = webhook_config(&server, &acme).await;
    let now = support::pipeline::unix_now();
    let body = r#"{"products": [{"id": "B1", "name": "Bowl"}]}"#;
    legacy_push(&server, &secret, body, now).await.success(200);
    legacy_push(&server, &secret, body, now - 301)
        .await
        .failure(401, "INVALID_SIGNATURE");
    assert_eq!(catalog(&server, &acme).await, owned(&[("B1", "Bowl")]));
    // Standard Webhooks pushes still work beside them.
    let body = r#"{"deleted": ["B1"]}"#;
    push(&server, &secret, "msg_1", body, now)
        .await
        .success(200);
    assert!(catalog(&server, &acme).await.is_empty());
}

/// A platform that signs with the official Standard Webhooks library (PyPI `standardwebhooks`).
#[tokio::test]
#[ignore = "needs python3 with standardwebhooks (pip install standardwebhooks)"]
async fn a_push_signed_by_the_official_library_is_applied_once() {
    let (server, acme, _) = portal().await;
    let secret = webhook_config(&server, &acme).await;
    let body = r#"{"products": [{"id": "P1", "name": "Pot"}]}"#;
    let script = r#"
import json, sys
from datetime import datetime, timezone
from standardwebhooks.webhooks import Webhook
secret, body = sys.argv[1], sys.argv[2]
now = datetime.now(tz=timezone.utc)
msg_id = "msg_official_1"
print(json.dumps({"webhook-id": msg_id,
                  "webhook-timestamp": str(int(now.timestamp())),
                  "webhook-signature": Webhook(secret).sign(msg_id, now, body)}))
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script, &secret, body])
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "python3 with standardwebhooks: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let signed: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&output.stdout).expect("the headers as JSON");
    let headers: Vec<(String, String)> = signed.into_iter().collect();
    let report = send_push(&server, &headers, body).await.success(200);
    assert_eq!(report["productsCreated"], 1, "{report}");
    let again = send_push(&server, &headers, body).await.success(200);
    assert_eq!(again["repeated"], true, "{again}");
    assert_eq!(catalog(&server, &acme).await, owned(&[("P1", "Pot")]));
}

#[tokio::test]
async fn a_scheduled_sync_runs_on_its_own_when_due() {
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    let acme = portal_token(&workdir, "acme", &[]);
    let server = Launch::serve()
        .env("MINDSHOP_SYNC_ALLOW_PRIVATE_SOURCES", "true")
        .env("MINDSHOP_SYNC_SCHEDULER_INTERVAL_SECS", "1")
        .start_in(workdir)
        .await;
    let source = feed("sku,title\nN1,Nightstand\n", std::time::Duration::ZERO).await;
    let config = configure(
        &server,
        &acme,
        "POST",
        json!({
            "syncType": "scheduled", "schedule": "0 3 * * *", "sourceType": "api",
            "sourceUrl": format!("http://{source}/feed.csv"),
            "fieldMapping": {"sku": "sku", "title": "title"}
        }),
    )
    .await
    .success(201);
    let next_run_at = config["nextRunAt"].as_str().expect("a next run");
    assert!(next_run_at.contains("T03:00:00"), "{config}");
    assert!(history(&server, &acme).await.is_empty());

    // Rather than wait for 03:00: the stored schedule is made due now, as the clock would.
    let database = server.workdir().path().join("data/mindshop.db");
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        database.display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE sync_configs SET next_run_at = ? WHERE merchant_id = 'acme'")
        .bind(chrono::Utc::now() - chrono::Duration::minutes(1))
        .execute(&mut db)
        .await
        .unwrap();

    let mut runs = Vec::new();
    for _ in 0..50 {
        runs = history(&server, &acme).await;
        if runs.first().is_some_and(|run| run["status"] == "completed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["trigger"], "schedule");
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(
        catalog(&server, &acme).await,
        owned(&[("N1", "Nightstand")])
    );
    // The schedule moved on to its next occurrence.
    let config = get(&server, &acme, &format!("{BASE}/sync/configure"))
        .await
        .success(200);
    assert!(
        config["nextRunAt"].as_str().unwrap().contains("T03:00:00"),
        "{config}"
    );
}
