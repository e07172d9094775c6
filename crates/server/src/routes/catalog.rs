//! Regions, GPU specs and stock, OS images, pricing. Public; a key adds the caller to pricing metadata.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use barrack_api::catalog::{
    CatalogQuery, GpuSpecList, GpuStockList, OsImageList, PricingRequest, PricingResponse,
    RegionList,
};
use barrack_api::{Envelope, ErrorResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::{ApiResult, Body, MaybeAuth, Query, Success, context};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_regions))
        .routes(routes!(list_gpu_specs))
        .routes(routes!(list_gpu_stocks))
        .routes(routes!(list_os_images))
        .routes(routes!(get_pricing, post_pricing))
}

/// List available regions
#[utoipa::path(get, path = "/api/regions/", tag = "Regions", params(CatalogQuery),
    responses((status = 200, body = Envelope<RegionList>), (status = 400, body = ErrorResponse)),
    security((), ("api_key" = []), ("bearer" = [])))]
async fn list_regions(
    State(state): State<AppState>,
    MaybeAuth(_): MaybeAuth,
    Query(query): Query<CatalogQuery>,
) -> ApiResult<Success<RegionList>> {
    let regions = state.services.catalog.regions(&query)?;
    Ok(Success(
        "Regions retrieved successfully",
        RegionList { regions },
    ))
}

/// Get GPU specifications
#[utoipa::path(get, path = "/api/gpu-specs/", tag = "GPU Specs", params(CatalogQuery),
    responses((status = 200, body = Envelope<GpuSpecList>), (status = 400, body = ErrorResponse)),
    security((), ("api_key" = []), ("bearer" = [])))]
async fn list_gpu_specs(
    State(state): State<AppState>,
    MaybeAuth(_): MaybeAuth,
    Query(query): Query<CatalogQuery>,
) -> ApiResult<Success<GpuSpecList>> {
    let gpu_specs = state.services.catalog.gpu_specs(&query)?;
    Ok(Success(
        "GPU specifications retrieved successfully",
        GpuSpecList { gpu_specs },
    ))
}

/// Get GPU stock availability
#[utoipa::path(get, path = "/api/gpu-stocks/", tag = "GPU Stocks", params(CatalogQuery),
    responses((status = 200, body = Envelope<GpuStockList>), (status = 400, body = ErrorResponse)),
    security((), ("api_key" = []), ("bearer" = [])))]
async fn list_gpu_stocks(
    State(state): State<AppState>,
    MaybeAuth(_): MaybeAuth,
    Query(query): Query<CatalogQuery>,
) -> ApiResult<Success<GpuStockList>> {
    let stocks = state.services.catalog.stocks(&query).await?;
    Ok(Success(
        "GPU stock retrieved successfully",
        GpuStockList { stocks },
    ))
}

/// List OS images
#[utoipa::path(get, path = "/api/os-images/", tag = "OS Images", params(CatalogQuery),
    responses((status = 200, body = Envelope<OsImageList>), (status = 400, body = ErrorResponse)),
    security((), ("api_key" = []), ("bearer" = [])))]
async fn list_os_images(
    State(state): State<AppState>,
    MaybeAuth(_): MaybeAuth,
    Query(query): Query<CatalogQuery>,
) -> ApiResult<Success<OsImageList>> {
    let images = state.services.catalog.os_images(&query)?;
    Ok(Success(
        "OS images retrieved successfully",
        OsImageList { images },
    ))
}

/// Get pricing information
#[utoipa::path(get, path = "/api/pricing/", tag = "Pricing", params(PricingRequest),
    responses((status = 200, body = PricingResponse), (status = 400, body = ErrorResponse)),
    security((), ("api_key" = []), ("bearer" = [])))]
async fn get_pricing(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    Query(request): Query<PricingRequest>,
) -> ApiResult<Response> {
    pricing(&state, caller.as_ref(), &request)
}

/// Get pricing information
#[utoipa::path(post, path = "/api/pricing/", tag = "Pricing", request_body = PricingRequest,
    responses((status = 200, body = PricingResponse), (status = 400, body = ErrorResponse)),
    security((), ("api_key" = []), ("bearer" = [])))]
async fn post_pricing(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    Body(request): Body<PricingRequest>,
) -> ApiResult<Response> {
    pricing(&state, caller.as_ref(), &request)
}

fn pricing(
    state: &AppState,
    caller: Option<&barrack_core::accounts::Caller>,
    request: &PricingRequest,
) -> ApiResult<Response> {
    let ctx = context::current();
    let now = ctx
        .as_ref()
        .map(|c| c.now_ms)
        .unwrap_or_else(|| state.services.clock().now_ms());
    let pricing_data = state.services.catalog.pricing(request, caller, now)?;
    // Flat, with `pricing_data` in place of `data`, as documented.
    Ok(axum::Json(PricingResponse {
        success: true,
        message: "Pricing information retrieved successfully".into(),
        pricing_data,
        request_id: ctx.map(|c| c.request_id).unwrap_or_default(),
    })
    .into_response())
}
