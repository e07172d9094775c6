//! Operator endpoints (`spec/API.md` §4.4): admin accounts only.

use axum::extract::State;
use barrack_api::account::{
    AccountAccess, AdminCreateUser, AdminCreatedApiKey, AdminUserList, CreateApiKeyRequest,
    GrantCredits, UserProfile,
};
use barrack_api::catalog::{CapacityList, SetCapacityRequest};
use barrack_api::instances::{FaultInjected, HostList, JobList, JobQuery};
use barrack_api::ledger::Transaction;
use barrack_api::{Envelope, ErrorResponse, PageQuery, body};
use barrack_compute::sim::Fault;
use barrack_core::Error;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{
    Admin, AmountBody, ApiResult, Body, Created, NoBody, NoParams, PathId, Query, Success,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(admin_list_users, admin_create_user))
        .routes(routes!(admin_create_api_key))
        .routes(routes!(admin_disable_user))
        .routes(routes!(admin_enable_user))
        .routes(routes!(admin_grant_credits))
        .routes(routes!(admin_get_capacity, admin_set_capacity))
        .routes(routes!(admin_inject_fault))
        .routes(routes!(admin_list_hosts))
        .routes(routes!(admin_list_jobs))
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
#[utoipa::path(post, path = "/api/admin/users/{id}/api-keys/", tag = "Admin", params(("id" = String, Path, description = "The account: its id or its email")),
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
    let (account, key) = state
        .services
        .accounts
        .create_api_key_for(&user_id, &request.name, request.tier)
        .await?;
    Ok(Created(
        "API key created successfully",
        AdminCreatedApiKey {
            user_id: account.id,
            key,
        },
    ))
}

/// Disable an account
///
/// At once and together: the account's sessions and API keys are revoked and it can no longer log in.
#[utoipa::path(post, path = "/api/admin/users/{id}/disable/", tag = "Admin", params(("id" = String, Path, description = "The account: its id or its email")),
    responses((status = 200, body = Envelope<AccountAccess>), (status = 401, body = ErrorResponse),
              (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, description = "An operator's own account", body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_disable_user(
    State(state): State<AppState>,
    Admin(operator): Admin,
    PathId(user_id): PathId,
    _: NoBody,
) -> ApiResult<Success<AccountAccess>> {
    let access = state
        .services
        .accounts
        .set_disabled(&operator, &user_id, true)
        .await?;
    Ok(Success("Account disabled", access))
}

/// Enable a disabled account
///
/// It can log in again; API keys revoked by the disable stay revoked.
#[utoipa::path(post, path = "/api/admin/users/{id}/enable/", tag = "Admin", params(("id" = String, Path, description = "The account: its id or its email")),
    responses((status = 200, body = Envelope<AccountAccess>), (status = 401, body = ErrorResponse),
              (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_enable_user(
    State(state): State<AppState>,
    Admin(operator): Admin,
    PathId(user_id): PathId,
    _: NoBody,
) -> ApiResult<Success<AccountAccess>> {
    let access = state
        .services
        .accounts
        .set_disabled(&operator, &user_id, false)
        .await?;
    Ok(Success("Account enabled", access))
}

/// Grant credits to an account (a ledger entry)
#[utoipa::path(post, path = "/api/admin/accounts/{id}/credits/", tag = "Admin", params(("id" = String, Path, description = "The account: its id or its email")),
    request_body = GrantCredits,
    responses((status = 201, body = Envelope<Transaction>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_grant_credits(
    State(state): State<AppState>,
    Admin(operator): Admin,
    PathId(user_id): PathId,
    AmountBody(request): AmountBody<GrantCredits>,
) -> ApiResult<Created<Transaction>> {
    let account = state
        .services
        .accounts
        .account_by_id_or_email(&user_id)
        .await?;
    let grant = state.services.ledger.grant(
        operator.account_id(),
        &account.id,
        request.amount,
        request.currency,
        request.note,
    );
    Created::of("Credits granted", grant).await
}

/// GPU capacity per region and model
#[utoipa::path(get, path = "/api/admin/capacity/", tag = "Admin",
    responses((status = 200, body = Envelope<CapacityList>), (status = 401, body = ErrorResponse),
              (status = 403, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_get_capacity(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(NoParams {}): Query<NoParams>,
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

/// Inject a fault into the simulated data centre
#[utoipa::path(post, path = "/api/admin/faults/", tag = "Admin",
    request_body(content = Object, description = "`{\"kind\": \"fail_nth\", \"operation\": \"create_instance\", \"nth\": 1, \"permanent\": false}`, `{\"kind\": \"hang\", \"operation\": ..., \"count\": 1}` or `{\"kind\": \"lose_host\", \"host\": ...}`"),
    responses((status = 201, body = Envelope<FaultInjected>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
              (status = 404, description = "`lose_host` names a host the simulator does not have", body = ErrorResponse),
              (status = 409, description = "The driver is not the simulator", body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_inject_fault(
    State(state): State<AppState>,
    Admin(_): Admin,
    Body(body): Body<serde_json::Value>,
) -> ApiResult<Created<FaultInjected>> {
    let Some(simulator) = &state.simulator else {
        return Err(Error::conflict(
            "CONFLICT",
            "Faults can be injected only into the simulated data centre",
        )
        .into());
    };
    // Read as every body is first, so a refusal names the member at fault in the API's words; then the
    // fault's own rules.
    body::from_value::<Fault>(&body)?;
    let fault = Fault::from_request(&body).map_err(|bad| Error::field(&bad.field, bad.message))?;
    state
        .services
        .simulation
        .inject_fault(simulator, fault)
        .await?;
    Ok(Created("Fault injected", FaultInjected { fault: body }))
}

/// The machines of the data centre
///
/// Every host instances are placed on (the simulated hosts, or the configured libvirt hosts), with its
/// GPUs in use and whether it is lost.
#[utoipa::path(get, path = "/api/admin/hosts/", tag = "Admin",
    responses((status = 200, body = Envelope<HostList>), (status = 401, body = ErrorResponse),
              (status = 403, body = ErrorResponse),
              (status = 502, description = "The compute driver could not answer", body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_list_hosts(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<HostList>> {
    let hosts = state.services.instances.hosts().await?;
    Ok(Success("Hosts retrieved successfully", HostList { hosts }))
}

/// Pending, running and failed operations
///
/// Oldest first, a page at a time; `status` narrows the list to one of those states.
#[utoipa::path(get, path = "/api/admin/jobs/", tag = "Admin", params(JobQuery),
    responses((status = 200, body = Envelope<JobList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_list_jobs(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(query): Query<JobQuery>,
) -> ApiResult<Success<JobList>> {
    let jobs = state.services.instances.operator_jobs(query).await?;
    Ok(Success("Jobs retrieved successfully", jobs))
}
