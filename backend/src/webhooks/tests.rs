//! The dispatcher against a real SQLite store and a real receiver on loopback, with time
//! driven by a manual clock (no sleeps).

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::http::{HeaderMap as AxumHeaders, StatusCode};
use mindshop_config::DatabaseConfig;
use tempfile::TempDir;

use super::*;
use crate::store::{self, DocumentFields, NewDocument, NewMerchant, NewWebhookEndpoint};

/// A clock the test moves.
#[derive(Debug)]
struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// What the receiver got: headers and body of each request.
type Received = Arc<Mutex<Vec<(AxumHeaders, String)>>>;

/// A receiver on loopback answering with `answers` in turn (then 200).
async fn receiver(answers: Vec<(u16, Option<&'static str>)>) -> (String, Received) {
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let received: Received = Arc::default();
    let seen = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: AxumHeaders, body: String| {
            seen.lock().unwrap().push((headers, body));
            let (status, retry_after) = answers.lock().unwrap().pop_front().unwrap_or((200, None));
            async move {
                let status = StatusCode::from_u16(status).unwrap();
                match retry_after {
                    Some(value) => (status, [("retry-after", value)], "no").into_response(),
                    None => (status, "answered").into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

use axum::response::IntoResponse as _;

struct Setup {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    dispatcher: Dispatcher,
    endpoint_id: String,
    secret: String,
    _dir: TempDir,
}

async fn setup(url: &str, schedule: Vec<u64>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = store::connect(&DatabaseConfig {
        url: format!("sqlite://{}/hooks.db", dir.path().display()),
        ..DatabaseConfig::default()
    })
    .await
    .unwrap();
    store
        .create_merchant(&NewMerchant {
            id: "acme".to_owned(),
            name: "Acme".to_owned(),
            allowed_domains: Vec::new(),
            plan: "free".to_owned(),
        })
        .await
        .unwrap();
    let secret = sign::new_secret();
    let endpoint = store
        .create_webhook(&NewWebhookEndpoint {
            id: "whe_1".to_owned(),
            merchant_id: "acme".to_owned(),
            url: url.to_owned(),
            events: vec!["document.created".to_owned()],
            description: None,
            secret: secret.clone(),
        })
        .await
        .unwrap();
    let clock = Arc::new(ManualClock(Mutex::new(Utc::now())));
    let settings = WebhookSettings {
        retry_schedule_secs: schedule,
        allow_http: true,
        allow_private_destinations: true,
        ..WebhookSettings::default()
    };
    let dispatcher = Dispatcher::new(Arc::clone(&store), settings, clock.clone()).unwrap();
    Setup {
        store,
        clock,
        dispatcher,
        endpoint_id: endpoint.id,
        secret,
        _dir: dir,
    }
}

async fn create_document(store: &dyn Store, id: &str) {
    store
        .create_document(&NewDocument {
            id: id.to_owned(),
            merchant_id: "acme".to_owned(),
            fields: DocumentFields {
                title: format!("Document {id}"),
                body: "Body".to_owned(),
                tags: Vec::new(),
                url: None,
            },
        })
        .await
        .unwrap();
}

async fn deliveries(setup: &Setup) -> Vec<crate::store::WebhookDelivery> {
    setup
        .store
        .list_deliveries("acme", &setup.endpoint_id, None, 100)
        .await
        .unwrap()
}

fn header<'h>(headers: &'h AxumHeaders, name: &str) -> &'h str {
    headers.get(name).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn a_delivery_is_signed_both_ways_over_the_exact_bytes_sent() {
    let (url, received) = receiver(Vec::new()).await;
    let setup = setup(&url, vec![60]).await;
    create_document(setup.store.as_ref(), "doc_1").await;
    setup.dispatcher.pass().await.unwrap();

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (headers, body) = &received[0];
    let event: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["event"], "document.created");
    assert_eq!(event["data"]["id"], "doc_1");
    let id = event["id"].as_str().unwrap();
    assert!(id.starts_with("evt_"));
    assert_eq!(header(headers, "webhook-id"), id);
    assert_eq!(header(headers, "x-webhook-id"), id);
    let timestamp: i64 = header(headers, "webhook-timestamp").parse().unwrap();
    assert_eq!(timestamp, setup.clock.now().timestamp());
    assert_eq!(
        header(headers, "x-webhook-signature"),
        sign::body_signature(&setup.secret, body.as_bytes())
    );
    assert_eq!(
        header(headers, "webhook-signature"),
        sign::standard_signature(&setup.secret, id, timestamp, body.as_bytes())
    );
    let delivered = deliveries(&setup).await;
    assert_eq!(delivered[0].status, "delivered");
    assert_eq!(delivered[0].attempt_log[0].status_code, Some(200));
    assert_eq!(
        delivered[0].attempt_log[0].response_excerpt.as_deref(),
        Some("answered")
    );
    // Nothing is sent twice.
    setup.dispatcher.pass().await.unwrap();
    assert_eq!(deliveries(&setup).await[0].attempts, 1);
}

#[tokio::test]
async fn three_failures_then_success_arrive_at_the_scheduled_times() {
    let (url, received) = receiver(vec![(500, None), (503, None), (502, None)]).await;
    let setup = setup(&url, vec![60, 300, 900]).await;
    create_document(setup.store.as_ref(), "doc_1").await;
    let start = setup.clock.now();
    setup.dispatcher.pass().await.unwrap();

    for (wait, attempts) in [(60, 2), (300, 3), (900, 4)] {
        // A second early: nothing is due.
        setup.clock.advance(chrono::Duration::seconds(wait - 1));
        setup.dispatcher.pass().await.unwrap();
        assert_eq!(received.lock().unwrap().len(), attempts - 1);
        setup.clock.advance(chrono::Duration::seconds(1));
        setup.dispatcher.pass().await.unwrap();
        assert_eq!(received.lock().unwrap().len(), attempts);
    }
    let delivery = &deliveries(&setup).await[0];
    assert_eq!(delivery.status, "delivered");
    let times: Vec<i64> = delivery
        .attempt_log
        .iter()
        .map(|a| (a.attempted_at - start).num_seconds())
        .collect();
    assert_eq!(times, [0, 60, 360, 1260]);
    let codes: Vec<Option<i32>> = delivery.attempt_log.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(503), Some(502), Some(200)]);
    // Every attempt carried the same event id, for the receiver to dedupe.
    let ids: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| header(h, "webhook-id").to_owned())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let endpoint = setup
        .store
        .get_webhook("acme", &setup.endpoint_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(endpoint.consecutive_failures, 0);
}

#[tokio::test]
async fn retry_after_is_honoured_and_the_last_failure_gives_up() {
    let (url, received) = receiver(vec![(429, Some("120")), (500, None), (500, None)]).await;
    let setup = setup(&url, vec![60, 60]).await;
    create_document(setup.store.as_ref(), "doc_1").await;
    setup.dispatcher.pass().await.unwrap();
    setup.clock.advance(chrono::Duration::seconds(60));
    setup.dispatcher.pass().await.unwrap();
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "Retry-After: 120 holds it back"
    );
    setup.clock.advance(chrono::Duration::seconds(60));
    setup.dispatcher.pass().await.unwrap();
    assert_eq!(received.lock().unwrap().len(), 2);
    setup.clock.advance(chrono::Duration::seconds(60));
    setup.dispatcher.pass().await.unwrap();
    let delivery = &deliveries(&setup).await[0];
    assert_eq!(delivery.status, "failed");
    assert_eq!(delivery.attempts, 3);
    assert_eq!(
        delivery.last_error.as_deref(),
        Some("the endpoint answered HTTP 500")
    );

    // A replay from the API sends it again now.
    setup
        .store
        .retry_delivery("acme", &setup.endpoint_id, &delivery.id, setup.clock.now())
        .await
        .unwrap();
    setup.dispatcher.pass().await.unwrap();
    assert_eq!(received.lock().unwrap().len(), 4);
    assert_eq!(deliveries(&setup).await[0].status, "delivered");
}

#[tokio::test]
async fn an_endpoint_that_always_fails_is_disabled_after_ten_failures_in_a_row() {
    let (url, received) = receiver(vec![(500, None); 20]).await;
    let setup = setup(&url, Vec::new()).await;
    let disabled_before = METRICS.disabled.with_label_values(&["failures"]).get();
    for i in 0..12 {
        create_document(setup.store.as_ref(), &format!("doc_{i}")).await;
    }
    setup.dispatcher.pass().await.unwrap();
    // Ten attempts fail (concurrently claimed ones may all have been sent; none after the
    // endpoint is disabled is claimed).
    setup.dispatcher.pass().await.unwrap();
    let endpoint = setup
        .store
        .get_webhook("acme", &setup.endpoint_id)
        .await
        .unwrap()
        .unwrap();
    assert!(!endpoint.enabled);
    assert_eq!(
        endpoint.disabled_reason.as_deref(),
        Some("disabled after 10 consecutive failed attempts")
    );
    let sent = received.lock().unwrap().len();
    assert!(sent >= 10, "{sent}");
    assert_eq!(
        METRICS.disabled.with_label_values(&["failures"]).get() - disabled_before,
        1,
        "counted once, however many attempts of the pass failed after"
    );
    create_document(setup.store.as_ref(), "doc_late").await;
    setup.clock.advance(chrono::Duration::hours(1));
    setup.dispatcher.pass().await.unwrap();
    assert_eq!(
        received.lock().unwrap().len(),
        sent,
        "a disabled endpoint gets nothing"
    );

    // Enabled again by the merchant: the count starts over and deliveries resume.
    let enabled = setup
        .store
        .update_webhook(
            "acme",
            &setup.endpoint_id,
            &crate::store::WebhookEndpointUpdate {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(enabled.enabled && enabled.disabled_reason.is_none());
    assert_eq!(enabled.consecutive_failures, 0);
}

#[tokio::test]
async fn gone_disables_the_endpoint_at_once() {
    let (url, received) = receiver(vec![(410, None)]).await;
    let setup = setup(&url, vec![60, 300, 900]).await;
    create_document(setup.store.as_ref(), "doc_1").await;
    setup.dispatcher.pass().await.unwrap();
    let endpoint = setup
        .store
        .get_webhook("acme", &setup.endpoint_id)
        .await
        .unwrap()
        .unwrap();
    assert!(!endpoint.enabled);
    assert_eq!(
        endpoint.disabled_reason.as_deref(),
        Some("the endpoint answered 410 Gone")
    );
    assert_eq!(deliveries(&setup).await[0].status, "failed");
    assert_eq!(received.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_claim_left_by_a_dead_backend_is_taken_again_once_it_expires() {
    let (url, received) = receiver(Vec::new()).await;
    let setup = setup(&url, vec![60]).await;
    create_document(setup.store.as_ref(), "doc_1").await;
    setup
        .store
        .fan_out_events(10, setup.clock.now())
        .await
        .unwrap();
    // Another backend claims the delivery, then dies before sending it.
    let now = setup.clock.now();
    let claimed = setup
        .store
        .claim_deliveries(10, now, now + chrono::Duration::seconds(15))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    setup.dispatcher.pass().await.unwrap();
    assert!(received.lock().unwrap().is_empty(), "still claimed");
    setup.clock.advance(chrono::Duration::seconds(16));
    setup.dispatcher.pass().await.unwrap();
    assert_eq!(received.lock().unwrap().len(), 1);
    assert_eq!(deliveries(&setup).await[0].status, "delivered");
}

#[tokio::test]
async fn destinations_inside_the_network_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::connect(&DatabaseConfig {
        url: format!("sqlite://{}/hooks.db", dir.path().display()),
        ..DatabaseConfig::default()
    })
    .await
    .unwrap();
    let strict = Dispatcher::new(store, WebhookSettings::default(), Arc::new(SystemClock)).unwrap();
    assert!(
        strict
            .check_destination("https://hooks.example.com/x")
            .is_ok()
    );
    for refused in [
        "http://hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://10.1.2.3/x",
        // IPv6 forms of internal IPv4 addresses: compatible, 6to4, NAT64.
        "https://[::127.0.0.1]/x",
        "https://[2002:a9fe:a9fe::]/latest/meta-data",
        "https://[64:ff9b::a00:1]/x",
        "https://[64:ff9b:1::808:808]/x",
        "ftp://hooks.example.com/x",
    ] {
        assert!(strict.check_destination(refused).is_err(), "{refused}");
    }
    // A name that resolves to loopback is refused when resolved.
    let sent = strict
        .send(
            &ClaimedDelivery {
                id: "whd_x".to_owned(),
                endpoint_id: "whe_x".to_owned(),
                merchant_id: "acme".to_owned(),
                event_id: "evt_x".to_owned(),
                event_type: "webhook.test".to_owned(),
                payload: "{}".to_owned(),
                attempts: 0,
                url: "https://localhost:1/x".to_owned(),
                secret: sign::new_secret(),
                previous_secret: None,
            },
            Utc::now(),
        )
        .await;
    assert_eq!(sent.status, None);
    let error = sent.error.unwrap();
    assert!(error.contains("loopback, private or link-local"), "{error}");
}

#[test]
fn a_client_that_cannot_be_built_is_an_error_not_a_permissive_fallback() {
    crate::install_crypto_provider();
    // No TLS version left to speak: reqwest cannot build this client.
    let impossible = reqwest::Client::builder()
        .min_tls_version(reqwest::tls::Version::TLS_1_3)
        .max_tls_version(reqwest::tls::Version::TLS_1_2);
    let error = guarded_client(impossible, &WebhookSettings::default())
        .expect_err("a client without the destination check must not be handed out");
    assert!(
        error
            .to_string()
            .starts_with("the webhook HTTP client could not be built"),
        "{error}"
    );
    // The rules themselves build.
    assert!(guarded_client(reqwest::Client::builder(), &WebhookSettings::default()).is_ok());
}

#[tokio::test]
async fn an_answer_with_nul_is_recorded_with_it_replaced() {
    // An endpoint may answer with any bytes; the store refuses NUL (PostgreSQL cannot hold
    // it), so the excerpt shows U+FFFD in its place and the attempt is still recorded.
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok\0done\u{1}" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let setup = setup(&url, vec![60]).await;
    create_document(setup.store.as_ref(), "doc_1").await;
    setup
        .dispatcher
        .pass()
        .await
        .expect("the pass records the attempt");
    let delivered = deliveries(&setup).await;
    assert_eq!(delivered[0].status, "delivered");
    assert_eq!(
        delivered[0].attempt_log[0].response_excerpt.as_deref(),
        Some("ok\u{FFFD}done\u{1}")
    );
}
