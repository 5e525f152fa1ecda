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
    /// The request conflicts with the resource's state; `code` says how (`CONFLICT`,
    /// `SESSION_ENDED`, …).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// The caller is known but may not do this (`FORBIDDEN`, `MERCHANT_MISMATCH`, …).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The caller's permissions grant none of `required`.
    #[error("insufficient permissions, need {required:?}")]
    InsufficientPermissions { required: Vec<String> },
    /// One input was refused; `field` names it as the caller wrote it (`title`, `tags[3]`,
    /// `allowedDomains[0]`, `limit`).
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    /// The resource existed but is over for good (an ended session).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// Several inputs were refused, each named (`syncType`, `fieldMapping.color`).
    #[error("invalid input: {0:?}")]
    Invalid(Vec<(String, String)>),
    /// The request cannot be used as sent, with a specific code (`UNSUPPORTED_FILE_TYPE`, …).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Something in the request is over its limit, said specifically.
    #[error("{0}")]
    TooLarge(String),
    /// The body is not JSON at all.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the body is not declared as JSON")]
    UnsupportedMediaType,
    #[error("the body is larger than allowed")]
    PayloadTooLarge,
    #[error("not ready")]
    NotReady(serde_json::Value),
    #[error("the request took longer than {0}s")]
    Timeout(u64),
    /// A streamed answer ran past `chat.llm_total_timeout_secs` and was stopped.
    #[error("the answer took longer than {0}s")]
    AnswerTimeout(u64),
    /// The database connection was lost (a restart, a failover) or none could be had in time,
    /// after the store's own retries. Trying again shortly should succeed; `maybe_stored` when
    /// the connection went during the commit, so the change may have been stored.
    #[error("database unavailable: {cause}")]
    Unavailable { cause: String, maybe_stored: bool },
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
            Self::Conflict { code, message } => {
                (StatusCode::CONFLICT, Failure::new(code, message.clone()))
            }
            Self::MethodNotAllowed(message) => (
                StatusCode::METHOD_NOT_ALLOWED,
                Failure::new("METHOD_NOT_ALLOWED", message.clone()),
            ),
            Self::Unauthorized { code, message } => (
                StatusCode::UNAUTHORIZED,
                Failure::new(code, message.clone()),
            ),
            Self::Forbidden { code, message } => {
                (StatusCode::FORBIDDEN, Failure::new(code, message.clone()))
            }
            Self::InsufficientPermissions { required } => (
                StatusCode::FORBIDDEN,
                Failure::new("FORBIDDEN", "Insufficient permissions")
                    .with("requiredPermissions", serde_json::json!(required)),
            ),
            Self::Validation { field, message } => (
                StatusCode::BAD_REQUEST,
                Failure::new("VALIDATION_ERROR", format!("{field}: {message}"))
                    .with("field", serde_json::Value::String(field.clone())),
            ),
            Self::Invalid(errors) => {
                let summary = errors
                    .iter()
                    .map(|(field, message)| format!("{field}: {message}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                let list: Vec<_> = errors
                    .iter()
                    .map(|(field, message)| serde_json::json!({"field": field, "message": message}))
                    .collect();
                let first = errors
                    .first()
                    .map(|(field, _)| field.clone())
                    .unwrap_or_default();
                (
                    StatusCode::BAD_REQUEST,
                    Failure::new("VALIDATION_ERROR", summary)
                        .with("field", serde_json::Value::String(first))
                        .with("errors", serde_json::Value::Array(list)),
                )
            }
            Self::Gone { code, message } => (StatusCode::GONE, Failure::new(code, message.clone())),
            Self::BadRequest { code, message } => {
                (StatusCode::BAD_REQUEST, Failure::new(code, message.clone()))
            }
            Self::TooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Failure::new("PAYLOAD_TOO_LARGE", message.clone()),
            ),
            Self::InvalidJson(detail) => (
                StatusCode::BAD_REQUEST,
                Failure::new(
                    "INVALID_JSON",
                    format!("The body is not valid JSON: {detail}"),
                ),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Failure::new(
                    "UNSUPPORTED_MEDIA_TYPE",
                    "Send the body as JSON with Content-Type: application/json",
                ),
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Failure::new("PAYLOAD_TOO_LARGE", "The request body is too large"),
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
            Self::AnswerTimeout(secs) => (
                StatusCode::GATEWAY_TIMEOUT,
                Failure::new(
                    "ANSWER_TIMEOUT",
                    format!(
                        "The answer took longer than {secs} seconds and was stopped; \
                         ask again to continue"
                    ),
                ),
            ),
            Self::Unavailable { maybe_stored, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Failure::new(
                    "DATABASE_UNAVAILABLE",
                    if *maybe_stored {
                        "The database connection was lost while saving: the change may have \
                         been stored; check before trying again"
                    } else {
                        "The database is briefly unavailable; nothing was changed, try again"
                    },
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

impl ApiError {
    /// The status and envelope this error answers with (for answers written outside a plain
    /// response, such as a server-sent event).
    pub(crate) fn to_failure(&self) -> (StatusCode, Failure) {
        if let Self::Internal(cause) = self {
            tracing::error!(cause, "internal error");
        }
        self.status_and_failure()
    }

    /// A refused input: 400 `VALIDATION_ERROR` naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => Self::Conflict {
                code: "CONFLICT",
                message: format!("{what} already exists"),
            },
            StoreError::DomainTaken { domain, overlap } => Self::Conflict {
                code: "DOMAIN_TAKEN",
                message: format!("{domain:?} is taken: {overlap}"),
            },
            StoreError::InvalidText { field } => Self::invalid(field, crate::text::NUL_REFUSED),
            unavailable if unavailable.is_unavailable() => Self::Unavailable {
                maybe_stored: matches!(unavailable, StoreError::CommitInterrupted(_)),
                cause: unavailable.to_string(),
            },
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
        if let Self::Unavailable { cause, .. } = &self {
            tracing::warn!(%request_id, cause, "database unavailable");
        }
        let (status, failure) = self.status_and_failure();
        let mut response = json_response(status, failure.to_json(&request_id));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_database_is_a_503_to_retry_and_names_whether_the_change_may_be_stored() {
        let lost: ApiError = StoreError::Database(sqlx::Error::PoolTimedOut).into();
        let response = lost.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(axum::http::header::RETRY_AFTER),
            Some(&axum::http::HeaderValue::from_static("1"))
        );

        let (_, failure) =
            ApiError::from(StoreError::Database(sqlx::Error::PoolClosed)).status_and_failure();
        assert_eq!(failure.code, "DATABASE_UNAVAILABLE");
        assert!(
            failure.error.contains("nothing was changed"),
            "{}",
            failure.error
        );

        let (status, failure) =
            ApiError::from(StoreError::CommitInterrupted(sqlx::Error::PoolClosed))
                .status_and_failure();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            failure.error.contains("may have been stored"),
            "{}",
            failure.error
        );

        // Anything else about the database stays an internal error.
        let (status, _) =
            ApiError::from(StoreError::Database(sqlx::Error::RowNotFound)).status_and_failure();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
