//! `cargo bench --bench webhooks`: how fast a backlog of events reaches a merchant's endpoint,
//! on SQLite and on PostgreSQL.
//!
//! Writes 10,000 `document.created` events to the outbox of a merchant with one endpoint (a
//! receiver in this process on loopback that answers 200 at once), with `mindshop serve`
//! stopped, then starts it and waits until the receiver has every event. The table gives the
//! time from starting `serve` to the last delivery (the backlog drained: fan-out, claims,
//! signing, sending, recording each attempt) and the deliveries per second between the first
//! and the last delivery.
//!
//! Settings: `BENCH_WEBHOOK_EVENTS` (default 10000), `MINDSHOP_BENCH_POSTGRES_URL` (see the sync
//! bench).

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{create_postgres, drop_postgres, prepare, start};
use mindshop_backend::store::{NewEvent, NewWebhookEndpoint};
use mindshop_config::DatabaseConfig;
use serde_json::json;

/// What the receiver saw: event ids, and when the first and the last arrived.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    first: Option<Instant>,
    last: Option<Instant>,
}

async fn receiver() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let now = Instant::now();
            let mut seen = state.lock().unwrap();
            if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                seen.ids.insert(id.to_owned());
            }
            seen.first.get_or_insert(now);
            seen.last = Some(now);
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

struct Row {
    database: &'static str,
    events: usize,
    drained: Duration,
    per_second: f64,
}

async fn run(database: &'static str, url: &str, events: usize) -> Row {
    let dir = tempfile::tempdir().expect("a work directory");
    let prepared = prepare(
        dir.path(),
        url,
        &[
            ("MINDSHOP_WEBHOOKS_ALLOW_HTTP", "true".to_owned()),
            (
                "MINDSHOP_WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS",
                "true".to_owned(),
            ),
        ],
    );
    let (hook, seen) = receiver().await;
    let store = mindshop_backend::store::open(&DatabaseConfig {
        url: url.to_owned(),
        ..DatabaseConfig::default()
    })
    .await
    .expect("open the database");
    store
        .create_webhook(&NewWebhookEndpoint {
            id: "whe_bench".to_owned(),
            merchant_id: "bench".to_owned(),
            url: hook,
            events: vec!["*".to_owned()],
            description: None,
            secret: mindshop_backend::webhooks::sign::new_secret(),
        })
        .await
        .expect("create the endpoint");
    eprintln!("{database}: writing {events} events…");
    for i in 0..events {
        store
            .record_event(&NewEvent {
                merchant_id: "bench",
                event_type: "document.created",
                data: json!({"id": format!("doc_{i}"), "title": format!("Document {i}")}),
            })
            .await
            .expect("write an event");
    }
    store.close().await;

    let started = Instant::now();
    let _served = start(dir.path(), prepared).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if seen.lock().unwrap().ids.len() >= events {
            break;
        }
        assert!(Instant::now() < deadline, "the backlog did not drain");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = seen.lock().unwrap();
    let drained = seen.last.expect("deliveries").duration_since(started);
    let span = seen.last.expect("deliveries") - seen.first.expect("deliveries");
    let per_second = (events - 1) as f64 / span.as_secs_f64();
    eprintln!(
        "{database}: drained in {:.2} s, {per_second:.0} deliveries/s",
        drained.as_secs_f64()
    );
    Row {
        database,
        events,
        drained,
        per_second,
    }
}

#[tokio::main]
async fn main() {
    mindshop_backend::install_crypto_provider();
    let events: usize = std::env::var("BENCH_WEBHOOK_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut table = Vec::new();
    let sqlite_dir = tempfile::tempdir().expect("a directory");
    let sqlite_url = format!("sqlite://{}/bench.db", sqlite_dir.path().display());
    table.push(run("SQLite", &sqlite_url, events).await);
    if let Some((url, name)) = create_postgres("webhooks").await {
        table.push(run("PostgreSQL", &url, events).await);
        drop_postgres(&name).await;
    }

    println!();
    println!(
        "one endpoint on loopback answering 200, default settings (16 at once), {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| database | backlog | drained (s, from start) | deliveries/s |");
    println!("|---|---:|---:|---:|");
    for row in &table {
        println!(
            "| {} | {} | {:.2} | {:.0} |",
            row.database,
            row.events,
            row.drained.as_secs_f64(),
            row.per_second
        );
    }
}
