//! The alert rules against a real Prometheus: Debian's `prometheus` server on loopback scrapes a
//! running `mindshop serve` every second and evaluates `docs/monitoring/alerts.yml` (its `for:`
//! durations shortened to one second, its expressions as they are). Traffic crosses each of the
//! original design's five thresholds — refused origins, failed widget loads, failing syncs, 5xx
//! answers, failing webhook deliveries — and Prometheus's HTTP API must show those five alerts
//! firing and the others not.
//!
//! Needs the `prometheus` binary (`apt-get install prometheus`), so it is ignored by default:
//! `cargo test --test prometheus -- --include-ignored`.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::pipeline::{create_key, create_merchant, portal_token};
use support::{Launch, Reply, Server, Workdir, client, free_addr};

const ORIGINAL_FIVE: [&str; 5] = [
    "MindshopCorsRejectionsHigh",
    "MindshopWidgetLoadFailuresHigh",
    "MindshopSyncFailureRateHigh",
    "MindshopApiErrorRateHigh",
    "MindshopWebhookDeliveryFailureHigh",
];

/// Alerts this traffic must not set off.
const QUIET: [&str; 7] = [
    "MindshopNotReady",
    "MindshopTargetDown",
    "MindshopRateLimitStoreFailing",
    "MindshopConfigReloadFailing",
    "MindshopTlsCertificateExpiringSoon",
    "MindshopWebhookBacklogGrowing",
    "MindshopSearchIndexBacklogNotDraining",
];

/// A Prometheus server, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- prometheus log ----\n{log}");
        }
    }
}

impl Prometheus {
    /// Starts Prometheus in `dir`, scraping `target` as job `mindshop-serve`, with the alert
    /// rules whose `for:` is shortened to one second.
    async fn start(dir: &std::path::Path, target: std::net::SocketAddr) -> Self {
        let rules = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/monitoring/alerts.yml"),
        )
        .expect("read docs/monitoring/alerts.yml");
        let shortened: String = rules
            .lines()
            .map(|line| match line.trim_start().strip_prefix("for: ") {
                Some(_) => format!("{}for: 1s", &line[..line.len() - line.trim_start().len()]),
                None => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_ne!(shortened, rules, "no for: to shorten");
        std::fs::write(dir.join("alerts.yml"), shortened).expect("write the rules");
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [alerts.yml]\n\
                 scrape_configs:\n  - job_name: mindshop-serve\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .expect("write prometheus.yml");
        let listen = free_addr();
        let log = dir.join("prometheus.log");
        let file = std::fs::File::create(&log).expect("create the log");
        let child = Command::new("prometheus")
            .current_dir(dir)
            .args([
                "--config.file=prometheus.yml",
                "--storage.tsdb.path=tsdb",
                &format!("--web.listen-address={listen}"),
            ])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log handle"))
            .stderr(file)
            .spawn()
            .expect("start prometheus (apt-get install prometheus)");
        let prometheus = Self {
            child,
            url: format!("http://{listen}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client()
                .get(format!("{}/-/ready", prometheus.url))
                .send()
                .await;
            if matches!(ready, Ok(r) if r.status() == 200) {
                return prometheus;
            }
            assert!(Instant::now() < deadline, "prometheus never became ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn api(&self, path: &str) -> Value {
        let reply = Reply::of(client().get(format!("{}/api/v1/{path}", self.url))).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let body = reply.json();
        assert_eq!(body["status"], "success", "{body}");
        body["data"].clone()
    }

    /// Alert name → state (`pending`, `firing`) of every active alert.
    async fn alerts(&self) -> Vec<(String, String)> {
        let data = self.api("alerts").await;
        data["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|alert| {
                (
                    alert["labels"]["alertname"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    alert["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

/// The traffic that crosses the five original thresholds.
async fn cross_the_thresholds(server: &Server, key: &str, token: &str) {
    let client = client();
    // Over 100 refused origins.
    for _ in 0..130 {
        let reply = Reply::of(
            client
                .get(server.url("/api/documents"))
                .header("X-API-Key", key)
                .header("Origin", "https://evil.example"),
        )
        .await;
        assert_eq!(reply.status, 403, "{reply:?}");
    }
    // Widgets that report failing to load.
    for _ in 0..20 {
        let reply = Reply::of(client.post(
            server.url("/v1/widget/load?merchantId=acme&outcome=failed&reason=network&ms=900"),
        ))
        .await;
        assert!(reply.status < 300, "{reply:?}");
    }
    // A sync source that refuses connections: every run fails.
    Reply::of(
        client
            .post(server.url("/api/merchants/acme/sync/configure"))
            .bearer_auth(token)
            .json(&json!({
                "syncType": "manual", "sourceType": "api",
                "sourceUrl": "http://127.0.0.1:1/feed.csv",
                "fieldMapping": {"sku": "id", "title": "name"}
            })),
    )
    .await
    .success(201);
    for _ in 0..3 {
        let reply = Reply::of(
            client
                .post(server.url("/api/merchants/acme/sync/trigger"))
                .bearer_auth(token),
        )
        .await;
        assert!(matches!(reply.status, 202 | 409), "{reply:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A webhook endpoint nothing listens behind, and events for it.
    Reply::of(
        client
            .post(server.url("/api/merchants/acme/webhooks"))
            .bearer_auth(token)
            .json(&json!({"url": "http://127.0.0.1:1/hook", "events": ["*"]})),
    )
    .await
    .success(201);
    for n in 0..5 {
        Reply::of(
            client
                .post(server.url("/api/documents"))
                .header("X-API-Key", key)
                .json(&json!({"title": format!("FAQ {n}"), "body": "Free returns."})),
        )
        .await
        .success(201);
    }
    // 5xx: a reload points the edge at a backend address nothing listens on.
    std::fs::write(
        server.workdir().path().join("mindshop.toml"),
        format!("{CONFIG}\n[edge]\nbackends = [\"127.0.0.1:1\"]\n"),
    )
    .expect("write mindshop.toml");
    assert_eq!(
        server.workdir().run(&["reload"], &[]).json()["applied"],
        true
    );
    // Spread over a few scrapes: a status's series appears with its first answer, and only
    // what follows that first sample counts in `rate()`, as for an outage that goes on.
    for _ in 0..40 {
        let reply = Reply::of(
            client
                .get(server.url("/api/documents"))
                .header("X-API-Key", key),
        )
        .await;
        assert_eq!(reply.status, 502, "{reply:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const CONFIG: &str = "[webhooks]
allow_http = true
allow_private_destinations = true
dispatch_interval_ms = 50
timeout_secs = 1
retry_schedule_secs = [1, 1, 1, 1, 1, 1]

[sync]
allow_private_sources = true
";

#[tokio::test]
#[ignore = "needs the prometheus server (apt-get install prometheus)"]
async fn a_real_prometheus_fires_the_five_original_alerts_and_no_other() {
    let workdir = Workdir::new();
    std::fs::write(workdir.path().join("mindshop.toml"), CONFIG).expect("write mindshop.toml");
    create_merchant(&workdir, "acme", &["acme.com"]);
    let key = create_key(&workdir, "acme", "secret", &[]).key;
    let token = portal_token(&workdir, "acme", &[]);
    let server = Launch::serve().start_in(workdir).await;
    let prometheus_dir = tempfile::tempdir().expect("a directory for prometheus");
    let prometheus = Prometheus::start(prometheus_dir.path(), server.metrics).await;
    // A first scrape before the traffic, so every rate has a starting point.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = prometheus.api("query?query=up").await;
        if up["result"][0]["value"][1] == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "prometheus never scraped: {up}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    cross_the_thresholds(&server, &key, &token).await;

    let deadline = Instant::now() + Duration::from_secs(90);
    let alerts = loop {
        let alerts = prometheus.alerts().await;
        let firing = |name: &str| alerts.iter().any(|(n, s)| n == name && s == "firing");
        if ORIGINAL_FIVE.iter().all(|name| firing(name)) {
            break alerts;
        }
        assert!(
            Instant::now() < deadline,
            "not all five fired within 90 s: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for name in QUIET {
        assert!(
            !alerts.iter().any(|(n, _)| n == name),
            "{name} is active: {alerts:?}"
        );
    }
    eprintln!("active alerts: {alerts:?}");
}
