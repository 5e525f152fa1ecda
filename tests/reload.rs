//! Configuration that changes while the edge runs, and upgrades without dropping a request:
//! the real binary with a `mindshop.toml` in its working directory and a client loop running
//! throughout. A reload (`mindshop reload`, or SIGHUP) switches a route group off, changes a
//! limit, puts the widget routes on the allowlist, or is refused for a broken file; an upgrade
//! (`--upgrade`) hands the listening sockets to a new process. The loop must see no connection
//! error and no answer it did not expect, in `serve` and in `edge` run apart.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::pipeline::{counter, create_key, create_merchant, portal_token, scrape};
use support::{Launch, Reply, SECRET, Server, Workdir, client};
use tokio::task::JoinSet;

/// Budgets no loop comes near, so every answer the loop gets is the route's own.
const ROOMY: &str = "[limits]
documents = 1000000
widget_per_ip = 1000000
portal = 1000000
";

const RELOADS: &str = "mindshop_config_reloads_total";
const DISABLED: &str = "mindshop_route_disabled_total";

/// A merchant `acme` (domain `acme.com`), a secret key and a portal token, in `workdir`.
struct Tenant {
    key: String,
    token: String,
}

fn tenant(workdir: &Workdir) -> Tenant {
    create_merchant(workdir, "acme", &["acme.com"]);
    Tenant {
        key: create_key(workdir, "acme", "secret", &[]).key,
        token: portal_token(workdir, "acme", &[]),
    }
}

fn write_config(workdir: &Workdir, text: &str) {
    std::fs::write(workdir.path().join("mindshop.toml"), text).expect("write mindshop.toml");
}

/// `mindshop reload` in the server's working directory; its JSON verdict.
fn reload(server: &Server, env: &[(&str, &str)]) -> support::Output {
    server.workdir().run(&["reload"], env)
}

/// What the loop asks for, and which statuses are the route's own answers.
#[derive(Clone)]
struct Target {
    name: &'static str,
    path: &'static str,
    credential: Credential,
    allowed: &'static [u16],
}

#[derive(Clone)]
enum Credential {
    None,
    Key(String),
    Token(String),
}

/// Requests sent in a loop by a few workers until stopped: every status by target, and every
/// connection error or unexpected status.
struct ClientLoop {
    stop: Arc<AtomicBool>,
    workers: JoinSet<Tally>,
}

#[derive(Debug, Default)]
struct Tally {
    statuses: BTreeMap<(&'static str, u16), u64>,
    failures: Vec<String>,
}

impl Tally {
    fn sent(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.failures.len() as u64
    }
}

impl ClientLoop {
    fn start(base: String, targets: Vec<Target>, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = JoinSet::new();
        for worker in 0..workers {
            let (stop, base, targets) = (stop.clone(), base.clone(), targets.clone());
            set.spawn(async move {
                let client = client();
                let mut tally = Tally::default();
                let mut turn = worker;
                while !stop.load(Ordering::Relaxed) {
                    let target = &targets[turn % targets.len()];
                    turn += 1;
                    let mut request = client.get(format!("{base}{}", target.path));
                    request = match &target.credential {
                        Credential::None => request,
                        Credential::Key(key) => request.header("X-API-Key", key),
                        Credential::Token(token) => request.bearer_auth(token),
                    };
                    match request.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            // Read the whole answer, as a client does before reusing the connection.
                            let _ = response.bytes().await;
                            if !target.allowed.contains(&status) {
                                tally
                                    .failures
                                    .push(format!("{} answered {status}", target.name));
                            }
                            *tally.statuses.entry((target.name, status)).or_default() += 1;
                        }
                        Err(error) => tally.failures.push(format!("{}: {error:?}", target.name)),
                    }
                }
                tally
            });
        }
        Self { stop, workers: set }
    }

    async fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Tally::default();
        while let Some(tally) = self.workers.join_next().await {
            let tally = tally.expect("a loop worker");
            for (key, count) in tally.statuses {
                *total.statuses.entry(key).or_default() += count;
            }
            total.failures.extend(tally.failures);
        }
        total
    }
}

/// The loop's targets: documents by key, the widget script, sync status by portal token (200,
/// or 503 while sync is switched off).
fn targets(tenant: &Tenant) -> Vec<Target> {
    vec![
        Target {
            name: "documents",
            path: "/api/documents",
            credential: Credential::Key(tenant.key.clone()),
            allowed: &[200],
        },
        Target {
            name: "widget",
            path: "/v1/widget.js",
            credential: Credential::None,
            allowed: &[200],
        },
        Target {
            name: "sync",
            path: "/api/merchants/acme/sync/history",
            credential: Credential::Token(tenant.token.clone()),
            allowed: &[200, 503],
        },
    ]
}

async fn sync_history(server: &Server, tenant: &Tenant) -> Reply {
    Reply::of(
        client()
            .get(server.url("/api/merchants/acme/sync/history"))
            .bearer_auth(&tenant.token),
    )
    .await
}

async fn documents(server: &Server, tenant: &Tenant, origin: Option<&str>) -> Reply {
    let mut request = client()
        .get(server.url("/api/documents"))
        .header("X-API-Key", &tenant.key);
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    Reply::of(request).await
}

/// Switches sync off and changes the documents limit by reload, with the loop running; then
/// a broken file, which changes nothing. `env` is what `mindshop reload` needs beyond the file.
async fn reload_under_load(server: &Server, tenant: &Tenant, env: &[(&str, &str)]) {
    let workdir = server.workdir();
    sync_history(server, tenant).await.success(200);
    let before = documents(server, tenant, None).await;
    assert_eq!(before.header("x-ratelimit-limit"), Some("1000000"));

    let running = ClientLoop::start(server.url(""), targets(tenant), 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    write_config(
        workdir,
        &format!("{ROOMY}\n[routes.sync]\nenabled = false\nretry_after_secs = 120\n")
            .replace("documents = 1000000", "documents = 900000"),
    );
    let reloaded_at = Instant::now();
    let verdict = reload(server, env).json();
    assert_eq!(verdict["applied"], true, "{verdict}");
    assert!(
        verdict["changed"]
            .as_array()
            .is_some_and(|c| c.iter().any(|k| k == "routes.sync.enabled")),
        "{verdict}"
    );

    // Within a second of the reload, sync is refused at the edge and the others are served.
    let disabled = sync_history(server, tenant).await;
    assert!(reloaded_at.elapsed() < Duration::from_secs(1) + verdict_slack());
    let failure = disabled.failure(503, "ROUTE_DISABLED");
    assert_eq!(failure["routeGroup"], "sync", "{failure}");
    assert_eq!(disabled.header("retry-after"), Some("120"));
    let after = documents(server, tenant, None).await;
    after.success(200);
    assert_eq!(after.header("x-ratelimit-limit"), Some("900000"));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A broken file: refused, counted, and the configuration in use keeps serving.
    write_config(workdir, "[limits]\ndocuments = 0\n");
    reload(server, env).fails_with("limits.documents");
    kill_hup(server);
    reloads_reach(server, 2).await;
    let metrics = scrape(server).await;
    assert!(
        counter(&metrics, RELOADS, &[("result", "failure")]) >= 1,
        "{metrics}"
    );
    assert_eq!(counter(&metrics, RELOADS, &[("result", "success")]), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    sync_history(server, tenant)
        .await
        .failure(503, "ROUTE_DISABLED");
    let unchanged = documents(server, tenant, None).await;
    assert_eq!(unchanged.header("x-ratelimit-limit"), Some("900000"));

    let tally = running.finish().await;
    assert!(tally.failures.is_empty(), "{:?}", tally.failures);
    assert!(
        tally.statuses.get(&("sync", 503)).copied().unwrap_or(0) > 0
            && tally.statuses.get(&("sync", 200)).copied().unwrap_or(0) > 0,
        "the loop saw sync before and after: {:?}",
        tally.statuses
    );
    eprintln!(
        "reload under load: {} requests, {:?}",
        tally.sent(),
        tally.statuses
    );
    let metrics = scrape(server).await;
    assert!(counter(&metrics, DISABLED, &[("route_group", "sync")]) > 0);
    assert!(
        server
            .log()
            .contains("limits.documents: must be greater than 0")
    );
}

/// `mindshop reload` waits for the process's verdict, so the answer is there; only the
/// request itself takes time on a loaded machine.
fn verdict_slack() -> Duration {
    Duration::from_millis(500)
}

/// SIGHUP straight to the process, as `kill -HUP` would.
fn kill_hup(server: &Server) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Waits until the process has counted `n` reloads of either result.
async fn reloads_reach(server: &Server, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = scrape(server).await;
        if counter(&metrics, RELOADS, &[]) >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Upgrades `server` to a new process with the loop running: nothing failed, the old process
/// exits 0, the new one serves.
async fn upgrade_under_load(server: &mut Server, tenant: &Tenant) -> Server {
    let running = ClientLoop::start(server.url(""), targets(tenant), 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut successor = server.upgrade().await;
    let status = server.wait_exit().await;
    assert!(status.success(), "the old process exited with {status}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tally = running.finish().await;
    assert!(tally.failures.is_empty(), "{:?}", tally.failures);
    eprintln!(
        "upgrade under load: {} requests, {:?}",
        tally.sent(),
        tally.statuses
    );
    assert!(tally.sent() > 20, "{:?}", tally.statuses);
    documents(&successor, tenant, None).await.success(200);
    assert!(successor.try_wait().is_none());
    successor
}

#[tokio::test]
async fn serve_reloads_switches_and_limits_and_upgrades_without_a_failed_request() {
    let workdir = Workdir::new();
    write_config(&workdir, ROOMY);
    let tenant = tenant(&workdir);
    let mut server = Launch::serve().start_in(workdir).await;
    reload_under_load(&server, &tenant, &[]).await;

    // The successor reads the file afresh: sync is on again.
    write_config(server.workdir(), ROOMY);
    let mut successor = upgrade_under_load(&mut server, &tenant).await;
    sync_history(&successor, &tenant).await.success(200);
    // And it reloads like its predecessor.
    write_config(
        successor.workdir(),
        &format!("{ROOMY}\n[routes.documents]\nenabled = false\n"),
    );
    assert_eq!(reload(&successor, &[]).json()["applied"], true);
    documents(&successor, &tenant, None)
        .await
        .failure(503, "ROUTE_DISABLED");
    successor.terminate().await;
}

#[tokio::test]
async fn an_edge_run_apart_reloads_and_upgrades_without_a_failed_request() {
    let serve_dir = Workdir::new();
    write_config(&serve_dir, ROOMY);
    let tenant = tenant(&serve_dir);
    let serve = Launch::serve()
        .env("MINDSHOP_INTERNAL_SECRET", SECRET)
        .start_in(serve_dir)
        .await;
    // The edge's own file, pid file and upgrade socket, in its own working directory.
    let edge_dir = Workdir::new();
    write_config(&edge_dir, ROOMY);
    let own = [
        ("MINDSHOP_EDGE_PID_FILE", "data/mindshop.pid"),
        ("MINDSHOP_EDGE_UPGRADE_SOCKET", "data/upgrade.sock"),
    ];
    let mut launch = support::pipeline::edge_beside(&serve);
    for (name, value) in own {
        launch = launch.env(name, value);
    }
    let mut edge = launch.start_in(edge_dir).await;
    reload_under_load(&edge, &tenant, &own).await;

    write_config(edge.workdir(), ROOMY);
    let mut successor = upgrade_under_load(&mut edge, &tenant).await;
    sync_history(&successor, &tenant).await.success(200);
    successor.terminate().await;
}

#[tokio::test]
async fn allowlist_mode_admits_only_the_listed_origins_on_widget_routes() {
    let workdir = Workdir::new();
    write_config(&workdir, ROOMY);
    let tenant = tenant(&workdir);
    let server = Launch::serve().start_in(workdir).await;
    let shop = "https://shop.acme.com";
    let staging = "https://staging.example";

    let admitted = documents(&server, &tenant, Some(shop)).await;
    admitted.success(200);
    assert_eq!(admitted.header("access-control-allow-origin"), Some(shop));
    documents(&server, &tenant, Some(staging))
        .await
        .failure(403, "CORS_ORIGIN_NOT_ALLOWED");

    write_config(
        server.workdir(),
        &format!(
            "{ROOMY}\n[cors]\nwidget_origins = \"allowlist\"\nallowed_origins = [\"{staging}\"]\n"
        ),
    );
    assert_eq!(reload(&server, &[]).json()["applied"], true);

    // The merchant's own domain no longer admits; the listed origin does, for any merchant.
    documents(&server, &tenant, Some(shop))
        .await
        .failure(403, "CORS_ORIGIN_NOT_ALLOWED");
    let listed = documents(&server, &tenant, Some(staging)).await;
    listed.success(200);
    assert_eq!(listed.header("access-control-allow-origin"), Some(staging));
    let preflight = |origin: &'static str| {
        Reply::of(
            client()
                .request(reqwest::Method::OPTIONS, server.url("/api/chat"))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "POST"),
        )
    };
    assert_eq!(preflight(shop).await.status, 403);
    let allowed = preflight(staging).await;
    assert_eq!(allowed.status, 204, "{allowed:?}");
    assert_eq!(allowed.header("access-control-allow-origin"), Some(staging));
    // Requests without an Origin are not CORS requests and pass as before.
    documents(&server, &tenant, None).await.success(200);
}

#[tokio::test]
async fn settings_that_need_a_restart_are_named_and_left_as_they_are() {
    let workdir = Workdir::new();
    write_config(&workdir, ROOMY);
    let server = Launch::serve().start_in(workdir).await;
    write_config(server.workdir(), &format!("{ROOMY}\n[edge]\nthreads = 3\n"));
    let verdict = reload(&server, &[]).json();
    assert_eq!(verdict["applied"], true, "{verdict}");
    assert_eq!(
        verdict["restart_pending"],
        serde_json::json!(["edge.threads"])
    );
    assert!(
        server
            .log()
            .lines()
            .any(|l| l.contains("edge.threads") && l.contains("applied at the next restart")),
        "{}",
        server.log()
    );
    let metrics = scrape(&server).await;
    assert_eq!(counter(&metrics, RELOADS, &[("result", "success")]), 1);
    assert_eq!(counter(&metrics, RELOADS, &[("result", "failure")]), 0);
    assert!(metrics.contains("mindshop_config_last_reload_successful 1"));
}
