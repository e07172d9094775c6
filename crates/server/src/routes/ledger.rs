//! Balance and transactions.

use axum::extract::State;
use barrack_api::ledger::{CreditBalance, TransactionList, TransactionQuery};
use barrack_api::{Envelope, ErrorResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::NoParams;
use crate::http::{ApiResult, Auth, Query, Success};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_balance))
        .routes(routes!(list_transactions))
}

/// Get credit balance
#[utoipa::path(get, path = "/api/balance/", tag = "Balance",
    responses((status = 200, body = Envelope<CreditBalance>), (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_balance(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<CreditBalance>> {
    let balance = state.services.ledger.balance(&caller).await?;
    Ok(Success("Balance retrieved successfully", balance))
}

/// List credit transactions
#[utoipa::path(get, path = "/api/transactions/", tag = "Balance", params(TransactionQuery),
    responses((status = 200, body = Envelope<TransactionList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_transactions(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<TransactionQuery>,
) -> ApiResult<Success<TransactionList>> {
    let list = state.services.ledger.transactions(&caller, query).await?;
    Ok(Success("Transactions retrieved successfully", list))
}
