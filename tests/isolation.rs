//! The tenant-isolation matrix: every route the backend answers (its route table, so a route
//! added later is walked too) × {another merchant's ids, another merchant's key, another
//! merchant's JWT}, through the edge, on SQLite and on PostgreSQL.
//!
//! Two merchants, `acme` and `globex`, each with a session and its messages, a document,
//! products, a sync configuration, a webhook endpoint with a delivery and a spare API key. Every
//! cross-tenant request must get no 2xx when it names the other merchant's resource, never a
//! 5xx, and never show the other merchant's data (each merchant's texts carry a marker); after
//! all of them, every row of both merchants is as it was. Then each route is sent once as its
//! owner would (fresh resources, own credential), which must get past authentication and find
//! the resource, so the refusals above mean the route was really reached.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mindshop_filters::route::{AuthKind, classify};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Row};
use support::pipeline::{signed_push_headers, unix_now};
use support::postgres::FreshDatabase;
use support::{Launch, Reply, Server, Workdir, client};

/// Every limit high enough that the matrix never meets a 429.
const LIMITS: [&str; 9] = [
    "CHAT",
    "SESSIONS",
    "WIDGET_PER_IP",
    "DOCUMENTS",
    "PRODUCTS",
    "PORTAL",
    "SYNC_WRITES",
    "SYNC_WEBHOOK",
    "REFUSED_PER_IP",
];

#[tokio::test]
async fn no_merchant_reaches_another_on_any_route_on_sqlite() {
    let workdir = Workdir::new();
    let database = format!(
        "sqlite://{}",
        workdir.path().join("data/mindshop.db").display()
    );
    run_matrix(workdir, Db::Sqlite(database), &[]).await;
}

#[tokio::test]
#[ignore = "needs MINDSHOP_TEST_POSTGRES_URL"]
async fn no_merchant_reaches_another_on_any_route_on_postgresql() {
    let database = FreshDatabase::create().await;
    let env = [("MINDSHOP_DATABASE_URL", database.url.as_str())];
    run_matrix(Workdir::new(), Db::Postgres(database.url.clone()), &env).await;
    database.drop_now().await;
}

async fn run_matrix(workdir: Workdir, db: Db, env: &[(&str, &str)]) {
    let mut launch = Launch::serve()
        .env("MINDSHOP_WEBHOOKS_ALLOW_HTTP", "true")
        .env("MINDSHOP_WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS", "true");
    for limit in LIMITS {
        launch = launch.env(&format!("MINDSHOP_LIMITS_{limit}"), "1000000");
    }
    for (name, value) in env {
        launch = launch.env(name, value);
    }
    let server = launch.start_in(workdir).await;
    let receiver = receiver().await;
    let acme = Tenant::new(&server, env, "acme", "acme.example", &receiver).await;
    let globex = Tenant::new(&server, env, "globex", "globex.example", &receiver).await;
    let acme_ids = acme.resources(&server).await;
    let globex_ids = globex.resources(&server).await;

    let routes = mindshop_backend::route_table();
    assert!(routes.len() > 30, "the route table: {routes:?}");
    let before = (db.settled(&acme).await, db.settled(&globex).await);
    for (merchant, rows) in [("acme", &before.0), ("globex", &before.1)] {
        for table in [
            "documents",
            "chat_sessions",
            "chat_messages",
            "products",
            "webhook_endpoints",
        ] {
            assert!(
                rows.get(table).is_some_and(|rows| !rows.is_empty()),
                "{merchant} has no rows in {table} to guard: {rows:?}"
            );
        }
    }

    let mut sent = 0;
    for route in &routes {
        let (a, g) = (&acme, &globex);
        let (a_ids, g_ids) = (&acme_ids, &globex_ids);
        let a_secret = acme_ids["push_secret"].as_str();
        let g_secret = globex_ids["push_secret"].as_str();
        let cell =
            |name, caller, caller_secret, path_merchant, ids, target, swap_credential| Cell {
                name,
                caller,
                caller_secret,
                path_merchant,
                ids,
                target,
                swap_credential,
            };
        let cells = [
            cell("another merchant's ids", a, a_secret, g, g_ids, g, false),
            cell(
                "another merchant's ids under our path",
                a,
                a_secret,
                a,
                g_ids,
                g,
                false,
            ),
            cell("another merchant's key", g, g_secret, a, a_ids, a, false),
            cell("another merchant's JWT", g, g_secret, a, a_ids, a, true),
        ];
        for cell in cells {
            if let Some(reply) = cell.send(&server, route).await {
                sent += 1;
                cell.judge(route, &reply);
            }
        }
    }
    let after = (db.settled(&acme).await, db.settled(&globex).await);
    assert_rows_unchanged("acme", &before.0, &after.0);
    assert_rows_unchanged("globex", &before.1, &after.1);
    eprintln!(
        "{} routes, {sent} cross-tenant requests: none reached the other merchant",
        routes.len()
    );

    // Each route as its owner sends it, on resources made for it, gets past authentication and
    // finds what it names.
    for route in &routes {
        let fresh = acme.resources(&server).await;
        let cell = Cell {
            name: "own",
            caller: &acme,
            caller_secret: &fresh["push_secret"],
            path_merchant: &acme,
            ids: &fresh,
            target: &acme,
            swap_credential: false,
        };
        let reply = cell
            .send(&server, route)
            .await
            .expect("an owner's request is always sent");
        assert!(
            !matches!(reply.status, 401 | 403 | 404) && reply.status < 500,
            "{} {} as its owner: {reply:?}",
            route.method,
            route.path
        );
    }
}

/// A merchant of the matrix and its credentials.
struct Tenant {
    merchant: &'static str,
    /// In every text the merchant stores, so its data is recognised in any answer.
    marker: String,
    /// A secret key with every permission.
    key: String,
    /// A portal token with access to the merchant.
    token: String,
    domain: &'static str,
    /// Where its webhook endpoints deliver.
    receiver: String,
}

/// The ids of a merchant's resources, by the name the route table's placeholders resolve to.
type Ids = BTreeMap<&'static str, String>;

impl Tenant {
    async fn new(
        server: &Server,
        env: &[(&str, &str)],
        merchant: &'static str,
        domain: &'static str,
        receiver: &str,
    ) -> Self {
        let workdir = server.workdir();
        let admin = |args: &[&str]| {
            let mut full = vec!["admin"];
            full.extend_from_slice(args);
            workdir.run(&full, env).json()
        };
        let created = admin(&[
            "merchant", "create", "--id", merchant, "--name", merchant, "--domain", domain,
        ]);
        assert_eq!(created["id"], merchant, "{created}");
        let key = admin(&[
            "key",
            "create",
            "--merchant",
            merchant,
            "--kind",
            "secret",
            "--permission",
            "chat:write",
            "--permission",
            "sessions:read",
            "--permission",
            "sessions:write",
            "--permission",
            "documents:read",
            "--permission",
            "documents:write",
            "--permission",
            "products:read",
        ]);
        let token = admin(&["token", "--merchant", merchant]);
        Self {
            merchant,
            marker: format!("{merchant}-private-marker"),
            key: key["key"].as_str().expect("a key").to_owned(),
            token: token["token"].as_str().expect("a token").to_owned(),
            domain,
            receiver: receiver.to_owned(),
        }
    }

    /// One of each resource, made through the API as the merchant would; `push_secret` is the
    /// sync configuration's current webhook secret.
    async fn resources(&self, server: &Server) -> Ids {
        let marker = &self.marker;
        let m = self.merchant;
        let key = |builder: reqwest::RequestBuilder| builder.header("X-API-Key", &self.key);
        let jwt = |builder: reqwest::RequestBuilder| builder.bearer_auth(&self.token);
        let client = client();
        let mut ids = Ids::new();
        ids.insert("merchant", m.to_owned());

        let session = Reply::of(
            key(client.post(server.url("/api/chat/sessions")))
                .json(&json!({"userId": format!("{marker}-shopper")})),
        )
        .await
        .success(200);
        let session_id = text(&session["sessionId"]);
        Reply::of(
            key(client.post(server.url("/api/chat")))
                .json(&json!({"sessionId": session_id, "query": format!("Do you ship? {marker}")})),
        )
        .await
        .success(200);
        ids.insert("session", session_id);

        let document =
            Reply::of(key(client.post(server.url("/api/documents"))).json(&document(marker)))
                .await
                .success(201);
        ids.insert("document", text(&document["id"]));

        let portal = |path: &str| server.url(&format!("/api/merchants/{m}{path}"));
        let config =
            Reply::of(jwt(client.put(portal("/sync/configure"))).json(&sync_config())).await;
        assert!(matches!(config.status, 200 | 201), "{config:?}");
        let rotated = Reply::of(jwt(client.post(portal("/sync/webhook-secret"))))
            .await
            .success(200);
        ids.insert("push_secret", text(&rotated["webhookSecret"]));
        let upload =
            Reply::of(jwt(client.post(portal("/sync/upload"))).multipart(catalog_file(marker)))
                .await;
        assert_eq!(upload.status, 200, "{upload:?}");

        let endpoint = Reply::of(
            jwt(client.post(portal("/webhooks")))
                .json(&json!({"url": self.receiver, "events": ["*"], "description": marker})),
        )
        .await
        .success(201);
        let endpoint_id = text(&endpoint["id"]);
        let delivery = Reply::of(jwt(
            client.post(portal(&format!("/webhooks/{endpoint_id}/test")))
        ))
        .await
        .success(202);
        ids.insert("webhook", endpoint_id);
        ids.insert("delivery", text(&delivery["id"]));

        let spare = Reply::of(
            jwt(client.post(portal("/api-keys")))
                .json(&json!({"kind": "secret", "name": format!("{marker} spare")})),
        )
        .await
        .success(201);
        ids.insert("key", text(&spare["id"]));
        ids
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

fn document(marker: &str) -> Value {
    json!({"title": format!("Shipping {marker}"), "body": format!("We ship in 3 days. {marker}")})
}

fn sync_config() -> Value {
    json!({"syncType": "webhook", "sourceType": "api", "sourceUrl": "https://shop.example/feed",
           "fieldMapping": {"sku": "id", "title": "name"}})
}

fn catalog_file(marker: &str) -> Form {
    let csv = format!("id,name\nSKU-1,Wok {marker}\nSKU-2,Pan {marker}\n");
    Form::new().part(
        "file",
        Part::bytes(csv.into_bytes())
            .file_name("catalog.csv")
            .mime_str("text/csv")
            .expect("a MIME type"),
    )
}

/// One request of the matrix: `caller`'s credential, on `path_merchant`'s portal path, with
/// the resources of `ids` (the caller's own or another merchant's) in the path and body.
struct Cell<'a> {
    name: &'static str,
    caller: &'a Tenant,
    /// The webhook secret the caller holds: its own, never another merchant's.
    caller_secret: &'a str,
    path_merchant: &'a Tenant,
    ids: &'a Ids,
    /// Whose resources the request names: the ids' merchant, or the path's when the ids are
    /// the caller's own.
    target: &'a Tenant,
    /// The other kind of credential: a portal token where an API key goes, and the reverse.
    swap_credential: bool,
}

impl Cell<'_> {
    fn cross_tenant(&self) -> bool {
        self.caller.merchant != self.target.merchant
    }

    /// Sends the cell's request for `route`, or `None` when a cross-tenant cell would only
    /// write into the caller's own collection (the route names nothing of the target's).
    async fn send(&self, server: &Server, route: &mindshop_backend::RouteSpec) -> Option<Reply> {
        let (path, path_names) = self.fill(&route.path);
        let auth = classify(&path)
            .map(|route| route.group.auth())
            .unwrap_or_else(|| panic!("{path} has no route at the edge"));
        let body = self.body(&route.method, &route.path);
        let names_target = path_names || body.names(self);
        if self.cross_tenant() && !names_target && route.method != Method::GET {
            return None;
        }
        let mut request = client().request(route.method.clone(), server.url(&path));
        let use_token = match auth {
            AuthKind::Jwt => !self.swap_credential,
            AuthKind::ApiKey(_) | AuthKind::BodySignature | AuthKind::None => self.swap_credential,
        };
        if auth != AuthKind::None {
            request = if use_token {
                request.bearer_auth(&self.caller.token)
            } else {
                request.header("X-API-Key", &self.caller.key)
            };
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Catalog => request.multipart(catalog_file(&self.caller.marker)),
            Body::Push(raw) => {
                if !self.swap_credential {
                    let id = unique("push");
                    for (name, value) in
                        signed_push_headers(self.caller_secret, &id, &raw, unix_now())
                    {
                        request = request.header(name, value);
                    }
                }
                request.header("content-type", "application/json").body(raw)
            }
        };
        Some(Reply::of(request).await)
    }

    /// The route's path with its placeholders filled; whether it names the target's resource.
    fn fill(&self, pattern: &str) -> (String, bool) {
        let mut names_target = false;
        let mut previous = "";
        let mut segments = Vec::new();
        for segment in pattern.split('/') {
            let filled = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                None => segment.to_owned(),
                Some("merchant_id") => {
                    names_target |= self.path_merchant.merchant == self.target.merchant;
                    self.path_merchant.merchant.to_owned()
                }
                Some(name) => {
                    names_target |= self.ids["merchant"] == self.target.merchant;
                    let resource = resource_of(previous, name);
                    self.ids[resource].clone()
                }
            };
            previous = segment;
            segments.push(filled);
        }
        (segments.join("/"), names_target)
    }

    fn body(&self, method: &Method, pattern: &str) -> Body {
        let ids = self.ids;
        let marker = &self.caller.marker;
        let tail = pattern.rsplit('/').next().unwrap_or_default();
        match (method.as_str(), pattern) {
            ("GET" | "DELETE", _) => Body::None,
            ("POST", "/api/chat/sessions") => Body::Json(
                json!({"userId": format!("{marker}-shopper"), "merchantId": ids["merchant"]}),
            ),
            ("POST", "/api/chat") => {
                Body::Json(json!({"sessionId": ids["session"], "query": "Do you ship to Oslo?"}))
            }
            ("POST", "/api/documents") | ("PUT", "/api/documents/{id}") => {
                Body::Json(document(marker))
            }
            _ => match tail {
                "settings" => Body::Json(json!({"allowedDomains": [self.path_merchant.domain]})),
                "api-keys" => Body::Json(json!({"kind": "secret", "name": marker})),
                "configure" => Body::Json(sync_config()),
                "upload" => Body::Catalog,
                "webhook" => Body::Push(
                    json!({"products": [{"id": "SKU-1", "name": format!("Pushed {marker}")}],
                           "deleted": ["SKU-2"]})
                    .to_string(),
                ),
                "webhooks" => Body::Json(
                    json!({"url": self.caller.receiver, "events": ["*"], "description": marker}),
                ),
                "{webhook_id}" => Body::Json(json!({"description": marker, "enabled": false})),
                _ => Body::None,
            },
        }
    }

    /// No 2xx when the request names the target's resource, never a 5xx, and never the
    /// target's data in the answer.
    fn judge(&self, route: &mindshop_backend::RouteSpec, reply: &Reply) {
        let what = format!(
            "{} {} with {} ({} on {}'s): {reply:?}",
            route.method, route.path, self.name, self.caller.merchant, self.target.merchant
        );
        assert!(reply.status < 500, "a 5xx: {what}");
        let names_target =
            self.fill(&route.path).1 || self.body(&route.method, &route.path).names(self);
        if names_target {
            assert!(
                !(200..300).contains(&reply.status),
                "another merchant's resource answered 2xx: {what}"
            );
        }
        assert!(
            !reply.body.contains(&self.target.marker),
            "another merchant's data in the answer: {what}"
        );
    }
}

/// The fixture a placeholder names: `{id}` after `sessions` is a session.
fn resource_of(previous: &str, name: &str) -> &'static str {
    match (previous, name) {
        ("sessions", "id") => "session",
        ("documents", "id") => "document",
        (_, "key_id") => "key",
        (_, "webhook_id") => "webhook",
        (_, "delivery_id") => "delivery",
        _ => panic!(
            "the route table has a placeholder {{{name}}} after `{previous}` that the matrix \
             makes no resource for: add one to Tenant::resources and resource_of"
        ),
    }
}

enum Body {
    None,
    Json(Value),
    Catalog,
    Push(String),
}

impl Body {
    /// Whether the body names one of the target's resources (its merchant id or an id).
    fn names(&self, cell: &Cell<'_>) -> bool {
        let Body::Json(value) = self else {
            return false;
        };
        let text = value.to_string();
        cell.ids["merchant"] == cell.target.merchant
            && cell.ids.iter().any(|(resource, id)| {
                *resource != "push_secret" && text.contains(&format!("\"{id}\""))
            })
    }
}

fn assert_rows_unchanged(merchant: &str, before: &Rows, after: &Rows) {
    for (table, rows) in before {
        assert_eq!(
            Some(rows),
            after.get(table),
            "{merchant}'s rows in {table} changed"
        );
    }
    assert_eq!(before.len(), after.len(), "{merchant}: tables differ");
}

/// Every row of one merchant, by table, as text.
type Rows = BTreeMap<String, Vec<String>>;

enum Db {
    Sqlite(String),
    Postgres(String),
}

impl Db {
    /// The merchant's rows once background work (search indexing, webhook deliveries) has
    /// settled: two reads a moment apart agree.
    async fn settled(&self, tenant: &Tenant) -> Rows {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = self.rows(tenant.merchant).await;
        loop {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let now = self.rows(tenant.merchant).await;
            if now == last {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "{}'s rows never settled",
                tenant.merchant
            );
            last = now;
        }
    }

    async fn rows(&self, merchant: &str) -> Rows {
        match self {
            Db::Sqlite(url) => sqlite_rows(url, merchant).await,
            Db::Postgres(url) => postgres_rows(url, merchant).await,
        }
    }
}

async fn sqlite_rows(url: &str, merchant: &str) -> Rows {
    let mut db = sqlx::SqliteConnection::connect(&format!("{url}?mode=ro"))
        .await
        .expect("open the database");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut db)
            .await
            .expect("list the tables");
    let mut rows = Rows::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query(AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{table}')"
        )))
        .fetch_all(&mut db)
        .await
        .expect("list the columns")
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect();
        let owner = if table == "merchants" {
            "id"
        } else if columns.iter().any(|c| c == "merchant_id") {
            "merchant_id"
        } else {
            continue;
        };
        let quoted = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let mut found: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT {quoted} FROM \"{table}\" WHERE {owner} = ?"
        )))
        .bind(merchant)
        .fetch_all(&mut db)
        .await
        .expect("read the rows");
        found.sort();
        rows.insert(table, found);
    }
    rows
}

async fn postgres_rows(url: &str, merchant: &str) -> Rows {
    let mut db = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the database");
    let tables: Vec<(String, bool)> = sqlx::query_as(
        "SELECT table_name::text, bool_or(column_name = 'merchant_id')
         FROM information_schema.columns WHERE table_schema = current_schema()
         GROUP BY table_name ORDER BY table_name",
    )
    .fetch_all(&mut db)
    .await
    .expect("list the tables");
    let mut rows = Rows::new();
    for (table, has_merchant) in tables {
        let owner = match (table.as_str(), has_merchant) {
            ("merchants", _) => "id",
            (_, true) => "merchant_id",
            _ => continue,
        };
        let mut found: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM \"{table}\" t WHERE {owner} = $1"
        )))
        .bind(merchant)
        .fetch_all(&mut db)
        .await
        .expect("read the rows");
        found.sort();
        rows.insert(table, found);
    }
    rows
}

/// A webhook receiver on loopback that answers 200 to everything.
async fn receiver() -> String {
    let app = axum::Router::new().fallback(|| async { "ok" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A name no other request of this process uses.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        unix_now(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
