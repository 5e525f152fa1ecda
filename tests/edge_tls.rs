//! The edge on the open internet: HTTPS with HTTP/2 beside plain HTTP, certificates by SNI,
//! the client's address behind trusted proxies, and slow or greedy clients.
//!
//! Certificates come from `mindshop admin tls self-signed`, as a developer makes them; clients
//! trust its CA and nothing else.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use reqwest::{Certificate, Version};
use serde_json::{Value, json};
use support::pipeline::{counter, create_key, create_merchant, portal_token, scrape};
use support::{Launch, Reply, Server, Workdir, client, free_addr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const ORIGIN: &str = "https://merchant-store.com";

/// `mindshop admin tls self-signed --host … --out <dir>` in `workdir`; what it printed.
fn self_signed(workdir: &Workdir, dir: &str, hosts: &[&str]) -> Value {
    let mut args = vec!["tls", "self-signed", "--out", dir];
    for host in hosts {
        args.extend(["--host", host]);
    }
    workdir.admin(&args).json()
}

/// `mindshop.toml` in `workdir` (the working directory, so `serve` reads it) with an HTTPS
/// listener on `tls` serving `certificates` (directory, hosts), the first as default.
fn write_tls_config(
    workdir: &Workdir,
    tls: SocketAddr,
    certificates: &[(&str, &[&str])],
    extra: &str,
) {
    let mut config = format!("[edge]\ntls_listen = \"{tls}\"\n{extra}\n");
    for (dir, hosts) in certificates {
        let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
        config.push_str(&format!(
            "[[edge.tls_certificates]]\ncert_file = \"{dir}/cert.pem\"\nkey_file = \"{dir}/key.pem\"\nhosts = [{}]\n",
            hosts.join(", ")
        ));
    }
    std::fs::write(workdir.path().join("mindshop.toml"), config).expect("write mindshop.toml");
}

/// A client that trusts only the CA in `dir`; `h1` keeps it to HTTP/1.1.
fn tls_client(ca_dir: &Path, h1: bool, resolve: &[(&str, SocketAddr)]) -> reqwest::Client {
    mindshop_backend::install_crypto_provider();
    let pem = std::fs::read(ca_dir.join("ca.pem")).expect("read ca.pem");
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .tls_certs_only([Certificate::from_pem(&pem).expect("a PEM certificate")]);
    if h1 {
        builder = builder.http1_only();
    }
    for (name, addr) in resolve {
        builder = builder.resolve(name, *addr);
    }
    builder.build().expect("build the HTTPS client")
}

/// How a client reaches the edge in the comparison below.
struct Way {
    name: &'static str,
    client: reqwest::Client,
    base: String,
    version: Version,
}

impl Way {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("send");
        assert_eq!(response.version(), self.version, "{}", self.name);
        Reply::read(response).await
    }
}

/// A serve with an HTTPS listener for `localhost`, a merchant `acme` with a catalog, and the
/// CA directory.
async fn https_shop(
    extra_config: &str,
    env: &[(&str, &str)],
) -> (Server, SocketAddr, std::path::PathBuf, String) {
    let workdir = Workdir::new();
    self_signed(&workdir, "tls", &["localhost"]);
    let tls = free_addr();
    write_tls_config(&workdir, tls, &[("tls", &["localhost"])], extra_config);
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    let token = portal_token(&workdir, "acme", &[]);
    let mut launch = Launch::serve();
    for (name, value) in env {
        launch = launch.env(name, value);
    }
    let server = launch.start_in(workdir).await;
    let ca = server.workdir().path().join("tls");
    (server, tls, ca, token)
}

#[tokio::test]
async fn https_and_http2_answer_as_plain_http_does() {
    let (server, tls, ca, token) = https_shop("", &[("MINDSHOP_LIMITS_DOCUMENTS", "3")]).await;
    let workdir = server.workdir();
    let https = format!("https://localhost:{}", tls.port());
    let ways = [
        Way {
            name: "HTTP/1.1",
            client: client(),
            base: format!("http://{}", server.edge),
            version: Version::HTTP_11,
        },
        Way {
            name: "HTTP/1.1 over TLS",
            client: tls_client(&ca, true, &[("localhost", tls)]),
            base: https.clone(),
            version: Version::HTTP_11,
        },
        Way {
            name: "HTTP/2",
            client: tls_client(&ca, false, &[("localhost", tls)]),
            base: https.clone(),
            version: Version::HTTP_2,
        },
    ];

    // A 10 MB catalog upload over HTTP/2: the whole body arrives and every row is stored.
    let rows = 92_000;
    let mut csv = String::from("sku,title,description,price,category,inStock\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "P{i:06},Oak floor lamp number {i},Warm light for reading corners and long evenings {i:06},89.00,Lighting,yes\n"
        ));
    }
    assert!(csv.len() > 10_000_000, "{}", csv.len());
    let h2 = &ways[2];
    let form = Form::new().part("file", Part::bytes(csv.into_bytes()).file_name("c.csv"));
    let uploaded = h2
        .send(
            h2.client
                .post(h2.url("/api/merchants/acme/sync/upload"))
                .bearer_auth(&token)
                .multipart(form),
        )
        .await
        .success(200);
    assert_eq!(uploaded["productsCreated"], rows, "{uploaded}");

    for way in &ways {
        let name = way.name;
        let health = way.send(way.client.get(way.url("/health"))).await;
        assert_eq!(health.success(200)["status"], "ok", "{name}");
        assert!(support::is_uuid(health.request_id()), "{name}");

        // CORS: the merchant's page may call; another site's preflight is refused.
        let preflight = way
            .send(
                way.client
                    .request(reqwest::Method::OPTIONS, way.url("/api/chat/sessions"))
                    .header("Origin", ORIGIN)
                    .header("Access-Control-Request-Method", "POST"),
            )
            .await;
        assert_eq!(preflight.status, 204, "{name}: {preflight:?}");
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            Some(ORIGIN),
            "{name}"
        );
        way.send(
            way.client
                .request(reqwest::Method::OPTIONS, way.url("/api/chat/sessions"))
                .header("Origin", "https://evil.example")
                .header("Access-Control-Request-Method", "POST"),
        )
        .await
        .failure(403, "CORS_ORIGIN_NOT_ALLOWED");

        // Credentials: none → 401, a key without the permission → 403.
        way.send(way.client.get(way.url("/api/documents")))
            .await
            .failure(401, "API_KEY_REQUIRED");
        let publishable = create_key(workdir, "acme", "publishable", &[]).key;
        way.send(
            way.client
                .post(way.url("/api/documents"))
                .header("X-API-Key", &publishable)
                .header("Origin", ORIGIN)
                .json(&json!({"title": "t", "body": "b"})),
        )
        .await
        .failure(403, "FORBIDDEN");

        // Rate limits: the headers on each answer, then 429 with the window's reset.
        let secret = create_key(workdir, "acme", "secret", &["documents:read"]).key;
        support::pipeline::room_in_window(60, Duration::from_secs(10)).await;
        for remaining in ["2", "1", "0"] {
            let listed = way
                .send(
                    way.client
                        .get(way.url("/api/documents"))
                        .header("X-API-Key", &secret),
                )
                .await;
            listed.success(200);
            assert_eq!(listed.header("x-ratelimit-limit"), Some("3"), "{name}");
            assert_eq!(
                listed.header("x-ratelimit-remaining"),
                Some(remaining),
                "{name}"
            );
        }
        let limited = way
            .send(
                way.client
                    .get(way.url("/api/documents"))
                    .header("X-API-Key", &secret),
            )
            .await;
        limited.failure(429, "RATE_LIMIT_EXCEEDED");
        assert!(
            limited.header("retry-after").is_some(),
            "{name}: {limited:?}"
        );

        // A streamed chat answer arrives whole, event by event.
        let session = way
            .send(
                way.client
                    .post(way.url("/api/chat/sessions"))
                    .bearer_auth(&publishable)
                    .header("Origin", ORIGIN)
                    .json(&json!({"userId": "shopper-1"})),
            )
            .await
            .success(200)["sessionId"]
            .as_str()
            .unwrap()
            .to_owned();
        let response = way
            .client
            .post(way.url("/api/chat"))
            .bearer_auth(&publishable)
            .header("Origin", ORIGIN)
            .header("Accept", "text/event-stream")
            .json(&json!({"sessionId": session, "query": "floor lamp"}))
            .send()
            .await
            .expect("send");
        assert_eq!(response.version(), way.version, "{name}");
        assert_eq!(response.status(), 200, "{name}");
        let body = response.text().await.expect("read the stream");
        assert!(body.contains("event: context"), "{name}: {body}");
        assert!(body.contains("event: answer"), "{name}: {body}");
        assert!(body.contains("event: done"), "{name}: {body}");
    }
}

#[tokio::test]
async fn sni_picks_the_certificate_of_each_name() {
    let workdir = Workdir::new();
    self_signed(&workdir, "default", &["localhost"]);
    self_signed(&workdir, "shops", &["shop.test", "*.stores.test"]);
    let tls = free_addr();
    write_tls_config(
        &workdir,
        tls,
        &[
            ("default", &["localhost"]),
            ("shops", &["shop.test", "*.stores.test"]),
        ],
        "",
    );
    let server = Launch::serve().start_in(workdir).await;
    let dir = server.workdir().path();
    let names = [
        ("localhost", tls),
        ("shop.test", tls),
        ("acme.stores.test", tls),
        ("unknown.test", tls),
    ];
    let trusts_default = tls_client(&dir.join("default"), false, &names);
    let trusts_shops = tls_client(&dir.join("shops"), false, &names);

    let health = |client: &reqwest::Client, host: &str| {
        client
            .get(format!("https://{host}:{}/health", tls.port()))
            .send()
    };
    for host in ["shop.test", "acme.stores.test"] {
        let answered = health(&trusts_shops, host).await.expect(host);
        assert_eq!(answered.status(), 200, "{host}");
        assert!(
            health(&trusts_default, host).await.is_err(),
            "{host} served the default"
        );
    }
    assert_eq!(
        health(&trusts_default, "localhost").await.unwrap().status(),
        200
    );
    assert!(health(&trusts_shops, "localhost").await.is_err());

    let metrics = scrape(&server).await;
    for host in ["localhost", "shop.test", "*.stores.test"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("mindshop_tls_certificate_expiry_timestamp_seconds{")
                    && l.contains(&format!("host=\"{host}\""))
            })
            .unwrap_or_else(|| panic!("no expiry for {host}:\n{metrics}"));
        let expiry: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        let in_days = (expiry - support::pipeline::unix_now() as f64) / 86_400.0;
        assert!((29.0..=31.0).contains(&in_days), "{line}");
    }
}

#[tokio::test]
async fn a_certificate_that_cannot_be_used_stops_start_up_naming_its_key() {
    let workdir = Workdir::new();
    self_signed(&workdir, "tls", &["localhost"]);
    let tls = free_addr();
    std::fs::write(
        workdir.path().join("mindshop.toml"),
        format!(
            "[edge]\ntls_listen = \"{tls}\"\n\n[[edge.tls_certificates]]\ncert_file = \"tls/cert.pem\"\nkey_file = \"tls/key.pem\"\nhosts = [\"localhost\"]\n\n[[edge.tls_certificates]]\ncert_file = \"tls/cert.pem\"\nkey_file = \"tls/missing.pem\"\nhosts = [\"shop.test\"]\n"
        ),
    )
    .unwrap();
    let ports = [
        ("MINDSHOP_EDGE_LISTEN", free_addr().to_string()),
        ("MINDSHOP_EDGE_METRICS_LISTEN", free_addr().to_string()),
        ("MINDSHOP_BACKEND_LISTEN", free_addr().to_string()),
    ];
    let env: Vec<(&str, &str)> = ports.iter().map(|(n, v)| (*n, v.as_str())).collect();
    workdir
        .run(&["serve"], &env)
        .fails_with("edge.tls_certificates[1].key_file");

    // A key that is not the certificate's.
    self_signed(&workdir, "other", &["localhost"]);
    std::fs::copy(
        workdir.path().join("other/key.pem"),
        workdir.path().join("tls/missing.pem"),
    )
    .unwrap();
    workdir
        .run(&["serve"], &env)
        .fails_with("is not the key of");

    // An HTTPS listener without certificates is refused before anything starts.
    std::fs::write(
        workdir.path().join("mindshop.toml"),
        format!("[edge]\ntls_listen = \"{tls}\"\n"),
    )
    .unwrap();
    workdir
        .run(&["config", "check"], &[])
        .fails_with("edge.tls_certificates");
}

#[tokio::test]
async fn plain_http_redirects_to_https_and_https_answers_carry_hsts() {
    let (server, tls, ca, _) = https_shop(
        "redirect_http_to_https = true\nhsts_max_age_secs = 3600",
        &[],
    )
    .await;
    let plain = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let moved = Reply::of(plain.get(format!(
        "http://localhost:{}/v1/widget.js?v=2",
        server.edge.port()
    )))
    .await;
    assert_eq!(moved.status, 308, "{moved:?}");
    assert_eq!(
        moved.header("location"),
        Some(format!("https://localhost:{}/v1/widget.js?v=2", tls.port()).as_str())
    );
    assert!(
        moved.header("strict-transport-security").is_none(),
        "HSTS over plain HTTP"
    );
    // Probes stay on plain HTTP.
    assert_eq!(
        Reply::of(plain.get(server.url("/health"))).await.status,
        200
    );
    assert_eq!(Reply::of(plain.get(server.url("/ready"))).await.status, 200);

    let https = tls_client(&ca, false, &[("localhost", tls)]);
    for path in ["/health", "/v1/widget.js", "/api/documents"] {
        let reply = Reply::of(https.get(format!("https://localhost:{}{path}", tls.port()))).await;
        assert_eq!(
            reply.header("strict-transport-security"),
            Some("max-age=3600"),
            "{path}: {reply:?}"
        );
    }
}

/// `/v1/widget.js` from `client` with `X-Forwarded-For: forwarded`; the status.
async fn widget_status(client: &reqwest::Client, server: &Server, forwarded: &str) -> u16 {
    client
        .get(server.url("/v1/widget.js"))
        .header("X-Forwarded-For", forwarded)
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let limit = [("MINDSHOP_LIMITS_WIDGET_PER_IP", "3")];
    // No trusted proxies: a forged header does not buy a fresh budget.
    let mut launch = Launch::serve();
    for (name, value) in limit {
        launch = launch.env(name, value);
    }
    let server = launch.start().await;
    let mut statuses = Vec::new();
    for n in 0..4 {
        statuses.push(widget_status(&client(), &server, &format!("203.0.113.{n}")).await);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);

    // Loopback is our load balancer: two shoppers behind it have budgets of their own, and
    // the backend and the access log see each shopper's address.
    let mut launch = Launch::serve().env("MINDSHOP_EDGE_TRUSTED_PROXIES", "127.0.0.1/32,::1");
    for (name, value) in limit {
        launch = launch.env(name, value);
    }
    let server = launch.start().await;
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(widget_status(&client(), &server, "1.1.1.1, 203.0.113.7").await);
    }
    assert_eq!(first, [200, 200, 200, 429]);
    assert_eq!(widget_status(&client(), &server, "203.0.113.8").await, 200);
    let log = server.log();
    assert!(log.contains("client=\"203.0.113.7\""), "{log}");
    assert!(
        !log.contains("1.1.1.1"),
        "the forged entry was believed:\n{log}"
    );
}

/// A connection from `local` that sends a request head one header line at a time, every
/// `gap`, forever; returns when the edge closes it, with how long that took.
async fn trickle(edge: SocketAddr, local: IpAddr, gap: Duration) -> Duration {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let mut stream = socket.connect(edge).await.expect("connect");
    let started = Instant::now();
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .is_err()
    {
        return started.elapsed();
    }
    let mut n = 0;
    loop {
        let mut buf = [0u8; 64];
        tokio::select! {
            read = stream.read(&mut buf) => {
                // Closed (0 bytes, or reset): whatever it sent back, the edge is done with it.
                if !matches!(read, Ok(k) if k > 0) { return started.elapsed(); }
            }
            () = tokio::time::sleep(gap) => {
                n += 1;
                if stream.write_all(format!("X-Slow-{n}: 1\r\n").as_bytes()).await.is_err() {
                    return started.elapsed();
                }
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            return started.elapsed();
        }
    }
}

#[tokio::test]
async fn slow_heads_are_cut_at_the_deadline_and_connections_are_capped() {
    let server = Launch::serve()
        .env("MINDSHOP_EDGE_HEADER_READ_TIMEOUT_MS", "2000")
        .env("MINDSHOP_EDGE_MAX_CONNECTIONS_PER_IP", "6")
        .start()
        .await;
    let slow: IpAddr = "127.0.0.2".parse().unwrap();
    let tricklers: Vec<_> = (0..10)
        .map(|_| tokio::spawn(trickle(server.edge, slow, Duration::from_millis(300))))
        .collect();
    // Another client keeps being answered meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = reqwest::Client::builder()
        .no_proxy()
        .local_address("127.0.0.1".parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..5 {
        let answered = Reply::of(other.get(server.url("/health"))).await;
        assert_eq!(answered.status, 200);
    }
    let mut closed: Vec<Duration> = Vec::new();
    for trickler in tricklers {
        closed.push(trickler.await.unwrap());
    }
    closed.sort();
    // Four over the cap closed at once, six at the 2 s deadline — none kept open.
    assert!(closed[3] < Duration::from_secs(1), "{closed:?}");
    assert!(closed[4] >= Duration::from_millis(1500), "{closed:?}");
    assert!(closed[9] < Duration::from_secs(5), "{closed:?}");

    let metrics = scrape(&server).await;
    assert!(
        counter(
            &metrics,
            "mindshop_edge_connections_refused_total",
            &[("reason", "per_ip")]
        ) >= 4,
        "{metrics}"
    );
    assert_eq!(
        counter(
            &metrics,
            "mindshop_edge_connections_refused_total",
            &[("reason", "total")]
        ),
        0
    );
    assert!(
        counter(
            &metrics,
            "mindshop_edge_client_timeouts_total",
            &[("phase", "header")]
        ) >= 6,
        "{metrics}"
    );
    assert!(
        metrics.contains("mindshop_edge_open_connections "),
        "{metrics}"
    );

    // A plain TCP connection to the cap's owner now is accepted again.
    let again = TcpStream::connect(server.edge).await;
    assert!(again.is_ok());
}

#[tokio::test]
async fn a_reload_serves_renewed_certificates_from_the_next_handshake() {
    let workdir = Workdir::new();
    self_signed(&workdir, "tls", &["localhost"]);
    let tls = free_addr();
    write_tls_config(&workdir, tls, &[("tls", &["localhost"])], "");
    let server = Launch::serve().start_in(workdir).await;
    let dir = server.workdir().path().to_path_buf();
    let url = format!("https://localhost:{}/health", tls.port());
    let names = [("localhost", tls)];
    let old_client = tls_client(&dir.join("tls"), false, &names);
    assert_eq!(old_client.get(&url).send().await.unwrap().status(), 200);

    // Renewed: another CA, 90 days; the file now points at it.
    server
        .workdir()
        .admin(&[
            "tls",
            "self-signed",
            "--out",
            "renewed",
            "--host",
            "localhost",
            "--days",
            "90",
        ])
        .json();
    write_tls_config(server.workdir(), tls, &[("renewed", &["localhost"])], "");
    let verdict = server.workdir().run(&["reload"], &[]).json();
    assert_eq!(
        verdict["changed"],
        serde_json::json!(["edge.tls_certificates"])
    );

    let renewed_client = tls_client(&dir.join("renewed"), false, &names);
    assert_eq!(renewed_client.get(&url).send().await.unwrap().status(), 200);
    let stale = tls_client(&dir.join("tls"), false, &names);
    assert!(
        stale.get(&url).send().await.is_err(),
        "the old certificate is still served"
    );

    let metrics = scrape(&server).await;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("mindshop_tls_certificate_expiry_timestamp_seconds{host=\"localhost\"}")
        })
        .unwrap_or_else(|| panic!("no expiry:\n{metrics}"));
    let expiry: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let in_days = (expiry - support::pipeline::unix_now() as f64) / 86_400.0;
    assert!((89.0..=91.0).contains(&in_days), "{line}");

    // A certificate file that cannot be read is refused; the renewed one keeps serving.
    write_tls_config(server.workdir(), tls, &[("missing", &["localhost"])], "");
    server
        .workdir()
        .run(&["reload"], &[])
        .fails_with("edge.tls_certificates[0].cert_file");
    let again = tls_client(&dir.join("renewed"), false, &names);
    assert_eq!(again.get(&url).send().await.unwrap().status(), 200);
}
