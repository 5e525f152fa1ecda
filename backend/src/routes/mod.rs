//! The backend's routers, one module per resource, merged here.

mod api_keys;
mod chat;
mod documents;
mod health;
mod page;
mod sessions;
mod settings;
mod sync;
mod webhooks;

use axum::Router;
use axum::http::{Method, Uri};

use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(settings::router())
        .merge(api_keys::router())
        .merge(documents::router())
        .merge(sessions::router())
        .merge(chat::router())
        .merge(sync::router())
        .merge(webhooks::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("No route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
