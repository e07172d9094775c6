//! Operator endpoints (`spec/API.md` §4.4): admin accounts only.

use axum::extract::State;
use barrack_api::account::{
    AdminCreateUser, AdminCreatedApiKey, AdminUserList, CreateApiKeyRequest, GrantCredits,
    UserProfile,
};
use barrack_api::catalog::{CapacityList, SetCapacityRequest};
use barrack_api::ledger::Transaction;
use barrack_api::{Envelope, ErrorResponse, PageQuery};
use barrack_core::Error;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{Admin, ApiResult, Body, Created, PathId, Query, Success};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(admin_list_users, admin_create_user))
        .routes(routes!(admin_create_api_key))
        .routes(routes!(admin_grant_credits))
        .routes(routes!(admin_get_capacity, admin_set_capacity))
}

/// List accounts
#[utoipa::path(get, path = "/api/admin/users/", tag = "Admin", params(PageQuery),
    responses((status = 200, body = Envelope<AdminUserList>), (status = 401, body = ErrorResponse),
              (status = 403, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_list_users(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(page): Query<PageQuery>,
) -> ApiResult<Success<AdminUserList>> {
    let page = page
        .validate()
        .map_err(|(field, message)| Error::field(field, message))?;
    let (users, pagination) = state.services.accounts.list_accounts(page).await?;
    Ok(Success(
        "Users retrieved successfully",
        AdminUserList { users, pagination },
    ))
}

/// Create an account
#[utoipa::path(post, path = "/api/admin/users/", tag = "Admin", request_body = AdminCreateUser,
    responses((status = 201, body = Envelope<UserProfile>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_create_user(
    State(state): State<AppState>,
    Admin(_): Admin,
    Body(request): Body<AdminCreateUser>,
) -> ApiResult<Created<UserProfile>> {
    let user = state
        .services
        .accounts
        .create_account(
            &request.email,
            &request.password,
            &request.name,
            request.admin,
        )
        .await?;
    Ok(Created("User created successfully", user))
}

/// Create an API key for an account
#[utoipa::path(post, path = "/api/admin/users/{id}/api-keys/", tag = "Admin", params(("id" = String, Path)),
    request_body = CreateApiKeyRequest,
    responses((status = 201, body = Envelope<AdminCreatedApiKey>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_create_api_key(
    State(state): State<AppState>,
    Admin(_): Admin,
    PathId(user_id): PathId,
    Body(request): Body<CreateApiKeyRequest>,
) -> ApiResult<Created<AdminCreatedApiKey>> {
    let account = state.services.accounts.account(&user_id).await?;
    let key = state
        .services
        .accounts
        .create_api_key(&account.id, &request.name, request.tier)
        .await?;
    Ok(Created(
        "API key created successfully",
        AdminCreatedApiKey {
            user_id: account.id,
            key,
        },
    ))
}

/// Grant credits to an account (a ledger entry)
#[utoipa::path(post, path = "/api/admin/accounts/{id}/credits/", tag = "Admin", params(("id" = String, Path)),
    request_body = GrantCredits,
    responses((status = 201, body = Envelope<Transaction>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_grant_credits(
    State(state): State<AppState>,
    Admin(operator): Admin,
    PathId(user_id): PathId,
    Body(request): Body<GrantCredits>,
) -> ApiResult<Created<Transaction>> {
    let entry = state
        .services
        .ledger
        .grant(
            operator.account_id(),
            &user_id,
            request.amount,
            request.currency,
            request.note,
        )
        .await?;
    Ok(Created("Credits granted", entry))
}

/// GPU capacity per region and model
#[utoipa::path(get, path = "/api/admin/capacity/", tag = "Admin",
    responses((status = 200, body = Envelope<CapacityList>), (status = 401, body = ErrorResponse),
              (status = 403, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_get_capacity(
    State(state): State<AppState>,
    Admin(_): Admin,
) -> ApiResult<Success<CapacityList>> {
    let capacity = state.services.catalog.capacity().await?;
    Ok(Success(
        "Capacity retrieved successfully",
        CapacityList { capacity },
    ))
}

/// Set GPU capacity of regions and models
#[utoipa::path(put, path = "/api/admin/capacity/", tag = "Admin", request_body = SetCapacityRequest,
    responses((status = 200, body = Envelope<CapacityList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_set_capacity(
    State(state): State<AppState>,
    Admin(_): Admin,
    Body(request): Body<SetCapacityRequest>,
) -> ApiResult<Success<CapacityList>> {
    let capacity = state
        .services
        .catalog
        .set_capacity(&request.capacity)
        .await?;
    Ok(Success("Capacity updated", CapacityList { capacity }))
}
