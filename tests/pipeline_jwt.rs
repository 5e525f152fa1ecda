//! Portal tokens on `GET /api/merchants/acme/settings`: the HS256 tokens `mindshop admin token`
//! issues, tokens a client forges or lets expire, the merchant-access rule, a configured issuer,
//! audience and longest lifetime, and RS256 with a configured public key (where an HS256 token
//! keyed with that public key must not pass).

mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{Value, json};
use support::pipeline::{
    counter, create_key, create_merchant, jwt_secret, portal_token, scrape, unix_now,
};
use support::{Launch, Reply, Server, Workdir, client};

const SETTINGS: &str = "/api/merchants/acme/settings";
const AUTH_FAILURES: &str = "mindshop_auth_failures_total";
/// The edge's default clock tolerance for `exp` and `nbf` (`auth.jwt_leeway_secs`).
const LEEWAY_SECS: u64 = 30;

/// Claims of a portal user of `merchant` whose token expires at `exp`.
fn claims(merchant: &str, roles: &[&str], exp: u64) -> Value {
    json!({
        "sub": format!("user-of-{merchant}"),
        "merchantId": merchant,
        "roles": roles,
        "iat": unix_now() - 600,
        "exp": exp,
    })
}

fn sign(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).expect("sign a token")
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    sign(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

/// An unsigned token: header `{"alg":"none"}` and an empty signature.
fn unsigned(claims: &Value) -> String {
    let part = |value: Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!(
        "{}.{}.",
        part(json!({"alg": "none", "typ": "JWT"})),
        part(claims.clone())
    )
}

async fn settings_with(server: &Server, token: &str) -> Reply {
    Reply::of(client().get(server.url(SETTINGS)).bearer_auth(token)).await
}

/// `serve` with merchants `acme` and `globex`.
async fn portal(launch: Launch, workdir: Workdir) -> Server {
    create_merchant(&workdir, "acme", &["merchant-store.com"]);
    create_merchant(&workdir, "globex", &["globex-store.com"]);
    launch.start_in(workdir).await
}

#[tokio::test]
async fn hs256_portal_tokens_are_checked_at_the_edge() {
    let server = portal(Launch::serve(), Workdir::new()).await;
    let workdir = server.workdir();
    let secret = jwt_secret(workdir);
    let now = unix_now();
    let in_an_hour = now + 3600;

    // Valid: the merchant's own user, from the admin CLI.
    let own = portal_token(workdir, "acme", &[]);
    let reply = settings_with(&server, &own).await;
    let settings = reply.success(200);
    assert_eq!(settings["merchantId"], "acme", "{reply:?}");
    assert_eq!(settings["allowedDomains"], json!(["merchant-store.com"]));

    // An admin of another merchant may act on every merchant.
    let admin = portal_token(workdir, "globex", &["--role", "admin"]);
    assert_eq!(
        settings_with(&server, &admin).await.success(200)["merchantId"],
        "acme"
    );

    // Expired a moment ago: still within the leeway.
    let lately = hs256(&claims("acme", &[], now - 5), secret.as_bytes());
    settings_with(&server, &lately).await.success(200);

    let refused: [(&str, String, u16, &str); 6] = [
        (
            "expired beyond the leeway",
            hs256(
                &claims("acme", &[], now - LEEWAY_SECS - 60),
                secret.as_bytes(),
            ),
            401,
            "INVALID_TOKEN",
        ),
        (
            "not valid yet",
            hs256(
                &json!({"sub": "u", "merchantId": "acme", "exp": in_an_hour, "nbf": now + 600}),
                secret.as_bytes(),
            ),
            401,
            "INVALID_TOKEN",
        ),
        (
            "wrong signature",
            hs256(
                &claims("acme", &["admin"], in_an_hour),
                b"not-the-portal-secret-not-the-portal-secret",
            ),
            401,
            "INVALID_TOKEN",
        ),
        (
            "alg none",
            unsigned(&claims("acme", &["admin"], in_an_hour)),
            401,
            "INVALID_TOKEN",
        ),
        (
            "another merchant's user",
            portal_token(workdir, "globex", &[]),
            403,
            "FORBIDDEN",
        ),
        ("not a token", "garbage".to_owned(), 401, "INVALID_TOKEN"),
    ];
    for (case, token, status, code) in &refused {
        let reply = settings_with(&server, token).await;
        let envelope = reply.failure(*status, code);
        if *status == 403 {
            assert_eq!(envelope["error"], "Access denied", "{case}: {reply:?}");
        }
        assert!(
            !reply.body.contains("merchant-store.com"),
            "{case}: the settings leaked: {reply:?}"
        );
    }

    // A token re-signed after its payload was changed is a wrong signature.
    let mut parts: Vec<String> = own.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims("acme", &["admin"], in_an_hour).to_string());
    settings_with(&server, &parts.join("."))
        .await
        .failure(401, "INVALID_TOKEN");

    // Refusals are counted by reason.
    let metrics = scrape(&server).await;
    for reason in [
        "jwt_expired",
        "jwt_not_yet_valid",
        "jwt_bad_signature",
        "merchant_access_denied",
    ] {
        assert!(
            counter(&metrics, AUTH_FAILURES, &[("reason", reason)]) >= 1,
            "{reason} not counted:\n{metrics}"
        );
    }
    let unsigned_or_garbage = counter(&metrics, AUTH_FAILURES, &[("reason", "jwt_malformed")])
        + counter(
            &metrics,
            AUTH_FAILURES,
            &[("reason", "jwt_wrong_algorithm")],
        );
    assert!(unsigned_or_garbage >= 2, "{metrics}");
}

#[tokio::test]
async fn an_api_key_or_nothing_on_a_portal_route_asks_for_a_token() {
    let workdir = Workdir::new();
    let server = portal(Launch::serve(), workdir).await;
    let key = create_key(server.workdir(), "acme", "secret", &["*"]).key;
    let client = client();

    for request in [
        client.get(server.url(SETTINGS)).bearer_auth(&key),
        client.get(server.url(SETTINGS)).header("X-API-Key", &key),
        client.get(server.url(SETTINGS)),
    ] {
        let reply = Reply::of(request).await;
        reply.failure(401, "TOKEN_REQUIRED");
        assert!(!reply.body.contains("merchant-store.com"), "{reply:?}");
    }
    let metrics = scrape(&server).await;
    assert_eq!(
        counter(&metrics, AUTH_FAILURES, &[("reason", "missing_token")]),
        3,
        "{metrics}"
    );
}

/// `auth.jwt_issuer`, `auth.jwt_audience` and `auth.jwt_max_lifetime_secs`, as an operator
/// sets them in the environment of `serve` and of `mindshop admin token`.
const CLAIM_RULES: [(&str, &str); 3] = [
    ("MINDSHOP_AUTH_JWT_ISSUER", "https://portal.example"),
    ("MINDSHOP_AUTH_JWT_AUDIENCE", "mindshop-api"),
    ("MINDSHOP_AUTH_JWT_MAX_LIFETIME_SECS", "900"),
];

/// The payload of a compact JWT, unchecked.
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a three-part token");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url payload"))
        .expect("a JSON payload")
}

#[tokio::test]
async fn a_configured_issuer_audience_and_lifetime_are_required() {
    let mut launch = Launch::serve();
    for (name, value) in CLAIM_RULES {
        launch = launch.env(name, value);
    }
    let server = portal(launch, Workdir::new()).await;
    let workdir = server.workdir();
    let secret = jwt_secret(workdir);
    let now = unix_now();
    let with = |extra: Value, exp: u64| {
        let mut claims = claims("acme", &[], exp);
        for (name, value) in extra.as_object().expect("an object") {
            claims[name] = value.clone();
        }
        hs256(&claims, secret.as_bytes())
    };
    let both = json!({"iss": "https://portal.example", "aud": "mindshop-api"});

    // The admin CLI issues what the edge accepts: iss, aud, and no more than the maximum.
    let issued = workdir
        .run(&["admin", "token", "--merchant", "acme"], &CLAIM_RULES)
        .json();
    let cli_token = issued["token"].as_str().expect("a token").to_owned();
    let cli_claims = payload(&cli_token);
    assert_eq!(cli_claims["iss"], "https://portal.example", "{cli_claims}");
    assert_eq!(cli_claims["aud"], "mindshop-api", "{cli_claims}");
    let lifetime = cli_claims["exp"].as_i64().unwrap() - cli_claims["iat"].as_i64().unwrap();
    assert_eq!(
        lifetime, 900,
        "the default hour shrinks to the maximum: {cli_claims}"
    );
    settings_with(&server, &cli_token).await.success(200);
    workdir
        .run(
            &["admin", "token", "--merchant", "acme", "--ttl", "86400"],
            &CLAIM_RULES,
        )
        .fails_with("auth.jwt_max_lifetime_secs");

    settings_with(&server, &with(both.clone(), now + 600))
        .await
        .success(200);
    let refused = [
        (
            "no iss",
            with(json!({"aud": "mindshop-api"}), now + 600),
            "issuer",
            "jwt_missing_issuer",
        ),
        (
            "no aud",
            with(json!({"iss": "https://portal.example"}), now + 600),
            "audience",
            "jwt_missing_audience",
        ),
        (
            "another audience",
            with(
                json!({"iss": "https://portal.example", "aud": "other-api"}),
                now + 600,
            ),
            "audience",
            "jwt_wrong_audience",
        ),
        (
            "valid for a year",
            with(both.clone(), now + 365 * 24 * 3600),
            "expires further ahead",
            "jwt_lifetime_too_long",
        ),
    ];
    for (case, token, says, _) in &refused {
        let reply = settings_with(&server, token).await;
        let envelope = reply.failure(401, "INVALID_TOKEN");
        let error = envelope["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{case}: {reply:?}");
        assert!(
            !reply.body.contains("merchant-store.com"),
            "{case}: {reply:?}"
        );
    }
    let metrics = scrape(&server).await;
    for (case, _, _, reason) in refused {
        assert!(
            counter(&metrics, AUTH_FAILURES, &[("reason", reason)]) >= 1,
            "{case}: {reason} not counted:\n{metrics}"
        );
    }
}

/// A fresh 2048-bit RSA key pair: the private key as PKCS#1 PEM, the public key as SPKI PEM
/// (what `openssl rsa -pubout` writes).
fn rsa_key_pair() -> (String, String) {
    let mut rng = rsa::rand_core::OsRng;
    let private = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("generate an RSA key");
    let private_pem = private
        .to_pkcs1_pem(LineEnding::LF)
        .expect("encode the private key")
        .to_string();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("encode the public key");
    (private_pem, public_pem)
}

#[tokio::test]
async fn rs256_tokens_verify_with_the_public_key_and_no_hs256_confusion_passes() {
    let (private_pem, public_pem) = rsa_key_pair();
    let (other_private_pem, _) = rsa_key_pair();
    let workdir = Workdir::new();
    let public_key_file = workdir.path().join("portal-public.pem");
    std::fs::write(&public_key_file, &public_pem).expect("write the public key");
    let server = portal(
        Launch::serve()
            .env("MINDSHOP_AUTH_JWT_ALGORITHM", "RS256")
            .env(
                "MINDSHOP_AUTH_JWT_PUBLIC_KEY_FILE",
                &public_key_file.display().to_string(),
            ),
        workdir,
    )
    .await;
    let in_an_hour = unix_now() + 3600;
    let rs256 = |claims: &Value, pem: &str| {
        sign(
            &Header::new(Algorithm::RS256),
            claims,
            &EncodingKey::from_rsa_pem(pem.as_bytes()).expect("an RSA private key"),
        )
    };

    let valid = rs256(&claims("acme", &[], in_an_hour), &private_pem);
    assert_eq!(
        settings_with(&server, &valid).await.success(200)["merchantId"],
        "acme"
    );
    // The merchant rule holds whatever the algorithm.
    let other = rs256(&claims("globex", &[], in_an_hour), &private_pem);
    settings_with(&server, &other)
        .await
        .failure(403, "FORBIDDEN");

    let refused = [
        // The classic confusion: HS256 keyed with the (public) PEM text.
        (
            "hs256 keyed with the public key",
            hs256(
                &claims("acme", &["admin"], in_an_hour),
                public_pem.as_bytes(),
            ),
        ),
        (
            "signed by another key",
            rs256(&claims("acme", &[], in_an_hour), &other_private_pem),
        ),
        (
            "alg none",
            unsigned(&claims("acme", &["admin"], in_an_hour)),
        ),
        // HS256 with the data directory's secret: not the configured algorithm.
        (
            "hs256 from the admin CLI",
            portal_token(server.workdir(), "acme", &[]),
        ),
    ];
    for (case, token) in refused {
        let reply = settings_with(&server, &token).await;
        reply.failure(401, "INVALID_TOKEN");
        assert!(
            !reply.body.contains("merchant-store.com"),
            "{case}: {reply:?}"
        );
    }
}
