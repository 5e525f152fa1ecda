//! `GET /ready`: the backend's view of readiness. The edge answers `/health` itself and
//! reports the backend as down when it cannot reach it.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use crate::{ApiError, AppState, Envelope, RequestContext};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ready", get(ready))
}

async fn ready(
    State(state): State<AppState>,
    context: RequestContext,
) -> Result<Envelope<Value>, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(Envelope::new(
            &context,
            json!({"status": "ready", "checks": {"backend": "up", "database": "up"}}),
        )),
        Err(error) => {
            tracing::warn!(%error, "readiness: database is down");
            Err(ApiError::NotReady(
                json!({"backend": "up", "database": "down"}),
            ))
        }
    }
}
