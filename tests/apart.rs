//! `mindshop edge` and `mindshop backend` run apart: the shared secret, a backend that is down,
//! what the edge forwards upstream, and refusing to start without `internal.secret`.

mod support;

use std::time::{Duration, Instant};

use mindshop_wire::identity::{IdentitySigner, SignedRequest};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use support::pipeline::{create_key, create_merchant, portal_token};
use support::upstream::RecordingUpstream;
use support::{Launch, OTHER_SECRET, Reply, SECRET, Workdir, client, free_addr};

#[tokio::test]
async fn an_edge_whose_backend_is_down_answers_502_and_not_ready() {
    // A port where nothing listens.
    let nowhere = free_addr();
    let edge = Launch::edge(SECRET, &[nowhere]).start().await;
    let client = client();

    let started = Instant::now();
    let reply = Reply::of(
        client
            // The sync webhook needs no credential at the edge (the backend checks its HMAC).
            .post(edge.url("/api/merchants/acme/sync/webhook"))
            .header("X-Request-ID", "down-1"),
    )
    .await;
    let took = started.elapsed();
    reply.failure(502, "BACKEND_UNAVAILABLE");
    assert_eq!(reply.request_id(), "down-1");
    assert!(took < Duration::from_secs(5), "the 502 took {took:?}");

    let reply = Reply::of(client.get(edge.url("/ready"))).await;
    let envelope = reply.failure(503, "NOT_READY");
    assert_eq!(envelope["checks"]["backend"], "down", "{reply:?}");

    // The edge itself stays alive.
    Reply::of(client.get(edge.url("/health")))
        .await
        .success(200);
}

#[tokio::test]
async fn edge_and_backend_with_the_same_secret_serve_ready() {
    let backend = Launch::backend(SECRET).start().await;
    let edge = Launch::edge(SECRET, &[backend.backend]).start().await;

    let reply = Reply::of(
        client()
            .get(edge.url("/ready"))
            .header("X-Request-ID", "apart-1"),
    )
    .await;
    let data = reply.success(200);
    assert_eq!(data["checks"]["backend"], "up", "{reply:?}");
    assert_eq!(data["checks"]["database"], "up", "{reply:?}");
    assert_eq!(reply.request_id(), "apart-1");
}

#[tokio::test]
async fn a_backend_with_another_secret_refuses_the_edge() {
    let backend = Launch::backend(OTHER_SECRET).start().await;
    let edge = Launch::edge(SECRET, &[backend.backend]).start().await;

    let reply = Reply::of(
        client()
            .get(edge.url("/ready"))
            .header("X-Request-ID", "wrong-secret"),
    )
    .await;
    reply.failure(401, "EDGE_SIGNATURE_REQUIRED");
    assert_eq!(reply.request_id(), "wrong-secret");
    // The backend's marker stays internal; the edge's operator is told what to fix.
    assert_eq!(reply.header("x-mindshop-rejected"), None, "{reply:?}");
    // Log lines reach the file through a writer thread: poll for this one.
    let told = |log: &str| log.contains("internal.secret differs") && log.contains("wrong-secret");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !told(&edge.log()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = edge.log();
    assert!(told(&log), "{log}");
}

#[tokio::test]
async fn client_sent_identity_headers_never_reach_the_backend() {
    let mut upstream = RecordingUpstream::start().await;
    let edge = Launch::edge(SECRET, &[upstream.addr]).start().await;

    let reply = Reply::of(
        client()
            .get(edge.url("/ready?probe=1"))
            .header("X-Request-ID", "spoof-1")
            .header("X-Mindshop-Merchant", "acme")
            .header("X-Mindshop-Principal", "user:mallory")
            .header("X-Mindshop-Roles", "admin")
            .header("X-Mindshop-Extra", "anything"),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.request_id(), "spoof-1");

    let seen = upstream.next_request().await;
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.target, "/ready?probe=1");
    assert_eq!(seen.one("x-mindshop-merchant"), Some(""), "{seen:?}");
    assert_eq!(
        seen.one("x-mindshop-principal"),
        Some("anonymous"),
        "{seen:?}"
    );
    assert_eq!(seen.one("x-mindshop-roles"), Some(""), "{seen:?}");
    assert!(seen.all("x-mindshop-extra").is_empty(), "{seen:?}");
    assert_eq!(seen.one("x-request-id"), Some("spoof-1"), "{seen:?}");
    let signature = seen.one("x-mindshop-signature").unwrap_or_default();
    assert!(!signature.is_empty(), "no signature: {seen:?}");

    // The signature is one the backend accepts with the shared secret, for this request only.
    let mut headers = HeaderMap::new();
    for (name, value) in &seen.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let request = SignedRequest {
        method: "GET",
        path_and_query: "/ready?probe=1",
        request_id: "spoof-1",
    };
    let identity = IdentitySigner::new(SECRET.as_bytes())
        .verify(&headers, request, now, 30)
        .expect("the edge's signature verifies with the shared secret");
    assert_eq!(identity.merchant, None);
    let replayed = SignedRequest {
        path_and_query: "/api/merchants/acme/keys",
        ..request
    };
    assert!(
        IdentitySigner::new(SECRET.as_bytes())
            .verify(&headers, replayed, now, 30)
            .is_err(),
        "a signature must not verify for another path"
    );
}

#[tokio::test]
async fn the_credentials_the_edge_checked_never_reach_the_backend() {
    let mut upstream = RecordingUpstream::start().await;
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["acme.com"]);
    let key = create_key(&workdir, "acme", "secret", &["*"]);
    let token = portal_token(&workdir, "acme", &[]);
    let edge = Launch::edge(SECRET, &[upstream.addr])
        .start_in(workdir)
        .await;

    let by_key = format!("key:{}", key.id);
    let sent = [
        (
            "/api/documents",
            "x-api-key",
            key.key.clone(),
            by_key.as_str(),
        ),
        (
            "/api/documents",
            "authorization",
            format!("Bearer {}", key.key),
            by_key.as_str(),
        ),
        (
            "/api/merchants/acme/settings",
            "authorization",
            format!("Bearer {token}"),
            "user:",
        ),
    ];
    for (path, name, value, caller) in sent {
        let reply = Reply::of(client().get(edge.url(path)).header(name, &value)).await;
        assert_eq!(reply.status, 200, "{path} with {name}: {reply:?}");
        let seen = upstream.next_request().await;
        assert_eq!(seen.target, path);
        // The backend learns who called from the signed identity alone.
        let principal = seen.one("x-mindshop-principal").unwrap_or_default();
        assert!(principal.starts_with(caller), "{seen:?}");
        assert_eq!(seen.one("x-mindshop-merchant"), Some("acme"), "{seen:?}");
        assert!(seen.all("x-api-key").is_empty(), "{seen:?}");
        assert!(seen.all("authorization").is_empty(), "{seen:?}");
        assert!(
            !seen.headers.iter().any(|(_, v)| v.contains(&key.key)),
            "the raw key travelled on: {seen:?}"
        );
    }
}

#[tokio::test]
async fn the_backend_gets_the_target_as_classified_and_the_clients_address() {
    let mut upstream = RecordingUpstream::start().await;
    let edge = Launch::edge(SECRET, &[upstream.addr]).start().await;

    // Percent-encoding and the query arrive byte for byte.
    let reply = Reply::of(client().get(edge.url("/ready?q=caf%C3%A9%20bar&b=%2F"))).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = upstream.next_request().await;
    assert_eq!(seen.target, "/ready?q=caf%C3%A9%20bar&b=%2F");
    assert_eq!(seen.one("x-forwarded-for"), Some("127.0.0.1"), "{seen:?}");
    assert_eq!(
        seen.one("x-request-id"),
        Some(reply.request_id()),
        "{seen:?}"
    );

    // Empty segments are dropped: the backend routes what the edge classified.
    let reply = Reply::of(client().get(edge.url("//ready//?x=1"))).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(upstream.next_request().await.target, "/ready?x=1");
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_413() {
    let upstream = RecordingUpstream::start().await;
    let edge = Launch::edge(SECRET, &[upstream.addr])
        .env("MINDSHOP_EDGE_MAX_BODY_BYTES", "1000")
        .start()
        .await;

    // No Content-Length: the edge only learns the size while streaming.
    let chunks = (0..4).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 600]));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let reply = Reply::of(
        client()
            .post(edge.url("/api/merchants/acme/sync/webhook"))
            .header("X-Request-ID", "chunked-1")
            .body(body),
    )
    .await;
    reply.failure(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(reply.request_id(), "chunked-1");

    // Under the limit, the same kind of body goes through.
    let chunks = (0..2).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 400]));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let reply = Reply::of(
        client()
            .post(edge.url("/api/merchants/acme/sync/webhook"))
            .body(body),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn edge_and_backend_refuse_to_start_without_the_internal_secret() {
    let workdir = Workdir::new();
    let (edge, metrics, backend) = (free_addr(), free_addr(), free_addr());
    let env = [
        ("MINDSHOP_EDGE_LISTEN", edge.to_string()),
        ("MINDSHOP_EDGE_METRICS_LISTEN", metrics.to_string()),
        ("MINDSHOP_BACKEND_LISTEN", backend.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (*n, v.as_str())).collect();
    for command in ["edge", "backend"] {
        workdir.run(&[command], &env).fails_with("internal.secret");
    }
}

#[tokio::test]
async fn a_backend_run_apart_serves_its_own_metrics() {
    const JWT_SECRET: &str = "apart-jwt-secret-0123456789abcdef0123";
    let backend = Launch::backend(SECRET)
        .env("MINDSHOP_AUTH_JWT_SECRET", JWT_SECRET)
        .start()
        .await;
    let edge = Launch::edge(SECRET, &[backend.backend])
        .env("MINDSHOP_AUTH_JWT_SECRET", JWT_SECRET)
        .start()
        .await;
    support::pipeline::create_merchant(backend.workdir(), "acme", &["merchant-store.com"]);
    let claims = serde_json::json!({
        "sub": "owner", "merchantId": "acme", "roles": [],
        "exp": support::pipeline::unix_now() + 600,
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"sku,title\nA1,Lamp".to_vec()).file_name("p.csv"),
    );
    Reply::of(
        client()
            .post(edge.url("/api/merchants/acme/sync/upload"))
            .bearer_auth(&token)
            .multipart(form),
    )
    .await
    .success(200);

    let metrics = client()
        .get(backend.metrics_url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"mindshop_sync_runs_total{source="csv",status="completed"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"mindshop_sync_rows_total{outcome="created"} 1"#));
}
