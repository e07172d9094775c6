//! Deploy and manage instances (`spec/API.md` §3, §4).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use barrack_api::instances::{
    DeployHold, DeployRequest, DeployedInstance, EventList, HibernatedSummary, Instance,
    InstanceAction, InstanceList, InstanceMetrics, InstanceQuery, InstanceWaitQuery, Preflight,
    RemoveSecurityRuleResponse, SecurityRule, SecurityRuleRequest, TogglePublicIp,
};
use barrack_api::labels::{InstancePatch, LabelQuery};
use barrack_api::{Envelope, ErrorResponse, PageQuery};
use barrack_core::accounts::Caller;
use barrack_core::labels::Labelled;
use barrack_core::lifecycle::Action;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::NoParams;
use crate::http::{
    ApiResult, Auth, Body, Created, LabelParams, NoBody, PathId, PathIds, Query, Success, context,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(deploy_instance))
        .routes(routes!(preflight_deploy))
        .routes(routes!(release_deploy_hold))
        .routes(routes!(list_instances))
        .routes(routes!(get_hibernated_instances))
        .routes(routes!(list_snapshot_eligible_instances))
        .routes(routes!(list_events))
        .routes(routes!(get_instance, delete_instance, patch_instance))
        .routes(routes!(patch_instance_labels))
        .routes(routes!(start_instance))
        .routes(routes!(stop_instance))
        .routes(routes!(reboot_instance))
        .routes(routes!(hibernate_instance))
        .routes(routes!(restore_instance))
        .routes(routes!(toggle_public_ip))
        .routes(routes!(add_instance_security_rule))
        .routes(routes!(remove_instance_security_rule))
        .routes(routes!(list_instance_events))
        .routes(routes!(get_instance_metrics))
}

/// Create a new instance
#[utoipa::path(post, path = "/api/deploy-server/", tag = "Deploy Instance", request_body = DeployRequest,
    responses((status = 201, body = Envelope<DeployedInstance>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 402, body = ErrorResponse),
              (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse), (status = 413, body = ErrorResponse),
              (status = 503, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn deploy_instance(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(request): Body<DeployRequest>,
) -> ApiResult<Created<DeployedInstance>> {
    Created::of(
        "VM deployed successfully",
        state.services.instances.deploy(&caller, request),
    )
    .await
}

/// Check a deploy without deploying
///
/// Takes the deploy's body and makes every check the deploy makes, in its order, answering its first
/// error with the deploy's status and envelope; creates nothing and charges nothing. Answers the price
/// per hour. With `"hold": true` it also reserves the GPUs and the public address for 60 seconds under
/// a `hold_id`, which a deploy of the same body names to take them over.
#[utoipa::path(post, path = "/api/deploy-server/preflight/", tag = "Deploy Instance", request_body = DeployRequest,
    responses((status = 200, body = Envelope<Preflight>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 402, body = ErrorResponse),
              (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse), (status = 413, body = ErrorResponse),
              (status = 503, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn preflight_deploy(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(request): Body<DeployRequest>,
) -> ApiResult<Success<Preflight>> {
    Success::of(
        "Preflight passed",
        state.services.instances.preflight(&caller, request),
    )
    .await
}

/// Release a deploy hold
///
/// Gives back the GPUs and the address a preflight held, before the hold expires.
#[utoipa::path(delete, path = "/api/deploy-server/holds/{id}/", tag = "Deploy Instance", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<DeployHold>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn release_deploy_hold(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<DeployHold>> {
    Success::of(
        "Hold released",
        state.services.instances.release_hold(&caller, &id),
    )
    .await
}

/// List instances
#[utoipa::path(get, path = "/api/instances/", tag = "Instances", params(InstanceQuery, LabelQuery),
    responses((status = 200, body = Envelope<InstanceList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_instances(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<InstanceQuery>,
    LabelParams(labels): LabelParams,
) -> ApiResult<Success<InstanceList>> {
    let list = state
        .services
        .instances
        .list(&caller, query, &labels)
        .await?;
    Ok(Success("Instances retrieved successfully", list))
}

/// Get instance details
///
/// With `wait_for`, answers once the instance is in that state (or comes to rest in another, or at the
/// `timeout` with the current state): a wait without polling.
#[utoipa::path(get, path = "/api/instances/{id}/", tag = "Instances",
    params(("id" = String, Path), InstanceWaitQuery),
    responses((status = 200, body = Envelope<Instance>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_instance(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(wait): Query<InstanceWaitQuery>,
) -> ApiResult<Success<Instance>> {
    let instance = state
        .services
        .instances
        .wait_for(&caller, &id, wait)
        .await?;
    Ok(Success("Instance retrieved successfully", instance))
}

/// Set, change or end the instance's lease
///
/// A lease deletes or hibernates the instance at its end (`ttl_minutes` from now, or `expires_at`);
/// `clear_lease: true` ends it. Answers the instance.
#[utoipa::path(patch, path = "/api/instances/{id}/", tag = "Instances", params(("id" = String, Path)),
    request_body = InstancePatch,
    responses((status = 200, body = Envelope<Instance>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn patch_instance(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Body(patch): Body<InstancePatch>,
) -> ApiResult<Success<Instance>> {
    let instance = state.services.instances.patch(&caller, &id, patch).await?;
    Ok(Success("Instance updated", instance))
}

crate::routes::labels::labels_handler!(
    patch_instance_labels,
    "/api/instances/{id}/labels/",
    "Instances",
    Labelled::Instance
);

async fn act(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: Action,
    message: &'static str,
) -> ApiResult<Success<InstanceAction>> {
    Success::of(message, state.services.instances.act(caller, id, action)).await
}

/// Delete instance
#[utoipa::path(delete, path = "/api/instances/{id}/", tag = "Instances", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<InstanceAction>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn delete_instance(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<InstanceAction>> {
    act(
        &state,
        &caller,
        &id,
        Action::Delete,
        "Instance deletion started",
    )
    .await
}

/// A lifecycle action handler: `POST /api/instances/{id}/<action>/`.
macro_rules! action_handler {
    ($name:ident, $path:literal, $summary:literal, $action:expr, $message:literal) => {
        #[doc = $summary]
        #[utoipa::path(post, path = $path, tag = "Instances", params(("id" = String, Path)),
            responses((status = 200, body = Envelope<InstanceAction>), (status = 401, body = ErrorResponse),
                      (status = 402, body = ErrorResponse), (status = 404, body = ErrorResponse),
                      (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)),
            security(("api_key" = []), ("bearer" = [])))]
        async fn $name(
            State(state): State<AppState>,
            Auth(caller): Auth,
            PathId(id): PathId,
            _: NoBody,
        ) -> ApiResult<Success<InstanceAction>> {
            act(&state, &caller, &id, $action, $message).await
        }
    };
}

action_handler!(
    start_instance,
    "/api/instances/{id}/start/",
    "Start instance",
    Action::Start,
    "Instance starting"
);
action_handler!(
    stop_instance,
    "/api/instances/{id}/stop/",
    "Stop instance",
    Action::Stop,
    "Instance stopping"
);
action_handler!(
    reboot_instance,
    "/api/instances/{id}/reboot/",
    "Reboot instance",
    Action::Reboot,
    "Instance rebooting"
);
action_handler!(
    hibernate_instance,
    "/api/instances/{id}/hibernate/",
    "Hibernate instance",
    Action::Hibernate,
    "Instance hibernating"
);
action_handler!(
    restore_instance,
    "/api/instances/{id}/restore/",
    "Restore hibernated instance",
    Action::Restore,
    "Instance restoring"
);

/// Toggle public IP for instance
#[utoipa::path(post, path = "/api/instances/{id}/toggle-public-ip/", tag = "Instances", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<TogglePublicIp>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
              (status = 503, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn toggle_public_ip(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<TogglePublicIp>> {
    let work = state.services.instances.toggle_public_ip(&caller, &id);
    Success::of("Public IP updated", work).await
}

/// Get hibernated instances count
#[utoipa::path(get, path = "/api/instances/hibernated/", tag = "Instances",
    responses((status = 200, body = Envelope<HibernatedSummary>), (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_hibernated_instances(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<HibernatedSummary>> {
    let summary = state.services.instances.hibernated(&caller).await?;
    Ok(Success(
        "Hibernated instances retrieved successfully",
        summary,
    ))
}

/// List instances eligible for snapshot creation
#[utoipa::path(get, path = "/api/instances/snapshot-eligible/", tag = "Instances", params(PageQuery),
    responses((status = 200, body = Envelope<InstanceList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_snapshot_eligible_instances(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(page): Query<PageQuery>,
) -> ApiResult<Success<InstanceList>> {
    let list = state
        .services
        .instances
        .snapshot_eligible(&caller, page)
        .await?;
    Ok(Success("Eligible instances retrieved successfully", list))
}

/// Add instance security rule
#[utoipa::path(post, path = "/api/instances/{id}/security-rules/", tag = "Instances", params(("id" = String, Path)),
    request_body = SecurityRuleRequest,
    responses((status = 201, body = Envelope<SecurityRule>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn add_instance_security_rule(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Body(request): Body<SecurityRuleRequest>,
) -> ApiResult<Created<SecurityRule>> {
    let work = state.services.instances.add_rule(&caller, &id, request);
    Created::of("Security rule added", work).await
}

/// Remove instance security rule
#[utoipa::path(delete, path = "/api/instances/{id}/security-rules/{rule_id}/", tag = "Instances",
    params(("id" = String, Path), ("rule_id" = String, Path)),
    responses((status = 200, body = RemoveSecurityRuleResponse), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn remove_instance_security_rule(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathIds(id, rule_id): PathIds,
    _: NoBody,
) -> ApiResult<Response> {
    state
        .services
        .instances
        .remove_rule(&caller, &id, &rule_id)
        .await?;
    let ctx = context::current();
    // Flat, as documented.
    Ok(axum::Json(RemoveSecurityRuleResponse {
        success: true,
        message: "Security rule removed".into(),
        instance_id: id,
        rule_id,
        tier: Some(caller.tier),
        request_id: ctx.map(|c| c.request_id).unwrap_or_default(),
    })
    .into_response())
}

/// Events of an instance
#[utoipa::path(get, path = "/api/instances/{id}/events/", tag = "Instances", params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Envelope<EventList>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_instance_events(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(page): Query<PageQuery>,
) -> ApiResult<Success<EventList>> {
    let events = state
        .services
        .instances
        .events(&caller, Some(&id), page)
        .await?;
    Ok(Success("Events retrieved successfully", events))
}

/// Utilisation of an instance
///
/// CPU, memory, network and disk throughput (and GPU use where the driver measures it) over the driver's
/// last sampling interval; ACTIVE instances only.
#[utoipa::path(get, path = "/api/instances/{id}/metrics/", tag = "Instances", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<InstanceMetrics>), (status = 401, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
              (status = 502, description = "The compute driver could not answer", body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_instance_metrics(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<InstanceMetrics>> {
    let metrics = state.services.instances.metrics(&caller, &id).await?;
    Ok(Success("Metrics retrieved successfully", metrics))
}

/// Events of the account
#[utoipa::path(get, path = "/api/events/", tag = "Events", params(PageQuery),
    responses((status = 200, body = Envelope<EventList>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_events(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(page): Query<PageQuery>,
) -> ApiResult<Success<EventList>> {
    let events = state.services.instances.events(&caller, None, page).await?;
    Ok(Success("Events retrieved successfully", events))
}
