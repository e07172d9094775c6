//! API keys of the calling account.

use axum::extract::State;
use barrack_api::account::{ApiKeyList, CreateApiKeyRequest, CreatedApiKey, DeletedApiKey};
use barrack_api::{Envelope, ErrorResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{ApiResult, Auth, Body, Created, NoBody, NoParams, PathId, Query, Success};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(delete_api_key))
}

/// List API keys
#[utoipa::path(get, path = "/api/api-keys/", tag = "API Keys",
    responses((status = 200, body = Envelope<ApiKeyList>), (status = 400, description = "A query parameter was given: the list takes none", body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_api_keys(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<ApiKeyList>> {
    let api_keys = state
        .services
        .accounts
        .list_api_keys(caller.account_id())
        .await?;
    Ok(Success(
        "API keys retrieved successfully",
        ApiKeyList { api_keys },
    ))
}

/// Create an API key (the secret is shown only in this response)
#[utoipa::path(post, path = "/api/api-keys/", tag = "API Keys", request_body = CreateApiKeyRequest,
    responses((status = 201, body = Envelope<CreatedApiKey>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn create_api_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(request): Body<CreateApiKeyRequest>,
) -> ApiResult<Created<CreatedApiKey>> {
    let key = state
        .services
        .accounts
        .create_api_key(caller.account_id(), &request.name, request.tier)
        .await?;
    Ok(Created(
        "API key created successfully; store it now, it is not shown again",
        key,
    ))
}

/// Revoke an API key
#[utoipa::path(delete, path = "/api/api-keys/{id}/", tag = "API Keys", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<DeletedApiKey>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn delete_api_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<DeletedApiKey>> {
    state
        .services
        .accounts
        .revoke_api_key(caller.account_id(), &id)
        .await?;
    Ok(Success("API key revoked", DeletedApiKey { id }))
}
