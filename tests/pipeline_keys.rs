//! API keys on the documents routes, as a merchant's developer uses them: each key gets what
//! its permissions grant, with the envelope that says why not; no key reaches another
//! merchant's knowledge base; a revoked key stops working at every edge within seconds.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::pipeline::{
    IssuedKey, counter, counter_reaching, create_key, create_merchant, document, edge_beside,
    revoke_key, scrape,
};
use support::{Launch, Reply, SECRET, Server, Workdir, client};

const DOCUMENTS: &str = "/api/documents";
const AUTH_FAILURES: &str = "mindshop_auth_failures_total";

/// How a request with some credential should be answered.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Admitted, with this status.
    Status(u16),
    /// 401 `API_KEY_REQUIRED`, "API key required".
    KeyRequired,
    /// 401 `INVALID_API_KEY`.
    InvalidKey,
    /// 403 "Insufficient permissions" naming the permission.
    Lacks(&'static str),
}

impl Expect {
    fn check(self, reply: &Reply, case: &str) -> Option<Value> {
        match self {
            Self::Status(status) => Some(reply.success(status)),
            Self::KeyRequired => {
                let envelope = reply.failure(401, "API_KEY_REQUIRED");
                assert_eq!(envelope["error"], "API key required", "{case}: {reply:?}");
                None
            }
            Self::InvalidKey => {
                reply.failure(401, "INVALID_API_KEY");
                None
            }
            Self::Lacks(permission) => {
                let envelope = reply.failure(403, "FORBIDDEN");
                assert_eq!(
                    envelope["error"], "Insufficient permissions",
                    "{case}: {reply:?}"
                );
                assert_eq!(
                    envelope["requiredPermissions"],
                    serde_json::json!([permission]),
                    "{case}: {reply:?}"
                );
                None
            }
        }
    }
}

/// `GET` (`documents:read`) or `POST` with a valid document (`documents:write`), with the key
/// in `Authorization: Bearer`, or in `X-API-Key` when `in_header`.
async fn call(
    server: &Server,
    write: bool,
    key: Option<&str>,
    in_header: bool,
    title: &str,
) -> Reply {
    let client = client();
    let mut request = if write {
        client.post(server.url(DOCUMENTS)).json(&document(title))
    } else {
        client.get(server.url(DOCUMENTS))
    };
    request = match key {
        Some(key) if in_header => request.header("X-API-Key", key),
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    Reply::of(request).await
}

/// The ids of the documents `key` lists.
async fn listed_ids(server: &Server, key: &str) -> Vec<String> {
    let reply = call(server, false, Some(key), false, "").await;
    let page = reply.success(200);
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {reply:?}"))
        .iter()
        .map(|d| d["id"].as_str().expect("a document id").to_owned())
        .collect()
}

#[tokio::test]
async fn each_key_gets_what_its_permissions_grant_on_the_documents_routes() {
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    create_merchant(&workdir, "globex", &["globex-store.com"]);
    let secret = |permission: &str| create_key(&workdir, "acme", "secret", &[permission]).key;
    let unrelated = secret("sessions:read");
    let read = secret("documents:read");
    let write = secret("documents:write");
    let documents_all = secret("documents:*");
    let everything = secret("*");
    let revoked = create_key(&workdir, "acme", "secret", &["*"]);
    revoke_key(&workdir, &revoked.id);
    let widget = create_key(&workdir, "acme", "publishable", &[]).key;
    let globex = create_key(&workdir, "globex", "secret", &["*"]).key;
    let unknown = "sk_test_00000000000000000000000000000000".to_owned();
    let server = Launch::serve().start_in(workdir).await;

    use Expect::*;
    // (case, key, in X-API-Key, GET list, POST create)
    let cases: [(&str, Option<&str>, bool, Expect, Expect); 11] = [
        ("no key", None, false, KeyRequired, KeyRequired),
        ("unknown key", Some(&unknown), false, InvalidKey, InvalidKey),
        (
            "revoked key",
            Some(&revoked.key),
            false,
            InvalidKey,
            InvalidKey,
        ),
        (
            "sessions:read",
            Some(&unrelated),
            false,
            Lacks("documents:read"),
            Lacks("documents:write"),
        ),
        (
            "documents:read",
            Some(&read),
            false,
            Status(200),
            Lacks("documents:write"),
        ),
        (
            "documents:read in X-API-Key",
            Some(&read),
            true,
            Status(200),
            Lacks("documents:write"),
        ),
        (
            "documents:write",
            Some(&write),
            false,
            Lacks("documents:read"),
            Status(201),
        ),
        (
            "documents:*",
            Some(&documents_all),
            false,
            Status(200),
            Status(201),
        ),
        ("*", Some(&everything), true, Status(200), Status(201)),
        (
            "publishable (browser-safe)",
            Some(&widget),
            false,
            Status(200),
            Lacks("documents:write"),
        ),
        ("globex *", Some(&globex), false, Status(200), Status(201)),
    ];

    let mut created_for_acme = Vec::new();
    for (case, key, in_header, list, create) in cases {
        let reply = call(&server, false, key, in_header, "").await;
        list.check(&reply, case);
        let reply = call(&server, true, key, in_header, case).await;
        if let Some(created) = create.check(&reply, case) {
            let merchant = if case.starts_with("globex") {
                "globex"
            } else {
                "acme"
            };
            assert_eq!(created["merchantId"], merchant, "{case}: {reply:?}");
            assert_eq!(created["title"], case, "{case}: {reply:?}");
            if merchant == "acme" {
                created_for_acme.push(created["id"].as_str().expect("an id").to_owned());
            }
        }
    }

    // Only the admitted writes created anything, each for its key's merchant.
    let mut listed = listed_ids(&server, &everything).await;
    listed.sort();
    created_for_acme.sort();
    assert_eq!(listed, created_for_acme);
    assert_eq!(listed_ids(&server, &globex).await.len(), 1);

    // Refused keys are logged by their prefix only, never whole.
    let logged = |log: &str| log.contains(&revoked.key[..12]) && log.contains(&unknown[..12]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logged(&server.log()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = server.log();
    assert!(logged(&log), "the refused keys are not logged:\n{log}");
    for key in [&revoked.key, &unknown] {
        assert!(!log.contains(key.as_str()), "a whole key is logged:\n{log}");
    }

    // Every refusal is counted by reason.
    let metrics = scrape(&server).await;
    for (reason, expected) in [
        ("missing_api_key", 2),
        ("unknown_api_key", 2),
        ("revoked_api_key", 2),
        // sessions:read twice, documents:read (twice), documents:write, publishable.
        ("insufficient_permissions", 6),
    ] {
        assert_eq!(
            counter(&metrics, AUTH_FAILURES, &[("reason", reason)]),
            expected,
            "{reason}:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn another_merchants_key_never_reads_or_changes_a_document() {
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    create_merchant(&workdir, "globex", &["globex-store.com"]);
    let acme = create_key(&workdir, "acme", "secret", &["*"]).key;
    let globex = create_key(&workdir, "globex", "secret", &["*"]).key;
    let server = Launch::serve().start_in(workdir).await;
    let client = client();

    let reply = call(&server, true, Some(&acme), false, "Acme secret pricing").await;
    let original = reply.success(201);
    let id = original["id"].as_str().expect("a document id").to_owned();
    let one = server.url(&format!("{DOCUMENTS}/{id}"));

    let attempts = [
        client.get(&one).bearer_auth(&globex),
        client
            .put(&one)
            .bearer_auth(&globex)
            .json(&document("Defaced")),
        client.delete(&one).bearer_auth(&globex),
    ];
    for attempt in attempts {
        let reply = Reply::of(attempt).await;
        reply.failure(404, "NOT_FOUND");
        assert!(!reply.body.contains("pricing"), "{reply:?}");
    }
    assert!(
        !listed_ids(&server, &globex).await.contains(&id),
        "globex lists acme's document"
    );

    let reply = Reply::of(client.get(&one).bearer_auth(&acme)).await;
    assert_eq!(reply.success(200), original, "the document was changed");
}

/// Polls `GET /api/documents` with `key` on `server` until it is refused as invalid; fails
/// after `deadline`.
async fn refused_by(server: &Server, key: &IssuedKey, deadline: Instant) {
    loop {
        let reply = call(server, false, Some(&key.key), false, "").await;
        if reply.status == 401 {
            reply.failure(401, "INVALID_API_KEY");
            return;
        }
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(
            Instant::now() < deadline,
            "the revoked key still works at {}: {reply:?}",
            server.edge
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_every_edge_within_five_seconds() {
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    let key = create_key(&workdir, "acme", "secret", &["documents:read"]);
    // Two edges of one deployment: `serve` (edge A and the backend) and a second edge B in
    // front of the same backend, on the same database.
    // A budget the polling below cannot use up.
    let polled = |launch: Launch| {
        launch
            .env("MINDSHOP_AUTH_KEY_CACHE_TTL_SECS", "1")
            .env("MINDSHOP_LIMITS_DOCUMENTS", "100000")
    };
    let edge_a = polled(Launch::serve().env("MINDSHOP_INTERNAL_SECRET", SECRET))
        .start_in(workdir)
        .await;
    let edge_b = polled(edge_beside(&edge_a)).start().await;

    // In use (and cached) at both edges.
    for edge in [&edge_a, &edge_b] {
        call(edge, false, Some(&key.key), false, "")
            .await
            .success(200);
    }

    revoke_key(edge_a.workdir(), &key.id);
    let revoked = Instant::now();
    let deadline = revoked + Duration::from_secs(10);
    tokio::join!(
        refused_by(&edge_a, &key, deadline),
        refused_by(&edge_b, &key, deadline)
    );
    let took = revoked.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the revocation took {took:?} to reach both edges"
    );

    for edge in [&edge_a, &edge_b] {
        let refused =
            counter_reaching(edge, AUTH_FAILURES, &[("reason", "revoked_api_key")], 1).await;
        assert!(refused >= 1, "edge {} did not count the refusal", edge.edge);
    }
}

#[tokio::test]
async fn guessing_keys_from_one_address_is_throttled() {
    let server = Launch::serve()
        .env("MINDSHOP_LIMITS_REFUSED_PER_IP", "3")
        .start()
        .await;
    support::pipeline::room_in_window(60, Duration::from_secs(5)).await;
    let client = client();
    for guess in 0..3 {
        let reply = Reply::of(
            client
                .get(server.url(DOCUMENTS))
                .header("X-API-Key", format!("pk_test_guess{guess}")),
        )
        .await;
        reply.failure(401, "INVALID_API_KEY");
    }
    let reply = Reply::of(
        client
            .get(server.url(DOCUMENTS))
            .header("X-API-Key", "pk_test_guess3"),
    )
    .await;
    reply.failure(429, "RATE_LIMIT_EXCEEDED");
    assert!(reply.header("retry-after").is_some(), "{reply:?}");
}
