//! NUL (U+0000) through every method of the store: PostgreSQL cannot hold it and SQLite could,
//! so both must refuse it alike, with [`StoreError::InvalidText`] naming the field, before
//! anything is written.

use std::fmt::Debug;

use mindshop_backend::store::{NewEvent, NewExchange, PageKey, StoreResult};

use super::*;

const M: &str = "m-nul";

/// The field a call was refused for; fails the check for any other outcome.
#[track_caller]
fn refused<T: Debug>(result: StoreResult<T>) -> String {
    match result {
        Err(StoreError::InvalidText { field }) => field,
        other => panic!("expected InvalidText, got {other:?}"),
    }
}

/// Everything of the merchant a refused call could have changed.
#[derive(Debug, PartialEq)]
struct Snapshot {
    merchants: Vec<mindshop_backend::store::Merchant>,
    keys: Vec<ApiKey>,
    documents: Vec<Document>,
    session: Option<ChatSession>,
    messages: usize,
    config: Option<SyncConfig>,
    runs: Vec<SyncRun>,
    products: Vec<Product>,
    webhooks: Vec<mindshop_backend::store::WebhookEndpoint>,
    deliveries: Vec<mindshop_backend::store::WebhookDelivery>,
    events: Vec<String>,
}

async fn snapshot(store: &dyn Store, database: &RawDatabase, endpoint: &str) -> Snapshot {
    Snapshot {
        merchants: store.list_merchants().await.expect("merchants"),
        keys: store.list_api_keys(M).await.expect("keys"),
        documents: store.list_documents(M, None, 100).await.expect("documents"),
        session: store.get_chat_session(M, "ses_1").await.expect("session"),
        messages: store
            .list_messages(M, "ses_1")
            .await
            .expect("messages")
            .len(),
        config: store.get_sync_config(M).await.expect("config"),
        runs: store.list_sync_runs(M, None, 100).await.expect("runs"),
        products: store.list_products(M, None, 100).await.expect("products"),
        webhooks: store.list_webhooks(M).await.expect("webhooks"),
        deliveries: store
            .list_deliveries(M, endpoint, None, 100)
            .await
            .expect("deliveries"),
        events: database
            .events(M)
            .await
            .into_iter()
            .map(|event| event.id)
            .collect(),
    }
}

pub(super) async fn nul_is_refused_alike_by_every_method_and_nothing_is_written(
    store: &dyn Store,
    database: &RawDatabase,
) {
    // One of everything, so that every write has something it could change.
    store
        .create_merchant(&new_merchant(M, "Nul shop"))
        .await
        .expect("merchant");
    let key = store
        .create_api_key(&new_key("key_1", M))
        .await
        .expect("key");
    store
        .create_document(&new_document("doc_1", M, doc_fields("Shipping")))
        .await
        .expect("document");
    store
        .create_chat_session(&NewChatSession {
            id: "ses_1".to_owned(),
            merchant_id: M.to_owned(),
            user_id: "u1".to_owned(),
        })
        .await
        .expect("session");
    store
        .put_sync_config(M, &scheduled_config(None), "whsec_1")
        .await
        .expect("config");
    let run = store
        .start_sync_run(&new_run("run_1", M))
        .await
        .expect("run");
    let endpoint = store
        .create_webhook(&new_endpoint("whe_1", M, &["*"]))
        .await
        .expect("webhook");
    let now = Utc::now();
    let delivery = store
        .enqueue_delivery(M, &endpoint.id, "webhook.test", &serde_json::json!({}), now)
        .await
        .expect("delivery");
    let before = snapshot(store, database, &endpoint.id).await;

    let nul = |text: &str| format!("{text}\0");

    // Merchants and keys.
    let merchant = NewMerchant {
        name: nul("Evil"),
        ..new_merchant("m-evil", "x")
    };
    assert_eq!(refused(store.create_merchant(&merchant).await), "name");
    let merchant = NewMerchant {
        allowed_domains: vec!["ok.test".to_owned(), nul("evil.test")],
        ..new_merchant("m-evil", "Evil")
    };
    assert_eq!(
        refused(store.create_merchant(&merchant).await),
        "allowedDomains[1]"
    );
    assert_eq!(
        refused(
            store
                .create_merchant(&new_merchant(&nul("m-evil"), "Evil"))
                .await
        ),
        "id"
    );
    let settings = MerchantSettings {
        allowed_domains: vec![nul("evil.test")],
        plan: Some("pro".to_owned()),
        may_share_domains: false,
    };
    assert_eq!(
        refused(store.update_merchant_settings(M, &settings).await),
        "allowedDomains[0]"
    );
    let key_named = NewApiKey {
        name: Some(nul("server")),
        ..new_key("key_2", M)
    };
    assert_eq!(refused(store.create_api_key(&key_named).await), "name");
    let key_permitted = NewApiKey {
        permissions: vec![nul("*")],
        ..new_key("key_2", M)
    };
    assert_eq!(
        refused(store.create_api_key(&key_permitted).await),
        "permissions[0]"
    );
    assert_eq!(refused(store.revoke_api_key(&nul(&key.id)).await), "id");
    assert_eq!(
        refused(store.revoke_merchant_api_key(M, &nul(&key.id)).await),
        "id"
    );

    // Documents and sessions.
    let body = DocumentFields {
        body: nul("We ship"),
        ..doc_fields("Returns")
    };
    assert_eq!(
        refused(store.create_document(&new_document("doc_2", M, body)).await),
        "body"
    );
    let tags = DocumentFields {
        tags: vec!["ok".to_owned(), nul("faq")],
        ..doc_fields("Returns")
    };
    assert_eq!(
        refused(store.create_document(&new_document("doc_2", M, tags)).await),
        "tags[1]"
    );
    let title = DocumentFields {
        title: nul("Shipping"),
        ..doc_fields("Shipping")
    };
    assert_eq!(
        refused(store.update_document(M, "doc_1", &title).await),
        "title"
    );
    assert_eq!(refused(store.delete_document(M, &nul("doc_1")).await), "id");
    let session = NewChatSession {
        id: "ses_2".to_owned(),
        merchant_id: M.to_owned(),
        user_id: nul("u2"),
    };
    assert_eq!(refused(store.create_chat_session(&session).await), "userId");
    assert_eq!(
        refused(store.end_chat_session(M, &nul("ses_1")).await),
        "id"
    );
    let exchange = NewExchange {
        merchant_id: M.to_owned(),
        session_id: "ses_1".to_owned(),
        question: "mugs?".to_owned(),
        answer: nul("Here are mugs"),
        cut_short: None,
        recommendations: serde_json::json!([]),
        sources: serde_json::json!([]),
        event: serde_json::json!({}),
    };
    assert_eq!(refused(store.record_exchange(&exchange).await), "answer");
    let event = NewEvent {
        merchant_id: M,
        event_type: "chat.failed",
        data: serde_json::json!({"query": [nul("q")]}),
    };
    assert_eq!(refused(store.record_event(&event).await), "data.query[0]");

    // Sync.
    let mut config = scheduled_config(None);
    config.field_mapping.title = nul("name");
    assert_eq!(
        refused(store.put_sync_config(M, &config, "whsec_2").await),
        "fieldMapping.title"
    );
    assert_eq!(
        refused(
            store
                .put_sync_config(M, &scheduled_config(None), &nul("whsec"))
                .await
        ),
        "webhookSecret"
    );
    assert_eq!(
        refused(store.rotate_sync_webhook_secret(M, &nul("whsec")).await),
        "webhookSecret"
    );
    assert_eq!(
        refused(store.claim_scheduled_sync(&nul(M), now, None).await),
        "merchantId"
    );
    let other_run = NewSyncRun {
        mode: nul("upsert"),
        ..new_run("run_2", "m-other")
    };
    assert_eq!(refused(store.start_sync_run(&other_run).await), "mode");
    let batch = [record("A", "Mug"), record("B", &nul("Plate"))];
    assert_eq!(
        refused(store.apply_product_batch(M, &run.id, &batch).await),
        "products[1].title",
        "one bad record refuses the batch, the good one is not written either"
    );
    let failing = RunOutcome {
        failure: Some(nul("broke")),
        ..completed(0)
    };
    assert_eq!(
        refused(store.finish_sync_run(M, &run.id, &failing).await),
        "failure"
    );
    let with_errors = RunOutcome {
        errors: vec![RunError {
            row: 1,
            field: "title".to_owned(),
            message: nul("bad"),
        }],
        ..completed(1)
    };
    assert_eq!(
        refused(store.finish_sync_run(M, &run.id, &with_errors).await),
        "errors[0].message"
    );
    let deleting = RunOutcome {
        delete: vec![nul("A")],
        ..completed(0)
    };
    assert_eq!(
        refused(store.finish_sync_run(M, &run.id, &deleting).await),
        "delete[0]"
    );
    let keeping = RunOutcome {
        keep_only: Some(HashSet::from([nul("A")])),
        ..completed(0)
    };
    assert_eq!(
        refused(store.finish_sync_run(M, &run.id, &keeping).await),
        "keepOnly"
    );

    // Webhooks.
    let described = NewWebhookEndpoint {
        description: Some(nul("orders")),
        ..new_endpoint("whe_2", M, &["*"])
    };
    assert_eq!(
        refused(store.create_webhook(&described).await),
        "description"
    );
    let update = WebhookEndpointUpdate {
        description: Some(nul("orders")),
        ..WebhookEndpointUpdate::default()
    };
    assert_eq!(
        refused(store.update_webhook(M, &endpoint.id, &update).await),
        "description"
    );
    let update = WebhookEndpointUpdate {
        events: Some(vec![nul("*")]),
        ..WebhookEndpointUpdate::default()
    };
    assert_eq!(
        refused(store.update_webhook(M, &endpoint.id, &update).await),
        "events[0]"
    );
    assert_eq!(
        refused(
            store
                .rotate_webhook_secret(M, &endpoint.id, &nul("whsec"), now)
                .await
        ),
        "secret"
    );
    assert_eq!(
        refused(store.delete_webhook(M, &nul(&endpoint.id)).await),
        "id"
    );
    assert_eq!(
        refused(
            store
                .enqueue_delivery(
                    M,
                    &endpoint.id,
                    "webhook.test",
                    &serde_json::json!({"x": nul("")}),
                    now
                )
                .await
        ),
        "data.x"
    );
    let attempt = AttemptRecord {
        delivery_id: delivery.id.clone(),
        endpoint_id: endpoint.id.clone(),
        attempt: WebhookAttempt {
            delivery_id: delivery.id.clone(),
            attempted_at: now,
            status_code: Some(200),
            duration_ms: 3,
            error: None,
            response_excerpt: Some(nul("ok")),
        },
        next: AttemptNext::Delivered,
    };
    let policy = FailurePolicy {
        max_consecutive_failures: 5,
        disable_now: None,
    };
    assert_eq!(
        refused(store.record_attempt(&attempt, &policy).await),
        "attempts[0].attempt.responseExcerpt"
    );
    assert_eq!(
        refused(
            store
                .retry_delivery(M, &endpoint.id, &nul(&delivery.id), now)
                .await
        ),
        "id"
    );

    // Reads: an id with NUL cannot exist, and PostgreSQL would fail the query.
    assert_eq!(refused(store.get_merchant(&nul(M)).await), "id");
    assert_eq!(refused(store.list_api_keys(&nul(M)).await), "merchantId");
    assert_eq!(
        refused(store.find_api_key_by_hash(&nul("ab")).await),
        "keyHash"
    );
    assert_eq!(
        refused(store.any_merchant_allows_host(&nul("shop.test")).await),
        "host"
    );
    assert_eq!(refused(store.get_document(M, &nul("doc_1")).await), "id");
    let after = PageKey {
        created_at: now,
        id: nul("doc_1"),
    };
    assert_eq!(
        refused(store.list_documents(M, Some(&after), 10).await),
        "cursor.id"
    );
    assert_eq!(
        refused(store.list_sync_runs(M, Some(&after), 10).await),
        "cursor.id"
    );
    assert_eq!(
        refused(store.list_products(M, Some(&nul("A")), 10).await),
        "cursor"
    );
    assert_eq!(
        refused(store.get_chat_session(M, &nul("ses_1")).await),
        "id"
    );
    assert_eq!(
        refused(store.list_messages(M, &nul("ses_1")).await),
        "sessionId"
    );
    assert_eq!(refused(store.get_sync_config(&nul(M)).await), "merchantId");
    assert_eq!(refused(store.active_sync_run(&nul(M)).await), "merchantId");
    assert_eq!(refused(store.count_products(&nul(M)).await), "merchantId");
    let terms = [nul("mug")];
    let query = ProductQuery {
        terms: &terms,
        min_price: None,
        max_price: None,
        in_stock_only: false,
        limit: 5,
    };
    assert_eq!(refused(store.search_products(M, &query).await), "terms[0]");
    assert_eq!(
        refused(store.search_documents(M, &terms, 5).await),
        "terms[0]"
    );
    assert_eq!(refused(store.get_webhook(M, &nul("whe_1")).await), "id");
    assert_eq!(refused(store.list_webhooks(&nul(M)).await), "merchantId");
    assert_eq!(
        refused(
            store
                .list_deliveries(M, &endpoint.id, Some(&after), 10)
                .await
        ),
        "cursor.id"
    );

    assert_eq!(
        snapshot(store, database, &endpoint.id).await,
        before,
        "a refused call writes nothing"
    );
    assert!(
        store
            .get_merchant("m-evil")
            .await
            .expect("merchant")
            .is_none(),
        "no merchant was created"
    );
    assert_eq!(
        store.active_sync_run("m-other").await.expect("run"),
        None,
        "no run was started"
    );
    // The store still works, and the same text without NUL is accepted.
    store
        .apply_product_batch(M, &run.id, &[record("A", "Mug"), record("B", "Plate")])
        .await
        .expect("the batch without NUL");
    assert_eq!(store.count_products(M).await.expect("count"), 2);
}
