//! `cargo bench --bench sync`: how fast a catalog upload lands, on SQLite and on PostgreSQL.
//!
//! Starts the real `mindshop serve` on each database, then uploads a 100,000-row CSV of about
//! 10 MB through the edge with a portal token, three times: all new products, the same file
//! again (nothing changes), and every price changed. Each row of the table is the time from
//! sending the request to the answer, which comes when the run has completed, and the rows per
//! second that makes.
//!
//! Settings: `BENCH_SYNC_ROWS` (default 100000), `MINDSHOP_BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`: a server where the bench may create and drop
//! a database; the PostgreSQL rows are skipped when it does not answer). The backend connects
//! to it with `sslmode=disable`: over loopback TLS protects nothing, and sqlx 0.9 leaves Nagle's
//! algorithm on, so a large statement split into TLS records stalls on delayed ACKs (about
//! 40 ms per batch here, which made the same import 2.5 times slower).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Process, admin_json, free_addr, mindshop};
use sqlx::Connection;

/// One product line of about 95 bytes.
fn catalog(rows: usize, price_offset: f64) -> Vec<u8> {
    let mut csv = String::with_capacity(rows * 100);
    csv.push_str("sku,title,description,price,imageUrl,category,inStock\n");
    for i in 0..rows {
        let price = 10.0 + (i % 500) as f64 + price_offset;
        csv.push_str(&format!(
            "SKU-{i:06},Oak chair {i},Walnut finish,{price:.2},https://cdn.example/p/{i:06}.jpg,Chairs,{}\n",
            i % 3 != 0
        ));
    }
    csv.into_bytes()
}

/// `mindshop serve` on `database_url`, ready; the portal token of merchant `bench`.
async fn serve(dir: &Path, database_url: &str) -> (Process, SocketAddr, String) {
    let listen = free_addr();
    let env = vec![
        ("MINDSHOP_DATABASE_URL", database_url.to_owned()),
        ("MINDSHOP_EDGE_LISTEN", listen.to_string()),
        ("MINDSHOP_EDGE_METRICS_LISTEN", free_addr().to_string()),
        ("MINDSHOP_BACKEND_LISTEN", free_addr().to_string()),
        ("MINDSHOP_EDGE_SHUTDOWN_GRACE_SECS", "0".to_owned()),
        ("MINDSHOP_BACKEND_REQUEST_TIMEOUT_SECS", "300".to_owned()),
        ("MINDSHOP_LOG_LEVEL", "warn".to_owned()),
    ];
    admin_json(dir, &["migrate"], &env);
    admin_json(
        dir,
        &[
            "admin", "merchant", "create", "--id", "bench", "--name", "Bench",
        ],
        &env,
    );
    let token = admin_json(dir, &["admin", "token", "--merchant", "bench"], &env)["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let log = std::fs::File::create(dir.join("serve.log")).expect("a log file");
    let child = mindshop(dir, &["serve"], &env)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start mindshop serve");
    let process = Process(child);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client
        .get(format!("http://{listen}/ready"))
        .send()
        .await
        .is_ok_and(|reply| reply.status().is_success())
    {
        assert!(Instant::now() < deadline, "serve did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (process, listen, token)
}

/// Uploads `file`; the time to the answer and the answer's counts.
async fn upload(edge: SocketAddr, token: &str, file: Vec<u8>) -> (Duration, serde_json::Value) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(file).file_name("catalog.csv"),
    );
    let started = Instant::now();
    let reply = reqwest::Client::new()
        .post(format!("http://{edge}/api/merchants/bench/sync/upload"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = reply.status();
    let body: serde_json::Value = reply.json().await.expect("a JSON answer");
    let took = started.elapsed();
    assert!(status.is_success(), "{status}: {body}");
    (took, body["data"].clone())
}

struct Row {
    database: &'static str,
    case: &'static str,
    took: Duration,
    report: serde_json::Value,
}

async fn run(database: &'static str, url: &str, rows: usize) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("a work directory");
    let (_serve, edge, token) = serve(dir.path(), url).await;
    let mut results = Vec::new();
    for (case, file) in [
        ("all new", catalog(rows, 0.0)),
        ("same file again", catalog(rows, 0.0)),
        ("every price changed", catalog(rows, 1.0)),
    ] {
        eprintln!("{database}: uploading ({case})…");
        let (took, report) = upload(edge, &token, file).await;
        eprintln!("{database}: {case} took {:.2} s", took.as_secs_f64());
        results.push(Row {
            database,
            case,
            took,
            report,
        });
    }
    results
}

#[tokio::main]
async fn main() {
    mindshop_backend::install_crypto_provider();
    let rows: usize = std::env::var("BENCH_SYNC_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let size = catalog(rows, 0.0).len();
    let mut table = Vec::new();

    let sqlite_dir = tempfile::tempdir().expect("a directory");
    let sqlite_url = format!("sqlite://{}/bench.db", sqlite_dir.path().display());
    table.extend(run("SQLite", &sqlite_url, rows).await);

    let admin_url = std::env::var("MINDSHOP_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    match sqlx::PgConnection::connect(&admin_url).await {
        Ok(mut admin) => {
            let name = format!("mindshop_bench_{}", std::process::id());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("create the bench database");
            let (base, _) = admin_url.rsplit_once('/').expect("a database in the URL");
            let url = format!("{base}/{name}?sslmode=disable");
            table.extend(run("PostgreSQL", &url, rows).await);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .expect("drop the bench database");
        }
        Err(error) => eprintln!("PostgreSQL at {admin_url} does not answer ({error}): skipped"),
    }

    println!();
    println!(
        "{rows} rows, {:.1} MB CSV, {} cores",
        size as f64 / 1e6,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| database | upload | created | updated | unchanged | seconds | rows/s |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for row in &table {
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} |",
            row.database,
            row.case,
            row.report["productsCreated"],
            row.report["productsUpdated"],
            row.report["productsUnchanged"],
            row.took.as_secs_f64(),
            rows as f64 / row.took.as_secs_f64()
        );
    }
}
