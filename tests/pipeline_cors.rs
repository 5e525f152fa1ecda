//! The widget's CORS, seen from a merchant's storefront: the merchant `acme` lists
//! `merchant-store.com`, and its publishable key opens chat sessions from pages there (and
//! nowhere else); preflights are answered at the edge; refusals are counted on `/metrics`.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use support::pipeline::{
    IssuedKey, counter, counter_reaching, create_key, create_merchant, header_lists, portal_token,
    scrape,
};
use support::{Launch, Reply, Server, Workdir, client};

const STORE: &str = "https://merchant-store.com";
/// The domain of another merchant, `globex`.
const OTHER_STORE: &str = "https://globex-store.com";
const REJECTIONS: &str = "mindshop_cors_rejections_total";

/// `serve` with two merchants and a publishable (widget) key each.
struct Storefronts {
    server: Server,
    acme: IssuedKey,
    globex: IssuedKey,
}

async fn storefronts(launch: Launch) -> Storefronts {
    let workdir = Workdir::new();
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    create_merchant(&workdir, "globex", &["globex-store.com"]);
    let acme = create_key(&workdir, "acme", "publishable", &[]);
    assert!(acme.key.starts_with("pk_test_"), "{acme:?}");
    let globex = create_key(&workdir, "globex", "publishable", &[]);
    Storefronts {
        server: launch.start_in(workdir).await,
        acme,
        globex,
    }
}

/// What the widget sends to open a chat session: `Authorization: Bearer pk_…`, JSON, and the
/// page's `Origin` when there is one.
async fn open_session(server: &Server, key: &str, origin: Option<&str>) -> Reply {
    let mut request = client()
        .post(server.url("/api/chat/sessions"))
        .bearer_auth(key)
        .json(&json!({"userId": "u1"}));
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    Reply::of(request).await
}

/// A browser's preflight for the widget's `POST`.
async fn preflight(server: &Server, origin: &str) -> Reply {
    Reply::of(
        client()
            .request(Method::OPTIONS, server.url("/api/chat/sessions"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
    )
    .await
}

/// Checks the headers that let the page's script read an admitted answer.
fn assert_readable_by(reply: &Reply, origin: &str) {
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(origin),
        "{reply:?}"
    );
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true"),
        "{reply:?}"
    );
    assert!(header_lists(reply, "vary", "Origin"), "{reply:?}");
    for exposed in [
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-Request-ID",
    ] {
        assert!(
            header_lists(reply, "access-control-expose-headers", exposed),
            "{exposed} not exposed: {reply:?}"
        );
    }
}

/// Checks a 403 `CORS_ORIGIN_NOT_ALLOWED` that a page's script cannot read.
fn assert_origin_refused(reply: &Reply, origin: &str) {
    reply.failure(403, "CORS_ORIGIN_NOT_ALLOWED");
    assert_eq!(
        reply.header("access-control-allow-origin"),
        None,
        "{origin}: {reply:?}"
    );
}

#[tokio::test]
async fn the_widget_opens_a_session_from_the_merchants_domain_and_its_subdomains() {
    let shops = storefronts(Launch::serve()).await;
    for origin in [STORE, "https://shop.merchant-store.com"] {
        let reply = open_session(&shops.server, &shops.acme.key, Some(origin)).await;
        let session = reply.success(200);
        assert!(
            session["sessionId"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{origin}: {reply:?}"
        );
        assert_eq!(session["merchantId"], "acme", "{origin}: {reply:?}");
        assert_readable_by(&reply, origin);
        // The page can also read its rate-limit budget.
        assert!(
            reply.header("x-ratelimit-remaining").is_some(),
            "{origin}: {reply:?}"
        );
    }
}

#[tokio::test]
async fn look_alike_and_null_origins_are_refused_and_counted() {
    let shops = storefronts(Launch::serve()).await;
    let before = counter(&scrape(&shops.server).await, REJECTIONS, &[]);

    let refused = [
        "https://merchant-store.com.evil.io",
        "https://evilmerchant-store.com",
        "null",
    ];
    for origin in refused {
        let reply = open_session(&shops.server, &shops.acme.key, Some(origin)).await;
        assert_origin_refused(&reply, origin);
    }

    let expected = before + refused.len() as u64;
    let after = counter_reaching(&shops.server, REJECTIONS, &[], expected).await;
    assert_eq!(
        after,
        expected,
        "{REJECTIONS} was {before} before {} refusals:\n{}",
        refused.len(),
        scrape(&shops.server).await
    );
    // `null` is told apart from a well-formed origin that is not allowed.
    let metrics = scrape(&shops.server).await;
    assert!(
        counter(&metrics, REJECTIONS, &[("reason", "malformed_origin")]) >= 1,
        "{metrics}"
    );
    assert!(
        counter(&metrics, REJECTIONS, &[("reason", "origin_not_allowed")]) >= 2,
        "{metrics}"
    );
}

#[tokio::test]
async fn preflights_are_answered_at_the_edge_for_admitted_origins_only() {
    let shops = storefronts(Launch::serve().env("MINDSHOP_CORS_MAX_AGE_SECS", "900")).await;

    let reply = preflight(&shops.server, STORE).await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert!(reply.body.is_empty(), "{reply:?}");
    assert!(!reply.request_id().is_empty());
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(STORE),
        "{reply:?}"
    );
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true"),
        "{reply:?}"
    );
    assert!(
        header_lists(&reply, "access-control-allow-methods", "POST"),
        "{reply:?}"
    );
    for allowed in [
        "Content-Type",
        "Authorization",
        "X-API-Key",
        "X-Impersonation-Token",
        "X-Request-ID",
        "X-Merchant-ID",
        "X-User-ID",
    ] {
        assert!(
            header_lists(&reply, "access-control-allow-headers", allowed),
            "{allowed} not allowed: {reply:?}"
        );
    }
    assert_eq!(
        reply.header("access-control-max-age"),
        Some("900"),
        "{reply:?}"
    );
    assert!(header_lists(&reply, "vary", "Origin"), "{reply:?}");

    for origin in [
        "https://unknown-shop.com",
        "https://merchant-store.com.evil.io",
    ] {
        let reply = preflight(&shops.server, origin).await;
        assert_origin_refused(&reply, origin);
    }
}

#[tokio::test]
async fn another_merchants_domain_passes_the_preflight_but_not_with_acmes_key() {
    let shops = storefronts(Launch::serve()).await;

    // Some merchant (globex) admits the origin, so the browser may go on…
    let reply = preflight(&shops.server, OTHER_STORE).await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(OTHER_STORE)
    );

    // …but the actual request is held to the key's own merchant.
    let reply = open_session(&shops.server, &shops.acme.key, Some(OTHER_STORE)).await;
    assert_origin_refused(&reply, OTHER_STORE);

    // Globex's own key works there, and not on acme's domain.
    let reply = open_session(&shops.server, &shops.globex.key, Some(OTHER_STORE)).await;
    assert_eq!(reply.success(200)["merchantId"], "globex");
    assert_readable_by(&reply, OTHER_STORE);
    let reply = open_session(&shops.server, &shops.globex.key, Some(STORE)).await;
    assert_origin_refused(&reply, STORE);
}

#[tokio::test]
async fn global_allowed_origins_admit_every_key_with_their_exact_scheme_and_port() {
    const LOCAL: &str = "http://localhost:3000";
    let shops = storefronts(Launch::serve().env("MINDSHOP_CORS_ALLOWED_ORIGINS", LOCAL)).await;

    for key in [&shops.acme.key, &shops.globex.key] {
        let reply = open_session(&shops.server, key, Some(LOCAL)).await;
        reply.success(200);
        assert_readable_by(&reply, LOCAL);
    }
    let reply = preflight(&shops.server, LOCAL).await;
    assert_eq!(reply.status, 204, "{reply:?}");

    // Another port or scheme is another origin.
    for origin in ["http://localhost:3001", "https://localhost:3000"] {
        let reply = open_session(&shops.server, &shops.acme.key, Some(origin)).await;
        assert_origin_refused(&reply, origin);
    }
}

#[tokio::test]
async fn a_request_without_origin_is_not_a_cors_request_and_passes() {
    let shops = storefronts(Launch::serve()).await;
    let reply = open_session(&shops.server, &shops.acme.key, None).await;
    assert_eq!(reply.success(200)["merchantId"], "acme");
    assert_eq!(
        reply.header("access-control-allow-origin"),
        None,
        "{reply:?}"
    );
    // The merchant in the body must be the key's own.
    let reply = Reply::of(
        client()
            .post(shops.server.url("/api/chat/sessions"))
            .bearer_auth(&shops.acme.key)
            .json(&json!({"userId": "u1", "merchantId": "globex"})),
    )
    .await;
    reply.failure(403, "MERCHANT_MISMATCH");
}

#[tokio::test]
async fn a_refused_key_from_an_admitted_origin_gets_an_answer_the_page_can_read() {
    let shops = storefronts(Launch::serve()).await;
    let unknown = "pk_test_00000000000000000000000000000000";
    let reply = open_session(&shops.server, unknown, Some(STORE)).await;
    reply.failure(401, "INVALID_API_KEY");
    assert_readable_by(&reply, STORE);

    let reply = Reply::of(
        client()
            .post(shops.server.url("/api/chat/sessions"))
            .header("Origin", STORE)
            .json(&json!({"userId": "u1"})),
    )
    .await;
    reply.failure(401, "API_KEY_REQUIRED");
    assert_readable_by(&reply, STORE);
}

#[tokio::test]
async fn a_change_of_allowed_domains_reaches_the_edge_within_five_seconds() {
    const NEW_STORE: &str = "https://new-store.com";
    let shops = storefronts(
        Launch::serve()
            .env("MINDSHOP_AUTH_KEY_CACHE_TTL_SECS", "1")
            // Budgets the polling below cannot use up.
            .env("MINDSHOP_LIMITS_CHAT", "100000")
            .env("MINDSHOP_LIMITS_WIDGET_PER_IP", "100000"),
    )
    .await;
    let token = portal_token(shops.server.workdir(), "acme", &[]);
    let settings = shops.server.url("/api/merchants/acme/settings");

    // The key is in use (and cached) on the old domain.
    open_session(&shops.server, &shops.acme.key, Some(STORE))
        .await
        .success(200);

    // Host names only: a URL is refused, naming the entry.
    let reply = Reply::of(
        client()
            .put(&settings)
            .bearer_auth(&token)
            .json(&json!({"allowedDomains": ["new-store.com", "https://x.com"]})),
    )
    .await;
    let refusal = reply.failure(400, "VALIDATION_ERROR");
    assert_eq!(refusal["field"], "allowedDomains[1]", "{reply:?}");

    let reply = Reply::of(
        client()
            .put(&settings)
            .bearer_auth(&token)
            .json(&json!({"allowedDomains": ["new-store.com"]})),
    )
    .await;
    assert_eq!(
        reply.success(200)["allowedDomains"],
        json!(["new-store.com"])
    );
    let changed = Instant::now();

    let deadline = changed + Duration::from_secs(10);
    loop {
        let new = open_session(&shops.server, &shops.acme.key, Some(NEW_STORE)).await;
        let old = open_session(&shops.server, &shops.acme.key, Some(STORE)).await;
        if new.status == 200 && old.status == 403 {
            assert_readable_by(&new, NEW_STORE);
            assert_origin_refused(&old, STORE);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new domains never took effect: {new:?} {old:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = changed.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the change took {took:?} to reach the edge"
    );
}

#[tokio::test]
async fn portal_routes_admit_the_portal_origins_only() {
    const PORTAL: &str = "https://portal.mindshop.test";
    let shops = storefronts(Launch::serve().env("MINDSHOP_CORS_PORTAL_ORIGINS", PORTAL)).await;
    let token = portal_token(shops.server.workdir(), "acme", &[]);
    let settings = shops.server.url("/api/merchants/acme/settings");
    let from = |origin: &str| {
        client()
            .get(&settings)
            .bearer_auth(&token)
            .header("Origin", origin)
    };

    let reply = Reply::of(from(PORTAL)).await;
    reply.success(200);
    assert_readable_by(&reply, PORTAL);
    let reply = Reply::of(
        client()
            .request(Method::OPTIONS, &settings)
            .header("Origin", PORTAL)
            .header("Access-Control-Request-Method", "PUT"),
    )
    .await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(reply.header("access-control-allow-origin"), Some(PORTAL));

    // A merchant's storefront is not the portal.
    let reply = Reply::of(from(STORE)).await;
    assert_origin_refused(&reply, STORE);
}
