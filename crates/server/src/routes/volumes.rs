//! Volumes, and attaching them to instances (`spec/API.md` §4.2, "Resource rules").

use axum::extract::State;
use barrack_api::volumes::{
    CloneVolumeRequest, CreateVolumeRequest, ResizeVolumeRequest, Volume, VolumeAction,
    VolumeAttachmentChange, VolumeIdsRequest, VolumeList, VolumeQuery, VolumeTypeList,
};
use barrack_api::{Envelope, ErrorResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{ApiResult, Auth, Body, Created, NoBody, NoParams, PathId, Query, Success};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_volumes, create_volume))
        .routes(routes!(patch_volume_labels))
        .routes(routes!(list_volume_types))
        .routes(routes!(get_volume, delete_volume))
        .routes(routes!(resize_volume))
        .routes(routes!(clone_volume))
        .routes(routes!(attach_volumes))
        .routes(routes!(detach_volumes))
}

/// List volumes
#[utoipa::path(get, path = "/api/volumes/", tag = "Volumes", params(VolumeQuery, barrack_api::labels::LabelQuery),
    responses((status = 200, body = Envelope<VolumeList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_volumes(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<VolumeQuery>,
    crate::http::LabelParams(labels): crate::http::LabelParams,
) -> ApiResult<Success<VolumeList>> {
    let list = state.services.volumes.list(&caller, query, &labels).await?;
    Ok(Success("Volumes retrieved successfully", list))
}

/// Create a volume
#[utoipa::path(post, path = "/api/volumes/", tag = "Volumes", request_body = CreateVolumeRequest,
    responses((status = 201, body = Envelope<Volume>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 402, body = ErrorResponse),
              (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn create_volume(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(request): Body<CreateVolumeRequest>,
) -> ApiResult<Created<Volume>> {
    Created::of(
        "Volume creation started",
        state.services.volumes.create(&caller, request),
    )
    .await
}

/// List volume types
#[utoipa::path(get, path = "/api/volumes/types/", tag = "Volumes",
    responses((status = 200, body = Envelope<VolumeTypeList>), (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_volume_types(
    State(state): State<AppState>,
    Auth(_caller): Auth,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<VolumeTypeList>> {
    Ok(Success(
        "Volume types retrieved successfully",
        state.services.volumes.types(),
    ))
}

/// Get volume details
#[utoipa::path(get, path = "/api/volumes/{id}/", tag = "Volumes", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Volume>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_volume(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<Volume>> {
    let volume = state.services.volumes.get(&caller, &id).await?;
    Ok(Success("Volume retrieved successfully", volume))
}

/// Delete a volume (detached volumes only)
#[utoipa::path(delete, path = "/api/volumes/{id}/", tag = "Volumes", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<VolumeAction>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn delete_volume(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<VolumeAction>> {
    let done = state.services.volumes.delete(&caller, &id).await?;
    Ok(Success("Volume deletion started", done))
}

/// Resize a volume (grow only)
#[utoipa::path(post, path = "/api/volumes/{id}/resize/", tag = "Volumes", params(("id" = String, Path)),
    request_body = ResizeVolumeRequest,
    responses((status = 200, body = Envelope<VolumeAction>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn resize_volume(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Body(request): Body<ResizeVolumeRequest>,
) -> ApiResult<Success<VolumeAction>> {
    Success::of(
        "Volume resize started",
        state.services.volumes.resize(&caller, &id, request),
    )
    .await
}

/// Clone a volume
#[utoipa::path(post, path = "/api/volumes/{id}/clone/", tag = "Volumes", params(("id" = String, Path)),
    request_body = CloneVolumeRequest,
    responses((status = 201, body = Envelope<Volume>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 402, body = ErrorResponse),
              (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn clone_volume(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Body(request): Body<CloneVolumeRequest>,
) -> ApiResult<Created<Volume>> {
    Created::of(
        "Volume clone started",
        state.services.volumes.clone_volume(&caller, &id, request),
    )
    .await
}

/// Attach volumes to an instance
#[utoipa::path(post, path = "/api/instances/{id}/attach-volumes/", tag = "Instances", params(("id" = String, Path)),
    request_body = VolumeIdsRequest,
    responses((status = 200, body = Envelope<VolumeAttachmentChange>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn attach_volumes(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Body(request): Body<VolumeIdsRequest>,
) -> ApiResult<Success<VolumeAttachmentChange>> {
    Success::of(
        "Volumes attaching",
        state.services.volumes.attach(&caller, &id, request),
    )
    .await
}

/// Detach volumes from an instance
#[utoipa::path(post, path = "/api/instances/{id}/detach-volumes/", tag = "Instances", params(("id" = String, Path)),
    request_body = VolumeIdsRequest,
    responses((status = 200, body = Envelope<VolumeAttachmentChange>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn detach_volumes(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Body(request): Body<VolumeIdsRequest>,
) -> ApiResult<Success<VolumeAttachmentChange>> {
    Success::of(
        "Volumes detaching",
        state.services.volumes.detach(&caller, &id, request),
    )
    .await
}

crate::routes::labels::labels_handler!(
    patch_volume_labels,
    "/api/volumes/{id}/labels/",
    "Volumes",
    barrack_core::labels::Labelled::Volume
);
