//! Harness of the end-to-end tests: the real `mindshop` binary as a child process.
//!
//! Every process runs in a [`Workdir`] of its own (a temporary directory that is also its
//! working directory, so `./data/mindshop.db` and `./data/jwt_secret` belong to one test) and
//! is configured only through environment variables set on its `Command`: the test process's
//! own environment is never changed, and inherited `MINDSHOP_*` and `RUST_LOG` variables are
//! removed so a developer's shell cannot change the results.
//!
//! # Layout
//! - [`Workdir`]: the temporary directory and one-shot commands (`admin …`, `config check`).
//! - [`Launch`] / [`Server`]: `serve`, `edge` or `backend` on fresh loopback ports, ready when
//!   it answers; killed on drop, or stopped with SIGTERM by [`Server::terminate`].
//! - [`Reply`] and the envelope checks: what a client sees.
//! - [`upstream`]: a small HTTP upstream that records what the edge forwards to it.
//! - [`pipeline`]: merchants, keys and tokens through `mindshop admin`, a second edge beside a
//!   `serve`, `/metrics` counters, rate-limit windows.
//! - [`postgres`]: a PostgreSQL database of a test's own.
//! - [`relay`]: a TCP relay in front of Redis that a test can stop and start.
//! - [`webhook_guide`]: the verification examples of docs/WEBHOOK_INTEGRATION.md, runnable.

// Each test file uses a different part of the harness.
#![allow(dead_code)]

pub mod pipeline;
pub mod postgres;
pub mod relay;
pub mod upstream;
pub mod webhook_guide;

use std::collections::HashSet;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::Value;
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mindshop");

/// A valid `internal.secret` (at least 32 bytes) for `edge` and `backend` run apart.
pub const SECRET: &str = "e2e-internal-secret-0123456789abcdef";
/// Another valid secret, for a backend that must not trust the edge.
pub const OTHER_SECRET: &str = "e2e-other-secret-fedcba9876543210xyz";

/// Longest a server may take to answer after it is started (a cold start on a busy CI machine
/// with two cores is the slow case).
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Longest a server may take to exit after SIGTERM (grace period plus runtime shutdown).
const STOP_DEADLINE: Duration = Duration::from_secs(20);
/// Longest a one-shot command (`admin …`, `config check`) may run.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);
/// Starts per server: the ports are picked before the child binds them, so another process may
/// take one in between; the child then exits and is started again on new ports.
const START_ATTEMPTS: usize = 3;
/// How often a condition is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A loopback address whose port was free a moment ago. Pingora cannot report the port it
/// bound, so the port is chosen here: bind port 0, read it, release it. A port is never
/// handed out twice by one test binary, so parallel tests cannot pick the same one.
pub fn free_addr() -> SocketAddr {
    static HANDED_OUT: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(Default::default);
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local address of a bound listener");
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(addr.port()) {
            return addr;
        }
    }
}

/// An HTTP client for the tests: no proxy from the environment, a bound on every request so a
/// hang fails the test instead of stalling it.
pub fn client() -> reqwest::Client {
    mindshop_backend::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("build the HTTP client")
}

/// A temporary directory that is the working directory of every process a test runs in it.
pub struct Workdir {
    dir: TempDir,
    /// Numbers the log files of the processes started here.
    runs: AtomicUsize,
}

impl Default for Workdir {
    fn default() -> Self {
        Self::new()
    }
}

impl Workdir {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mindshop-e2e-")
            .tempdir()
            .expect("create a temporary directory");
        Self {
            dir,
            runs: AtomicUsize::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh file name in the directory for a process's output.
    fn log_path(&self, what: &str) -> PathBuf {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        self.path().join(format!("{what}-{n}.log"))
    }

    /// `mindshop <args>` in this directory, with only the environment the test gives it.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(self.path())
            .stdin(Stdio::null());
        for (name, _) in std::env::vars_os() {
            let inherited = name
                .to_str()
                .is_some_and(|n| n.starts_with("MINDSHOP_") || n == "RUST_LOG");
            if inherited {
                command.env_remove(&name);
            }
        }
        // Plain log lines, readable when a failing test prints them.
        command.env("RUST_LOG", "info").env("NO_COLOR", "1");
        command
    }

    /// Runs a one-shot command to its end (within a deadline) and returns what it printed.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let stdout_path = self.log_path("stdout");
        let stderr_path = self.log_path("stderr");
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        // Files, not pipes: a chatty command can never block on a full pipe.
        command
            .stdout(File::create(&stdout_path).expect("create the stdout file"))
            .stderr(File::create(&stderr_path).expect("create the stderr file"));
        let mut child = command.spawn().expect("start mindshop");
        let deadline = Instant::now() + COMMAND_DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for mindshop") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`mindshop {}` did not finish within {COMMAND_DEADLINE:?}; stderr:\n{}",
                    args.join(" "),
                    read_lossy(&stderr_path)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        Output {
            args: args.join(" "),
            status,
            stdout: read_lossy(&stdout_path),
            stderr: read_lossy(&stderr_path),
        }
    }

    /// `mindshop admin <args>`.
    pub fn admin(&self, args: &[&str]) -> Output {
        let mut full = vec!["admin"];
        full.extend_from_slice(args);
        self.run(&full, &[])
    }
}

/// Whether process `pid` has a handler for SIGTERM, from the `SigCgt` mask in
/// `/proc/<pid>/status`. Where that file cannot be read, assume it has.
fn catches_sigterm(pid: u32) -> bool {
    const SIGTERM: u32 = 15;
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (SIGTERM - 1)) != 0)
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// What a one-shot command did.
#[derive(Debug)]
pub struct Output {
    /// The arguments, for failure messages.
    pub args: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts the command succeeded and returns its stdout as JSON.
    pub fn json(&self) -> Value {
        assert!(
            self.status.success(),
            "`mindshop {}` failed with {}; stderr:\n{}",
            self.args,
            self.status,
            self.stderr
        );
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`mindshop {}` printed no JSON ({e}):\n{}",
                self.args, self.stdout
            )
        })
    }

    /// Asserts the command failed, saying something that contains `needle`; returns stderr.
    pub fn fails_with(&self, needle: &str) -> &str {
        assert!(
            !self.status.success(),
            "`mindshop {}` should fail but succeeded; stdout:\n{}",
            self.args,
            self.stdout
        );
        assert!(
            self.stderr.contains(needle),
            "`mindshop {}` should mention {needle:?}; stderr:\n{}",
            self.args,
            self.stderr
        );
        &self.stderr
    }
}

/// Which long-running command to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Edge,
    Backend,
}

impl Mode {
    fn command(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Edge => "edge",
            Self::Backend => "backend",
        }
    }

    /// Whether the process runs the edge (and so its `/health` and metrics listener).
    fn has_edge(self) -> bool {
        matches!(self, Self::Serve | Self::Edge)
    }
}

/// How to start a server: the command and the environment beyond the listen addresses.
#[derive(Debug, Clone)]
pub struct Launch {
    mode: Mode,
    env: Vec<(String, String)>,
}

impl Launch {
    /// `mindshop serve`, with a short shutdown grace period.
    pub fn serve() -> Self {
        Self {
            mode: Mode::Serve,
            env: vec![("MINDSHOP_EDGE_SHUTDOWN_GRACE_SECS".into(), "1".into())],
        }
    }

    /// `mindshop edge` in front of `backends`, signing with `secret`.
    pub fn edge(secret: &str, backends: &[SocketAddr]) -> Self {
        let backends = backends
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",");
        Self {
            mode: Mode::Edge,
            env: Vec::new(),
        }
        .env("MINDSHOP_EDGE_SHUTDOWN_GRACE_SECS", "1")
        .env("MINDSHOP_INTERNAL_SECRET", secret)
        .env("MINDSHOP_EDGE_BACKENDS", &backends)
    }

    /// `mindshop backend`, trusting edges that sign with `secret`.
    pub fn backend(secret: &str) -> Self {
        Self {
            mode: Mode::Backend,
            env: Vec::new(),
        }
        .env("MINDSHOP_INTERNAL_SECRET", secret)
    }

    /// Sets (or replaces) an environment variable of the child.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the server in a new [`Workdir`] and waits until it answers.
    pub async fn start(self) -> Server {
        self.start_in(Workdir::new()).await
    }

    /// Starts the server in `workdir` and waits until it answers: `/health` on the edge and a
    /// connection to the metrics listener, or any HTTP answer from the backend alone.
    pub async fn start_in(self, workdir: Workdir) -> Server {
        let mut workdir = Some(workdir);
        let mut last_log = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let ports = Ports {
                edge: free_addr(),
                metrics: free_addr(),
                backend: free_addr(),
            };
            let dir = workdir
                .take()
                .expect("the working directory is handed back on failure");
            let log = dir.log_path(self.mode.command());
            let child = self.spawn(&dir, &ports, &[], &log);
            let mut server = Server {
                launch: self.clone(),
                mode: self.mode,
                edge: ports.edge,
                metrics: ports.metrics,
                backend: ports.backend,
                child,
                log,
                exited: None,
                workdir: Some(dir),
            };
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(status) => {
                    last_log = server.log();
                    eprintln!(
                        "mindshop {} exited during start-up ({status}), attempt {attempt} of \
                         {START_ATTEMPTS}; log:\n{last_log}",
                        self.mode.command()
                    );
                    workdir = server.workdir.take();
                    server.kill();
                }
            }
        }
        panic!(
            "mindshop {} never started; last log:\n{last_log}",
            self.mode.command()
        );
    }
}

struct Ports {
    edge: SocketAddr,
    metrics: SocketAddr,
    backend: SocketAddr,
}

impl Launch {
    /// `mindshop <mode> <extra…>` in `dir` on `ports` with this launch's environment, its
    /// output to `log`.
    fn spawn(&self, dir: &Workdir, ports: &Ports, extra: &[&str], log: &Path) -> Child {
        let mut args = vec![self.mode.command()];
        args.extend_from_slice(extra);
        let mut command = dir.command(&args);
        command
            .env("MINDSHOP_EDGE_LISTEN", ports.edge.to_string())
            .env("MINDSHOP_EDGE_METRICS_LISTEN", ports.metrics.to_string())
            .env("MINDSHOP_BACKEND_METRICS_LISTEN", ports.metrics.to_string())
            .env("MINDSHOP_BACKEND_LISTEN", ports.backend.to_string())
            .envs(self.env.iter().map(|(n, v)| (n, v)));
        let file = File::create(log).expect("create the server log");
        command
            .stdout(file.try_clone().expect("clone the log file handle"))
            .stderr(file);
        command.spawn().expect("start mindshop")
    }
}

/// A running `serve`, `edge` or `backend`. Killed (SIGKILL) on drop unless the test stopped it;
/// when the test is failing, its log is printed then.
pub struct Server {
    /// How it was started, to start its successor (`--upgrade`) alike.
    launch: Launch,
    mode: Mode,
    /// The edge's public listener (`edge.listen`).
    pub edge: SocketAddr,
    /// The Prometheus listener (`edge.metrics_listen`; `backend.metrics_listen` of a backend
    /// run apart).
    pub metrics: SocketAddr,
    /// The backend's listener (`backend.listen`).
    pub backend: SocketAddr,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
    /// Always `Some` while the server is in a test's hands.
    workdir: Option<Workdir>,
}

impl Server {
    /// `http://<edge><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.edge)
    }

    /// `http://<backend><path>`: the backend's port, bypassing the edge.
    pub fn backend_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.backend)
    }

    /// `http://<metrics>/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics)
    }

    pub fn workdir(&self) -> &Workdir {
        self.workdir
            .as_ref()
            .expect("a started server has its working directory")
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// Sends SIGTERM, without waiting for the exit.
    ///
    /// A server answers requests a moment before its signal handlers are installed, and a
    /// SIGTERM in that moment would kill it outright; so this first waits until the process
    /// catches SIGTERM.
    pub async fn send_sigterm(&self) {
        let deadline = Instant::now() + START_DEADLINE;
        while !catches_sigterm(self.child.id()) {
            assert!(
                Instant::now() < deadline,
                "mindshop {} never installed a SIGTERM handler; log:\n{}",
                self.mode.command(),
                self.log()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
    }

    /// Waits for the process to exit, failing the test (with the log) after the deadline.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "mindshop {} did not exit within {STOP_DEADLINE:?}; log:\n{}",
                self.mode.command(),
                self.log()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.send_sigterm().await;
        self.wait_exit().await
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("wait for mindshop");
        }
        self.exited
    }

    /// Polls until the server answers; `Err` with the exit status if it exits first.
    async fn wait_ready(&mut self) -> Result<(), ExitStatus> {
        let client = client();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.try_wait() {
                return Err(status);
            }
            if self.answers(&client).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "mindshop {} did not answer within {START_DEADLINE:?}; log:\n{}",
                    self.mode.command(),
                    self.log()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn answers(&self, client: &reqwest::Client) -> bool {
        if !self.mode.has_edge() {
            // The port accepts connections before the database is open; any HTTP answer (401
            // for this unsigned request) means the application serves.
            return client
                .get(self.backend_url("/ready"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok();
        }
        let health = client
            .get(self.url("/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        matches!(health, Ok(r) if r.status() == 200)
            && tokio::net::TcpStream::connect(self.metrics).await.is_ok()
    }

    /// `mindshop <mode> --upgrade` with this server's ports, environment and working
    /// directory: the successor takes the listening sockets over, then this process finishes
    /// its requests and exits (wait for it with [`Server::wait_exit`]). Returns once the
    /// successor holds the sockets (it has written its pid to `data/mindshop.pid`).
    pub async fn upgrade(&mut self) -> Server {
        let dir = self
            .workdir
            .take()
            .expect("a started server has its working directory");
        let log = dir.log_path(&format!("{}-upgrade", self.mode.command()));
        let ports = Ports {
            edge: self.edge,
            metrics: self.metrics,
            backend: self.backend,
        };
        let pid_file = dir.path().join("data/mindshop.pid");
        let child = self.launch.spawn(&dir, &ports, &["--upgrade"], &log);
        let pid = child.id().to_string();
        let mut successor = Server {
            launch: self.launch.clone(),
            mode: self.mode,
            edge: self.edge,
            metrics: self.metrics,
            backend: self.backend,
            child,
            log,
            exited: None,
            workdir: Some(dir),
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let written = std::fs::read_to_string(&pid_file).unwrap_or_default();
            if written.trim() == pid {
                return successor;
            }
            if let Some(status) = successor.try_wait() {
                panic!(
                    "mindshop {} --upgrade exited ({status}); log:\n{}",
                    self.mode.command(),
                    successor.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "mindshop {} --upgrade never took over; log:\n{}",
                self.mode.command(),
                successor.log()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash would: nothing is flushed or drained. Returns the working directory
    /// (database included) to start again in.
    pub fn kill_hard(mut self) -> Workdir {
        self.kill();
        self.workdir
            .take()
            .expect("a started server has its working directory")
    }

    fn kill(&mut self) {
        if self.try_wait().is_none() {
            // Child::kill sends SIGKILL to this child's pid only.
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- log of mindshop {} (edge {}, metrics {}, backend {}) ----\n{}",
                self.mode.command(),
                self.edge,
                self.metrics,
                self.backend,
                self.log()
            );
        }
    }
}

/// An HTTP answer as a client sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Sends the request and reads the whole answer.
    pub async fn of(request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("send the request");
        Self::read(response).await
    }

    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("read the response body");
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `X-Request-ID` header; fails the test when it is missing.
    pub fn request_id(&self) -> &str {
        self.header("x-request-id")
            .unwrap_or_else(|| panic!("no x-request-id header in {self:?}"))
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {self:?}"))
    }

    /// Checks a success envelope with `status` and returns its `data`.
    pub fn success(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        let json = self.envelope();
        assert_eq!(json["success"], true, "{self:?}");
        assert!(json.get("data").is_some(), "no data in {self:?}");
        json["data"].clone()
    }

    /// Checks a failure envelope with `status` and `code` and returns the whole envelope.
    pub fn failure(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        let json = self.envelope();
        assert_eq!(json["success"], false, "{self:?}");
        assert_eq!(json["code"], code, "{self:?}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "no human error sentence in {self:?}");
        json
    }

    /// The shared parts of both envelopes: a JSON body, an RFC 3339 `timestamp` and a
    /// `requestId` equal to the `X-Request-ID` header.
    fn envelope(&self) -> Value {
        let json = self.json();
        let timestamp = json["timestamp"].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "timestamp {timestamp:?} is not RFC 3339: {self:?}"
        );
        assert_eq!(
            json["requestId"].as_str(),
            Some(self.request_id()),
            "requestId and the x-request-id header differ: {self:?}"
        );
        json
    }
}

/// Whether `id` looks like an id the server generated (a UUID).
pub fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}
