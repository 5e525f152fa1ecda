//! `cargo bench --bench edge`: what the edge's pipeline costs.
//!
//! Starts a local origin (an axum app answering `{}` to everything) and the real `mindshop`
//! binary as edges in front of it, then drives each with the same closed-loop load and prints
//! a table per load level: the origin direct, the edge with no filters (`GET /ready`: request
//! id, routing, identity signing, proxying), the full pipeline with the in-process limiter
//! (`GET /api/documents`: CORS, cached key lookup, permission check, rate limit), and the same
//! with the Redis limiter, as configured by default (the bench's one API key is a busy budget,
//! leased 64 counts a call) and with every request counted in Redis
//! (`limits.redis_lease_max = 1`, what quiet budgets cost). Every row sends the same headers
//! (an API key and an `Origin`), which only the full pipeline's filters read.
//!
//! Besides throughput and latency, each edge row reports the CPU time the edge process spent
//! per request (from `/proc`), which does not depend on what else shares the machine, and the
//! Redis rows the CPU time `redis-server` spent per request (`INFO cpu`).
//!
//! Settings: `BENCH_SECONDS` (default 3 per row and round), `BENCH_ROUNDS` (default 16; each row
//! reports its median round, and its median and range against the no-filter edge of the same
//! round), `BENCH_CONCURRENCY` (connections; default `32,256`, one table per level),
//! `MINDSHOP_BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`; the Redis rows are skipped
//! when it does not answer). Load generator and servers share this machine's cores: compare
//! rows with each other, not with numbers from elsewhere.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::{Process, admin_json, free_addr, mindshop};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-internal-secret-0123456789abcdef";

struct Row {
    name: &'static str,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    /// CPU time the edge process spent per request (user + system), when an edge served the
    /// row: the pipeline's own cost, whatever else shares the machine.
    edge_cpu_us: Option<f64>,
    /// CPU time `redis-server` spent per request, on the Redis rows.
    redis_cpu_us: Option<f64>,
}

impl Row {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[index] as f64 / 1000.0
    }
}

/// Starts `mindshop edge` in front of `origin` and waits for `/health`.
async fn start_edge(
    dir: &Path,
    origin: SocketAddr,
    extra: &[(&str, String)],
) -> (Process, SocketAddr) {
    let listen = free_addr();
    let mut env = vec![
        ("MINDSHOP_INTERNAL_SECRET", SECRET.to_owned()),
        ("MINDSHOP_EDGE_BACKENDS", origin.to_string()),
        ("MINDSHOP_EDGE_LISTEN", listen.to_string()),
        ("MINDSHOP_EDGE_METRICS_LISTEN", free_addr().to_string()),
        ("MINDSHOP_EDGE_SHUTDOWN_GRACE_SECS", "0".to_owned()),
        ("MINDSHOP_LIMITS_DOCUMENTS", "1000000000".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    let log =
        std::fs::File::create(dir.join(format!("edge-{}.log", listen.port()))).expect("a log file");
    let child = mindshop(dir, &["edge"], &env)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start mindshop edge");
    let process = Process(child);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(reply) = client.get(format!("http://{listen}/health")).send().await
            && reply.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the edge did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (process, listen)
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports in clock ticks of 1/100 s on Linux.
    Some(Duration::from_millis(ticks * 10))
}

async fn drive(
    name: &'static str,
    request: Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>,
    edge_pid: Option<u32>,
    seconds: u64,
    concurrency: usize,
) -> Row {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("a client");
    // Warm up: connections, caches, script loading.
    for _ in 0..200 {
        let _ = request(&client).send().await;
    }
    let cpu_before = cpu_time(edge_pid);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < until {
                let sent = Instant::now();
                match request(&client).send().await {
                    Ok(reply) if reply.status().is_success() => {
                        let _ = reply.bytes().await;
                        latencies.push(sent.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (latencies, failed) = worker.await.expect("a load worker");
        latencies_us.extend(latencies);
        errors += failed;
    }
    let elapsed = started.elapsed();
    let requests = latencies_us.len() as u64;
    let edge_cpu_us = match (cpu_before, cpu_time(edge_pid)) {
        (Some(before), Some(after)) if requests > 0 => {
            Some((after - before).as_micros() as f64 / requests as f64)
        }
        _ => None,
    };
    latencies_us.sort_unstable();
    Row {
        name,
        requests,
        errors,
        elapsed,
        latencies_us,
        edge_cpu_us,
        redis_cpu_us: None,
    }
}

/// The median of `sorted` (not empty): for an even count, the mean of the two middle values.
fn median(sorted: &[f64]) -> f64 {
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

/// CPU seconds `redis-server` has used so far (`INFO cpu`: user + system).
async fn redis_cpu_secs(url: &str) -> Option<f64> {
    let mut connection = redis::Client::open(url)
        .ok()?
        .get_multiplexed_async_connection()
        .await
        .ok()?;
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut connection)
        .await
        .ok()?;
    let field = |name: &str| -> Option<f64> {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse().ok())
    };
    Some(field("used_cpu_user")? + field("used_cpu_sys")?)
}

async fn redis_answers(url: &str) -> bool {
    let Some(address) = url
        .strip_prefix("redis://")
        .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned())
    else {
        return false;
    };
    tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .is_ok_and(|connected| connected.is_ok())
}

#[tokio::main]
async fn main() {
    mindshop_backend::install_crypto_provider();
    let setting = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let seconds = setting("BENCH_SECONDS", 3);
    let rounds_wanted = setting("BENCH_ROUNDS", 16).max(1);
    // One table per level: at 32 connections a request that waits for Redis leaves little
    // else to do meanwhile; at 256 every row runs near saturation and Redis batches fill.
    let levels: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|level| level.trim().parse().ok())
                .filter(|&level| level > 0)
                .collect()
        })
        .filter(|levels: &Vec<usize>| !levels.is_empty())
        .unwrap_or_else(|| vec![32, 256]);
    let redis_url = std::env::var("MINDSHOP_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());

    // The origin.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = listener.local_addr().expect("origin address");
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(|| async { "{}" });
        axum::serve(listener, app).await.expect("origin");
    });

    // A merchant and a key the full pipeline resolves.
    let workdir = tempfile::tempdir().expect("a work directory");
    let dir = workdir.path();
    admin_json(
        dir,
        &[
            "admin",
            "merchant",
            "create",
            "--id",
            "bench",
            "--name",
            "Bench",
            "--domain",
            "bench.example",
        ],
        &[],
    );
    let key = admin_json(
        dir,
        &[
            "admin",
            "key",
            "create",
            "--merchant",
            "bench",
            "--kind",
            "secret",
        ],
        &[],
    )["key"]
        .as_str()
        .expect("a key")
        .to_owned();

    // The rows are driven in turn, round after round, and each row reports its median round,
    // so a burst of noise on this shared machine moves one round, not the table. Each round
    // starts its edges afresh: one edge process can run a few µs per request slower than the
    // next for its whole life (where its threads landed), and a row should not hang on one.
    type MakeRequest = Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>;
    let full = |address: SocketAddr| -> MakeRequest {
        let url = format!("http://{address}/api/documents");
        let key = key.clone();
        Arc::new(move |c: &reqwest::Client| {
            c.get(&url)
                .header("X-API-Key", &key)
                .header("Origin", "https://shop.bench.example")
        })
    };
    // The no-filter row sends the same headers to a route with no filters: both rows carry
    // the same bytes in, so their difference is the filters' work (and the headers they add
    // to the answer), not the cost of reading a longer request.
    let ready = |address: SocketAddr| -> MakeRequest {
        let url = format!("http://{address}/ready");
        let key = key.clone();
        Arc::new(move |c: &reqwest::Client| {
            c.get(&url)
                .header("X-API-Key", &key)
                .header("Origin", "https://shop.bench.example")
        })
    };

    /// One row: what serves it (the origin itself, or an edge with these settings in front of
    /// it), the request, and the Redis whose CPU it reads.
    struct Scenario<'a> {
        name: &'static str,
        edge: Option<Vec<(&'static str, String)>>,
        full: bool,
        redis: Option<&'a str>,
    }
    let mut scenarios = vec![
        Scenario {
            name: "origin direct",
            edge: None,
            full: false,
            redis: None,
        },
        Scenario {
            name: "edge, no filters (/ready)",
            edge: Some(Vec::new()),
            full: false,
            redis: None,
        },
        Scenario {
            name: "full pipeline, in-process limiter",
            edge: Some(Vec::new()),
            full: true,
            redis: None,
        },
    ];
    if redis_answers(&redis_url).await {
        // As configured by default (a busy budget leased, 64 counts a call), and with every
        // request counted in Redis: what budgets too quiet to lease cost (one shopper's
        // address, one request a minute).
        for (name, lease_max) in [
            ("full pipeline, Redis limiter", "64"),
            ("full pipeline, Redis, every request counted", "1"),
        ] {
            scenarios.push(Scenario {
                name,
                edge: Some(vec![
                    ("MINDSHOP_LIMITS_STORE", "redis".to_owned()),
                    ("MINDSHOP_REDIS_URL", redis_url.clone()),
                    (
                        "MINDSHOP_REDIS_KEY_PREFIX",
                        format!("bench-{}", std::process::id()),
                    ),
                    ("MINDSHOP_LIMITS_REDIS_LEASE_MAX", lease_max.to_owned()),
                ]),
                full: true,
                redis: Some(redis_url.as_str()),
            });
        }
    } else {
        eprintln!("Redis at {redis_url} does not answer: the Redis rows are skipped");
    }

    for &concurrency in &levels {
        let mut rounds: Vec<Vec<Row>> = scenarios.iter().map(|_| Vec::new()).collect();
        for round in 0..rounds_wanted {
            // Every other round runs the rows in reverse, so a machine that speeds up or slows
            // down during a round favours no row.
            let mut order: Vec<usize> = (0..scenarios.len()).collect();
            if !round.is_multiple_of(2) {
                order.reverse();
            }
            for i in order {
                let scenario = &scenarios[i];
                let (edge, address) = match &scenario.edge {
                    Some(settings) => {
                        let (edge, address) = start_edge(dir, origin, settings).await;
                        (Some(edge), address)
                    }
                    None => (None, origin),
                };
                let request = if scenario.full {
                    full(address)
                } else {
                    ready(address)
                };
                let pid = edge.as_ref().map(|edge| edge.0.id());
                let redis_before = match scenario.redis {
                    Some(url) => redis_cpu_secs(url).await,
                    None => None,
                };
                let mut row = drive(scenario.name, request, pid, seconds, concurrency).await;
                if let (Some(url), Some(before)) = (scenario.redis, redis_before)
                    && let Some(after) = redis_cpu_secs(url).await
                    && row.requests > 0
                {
                    row.redis_cpu_us = Some((after - before) * 1e6 / row.requests as f64);
                }
                drop(edge);
                rounds[i].push(row);
            }
        }
        print_table(seconds, rounds_wanted, concurrency, rounds);
    }
}

/// Prints one level's table: each row's median round, and its ratio to the no-filter edge of
/// the same round (median and range).
fn print_table(seconds: u64, rounds_wanted: u64, concurrency: usize, rounds: Vec<Vec<Row>>) {
    // Each row against the no-filter edge of the same round, which ran beside it (paired, so
    // the machine's drift from round to round cancels); sorted, for the median and the range.
    // The other columns show each row's middle round (the upper one for an even count).
    let relative: Vec<Vec<f64>> = rounds
        .iter()
        .map(|runs| {
            let mut ratios: Vec<f64> = runs
                .iter()
                .zip(rounds.get(1).into_iter().flatten())
                .map(|(run, bare)| run.throughput() / bare.throughput())
                .collect();
            ratios.sort_by(f64::total_cmp);
            ratios
        })
        .collect();
    let rows: Vec<Row> = rounds
        .into_iter()
        .map(|mut runs| {
            runs.sort_by(|a, b| a.throughput().total_cmp(&b.throughput()));
            runs.swap_remove(runs.len() / 2)
        })
        .collect();

    println!();
    println!(
        "{seconds} s per row, {rounds_wanted} rounds, {concurrency} concurrent connections, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| scenario | requests/s | vs no-filter edge | rounds (min–max) | p50 ms | p99 ms | edge CPU µs/request | Redis CPU µs/request | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (row, ratios)) in rows.iter().zip(&relative).enumerate() {
        let percent = |ratio: f64| format!("{:.0}%", 100.0 * ratio);
        let (versus, range) = match (i, ratios.first(), ratios.last()) {
            (1.., Some(min), Some(max)) => (
                percent(median(ratios)),
                format!("{}–{}", percent(*min), percent(*max)),
            ),
            _ => ("—".to_owned(), "—".to_owned()),
        };
        let cpu = |us: Option<f64>| us.map_or_else(|| "—".to_owned(), |us| format!("{us:.1}"));
        println!(
            "| {} | {:.0} | {versus} | {range} | {:.2} | {:.2} | {} | {} | {} |",
            row.name,
            row.throughput(),
            row.percentile_ms(0.50),
            row.percentile_ms(0.99),
            cpu(row.edge_cpu_us),
            cpu(row.redis_cpu_us),
            row.errors
        );
    }
}
