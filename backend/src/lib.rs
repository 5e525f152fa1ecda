//! The mindshop backend: the axum application behind the edge, and the store it runs on.
//!
//! Every request reaches the backend through the edge, which signs the caller's identity
//! (see `mindshop_wire::identity`). The backend refuses anything unsigned with 401, then
//! handlers still check that what they touch belongs to the caller's merchant.
//!
//! # Layout
//! - [`store`]: the [`store::Store`] interface and its SQLite and PostgreSQL implementations.
//! - [`keys`]: creating API keys, the rules the portal and `mindshop admin key create` share.
//! - `edge_identity`: the middleware that verifies the edge's signature, scopes the request id,
//!   bounds handler time and writes the access log.
//! - `envelope`: [`Envelope`], a success answer in the shared envelope.
//! - `error`: [`ApiError`], the one place where failures become status + envelope.
//! - `access`: who may do what (permissions, the key's merchant, portal merchant access),
//!   checked again here after the edge.
//! - `extract`: `ApiJson`, `ApiPath`, `ApiQuery`: extractors whose rejections are envelopes
//!   naming the bad field.
//! - `routes`: the routers, one module per resource (settings, API keys, documents, sessions,
//!   chat, sync).
//! - `chat`: understanding a shopper's question and composing the answer (optionally by an LLM).
//! - `search`: the background indexer that keeps product search current after imports.
//! - `sync`: product sync (parsing, imports, pulls, schedules).
//! - [`webhooks`]: delivering outbox events to merchants' endpoints.
//! - `text`: the one rule for text from outside (no NUL), which the extractors, the catalog
//!   parser and the store apply.

mod access;
pub mod chat;
mod edge_identity;
mod envelope;
mod error;
mod extract;
pub mod keys;
mod routes;
mod search;
pub mod store;
mod sync;
mod text;
pub mod webhooks;

/// The catalog parser (`sync::parse`) for the fuzz harness in `fuzz/`, which is another crate
/// and so cannot reach a `pub(crate)` module. Only the `fuzzing` feature builds this, and only
/// the harness turns that on: without it the backend's API is exactly what it was, and the
/// parser's types stay free to change. Not an API: hidden from the docs, no stability promise.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::sync::parse::{
        FieldMapping, FileError, Format, ProductRecord, Records, RowError, records,
    };
}

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use mindshop_config::Config;
use mindshop_wire::identity::IdentitySigner;
use tokio::net::TcpListener;

pub use edge_identity::RequestContext;
pub use envelope::Envelope;
pub use error::ApiError;
pub use routes::{RouteSpec, table as route_table};
use store::Store;

/// Makes ring the process's TLS crypto provider, as sqlx and redis already use it; reqwest
/// (sync pulls, S3) is built without a provider of its own. Safe to call more than once.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What every handler may use.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub signer: IdentitySigner,
    /// How far the edge's signing time may be from ours (`internal.max_clock_skew_secs`).
    pub max_clock_skew_secs: u64,
    /// Longest a handler may take before the caller gets 504 (`backend.request_timeout_secs`).
    pub request_timeout: Duration,
    /// Largest body a handler may read: the edge's `edge.max_body_bytes`, so a body the edge
    /// let through is never refused again with a different answer.
    pub max_body_bytes: usize,
    /// Product sync's background pulls and schedules.
    pub sync: Arc<sync::Runner>,
    /// Keeps product search current after imports.
    pub(crate) indexer: Arc<search::Indexer>,
    /// The language model chat answers through, when `[chat]` names one.
    pub(crate) llm: Option<chat::llm::Llm>,
    /// Delivers events to merchants' webhook endpoints.
    pub(crate) webhooks: Arc<webhooks::Dispatcher>,
}

impl AppState {
    /// Fails only when an outbound HTTP client cannot be built with its safety rules.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        internal_secret: &str,
    ) -> Result<Self, webhooks::ClientError> {
        install_crypto_provider();
        sync::metrics::init();
        webhooks::init_metrics();
        Ok(Self {
            sync: Arc::new(sync::Runner::new(Arc::clone(&store), config.sync.clone())),
            indexer: Arc::new(search::Indexer::new(
                Arc::clone(&store),
                Duration::from_millis(config.chat.index_interval_ms),
            )),
            llm: chat::llm::Llm::from_settings(&config.chat),
            webhooks: Arc::new(webhooks::Dispatcher::new(
                Arc::clone(&store),
                config.webhooks.clone(),
                Arc::new(webhooks::SystemClock),
            )?),
            store,
            signer: IdentitySigner::new(internal_secret.as_bytes()),
            max_clock_skew_secs: config.internal.max_clock_skew_secs,
            request_timeout: Duration::from_secs(config.backend.request_timeout_secs),
            max_body_bytes: usize::try_from(config.edge.max_body_bytes).unwrap_or(usize::MAX),
        })
    }
}

/// The whole application. Layers run outside-in: edge identity (which also scopes the request
/// id, applies the timeout and logs), then catch-panic, then the body limit, then the routes.
pub fn app(state: AppState) -> Router {
    routes::router()
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panic_response,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge_identity::require_edge_identity,
        ))
        .with_state(state)
}

/// Serves the application on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), "backend listening");
    let scheduler = Arc::clone(&state.sync).spawn_scheduler();
    let indexer = Arc::clone(&state.indexer).spawn();
    let dispatcher = Arc::clone(&state.webhooks).spawn();
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    scheduler.abort();
    indexer.abort();
    dispatcher.abort();
    served
}

/// Serves `GET /metrics` (the process's default Prometheus registry) on `listener`, for a
/// backend run apart from the edge; runs until the task is dropped.
pub async fn serve_metrics(listener: TcpListener) -> std::io::Result<()> {
    async fn metrics() -> axum::response::Response {
        use axum::response::IntoResponse;
        use prometheus::Encoder;
        let encoder = prometheus::TextEncoder::new();
        let mut body = Vec::new();
        match encoder.encode(&prometheus::gather(), &mut body) {
            Ok(()) => (
                [(
                    axum::http::header::CONTENT_TYPE,
                    encoder.format_type().to_owned(),
                )],
                body,
            )
                .into_response(),
            Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
    let app = Router::new().route("/metrics", axum::routing::get(metrics));
    axum::serve(listener, app).await
}

/// Builders shared by the unit tests of the routers.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, Response, StatusCode};
    use mindshop_config::{Config, DatabaseConfig};
    use mindshop_wire::identity::{Identity, SignedRequest};
    use tempfile::TempDir;
    use tower::ServiceExt;

    use crate::AppState;
    use crate::store::{self, Store};

    pub const SECRET: &str = "test-internal-secret-0123456789abcdef";

    /// An application on a fresh SQLite file; keep the `TempDir` alive while using it.
    pub async fn state() -> (AppState, TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = DatabaseConfig {
            url: format!("sqlite://{}/test.db", dir.path().display()),
            ..DatabaseConfig::default()
        };
        let store: Arc<dyn Store> = store::connect(&database).await.expect("store");
        let state = AppState::new(&Config::default(), store, SECRET).expect("state");
        (state, dir)
    }

    /// A request as the edge would send it: identity headers signed with [`SECRET`].
    pub fn signed(method: &str, uri: &str, identity: &Identity) -> Request<Body> {
        signed_with_body(method, uri, identity, None, Body::empty())
    }

    /// [`signed`] with a JSON body (`Content-Type: application/json`).
    pub fn signed_json(
        method: &str,
        uri: &str,
        identity: &Identity,
        body: &serde_json::Value,
    ) -> Request<Body> {
        signed_with_body(
            method,
            uri,
            identity,
            Some("application/json"),
            Body::from(body.to_string()),
        )
    }

    /// [`signed`] with any body and content type, for malformed requests.
    pub fn signed_with_body(
        method: &str,
        uri: &str,
        identity: &Identity,
        content_type: Option<&str>,
        body: Body,
    ) -> Request<Body> {
        let signer = mindshop_wire::identity::IdentitySigner::new(SECRET.as_bytes());
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-request-id", "req-test");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let encoded = mindshop_wire::identity::EncodedIdentity::new(identity.clone())
            .expect("an identity that can travel");
        let headers = signer.sign(
            &encoded,
            SignedRequest {
                method,
                path_and_query: uri,
                request_id: "req-test",
            },
            chrono::Utc::now().timestamp(),
        );
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(body).expect("request")
    }

    /// What the edge sends for an API key of `merchant` holding `permissions`.
    pub fn key(merchant: &str, permissions: &[&str]) -> Identity {
        Identity {
            merchant: Some(merchant.to_owned()),
            principal: format!("key:key_{merchant}"),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            roles: Vec::new(),
        }
    }

    /// What the edge sends for a portal user of `merchant`.
    pub fn user(merchant: &str) -> Identity {
        Identity {
            merchant: Some(merchant.to_owned()),
            principal: format!("user:owner-of-{merchant}"),
            permissions: Vec::new(),
            roles: Vec::new(),
        }
    }

    /// What the edge sends for a portal admin with no merchant of their own.
    pub fn admin() -> Identity {
        Identity {
            merchant: None,
            principal: "user:operator".to_owned(),
            permissions: Vec::new(),
            roles: vec!["admin".to_owned()],
        }
    }

    /// Creates merchants `acme` (allowed domain `acme.com`) and `globex` (`globex.com`).
    pub async fn with_merchants(state: &AppState) {
        for (id, domain) in [("acme", "acme.com"), ("globex", "globex.com")] {
            state
                .store
                .create_merchant(&store::NewMerchant {
                    id: id.to_owned(),
                    name: id.to_owned(),
                    allowed_domains: vec![domain.to_owned()],
                    plan: "free".to_owned(),
                })
                .await
                .expect("create merchant");
        }
    }

    /// Sends one request to a fresh application on `state`; returns the status and JSON body.
    pub async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = crate::app(state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        (status, json(response).await)
    }

    pub async fn json(response: Response<Body>) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("JSON body")
    }
}
