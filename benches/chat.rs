//! `cargo bench --bench chat`: how long the assistant takes over a 100,000-product catalog, on
//! SQLite and on PostgreSQL.
//!
//! Starts the real `mindshop serve`, uploads a catalog of 100,000 products whose titles mix 40
//! product kinds, 20 adjectives and 10 materials (so a word matches from 0.25% to 10% of the
//! catalog, as in a real store), waits until the search indexer has taken it all in, then:
//! - **retrieval**: the backend's own retrieval, called in this process on the same database:
//!   understanding the question, then searching products and documents (what `POST /api/chat`
//!   does before it writes the answer);
//! - **chat**: a full non-LLM `POST /api/chat` through the edge with a publishable key (CORS,
//!   key check, rate limit, backend, answer stored with its event), one request at a time.
//!
//! Each cycles through a fixed list of shoppers' questions and reports p50 and p99.
//! Goals (issue 5): retrieval p99 under 10 ms, chat p99 under 25 ms.
//!
//! Settings: `BENCH_CHAT_PRODUCTS` (default 100000), `BENCH_CHAT_REQUESTS` (default 1000),
//! `MINDSHOP_BENCH_POSTGRES_URL` (see the sync bench).

mod common;

use std::time::{Duration, Instant};

use common::{Served, admin_json, create_postgres, drop_postgres, searchable, serve, upload};
use mindshop_backend::chat::understand::understand;
use mindshop_backend::store::{ProductQuery, Store};
use mindshop_config::DatabaseConfig;
use serde_json::json;

const KINDS: [&str; 40] = [
    "headphones",
    "earbuds",
    "speaker",
    "chair",
    "table",
    "lamp",
    "sofa",
    "desk",
    "shelf",
    "rug",
    "mirror",
    "clock",
    "backpack",
    "jacket",
    "boots",
    "sneakers",
    "watch",
    "kettle",
    "blender",
    "toaster",
    "pan",
    "knife",
    "mug",
    "bottle",
    "tent",
    "sleeping bag",
    "bike",
    "helmet",
    "camera",
    "tripod",
    "monitor",
    "keyboard",
    "mouse",
    "charger",
    "cable",
    "router",
    "printer",
    "pillow",
    "blanket",
    "towel",
];
const ADJECTIVES: [&str; 20] = [
    "wireless",
    "compact",
    "classic",
    "modern",
    "vintage",
    "portable",
    "premium",
    "budget",
    "ergonomic",
    "waterproof",
    "lightweight",
    "heavy duty",
    "smart",
    "foldable",
    "quiet",
    "rugged",
    "slim",
    "deluxe",
    "eco",
    "pro",
];
const MATERIALS: [&str; 10] = [
    "oak",
    "walnut",
    "steel",
    "aluminium",
    "leather",
    "cotton",
    "wool",
    "glass",
    "bamboo",
    "ceramic",
];

const QUESTIONS: [&str; 10] = [
    "wireless headphones under $100",
    "do you have a walnut desk in stock?",
    "compact speaker between 50 and 80",
    "waterproof boots",
    "leather jacket under 200 dollars",
    "quiet blender",
    "vintage oak chair in stock",
    "what ergonomic keyboard do you sell",
    "portable tent under $150",
    "glass bottle",
];

fn catalog(products: usize) -> Vec<u8> {
    let mut csv = String::with_capacity(products * 120);
    csv.push_str("sku,title,description,price,category,inStock\n");
    for i in 0..products {
        let kind = KINDS[i % KINDS.len()];
        let adjective = ADJECTIVES[(i / KINDS.len()) % ADJECTIVES.len()];
        let material = MATERIALS[(i / (KINDS.len() * ADJECTIVES.len())) % MATERIALS.len()];
        let price = 5.0 + ((i * 7919) % 500) as f64;
        csv.push_str(&format!(
            "SKU-{i:06},{adjective} {material} {kind} {i},A {adjective} {kind} made of {material},{price:.2},{kind},{}\n",
            i % 4 != 0
        ));
    }
    csv.into_bytes()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

struct Row {
    database: &'static str,
    measure: &'static str,
    goal_ms: f64,
    p50: f64,
    p99: f64,
    samples: usize,
}

fn row(
    database: &'static str,
    measure: &'static str,
    goal_ms: f64,
    mut took: Vec<Duration>,
) -> Row {
    took.sort();
    Row {
        database,
        measure,
        goal_ms,
        p50: percentile(&took, 0.50),
        p99: percentile(&took, 0.99),
        samples: took.len(),
    }
}

async fn retrieval(store: &dyn Store, requests: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(requests);
    for i in 0..requests {
        let started = Instant::now();
        let understood = understand(QUESTIONS[i % QUESTIONS.len()]);
        let found = store
            .search_products(
                "bench",
                &ProductQuery {
                    terms: &understood.terms,
                    min_price: understood.min_price,
                    max_price: understood.max_price,
                    in_stock_only: understood.in_stock_only,
                    limit: 5,
                },
            )
            .await
            .expect("search products");
        store
            .search_documents("bench", &understood.terms, 3)
            .await
            .expect("search documents");
        took.push(started.elapsed());
        assert!(!found.is_empty(), "every question matches products");
    }
    // Which question is slowest, to know where the tail comes from.
    if requests > QUESTIONS.len() {
        let slowest = (0..QUESTIONS.len())
            .map(|q| {
                let worst = took.iter().skip(q).step_by(QUESTIONS.len()).max();
                (worst.copied().unwrap_or_default(), QUESTIONS[q])
            })
            .max()
            .unwrap_or_default();
        eprintln!(
            "slowest question: {:?} at {:.2} ms",
            slowest.1,
            slowest.0.as_secs_f64() * 1000.0
        );
    }
    took
}

async fn chat(served: &Served, key: &str, requests: usize) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let session: serde_json::Value = client
        .post(format!("http://{}/api/chat/sessions", served.edge))
        .header("X-API-Key", key)
        .json(&json!({"userId": "bench-shopper"}))
        .send()
        .await
        .expect("open a session")
        .json()
        .await
        .expect("a session");
    let session_id = session["data"]["sessionId"]
        .as_str()
        .expect("a session id")
        .to_owned();
    let mut took = Vec::with_capacity(requests);
    for i in 0..requests {
        let started = Instant::now();
        let reply = client
            .post(format!("http://{}/api/chat", served.edge))
            .header("X-API-Key", key)
            .header("Origin", "https://bench-store.example")
            .json(&json!({"sessionId": session_id, "query": QUESTIONS[i % QUESTIONS.len()]}))
            .send()
            .await
            .expect("ask");
        let status = reply.status();
        let body = reply.bytes().await.expect("the answer");
        took.push(started.elapsed());
        assert!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    took
}

async fn run(database: &'static str, url: &str, products: usize, requests: usize) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("a work directory");
    let unlimited = "1000000000".to_owned();
    let served = serve(
        dir.path(),
        url,
        &[
            ("MINDSHOP_LIMITS_CHAT", unlimited.clone()),
            ("MINDSHOP_LIMITS_SESSIONS", unlimited.clone()),
            ("MINDSHOP_LIMITS_WIDGET_PER_IP", unlimited),
        ],
    )
    .await;
    let key = admin_json(
        dir.path(),
        &[
            "admin",
            "key",
            "create",
            "--merchant",
            "bench",
            "--kind",
            "publishable",
        ],
        &served.env,
    )["key"]
        .as_str()
        .expect("a key")
        .to_owned();
    eprintln!("{database}: uploading {products} products…");
    let (took, _) = upload(&served, catalog(products)).await;
    let indexed = searchable(&served, products as f64, Instant::now()).await;
    eprintln!(
        "{database}: imported in {:.2} s, searchable {:.2} s later",
        took.as_secs_f64(),
        indexed.as_secs_f64()
    );

    let store = mindshop_backend::store::open(&DatabaseConfig {
        url: url.to_owned(),
        ..DatabaseConfig::default()
    })
    .await
    .expect("open the database");
    // Warm the caches the way a running backend's are.
    retrieval(store.as_ref(), QUESTIONS.len()).await;
    let retrieval = retrieval(store.as_ref(), requests).await;
    chat(&served, &key, QUESTIONS.len()).await;
    let chat = chat(&served, &key, requests).await;
    store.close().await;
    vec![
        row(database, "retrieval (in process)", 10.0, retrieval),
        row(database, "POST /api/chat through the edge", 25.0, chat),
    ]
}

#[tokio::main]
async fn main() {
    mindshop_backend::install_crypto_provider();
    let setting = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let products = setting("BENCH_CHAT_PRODUCTS", 100_000);
    let requests = setting("BENCH_CHAT_REQUESTS", 1000);
    let mut table = Vec::new();

    let sqlite_dir = tempfile::tempdir().expect("a directory");
    let sqlite_url = format!("sqlite://{}/bench.db", sqlite_dir.path().display());
    table.extend(run("SQLite", &sqlite_url, products, requests).await);
    if let Some((url, name)) = create_postgres("chat").await {
        table.extend(run("PostgreSQL", &url, products, requests).await);
        drop_postgres(&name).await;
    }

    println!();
    println!(
        "{products} products, {requests} questions each, one at a time, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| database | measure | p50 ms | p99 ms | goal p99 ms | met | samples |");
    println!("|---|---|---:|---:|---:|---|---:|");
    for row in &table {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.0} | {} | {} |",
            row.database,
            row.measure,
            row.p50,
            row.p99,
            row.goal_ms,
            if row.p99 < row.goal_ms { "yes" } else { "no" },
            row.samples
        );
    }
}
