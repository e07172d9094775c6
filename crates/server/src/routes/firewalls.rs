//! Firewalls, their rules, and attaching them to instances (`spec/API.md` §4.2, "Resource rules").

use axum::extract::State;
use barrack_api::firewalls::{
    AvailableInstanceList, CreateFirewallRequest, DeleteFirewallQuery, DeletedFirewall, Firewall,
    FirewallAttachmentChange, FirewallList, FirewallQuery, InstanceFirewallList,
    InstanceIdsRequest, ProtocolList, RemovedFirewallRule,
};
use barrack_api::instances::{SecurityRule, SecurityRuleRequest};
use barrack_api::{Envelope, ErrorResponse, PageQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{
    ApiResult, Auth, Body, Created, NoBody, NoParams, PathId, PathIds, Query, Success,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_firewalls, create_firewall))
        .routes(routes!(patch_firewall_labels))
        .routes(routes!(list_firewall_protocols))
        .routes(routes!(get_firewall, delete_firewall))
        .routes(routes!(add_firewall_rule))
        .routes(routes!(remove_firewall_rule))
        .routes(routes!(attach_firewall))
        .routes(routes!(detach_firewall))
        .routes(routes!(list_firewall_available_instances))
        .routes(routes!(list_instance_firewalls))
}

/// List firewalls
#[utoipa::path(get, path = "/api/firewalls/", tag = "Firewalls", params(FirewallQuery, barrack_api::labels::LabelQuery),
    responses((status = 200, body = Envelope<FirewallList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_firewalls(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<FirewallQuery>,
    crate::http::LabelParams(labels): crate::http::LabelParams,
) -> ApiResult<Success<FirewallList>> {
    let list = state
        .services
        .firewalls
        .list(&caller, query, &labels)
        .await?;
    Ok(Success("Firewalls retrieved successfully", list))
}

/// Create a firewall
#[utoipa::path(post, path = "/api/firewalls/", tag = "Firewalls", request_body = CreateFirewallRequest,
    responses((status = 201, body = Envelope<Firewall>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn create_firewall(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(request): Body<CreateFirewallRequest>,
) -> ApiResult<Created<Firewall>> {
    let work = state.services.firewalls.create(&caller, request);
    Created::of("Firewall creation started", work).await
}

/// List the protocols firewall rules accept
#[utoipa::path(get, path = "/api/firewalls/protocols/", tag = "Firewalls",
    responses((status = 200, body = Envelope<ProtocolList>), (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_firewall_protocols(
    State(state): State<AppState>,
    Auth(_caller): Auth,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<ProtocolList>> {
    Ok(Success(
        "Protocols retrieved successfully",
        state.services.firewalls.protocols(),
    ))
}

/// Get firewall details: rules and attached instances
#[utoipa::path(get, path = "/api/firewalls/{id}/", tag = "Firewalls", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Firewall>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_firewall(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<Firewall>> {
    let firewall = state.services.firewalls.get(&caller, &id).await?;
    Ok(Success("Firewall retrieved successfully", firewall))
}

/// Delete a firewall (detached ones, or any with force=true)
#[utoipa::path(delete, path = "/api/firewalls/{id}/", tag = "Firewalls",
    params(("id" = String, Path), DeleteFirewallQuery),
    responses((status = 200, body = Envelope<DeletedFirewall>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn delete_firewall(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(query): Query<DeleteFirewallQuery>,
    _: NoBody,
) -> ApiResult<Success<DeletedFirewall>> {
    let force = query.force.unwrap_or(false);
    let done = state.services.firewalls.delete(&caller, &id, force).await?;
    Ok(Success("Firewall deleted", done))
}

/// Add a rule to a firewall
#[utoipa::path(post, path = "/api/firewalls/{id}/rules/", tag = "Firewalls", params(("id" = String, Path)),
    request_body = SecurityRuleRequest,
    responses((status = 201, body = Envelope<SecurityRule>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn add_firewall_rule(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Body(request): Body<SecurityRuleRequest>,
) -> ApiResult<Created<SecurityRule>> {
    let work = state.services.firewalls.add_rule(&caller, &id, request);
    Created::of("Firewall rule added", work).await
}

/// Remove a rule from a firewall
#[utoipa::path(delete, path = "/api/firewalls/{id}/rules/{rule_id}/", tag = "Firewalls",
    params(("id" = String, Path), ("rule_id" = String, Path)),
    responses((status = 200, body = Envelope<RemovedFirewallRule>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn remove_firewall_rule(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathIds(id, rule_id): PathIds,
    _: NoBody,
) -> ApiResult<Success<RemovedFirewallRule>> {
    let done = state
        .services
        .firewalls
        .remove_rule(&caller, &id, &rule_id)
        .await?;
    Ok(Success("Firewall rule removed", done))
}

/// Attach a firewall to instances
#[utoipa::path(post, path = "/api/firewalls/{id}/attach/", tag = "Firewalls", params(("id" = String, Path)),
    request_body = InstanceIdsRequest,
    responses((status = 200, body = Envelope<FirewallAttachmentChange>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn attach_firewall(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Body(request): Body<InstanceIdsRequest>,
) -> ApiResult<Success<FirewallAttachmentChange>> {
    let work = state.services.firewalls.attach(&caller, &id, request);
    Success::of("Firewall attaching", work).await
}

/// Detach a firewall from instances
#[utoipa::path(post, path = "/api/firewalls/{id}/detach/", tag = "Firewalls", params(("id" = String, Path)),
    request_body = InstanceIdsRequest,
    responses((status = 200, body = Envelope<FirewallAttachmentChange>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn detach_firewall(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Body(request): Body<InstanceIdsRequest>,
) -> ApiResult<Success<FirewallAttachmentChange>> {
    let work = state.services.firewalls.detach(&caller, &id, request);
    Success::of("Firewall detaching", work).await
}

/// List the instances a firewall can be attached to
#[utoipa::path(get, path = "/api/firewalls/{id}/available-instances/", tag = "Firewalls",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Envelope<AvailableInstanceList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_firewall_available_instances(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(page): Query<PageQuery>,
) -> ApiResult<Success<AvailableInstanceList>> {
    let list = state
        .services
        .firewalls
        .available_instances(&caller, &id, page)
        .await?;
    Ok(Success("Available instances retrieved successfully", list))
}

/// List the firewalls attached to an instance
#[utoipa::path(get, path = "/api/instances/{id}/firewalls/", tag = "Instances", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<InstanceFirewallList>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_instance_firewalls(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<InstanceFirewallList>> {
    let list = state.services.firewalls.of_instance(&caller, &id).await?;
    Ok(Success("Instance firewalls retrieved successfully", list))
}

crate::routes::labels::labels_handler!(
    patch_firewall_labels,
    "/api/firewalls/{id}/labels/",
    "Firewalls",
    barrack_core::labels::Labelled::Firewall
);
