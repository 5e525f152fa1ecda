//! The backend's outermost middleware: trust only what the edge signed.
//!
//! Per request, in order: take the request id the edge sent, verify the identity signature
//! (401 `EDGE_SIGNATURE_REQUIRED` when it is missing, stale or wrong), run the handler within
//! `backend.request_timeout_secs` with the request id in scope for error envelopes and logs,
//! echo `X-Request-ID`, and write one access-log line.

use std::time::Instant;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mindshop_wire::identity::{self, Identity, SignedRequest};
use mindshop_wire::request_id;
use tracing::Instrument;

use crate::{ApiError, AppState};

tokio::task_local! {
    /// The current request's id, for envelopes built far from the request (errors, panics).
    static REQUEST_ID: String;
}

/// The request id in scope, or `unknown` outside a request.
pub(crate) fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Who is calling and which request this is; every handler behind the middleware can extract it.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub identity: Identity,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            ApiError::Internal("RequestContext used outside the edge-identity middleware".into())
        })
    }
}

pub(crate) async fn require_edge_identity(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request_id::accept_or_generate(
        request
            .headers()
            .get(request_id::HEADER)
            .map(HeaderValue::as_bytes),
    );
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let handle = async {
        let verified = state.signer.verify(
            request.headers(),
            SignedRequest {
                method: request.method().as_str(),
                path_and_query: request.uri().path_and_query().map_or("/", |p| p.as_str()),
                request_id: &request_id,
            },
            chrono::Utc::now().timestamp(),
            state.max_clock_skew_secs,
        );
        let mut response = match verified {
            Err(reason) => {
                tracing::warn!(%reason, "refused a request without a valid edge signature");
                let mut response = ApiError::Unauthorized {
                    code: "EDGE_SIGNATURE_REQUIRED",
                    message: "Requests must come through the mindshop edge".to_owned(),
                }
                .into_response();
                response
                    .headers_mut()
                    .insert(identity::REJECTED, HeaderValue::from_static("signature"));
                response
            }
            Ok(identity) => {
                request.extensions_mut().insert(RequestContext {
                    request_id: request_id.clone(),
                    identity,
                });
                match tokio::time::timeout(state.request_timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => ApiError::Timeout(state.request_timeout.as_secs()).into_response(),
                }
            }
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(request_id::HEADER, value);
        }
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request finished"
        );
        response
    };
    REQUEST_ID
        .scope(request_id.clone(), handle.instrument(span))
        .await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use mindshop_wire::identity::Identity;
    use tower::ServiceExt;

    use crate::test_support::{json, signed, state};

    #[tokio::test]
    async fn unsigned_requests_get_401_with_the_request_id() {
        let (state, _dir) = state().await;
        let request = Request::get("/ready")
            .header("x-request-id", "abc-123")
            .header("x-mindshop-merchant", "acme")
            .header("x-mindshop-signature", "00")
            .body(Body::empty())
            .unwrap();
        let response = crate::app(state).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["x-request-id"], "abc-123");
        let body = json(response).await;
        assert_eq!(body["code"], "EDGE_SIGNATURE_REQUIRED");
        assert_eq!(body["requestId"], "abc-123");
    }

    #[tokio::test]
    async fn a_signature_for_another_path_is_refused() {
        let (state, _dir) = state().await;
        let mut request = signed("GET", "/ready", &Identity::anonymous());
        *request.uri_mut() = "/ready?other=1".parse().unwrap();
        let response = crate::app(state).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn signed_requests_reach_the_routes() {
        let (state, _dir) = state().await;
        let response = crate::app(state)
            .oneshot(signed("GET", "/nothing/here", &Identity::anonymous()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = json(response).await;
        assert_eq!(body["code"], "NOT_FOUND");
        assert_eq!(body["requestId"], "req-test");
    }
}
