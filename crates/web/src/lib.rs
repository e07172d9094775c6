//! The web dashboard: server-rendered pages over the same domain services as the API, served by
//! `barrackd` under `/` (the API stays under `/api/`). Pages call the services directly; every form carries
//! the session's CSRF token; live parts of a page are refreshed by htmx (vendored in `assets/`).

mod assets;
mod chart;
mod error;
mod form;
mod pages;
mod session;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};
use barrack_core::Services;
use barrack_core::accounts::web_sessions::WebSessionService;

pub use error::not_found_page;

/// What every page handler reaches.
pub struct WebState {
    pub services: Services,
    pub sessions: WebSessionService,
}

pub type State = axum::extract::State<Arc<WebState>>;

/// Every dashboard route. Paths under `/api/` are never the dashboard's.
pub fn router(services: Services) -> Router {
    let sessions = WebSessionService::new(services.context.clone(), services.accounts.clone());
    let state = Arc::new(WebState { services, sessions });
    use pages::*;
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/signup", get(auth::signup_form).post(auth::signup))
        .route("/logout", post(auth::logout))
        .route("/instances", get(instances::list))
        .route("/instances/rows", get(instances::rows))
        .route("/instances/batch", post(instances::batch))
        .route("/instances/{id}", get(instances::page))
        .route("/instances/{id}/live", get(instances::live))
        .route("/instances/{id}/action", post(instances::act))
        .route(
            "/instances/{id}/public-ip",
            post(instances::toggle_public_ip),
        )
        .route("/instances/{id}/snapshot", post(instances::snapshot))
        .route("/deploy", get(deploy::form).post(deploy::submit))
        .route("/deploy/quote", get(deploy::quote))
        .route("/snapshots", get(snapshots::list))
        .route("/snapshots/{id}/restore", post(snapshots::restore))
        .route("/snapshots/{id}/delete", post(snapshots::delete))
        .route("/ssh-keys", get(ssh_keys::list).post(ssh_keys::create))
        .route("/ssh-keys/{id}/delete", post(ssh_keys::delete))
        .route("/volumes", get(volumes::list).post(volumes::create))
        .route("/volumes/{id}/delete", post(volumes::delete))
        .route("/scripts", get(scripts::list).post(scripts::create))
        .route("/scripts/{id}/delete", post(scripts::delete))
        .route("/firewalls", get(firewalls::list).post(firewalls::create))
        .route("/firewalls/{id}/delete", post(firewalls::delete))
        .route("/account", get(account::page))
        .route("/account/profile", post(account::profile))
        .route("/account/api-keys", post(account::create_api_key))
        .route(
            "/account/api-keys/{id}/revoke",
            post(account::revoke_api_key),
        )
        .route("/billing", get(billing::page))
        .route("/transactions", get(billing::transactions))
        .route("/deposits", get(deposits::list).post(deposits::create))
        .route("/deposits/{id}", get(deposits::page))
        .route("/deposits/{id}/status", get(deposits::status))
        .route("/ai", get(ai::page))
        .route("/ai/chat", post(ai::chat))
        .route("/ai/chat/stream", post(ai::chat_stream))
        .route("/assets/{file}", get(assets::serve))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Pages load scripts and styles from this server only, are never framed, and are not cached (they show
/// account data).
async fn security_headers(mut response: Response) -> Response {
    use axum::http::{HeaderValue, header};
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Whether a path belongs to the dashboard rather than the API.
pub fn is_dashboard_path(path: &str) -> bool {
    !(path == "/api" || path.starts_with("/api/") || path == "/v1" || path.starts_with("/v1/"))
}

/// The dashboard's answer to a path nothing serves.
pub fn fallback(path: &str) -> Response {
    not_found_page(path)
}
