//! The webhook guide (`docs/WEBHOOK_INTEGRATION.md`) as a merchant's developer uses it: its Rust
//! and Node.js receivers accept genuine deliveries in either signature scheme and during a
//! secret rotation, and refuse changed, forged, stale and malformed ones without crashing; the
//! Node.js receiver processes a repeated event once; the guide's worked example and payloads
//! are right; and the Rust example compiled here is the one the guide shows.
//!
//! Every delivery is signed here with `hmac`, `sha2`, `base64` and `hex` directly, as the
//! backend signs one, never with the code under test.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::webhook_guide::{
    NodeReceiver, VerifyError, guide_block, guide_blocks, guide_payload, verify,
};

/// The endpoint's secret.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw+xBmA2a/Xzw=";
/// The endpoint's secret after a rotation, or another endpoint's.
const OTHER_SECRET: &str = "whsec_Ei5XAP+1rMim92oL775ihflPb1s+anmDxJLMSNdmJ0E=";
/// A secret that signs nothing here.
const STRANGER_SECRET: &str = "whsec_3rWBadc94Or9FSRZGgj5QL5aFrFcgW4C8xAxdm7lx3U=";
/// The receiver's clock in the tests of the Rust example alone: 2026-11-27T12:00:00Z.
const NOW: i64 = 1_795_780_800;
/// Six minutes: one past the tolerance.
const SIX_MINUTES: i64 = 6 * 60;
/// The event catalogue.
const EVENT_TYPES: [&str; 11] = [
    "chat.completed",
    "chat.failed",
    "document.created",
    "document.updated",
    "document.deleted",
    "session.created",
    "session.ended",
    "sync.started",
    "sync.completed",
    "sync.failed",
    "webhook.test",
];

/// A delivery as the backend sends it.
#[derive(Debug, Clone)]
struct Delivery {
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Delivery {
    /// Event `id` sent at `timestamp`, signed by `secrets`: the endpoint's current secret
    /// first, and during a rotation the old one after it.
    fn signed(id: &str, timestamp: i64, secrets: &[&str]) -> Self {
        let body = json!({
            "id": id,
            "event": "document.deleted",
            "timestamp": "2026-11-27T12:00:00.000Z",
            "data": {"id": "doc_01a21ce05f3b7d41a6c09e3f1b2d4c58", "merchantId": "acme"},
        })
        .to_string()
        .into_bytes();
        let standard: Vec<String> = secrets
            .iter()
            .map(|secret| standard_signature(secret, id, timestamp, &body))
            .collect();
        let headers = [
            ("Content-Type", "application/json".to_owned()),
            ("User-Agent", "mindshop-webhooks/1".to_owned()),
            ("X-Webhook-Id", id.to_owned()),
            ("X-Webhook-Timestamp", timestamp.to_string()),
            ("X-Webhook-Signature", hex_signature(secrets[0], &body)),
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", standard.join(" ")),
        ];
        Self {
            body,
            headers: headers
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
        }
    }

    /// The delivery as a receiver that verifies only `webhook-signature` sees it.
    fn standard_only(self) -> Self {
        self.without("X-Webhook-Signature")
    }

    /// The delivery as a receiver that verifies only `X-Webhook-Signature` sees it.
    fn hex_only(self) -> Self {
        self.without("webhook-signature")
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn with_header(self, name: &str, value: &str) -> Self {
        let mut delivery = self.without(name);
        delivery.headers.push((name.to_owned(), value.to_owned()));
        delivery
    }

    fn with_body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }

    /// The guide's Rust example on this delivery at [`NOW`].
    fn verify(&self, secret: &str) -> Result<(), VerifyError> {
        verify(secret, &self.headers, &self.body, NOW)
    }

    /// The delivery in each form a receiver may check: both signatures, and each alone.
    fn forms(self) -> [(&'static str, Delivery); 3] {
        [
            ("both signatures", self.clone()),
            ("webhook-signature alone", self.clone().standard_only()),
            ("X-Webhook-Signature alone", self.hex_only()),
        ]
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `X-Webhook-Signature`: hex HMAC of the body, keyed by the whole secret string.
fn hex_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
}

/// One `webhook-signature` entry: `v1,` and the base64 HMAC of `{id}.{timestamp}.{body}`,
/// keyed by the bytes after `whsec_`.
fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64 after whsec_");
    let signed = format!("{id}.{timestamp}.");
    format!(
        "v1,{}",
        BASE64.encode(hmac_sha256(&key, &[signed.as_bytes(), body]))
    )
}

/// `body` with `from` replaced by `to`.
fn replaced(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8_lossy(body).replace(from, to).into_bytes()
}

fn now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit in i64")
}

/// POSTs `delivery` to `url`: the answer's status and text.
async fn post_delivery(url: &str, delivery: &Delivery) -> (u16, String) {
    let mut request = support::client().post(url).body(delivery.body.clone());
    for (name, value) in &delivery.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.expect("POST the delivery");
    let status = response.status().as_u16();
    (status, response.text().await.expect("read the answer"))
}

// The Rust example.

#[test]
fn the_rust_example_accepts_a_genuine_delivery_in_either_scheme() {
    for (form, delivery) in Delivery::signed("evt_1", NOW, &[SECRET]).forms() {
        assert_eq!(delivery.verify(SECRET), Ok(()), "{form}");
        // Header names in any case, as HTTP allows.
        let shouting = Delivery {
            headers: delivery
                .headers
                .iter()
                .map(|(name, value)| (name.to_uppercase(), value.clone()))
                .collect(),
            ..delivery
        };
        assert_eq!(shouting.verify(SECRET), Ok(()), "{form}, upper-case names");
    }
    // Within the tolerance, either way.
    for sent in [NOW - 299, NOW + 299] {
        for (form, delivery) in Delivery::signed("evt_2", sent, &[SECRET]).forms() {
            assert_eq!(delivery.verify(SECRET), Ok(()), "{form}, sent at {sent}");
        }
    }
}

#[test]
fn the_rust_example_accepts_the_old_and_the_new_secret_during_a_rotation() {
    // Rotated from SECRET to OTHER_SECRET: "v1,<new> v1,<old>", the hex signature by the new.
    let delivery = Delivery::signed("evt_1", NOW, &[OTHER_SECRET, SECRET]);
    assert_eq!(
        delivery.verify(OTHER_SECRET),
        Ok(()),
        "a receiver on the new secret"
    );
    assert_eq!(
        delivery.verify(SECRET),
        Ok(()),
        "a receiver still on the old secret"
    );
    assert_eq!(
        delivery.verify(STRANGER_SECRET),
        Err(VerifyError::SignatureMismatch)
    );
    // A receiver that checks only the hex signature switches at the moment of rotation.
    let hex_only = delivery.hex_only();
    assert_eq!(hex_only.verify(OTHER_SECRET), Ok(()));
    assert_eq!(hex_only.verify(SECRET), Err(VerifyError::SignatureMismatch));
}

#[test]
fn the_rust_example_refuses_a_changed_body() {
    let delivery = Delivery::signed("evt_1", NOW, &[SECRET]);
    let parsed: Value = serde_json::from_slice(&delivery.body).unwrap();
    let mut trailing_space = delivery.body.clone();
    trailing_space.push(b' ');
    let changed = [
        ("another merchant", replaced(&delivery.body, "acme", "evil")),
        ("a trailing space", trailing_space),
        // What a receiver that verifies a re-serialized object would check.
        (
            "pretty-printed",
            serde_json::to_vec_pretty(&parsed).unwrap(),
        ),
        ("empty", Vec::new()),
    ];
    for (change, body) in changed {
        for (form, delivery) in delivery.clone().with_body(&body).forms() {
            assert_eq!(
                delivery.verify(SECRET),
                Err(VerifyError::SignatureMismatch),
                "{change}, {form}"
            );
        }
    }
}

#[test]
fn the_rust_example_refuses_another_secret() {
    for (form, delivery) in Delivery::signed("evt_1", NOW, &[OTHER_SECRET]).forms() {
        assert_eq!(
            delivery.verify(SECRET),
            Err(VerifyError::SignatureMismatch),
            "{form}"
        );
    }
}

#[test]
fn the_rust_example_refuses_a_stale_or_future_timestamp() {
    for (sent, age_secs) in [
        (NOW - SIX_MINUTES, SIX_MINUTES),
        (NOW + SIX_MINUTES, -SIX_MINUTES),
    ] {
        for (form, delivery) in Delivery::signed("evt_1", sent, &[SECRET]).forms() {
            assert_eq!(
                delivery.verify(SECRET),
                Err(VerifyError::StaleTimestamp { age_secs }),
                "{form}, sent at {sent}"
            );
        }
    }
    let delivery = Delivery::signed("evt_1", NOW, &[SECRET]);
    for (form, delivery) in delivery
        .with_header("webhook-timestamp", "soon")
        .with_header("X-Webhook-Timestamp", "soon")
        .forms()
    {
        assert_eq!(
            delivery.verify(SECRET),
            Err(VerifyError::InvalidTimestamp),
            "{form}"
        );
    }
}

#[test]
fn the_rust_example_refuses_malformed_signatures_without_panicking() {
    let delivery = Delivery::signed("evt_1", NOW, &[SECRET]);
    let genuine_standard = standard_signature(SECRET, "evt_1", NOW, &delivery.body);
    let genuine_hex = hex_signature(SECRET, &delivery.body);
    let standard = [
        String::new(),
        "v1,".to_owned(),
        format!("v1,{}", BASE64.encode([7_u8; 16])),
        format!("v1,{}", BASE64.encode([7_u8; 31])),
        format!("v1,{}", BASE64.encode([7_u8; 64])),
        "v1,not base64!".to_owned(),
        // Only `v1` signatures count.
        genuine_standard.replacen("v1,", "v2,", 1),
        genuine_standard.replacen("v1,", "", 1),
        // One character short, or one more.
        genuine_standard[..genuine_standard.len() - 1].to_owned(),
        format!("{genuine_standard}A"),
    ];
    for signature in standard {
        let delivery = delivery.clone().standard_only();
        assert_eq!(
            delivery
                .with_header("webhook-signature", &signature)
                .verify(SECRET),
            Err(VerifyError::SignatureMismatch),
            "webhook-signature {signature:?}"
        );
    }
    let hex = [
        String::new(),
        "abcd".to_owned(),
        genuine_hex[..62].to_owned(),
        genuine_hex[..63].to_owned(),
        format!("{genuine_hex}00"),
        "z".repeat(64),
        format!("sha256={genuine_hex}"),
    ];
    for signature in hex {
        let delivery = delivery.clone().hex_only();
        assert_eq!(
            delivery
                .with_header("X-Webhook-Signature", &signature)
                .verify(SECRET),
            Err(VerifyError::SignatureMismatch),
            "X-Webhook-Signature {signature:?}"
        );
    }
}

#[test]
fn the_rust_example_refuses_a_delivery_missing_a_header() {
    let delivery = Delivery::signed("evt_1", NOW, &[SECRET]);
    let missing = [
        (delivery.clone().without("webhook-id"), "webhook-id"),
        (
            delivery.clone().without("webhook-timestamp"),
            "webhook-timestamp",
        ),
        (
            delivery.clone().hex_only().without("X-Webhook-Timestamp"),
            "x-webhook-timestamp",
        ),
        (
            delivery.clone().standard_only().hex_only(),
            "webhook-signature",
        ),
        (
            Delivery {
                headers: Vec::new(),
                ..delivery
            },
            "webhook-signature",
        ),
    ];
    for (delivery, header) in missing {
        assert_eq!(
            delivery.verify(SECRET),
            Err(VerifyError::MissingHeader(header)),
            "{:?}",
            delivery.headers
        );
    }
}

#[test]
fn the_rust_example_refuses_a_secret_that_is_not_whsec_and_base64() {
    let delivery = Delivery::signed("evt_1", NOW, &[SECRET]);
    for secret in ["", "whsec_", &SECRET["whsec_".len()..], "whsec_not base64!"] {
        assert_eq!(
            delivery.verify(secret),
            Err(VerifyError::InvalidSecret),
            "{secret:?}"
        );
    }
}

/// The guide's axum handler, exactly as the guide shows it (a test checks).
async fn receive(headers: HeaderMap, body: Bytes) -> StatusCode {
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    match verify(&secret(), &headers, &body, now) {
        Ok(()) => StatusCode::OK, // then deduplicate and queue the event, as in the Node.js example
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// Where the handler above finds the endpoint's secret.
fn secret() -> String {
    SECRET.to_owned()
}

#[tokio::test]
async fn the_rust_example_verifies_real_requests_in_the_guides_axum_handler() {
    assert!(
        include_str!("webhook_guide.rs").contains(&guide_block("axum_receive.rs")),
        "the guide's axum handler differs from `receive` in tests/webhook_guide.rs"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks", listener.local_addr().unwrap());
    let app = Router::new().route("/webhooks", post(receive));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let delivery = Delivery::signed("evt_axum", now(), &[SECRET]);
    assert_eq!(post_delivery(&url, &delivery).await.0, 200);
    let changed = delivery.with_body(b"{\"id\":\"evt_axum\"}");
    assert_eq!(post_delivery(&url, &changed).await.0, 400);
}

// The Node.js example.

#[tokio::test]
async fn the_node_example_accepts_a_genuine_delivery_and_refuses_a_changed_one() {
    let receiver = NodeReceiver::start(SECRET).await;
    let genuine = Delivery::signed("evt_genuine", now(), &[SECRET]);
    assert_eq!(
        post_delivery(&receiver.url(), &genuine).await,
        (200, "ok".to_owned())
    );
    let changed = Delivery::signed("evt_changed", now(), &[SECRET]);
    let changed = changed
        .clone()
        .with_body(&replaced(&changed.body, "acme", "evil"));
    let (status, reason) = post_delivery(&receiver.url(), &changed).await;
    assert_eq!(status, 400, "{reason}");
    assert!(reason.contains("signature"), "{reason}");

    assert_eq!(
        receiver.logged(2).await,
        [
            json!({"valid": true, "id": "evt_genuine", "event": "document.deleted"}),
            json!({"valid": false, "id": "evt_changed", "event": null, "reason": reason}),
        ]
    );
}

#[tokio::test]
async fn the_node_example_processes_a_repeated_event_once() {
    let receiver = NodeReceiver::start(SECRET).await;
    let sent = now();
    let first = Delivery::signed("evt_repeated", sent, &[SECRET]);
    assert_eq!(post_delivery(&receiver.url(), &first).await.0, 200);
    // A forgery of the same event is refused, not taken for a repeat.
    let forged = Delivery::signed("evt_repeated", sent, &[OTHER_SECRET]);
    assert_eq!(post_delivery(&receiver.url(), &forged).await.0, 400);
    // The retry: the same event and body, a later timestamp and fresh signatures.
    let retry = Delivery::signed("evt_repeated", sent + 60, &[SECRET]);
    assert_eq!(retry.body, first.body);
    assert_eq!(
        post_delivery(&receiver.url(), &retry).await,
        (200, "ok".to_owned())
    );
    let other = Delivery::signed("evt_other", sent, &[SECRET]);
    assert_eq!(post_delivery(&receiver.url(), &other).await.0, 200);

    let logged = receiver.logged(4).await;
    let summary: Vec<(bool, &str, bool)> = logged
        .iter()
        .map(|line| {
            (
                line["valid"] == true,
                line["id"].as_str().unwrap_or_default(),
                line["duplicate"] == true,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (true, "evt_repeated", false),
            (false, "evt_repeated", false),
            (true, "evt_repeated", true),
            (true, "evt_other", false),
        ],
        "{logged:?}"
    );
}

#[tokio::test]
async fn the_node_and_rust_examples_agree_on_genuine_and_bad_deliveries() {
    let receiver = NodeReceiver::start(SECRET).await;
    let sent = now();
    let signed = |id: &str| Delivery::signed(id, sent, &[SECRET]);
    let cases = [
        ("both signatures", signed("evt_a"), true),
        (
            "webhook-signature alone",
            signed("evt_b").standard_only(),
            true,
        ),
        (
            "X-Webhook-Signature alone",
            signed("evt_c").hex_only(),
            true,
        ),
        (
            "rotation, receiver on the old secret",
            Delivery::signed("evt_d", sent, &[OTHER_SECRET, SECRET]),
            true,
        ),
        (
            "rotation, receiver on the new secret",
            Delivery::signed("evt_e", sent, &[SECRET, OTHER_SECRET]),
            true,
        ),
        (
            "changed body",
            signed("evt_f").with_body(br#"{"id":"evt_f"}"#),
            false,
        ),
        (
            "changed body, X-Webhook-Signature alone",
            signed("evt_g").hex_only().with_body(br#"{"id":"evt_g"}"#),
            false,
        ),
        (
            "another secret",
            Delivery::signed("evt_h", sent, &[OTHER_SECRET]),
            false,
        ),
        (
            "six minutes old",
            Delivery::signed("evt_i", sent - SIX_MINUTES, &[SECRET]),
            false,
        ),
        (
            "six minutes ahead",
            Delivery::signed("evt_j", sent + SIX_MINUTES, &[SECRET]),
            false,
        ),
        (
            "six minutes old, X-Webhook-Signature alone",
            Delivery::signed("evt_k", sent - SIX_MINUTES, &[SECRET]).hex_only(),
            false,
        ),
        (
            "a short signature",
            signed("evt_l").with_header("webhook-signature", "v1,AAAA"),
            false,
        ),
        (
            "a short hex signature",
            signed("evt_m")
                .hex_only()
                .with_header("X-Webhook-Signature", "abcd"),
            false,
        ),
        (
            "no webhook-id",
            signed("evt_n").without("webhook-id"),
            false,
        ),
        (
            "no signature",
            signed("evt_o").standard_only().hex_only(),
            false,
        ),
    ];
    for (case, delivery, genuine) in &cases {
        let rust = verify(SECRET, &delivery.headers, &delivery.body, sent);
        assert_eq!(rust.is_ok(), *genuine, "Rust example, {case}: {rust:?}");
        let (status, answer) = post_delivery(&receiver.url(), delivery).await;
        let expected = if *genuine { 200 } else { 400 };
        assert_eq!(status, expected, "Node.js example, {case}: {answer}");
    }
    let logged = receiver.logged(cases.len()).await;
    assert_eq!(logged.len(), cases.len(), "{logged:?}");
    for ((case, _, genuine), line) in cases.iter().zip(&logged) {
        assert_eq!(line["valid"], *genuine, "{case}: {line}");
    }
}

// The guide itself.

#[test]
fn the_guides_rust_example_is_the_one_compiled_here() {
    assert_eq!(
        guide_block("verify_webhook.rs"),
        include_str!("support/webhook_guide_example.rs"),
        "the verify_webhook.rs block of docs/WEBHOOK_INTEGRATION.md and \
         tests/support/webhook_guide_example.rs must be identical"
    );
}

#[test]
fn the_guides_worked_example_is_signed_correctly() {
    let example = guide_block("signature-example");
    let value = |key: &str| {
        example
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_else(|| panic!("the worked example has no {key}"))
    };
    let (secret, id, body) = (value("secret"), value("webhook-id"), value("body"));
    let timestamp: i64 = value("webhook-timestamp").parse().unwrap();
    let hex = hex_signature(secret, body.as_bytes());
    let standard = standard_signature(secret, id, timestamp, body.as_bytes());
    assert_eq!(value("X-Webhook-Signature"), hex);
    assert_eq!(value("webhook-signature"), standard);

    // The body is an event whose id is the webhook-id, and the Rust example accepts it.
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["id"], id);
    let timestamp_text = timestamp.to_string();
    let headers: Vec<(String, String)> = [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp_text.as_str()),
        ("webhook-signature", standard.as_str()),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .into();
    assert_eq!(verify(secret, &headers, body.as_bytes(), timestamp), Ok(()));

    // The delivery the guide shows carries the same values.
    let shown = &guide_blocks("http")[0];
    for line in [
        format!("X-Webhook-Id: {id}"),
        format!("X-Webhook-Timestamp: {timestamp}"),
        format!("X-Webhook-Signature: {hex}"),
        format!("webhook-id: {id}"),
        format!("webhook-timestamp: {timestamp}"),
        format!("webhook-signature: {standard}"),
        body.to_owned(),
    ] {
        assert!(
            shown.lines().any(|l| l == line),
            "{line} is not in:\n{shown}"
        );
    }
}

#[test]
fn the_guide_shows_a_payload_for_every_event_in_its_catalogue() {
    for block in guide_blocks("json") {
        if let Err(e) = serde_json::from_str::<Value>(&block) {
            panic!("a json block of the guide is not JSON ({e}):\n{block}");
        }
    }
    // The catalogue's table: rows up to the first event's section.
    let guide = include_str!("../docs/WEBHOOK_INTEGRATION.md");
    let catalogue = guide
        .split("\n## Event catalogue\n")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .expect("an Event catalogue section");
    let listed: Vec<&str> = catalogue
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .collect();
    assert_eq!(listed, EVENT_TYPES);

    for event_type in EVENT_TYPES {
        let payload = guide_payload(event_type);
        let mut fields: Vec<&str> = payload
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, ["data", "event", "id", "timestamp"], "{event_type}");
        assert!(payload["id"].as_str().unwrap().starts_with("evt_"));
        assert!(payload["data"].is_object(), "{event_type}");
    }
}
