//! Deposits: opened by accounts, completed by the payment provider's signed webhook or by an operator.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use barrack_api::deposits::{CreateDepositRequest, Deposit, DepositList, DepositWebhookEvent};
use barrack_api::{Envelope, ErrorResponse, PageQuery};
use barrack_core::payments::WebhookRequest;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::NoParams;
use crate::http::context;
use crate::http::{Admin, AmountBody, ApiResult, Auth, Created, NoBody, PathId, Query, Success};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deposits, create_deposit))
        .routes(routes!(deposit_webhook))
        .routes(routes!(get_deposit))
        .routes(routes!(cancel_deposit))
        .routes(routes!(admin_complete_deposit))
}

/// List your deposits
#[utoipa::path(get, path = "/api/deposits/", tag = "Deposits", params(PageQuery),
    responses((status = 200, body = Envelope<DepositList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_deposits(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(page): Query<PageQuery>,
) -> ApiResult<Success<DepositList>> {
    let list = state.services.deposits.list(&caller, page).await?;
    Ok(Success("Deposits retrieved successfully", list))
}

/// Open a deposit
///
/// Buys credits in the account's currency through the configured payment provider. The deposit is
/// `pending` with the provider's `payment_reference` and `checkout_url` until the payment is confirmed;
/// then the account is credited `amount` (INR deposits show 18 % GST on top: `tax`, `total_payable`).
#[utoipa::path(post, path = "/api/deposits/", tag = "Deposits", request_body = CreateDepositRequest,
    responses((status = 201, body = Envelope<Deposit>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse),
              (status = 403, description = "PROFILE_INCOMPLETE", body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn create_deposit(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AmountBody(request): AmountBody<CreateDepositRequest>,
) -> ApiResult<Created<Deposit>> {
    Created::of(
        "Deposit created: complete the payment to receive the credits",
        state.services.deposits.create(&caller, request),
    )
    .await
}

/// Get a deposit
#[utoipa::path(get, path = "/api/deposits/{id}/", tag = "Deposits", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Deposit>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_deposit(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<Deposit>> {
    let deposit = state.services.deposits.get(&caller, &id).await?;
    Ok(Success("Deposit retrieved successfully", deposit))
}

/// Cancel a pending deposit
///
/// For a deposit you will not pay: it becomes `cancelled` and no longer counts against the 10 pending
/// deposits an account may have. A payment confirmed for it afterwards credits nothing (409). A deposit
/// already completed or cancelled is 409.
#[utoipa::path(post, path = "/api/deposits/{id}/cancel/", tag = "Deposits", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Deposit>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse),
              (status = 409, description = "INVALID_STATE: the deposit is not pending", body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn cancel_deposit(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<Deposit>> {
    let deposit = state.services.deposits.cancel(&caller, &id).await?;
    Ok(Success("Deposit cancelled", deposit))
}

/// Payment provider webhook
///
/// Called by the payment provider, not with an API key: the `X-Barrack-Signature` header authenticates
/// the call. It is `sha256=` followed by the hex HMAC-SHA256 of the exact request body under the server's
/// `payments.webhook_secret`; the signature is checked before the body is read, so any call without a
/// valid one is 401 (as is every call when no secret is configured). A `payment.succeeded` event whose
/// `amount` and `currency` match the deposit completes it and credits the account, exactly once: a replay
/// is 409, as is a payment for a cancelled deposit.
#[utoipa::path(post, path = "/api/deposits/webhook/", tag = "Deposits", request_body = DepositWebhookEvent,
    params(("X-Barrack-Signature" = String, Header,
            description = "`sha256=<hex HMAC-SHA256 of the raw body under payments.webhook_secret>`")),
    responses((status = 200, body = Envelope<Deposit>), (status = 400, body = ErrorResponse),
              (status = 401, description = "Missing or invalid signature", body = ErrorResponse),
              (status = 404, body = ErrorResponse),
              (status = 409, description = "The deposit is already completed, or cancelled", body = ErrorResponse)),
    security(()))]
async fn deposit_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Success<Deposit>> {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect();
    let request = WebhookRequest {
        headers,
        body: &body,
    };
    let request_id = context::current().map(|c| c.request_id).unwrap_or_default();
    let deposit = state
        .services
        .deposits
        .handle_webhook(&request)
        .instrument(tracing::info_span!("payment_webhook", %request_id))
        .await?;
    Ok(Success("Deposit completed", deposit))
}

/// Complete a pending deposit (operators)
///
/// Credits the account as a confirmed payment would, through the same exactly-once path: a deposit
/// already completed is 409.
#[utoipa::path(post, path = "/api/admin/deposits/{id}/complete/", tag = "Admin", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Deposit>), (status = 401, body = ErrorResponse),
              (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_complete_deposit(
    State(state): State<AppState>,
    Admin(operator): Admin,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<Deposit>> {
    let deposit = state
        .services
        .deposits
        .complete_by_operator(operator.account_id(), &id)
        .await?;
    Ok(Success("Deposit completed", deposit))
}
