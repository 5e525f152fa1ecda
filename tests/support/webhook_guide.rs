//! The examples of the webhook guide (`docs/WEBHOOK_INTEGRATION.md`), run as a merchant would
//! run them, so the tests check the code the guide shows and not a copy of it.
//!
//! - [`NodeReceiver`]: the guide's Node.js receiver (`verify-webhook.js`), written out of the
//!   guide into a temporary directory and started with `node` on a port of its choosing.
//! - [`verify`] / [`VerifyError`]: the guide's Rust example, compiled into the tests from
//!   `webhook_guide_example.rs`, a file the tests require to be identical to the guide's block.
//! - [`guide_block`] / [`guide_blocks`] / [`guide_payload`]: code blocks of the guide, by title
//!   or by language, and its example payload of an event type.

#[path = "webhook_guide_example.rs"]
mod guide_rust;

// Only the test files that verify deliveries use these; the others compile the harness too.
#[allow(unused_imports)]
pub use guide_rust::{VerifyError, verify};

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// The guide, as the tests were compiled with it.
const GUIDE: &str = include_str!("../../docs/WEBHOOK_INTEGRATION.md");
/// Longest the receiver may take to listen after it is started.
const START_DEADLINE: Duration = Duration::from_secs(15);
/// Longest [`NodeReceiver::logged`] waits for lines.
const LOG_DEADLINE: Duration = Duration::from_secs(15);
/// How often the printed lines are looked at.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// What the receiver prints to stderr once it listens, before its port.
const LISTENING: &str = "listening on http://127.0.0.1:";

/// The guide's Node.js example, started on a free loopback port with `secret`; killed on drop.
pub struct NodeReceiver {
    /// Declared first so it is dropped (killed, `kill_on_drop`) before its directory goes.
    _child: Child,
    port: u16,
    /// The lines the receiver printed to stdout, in order: one JSON object per request.
    stdout: Arc<Mutex<Vec<String>>>,
    /// What it printed to stderr, for failure messages.
    stderr: Arc<Mutex<String>>,
    /// Holds `verify-webhook.js`.
    _dir: TempDir,
}

impl NodeReceiver {
    /// Writes the guide's `verify-webhook.js` to a temporary directory and runs it with `node`,
    /// `WEBHOOK_SECRET=secret` and `PORT=0`: the system picks a free port, which the receiver
    /// reports on stderr once it listens. Panics if `node` is missing or the receiver does not
    /// listen within 15 seconds.
    pub async fn start(secret: &str) -> NodeReceiver {
        let node = node_binary();
        let dir = tempfile::Builder::new()
            .prefix("mindshop-webhook-guide-")
            .tempdir()
            .expect("create a temporary directory");
        std::fs::write(
            dir.path().join("verify-webhook.js"),
            guide_block("verify-webhook.js"),
        )
        .expect("write verify-webhook.js");
        let mut child = Command::new(&node)
            .arg("verify-webhook.js")
            .current_dir(dir.path())
            .env("WEBHOOK_SECRET", secret)
            .env("PORT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", node.display()));

        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped stdout");
        let sink = Arc::clone(&stdout);
        tokio::spawn(each_line(out, move |line| lock(&sink).push(line)));

        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        let (listening, port) = oneshot::channel();
        let mut listening = Some(listening);
        tokio::spawn(each_line(err, move |line| {
            if let Some(port) = line
                .strip_prefix(LISTENING)
                .and_then(|p| p.parse::<u16>().ok())
                && let Some(listening) = listening.take()
            {
                let _ = listening.send(port);
            }
            let mut text = lock(&sink);
            text.push_str(&line);
            text.push('\n');
        }));

        // The sender goes when stderr closes: the receiver exited without listening.
        let port: u16 = match tokio::time::timeout(START_DEADLINE, port).await {
            Ok(Ok(port)) => port,
            Ok(Err(_)) => panic!(
                "the guide's verify-webhook.js exited before listening; stderr:\n{}",
                lock(&stderr)
            ),
            Err(_) => panic!(
                "the guide's verify-webhook.js did not listen within {START_DEADLINE:?}; \
                 stderr:\n{}",
                lock(&stderr)
            ),
        };
        NodeReceiver {
            _child: child,
            port,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// Where to send deliveries: `http://127.0.0.1:<port>/webhooks`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/webhooks", self.port)
    }

    /// The JSON lines the receiver printed (one per request, oldest first), once there are at
    /// least `at_least` of them, or all there are after 15 seconds. Panics on a line that is
    /// not JSON: the guide promises JSON lines.
    pub async fn logged(&self, at_least: usize) -> Vec<Value> {
        let deadline = Instant::now() + LOG_DEADLINE;
        loop {
            let lines = lock(&self.stdout).clone();
            if lines.len() >= at_least || Instant::now() >= deadline {
                return lines
                    .iter()
                    .map(|line| {
                        serde_json::from_str(line).unwrap_or_else(|e| {
                            panic!(
                                "verify-webhook.js printed a line that is not JSON ({e}): \
                                 {line}\nstderr:\n{}",
                                lock(&self.stderr)
                            )
                        })
                    })
                    .collect();
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// The code block of the guide whose info string has `title="<title>"`, e.g.
/// `verify-webhook.js`: its lines, each ending in a newline. Panics unless exactly one block
/// has that title.
pub fn guide_block(title: &str) -> String {
    let wanted = format!("title=\"{title}\"");
    let mut found: Vec<String> = blocks()
        .into_iter()
        .filter(|(info, _)| info.split_whitespace().any(|word| word == wanted))
        .map(|(_, code)| code)
        .collect();
    match found.len() {
        1 => found.remove(0),
        n => panic!("docs/WEBHOOK_INTEGRATION.md has {n} code blocks titled {title:?}, not 1"),
    }
}

/// Every code block of the guide in `language` (the first word of its info string), in order.
pub fn guide_blocks(language: &str) -> Vec<String> {
    blocks()
        .into_iter()
        .filter(|(info, _)| info.split_whitespace().next() == Some(language))
        .map(|(_, code)| code)
        .collect()
}

/// The guide's example payload of `event_type` (its `json` block whose `event` is that type),
/// to compare a real delivery's shape with.
pub fn guide_payload(event_type: &str) -> Value {
    let mut found: Vec<Value> = guide_blocks("json")
        .iter()
        .filter_map(|block| serde_json::from_str::<Value>(block).ok())
        .filter(|payload| payload["event"] == event_type)
        .collect();
    match found.len() {
        1 => found.remove(0),
        n => panic!("docs/WEBHOOK_INTEGRATION.md has {n} example payloads of {event_type}, not 1"),
    }
}

/// The guide's fenced code blocks: (info string, code). The guide fences with three
/// backticks at the start of a line and never nests fences.
fn blocks() -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in GUIDE.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(rest)) if rest.trim().is_empty() => blocks.extend(open.take()),
            (Some((_, code)), _) => {
                code.push_str(line);
                code.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(
        open.is_none(),
        "the guide has a code block that is not closed"
    );
    blocks
}

/// `node` on `PATH`, else `/usr/bin/node`.
fn node_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("node"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from("/usr/bin/node")).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "the webhook guide's Node.js example needs `node` (Node.js 18 or later) on PATH \
                 or at /usr/bin/node; install Node.js (e.g. `apt-get install nodejs`)"
            )
        })
}

/// Calls `each` with every line `stream` yields, until it ends.
async fn each_line(stream: impl AsyncRead + Unpin, mut each: impl FnMut(String)) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        each(line);
    }
}

/// A poisoned lock only means another test thread panicked; the lines are still good.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
