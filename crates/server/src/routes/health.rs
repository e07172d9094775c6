//! Liveness: answers without touching the database.

use barrack_api::Envelope;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::Success;

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

/// Server liveness
#[utoipa::path(get, path = "/api/health/", tag = "Health", responses((status = 200, body = Envelope<Health>)))]
async fn health() -> Success<Health> {
    Success(
        "Barrack is running",
        Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
    )
}
