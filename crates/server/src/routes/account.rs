//! Sign-up, session tokens and the billing profile.

use axum::extract::State;
use barrack_api::account::{
    AccessToken, PasswordChange, ProfileUpdate, RegisterRequest, SessionsEnded, TokenObtainPair,
    TokenPair, TokenRefresh, UserProfile,
};
use barrack_api::{Envelope, ErrorResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::client_address::ClientAddress;
use crate::http::{ApiResult, Auth, Body, Created, SignUpOpen, Success};
use crate::http::{NoParams, Query};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(obtain_token))
        .routes(routes!(refresh_token))
        .routes(routes!(logout))
        .routes(routes!(change_password))
        .routes(routes!(get_profile, replace_profile, update_profile))
}

/// Create an account
#[utoipa::path(post, path = "/api/auth/register/", tag = "Account", request_body = RegisterRequest,
    responses((status = 201, body = Envelope<UserProfile>), (status = 400, body = ErrorResponse),
              (status = 403, description = "Sign-up is closed", body = ErrorResponse),
              (status = 409, body = ErrorResponse)))]
async fn register(
    State(state): State<AppState>,
    _: SignUpOpen,
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
    let pair = state.services.accounts.login(request, address).await?;
    Ok(Success("Tokens issued successfully", pair))
}

/// Refresh an access token
///
/// The refresh token is spent: the answer carries its replacement. Presenting a spent refresh token again
/// revokes the whole session (every token of that log-in).
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

/// Log out
///
/// Revokes the session of the refresh token: its access and refresh tokens stop working at once.
#[utoipa::path(post, path = "/api/auth/logout/", tag = "Account", request_body = TokenRefresh,
    responses((status = 200, body = Envelope<SessionsEnded>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)))]
async fn logout(
    State(state): State<AppState>,
    Body(request): Body<TokenRefresh>,
) -> ApiResult<Success<SessionsEnded>> {
    let ended = state.services.accounts.logout(&request.refresh).await?;
    Ok(Success("Logged out", ended))
}

/// Change the account password
///
/// Needs the current password. Ends every session of the account (log-ins and dashboard sign-ins, the
/// caller's included); API keys keep working.
#[utoipa::path(post, path = "/api/account/password/", tag = "Account", request_body = PasswordChange,
    responses((status = 200, body = Envelope<SessionsEnded>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse),
              (status = 429, description = "Too many wrong passwords for this account or address", body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn change_password(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Auth(caller): Auth,
    Body(request): Body<PasswordChange>,
) -> ApiResult<Success<SessionsEnded>> {
    let ended = state
        .services
        .accounts
        .change_password(&caller, request, address)
        .await?;
    Ok(Success(
        "Password changed; every session has been ended",
        ended,
    ))
}

/// Get the account profile
#[utoipa::path(get, path = "/api/account/profile/", tag = "Account",
    responses((status = 200, body = Envelope<UserProfile>), (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn get_profile(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(NoParams {}): Query<NoParams>,
) -> Success<UserProfile> {
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
