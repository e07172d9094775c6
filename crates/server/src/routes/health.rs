//! Health: readiness (`/api/health/`, which asks the database) and liveness (`/api/health/live/`, which
//! touches nothing), so an orchestrator can tell "restart me" from "send me no traffic".

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use barrack_api::{Envelope, ErrorResponse};
use barrack_core::config::DriverKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{NoParams, Query};
use crate::http::{Success, context};

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
    /// `ok` when the database answered (readiness only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// `true` when instances run in the simulated data centre: they get addresses, but no machine
    /// answers there (readiness only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<bool>,
}

/// How long readiness waits for the database.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(liveness))
}

/// Readiness: the server and its database
#[utoipa::path(get, path = "/api/health/", tag = "Health",
    responses((status = 200, body = Envelope<Health>),
              (status = 503, description = "The database cannot be reached", body = ErrorResponse)))]
async fn health(State(state): State<AppState>, Query(NoParams {}): Query<NoParams>) -> Response {
    match state.services.store().ping(DATABASE_TIMEOUT).await {
        Ok(()) => Success(
            "Barrack is running",
            Health {
                status: "ok".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                database: Some("ok".into()),
                simulated: Some(matches!(state.services.config().driver, DriverKind::Sim)),
            },
        )
        .into_response(),
        Err(e) => {
            let request_id = context::current().map(|c| c.request_id).unwrap_or_default();
            tracing::warn!(%request_id, error = %e, "readiness: database unreachable");
            let body = ErrorResponse {
                success: false,
                message: "The database cannot be reached".into(),
                code: "SERVICE_UNAVAILABLE".into(),
                errors: None,
                request_id,
                tier: None,
            };
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

/// Liveness: the process answers (no database)
#[utoipa::path(get, path = "/api/health/live/", tag = "Health", responses((status = 200, body = Envelope<Health>)))]
async fn liveness(Query(NoParams {}): Query<NoParams>) -> Success<Health> {
    Success(
        "Barrack is running",
        Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            database: None,
            simulated: None,
        },
    )
}
