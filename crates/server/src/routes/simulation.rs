//! Controls of the simulated data centre [OURS] (operators, simulation mode only): resetting the state
//! for test suites, and scenarios. Moving the clock is in `billing`, faults in `admin`.

use axum::extract::State;
use barrack_api::simulation::{Scenario, ScenarioList, ScenarioSpec, StateReset};
use barrack_api::{Envelope, ErrorResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{Admin, ApiResult, Body, Created, NoBody, NoParams, PathId, Query, Success};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(admin_reset))
        .routes(routes!(admin_list_scenarios, admin_add_scenario))
        .routes(routes!(admin_remove_scenario))
}

/// Reset to the state of a first start (simulation mode only)
///
/// Every account but the operators' goes, with everything in the database; the operators' accounts and
/// API keys stay. Capacity is seeded again, scenarios end, and every server forgets its simulated
/// machines. The simulated clock keeps its time.
#[utoipa::path(post, path = "/api/admin/reset/", tag = "Admin",
    responses((status = 200, body = Envelope<StateReset>), (status = 401, body = ErrorResponse),
              (status = 403, body = ErrorResponse),
              (status = 409, description = "Not in simulation mode", body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_reset(
    State(state): State<AppState>,
    Admin(_): Admin,
    _: NoBody,
) -> ApiResult<Success<StateReset>> {
    let reset = state.services.simulation.reset().await?;
    Ok(Success("State reset", reset))
}

/// Scenarios in force (simulation mode only)
#[utoipa::path(get, path = "/api/admin/scenarios/", tag = "Admin",
    responses((status = 200, body = Envelope<ScenarioList>), (status = 401, body = ErrorResponse),
              (status = 403, body = ErrorResponse),
              (status = 409, description = "Not in simulation mode", body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_list_scenarios(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<ScenarioList>> {
    let scenarios = state.services.simulation.scenarios().await?;
    Ok(Success(
        "Scenarios retrieved successfully",
        ScenarioList { scenarios },
    ))
}

/// Apply a scenario to the simulated data centre
///
/// `gpu_scarcity` leaves `available` more GPUs of the model (of each model of the region without
/// `gpu_model`); `region_outage` takes the region's stock away and refuses actions there with 503
/// `REGION_UNAVAILABLE`; `slow_host` multiplies the simulator's delays on the host's machines.
#[utoipa::path(post, path = "/api/admin/scenarios/", tag = "Admin", request_body = ScenarioSpec,
    responses((status = 201, body = Envelope<Scenario>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
              (status = 404, description = "`slow_host` names a host the data centre does not have", body = ErrorResponse),
              (status = 409, description = "Another scenario covers the same stock or host, or not in simulation mode", body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_add_scenario(
    State(state): State<AppState>,
    Admin(_): Admin,
    Body(spec): Body<ScenarioSpec>,
) -> ApiResult<Created<Scenario>> {
    let scenario = state.services.simulation.add_scenario(spec).await?;
    Ok(Created("Scenario applied", scenario))
}

/// End a scenario, giving back what it held
#[utoipa::path(delete, path = "/api/admin/scenarios/{id}/", tag = "Admin", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Scenario>), (status = 401, body = ErrorResponse),
              (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, description = "Not in simulation mode", body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn admin_remove_scenario(
    State(state): State<AppState>,
    Admin(_): Admin,
    PathId(id): PathId,
    _: NoBody,
) -> ApiResult<Success<Scenario>> {
    let scenario = state.services.simulation.remove_scenario(&id).await?;
    Ok(Success("Scenario removed", scenario))
}
