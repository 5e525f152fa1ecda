//! `mindshop serve` seen from a client: health, request ids, routing, readiness, the backend's
//! refusal of unsigned requests, metrics and the body limit.

mod support;

use std::time::{Duration, Instant};

use support::{Launch, Reply, Server, client, is_uuid};

#[tokio::test]
async fn health_answers_ok_in_the_envelope() {
    let server = Launch::serve().start().await;
    let reply = Reply::of(client().get(server.url("/health"))).await;

    let data = reply.success(200);
    assert_eq!(data, serde_json::json!({"status": "ok"}));
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{reply:?}"
    );
    assert!(is_uuid(reply.request_id()), "{reply:?}");
}

#[tokio::test]
async fn a_sane_request_id_is_echoed_by_the_edge_the_backend_and_the_404() {
    let server = Launch::serve().start().await;
    let client = client();
    for (path, status) in [("/health", 200), ("/ready", 200), ("/nope", 404)] {
        let reply = Reply::of(
            client
                .get(server.url(path))
                .header("X-Request-ID", "abc-123"),
        )
        .await;
        assert_eq!(reply.status, status, "{path}: {reply:?}");
        assert_eq!(reply.request_id(), "abc-123", "{path}: {reply:?}");
        assert_eq!(reply.json()["requestId"], "abc-123", "{path}: {reply:?}");
        // One id per answer, not the edge's and the backend's side by side.
        assert_eq!(
            reply.headers.get_all("x-request-id").iter().count(),
            1,
            "{path}: {reply:?}"
        );
    }
}

#[tokio::test]
async fn an_unusable_request_id_is_replaced_by_a_generated_one() {
    let server = Launch::serve().start().await;
    let client = client();
    let too_long = "a".repeat(200);
    for path in ["/health", "/ready"] {
        for sent in [too_long.as_str(), "has space", &"b".repeat(129)] {
            let reply = Reply::of(client.get(server.url(path)).header("X-Request-ID", sent)).await;
            reply.success(200);
            let id = reply.request_id();
            assert_ne!(id, sent, "{path}: {reply:?}");
            assert!(is_uuid(id), "{path}: generated id {id:?} is not a UUID");
        }
    }
    // The longest accepted id is kept as it is.
    let longest = "c".repeat(128);
    let reply = Reply::of(
        client
            .get(server.url("/health"))
            .header("X-Request-ID", &longest),
    )
    .await;
    assert_eq!(reply.request_id(), longest);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_envelopes_from_the_edge_and_the_backend() {
    let server = Launch::serve().start().await;
    let client = client();

    let reply = Reply::of(client.get(server.url("/nope"))).await;
    reply.failure(404, "ROUTE_NOT_FOUND");
    assert!(is_uuid(reply.request_id()), "{reply:?}");

    // A route that needs no credential at the edge reaches the backend, which answers a method
    // it does not serve with 405 and the methods it does.
    let reply = Reply::of(
        client
            .get(server.url("/api/merchants/acme/sync/webhook"))
            .header("X-Request-ID", "req-405"),
    )
    .await;
    let envelope = reply.failure(405, "METHOD_NOT_ALLOWED");
    assert_eq!(reply.header("allow"), Some("POST"));
    assert_eq!(reply.request_id(), "req-405");
    assert_eq!(envelope["requestId"], "req-405");
}

#[tokio::test]
async fn ready_reports_backend_and_database_up() {
    let server = Launch::serve().start().await;
    let reply = Reply::of(client().get(server.url("/ready"))).await;
    let data = reply.success(200);
    assert_eq!(data["checks"]["backend"], "up", "{reply:?}");
    assert_eq!(data["checks"]["database"], "up", "{reply:?}");
}

#[tokio::test]
async fn the_backend_port_refuses_requests_that_did_not_come_through_the_edge() {
    let server = Launch::serve().start().await;
    let client = client();

    let reply = Reply::of(
        client
            .get(server.backend_url("/ready"))
            .header("X-Request-ID", "direct-1"),
    )
    .await;
    reply.failure(401, "EDGE_SIGNATURE_REQUIRED");
    assert_eq!(reply.request_id(), "direct-1");

    // Forged identity headers, with a fresh timestamp, are refused all the same.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        .to_string();
    let reply = Reply::of(
        client
            .get(server.backend_url("/api/merchants/acme/sync/status"))
            .header("X-Mindshop-Merchant", "acme")
            .header("X-Mindshop-Principal", "user:mallory")
            .header("X-Mindshop-Permissions", "*")
            .header("X-Mindshop-Roles", "admin")
            .header("X-Mindshop-Timestamp", &now)
            .header("X-Mindshop-Signature", "00"),
    )
    .await;
    reply.failure(401, "EDGE_SIGNATURE_REQUIRED");
}

/// The value of `mindshop_http_requests_total` for GET /health answered 200, if present.
fn health_requests(metrics: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        let labels = line
            .strip_prefix("mindshop_http_requests_total{")?
            .split_once('}')?;
        let (labels, value) = labels;
        let mut labels: Vec<&str> = labels.split(',').collect();
        labels.sort_unstable();
        (labels == ["method=\"GET\"", "route_group=\"health\"", "status=\"200\""])
            .then(|| value.trim().parse().expect("a counter value"))
    })
}

/// Scrapes `/metrics` until the health counter reaches `at_least` (the edge counts a request in
/// its logging phase, just after the answer is sent); returns the last scrape and its count.
async fn scrape_until(server: &Server, at_least: u64) -> (String, Option<u64>) {
    let client = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = Reply::of(client.get(server.metrics_url())).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let count = health_requests(&reply.body);
        if count.is_some_and(|c| c >= at_least) || Instant::now() > deadline {
            return (reply.body, count);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_count_every_health_request() {
    let server = Launch::serve().start().await;

    // The harness's readiness probe made one.
    let (metrics, before) = scrape_until(&server, 1).await;
    let before =
        before.unwrap_or_else(|| panic!("no health counter after a health request:\n{metrics}"));
    assert!(
        metrics.lines().any(|l| {
            l.starts_with("mindshop_http_request_duration_seconds_bucket{")
                && l.contains("route_group=\"health\"")
        }),
        "no duration histogram for health:\n{metrics}"
    );

    const N: u64 = 5;
    let client = client();
    for _ in 0..N {
        Reply::of(client.get(server.url("/health")))
            .await
            .success(200);
    }
    let (metrics, after) = scrape_until(&server, before + N).await;
    assert_eq!(
        after,
        Some(before + N),
        "the counter was {before} before {N} requests:\n{metrics}"
    );
}

#[tokio::test]
async fn a_declared_body_over_the_limit_gets_413() {
    let server = Launch::serve()
        .env("MINDSHOP_EDGE_MAX_BODY_BYTES", "1000")
        .start()
        .await;
    let client = client();

    let reply = Reply::of(
        client
            .post(server.url("/api/chat"))
            .header("content-type", "application/json")
            .header("X-Request-ID", "big-1")
            .body(vec![b'x'; 2000]),
    )
    .await;
    reply.failure(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(reply.request_id(), "big-1");

    // Under the limit, the request goes on to the backend (which has no chat route yet).
    let reply = Reply::of(client.post(server.url("/api/chat")).body(vec![b'x'; 1000])).await;
    assert_ne!(reply.status, 413, "{reply:?}");
}

/// Heads the backend could not take are refused at the edge, with the envelope: too many
/// fields (the edge adds its own to what it forwards) or too many bytes.
#[tokio::test]
async fn an_oversized_head_gets_431_from_the_edge() {
    let server = Launch::serve().start().await;
    let mut many = client().get(server.url("/api/documents"));
    for i in 0..90 {
        many = many.header(format!("x-filler-{i}"), "f");
    }
    let refused = Reply::of(many).await;
    refused.failure(431, "HEADERS_TOO_LARGE");
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("header fields; at most 80")
    );

    let big = Reply::of(
        client()
            .get(server.url("/api/documents"))
            .header("x-filler", "f".repeat(100 * 1024)),
    )
    .await;
    big.failure(431, "HEADERS_TOO_LARGE");

    // Up to the limits, the request goes on to the gate (here: no key).
    let mut fine = client().get(server.url("/api/documents"));
    for i in 0..60 {
        fine = fine.header(format!("x-filler-{i}"), "f");
    }
    Reply::of(fine).await.failure(401, "API_KEY_REQUIRED");
}

/// The series the alert rules (docs/monitoring/alerts.yml) divide and rate exist at 0 from
/// start-up, so `rate()` and `increase()` see the first burst after a restart.
#[tokio::test]
async fn series_with_known_labels_exist_at_zero_from_start() {
    let server = Launch::serve().start().await;
    let metrics = support::pipeline::scrape(&server).await;
    for series in [
        "mindshop_sync_runs_total{source=\"csv\",status=\"failed\"} 0",
        "mindshop_sync_runs_total{source=\"api\",status=\"completed\"} 0",
        "mindshop_webhook_attempts_total{outcome=\"delivered\"} 0",
        "mindshop_webhook_attempts_total{outcome=\"retry\"} 0",
        "mindshop_widget_load_failures_total{reason=\"network\"} 0",
        "mindshop_cors_rejections_total{reason=\"origin_not_allowed\"} 0",
        "mindshop_ratelimit_backend_errors_total{reason=\"unreachable\"} 0",
        "mindshop_ratelimit_limited_total{route_group=\"sync\"} 0",
        "mindshop_route_disabled_total{route_group=\"chat\"} 0",
        "mindshop_config_reloads_total{result=\"failure\"} 0",
        "mindshop_config_last_reload_successful 1",
    ] {
        assert!(
            metrics.lines().any(|line| line == series),
            "no `{series}` at start-up:\n{metrics}"
        );
    }
}
