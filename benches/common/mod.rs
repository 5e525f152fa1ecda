//! Helpers the benches share: running the real `mindshop` binary, its admin commands, and a
//! `serve` with a merchant `bench` ready for uploads.

// Each bench uses a different part.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mindshop");

/// Kills the child on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_addr() -> SocketAddr {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

pub fn mindshop(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("MINDSHOP_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

/// Runs `mindshop <args>` (an admin command) with `env`; its JSON output.
pub fn admin_json(dir: &Path, args: &[&str], env: &[(&str, String)]) -> serde_json::Value {
    let output = mindshop(dir, args, env)
        .output()
        .expect("run an admin command");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("admin JSON")
}

/// A running `mindshop serve` with merchant `bench`.
pub struct Served {
    pub process: Process,
    pub edge: SocketAddr,
    pub metrics: SocketAddr,
    /// A portal token of merchant `bench`.
    pub token: String,
    /// Settings the admin commands need to reach the same database.
    pub env: Vec<(&'static str, String)>,
}

/// Settings of a `serve` on `database_url` with `extra` ones, the database migrated and
/// merchant `bench` (whose widget runs on `bench-store.example`) created; start it with
/// [`start`].
pub struct Prepared {
    env: Vec<(&'static str, String)>,
    edge: SocketAddr,
    metrics: SocketAddr,
    token: String,
}

pub fn prepare(dir: &Path, database_url: &str, extra: &[(&'static str, String)]) -> Prepared {
    let edge = free_addr();
    let metrics = free_addr();
    let mut env = vec![
        ("MINDSHOP_DATABASE_URL", database_url.to_owned()),
        ("MINDSHOP_EDGE_LISTEN", edge.to_string()),
        ("MINDSHOP_EDGE_METRICS_LISTEN", metrics.to_string()),
        ("MINDSHOP_BACKEND_LISTEN", free_addr().to_string()),
        ("MINDSHOP_EDGE_SHUTDOWN_GRACE_SECS", "0".to_owned()),
        ("MINDSHOP_BACKEND_REQUEST_TIMEOUT_SECS", "300".to_owned()),
        ("MINDSHOP_LOG_LEVEL", "warn".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    admin_json(dir, &["migrate"], &env);
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
            "bench-store.example",
        ],
        &env,
    );
    let token = admin_json(dir, &["admin", "token", "--merchant", "bench"], &env)["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    Prepared {
        env,
        edge,
        metrics,
        token,
    }
}

/// Starts the prepared `serve` and waits until it is ready.
pub async fn start(dir: &Path, prepared: Prepared) -> Served {
    let Prepared {
        env,
        edge,
        metrics,
        token,
    } = prepared;
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
        .get(format!("http://{edge}/ready"))
        .send()
        .await
        .is_ok_and(|reply| reply.status().is_success())
    {
        assert!(Instant::now() < deadline, "serve did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Served {
        process,
        edge,
        metrics,
        token,
        env,
    }
}

/// [`prepare`] and [`start`].
pub async fn serve(dir: &Path, database_url: &str, extra: &[(&'static str, String)]) -> Served {
    start(dir, prepare(dir, database_url, extra)).await
}

/// Uploads `file` as merchant `bench`; the time to the answer and the answer's data.
pub async fn upload(served: &Served, file: Vec<u8>) -> (Duration, serde_json::Value) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(file).file_name("catalog.csv"),
    );
    let started = Instant::now();
    let reply = reqwest::Client::new()
        .post(format!(
            "http://{}/api/merchants/bench/sync/upload",
            served.edge
        ))
        .bearer_auth(&served.token)
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

/// The value of the unlabelled series `name` on the served `/metrics` (0 when absent).
pub async fn metric(served: &Served, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", served.metrics))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Waits until the search indexer has indexed `indexed` products in all and none wait; how
/// long that took from `since`.
pub async fn searchable(served: &Served, indexed: f64, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = metric(served, "mindshop_search_indexed_products_total").await;
        let backlog = metric(served, "mindshop_search_index_backlog").await;
        if done >= indexed && backlog == 0.0 {
            return since.elapsed();
        }
        assert!(Instant::now() < deadline, "the index did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A PostgreSQL database of its own for a bench, dropped by [`drop_postgres`]; `None` (and a
/// note) when `MINDSHOP_BENCH_POSTGRES_URL` (default the local server) does not answer. The
/// backend connects with `sslmode=disable`: over loopback TLS protects nothing, and sqlx 0.9
/// leaves Nagle's algorithm on, so a large statement split into TLS records stalls on delayed
/// ACKs (about 40 ms per batch here).
pub async fn create_postgres(bench: &str) -> Option<(String, String)> {
    use sqlx::Connection;
    let admin_url = std::env::var("MINDSHOP_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(admin) => admin,
        Err(error) => {
            eprintln!("PostgreSQL at {admin_url} does not answer ({error}): skipped");
            return None;
        }
    };
    let name = format!("mindshop_bench_{bench}_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create the bench database");
    let (base, _) = admin_url.rsplit_once('/').expect("a database in the URL");
    Some((format!("{base}/{name}?sslmode=disable"), name))
}

/// Drops the database [`create_postgres`] made.
pub async fn drop_postgres(name: &str) {
    use sqlx::Connection;
    let admin_url = std::env::var("MINDSHOP_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop the bench database");
}

/// The settings a prepared `serve` runs with (to run admin commands before it starts).
impl Prepared {
    pub fn env(&self) -> &[(&'static str, String)] {
        &self.env
    }
}

/// Starts `serve` with `env`, appending its log to `dir/<log>`, and waits (polling every
/// 10 ms) until `edge`'s `/ready` answers 200; the process and how long that took.
pub async fn spawn_ready(
    dir: &Path,
    env: &[(&'static str, String)],
    edge: SocketAddr,
    log: &str,
) -> (Process, Duration) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(log))
        .expect("a log file");
    let started = Instant::now();
    let child = mindshop(dir, &["serve"], env)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start mindshop serve");
    let process = Process(child);
    let client = reqwest::Client::new();
    let deadline = started + Duration::from_secs(60);
    while !client
        .get(format!("http://{edge}/ready"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|reply| reply.status().is_success())
    {
        assert!(Instant::now() < deadline, "serve did not become ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (process, started.elapsed())
}

/// Like [`start`], the log appended to `dir/<log>`; also how long until ready.
pub async fn start_logged(dir: &Path, prepared: Prepared, log: &str) -> (Served, Duration) {
    let Prepared {
        env,
        edge,
        metrics,
        token,
    } = prepared;
    let (process, took) = spawn_ready(dir, &env, edge, log).await;
    let served = Served {
        process,
        edge,
        metrics,
        token,
        env,
    };
    (served, took)
}

impl Served {
    /// SIGKILL (no shutdown of any kind), and reaps the process.
    pub fn kill_hard(&mut self) {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
    }

    /// Starts `serve` again on the same ports, data directory and database (SIGKILLing the old
    /// process first if it still runs); how long until `/ready` answered 200.
    pub async fn restart(&mut self, dir: &Path, log: &str) -> Duration {
        self.kill_hard();
        let (process, took) = spawn_ready(dir, &self.env, self.edge, log).await;
        self.process = process;
        took
    }

    /// The process id of the running `serve`.
    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }
}

/// `mindshop admin key create --merchant <m> --kind <kind> --permission <p>…`: the key and its id.
pub fn api_key(
    dir: &Path,
    env: &[(&str, String)],
    merchant: &str,
    kind: &str,
    permissions: &[&str],
) -> (String, String) {
    let mut args = vec![
        "admin",
        "key",
        "create",
        "--merchant",
        merchant,
        "--kind",
        kind,
    ];
    for permission in permissions {
        args.extend(["--permission", permission]);
    }
    let created = admin_json(dir, &args, env);
    let field = |name: &str| {
        created[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {created}"))
            .to_owned()
    };
    (field("key"), field("id"))
}

/// Resident memory of process `pid` in KiB (`VmRSS`), when `/proc` has it.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Every series of metric `name` on the served `/metrics`: (labels as written, value).
pub async fn metric_series(served: &Served, name: &str) -> Vec<(String, f64)> {
    let Ok(reply) = reqwest::get(format!("http://{}/metrics", served.metrics)).await else {
        return Vec::new();
    };
    let text = reply.text().await.unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(labelled) => {
                    let (labels, value) = labelled.split_once('}')?;
                    (labels.to_owned(), value)
                }
                None => (String::new(), rest.strip_prefix(' ')?),
            };
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}
