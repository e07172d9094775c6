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
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use barrack_core::Services;
use barrack_core::accounts::web_sessions::WebSessionService;

pub use error::not_found_page;

/// What every page handler reaches.
pub struct WebState {
    pub services: Services,
    pub sessions: WebSessionService,
    /// The simulated data centre, when it is the driver (the operator's fault injection).
    pub simulator: Option<Arc<barrack_compute::sim::SimDriver>>,
}

pub type State = axum::extract::State<Arc<WebState>>;

/// Every dashboard route. Paths under `/api/` are never the dashboard's.
pub fn router(services: Services) -> Router {
    router_with_simulator(services, None)
}

/// Every dashboard route, with the simulator's controls on the operator pages.
pub fn router_with_simulator(
    services: Services,
    simulator: Option<Arc<barrack_compute::sim::SimDriver>>,
) -> Router {
    let sessions = sessions_of(&services);
    let state = Arc::new(WebState {
        services,
        sessions,
        simulator,
    });
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
        // Resources around instances, custom images, and the operator pages.
        .route(
            "/instances/{id}/usage",
            get(instance_extras::usage_fragment),
        )
        .route("/instances/{id}/rules", post(instance_extras::add_rule))
        .route(
            "/instances/{id}/rules/{rule_id}/delete",
            post(instance_extras::remove_rule),
        )
        .route(
            "/instances/{id}/volumes/attach",
            post(instance_extras::attach_volume),
        )
        .route(
            "/instances/{id}/volumes/{volume_id}/detach",
            post(instance_extras::detach_volume),
        )
        .route(
            "/instances/{id}/firewalls/attach",
            post(instance_extras::attach_firewall),
        )
        .route(
            "/instances/{id}/firewalls/{firewall_id}/detach",
            post(instance_extras::detach_firewall),
        )
        .route("/volumes/{id}", get(volume::page))
        .route("/volumes/{id}/resize", post(volume::resize))
        .route("/volumes/{id}/clone", post(volume::clone))
        .route("/volumes/{id}/attach", post(volume::attach))
        .route("/volumes/{id}/detach", post(volume::detach))
        .route("/firewalls/{id}", get(firewall::page))
        .route("/firewalls/{id}/rules", post(firewall::add_rule))
        .route(
            "/firewalls/{id}/rules/{rule_id}/delete",
            post(firewall::remove_rule),
        )
        .route("/firewalls/{id}/attach", post(firewall::attach))
        .route(
            "/firewalls/{id}/instances/{instance_id}/detach",
            post(firewall::detach),
        )
        .route("/images", get(images::list).post(images::create))
        .route("/images/{id}/delete", post(images::delete))
        .route("/operator", get(operator::users))
        .route("/operator/grants", post(operator::grant))
        .route(
            "/operator/capacity",
            get(operator::capacity).post(operator::set_capacity),
        )
        .route("/operator/jobs", get(operator::jobs))
        .route("/operator/simulation", get(operator::simulation))
        .route("/operator/clock", post(operator::advance_clock))
        .route("/operator/faults", post(operator::inject_fault))
        .route("/billing", get(billing::page))
        .route("/transactions", get(billing::transactions))
        .route("/deposits", get(deposits::list).post(deposits::create))
        .route("/deposits/{id}", get(deposits::page))
        .route("/deposits/{id}/status", get(deposits::status))
        .route("/ai", get(ai::page))
        .route("/ai/chat", post(ai::chat))
        .route("/ai/chat/stream", post(ai::chat_stream))
        .route("/assets/{file}", get(assets::serve))
        .method_not_allowed_fallback(|| async { error::method_not_allowed_page() })
        .layer(axum::middleware::from_fn(refuse_nul))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            error_pages_with_navigation,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

fn sessions_of(services: &Services) -> WebSessionService {
    WebSessionService::new(services.context.clone(), services.accounts.clone())
}

async fn error_pages_with_navigation(
    axum::extract::State(state): State,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let token = error::session_token(request.headers());
    let response = next.run(request).await;
    error::with_navigation(&state.sessions, token.as_deref(), response).await
}

/// An address whose path or query holds U+0000 is a 400 page before any page reads it: no id or filter
/// holds it, and PostgreSQL cannot compare text holding it. A URI carries it only as `%00`.
async fn refuse_nul(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let address = request.uri().path_and_query().map_or("", |p| p.as_str());
    if address.contains("%00") {
        return error::nul_in_address_page();
    }
    next.run(request).await
}

async fn security_headers(response: Response) -> Response {
    secured(response)
}

/// Pages load scripts and styles from this server only, are never framed, and are not cached (they show
/// account data).
fn secured(mut response: Response) -> Response {
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

/// The dashboard's answer to a path nothing serves (with the navigation of a signed-in browser).
pub async fn fallback(services: &Services, headers: &HeaderMap, path: &str) -> Response {
    // Outside the router, so its layers' work is done here.
    let token = error::session_token(headers);
    let sessions = sessions_of(services);
    secured(error::with_navigation(&sessions, token.as_deref(), not_found_page(path)).await)
}
