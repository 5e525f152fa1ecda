//! What the pipeline tests (CORS, API keys, JWTs, rate limits) share:
//! - merchants, API keys and portal tokens made with `mindshop admin`, as an operator would;
//! - [`edge_beside`]: a second `mindshop edge` on the same database and data directory as a
//!   running `serve`, so a test sees what every edge of a deployment does;
//! - the counters of `/metrics`, read the way Prometheus would;
//! - [`room_in_window`], so a rate-limit sequence never straddles two windows.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Launch, Reply, SECRET, Server, Workdir, client};

/// How long a counter may take to show a request (the edge counts some in its logging phase,
/// just after the answer is sent).
const METRICS_DEADLINE: Duration = Duration::from_secs(10);

/// An API key as `mindshop admin key create` printed it, the only time the key is shown.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// The key's id (`key_…`), for revoking it.
    pub id: String,
    /// The key itself (`pk_test_…`, `sk_test_…`).
    pub key: String,
}

/// `mindshop admin merchant create --id <id> --name <id> --domain <d>…`.
pub fn create_merchant(workdir: &Workdir, id: &str, domains: &[&str]) {
    let mut args = vec!["merchant", "create", "--id", id, "--name", id];
    for domain in domains {
        args.extend(["--domain", domain]);
    }
    let merchant = workdir.admin(&args).json();
    assert_eq!(merchant["id"], id, "{merchant}");
}

/// `mindshop admin key create --merchant <m> --kind <kind> --permission <p>…`; no permission
/// means the kind's defaults.
pub fn create_key(
    workdir: &Workdir,
    merchant: &str,
    kind: &str,
    permissions: &[&str],
) -> IssuedKey {
    let mut args = vec!["key", "create", "--merchant", merchant, "--kind", kind];
    for permission in permissions {
        args.extend(["--permission", permission]);
    }
    let created = workdir.admin(&args).json();
    let field = |name: &str| {
        created[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {created}"))
            .to_owned()
    };
    IssuedKey {
        id: field("id"),
        key: field("key"),
    }
}

/// `mindshop admin key revoke --id <id>`.
pub fn revoke_key(workdir: &Workdir, id: &str) {
    let revoked = workdir.admin(&["key", "revoke", "--id", id]).json();
    assert!(revoked["revokedAt"].is_string(), "{revoked}");
}

/// `mindshop admin token --merchant <m> <extra…>` (e.g. `--role admin`, `--sub u2`).
pub fn portal_token(workdir: &Workdir, merchant: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "--merchant", merchant];
    args.extend_from_slice(extra);
    let issued = workdir.admin(&args).json();
    issued["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {issued}"))
        .to_owned()
}

/// The HS256 secret `serve` and `admin token` share: `data/jwt_secret` in the work directory.
pub fn jwt_secret(workdir: &Workdir) -> String {
    std::fs::read_to_string(workdir.path().join("data/jwt_secret"))
        .expect("read data/jwt_secret")
        .trim_end()
        .to_owned()
}

/// A document body the backend accepts.
pub fn document(title: &str) -> Value {
    json!({
        "title": title,
        "body": "We ship worldwide within 3 days.",
        "tags": ["shipping"],
        "url": "https://merchant-store.com/faq",
    })
}

/// The Standard Webhooks headers a merchant's platform signs a push with: `v1,` and the base64
/// HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed by the base64 part of the `whsec_` secret.
pub fn signed_push_headers(
    secret: &str,
    id: &str,
    body: &str,
    timestamp: u64,
) -> [(String, String); 3] {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, Mac};
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("a base64 secret");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let signature = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    [
        ("webhook-id".to_owned(), id.to_owned()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
        ("webhook-signature".to_owned(), signature),
    ]
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// `mindshop edge` in front of `serve`'s backend, reading the same `data/mindshop.db` and
/// `data/jwt_secret` (by absolute path; its own work directory holds only its log). `serve`
/// must have been started with `MINDSHOP_INTERNAL_SECRET` = [`SECRET`], so the backend trusts
/// both edges.
pub fn edge_beside(serve: &Server) -> Launch {
    let data = serve.workdir().path().join("data");
    let database = format!("sqlite://{}", data.join("mindshop.db").display());
    Launch::edge(SECRET, &[serve.backend])
        .env("MINDSHOP_DATA_DIR", &data.display().to_string())
        .env("MINDSHOP_DATABASE_URL", &database)
}

/// The server's `/metrics` text.
pub async fn scrape(server: &Server) -> String {
    let reply = Reply::of(client().get(server.metrics_url())).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body
}

/// The sum of every series of the counter `name` whose labels include `labels`; 0 when there
/// is none yet (a label set appears on its first increment).
pub fn counter(metrics: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let wanted: Vec<String> = labels.iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect();
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (series_labels, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once('}')?,
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            let series: Vec<&str> = series_labels.split(',').collect();
            wanted
                .iter()
                .all(|w| series.contains(&w.as_str()))
                .then(|| value.trim().parse::<f64>().expect("a counter value") as u64)
        })
        .sum()
}

/// Scrapes until [`counter`] reaches `at_least` (or a deadline passes) and returns its last
/// value, so the caller can assert the exact number.
pub async fn counter_reaching(
    server: &Server,
    name: &str,
    labels: &[(&str, &str)],
    at_least: u64,
) -> u64 {
    let deadline = Instant::now() + METRICS_DEADLINE;
    loop {
        let value = counter(&scrape(server).await, name, labels);
        if value >= at_least || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits, if need be, until the current rate-limit window (aligned to the Unix epoch, as the
/// limiter's are) has at least `needed` seconds left, so that a sequence of requests expected
/// to count down one budget is not split by a window boundary. This aligns with the clock; it
/// does not wait for the server.
pub async fn room_in_window(window_secs: u64, needed: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    let window = Duration::from_secs(window_secs);
    let into = Duration::from_millis((now.as_millis() % window.as_millis()) as u64);
    let left = window - into;
    if left < needed {
        tokio::time::sleep(left + Duration::from_millis(50)).await;
    }
}

/// Whether some value of the header `name` lists `item` (comma-separated, any case), as
/// `Vary: Accept-Encoding, Origin` lists `Origin`.
pub fn header_lists(reply: &Reply, name: &str, item: &str) -> bool {
    reply
        .headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|listed| listed.trim().eq_ignore_ascii_case(item))
}
