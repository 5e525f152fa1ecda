//! `cargo bench --bench faults`: the release binary through real faults, and one table of what
//! clients saw.
//!
//! Every scenario starts the real `mindshop serve` on free loopback ports and breaks something
//! real under it:
//!
//! | name | what breaks | what must hold |
//! |---|---|---|
//! | `postgres-restart` | a private PostgreSQL restarted 3 times (fast shutdown, then start) under 4 writers of `POST /api/documents` for 12 s | every write answered 201, every 201 stored |
//! | `redis-outage` | a private `redis-server` (the shared rate limiter) SIGKILLed for 3 s, then started again | what `limits.on_store_error` promises; counting resumes |
//! | `kill-upload` | `serve` SIGKILLed during a 100,000-row CSV upload, restarted (SQLite, PostgreSQL) | the run ends `failed`, whole batches only, the next upload completes |
//! | `kill-webhooks` | `serve` SIGKILLed while delivering 2,000 events, restarted (SQLite, PostgreSQL) | every event arrives (at least once); duplicates counted |
//! | `bad-input` | about 1,000 bad requests in 11 classes through the edge (SQLite, PostgreSQL) | each a 4xx with our envelope, no 5xx, nothing changed |
//! | `load` | 64 connections on `GET /api/documents` for 20 s (`wrk` when on PATH) | no non-2xx; requests/s, p99, RSS before and after |
//! | `slow-clients` | 2,000 connections from 127.0.0.2, each sending a header line every 2 s, against the default caps (SQLite) | every one closed by `edge.max_connections_per_ip` or the head deadline; a client on 127.0.0.1 answered with p99 under 100 ms; peak RSS |
//!
//! `cargo bench --bench faults -- kill-upload bad-input` runs only the scenarios named. The
//! PostgreSQL rows run on a private server made for the run (`initdb` as the `postgres` user in
//! a temporary directory, a free port, trust authentication, removed at the end): the
//! machine's shared PostgreSQL and Redis are never touched. Those rows are skipped, saying why,
//! when that is impossible (not root, no binaries under `/usr/lib/postgresql/*/bin`).
//!
//! Settings: `BENCH_FAULTS_WRITE_SECS` (12), `BENCH_FAULTS_RESTARTS` (3), `BENCH_FAULTS_LOAD_SECS` (20),
//! `BENCH_FAULTS_EVENTS` (2000), `BENCH_FAULTS_ROWS` (100000).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{
    Process, Served, admin_json, api_key, free_addr, metric, metric_series, prepare, rss_kib,
    start_logged,
};
use futures_util::StreamExt as _;
use mindshop_backend::store::{NewEvent, NewWebhookEndpoint};
use mindshop_config::DatabaseConfig;
use reqwest::Method;
use serde_json::{Value, json};

const SCENARIOS: [&str; 7] = [
    "postgres-restart",
    "redis-outage",
    "kill-upload",
    "kill-webhooks",
    "bad-input",
    "load",
    "slow-clients",
];

/// Concurrent writers of the PostgreSQL restart.
const WRITERS: usize = 4;

// ---------------------------------------------------------------------------------------------
// The table

/// Whether a scenario's promise held.
enum Held {
    Yes,
    No(String),
    Skipped(String),
}

/// One row of the printed table.
struct Row {
    scenario: &'static str,
    database: &'static str,
    figures: String,
    held: Held,
}

impl Row {
    fn skipped(scenario: &'static str, database: &'static str, why: &str) -> Self {
        Self {
            scenario,
            database,
            figures: "—".to_owned(),
            held: Held::Skipped(why.to_owned()),
        }
    }
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every budget raised out of the way: these scenarios are about faults, not rate limits.
fn unlimited() -> Vec<(&'static str, String)> {
    [
        "MINDSHOP_LIMITS_CHAT",
        "MINDSHOP_LIMITS_SESSIONS",
        "MINDSHOP_LIMITS_WIDGET_PER_IP",
        "MINDSHOP_LIMITS_DOCUMENTS",
        "MINDSHOP_LIMITS_PRODUCTS",
        "MINDSHOP_LIMITS_PORTAL",
        "MINDSHOP_LIMITS_SYNC_WRITES",
        "MINDSHOP_LIMITS_SYNC_WEBHOOK",
        "MINDSHOP_LIMITS_REFUSED_PER_IP",
    ]
    .map(|name| (name, "1000000000".to_owned()))
    .to_vec()
}

fn with(
    mut env: Vec<(&'static str, String)>,
    more: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    env.extend(more.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

/// `counts` as `201 ×5, 500 ×2`, or `none`.
fn tally<K: std::fmt::Display>(counts: &BTreeMap<K, usize>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An error and its sources, one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// Lines of `dir/serve.log` at WARN or ERROR (or a panic), at most `most`, and how many.
fn log_problems(dir: &Path, most: usize) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN") || l.contains("panicked"))
        .map(|l| l.chars().take(400).collect())
        .collect();
    let shown = lines.iter().take(most).cloned().collect();
    (lines.len(), shown)
}

fn print_log_problems(what: &str, dir: &Path) -> usize {
    let (count, shown) = log_problems(dir, 12);
    if count > 0 {
        eprintln!("{what}: {count} WARN/ERROR lines in serve.log, the first ones:");
        for line in shown {
            eprintln!("    {line}");
        }
    }
    count
}

/// The `cause` of each `internal error` line in `dir/serve.log` (a 500), counted.
fn internal_error_causes(dir: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    let mut causes = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains("internal error")) {
        let cause = line
            .split_once("cause=\"")
            .map_or(line, |(_, rest)| rest.trim_end_matches('"'));
        *causes.entry(format!("\"{cause}\"")).or_insert(0) += 1;
    }
    causes
}

// ---------------------------------------------------------------------------------------------
// Private servers

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|uids| uids.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// How to control the private PostgreSQL (cloned into the thread that restarts it).
#[derive(Clone)]
struct PgControl {
    bin: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    port: u16,
}

impl PgControl {
    fn as_postgres(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let output = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("runuser {program}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {args:?}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.data.display().to_string();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.as_postgres("pg_ctl", &all)
    }

    fn start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.socket_dir.display()
        );
        let log = self.log.display().to_string();
        self.pg_ctl(&[
            "-l",
            log.as_str(),
            "-w",
            "-t",
            "60",
            "-o",
            options.as_str(),
            "start",
        ])
    }

    /// `mode`: `fast` (roll back and disconnect every session, then shut down cleanly) or
    /// `immediate`.
    fn stop(&self, mode: &str) -> Result<(), String> {
        self.pg_ctl(&["-w", "-t", "60", "-m", mode, "stop"])
    }
}

/// A PostgreSQL of this run alone, stopped and deleted on drop.
struct PrivatePostgres {
    control: PgControl,
    _root: tempfile::TempDir,
}

impl PrivatePostgres {
    /// `Err` says why there can be none here.
    fn start() -> Result<Self, String> {
        if !running_as_root() {
            return Err("not root (initdb runs as the postgres user through runuser)".to_owned());
        }
        let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|_| "no /usr/lib/postgresql".to_owned())?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
            .collect();
        bins.sort_by_key(|bin| {
            bin.parent()
                .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
                .unwrap_or(0)
        });
        let bin = bins
            .pop()
            .ok_or("no initdb under /usr/lib/postgresql/*/bin")?;
        let root = tempfile::Builder::new()
            .prefix("mindshop-faults-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let chown = Command::new("chown")
            .arg("postgres:")
            .arg(root.path())
            .status()
            .map_err(|e| e.to_string())?;
        if !chown.success() {
            return Err("chown to the postgres user failed (no such user?)".to_owned());
        }
        let control = PgControl {
            bin,
            data: root.path().join("data"),
            socket_dir: root.path().to_path_buf(),
            log: root.path().join("postgres.log"),
            port: free_addr().port(),
        };
        let data = control.data.display().to_string();
        control.as_postgres(
            "initdb",
            &[
                "-D",
                data.as_str(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        control.start()?;
        Ok(Self {
            control,
            _root: root,
        })
    }

    fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.control.port
        )
    }

    /// A new database; its URL.
    async fn database(&self, name: &str) -> String {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the private PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create a database");
        self.url(name)
    }

    /// Which release (`15.x`), for the table.
    fn version(&self) -> String {
        Command::new(self.control.bin.join("postgres"))
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if let Err(error) = self.control.stop("immediate") {
            eprintln!("stopping the private PostgreSQL: {error}");
        }
    }
}

/// A `redis-server` of this run alone on `port`, without persistence.
struct PrivateRedis {
    port: u16,
    dir: tempfile::TempDir,
    process: Option<Process>,
}

impl PrivateRedis {
    async fn start() -> Self {
        let mut redis = Self {
            port: free_addr().port(),
            dir: tempfile::tempdir().expect("a directory"),
            process: None,
        };
        redis.start_again().await;
        redis
    }

    async fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port".to_owned(),
                self.port.to_string(),
                "--bind".to_owned(),
                "127.0.0.1".to_owned(),
            ])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.process = Some(Process(child));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pong().await {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn pong(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").await.is_ok()
            && stream.read_exact(&mut reply).await.is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// SIGKILL.
    fn kill(&mut self) {
        // Process's drop kills and reaps.
        self.process = None;
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. PostgreSQL restarted under a stream of writes

/// One request of a client loop.
struct Attempt {
    /// From the scenario's start.
    at: Duration,
    took: Duration,
    /// Status and body, or why there was no answer.
    answer: Result<(u16, Value), String>,
}

async fn send_json(request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    match request.send().await {
        Ok(reply) => {
            let status = reply.status().as_u16();
            let body = reply.json().await.unwrap_or(Value::Null);
            Ok((status, body))
        }
        Err(error) => Err(chain(&error)),
    }
}

async fn write_loop(
    client: reqwest::Client,
    edge: SocketAddr,
    key: String,
    writer: usize,
    began: Instant,
    until: Instant,
) -> Vec<Attempt> {
    let mut done = Vec::new();
    let mut i = 0;
    while Instant::now() < until {
        let at = began.elapsed();
        let sent = Instant::now();
        let answer = send_json(
            client
                .post(format!("http://{edge}/api/documents"))
                .header("X-API-Key", &key)
                .json(&json!({
                    "title": format!("Write {writer}-{i}"),
                    "body": "Written while PostgreSQL restarts.",
                })),
        )
        .await;
        done.push(Attempt {
            at,
            took: sent.elapsed(),
            answer,
        });
        i += 1;
    }
    done
}

async fn postgres_restart(postgres: &PrivatePostgres, secs: u64, restarts: u32) -> Row {
    let url = postgres.database("faults_restart").await;
    let dir = tempfile::tempdir().expect("a work directory");
    let prepared = prepare(dir.path(), &url, &unlimited());
    let (key, _) = api_key(
        dir.path(),
        prepared.env(),
        "bench",
        "secret",
        &["documents:*"],
    );
    let (served, _) = start_logged(dir.path(), prepared, "serve.log").await;

    let began = Instant::now();
    let until = began + Duration::from_secs(secs);
    // Restarts spread evenly over the writes: at 3, 6 and 9 s of 12 by default.
    let restart_at: Vec<Duration> = (1..=restarts)
        .map(|k| Duration::from_secs(secs) * k / (restarts + 1))
        .collect();
    let control = postgres.control.clone();
    let schedule = restart_at.clone();
    let restart = tokio::task::spawn_blocking(move || {
        let mut done = Vec::new();
        for at in schedule {
            std::thread::sleep(at.saturating_sub(began.elapsed()));
            let stopping = began.elapsed();
            control.stop("fast").expect("stop the private PostgreSQL");
            let stopped = began.elapsed();
            control.start().expect("start the private PostgreSQL again");
            done.push((stopping, stopped, began.elapsed()));
        }
        done
    });
    eprintln!(
        "postgres-restart: {WRITERS} writers for {secs} s, PostgreSQL restarted at {:?}…",
        restart_at
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a client");
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(write_loop(
                client.clone(),
                served.edge,
                key.clone(),
                w,
                began,
                until,
            ))
        })
        .collect();
    let mut attempts = Vec::new();
    for writer in writers {
        attempts.extend(writer.await.expect("a writer"));
    }
    let restarted = restart.await.expect("the restarts");

    let mut created = Vec::new();
    let mut others: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut errors = 0;
    for attempt in &attempts {
        match &attempt.answer {
            Ok((201, body)) => created.push(body["data"]["id"].as_str().unwrap_or("").to_owned()),
            Ok((status, body)) => {
                let code = body["code"].as_str().unwrap_or("?");
                *others.entry(format!("{status} {code}")).or_default() += 1;
                failures.push(format!(
                    "t={:.3}s took {:.3}s: {status} {body}",
                    attempt.at.as_secs_f64(),
                    attempt.took.as_secs_f64()
                ));
            }
            Err(error) => {
                errors += 1;
                failures.push(format!(
                    "t={:.3}s: no answer: {error}",
                    attempt.at.as_secs_f64()
                ));
            }
        }
    }
    for failure in failures.iter().take(20) {
        eprintln!("postgres-restart: {failure}");
    }
    let log_lines = print_log_problems("postgres-restart", dir.path());
    let causes = internal_error_causes(dir.path());
    let longest = attempts.iter().map(|a| a.took).max().unwrap_or_default();

    // Every 201 must be readable afterwards, through the edge.
    let stored = futures_util::stream::iter(created.iter().cloned())
        .map(|id| {
            let client = client.clone();
            let key = key.clone();
            let edge = served.edge;
            async move {
                matches!(
                    send_json(
                        client
                            .get(format!("http://{edge}/api/documents/{id}"))
                            .header("X-API-Key", &key)
                    )
                    .await,
                    Ok((200, body)) if body["data"]["id"] == id.as_str()
                )
            }
        })
        .buffer_unordered(8)
        .filter(|found| std::future::ready(*found))
        .count()
        .await;
    let in_database = count(&url, COUNT_DOCUMENTS).await;
    let without_201 = in_database.saturating_sub(created.len() as i64);

    // Per restart: how long PostgreSQL was down, and the writes sent from the stop until a
    // second after it was up again that were not answered 201.
    let per_restart: Vec<String> = restarted
        .iter()
        .map(|(stopping, stopped, up)| {
            let failed = attempts
                .iter()
                .filter(|a| a.at >= *stopping && a.at < *up + Duration::from_secs(1))
                .filter(|a| !matches!(a.answer, Ok((201, _))))
                .count();
            format!(
                "at {:.1} s down {:.2} s (fast stop {:.2} s, start {:.2} s), {failed} not 201",
                stopping.as_secs_f64(),
                (*up - *stopping).as_secs_f64(),
                (*stopped - *stopping).as_secs_f64(),
                (*up - *stopped).as_secs_f64(),
            )
        })
        .collect();
    let sent = attempts.len();
    let figures = format!(
        "{sent} writes sent; {} answered 201; other answers: {}; no answer: {errors}; \
         {stored} of the {} 201s read back by id; {in_database} documents in the database \
         ({without_201} stored without a 201); {restarts} restarts: {}; longest answer {:.2} s; \
         {log_lines} WARN/ERROR log lines; causes of the 500s in the log: {}",
        created.len(),
        tally(&others),
        created.len(),
        per_restart.join("; "),
        longest.as_secs_f64(),
        tally(&causes),
    );
    let held = if created.len() == sent && stored == created.len() {
        Held::Yes
    } else {
        Held::No(format!(
            "{} of {sent} writes not answered 201, {} of the 201s not read back",
            sent - created.len(),
            created.len() - stored
        ))
    };
    Row {
        scenario: "postgres-restart",
        database: "PostgreSQL",
        figures,
        held,
    }
}

const COUNT_DOCUMENTS: &str = "SELECT COUNT(*) FROM documents WHERE merchant_id = 'bench'";
const COUNT_PRODUCTS: &str = "SELECT COUNT(*) FROM products WHERE merchant_id = 'bench'";
const COUNT_WHOLE_PRODUCTS: &str = "SELECT COUNT(*) FROM products WHERE merchant_id = 'bench' \
     AND title <> '' AND description IS NOT NULL AND price IS NOT NULL \
     AND image_url IS NOT NULL AND category IS NOT NULL AND in_stock IS NOT NULL";
const LAST_SKU: &str = "SELECT MAX(sku) FROM products WHERE merchant_id = 'bench'";

/// One number from the database at `url`, read directly (not through the API).
async fn count(url: &str, sql: &'static str) -> i64 {
    use sqlx::Connection;
    if url.starts_with("postgres") {
        let mut db = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query_scalar(sql).fetch_one(&mut db).await.expect(sql)
    } else {
        let mut db = sqlx::SqliteConnection::connect(url).await.expect("open");
        sqlx::query_scalar(sql).fetch_one(&mut db).await.expect(sql)
    }
}

async fn scalar_text(url: &str, sql: &'static str) -> Option<String> {
    use sqlx::Connection;
    if url.starts_with("postgres") {
        let mut db = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query_scalar(sql).fetch_one(&mut db).await.expect(sql)
    } else {
        let mut db = sqlx::SqliteConnection::connect(url).await.expect("open");
        sqlx::query_scalar(sql).fetch_one(&mut db).await.expect(sql)
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Redis stopped and started

/// `limits.on_store_error` as `mindshop config check` prints it for `env`.
fn on_store_error(dir: &Path, env: &[(&'static str, String)]) -> String {
    let output = common::mindshop(dir, &["config", "check"], env)
        .output()
        .expect("config check");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut in_limits = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_limits = line.trim() == "[limits]";
        } else if in_limits && let Some(value) = line.strip_prefix("on_store_error = ") {
            return value.trim_matches('"').to_owned();
        }
    }
    "unknown".to_owned()
}

struct Probed {
    at: Duration,
    took: Duration,
    status: Option<u16>,
    code: Option<String>,
    remaining: Option<u64>,
}

async fn redis_outage() -> Row {
    if !on_path("redis-server") {
        return Row::skipped("redis-outage", "SQLite", "no redis-server on PATH");
    }
    let mut redis = PrivateRedis::start().await;
    let dir = tempfile::tempdir().expect("a work directory");
    let url = format!("sqlite://{}/faults.db", dir.path().display());
    let redis_url = redis.url();
    let env = with(
        unlimited(),
        &[
            ("MINDSHOP_LIMITS_STORE", "redis"),
            ("MINDSHOP_REDIS_URL", redis_url.as_str()),
            ("MINDSHOP_REDIS_KEY_PREFIX", "faults"),
        ],
    );
    let prepared = prepare(dir.path(), &url, &env);
    let policy = on_store_error(dir.path(), prepared.env());
    let (key, _) = api_key(
        dir.path(),
        prepared.env(),
        "bench",
        "secret",
        &["documents:*"],
    );
    let (served, _) = start_logged(dir.path(), prepared, "serve.log").await;

    let (up_for, down_for, after) = (
        Duration::from_secs(3),
        Duration::from_secs(3),
        Duration::from_secs(3),
    );
    eprintln!("redis-outage: requests for 9 s, Redis SIGKILLed at 3 s, started again at 6 s…");
    let began = Instant::now();
    let until = began + up_for + down_for + after;
    let edge = served.edge;
    let loop_key = key.clone();
    let requests = tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a client");
        let mut seen = Vec::new();
        while Instant::now() < until {
            let at = began.elapsed();
            let sent = Instant::now();
            let reply = client
                .get(format!("http://{edge}/api/documents?limit=1"))
                .header("X-API-Key", &loop_key)
                .send()
                .await;
            let took = sent.elapsed();
            seen.push(match reply {
                Ok(reply) => {
                    let remaining = reply
                        .headers()
                        .get("x-ratelimit-remaining")
                        .and_then(|v| v.to_str().ok()?.parse().ok());
                    let status = reply.status().as_u16();
                    let body: Value = reply.json().await.unwrap_or(Value::Null);
                    Probed {
                        at,
                        took,
                        status: Some(status),
                        code: body["code"].as_str().map(str::to_owned),
                        remaining,
                    }
                }
                Err(_) => Probed {
                    at,
                    took,
                    status: None,
                    code: None,
                    remaining: None,
                },
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    });
    tokio::time::sleep_until((began + up_for).into()).await;
    redis.kill();
    let killed = began.elapsed();
    tokio::time::sleep_until((began + up_for + down_for).into()).await;
    let restarting = began.elapsed();
    redis.start_again().await;
    let back = began.elapsed();
    let seen = requests.await.expect("the request loop");

    let before: Vec<&Probed> = seen.iter().filter(|p| p.at < killed).collect();
    let during: Vec<&Probed> = seen
        .iter()
        .filter(|p| p.at >= killed && p.at < back)
        .collect();
    let later: Vec<&Probed> = seen.iter().filter(|p| p.at >= back).collect();
    let statuses = |probes: &[&Probed]| {
        let mut counts = BTreeMap::new();
        for p in probes {
            let status = p.status.map_or("no answer".to_owned(), |s| {
                format!(
                    "{s}{}",
                    p.code.as_ref().map_or(String::new(), |c| format!(" {c}"))
                )
            });
            *counts.entry(status).or_insert(0usize) += 1;
        }
        tally(&counts)
    };
    let counted = |probes: &[&Probed]| probes.iter().filter(|p| p.remaining.is_some()).count();
    // Counting resumed at the first request after which every answer carried the headers.
    let resumed_at = (!later.is_empty())
        .then(|| later.iter().rposition(|p| p.remaining.is_none()))
        .and_then(|last_missing| match last_missing {
            None => Some(0),
            Some(i) => (i + 1 < later.len()).then_some(i + 1),
        });
    let first_after = resumed_at.and_then(|i| later[i].remaining);
    let resumed = resumed_at.map(|i| later[i].at.saturating_sub(back));
    let last_before = before.iter().rev().find_map(|p| p.remaining);
    let longest_during = during.iter().map(|p| p.took).max().unwrap_or_default();
    let store_errors = metric_series(&served, "mindshop_ratelimit_backend_errors_total").await;
    let store_errors: BTreeMap<String, usize> = store_errors
        .into_iter()
        .map(|(labels, value)| (labels, value as usize))
        .collect();
    let log_lines = print_log_problems("redis-outage", dir.path());

    let all_ok = |probes: &[&Probed]| probes.iter().all(|p| p.status == Some(200));
    let during_as_promised = match policy.as_str() {
        "allow" => all_ok(&during),
        _ => during
            .iter()
            .all(|p| p.status == Some(200) || p.code.as_deref() == Some("RATE_LIMIT_UNAVAILABLE")),
    };
    let figures = format!(
        "limits.on_store_error = {policy}; Redis down {:.2} s (SIGKILL at {:.1} s, answering \
         PING again {:.2} s after its start); before: {} requests, {}; during: {} requests, {} \
         ({} of them with X-RateLimit-*, from counts leased before), longest {:.0} ms; after: \
         {} requests, {}; every answer carried X-RateLimit-* again from {} after Redis was \
         back; Remaining {} before → {} after (the restarted Redis had no counters); \
         mindshop_ratelimit_backend_errors_total: {}; {log_lines} WARN/ERROR log lines",
        (back - killed).as_secs_f64(),
        killed.as_secs_f64(),
        (back - restarting).as_secs_f64(),
        before.len(),
        statuses(&before),
        during.len(),
        statuses(&during),
        counted(&during),
        longest_during.as_secs_f64() * 1000.0,
        later.len(),
        statuses(&later),
        resumed.map_or("never".to_owned(), |d| format!("{:.3} s", d.as_secs_f64())),
        last_before.map_or("—".to_owned(), |v| v.to_string()),
        first_after.map_or("—".to_owned(), |v| v.to_string()),
        tally(&store_errors),
    );
    let held = if !all_ok(&before) || !all_ok(&later) {
        Held::No("requests failed while Redis was up".to_owned())
    } else if !during_as_promised {
        Held::No(format!(
            "answers during the outage do not match on_store_error = {policy}"
        ))
    } else if resumed.is_none() {
        Held::No("counting did not resume".to_owned())
    } else {
        Held::Yes
    };
    Row {
        scenario: "redis-outage",
        database: "SQLite",
        figures,
        held,
    }
}

// ---------------------------------------------------------------------------------------------
// 3. kill -9 during an upload

/// `rows` products of about 95 bytes each, as in the sync bench.
fn catalog(rows: usize) -> Vec<u8> {
    let mut csv = String::with_capacity(rows * 100);
    csv.push_str("sku,title,description,price,imageUrl,category,inStock\n");
    for i in 0..rows {
        let price = 10.0 + (i % 500) as f64;
        let _ = writeln!(
            csv,
            "SKU-{i:06},Oak chair {i},Walnut finish,{price:.2},https://cdn.example/p/{i:06}.jpg,Chairs,{}",
            i % 3 != 0
        );
    }
    csv.into_bytes()
}

fn upload_request(
    client: &reqwest::Client,
    edge: SocketAddr,
    token: &str,
    file: Vec<u8>,
) -> reqwest::RequestBuilder {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(file).file_name("catalog.csv"),
    );
    client
        .post(format!("http://{edge}/api/merchants/bench/sync/upload"))
        .bearer_auth(token)
        .multipart(form)
}

async fn sync_status(client: &reqwest::Client, served: &Served) -> Value {
    let reply = send_json(
        client
            .get(format!(
                "http://{}/api/merchants/bench/sync/status",
                served.edge
            ))
            .bearer_auth(&served.token),
    )
    .await;
    match reply {
        Ok((200, body)) => body["data"].clone(),
        _ => Value::Null,
    }
}

/// Stored products after a crash: how many, how many whole, whether they are the file's first
/// rows in order (batches commit in file order).
async fn stored_products(url: &str) -> (i64, i64, bool) {
    let stored = count(url, COUNT_PRODUCTS).await;
    let whole = count(url, COUNT_WHOLE_PRODUCTS).await;
    let prefix = match scalar_text(url, LAST_SKU).await {
        None => stored == 0,
        Some(last) => last == format!("SKU-{:06}", stored - 1),
    };
    (stored, whole, prefix)
}

async fn kill_upload(database: &'static str, url: &str, rows: usize) -> Row {
    let dir = tempfile::tempdir().expect("a work directory");
    // The dead run is failed once its heartbeat is 3 s old (default 120 s), looked for every
    // second (default 30 s), so the bench need not wait minutes.
    let env = with(
        unlimited(),
        &[
            ("MINDSHOP_SYNC_STALE_RUN_SECS", "3"),
            ("MINDSHOP_SYNC_SCHEDULER_INTERVAL_SECS", "1"),
        ],
    );
    let prepared = prepare(dir.path(), url, &env);
    let (mut served, _) = start_logged(dir.path(), prepared, "serve.log").await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("a client");
    let file = catalog(rows);
    eprintln!(
        "kill-upload ({database}): uploading {rows} rows ({:.1} MB), SIGKILL once 30% are written…",
        file.len() as f64 / 1e6
    );
    let upload = tokio::spawn(send_json(upload_request(
        &client,
        served.edge,
        &served.token,
        file.clone(),
    )));
    let threshold = rows as u64 * 3 / 10;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Value::Null;
    loop {
        let status = sync_status(&client, &served).await;
        if status["status"] == "processing"
            && status["productsProcessed"].as_u64().unwrap_or(0) >= threshold
        {
            last = status;
            break;
        }
        if upload.is_finished() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    served.kill_hard();
    let answer = upload.await.expect("the upload task");
    if last.is_null() {
        return Row {
            scenario: "kill-upload",
            database,
            figures: format!("the upload ended before 30% were seen written: {answer:?}"),
            held: Held::No("could not kill mid-run".to_owned()),
        };
    }
    let run_id = last["id"].as_str().unwrap_or("").to_owned();
    let seen_processed = last["productsProcessed"].as_u64().unwrap_or(0);
    let client_saw = match &answer {
        Ok((status, body)) => format!("{status} {}", body["code"]),
        Err(_) => "the connection closed, no answer".to_owned(),
    };
    let (stored, whole, prefix) = stored_products(url).await;

    let ready = served.restart(dir.path(), "serve.log").await;
    let restarted = Instant::now();
    let (after_restart, _, _) = stored_products(url).await;
    // An upload while the dead run still counts as active.
    let early = send_json(upload_request(
        &client,
        served.edge,
        &served.token,
        catalog(1),
    ))
    .await;
    let early = match early {
        Ok((status, body)) => format!(
            "{status}{}",
            body["code"]
                .as_str()
                .map_or(String::new(), |c| format!(" {c}"))
        ),
        Err(error) => format!("no answer: {error}"),
    };
    let mut final_status = Value::Null;
    while restarted.elapsed() < Duration::from_secs(60) {
        let status = sync_status(&client, &served).await;
        if status["id"] == run_id.as_str() && status["status"] != "processing" {
            final_status = status;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed_after = restarted.elapsed();
    let history = send_json(
        client
            .get(format!(
                "http://{}/api/merchants/bench/sync/history",
                served.edge
            ))
            .bearer_auth(&served.token),
    )
    .await
    .map(|(_, body)| body["data"]["items"].clone())
    .unwrap_or(Value::Null);
    let in_history = history
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["id"] == run_id.as_str()))
        .map_or("absent".to_owned(), |r| {
            r["status"].as_str().unwrap_or("?").to_owned()
        });

    let again = send_json(upload_request(&client, served.edge, &served.token, file)).await;
    let (again_status, again_report) = match again {
        Ok((status, body)) => (status, body["data"].clone()),
        Err(error) => (0, json!({ "error": error })),
    };
    let (finally, finally_whole, _) = stored_products(url).await;
    let log_lines = print_log_problems(&format!("kill-upload ({database})"), dir.path());

    let run_state = final_status["status"]
        .as_str()
        .unwrap_or("still processing");
    let figures = format!(
        "{rows}-row upload, SIGKILL when status showed {seen_processed} processed; the client: \
         {client_saw}; stored at the kill: {stored} products ({whole} whole, {} the file's \
         first rows, {}a multiple of 1,000); after restart {after_restart}; ready {:.2} s \
         after the restart; an upload then: {early}; the run became {run_state} {:.1} s after \
         ready (sync.stale_run_secs = 3), failure \"{}\", history: {in_history}; a new upload: \
         {again_status} {} (created {}, unchanged {}); {finally} products then ({finally_whole} \
         whole); {log_lines} WARN/ERROR log lines",
        if prefix { "all" } else { "NOT" },
        if stored % 1000 == 0 { "" } else { "NOT " },
        ready.as_secs_f64(),
        failed_after.as_secs_f64(),
        final_status["failure"].as_str().unwrap_or(""),
        again_report["status"].as_str().unwrap_or("?"),
        again_report["productsCreated"],
        again_report["productsUnchanged"],
    );
    let whole_batches = stored % 1000 == 0 && whole == stored && prefix && after_restart == stored;
    let completed = again_status == 200
        && again_report["status"] == "completed"
        && finally == rows as i64
        && finally_whole == finally;
    let held = if whole_batches && run_state == "failed" && completed {
        Held::Yes
    } else {
        Held::No(format!(
            "whole batches: {whole_batches}, run: {run_state}, next upload completed: {completed}"
        ))
    };
    Row {
        scenario: "kill-upload",
        database,
        figures,
        held,
    }
}

// ---------------------------------------------------------------------------------------------
// 4. kill -9 during webhook delivery

/// What the receiver got: every `webhook-id` in arrival order, and the documents named.
#[derive(Default)]
struct Received {
    ids: Vec<String>,
    distinct: HashSet<String>,
    documents: HashSet<String>,
}

/// A receiver on loopback that answers 200 after `delay` (a real endpoint does some work).
async fn receiver(delay: Duration) -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let state = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let state = Arc::clone(&state);
                async move {
                    tokio::time::sleep(delay).await;
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let mut seen = state.lock().unwrap();
                    if let Some(document) = event["data"]["id"].as_str() {
                        seen.documents.insert(document.to_owned());
                    }
                    seen.distinct.insert(id.clone());
                    seen.ids.push(id);
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn kill_webhooks(database: &'static str, url: &str, events: usize) -> Row {
    let dir = tempfile::tempdir().expect("a work directory");
    // A delivery's claim lasts 2 × timeout + 5 s: 7 s with a 1 s timeout.
    let env = with(
        unlimited(),
        &[
            ("MINDSHOP_WEBHOOKS_ALLOW_HTTP", "true"),
            ("MINDSHOP_WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS", "true"),
            ("MINDSHOP_WEBHOOKS_TIMEOUT_SECS", "1"),
            ("MINDSHOP_WEBHOOKS_DISPATCH_INTERVAL_MS", "50"),
            ("MINDSHOP_WEBHOOKS_RETRY_SCHEDULE_SECS", "1,1,1,1,1,1,1,1"),
        ],
    );
    let prepared = prepare(dir.path(), url, &env);
    let (hook, received) = receiver(Duration::from_millis(10)).await;
    let store = mindshop_backend::store::open(&DatabaseConfig {
        url: url.to_owned(),
        ..DatabaseConfig::default()
    })
    .await
    .expect("open the database");
    store
        .create_webhook(&NewWebhookEndpoint {
            id: "whe_faults".to_owned(),
            merchant_id: "bench".to_owned(),
            url: hook,
            events: vec!["document.created".to_owned()],
            description: None,
            secret: mindshop_backend::webhooks::sign::new_secret(),
        })
        .await
        .expect("create the endpoint");
    for i in 0..events {
        store
            .record_event(&NewEvent {
                merchant_id: "bench",
                event_type: "document.created",
                data: json!({"id": format!("doc_{i:05}"), "title": format!("Document {i}")}),
            })
            .await
            .expect("write an event");
    }
    store.close().await;

    eprintln!("kill-webhooks ({database}): {events} events queued, SIGKILL once a third arrived…");
    let (mut served, _) = start_logged(dir.path(), prepared, "serve.log").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.lock().unwrap().distinct.len() < events / 3 {
        assert!(Instant::now() < deadline, "deliveries did not start");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    served.kill_hard();
    let (before, sent_before) = {
        let seen = received.lock().unwrap();
        (seen.distinct.len(), seen.ids.len())
    };
    let restart_began = Instant::now();
    let ready = served.restart(dir.path(), "serve.log").await;
    // Done when the receiver has every event and the backlog (undelivered deliveries, claims
    // of the killed process included) is empty.
    let mut all_after = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let distinct = received.lock().unwrap().distinct.len();
        if distinct >= events && all_after.is_none() {
            all_after = Some(restart_began.elapsed());
        }
        if all_after.is_some() && metric(&served, "mindshop_webhook_backlog").await == 0.0 {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settled = restart_began.elapsed();
    // Late duplicates would come within a pass or two.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = received.lock().unwrap();
    let distinct = seen.distinct.len();
    let duplicates = seen.ids.len() - distinct;
    let mut repeats: HashMap<&str, usize> = HashMap::new();
    for id in &seen.ids {
        *repeats.entry(id).or_default() += 1;
    }
    let most = repeats.values().copied().max().unwrap_or(0);
    let documents = seen.documents.len();
    drop(seen);
    let log_lines = print_log_problems(&format!("kill-webhooks ({database})"), dir.path());

    let figures = format!(
        "{events} document.created events; SIGKILL after {before} distinct arrived \
         ({sent_before} requests); ready {:.2} s after the restart; all {events} distinct \
         received {} after the restart, backlog 0 at {:.1} s; distinct event ids {distinct}, \
         documents named {documents}, duplicates {duplicates} (no id more than {most} times); \
         {log_lines} WARN/ERROR log lines",
        ready.as_secs_f64(),
        all_after.map_or("NOT".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
        settled.as_secs_f64(),
    );
    let held = if distinct == events && documents == events {
        Held::Yes
    } else {
        Held::No(format!(
            "{} events never arrived",
            events - distinct.min(events)
        ))
    };
    Row {
        scenario: "kill-webhooks",
        database,
        figures,
        held,
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Bad input

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    MalformedJson,
    WrongTypes,
    UnknownFields,
    Nul,
    Oversized,
    BadIds,
    BadPaging,
    BadMethods,
    BadCredentials,
    BadContentType,
    BadUploads,
}

impl Class {
    fn label(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed JSON",
            Self::WrongTypes => "wrong JSON types",
            Self::UnknownFields => "unknown fields",
            Self::Nul => "NUL (`\\u0000` in JSON, `%00` in ids and parameters)",
            Self::Oversized => "oversized (fields, bodies, headers)",
            Self::BadIds => "bad or foreign ids",
            Self::BadPaging => "bad cursors and limits",
            Self::BadMethods => "methods a route does not have",
            Self::BadCredentials => "bad or forged credentials",
            Self::BadContentType => "bad Content-Type",
            Self::BadUploads => "bad multipart and catalog files",
        }
    }
}

/// What a bad request must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A 4xx with our envelope.
    Refused,
    /// Refused, or a 200 upload report in which every row was refused (a file that can be read
    /// whose rows are all bad is a completed run with each row's error).
    NothingImported,
    /// Refused, or the connection closed while the client was still sending the body: the
    /// edge answers 413 as soon as it knows the body is too large and stops reading, and a
    /// client that is still writing may see the closed connection before the answer.
    RefusedOrClosed,
    /// A head Pingora's parser cannot read (over 256 header fields, over 1 MiB): Pingora
    /// answers a bare 400 and closes before any of our hooks runs, so there is no envelope.
    Unparseable,
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Nobody,
    /// Secret key, `*`.
    Secret,
    /// Publishable key, its defaults.
    Widget,
    /// Portal JWT of `bench`.
    Portal,
}

struct Probe {
    class: Class,
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    expect: Expect,
}

/// The shop the probes are sent at: merchant `bench`, and `other` whose ids `bench` must not
/// reach.
struct Shop {
    edge: String,
    backend: String,
    secret: String,
    widget: String,
    /// Secret, `documents:read` only.
    reader: String,
    revoked: String,
    other_secret: String,
    token: String,
    other_token: String,
    jwt_secret: String,
    document: String,
    other_document: String,
    session: String,
    other_session: String,
    webhook: String,
    other_webhook: String,
}

impl Shop {
    /// `text` with `{document}`, `{session}`, `{webhook}` and the other merchant's ids filled in.
    fn fill(&self, text: &str) -> String {
        text.replace("{document}", &self.document)
            .replace("{session}", &self.session)
            .replace("{webhook}", &self.webhook)
            .replace("{other_document}", &self.other_document)
            .replace("{other_session}", &self.other_session)
            .replace("{other_webhook}", &self.other_webhook)
            .replace(
                "{time_cursor_with_nul}",
                &hex(b"v1\n2026-03-01T10:11:12Z\ndoc_1\0"),
            )
            .replace("{sku_cursor_with_nul}", &hex(b"s1\nA\0"))
    }

    fn credential(&self, who: Who) -> Vec<(String, String)> {
        match who {
            Who::Nobody => Vec::new(),
            Who::Secret => vec![("X-API-Key".to_owned(), self.secret.clone())],
            Who::Widget => vec![("X-API-Key".to_owned(), self.widget.clone())],
            Who::Portal => vec![("Authorization".to_owned(), format!("Bearer {}", self.token))],
        }
    }

    fn probe(&self, class: Class, method: Method, path: &str, who: Who) -> Probe {
        Probe {
            class,
            method,
            url: format!("{}{path}", self.edge),
            headers: self.credential(who),
            body: Vec::new(),
            expect: Expect::Refused,
        }
    }

    fn json(&self, class: Class, route: &JsonRoute, body: impl Into<Vec<u8>>) -> Probe {
        let mut probe = self.probe(class, route.method.clone(), &route.path, route.who);
        probe
            .headers
            .push(("Content-Type".to_owned(), "application/json".to_owned()));
        probe.body = body.into();
        probe
    }

    fn portal_token(
        &self,
        claims: Value,
        algorithm: jsonwebtoken::Algorithm,
        secret: &str,
    ) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(algorithm),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("sign a token")
    }
}

/// A route that takes a JSON body, with a body it accepts.
struct JsonRoute {
    method: Method,
    path: String,
    who: Who,
    valid: Value,
    /// Fields without which the body is refused (`null` in an optional field means absent).
    required: &'static [&'static str],
}

fn json_routes(shop: &Shop) -> Vec<JsonRoute> {
    let document = json!({
        "title": "Returns",
        "body": "Within 30 days.",
        "tags": ["faq"],
        "url": "https://bench-store.example/returns",
    });
    vec![
        JsonRoute {
            method: Method::POST,
            path: "/api/documents".to_owned(),
            who: Who::Secret,
            valid: document.clone(),
            required: &["title", "body"],
        },
        JsonRoute {
            method: Method::PUT,
            path: format!("/api/documents/{}", shop.document),
            who: Who::Secret,
            valid: document,
            required: &["title", "body"],
        },
        JsonRoute {
            method: Method::POST,
            path: "/api/chat/sessions".to_owned(),
            who: Who::Widget,
            valid: json!({"userId": "shopper-1"}),
            required: &["userId"],
        },
        JsonRoute {
            method: Method::POST,
            path: "/api/chat".to_owned(),
            who: Who::Widget,
            valid: json!({"sessionId": shop.session, "query": "oak chair"}),
            required: &["sessionId", "query"],
        },
        JsonRoute {
            method: Method::PUT,
            path: "/api/merchants/bench/settings".to_owned(),
            who: Who::Portal,
            valid: json!({"allowedDomains": ["bench-store.example"]}),
            required: &["allowedDomains"],
        },
        JsonRoute {
            method: Method::POST,
            path: "/api/merchants/bench/api-keys".to_owned(),
            who: Who::Portal,
            valid: json!({"kind": "secret", "env": "test", "permissions": ["documents:read"], "name": "ci"}),
            required: &["kind"],
        },
        JsonRoute {
            method: Method::POST,
            path: "/api/merchants/bench/webhooks".to_owned(),
            who: Who::Portal,
            valid: json!({"url": "https://hooks.bench-store.example/x", "events": ["sync.failed"], "description": "orders"}),
            required: &["url", "events"],
        },
        JsonRoute {
            method: Method::PUT,
            path: format!("/api/merchants/bench/webhooks/{}", shop.webhook),
            who: Who::Portal,
            valid: json!({"description": "orders", "enabled": true}),
            required: &[],
        },
        JsonRoute {
            method: Method::POST,
            path: "/api/merchants/bench/sync/configure".to_owned(),
            who: Who::Portal,
            valid: json!({"syncType": "manual", "sourceType": "csv", "fieldMapping": {"sku": "sku", "title": "title"}}),
            required: &["syncType", "sourceType", "fieldMapping"],
        },
    ]
}

fn object(value: &Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn hex(text: &[u8]) -> String {
    text.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

fn malformed_json(shop: &Shop, routes: &[JsonRoute], probes: &mut Vec<Probe>) {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(1_000), "}".repeat(1_000));
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"{\"title\":".to_vec(),
        b"{\"title\" \"x\"}".to_vec(),
        b"{'title': 'x'}".to_vec(),
        b"{\"a\": 1,}".to_vec(),
        b"nul".to_vec(),
        b"{\"title\": \"x\"}}".to_vec(),
        b"{\"title\": \"x\"} {\"title\": \"y\"}".to_vec(),
        b"\xef\xbb\xbf{}".to_vec(),
        b"{\"title\": \"\xff\xfe\"}".to_vec(),
        b"{\"title\": \"\\ud800\"}".to_vec(),
        b"{\"title\": \"\\x41\"}".to_vec(),
        b"{\"title\": 1e999999}".to_vec(),
        b"{\"title\": \"unterminated}".to_vec(),
        b"{\"title\": \"raw\x01control\"}".to_vec(),
        deep.into_bytes(),
        deep_object.into_bytes(),
    ];
    for route in routes {
        for body in &bodies {
            probes.push(shop.json(Class::MalformedJson, route, body.clone()));
        }
    }
}

fn wrong_types(shop: &Shop, routes: &[JsonRoute], probes: &mut Vec<Probe>) {
    let kinds = [
        json!(1),
        json!(1.5),
        json!(-7),
        json!(true),
        json!("text"),
        json!([]),
        json!({}),
    ];
    let same_kind = |a: &Value, b: &Value| {
        std::mem::discriminant(a) == std::mem::discriminant(b) || (a.is_number() && b.is_number())
    };
    for route in routes {
        let valid = object(&route.valid);
        for (field, value) in &valid {
            let mut replacements: Vec<Value> = kinds
                .iter()
                .filter(|kind| !same_kind(kind, value))
                .cloned()
                .collect();
            if route.required.contains(&field.as_str()) {
                replacements.push(Value::Null);
            }
            if value.is_array() {
                replacements.extend([json!([1]), json!([null]), json!([[]]), json!([{}])]);
            }
            if value.is_object() {
                replacements.extend([json!({"sku": 1}), json!({"sku": null}), json!({"sku": []})]);
            }
            for replacement in replacements {
                let mut body = valid.clone();
                body.insert(field.clone(), replacement);
                probes.push(shop.json(Class::WrongTypes, route, Value::Object(body).to_string()));
            }
        }
        for whole in ["[]", "[{}]", "\"text\"", "1", "null", "true"] {
            probes.push(shop.json(Class::WrongTypes, route, whole));
        }
    }
}

fn snake_case(name: &str) -> String {
    name.chars().fold(String::new(), |mut out, c| {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
        out
    })
}

fn unknown_fields(shop: &Shop, routes: &[JsonRoute], probes: &mut Vec<Probe>) {
    for route in routes {
        let valid = object(&route.valid);
        let mut extras: Vec<(String, Value)> = vec![
            ("extra".to_owned(), json!(1)),
            ("__proto__".to_owned(), json!({"admin": true})),
            (String::new(), json!(0)),
            ("createdAt".to_owned(), json!("2026-01-01T00:00:00Z")),
        ];
        if !valid.contains_key("merchantId") && route.path != "/api/chat/sessions" {
            extras.push(("merchantId".to_owned(), json!("other")));
        }
        if !valid.contains_key("id") {
            extras.push(("id".to_owned(), json!("doc_forged")));
        }
        for (field, value) in &valid {
            let mut upper = field.clone();
            upper[..1].make_ascii_uppercase();
            extras.push((upper, value.clone()));
            let snake = snake_case(field);
            if snake != *field {
                extras.push((snake, value.clone()));
            }
        }
        for (field, value) in extras {
            let mut body = valid.clone();
            body.insert(field, value);
            probes.push(shop.json(Class::UnknownFields, route, Value::Object(body).to_string()));
        }
        if let Some(mapping) = valid.get("fieldMapping") {
            let mut body = valid.clone();
            let mut mapping = object(mapping);
            mapping.insert("color".to_owned(), json!("colour"));
            body.insert("fieldMapping".to_owned(), Value::Object(mapping));
            probes.push(shop.json(Class::UnknownFields, route, Value::Object(body).to_string()));
        }
    }
}

/// Every string in `value` with NUL put at the start, the middle and the end, one at a time.
fn with_nul(value: &Value) -> Vec<Value> {
    match value {
        Value::String(s) => {
            let middle = s
                .char_indices()
                .nth(s.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            vec![
                Value::String(format!("\0{s}")),
                Value::String(format!("{}\0{}", &s[..middle], &s[middle..])),
                Value::String(format!("{s}\0")),
            ]
        }
        Value::Array(items) => (0..items.len())
            .flat_map(|i| with_nul(&items[i]).into_iter().map(move |bad| (i, bad)))
            .map(|(i, bad)| {
                let mut items = items.clone();
                items[i] = bad;
                Value::Array(items)
            })
            .collect(),
        Value::Object(fields) => fields
            .iter()
            .flat_map(|(k, v)| with_nul(v).into_iter().map(move |bad| (k.clone(), bad)))
            .map(|(k, bad)| {
                let mut fields = fields.clone();
                fields.insert(k, bad);
                Value::Object(fields)
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn nul(shop: &Shop, routes: &[JsonRoute], probes: &mut Vec<Probe>) {
    for route in routes {
        // serde_json writes U+0000 as the escape `\u0000`, as a client's JSON library would.
        for body in with_nul(&route.valid) {
            probes.push(shop.json(Class::Nul, route, body.to_string()));
        }
        let mut renamed = object(&route.valid);
        if let Some((first, _)) = renamed.iter().next().map(|(k, v)| (k.clone(), v.clone())) {
            let value = renamed.remove(&first).unwrap_or(Value::Null);
            renamed.insert(format!("{first}\0"), value);
            probes.push(shop.json(Class::Nul, route, Value::Object(renamed).to_string()));
        }
    }
    for (method, who, path) in table(NUL_PATHS, shop) {
        probes.push(shop.probe(Class::Nul, method, &path, who));
    }
}

/// `%00` and other control characters in ids and query parameters: method, sender, path.
const NUL_PATHS: &str = "
    GET    secret /api/documents/{document}%00
    GET    secret /api/documents/%00
    GET    secret /api/documents/%00{document}
    DELETE secret /api/documents/{document}%00
    GET    secret /api/documents/{document}%0A
    GET    secret /api/documents/{document}%1B
    GET    widget /api/sessions/{session}%00
    GET    widget /api/sessions/{session}%00/messages
    POST   widget /api/sessions/{session}%00/end
    GET    portal /api/merchants/bench/webhooks/{webhook}%00
    DELETE portal /api/merchants/bench/webhooks/{webhook}%00
    POST   portal /api/merchants/bench/webhooks/{webhook}%00/test
    GET    portal /api/merchants/bench/webhooks/{webhook}%00/deliveries
    DELETE portal /api/merchants/bench/api-keys/key%00
    GET    portal /api/merchants/bench%00/settings
    GET    portal /api/merchants/%00/settings
    GET    secret /api/documents?limit=%00
    GET    secret /api/documents?limit=5%00
    GET    secret /api/documents?cursor=%00
    GET    secret /api/products?cursor=%00
    GET    portal /api/merchants/bench/products?cursor=%00
    GET    portal /api/merchants/bench/sync/history?cursor=%00
    GET    secret /api/documents?cursor={time_cursor_with_nul}
    GET    secret /api/products?cursor={sku_cursor_with_nul}
";

/// The rows of a table of `METHOD sender path…` lines, the shop's ids filled in.
fn table(text: &str, shop: &Shop) -> Vec<(Method, Who, String)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let method = Method::from_bytes(words.next()?.as_bytes()).expect("a method");
            let who = match words.next()? {
                "secret" => Who::Secret,
                "widget" => Who::Widget,
                "portal" => Who::Portal,
                other => panic!("no sender {other:?}"),
            };
            let rest = words.collect::<Vec<_>>().join(" ");
            Some((method, who, shop.fill(&rest)))
        })
        .collect()
}

fn oversized(shop: &Shop, routes: &[JsonRoute], probes: &mut Vec<Probe>) {
    let documents = &routes[..2];
    for route in documents {
        let mut bodies = Vec::new();
        let mut body = object(&route.valid);
        body.insert("body".to_owned(), json!("x".repeat(1024 * 1024 + 1)));
        bodies.push(body);
        let mut body = object(&route.valid);
        body.insert("title".to_owned(), json!("t".repeat(201)));
        bodies.push(body);
        let mut body = object(&route.valid);
        body.insert(
            "tags".to_owned(),
            json!((0..21).map(|i| format!("tag{i}")).collect::<Vec<_>>()),
        );
        bodies.push(body);
        let mut body = object(&route.valid);
        body.insert("tags".to_owned(), json!(["g".repeat(51)]));
        bodies.push(body);
        for body in bodies {
            probes.push(shop.json(Class::Oversized, route, Value::Object(body).to_string()));
        }
    }
    let query = json!({"sessionId": shop.session, "query": "q".repeat(1001)});
    probes.push(shop.json(Class::Oversized, &routes[3], query.to_string()));
    let long_url = format!("https://hooks.bench-store.example/{}", "p".repeat(2100));
    let webhook = json!({"url": long_url, "events": ["sync.failed"]});
    probes.push(shop.json(Class::Oversized, &routes[6], webhook.to_string()));
    let described = json!({"url": "https://hooks.bench-store.example/x", "events": ["sync.failed"], "description": "d".repeat(501)});
    probes.push(shop.json(Class::Oversized, &routes[6], described.to_string()));
    probes.push(shop.json(
        Class::Oversized,
        &routes[7],
        json!({"description": "d".repeat(501)}).to_string(),
    ));
    let domain = json!({"allowedDomains": [format!("{}.com", "a".repeat(64))]});
    probes.push(shop.json(Class::Oversized, &routes[4], domain.to_string()));
    // Over `edge.max_body_bytes` (16 MiB): the edge answers 413.
    let huge = json!({"title": "Huge", "body": "x".repeat(16 * 1024 * 1024 + 1)}).to_string();
    for route in [&routes[0], &routes[4]] {
        let mut probe = shop.json(Class::Oversized, route, huge.clone());
        probe.expect = Expect::RefusedOrClosed;
        probes.push(probe);
    }
    // An upload over the 10 MB limit of catalog files.
    probes.push(upload_probe(
        shop,
        Class::Oversized,
        "catalog.csv",
        "text/csv",
        &catalog(120_000),
        "",
    ));
    // Headers: more than the backend's HTTP server takes (100), more than the edge's parser
    // takes (256), one header larger than the backend takes (400 KiB) and than the edge reads
    // (1 MiB).
    for count in [120, 300] {
        let mut many = shop.probe(Class::Oversized, Method::GET, "/api/documents", Who::Secret);
        for i in 0..count {
            many.headers.push((format!("X-Filler-{i}"), "f".repeat(20)));
        }
        if count > 256 {
            many.expect = Expect::Unparseable;
        }
        probes.push(many);
    }
    for kib in [600, 2048] {
        let mut big = shop.probe(Class::Oversized, Method::GET, "/api/documents", Who::Secret);
        big.headers
            .push(("X-Filler".to_owned(), "f".repeat(kib * 1024)));
        if kib > 1024 {
            big.expect = Expect::Unparseable;
        }
        probes.push(big);
    }
    // A path of 20,000 characters.
    probes.push(shop.probe(
        Class::Oversized,
        Method::GET,
        &format!("/api/documents/doc_{}", "x".repeat(20_000)),
        Who::Secret,
    ));
}

/// Routes with an id in the path: method, sender, the path with `{}` for the id, then the
/// other merchant's id of that kind (`-`: none) and the body sent (`-`: none).
const ID_ROUTES: &str = r#"
    GET    secret /api/documents/{} {other_document} -
    PUT    secret /api/documents/{} {other_document} {"title":"Returns","body":"Within 30 days."}
    DELETE secret /api/documents/{} {other_document} -
    GET    widget /api/sessions/{} {other_session} -
    GET    widget /api/sessions/{}/messages {other_session} -
    POST   widget /api/sessions/{}/end {other_session} -
    GET    portal /api/merchants/bench/webhooks/{} {other_webhook} -
    PUT    portal /api/merchants/bench/webhooks/{} {other_webhook} {"description":"orders"}
    DELETE portal /api/merchants/bench/webhooks/{} {other_webhook} -
    GET    portal /api/merchants/bench/webhooks/{}/deliveries {other_webhook} -
    POST   portal /api/merchants/bench/webhooks/{}/test {other_webhook} -
    POST   portal /api/merchants/bench/webhooks/{}/rotate-secret {other_webhook} -
    POST   portal /api/merchants/bench/webhooks/{webhook}/deliveries/{}/retry - -
    DELETE portal /api/merchants/bench/api-keys/{} - -
    GET    portal /api/merchants/{}/settings other -
    GET    portal /api/merchants/{}/webhooks other -
"#;

/// Ids no route of `bench` finds (as written in a URL).
const BAD_IDS: [&str; 13] = [
    "nope",
    "doc_",
    "..%2F..%2Fetc%2Fpasswd",
    "%C3%A9t%C3%A9",
    "%FF%FE",
    "a%20b",
    "*",
    "null",
    "-1",
    "%2525",
    "%3Cscript%3E",
    "'%20OR%201=1--",
    "{long}",
];

fn bad_ids(shop: &Shop, probes: &mut Vec<Probe>) {
    for (method, who, rest) in table(ID_ROUTES, shop) {
        let mut words = rest.splitn(3, ' ');
        let (pattern, foreign, body) = (
            words.next().unwrap_or(""),
            words.next().unwrap_or("-"),
            words.next().unwrap_or("-"),
        );
        let long = "x".repeat(2000);
        let mut ids: Vec<&str> = BAD_IDS
            .iter()
            .map(|id| if *id == "{long}" { long.as_str() } else { id })
            .collect();
        if foreign != "-" {
            ids.push(foreign);
        }
        for id in ids {
            let mut probe = shop.probe(
                Class::BadIds,
                method.clone(),
                &pattern.replace("{}", id),
                who,
            );
            if body != "-" {
                probe
                    .headers
                    .push(("Content-Type".to_owned(), "application/json".to_owned()));
                probe.body = body.as_bytes().to_vec();
            }
            probes.push(probe);
        }
    }
}

fn bad_paging(shop: &Shop, probes: &mut Vec<Probe>) {
    let lists: Vec<(String, Who, bool)> = vec![
        ("/api/documents".to_owned(), Who::Secret, true),
        ("/api/products".to_owned(), Who::Secret, false),
        (
            "/api/merchants/bench/products".to_owned(),
            Who::Portal,
            false,
        ),
        (
            "/api/merchants/bench/sync/history".to_owned(),
            Who::Portal,
            true,
        ),
        (
            format!("/api/merchants/bench/webhooks/{}/deliveries", shop.webhook),
            Who::Portal,
            true,
        ),
    ];
    let limits = [
        "0",
        "-1",
        "101",
        "1000000",
        "abc",
        "1.5",
        "99999999999999999999999",
        "%20",
        "0x10",
        "1e2",
        "5;6",
        "%E2%88%9E",
    ];
    for (path, who, by_time) in &lists {
        let other_kind = if *by_time {
            hex(b"s1\nSKU-1")
        } else {
            hex(b"v1\n2026-01-01T00:00:00Z\ndoc_1")
        };
        let cursors = [
            "zz".to_owned(),
            "abc".to_owned(),
            "00".to_owned(),
            "ff".to_owned(),
            hex(b"garbage"),
            hex(b"v1\nnot-a-time\ndoc_1"),
            hex(b"v1\n2026-01-01T00:00:00Z"),
            hex(b"v2\n2026-01-01T00:00:00Z\ndoc_1"),
            other_kind,
            "a".repeat(5000),
            "eyJhIjoxfQ==".to_owned(),
            "%F0%9F%92%A5".to_owned(),
        ];
        for limit in limits {
            probes.push(shop.probe(
                Class::BadPaging,
                Method::GET,
                &format!("{path}?limit={limit}"),
                *who,
            ));
        }
        for cursor in cursors {
            probes.push(shop.probe(
                Class::BadPaging,
                Method::GET,
                &format!("{path}?cursor={cursor}"),
                *who,
            ));
        }
    }
}

fn bad_methods(shop: &Shop, probes: &mut Vec<Probe>) {
    let mut table: BTreeMap<String, HashSet<Method>> = BTreeMap::new();
    for route in mindshop_backend::route_table() {
        table.entry(route.path).or_default().insert(route.method);
    }
    let candidates = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ];
    for (pattern, methods) in &table {
        let id = if pattern.starts_with("/api/sessions") {
            shop.session.as_str()
        } else {
            shop.document.as_str()
        };
        let path = pattern
            .replace("{merchant_id}", "bench")
            .replace("{webhook_id}", &shop.webhook)
            .replace("{key_id}", "key_nope")
            .replace("{delivery_id}", "dlv_nope")
            .replace("{id}", id);
        let who = if path.starts_with("/api/merchants") {
            Who::Portal
        } else if path.starts_with("/api") {
            Who::Secret
        } else {
            Who::Nobody
        };
        for method in candidates.iter().filter(|m| !methods.contains(*m)) {
            probes.push(shop.probe(Class::BadMethods, method.clone(), &path, who));
        }
    }
    for path in [
        "/api/documents",
        "/api/merchants/bench/settings",
        "/ready",
        "/api/chat",
    ] {
        let who = if path.starts_with("/api/merchants") {
            Who::Portal
        } else {
            Who::Secret
        };
        for method in ["TRACE", "PURGE", "BREW", "PROPFIND"] {
            let method = Method::from_bytes(method.as_bytes()).expect("a method");
            probes.push(shop.probe(Class::BadMethods, method, path, who));
        }
    }
}

fn bad_credentials(shop: &Shop, probes: &mut Vec<Probe>) {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = chrono::Utc::now().timestamp();
    let claims = |merchant: Option<&str>, exp: i64| {
        let mut claims = json!({"sub": "portal-user", "roles": [], "iat": now, "exp": exp});
        if let Some(merchant) = merchant {
            claims["merchantId"] = json!(merchant);
        }
        claims
    };
    let hs256 = jsonwebtoken::Algorithm::HS256;
    let valid = shop.portal_token(claims(Some("bench"), now + 3600), hs256, &shop.jwt_secret);
    let (header, rest) = valid.split_once('.').expect("a JWT");
    let (_, signature) = rest.split_once('.').expect("a JWT");
    let other_payload = engine.encode(claims(Some("other"), now + 3600).to_string());
    let admin_payload = engine
        .encode(json!({"sub": "x", "roles": ["admin"], "iat": now, "exp": now + 3600}).to_string());
    let none_header = engine.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let bench_payload = engine.encode(claims(Some("bench"), now + 3600).to_string());
    let tokens = vec![
        shop.portal_token(claims(Some("bench"), now - 3600), hs256, &shop.jwt_secret),
        shop.portal_token(
            {
                let mut c = claims(Some("bench"), now + 7200);
                c["nbf"] = json!(now + 3600);
                c
            },
            hs256,
            &shop.jwt_secret,
        ),
        shop.other_token.clone(),
        shop.portal_token(claims(None, now + 3600), hs256, &shop.jwt_secret),
        shop.portal_token(
            claims(Some("bench"), now + 3600),
            hs256,
            "not-the-secret-not-the-secret-000",
        ),
        shop.portal_token(
            claims(Some("bench"), now + 3600),
            jsonwebtoken::Algorithm::HS384,
            &shop.jwt_secret,
        ),
        format!("{none_header}.{bench_payload}."),
        format!("{header}.{other_payload}.{signature}"),
        format!("{header}.{admin_payload}.{signature}"),
        valid[..valid.len() - 4].to_owned(),
        "a.b.c".to_owned(),
        "not-a-jwt".to_owned(),
        format!("{header}.{bench_payload}"),
        shop.secret.clone(),
    ];
    let document = json!({"title": "Returns", "body": "Within 30 days."}).to_string();
    let session = json!({"userId": "shopper-1"}).to_string();
    let keyed: Vec<(Method, &str, Option<&str>)> = vec![
        (Method::GET, "/api/documents", None),
        (Method::POST, "/api/documents", Some(document.as_str())),
        (Method::GET, "/api/products", None),
        (Method::POST, "/api/chat/sessions", Some(session.as_str())),
    ];
    let flipped = {
        let mut key = shop.secret.clone();
        let last = key.pop().unwrap_or('a');
        key.push(if last == 'a' { 'b' } else { 'a' });
        key
    };
    let key_headers: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("X-API-Key", String::new())],
        vec![("X-API-Key", "garbage".to_owned())],
        vec![("X-API-Key", format!("sk_test_{}", "0".repeat(40)))],
        vec![("X-API-Key", format!("pk_live_{}", "0".repeat(40)))],
        vec![("X-API-Key", shop.revoked.clone())],
        vec![("X-API-Key", flipped)],
        vec![("X-API-Key", shop.token.clone())],
        vec![("X-API-Key", "k".repeat(5000))],
        vec![("Authorization", "Bearer".to_owned())],
        vec![("Authorization", "Bearer ".to_owned())],
        vec![(
            "Authorization",
            format!("Bearer sk_live_{}", "x".repeat(40)),
        )],
        vec![("Authorization", "Basic dXNlcjpwYXNz".to_owned())],
        vec![("Authorization", format!("Bearer {}", shop.token))],
        vec![
            ("X-Mindshop-Merchant", "bench".to_owned()),
            ("X-Mindshop-Permissions", "*".to_owned()),
            ("X-Mindshop-Principal", "key_forged".to_owned()),
            ("X-Mindshop-Timestamp", now.to_string()),
            ("X-Mindshop-Signature", "0".repeat(64)),
        ],
    ];
    for (method, path, body) in &keyed {
        for headers in &key_headers {
            let mut probe = shop.probe(Class::BadCredentials, method.clone(), path, Who::Nobody);
            probe
                .headers
                .extend(headers.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            if let Some(body) = body {
                probe
                    .headers
                    .push(("Content-Type".to_owned(), "application/json".to_owned()));
                probe.body = body.as_bytes().to_vec();
            }
            probes.push(probe);
        }
    }
    // Keys without the permission.
    for (who_key, method, path, body) in [
        (
            &shop.widget,
            Method::POST,
            "/api/documents".to_owned(),
            Some(&document),
        ),
        (
            &shop.reader,
            Method::POST,
            "/api/documents".to_owned(),
            Some(&document),
        ),
        (
            &shop.reader,
            Method::PUT,
            format!("/api/documents/{}", shop.document),
            Some(&document),
        ),
        (
            &shop.reader,
            Method::DELETE,
            format!("/api/documents/{}", shop.document),
            None,
        ),
        (
            &shop.widget,
            Method::DELETE,
            format!("/api/documents/{}", shop.document),
            None,
        ),
        (
            &shop.other_secret,
            Method::GET,
            "/api/merchants/bench/settings".to_owned(),
            None,
        ),
    ] {
        let mut probe = shop.probe(Class::BadCredentials, method, &path, Who::Nobody);
        probe
            .headers
            .push(("X-API-Key".to_owned(), who_key.clone()));
        if let Some(body) = body {
            probe
                .headers
                .push(("Content-Type".to_owned(), "application/json".to_owned()));
            probe.body = body.as_bytes().to_vec();
        }
        probes.push(probe);
    }
    let key_body = json!({"kind": "secret"}).to_string();
    let portal: Vec<(Method, &str, Option<&str>)> = vec![
        (Method::GET, "/api/merchants/bench/settings", None),
        (Method::GET, "/api/merchants/bench/webhooks", None),
        (
            Method::POST,
            "/api/merchants/bench/api-keys",
            Some(key_body.as_str()),
        ),
    ];
    for (method, path, body) in &portal {
        let mut variants: Vec<Option<String>> = vec![None];
        variants.extend(tokens.iter().map(|t| Some(format!("Bearer {t}"))));
        variants.push(Some(format!("Basic {}", shop.token)));
        variants.push(Some(format!("Bearer {} {}", shop.token, shop.token)));
        for authorization in variants {
            let mut probe = shop.probe(Class::BadCredentials, method.clone(), path, Who::Nobody);
            if let Some(authorization) = authorization {
                probe
                    .headers
                    .push(("Authorization".to_owned(), authorization));
            }
            if let Some(body) = body {
                probe
                    .headers
                    .push(("Content-Type".to_owned(), "application/json".to_owned()));
                probe.body = body.as_bytes().to_vec();
            }
            probes.push(probe);
        }
    }
    // Straight to the backend with a forged identity: it trusts only the edge's signature.
    for (method, path) in [
        (Method::GET, "/api/documents"),
        (Method::POST, "/api/documents"),
        (Method::GET, "/api/merchants/bench/settings"),
        (Method::GET, "/ready"),
    ] {
        let mut probe = shop.probe(Class::BadCredentials, method, path, Who::Nobody);
        probe.url = format!("{}{path}", shop.backend);
        probe.headers.extend(
            [
                ("X-Mindshop-Merchant", "bench".to_owned()),
                ("X-Mindshop-Permissions", "*".to_owned()),
                ("X-Mindshop-Principal", "key_forged".to_owned()),
                ("X-Mindshop-Roles", "admin".to_owned()),
                ("X-Mindshop-Timestamp", now.to_string()),
                ("X-Mindshop-Signature", "0".repeat(64)),
                ("X-Request-ID", "forged-1".to_owned()),
                ("Content-Type", "application/json".to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        probe.body = document.as_bytes().to_vec();
        probes.push(probe);
    }
}

fn bad_content_type(shop: &Shop, routes: &[JsonRoute], probes: &mut Vec<Probe>) {
    let types = [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("text/json"),
        Some("application/jsonx"),
        Some("json"),
        Some("application/octet-stream"),
    ];
    for route in routes {
        for content_type in types {
            let mut probe = shop.probe(
                Class::BadContentType,
                route.method.clone(),
                &route.path,
                route.who,
            );
            if let Some(content_type) = content_type {
                probe
                    .headers
                    .push(("Content-Type".to_owned(), content_type.to_owned()));
            }
            probe.body = route.valid.to_string().into_bytes();
            probes.push(probe);
        }
    }
}

const BOUNDARY: &str = "mindshop-faults-boundary";

fn multipart(field: &str, file_name: &str, content_type: &str, content: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn upload_probe(
    shop: &Shop,
    class: Class,
    file_name: &str,
    content_type: &str,
    content: &[u8],
    query: &str,
) -> Probe {
    let mut probe = shop.probe(
        class,
        Method::POST,
        &format!("/api/merchants/bench/sync/upload{query}"),
        Who::Portal,
    );
    probe.headers.push((
        "Content-Type".to_owned(),
        format!("multipart/form-data; boundary={BOUNDARY}"),
    ));
    probe.body = multipart("file", file_name, content_type, content);
    probe
}

fn bad_uploads(shop: &Shop, probes: &mut Vec<Probe>) {
    let good = b"sku,title,price\nB1,Bench lamp,10\n";
    let header = "sku,title,description,price,imageUrl,category,inStock\n";
    let bad_rows: Vec<String> = vec![
        "B1,Lamp,,-1,,,".to_owned(),
        "B1,Lamp,,abc,,,".to_owned(),
        "B1,Lamp,,NaN,,,".to_owned(),
        ",Lamp,,1,,,".to_owned(),
        "B1,,,1,,,".to_owned(),
        format!("{},Lamp,,1,,,", "s".repeat(129)),
        format!("B1,{},,1,,,", "t".repeat(501)),
        "B1,La\0mp,,1,,,".to_owned(),
        "B1,Lamp,,1,javascript:alert(1),,".to_owned(),
        "B1,Lamp,,1,,,maybe".to_owned(),
        "B1,\"unterminated,,1,,,".to_owned(),
    ];
    for row in &bad_rows {
        let mut probe = upload_probe(
            shop,
            Class::BadUploads,
            "catalog.csv",
            "text/csv",
            format!("{header}{row}\n").as_bytes(),
            "",
        );
        probe.expect = Expect::NothingImported;
        probes.push(probe);
    }
    let all_bad = format!("{header}{}\n", bad_rows.join("\n"));
    for query in [
        "?dryRun=maybe",
        "?mode=bogus",
        "?mode=replace",
        "?dryRun=true&mode=replace",
    ] {
        let mut probe = upload_probe(
            shop,
            Class::BadUploads,
            "catalog.csv",
            "text/csv",
            all_bad.as_bytes(),
            query,
        );
        probe.expect = Expect::NothingImported;
        probes.push(probe);
    }
    let mut readable_but_empty: Vec<(&str, &str, Vec<u8>)> = vec![
        ("catalog.csv", "text/csv", b"sku,title\n".to_vec()),
        (
            "catalog.csv",
            "text/csv",
            b"sku,title\n\xff\xfe\xfd,\xc3\x28\n".to_vec(),
        ),
        (
            "catalog.csv",
            "text/csv",
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xff".to_vec(),
        ),
        ("catalog.json", "application/json", b"[1, 2, 3]".to_vec()),
        ("catalog.json", "application/json", b"{\"a\": 1}".to_vec()),
        (
            "catalog.json",
            "application/json",
            b"[{\"sku\": 1, \"title\": []}]".to_vec(),
        ),
        (
            "../../etc/passwd.csv",
            "text/csv",
            all_bad.clone().into_bytes(),
        ),
    ];
    for (name, content_type, content) in readable_but_empty.drain(..) {
        let mut probe = upload_probe(shop, Class::BadUploads, name, content_type, &content, "");
        probe.expect = Expect::NothingImported;
        probes.push(probe);
    }
    // Refused as a whole.
    for (name, content_type, content) in [
        ("catalog.csv", "text/csv", b"".to_vec()),
        ("catalog.csv", "text/csv", b"name,price\nLamp,1\n".to_vec()),
        ("catalog.json", "application/json", b"[{".to_vec()),
        (
            "catalog.exe",
            "application/octet-stream",
            b"MZ\x90\x00".to_vec(),
        ),
        ("catalog.txt", "text/plain", good.to_vec()),
        ("catalog", "application/octet-stream", good.to_vec()),
    ] {
        probes.push(upload_probe(
            shop,
            Class::BadUploads,
            name,
            content_type,
            &content,
            "",
        ));
    }
    let upload_path = "/api/merchants/bench/sync/upload";
    let raw = |content_type: Option<String>, body: Vec<u8>| {
        let mut probe = shop.probe(Class::BadUploads, Method::POST, upload_path, Who::Portal);
        if let Some(content_type) = content_type {
            probe
                .headers
                .push(("Content-Type".to_owned(), content_type));
        }
        probe.body = body;
        probe
    };
    let multipart_type = Some(format!("multipart/form-data; boundary={BOUNDARY}"));
    probes.push(raw(None, good.to_vec()));
    probes.push(raw(Some("text/csv".to_owned()), good.to_vec()));
    probes.push(raw(
        Some("application/json".to_owned()),
        br#"{"file": "sku,title\nB1,Lamp"}"#.to_vec(),
    ));
    probes.push(raw(
        Some("multipart/form-data".to_owned()),
        multipart("file", "catalog.csv", "text/csv", good),
    ));
    probes.push(raw(
        Some("multipart/form-data; boundary=another".to_owned()),
        multipart("file", "catalog.csv", "text/csv", good),
    ));
    probes.push(raw(
        multipart_type.clone(),
        multipart("upload", "catalog.csv", "text/csv", good),
    ));
    let mut truncated = multipart("file", "catalog.csv", "text/csv", good);
    truncated.truncate(truncated.len() - BOUNDARY.len() - 8);
    probes.push(raw(multipart_type.clone(), truncated));
    probes.push(raw(multipart_type.clone(), Vec::new()));
    probes.push(raw(
        multipart_type.clone(),
        b"garbage that is not multipart".to_vec(),
    ));
    probes.push(raw(
        multipart_type.clone(),
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n")
            .into_bytes(),
    ));
    probes.push(raw(
        multipart_type,
        format!("--{BOUNDARY}--\r\n").into_bytes(),
    ));
}

fn probes(shop: &Shop) -> Vec<Probe> {
    let routes = json_routes(shop);
    let mut probes = Vec::new();
    malformed_json(shop, &routes, &mut probes);
    wrong_types(shop, &routes, &mut probes);
    unknown_fields(shop, &routes, &mut probes);
    nul(shop, &routes, &mut probes);
    oversized(shop, &routes, &mut probes);
    bad_ids(shop, &mut probes);
    bad_paging(shop, &mut probes);
    bad_methods(shop, &mut probes);
    bad_credentials(shop, &mut probes);
    bad_content_type(shop, &routes, &mut probes);
    bad_uploads(shop, &mut probes);
    probes
}

/// What came back for one probe.
struct Answer {
    status: Option<u16>,
    /// A 4xx with our envelope: JSON, `success: false`, an `error` sentence, an upper-case
    /// `code`, a `timestamp`, and a `requestId` equal to the `X-Request-ID` header.
    envelope: bool,
    body: Value,
    excerpt: String,
}

async fn send_probe(client: &reqwest::Client, probe: &Probe) -> Answer {
    let mut request = client.request(probe.method.clone(), &probe.url);
    for (name, value) in &probe.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if !probe.body.is_empty() {
        request = request.body(probe.body.clone());
    }
    match request.send().await {
        Err(error) => Answer {
            status: None,
            envelope: false,
            body: Value::Null,
            excerpt: chain(&error),
        },
        Ok(reply) => {
            let status = reply.status().as_u16();
            let request_id = reply
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let json_type = reply
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            let bytes = reply.bytes().await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let code_ok = body["code"].as_str().is_some_and(|c| {
                !c.is_empty() && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
            });
            let envelope = json_type
                && body["success"] == false
                && body["error"].as_str().is_some_and(|e| !e.is_empty())
                && code_ok
                && body["timestamp"].is_string()
                && request_id.is_some()
                && body["requestId"].as_str() == request_id.as_deref();
            Answer {
                status: Some(status),
                envelope,
                body,
                excerpt: String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
            }
        }
    }
}

/// Whether `answer` is what `expect` asks.
fn as_expected(expect: Expect, answer: &Answer) -> bool {
    let refused = answer.status.is_some_and(|s| (400..500).contains(&s)) && answer.envelope;
    match expect {
        Expect::Refused => refused,
        Expect::RefusedOrClosed => refused || answer.status.is_none(),
        Expect::Unparseable => answer.status == Some(400) || answer.status.is_none(),
        Expect::NothingImported => {
            let report = &answer.body["data"];
            refused
                || (answer.status == Some(200)
                    && report["productsCreated"] == 0
                    && report["productsUpdated"] == 0
                    && report["productsDeleted"] == 0
                    && report["productsFailed"] == report["productsProcessed"])
        }
    }
}

/// What a refused request could have changed, as the API shows it (only `data`).
async fn shop_state(client: &reqwest::Client, shop: &Shop) -> Vec<Value> {
    let mut state = Vec::new();
    let reads: Vec<(String, Vec<(String, String)>)> = vec![
        (
            "/api/documents?limit=100".to_owned(),
            shop.credential(Who::Secret),
        ),
        (
            "/api/merchants/bench/products?limit=100".to_owned(),
            shop.credential(Who::Portal),
        ),
        (
            "/api/merchants/bench/settings".to_owned(),
            shop.credential(Who::Portal),
        ),
        (
            "/api/merchants/bench/api-keys".to_owned(),
            shop.credential(Who::Portal),
        ),
        (
            "/api/merchants/bench/webhooks".to_owned(),
            shop.credential(Who::Portal),
        ),
        (
            "/api/merchants/bench/sync/configure".to_owned(),
            shop.credential(Who::Portal),
        ),
        (
            format!("/api/sessions/{}", shop.session),
            shop.credential(Who::Widget),
        ),
        (
            format!("/api/sessions/{}/messages", shop.session),
            shop.credential(Who::Widget),
        ),
        (
            "/api/documents?limit=100".to_owned(),
            vec![("X-API-Key".to_owned(), shop.other_secret.clone())],
        ),
        (
            format!("/api/sessions/{}", shop.other_session),
            vec![("X-API-Key".to_owned(), shop.other_secret.clone())],
        ),
    ];
    for (path, headers) in reads {
        let mut request = client.get(format!("{}{path}", shop.edge));
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let (status, body) = send_json(request).await.unwrap_or((0, Value::Null));
        state.push(json!({"path": path, "status": status, "data": body["data"]}));
    }
    state
}

/// Sets up merchant `bench` and `other` with one of each thing on `serve`.
async fn open_shop(dir: &Path, url: &str) -> (Served, Shop) {
    let jwt_secret = "faults-bench-jwt-secret-0123456789abcdef0123456789".to_owned();
    let env = with(
        unlimited(),
        &[("MINDSHOP_AUTH_JWT_SECRET", jwt_secret.as_str())],
    );
    let prepared = prepare(dir, url, &env);
    let admin_env = prepared.env().to_vec();
    admin_json(
        dir,
        &[
            "admin",
            "merchant",
            "create",
            "--id",
            "other",
            "--name",
            "Other",
            "--domain",
            "other-store.example",
        ],
        &admin_env,
    );
    let (secret, _) = api_key(dir, &admin_env, "bench", "secret", &["*"]);
    let (widget, _) = api_key(dir, &admin_env, "bench", "publishable", &[]);
    let (reader, _) = api_key(dir, &admin_env, "bench", "secret", &["documents:read"]);
    let (revoked, revoked_id) = api_key(dir, &admin_env, "bench", "secret", &["*"]);
    admin_json(
        dir,
        &["admin", "key", "revoke", "--id", &revoked_id],
        &admin_env,
    );
    let (other_secret, _) = api_key(dir, &admin_env, "other", "secret", &["*"]);
    let other_token =
        admin_json(dir, &["admin", "token", "--merchant", "other"], &admin_env)["token"]
            .as_str()
            .expect("a token")
            .to_owned();
    let (served, _) = start_logged(dir, prepared, "serve.log").await;
    let backend = admin_env
        .iter()
        .find(|(k, _)| *k == "MINDSHOP_BACKEND_LISTEN")
        .map(|(_, v)| format!("http://{v}"))
        .expect("a backend address");
    let edge = format!("http://{}", served.edge);
    let client = reqwest::Client::new();
    let create = |path: &str, key: &str, bearer: bool, body: Value| {
        let path = path.to_owned();
        let mut request = client.post(format!("{edge}{path}")).json(&body);
        request = if bearer {
            request.bearer_auth(key)
        } else {
            request.header("X-API-Key", key)
        };
        async move {
            let (status, body) = send_json(request).await.expect("an answer");
            assert!(status < 300, "{path}: {status} {body}");
            body["data"]["id"]
                .as_str()
                .or(body["data"]["sessionId"].as_str())
                .expect("an id")
                .to_owned()
        }
    };
    let document = json!({"title": "Shipping", "body": "Within 3 days.", "tags": ["faq"]});
    let webhook =
        json!({"url": "https://hooks.bench-store.example/orders", "events": ["sync.failed"]});
    let session = json!({"userId": "shopper-1"});
    let shop = Shop {
        document: create("/api/documents", &secret, false, document.clone()).await,
        other_document: create("/api/documents", &other_secret, false, document).await,
        session: create("/api/chat/sessions", &widget, false, session.clone()).await,
        other_session: create("/api/chat/sessions", &other_secret, false, session).await,
        webhook: create(
            "/api/merchants/bench/webhooks",
            &served.token,
            true,
            webhook.clone(),
        )
        .await,
        other_webhook: create("/api/merchants/other/webhooks", &other_token, true, webhook).await,
        edge,
        backend,
        secret,
        widget,
        reader,
        revoked,
        other_secret,
        token: served.token.clone(),
        other_token,
        jwt_secret,
    };
    (served, shop)
}

/// Per class: requests, 4xx, 5xx, other answers, 4xx with our envelope, as expected.
type ClassCounts = BTreeMap<Class, [usize; 6]>;

async fn bad_input(database: &'static str, url: &str) -> (Row, ClassCounts) {
    let dir = tempfile::tempdir().expect("a work directory");
    let (served, shop) = open_shop(dir.path(), url).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a client");
    let before = shop_state(&client, &shop).await;
    let probes = probes(&shop);
    eprintln!("bad-input ({database}): {} requests…", probes.len());
    let began = Instant::now();
    // Uploads one at a time: a merchant has one sync run at a time, and two bad uploads at
    // once would answer each other 409 SYNC_IN_PROGRESS.
    let is_upload = |probe: &Probe| probe.url.contains("/sync/upload");
    let mut answers: Vec<(usize, Answer)> =
        futures_util::stream::iter(probes.iter().enumerate().filter(|(_, p)| !is_upload(p)))
            .map(|(i, probe)| {
                let client = client.clone();
                async move { (i, send_probe(&client, probe).await) }
            })
            .buffer_unordered(8)
            .collect()
            .await;
    for (i, probe) in probes.iter().enumerate().filter(|(_, p)| is_upload(p)) {
        answers.push((i, send_probe(&client, probe).await));
    }
    let took = began.elapsed();
    let after = shop_state(&client, &shop).await;
    let ready = send_json(client.get(format!("{}/ready", shop.edge)))
        .await
        .map(|(status, _)| status)
        .unwrap_or(0);

    let mut counts = ClassCounts::new();
    let mut unexpected = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (i, answer) in &answers {
        let probe = &probes[*i];
        let row = counts.entry(probe.class).or_default();
        row[0] += 1;
        match answer.status {
            Some(s) if (400..500).contains(&s) => row[1] += 1,
            Some(s) if s >= 500 => row[2] += 1,
            _ => row[3] += 1,
        }
        if let Some(status) = answer.status {
            *statuses.entry(status).or_default() += 1;
        }
        if answer.status.is_some_and(|s| (400..500).contains(&s)) && answer.envelope {
            row[4] += 1;
        }
        if as_expected(probe.expect, answer) {
            row[5] += 1;
        } else {
            let url: String = probe.url.chars().take(160).collect();
            unexpected.push(format!(
                "[{}] {} {url} ({} headers, {} header bytes, {} body bytes) → {:?}: {}",
                probe.class.label(),
                probe.method,
                probe.headers.len(),
                probe
                    .headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>(),
                probe.body.len(),
                answer.status,
                answer.excerpt
            ));
        }
    }
    for line in unexpected.iter().take(40) {
        eprintln!("bad-input ({database}) unexpected: {line}");
    }
    let log_lines = print_log_problems(&format!("bad-input ({database})"), dir.path());
    let total: [usize; 6] = counts.values().fold([0; 6], |mut sum, row| {
        for (s, v) in sum.iter_mut().zip(row) {
            *s += v;
        }
        sum
    });
    let unchanged = before == after;
    if !unchanged {
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                eprintln!("bad-input ({database}) changed: {b}\n    → {a}");
            }
        }
    }
    let figures = format!(
        "{} requests in {} classes ({:.1} s, 8 at a time, uploads one by one): {} 4xx ({} with our envelope), {} 5xx, \
         {} other (200 upload reports with every row refused, or no answer); statuses: {}; \
         {} not as expected; state read through the API {}; /ready {ready} after; \
         {log_lines} WARN/ERROR log lines",
        total[0],
        counts.len(),
        took.as_secs_f64(),
        total[1],
        total[4],
        total[2],
        total[3],
        tally(&statuses),
        unexpected.len(),
        if unchanged { "unchanged" } else { "CHANGED" },
    );
    let held = if total[2] == 0 && unexpected.is_empty() && unchanged && ready == 200 {
        Held::Yes
    } else {
        Held::No(format!(
            "{} 5xx, {} not as expected, state {}",
            total[2],
            unexpected.len(),
            if unchanged { "unchanged" } else { "changed" }
        ))
    };
    drop(served);
    (
        Row {
            scenario: "bad-input",
            database,
            figures,
            held,
        },
        counts,
    )
}

// ---------------------------------------------------------------------------------------------
// 6. Load held

struct Load {
    requests: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    socket_errors: String,
    tool: &'static str,
}

/// `5.12ms`, `830.00us`, `1.20s` in milliseconds.
fn wrk_ms(value: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (value, 1.0)
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn run_wrk(url: &str, key: &str, connections: usize, secs: u64) -> Load {
    let output = Command::new("wrk")
        .args([
            "-t2".to_owned(),
            format!("-c{connections}"),
            format!("-d{secs}s"),
            "--latency".to_owned(),
        ])
        .args(["-H", &format!("X-API-Key: {key}"), url])
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    eprintln!("{text}");
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
    };
    let requests = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.trim().parse().ok())
        })
        .flatten()
        .unwrap_or(0);
    Load {
        requests,
        per_second: find("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50_ms: find("50%").and_then(|v| wrk_ms(&v)).unwrap_or(f64::NAN),
        p99_ms: find("99%").and_then(|v| wrk_ms(&v)).unwrap_or(f64::NAN),
        non_2xx: find("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        socket_errors: find("Socket errors:").unwrap_or_else(|| "none".to_owned()),
        tool: "wrk",
    }
}

/// The same closed loop without wrk: `connections` reqwest tasks.
async fn run_loop(url: &str, key: &str, connections: usize, secs: u64) -> Load {
    let until = Instant::now() + Duration::from_secs(secs);
    let began = Instant::now();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("a client");
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, key) = (client.clone(), url.to_owned(), key.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let (mut bad, mut errors) = (0u64, 0u64);
                while Instant::now() < until {
                    let sent = Instant::now();
                    match client.get(&url).header("X-API-Key", &key).send().await {
                        Ok(reply) => {
                            if !reply.status().is_success() {
                                bad += 1;
                            }
                            let _ = reply.bytes().await;
                        }
                        Err(_) => errors += 1,
                    }
                    latencies.push(sent.elapsed());
                }
                (latencies, bad, errors)
            })
        })
        .collect();
    let (mut latencies, mut bad, mut errors) = (Vec::new(), 0, 0);
    for task in tasks {
        let (l, b, e) = task.await.expect("a load task");
        latencies.extend(l);
        bad += b;
        errors += e;
    }
    let took = began.elapsed();
    latencies.sort();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    Load {
        requests: latencies.len() as u64,
        per_second: latencies.len() as f64 / took.as_secs_f64(),
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        non_2xx: bad,
        socket_errors: format!("{errors} failed requests"),
        tool: "reqwest loop",
    }
}

async fn load(database: &'static str, url: &str, secs: u64) -> Row {
    const CONNECTIONS: usize = 64;
    let dir = tempfile::tempdir().expect("a work directory");
    let prepared = prepare(dir.path(), url, &unlimited());
    let (key, _) = api_key(
        dir.path(),
        prepared.env(),
        "bench",
        "secret",
        &["documents:*"],
    );
    let (served, _) = start_logged(dir.path(), prepared, "serve.log").await;
    let client = reqwest::Client::new();
    for i in 0..5 {
        let (status, _) = send_json(
            client
                .post(format!("http://{}/api/documents", served.edge))
                .header("X-API-Key", &key)
                .json(&json!({"title": format!("Doc {i}"), "body": "Some text to list."})),
        )
        .await
        .expect("a document");
        assert_eq!(status, 201);
    }
    let url = format!("http://{}/api/documents?limit=5", served.edge);
    let rss_before = rss_kib(served.pid()).unwrap_or(0);
    eprintln!("load ({database}): {CONNECTIONS} connections for {secs} s on GET /api/documents…");
    let result = if on_path("wrk") {
        let (url, key) = (url.clone(), key.clone());
        tokio::task::spawn_blocking(move || run_wrk(&url, &key, CONNECTIONS, secs))
            .await
            .expect("wrk")
    } else {
        run_loop(&url, &key, CONNECTIONS, secs).await
    };
    let rss_after = rss_kib(served.pid()).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kib(served.pid()).unwrap_or(0);
    let log_lines = print_log_problems(&format!("load ({database})"), dir.path());
    // wrk stops with requests in flight; Pingora logs each as `Fail to proxy: Downstream …`.
    let (_, lines) = log_problems(dir.path(), usize::MAX);
    let client_gone = lines
        .iter()
        .filter(|l| l.contains("Fail to proxy: Downstream"))
        .count();
    let figures = format!(
        "{} ({CONNECTIONS} connections, {secs} s, GET /api/documents?limit=5 with a key): {} \
         requests, {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, non-2xx {}, socket errors: \
         {}; RSS {:.1} MiB before → {:.1} MiB after ({:.1} MiB 2 s later); {log_lines} \
         WARN/ERROR log lines, {client_gone} of them Pingora's `Fail to proxy: Downstream …` \
         for the requests in flight when the load generator stopped",
        result.tool,
        result.requests,
        result.per_second,
        result.p50_ms,
        result.p99_ms,
        result.non_2xx,
        result.socket_errors,
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        rss_idle as f64 / 1024.0,
    );
    let held = if result.non_2xx == 0 && result.requests > 0 {
        Held::Yes
    } else {
        Held::No(format!("{} non-2xx answers", result.non_2xx))
    };
    Row {
        scenario: "load",
        database,
        figures,
        held,
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Slow clients: a request head trickling in on each of many connections

/// Longest a trickling connection is kept by this bench before it counts as never closed.
const TRICKLE_GIVE_UP: Duration = Duration::from_secs(60);

/// A connection from 127.0.0.2 that sends a request head one header line every `gap`;
/// how long until the edge closed it, or `None` if it never did.
async fn trickle(edge: SocketAddr, gap: Duration) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket
        .bind("127.0.0.2:0".parse().expect("an address"))
        .ok()?;
    let Ok(mut stream) = socket.connect(edge).await else {
        return Some(started.elapsed());
    };
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .is_err()
    {
        return Some(started.elapsed());
    }
    let mut line = 0;
    while started.elapsed() < TRICKLE_GIVE_UP {
        let mut buf = [0u8; 64];
        tokio::select! {
            read = stream.read(&mut buf) => {
                if !matches!(read, Ok(n) if n > 0) {
                    return Some(started.elapsed());
                }
            }
            () = tokio::time::sleep(gap) => {
                line += 1;
                if stream.write_all(format!("X-Slow-{line}: 1\r\n").as_bytes()).await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
    None
}

async fn slow_clients(url: &str, tricklers: usize) -> Row {
    // This process holds every trickling socket too.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let dir = tempfile::tempdir().expect("a work directory");
    let prepared = prepare(dir.path(), url, &unlimited());
    let (served, _) = start_logged(dir.path(), prepared, "serve.log").await;
    let edge = served.edge;
    let rss_before = rss_kib(served.pid()).unwrap_or(0);
    eprintln!("slow-clients: {tricklers} trickling connections from 127.0.0.2…");
    let trickling: Vec<_> = (0..tricklers)
        .map(|_| tokio::spawn(trickle(edge, Duration::from_secs(2))))
        .collect();
    // Another client, on 127.0.0.1, asks on a fresh connection every 20 ms meanwhile.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = tokio::spawn({
        let done = done.clone();
        async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .local_address(std::net::IpAddr::from([127, 0, 0, 1]))
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client");
            let (mut latencies, mut failures) = (Vec::new(), 0usize);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                match client.get(format!("http://{edge}/health")).send().await {
                    Ok(reply) if reply.status() == 200 => latencies.push(started.elapsed()),
                    _ => failures += 1,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (latencies, failures)
        }
    });
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(rss_before));
    let sampler = tokio::spawn({
        let (peak, done, pid) = (peak.clone(), done.clone(), served.pid());
        async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(rss) = rss_kib(pid) {
                    peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let mut closed = Vec::new();
    let mut never = 0;
    for task in trickling {
        match task.await.expect("a trickler") {
            Some(took) => closed.push(took),
            None => never += 1,
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut latencies, failures) = other.await.expect("the other client");
    sampler.await.expect("the sampler");
    latencies.sort();
    closed.sort();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    let refused = metric_series(&served, "mindshop_edge_connections_refused_total").await;
    let timeouts = metric_series(&served, "mindshop_edge_client_timeouts_total").await;
    let series = |all: &[(String, f64)], label: &str| {
        all.iter()
            .find(|(labels, _)| labels.contains(label))
            .map_or(0.0, |(_, v)| *v)
    };
    let at_once = closed
        .iter()
        .filter(|d| **d < Duration::from_secs(1))
        .count();
    let longest = closed.last().map_or(0.0, Duration::as_secs_f64);
    let p99 = quantile(0.99);
    let figures = format!(
        "{tricklers} connections from 127.0.0.2, a header line every 2 s: {at_once} closed within \
         1 s, the rest at most {longest:.2} s after connecting, {never} never closed; refused \
         per_ip {}, total {}; header timeouts {}; the client on 127.0.0.1: {} answers, p50 \
         {:.1} ms, p99 {p99:.1} ms, max {:.1} ms, {failures} failed; edge RSS {:.1} MiB before, \
         peak {:.1} MiB",
        series(&refused, "per_ip"),
        series(&refused, "total"),
        series(&timeouts, "header"),
        latencies.len(),
        quantile(0.5),
        latencies
            .last()
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        rss_before as f64 / 1024.0,
        peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0,
    );
    let held = if never == 0 && failures == 0 && p99 < 100.0 && longest < 15.0 {
        Held::Yes
    } else {
        Held::No(format!(
            "{never} never closed, {failures} failed answers, p99 {p99:.1} ms, longest {longest:.1} s"
        ))
    };
    Row {
        scenario: "slow-clients",
        database: "SQLite",
        figures,
        held,
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    mindshop_backend::install_crypto_provider();
    // `cargo bench` passes `--bench`; anything else not starting with `-` names a scenario.
    let selected: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for name in &selected {
        assert!(
            SCENARIOS.contains(&name.as_str()),
            "unknown scenario {name:?}; the scenarios are {SCENARIOS:?}"
        );
    }
    let wants = |name: &str| selected.is_empty() || selected.iter().any(|s| s == name);
    let write_secs = setting("BENCH_FAULTS_WRITE_SECS", 12);
    let restarts = setting("BENCH_FAULTS_RESTARTS", 3) as u32;
    let load_secs = setting("BENCH_FAULTS_LOAD_SECS", 20);
    let events = setting("BENCH_FAULTS_EVENTS", 2000) as usize;
    let rows = setting("BENCH_FAULTS_ROWS", 100_000) as usize;
    let began = Instant::now();

    let needs_postgres = [
        "postgres-restart",
        "kill-upload",
        "kill-webhooks",
        "bad-input",
        "load",
    ]
    .iter()
    .any(|s| wants(s));
    let postgres = if needs_postgres {
        PrivatePostgres::start()
    } else {
        Err("not needed".to_owned())
    };
    let pg_version = postgres.as_ref().map(|pg| pg.version()).unwrap_or_default();
    if let Err(why) = &postgres {
        eprintln!("PostgreSQL rows skipped: {why}");
    }
    let sqlite_dir = tempfile::tempdir().expect("a directory");
    let sqlite = |name: &str| format!("sqlite://{}/{name}.db", sqlite_dir.path().display());

    let mut table = Vec::new();
    let mut classes = Vec::new();
    if wants("postgres-restart") {
        table.push(match &postgres {
            Ok(pg) => postgres_restart(pg, write_secs, restarts).await,
            Err(why) => Row::skipped("postgres-restart", "PostgreSQL", why),
        });
    }
    if wants("redis-outage") {
        table.push(redis_outage().await);
    }
    if wants("kill-upload") {
        table.push(kill_upload("SQLite", &sqlite("upload"), rows).await);
        table.push(match &postgres {
            Ok(pg) => kill_upload("PostgreSQL", &pg.database("faults_upload").await, rows).await,
            Err(why) => Row::skipped("kill-upload", "PostgreSQL", why),
        });
    }
    if wants("kill-webhooks") {
        table.push(kill_webhooks("SQLite", &sqlite("webhooks"), events).await);
        table.push(match &postgres {
            Ok(pg) => {
                kill_webhooks("PostgreSQL", &pg.database("faults_webhooks").await, events).await
            }
            Err(why) => Row::skipped("kill-webhooks", "PostgreSQL", why),
        });
    }
    if wants("bad-input") {
        let (row, counts) = bad_input("SQLite", &sqlite("input")).await;
        table.push(row);
        classes.push(("SQLite", counts));
        match &postgres {
            Ok(pg) => {
                let (row, counts) =
                    bad_input("PostgreSQL", &pg.database("faults_input").await).await;
                table.push(row);
                classes.push(("PostgreSQL", counts));
            }
            Err(why) => table.push(Row::skipped("bad-input", "PostgreSQL", why)),
        }
    }
    if wants("load") {
        table.push(load("SQLite", &sqlite("load"), load_secs).await);
        table.push(match &postgres {
            Ok(pg) => load("PostgreSQL", &pg.database("faults_load").await, load_secs).await,
            Err(why) => Row::skipped("load", "PostgreSQL", why),
        });
    }
    drop(postgres);
    if wants("slow-clients") {
        table.push(
            slow_clients(
                &sqlite("slow"),
                setting("BENCH_FAULTS_TRICKLERS", 2000) as usize,
            )
            .await,
        );
    }

    println!();
    println!(
        "release build, {} cores, loopback; PostgreSQL: {}; {:.0} s in all",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if pg_version.is_empty() {
            "none"
        } else {
            &pg_version
        },
        began.elapsed().as_secs_f64()
    );
    println!();
    println!("| scenario | database | figures | promise held |");
    println!("|---|---|---|---|");
    for row in &table {
        let held = match &row.held {
            Held::Yes => "yes".to_owned(),
            Held::No(why) => format!("**no**: {why}"),
            Held::Skipped(why) => format!("skipped: {why}"),
        };
        println!(
            "| {} | {} | {} | {held} |",
            row.scenario, row.database, row.figures
        );
    }
    for (database, counts) in &classes {
        println!();
        println!("bad input, {database}:");
        println!();
        println!("| class | requests | 4xx | 5xx | other | 4xx with our envelope | as expected |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (class, [n, c4, c5, other, envelope, expected]) in counts {
            println!(
                "| {} | {n} | {c4} | {c5} | {other} | {envelope} | {expected} |",
                class.label()
            );
        }
    }
}
