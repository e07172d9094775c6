//! Sign-up, session tokens and the billing profile.

use axum::extract::State;
use barrack_api::account::{
    AccessToken, ProfileUpdate, RegisterRequest, TokenObtainPair, TokenPair, TokenRefresh,
    UserProfile,
};
use barrack_api::{Envelope, ErrorResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::client_address::ClientAddress;
use crate::http::{ApiResult, Auth, Body, Created, Success};
use barrack_core::Error;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(obtain_token))
        .routes(routes!(refresh_token))
        .routes(routes!(get_profile, replace_profile, update_profile))
}

/// Create an account
#[utoipa::path(post, path = "/api/auth/register/", tag = "Account", request_body = RegisterRequest,
    responses((status = 201, body = Envelope<UserProfile>), (status = 400, body = ErrorResponse),
              (status = 403, description = "Sign-up is closed", body = ErrorResponse),
              (status = 409, body = ErrorResponse)))]
async fn register(
    State(state): State<AppState>,
    Body(request): Body<RegisterRequest>,
) -> ApiResult<Created<UserProfile>> {
    let profile = state.services.accounts.register(request).await?;
    Ok(Created("Account created successfully", profile))
}

/// Obtain session tokens
#[utoipa::path(post, path = "/api/auth/token/", tag = "Account", request_body = TokenObtainPair,
    responses((status = 200, body = Envelope<TokenPair>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse),
              (status = 429, description = "Too many failed log-ins for this email or address", body = ErrorResponse)))]
async fn obtain_token(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Body(request): Body<TokenObtainPair>,
) -> ApiResult<Success<TokenPair>> {
    let throttle = &state.login_throttle;
    let email = request.email.clone();
    throttle
        .check(&email, address)
        .map_err(|retry_after_seconds| Error::RateLimited {
            retry_after_seconds,
        })?;
    match state.services.accounts.login(request).await {
        Ok(pair) => {
            throttle.succeeded(&email);
            Ok(Success("Tokens issued successfully", pair))
        }
        Err(e) => {
            if matches!(e, Error::Unauthenticated(_)) {
                throttle.failed(&email, address);
            }
            Err(e.into())
        }
    }
}

/// Refresh an access token
#[utoipa::path(post, path = "/api/auth/token/refresh/", tag = "Account", request_body = TokenRefresh,
    responses((status = 200, body = Envelope<AccessToken>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)))]
async fn refresh_token(
    State(state): State<AppState>,
    Body(request): Body<TokenRefresh>,
) -> ApiResult<Success<AccessToken>> {
    let access = state.services.accounts.refresh(&request.refresh).await?;
    Ok(Success("Token refreshed successfully", access))
}

/// Get the account profile
#[utoipa::path(get, path = "/api/account/profile/", tag = "Account",
    responses((status = 200, body = Envelope<UserProfile>), (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_profile(State(state): State<AppState>, Auth(caller): Auth) -> Success<UserProfile> {
    Success(
        "Profile retrieved successfully",
        state.services.accounts.profile(&caller),
    )
}

/// Replace the account profile
#[utoipa::path(put, path = "/api/account/profile/", tag = "Account", request_body = ProfileUpdate,
    responses((status = 200, body = Envelope<UserProfile>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn replace_profile(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(update): Body<ProfileUpdate>,
) -> ApiResult<Success<UserProfile>> {
    let profile = state
        .services
        .accounts
        .update_profile(&caller, update, true)
        .await?;
    Ok(Success("Profile updated successfully", profile))
}

/// Update fields of the account profile
#[utoipa::path(patch, path = "/api/account/profile/", tag = "Account", request_body = ProfileUpdate,
    responses((status = 200, body = Envelope<UserProfile>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn update_profile(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(update): Body<ProfileUpdate>,
) -> ApiResult<Success<UserProfile>> {
    let profile = state
        .services
        .accounts
        .update_profile(&caller, update, false)
        .await?;
    Ok(Success("Profile updated successfully", profile))
}
