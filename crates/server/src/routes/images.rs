//! Custom images made from snapshots, and the snapshot-image relationships (`spec/API.md` §4.2,
//! "Resource rules").

use axum::extract::State;
use barrack_api::images::{
    CreateImageRequest, Image, ImageAction, ImageList, ImageQuery, ImageRelationships,
    SnapshotIdsRequest, SnapshotImageRelationship,
};
use barrack_api::{Envelope, ErrorResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{ApiResult, Auth, Body, Created, NoBody, NoParams, PathId, Query, Success};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_images, create_image))
        .routes(routes!(patch_image_labels))
        .routes(routes!(get_image, delete_image))
        .routes(routes!(get_snapshot_image_relationship))
        .routes(routes!(get_snapshot_image_relationships))
}

/// List custom images
#[utoipa::path(get, path = "/api/images/", tag = "Images", params(ImageQuery, barrack_api::labels::LabelQuery),
    responses((status = 200, body = Envelope<ImageList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_images(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<ImageQuery>,
    crate::http::LabelParams(labels): crate::http::LabelParams,
) -> ApiResult<Success<ImageList>> {
    let list = state.services.images.list(&caller, query, &labels).await?;
    Ok(Success("Images retrieved successfully", list))
}

/// Create a custom image from a SUCCESS snapshot
#[utoipa::path(post, path = "/api/images/", tag = "Images", request_body = CreateImageRequest,
    responses((status = 201, body = Envelope<Image>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn create_image(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(request): Body<CreateImageRequest>,
) -> ApiResult<Created<Image>> {
    Created::of(
        "Image created successfully",
        state.services.images.create(&caller, request),
    )
    .await
}

/// Get custom image details
#[utoipa::path(get, path = "/api/images/{id}/", tag = "Images", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Image>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_image(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<Image>> {
    let image = state.services.images.get(&caller, &id).await?;
    Ok(Success("Image retrieved successfully", image))
}

/// Delete a custom image (instances booted from it are not affected)
#[utoipa::path(delete, path = "/api/images/{id}/", tag = "Images", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<ImageAction>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn delete_image(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<ImageAction>> {
    let done = state.services.images.delete(&caller, &id).await?;
    Ok(Success("Image deleted successfully", done))
}

/// Get the custom images made from a snapshot
#[utoipa::path(get, path = "/api/snapshots/{id}/image-relationship/", tag = "Images", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<SnapshotImageRelationship>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_snapshot_image_relationship(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<SnapshotImageRelationship>> {
    let relationship = state.services.images.relationship(&caller, &id).await?;
    Ok(Success(
        "Snapshot image relationship retrieved successfully",
        relationship,
    ))
}

/// Get the custom images made from several snapshots (unknown ids are reported, not errors)
#[utoipa::path(post, path = "/api/snapshots/image-relationships/", tag = "Images",
    request_body = SnapshotIdsRequest,
    responses((status = 200, body = Envelope<ImageRelationships>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_snapshot_image_relationships(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(request): Body<SnapshotIdsRequest>,
) -> ApiResult<Success<ImageRelationships>> {
    let relationships = state
        .services
        .images
        .relationships(&caller, request)
        .await?;
    Ok(Success(
        "Snapshot image relationships retrieved successfully",
        relationships,
    ))
}

crate::routes::labels::labels_handler!(
    patch_image_labels,
    "/api/images/{id}/labels/",
    "Images",
    barrack_core::labels::Labelled::Image
);
