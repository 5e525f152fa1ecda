//! `GET /ready`: the backend's view of readiness. The edge answers `/health` itself and
//! reports the backend as down when it cannot reach it.

use axum::extract::State;
use serde_json::{Value, json};

use crate::routes::Routes;
use crate::{ApiError, AppState, Envelope, RequestContext};

pub(super) fn routes(routes: Routes) -> Routes {
    routes.get("/ready", ready)
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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use mindshop_wire::identity::Identity;
    use tower::ServiceExt;

    use crate::test_support::{json, signed, state};

    #[tokio::test]
    async fn ready_when_the_database_answers() {
        let (state, _dir) = state().await;
        let response = crate::app(state)
            .oneshot(signed("GET", "/ready", &Identity::anonymous()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = json(response).await;
        assert_eq!(body["data"]["checks"]["database"], "up");
    }

    #[tokio::test]
    async fn not_ready_names_the_database_when_it_is_down() {
        let (state, _dir) = state().await;
        state.store.close().await;
        let response = crate::app(state)
            .oneshot(signed("GET", "/ready", &Identity::anonymous()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = json(response).await;
        assert_eq!(body["code"], "NOT_READY");
        assert_eq!(body["checks"]["database"], "down");
        assert_eq!(body["checks"]["backend"], "up");
    }

    #[tokio::test]
    async fn wrong_method_is_a_405_envelope() {
        let (state, _dir) = state().await;
        let response = crate::app(state)
            .oneshot(signed("POST", "/ready", &Identity::anonymous()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(json(response).await["code"], "METHOD_NOT_ALLOWED");
    }
}
