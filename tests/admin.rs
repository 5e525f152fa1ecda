//! Operator commands: `mindshop admin …` on a fresh SQLite file, and `mindshop config check`.

mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use support::{SECRET, Workdir};

/// A work directory holding the merchant `acme`.
fn with_acme() -> Workdir {
    let workdir = Workdir::new();
    workdir
        .admin(&[
            "merchant", "create", "--id", "acme", "--name", "Acme", "--domain", "acme.com",
        ])
        .json();
    workdir
}

#[test]
fn merchants_are_created_once_and_listed() {
    let workdir = Workdir::new();
    let create = [
        "merchant", "create", "--id", "acme", "--name", "Acme", "--domain", "acme.com",
    ];
    let merchant = workdir.admin(&create).json();
    assert_eq!(merchant["id"], "acme");
    assert_eq!(merchant["name"], "Acme");
    assert_eq!(merchant["allowedDomains"], serde_json::json!(["acme.com"]));

    workdir.admin(&create).fails_with("already exists");

    let list = workdir.admin(&["merchant", "list"]).json();
    let ids: Vec<&str> = list
        .as_array()
        .expect("a JSON array of merchants")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["acme"], "{list}");
}

#[test]
fn keys_are_created_with_their_kind_env_and_permissions() {
    let workdir = with_acme();

    let publishable = workdir
        .admin(&[
            "key",
            "create",
            "--merchant",
            "acme",
            "--kind",
            "publishable",
        ])
        .json();
    let key = publishable["key"].as_str().expect("the key, shown once");
    assert!(key.starts_with("pk_test_"), "{publishable}");
    assert!(publishable["id"].as_str().is_some_and(|id| !id.is_empty()));
    let permissions = publishable["permissions"].as_array().expect("permissions");
    assert!(!permissions.is_empty(), "{publishable}");
    assert!(
        !permissions
            .iter()
            .any(|p| p == "*" || p == "documents:write"),
        "a publishable key must only hold browser-safe permissions: {publishable}"
    );

    let secret = workdir
        .admin(&[
            "key",
            "create",
            "--merchant",
            "acme",
            "--kind",
            "secret",
            "--env",
            "live",
            "--permission",
            "documents:read",
        ])
        .json();
    assert!(
        secret["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("sk_live_")),
        "{secret}"
    );
    assert_eq!(secret["permissions"], serde_json::json!(["documents:read"]));
}

#[test]
fn a_merchant_cannot_be_created_on_a_public_suffix() {
    let workdir = Workdir::new();
    for suffix in ["co.uk", "MyShopify.com"] {
        workdir
            .admin(&[
                "merchant", "create", "--id", "acme", "--name", "Acme", "--domain", "acme.com",
                "--domain", suffix,
            ])
            .fails_with(&format!(
                "\"{}\" is a public suffix",
                suffix.to_ascii_lowercase()
            ));
    }
    assert_eq!(
        workdir.admin(&["merchant", "list"]).json(),
        serde_json::json!([]),
        "no merchant was created"
    );
    let merchant = workdir
        .admin(&[
            "merchant",
            "create",
            "--id",
            "acme",
            "--name",
            "Acme",
            "--domain",
            "acme.myshopify.com",
        ])
        .json();
    assert_eq!(
        merchant["allowedDomains"],
        serde_json::json!(["acme.myshopify.com"])
    );
}

#[test]
fn invalid_key_requests_are_refused() {
    let workdir = with_acme();
    workdir
        .admin(&["key", "create", "--merchant", "nobody", "--kind", "secret"])
        .fails_with("not found");
    workdir
        .admin(&[
            "key",
            "create",
            "--merchant",
            "acme",
            "--kind",
            "secret",
            "--permission",
            "documents:fly",
        ])
        .fails_with("unknown permission");
    workdir
        .admin(&[
            "key",
            "create",
            "--merchant",
            "acme",
            "--kind",
            "publishable",
            "--permission",
            "documents:write",
        ])
        .fails_with("documents:write");

    // None of them left a key behind.
    let keys = workdir.admin(&["key", "list", "--merchant", "acme"]).json();
    assert_eq!(keys, serde_json::json!([]));
}

#[test]
fn keys_are_listed_by_prefix_revoked_and_stored_only_as_hashes() {
    let workdir = with_acme();
    let created = workdir
        .admin(&["key", "create", "--merchant", "acme", "--kind", "secret"])
        .json();
    let key = created["key"].as_str().expect("the key").to_owned();
    let id = created["id"].as_str().expect("the key id").to_owned();

    let listed = workdir.admin(&["key", "list", "--merchant", "acme"]).json();
    let listed = listed.as_array().expect("a JSON array of keys");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    let prefix = listed[0]["prefix"].as_str().expect("a prefix");
    assert!(
        key.starts_with(prefix) && prefix.len() < key.len(),
        "prefix {prefix:?} of {key:?}"
    );
    assert!(listed[0].get("key").is_none(), "{listed:?}");
    assert!(listed[0]["revokedAt"].is_null(), "{listed:?}");
    let listed_text = serde_json::to_string(listed).expect("JSON");
    assert!(!listed_text.contains(&key), "the list shows the key");

    let revoked = workdir.admin(&["key", "revoke", "--id", &id]).json();
    assert_eq!(revoked["id"], id.as_str());
    assert!(revoked["revokedAt"].is_string(), "{revoked}");
    let listed = workdir.admin(&["key", "list", "--merchant", "acme"]).json();
    assert!(listed[0]["revokedAt"].is_string(), "{listed}");

    // The database file (and its write-ahead log, if any) holds the hash, never the key.
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(workdir.path().join("data")).expect("the data directory") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("mindshop.db") {
            stored.extend(std::fs::read(&path).expect("read the database file"));
        }
    }
    assert!(!stored.is_empty(), "no database file under data/");
    let contains = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(key.as_bytes()),
        "the plaintext key is in the database"
    );
    let hash = mindshop_wire::api_key::hash(&key);
    assert!(
        contains(hash.as_bytes()),
        "the key's SHA-256 is not in the database"
    );
}

#[test]
fn portal_tokens_are_signed_with_the_data_directory_secret() {
    let workdir = with_acme();
    let issued = workdir
        .admin(&["token", "--merchant", "acme", "--role", "admin"])
        .json();
    let token = issued["token"].as_str().expect("a token");

    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(parts[1])
            .expect("a base64url payload"),
    )
    .expect("a JSON payload");
    assert_eq!(payload["merchantId"], "acme", "{payload}");
    assert_eq!(payload["roles"], serde_json::json!(["admin"]), "{payload}");
    let iat = payload["iat"].as_i64().expect("iat");
    let exp = payload["exp"].as_i64().expect("exp");
    assert!(exp > iat, "{payload}");

    let secret = std::fs::read_to_string(workdir.path().join("data/jwt_secret"))
        .expect("the generated JWT secret");
    let validation = Validation::new(Algorithm::HS256);
    let verified = jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(secret.trim_end().as_bytes()),
        &validation,
    )
    .expect("the token verifies with data/jwt_secret");
    assert_eq!(verified.claims["merchantId"], "acme");
    assert!(
        jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_secret(SECRET.as_bytes()),
            &validation
        )
        .is_err(),
        "the token must not verify with another secret"
    );

    workdir
        .admin(&["token", "--merchant", "nobody", "--role", "admin"])
        .fails_with("not found");
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_redacted() {
    let workdir = Workdir::new();
    let shown = workdir.run(
        &["config", "check"],
        &[
            ("MINDSHOP_INTERNAL_SECRET", SECRET),
            ("MINDSHOP_EDGE_LISTEN", "127.0.0.1:18080"),
        ],
    );
    assert!(shown.status.success(), "{shown:?}");
    assert!(
        shown.stdout.contains("listen = \"127.0.0.1:18080\""),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("listen = \"127.0.0.1:8081\""),
        "the backend's default listen address: {}",
        shown.stdout
    );
    assert!(shown.stdout.contains("[redacted]"), "{}", shown.stdout);
    assert!(
        !shown.stdout.contains(SECRET) && !shown.stderr.contains(SECRET),
        "the secret is printed: {shown:?}"
    );
}

#[test]
fn config_check_names_an_invalid_key() {
    let workdir = Workdir::new();
    let checked = workdir.run(
        &["config", "check"],
        &[("MINDSHOP_EDGE_LISTEN", "nonsense")],
    );
    checked.fails_with("edge.listen");
    assert!(checked.stdout.is_empty(), "{checked:?}");
}
