//! Snapshots of instances, and restoring them into new instances (`spec/API.md` §4.2, "Resource rules").

use axum::extract::State;
use barrack_api::instances::DeployedInstance;
use barrack_api::snapshots::{
    CreateSnapshotRequest, RestoreSnapshotRequest, Snapshot, SnapshotAction, SnapshotList,
    SnapshotQuery,
};
use barrack_api::{Envelope, ErrorResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{ApiResult, Auth, Body, Created, NoBody, NoParams, PathId, Query, Success};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_snapshots, create_snapshot))
        .routes(routes!(patch_snapshot_labels))
        .routes(routes!(get_snapshot, delete_snapshot))
        .routes(routes!(restore_snapshot))
}

/// List snapshots
#[utoipa::path(get, path = "/api/snapshots/", tag = "Snapshots", params(SnapshotQuery, barrack_api::labels::LabelQuery),
    responses((status = 200, body = Envelope<SnapshotList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_snapshots(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<SnapshotQuery>,
    crate::http::LabelParams(labels): crate::http::LabelParams,
) -> ApiResult<Success<SnapshotList>> {
    let list = state
        .services
        .snapshots
        .list(&caller, query, &labels)
        .await?;
    Ok(Success("Snapshots retrieved successfully", list))
}

/// Create a snapshot of an ACTIVE instance (optionally also as an image)
#[utoipa::path(post, path = "/api/snapshots/", tag = "Snapshots", request_body = CreateSnapshotRequest,
    responses((status = 201, body = Envelope<Snapshot>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 402, body = ErrorResponse),
              (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn create_snapshot(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(request): Body<CreateSnapshotRequest>,
) -> ApiResult<Created<Snapshot>> {
    Created::of(
        "Snapshot creation started",
        state.services.snapshots.create(&caller, request),
    )
    .await
}

/// Get snapshot details, with the source instance's configuration
#[utoipa::path(get, path = "/api/snapshots/{id}/", tag = "Snapshots", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Snapshot>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_snapshot(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<Snapshot>> {
    let snapshot = state.services.snapshots.get(&caller, &id).await?;
    Ok(Success("Snapshot retrieved successfully", snapshot))
}

/// Delete a snapshot (instances restored from it and images made from it are not affected)
#[utoipa::path(delete, path = "/api/snapshots/{id}/", tag = "Snapshots", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<SnapshotAction>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn delete_snapshot(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<SnapshotAction>> {
    let done = state.services.snapshots.delete(&caller, &id).await?;
    Ok(Success("Snapshot deletion started", done))
}

/// Restore a snapshot into a new instance
#[utoipa::path(post, path = "/api/snapshots/{id}/restore/", tag = "Snapshots", params(("id" = String, Path)),
    request_body = RestoreSnapshotRequest,
    responses((status = 201, body = Envelope<DeployedInstance>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 402, body = ErrorResponse),
              (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn restore_snapshot(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Body(request): Body<RestoreSnapshotRequest>,
) -> ApiResult<Created<DeployedInstance>> {
    Created::of(
        "Snapshot restore started",
        state
            .services
            .instances
            .restore_from_snapshot(&caller, &id, request),
    )
    .await
}

crate::routes::labels::labels_handler!(
    patch_snapshot_labels,
    "/api/snapshots/{id}/labels/",
    "Snapshots",
    barrack_core::labels::Labelled::Snapshot
);
