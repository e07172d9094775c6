//! Billing records (flat, as documented), the aggregate view, and the simulated clock.

use axum::Json;
use axum::extract::State;
use barrack_api::billing::{
    AdvanceClock, AggregatedBilling, BillingQuery, ClockAdvanced, InstanceBillingResponse,
    SnapshotBillingResponse, VolumeBillingResponse,
};
use barrack_api::{Envelope, ErrorResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{Admin, ApiResult, Auth, Body, Query, Success};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_instance_billing))
        .routes(routes!(get_volume_billing))
        .routes(routes!(get_snapshot_billing))
        .routes(routes!(get_billing))
        .routes(routes!(admin_advance_clock))
}

/// Get instance billing
#[utoipa::path(get, path = "/api/instances/billing/", tag = "Instances", params(BillingQuery),
    responses((status = 200, body = InstanceBillingResponse), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_instance_billing(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<BillingQuery>,
) -> ApiResult<Json<InstanceBillingResponse>> {
    Ok(Json(
        state
            .services
            .billing
            .instance_records(&caller, query)
            .await?,
    ))
}

/// Get volume billing
#[utoipa::path(get, path = "/api/volumes/billing/", tag = "Volumes", params(BillingQuery),
    responses((status = 200, body = VolumeBillingResponse), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_volume_billing(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<BillingQuery>,
) -> ApiResult<Json<VolumeBillingResponse>> {
    Ok(Json(
        state
            .services
            .billing
            .volume_records(&caller, query)
            .await?,
    ))
}

/// Get snapshot billing
#[utoipa::path(get, path = "/api/snapshots/billing/", tag = "Snapshots", params(BillingQuery),
    responses((status = 200, body = SnapshotBillingResponse), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_snapshot_billing(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<BillingQuery>,
) -> ApiResult<Json<SnapshotBillingResponse>> {
    Ok(Json(
        state
            .services
            .billing
            .snapshot_records(&caller, query)
            .await?,
    ))
}

/// Cost of all resources in a time range
#[utoipa::path(get, path = "/api/billing/", tag = "Billing", params(BillingQuery),
    responses((status = 200, body = Envelope<AggregatedBilling>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_billing(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<BillingQuery>,
) -> ApiResult<Success<AggregatedBilling>> {
    let aggregate = state.services.billing.aggregate(&caller, query).await?;
    Ok(Success("Billing retrieved successfully", aggregate))
}

/// Move the simulated clock forward (simulation mode only), then bill the minutes that passed
#[utoipa::path(post, path = "/api/admin/clock/advance/", tag = "Admin", request_body = AdvanceClock,
    responses((status = 200, body = Envelope<ClockAdvanced>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
              (status = 409, description = "Not in simulation mode", body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_advance_clock(
    State(state): State<AppState>,
    Admin(_): Admin,
    Body(request): Body<AdvanceClock>,
) -> ApiResult<Success<ClockAdvanced>> {
    let advanced = state.services.simulation.advance(request.minutes).await?;
    Ok(Success("Clock advanced", advanced))
}
