//! Startup scripts.

use axum::extract::State;
use barrack_api::scripts::{
    DeleteScriptsRequest, DeletedScripts, Script, ScriptList, ScriptRequest,
};
use barrack_api::{Envelope, ErrorResponse, PageQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{ApiResult, Auth, Body, Created, NoBody, NoParams, PathId, Query, Success};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_scripts, create_script, delete_scripts))
        .routes(routes!(get_script, update_script, delete_script))
}

/// List all startup scripts
#[utoipa::path(get, path = "/api/scripts/", tag = "Scripts", params(PageQuery),
    responses((status = 200, body = Envelope<ScriptList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_scripts(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(page): Query<PageQuery>,
) -> ApiResult<Success<ScriptList>> {
    let list = state.services.scripts.list(&caller, page).await?;
    Ok(Success("Scripts retrieved successfully", list))
}

/// Create a startup script
#[utoipa::path(post, path = "/api/scripts/", tag = "Scripts", request_body = ScriptRequest,
    responses((status = 201, body = Envelope<Script>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn create_script(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(request): Body<ScriptRequest>,
) -> ApiResult<Created<Script>> {
    Created::of(
        "Script created successfully",
        state.services.scripts.create(&caller, request),
    )
    .await
}

/// Delete multiple startup scripts
#[utoipa::path(delete, path = "/api/scripts/", tag = "Scripts", request_body = DeleteScriptsRequest,
    responses((status = 200, body = Envelope<DeletedScripts>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn delete_scripts(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(request): Body<DeleteScriptsRequest>,
) -> ApiResult<Success<DeletedScripts>> {
    let result = state
        .services
        .scripts
        .delete_many(&caller, request.script_ids)
        .await?;
    Ok(Success("Scripts deleted", result))
}

/// Get startup script details
#[utoipa::path(get, path = "/api/scripts/{id}/", tag = "Scripts", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Script>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_script(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<Script>> {
    let script = state.services.scripts.get(&caller, &id).await?;
    Ok(Success("Script retrieved successfully", script))
}

/// Update a startup script
#[utoipa::path(put, path = "/api/scripts/{id}/", tag = "Scripts", params(("id" = String, Path)), request_body = ScriptRequest,
    responses((status = 200, body = Envelope<Script>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn update_script(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Body(request): Body<ScriptRequest>,
) -> ApiResult<Success<Script>> {
    let script = state.services.scripts.update(&caller, &id, request).await?;
    Ok(Success("Script updated successfully", script))
}

/// Delete a startup script
#[utoipa::path(delete, path = "/api/scripts/{id}/", tag = "Scripts", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<DeletedScripts>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn delete_script(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<DeletedScripts>> {
    state.services.scripts.delete(&caller, &id).await?;
    Ok(Success(
        "Script deleted",
        DeletedScripts {
            deleted: vec![id],
            not_found: vec![],
        },
    ))
}
