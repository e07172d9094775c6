//! SSH keys.

use axum::extract::State;
use barrack_api::ssh_keys::{
    CreateSshKeyRequest, CreatedSshKey, DeletedSshKey, SshKey, SshKeyList,
};
use barrack_api::{Envelope, ErrorResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{ApiResult, Auth, Body, Created, NoBody, NoParams, PathId, Query, Success};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_ssh_keys, create_ssh_key))
        .routes(routes!(get_ssh_key, delete_ssh_key))
}

/// List SSH keys
#[utoipa::path(get, path = "/api/ssh-keys/", tag = "SSH Keys",
    responses((status = 200, body = Envelope<SshKeyList>), (status = 400, description = "A query parameter was given: the list takes none", body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_ssh_keys(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<SshKeyList>> {
    let ssh_keys = state.services.ssh_keys.list(&caller).await?;
    Ok(Success(
        "SSH keys retrieved successfully",
        SshKeyList { ssh_keys },
    ))
}

/// Create SSH key (import a public key, or generate a pair whose private key is shown once)
#[utoipa::path(post, path = "/api/ssh-keys/", tag = "SSH Keys", request_body = CreateSshKeyRequest,
    responses((status = 201, body = Envelope<CreatedSshKey>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn create_ssh_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(request): Body<CreateSshKeyRequest>,
) -> ApiResult<Created<CreatedSshKey>> {
    let key = state.services.ssh_keys.create(&caller, request).await?;
    let message = if key.private_key.is_some() {
        "SSH key pair generated; save the private key now, it is not stored"
    } else {
        "SSH key imported successfully"
    };
    Ok(Created(message, key))
}

/// Get SSH key
#[utoipa::path(get, path = "/api/ssh-keys/{id}/", tag = "SSH Keys", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<SshKey>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_ssh_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<SshKey>> {
    let key = state.services.ssh_keys.get(&caller, &id).await?;
    Ok(Success("SSH key retrieved successfully", key))
}

/// Delete SSH key
#[utoipa::path(delete, path = "/api/ssh-keys/{id}/", tag = "SSH Keys", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<DeletedSshKey>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn delete_ssh_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<DeletedSshKey>> {
    state.services.ssh_keys.delete(&caller, &id).await?;
    Ok(Success("SSH key deleted", DeletedSshKey { id }))
}
