//! Webhooks: endpoints that receive the account's events, signed; their delivery log and replays.

use axum::extract::State;
use barrack_api::webhooks::{
    CreateWebhookRequest, CreatedWebhook, DeletedWebhook, Webhook, WebhookDelivery,
    WebhookDeliveryList, WebhookList,
};
use barrack_api::{Envelope, ErrorResponse, PageQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{
    ApiResult, Auth, Body, Created, NoBody, NoParams, PathId, PathIds, Query, Success,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, delete_webhook))
        .routes(routes!(list_webhook_deliveries))
        .routes(routes!(replay_webhook_delivery))
}

/// List webhooks
#[utoipa::path(get, path = "/api/webhooks/", tag = "Webhooks",
    responses((status = 200, body = Envelope<WebhookList>), (status = 400, description = "A query parameter was given: the list takes none", body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_webhooks(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<WebhookList>> {
    let webhooks = state.services.webhooks.list(&caller).await?;
    Ok(Success(
        "Webhooks retrieved successfully",
        WebhookList { webhooks },
    ))
}

/// Create webhook
///
/// The account's events (of `event_types`, or all) are POSTed to `url`, signed with the `secret` shown
/// only in this answer. A URL on a private, loopback or otherwise non-public address is refused (400
/// naming `url`) unless the operator allows it.
#[utoipa::path(post, path = "/api/webhooks/", tag = "Webhooks", request_body = CreateWebhookRequest,
    responses((status = 201, body = Envelope<CreatedWebhook>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn create_webhook(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(request): Body<CreateWebhookRequest>,
) -> ApiResult<Created<CreatedWebhook>> {
    let webhook = state.services.webhooks.create(&caller, request).await?;
    Ok(Created(
        "Webhook created; save the secret now, it is not shown again",
        webhook,
    ))
}

/// Get webhook
#[utoipa::path(get, path = "/api/webhooks/{id}/", tag = "Webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Webhook>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_webhook(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<Webhook>> {
    let webhook = state.services.webhooks.get(&caller, &id).await?;
    Ok(Success("Webhook retrieved successfully", webhook))
}

/// Delete webhook (and its delivery log; deliveries not sent yet are dropped)
#[utoipa::path(delete, path = "/api/webhooks/{id}/", tag = "Webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<DeletedWebhook>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn delete_webhook(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<DeletedWebhook>> {
    state.services.webhooks.delete(&caller, &id).await?;
    Ok(Success("Webhook deleted", DeletedWebhook { id }))
}

/// Deliveries of a webhook, newest first
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries/", tag = "Webhooks",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Envelope<WebhookDeliveryList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_webhook_deliveries(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(page): Query<PageQuery>,
) -> ApiResult<Success<WebhookDeliveryList>> {
    let deliveries = state
        .services
        .webhooks
        .deliveries(&caller, &id, page)
        .await?;
    Ok(Success("Deliveries retrieved successfully", deliveries))
}

/// Replay a delivery: its event is sent again as a new delivery
#[utoipa::path(post, path = "/api/webhooks/{id}/deliveries/{delivery_id}/replay/", tag = "Webhooks",
    params(("id" = String, Path), ("delivery_id" = String, Path)),
    responses((status = 201, body = Envelope<WebhookDelivery>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn replay_webhook_delivery(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathIds(id, delivery_id): PathIds,
    _: NoBody,
) -> ApiResult<Created<WebhookDelivery>> {
    let delivery = state
        .services
        .webhooks
        .replay(&caller, &id, &delivery_id)
        .await?;
    Ok(Created("Delivery queued again", delivery))
}
