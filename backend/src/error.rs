//! [`ApiError`]: the one mapping from a failure to status, `code` and message.
//!
//! Internal causes (SQL, I/O) are logged with the request id and never sent to the client.

use std::any::Any;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mindshop_wire::envelope::Failure;

use crate::edge_identity::current_request_id;
use crate::envelope::json_response;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("not ready")]
    NotReady(serde_json::Value),
    #[error("the request took longer than {0}s")]
    Timeout(u64),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn status_and_failure(&self) -> (StatusCode, Failure) {
        match self {
            Self::NotFound(message) => (
                StatusCode::NOT_FOUND,
                Failure::new("NOT_FOUND", message.clone()),
            ),
            Self::Conflict(message) => (
                StatusCode::CONFLICT,
                Failure::new("CONFLICT", message.clone()),
            ),
            Self::MethodNotAllowed(message) => (
                StatusCode::METHOD_NOT_ALLOWED,
                Failure::new("METHOD_NOT_ALLOWED", message.clone()),
            ),
            Self::Unauthorized { code, message } => (
                StatusCode::UNAUTHORIZED,
                Failure::new(code, message.clone()),
            ),
            Self::NotReady(checks) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Failure::new("NOT_READY", "A dependency is down").with("checks", checks.clone()),
            ),
            Self::Timeout(secs) => (
                StatusCode::GATEWAY_TIMEOUT,
                Failure::new(
                    "REQUEST_TIMEOUT",
                    format!("The request took longer than {secs} seconds"),
                ),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Failure::new(
                    "INTERNAL_ERROR",
                    "Internal error; quote the request id to support",
                ),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => Self::Conflict(format!("{what} already exists")),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        if let Self::Internal(cause) = &self {
            tracing::error!(%request_id, cause, "internal error");
        }
        let (status, failure) = self.status_and_failure();
        json_response(status, failure.to_json(&request_id))
    }
}

/// A handler panicked: log it, answer 500 without the panic text.
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic");
    ApiError::Internal(format!("handler panicked: {detail}")).into_response()
}
