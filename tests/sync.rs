//! Product sync through the edge with portal tokens: the original design's flow, tenant
//! isolation, row errors, idempotent re-uploads, replace mode, dry runs, and every kind of bad
//! input answered with a 4xx envelope that changes nothing.

mod support;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use support::pipeline::{create_key, create_merchant, portal_token};
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
