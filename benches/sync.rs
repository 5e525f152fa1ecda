//! `cargo bench --bench sync`: how fast a catalog upload lands, on SQLite and on PostgreSQL.
//!
//! Starts the real `mindshop serve` on each database, then uploads a 100,000-row CSV of about
//! 10 MB through the edge with a portal token, three times: all new products, the same file
//! again (nothing changes), and every price changed. Each row of the table is the time from
//! sending the request to the answer, which comes when the run has completed, the rows per
//! second that makes, and how long after the answer the search indexer had made every new
//! product searchable (it works in the background, so imports are not slowed by it).
//!
//! Settings: `BENCH_SYNC_ROWS` (default 100000), `MINDSHOP_BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`: a server where the bench may create and drop
//! a database; the PostgreSQL rows are skipped when it does not answer; see
//! `common::create_postgres` for why the backend connects with `sslmode=disable`).

mod common;

use std::time::{Duration, Instant};

use common::{create_postgres, drop_postgres, searchable, serve, upload};

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

struct Row {
    database: &'static str,
    case: &'static str,
    took: Duration,
    /// From the answer to the last product being searchable.
    searchable: Duration,
    report: serde_json::Value,
}

async fn run(database: &'static str, url: &str, rows: usize) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("a work directory");
    let served = serve(dir.path(), url, &[]).await;
    let mut results = Vec::new();
    let mut indexed = 0.0;
    for (case, file) in [
        ("all new", catalog(rows, 0.0)),
        ("same file again", catalog(rows, 0.0)),
        ("every price changed", catalog(rows, 1.0)),
    ] {
        eprintln!("{database}: uploading ({case})…");
        let (took, report) = upload(&served, file).await;
        let answered = Instant::now();
        // New products wait for the search indexer; a price change needs no re-indexing.
        indexed += report["productsCreated"].as_f64().unwrap_or(0.0);
        let searchable = searchable(&served, indexed, answered).await;
        eprintln!(
            "{database}: {case} took {:.2} s, searchable {:.2} s later",
            took.as_secs_f64(),
            searchable.as_secs_f64()
        );
        results.push(Row {
            database,
            case,
            took,
            searchable,
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

    if let Some((url, name)) = create_postgres("sync").await {
        table.extend(run("PostgreSQL", &url, rows).await);
        drop_postgres(&name).await;
    }

    println!();
    println!(
        "{rows} rows, {:.1} MB CSV, {} cores",
        size as f64 / 1e6,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| database | upload | created | updated | unchanged | seconds | rows/s | searchable after (s) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for row in &table {
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} | {:.2} |",
            row.database,
            row.case,
            row.report["productsCreated"],
            row.report["productsUpdated"],
            row.report["productsUnchanged"],
            row.took.as_secs_f64(),
            rows as f64 / row.took.as_secs_f64(),
            row.searchable.as_secs_f64()
        );
    }
}
