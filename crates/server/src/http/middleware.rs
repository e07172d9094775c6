//! Middleware: request context and log line, rate limits, JSON for every error, path normalisation.

use std::net::IpAddr;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use barrack_core::Error;
use barrack_core::accounts::login_throttle::ClientIp;
use barrack_core::ids::request_id;

use super::client_address;
use super::context::{self, RequestContext};
use super::error::{ApiError, for_status};
use super::extract::{self, Resolved};
use crate::app::AppState;

/// Gives the request its id and context, answers with `X-Request-Id`, and logs one line (never headers,
/// bodies or query strings, which can hold secrets).
pub async fn request_context(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let ctx = RequestContext::new(request_id(), state.services.clock().now_ms());
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    // The route's template: a path of its own per instance id would make a metric series per instance.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let mut response = ctx.clone().scope(next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&ctx.request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state
        .metrics
        .request(method.as_str(), &route, status, elapsed);
    let elapsed_us = elapsed.as_micros() as u64;
    let account = ctx.account().unwrap_or("-");
    if status >= 500 {
        tracing::warn!(request_id = %ctx.request_id, %method, %path, status, elapsed_us, account, "request");
    } else {
        tracing::info!(request_id = %ctx.request_id, %method, %path, status, elapsed_us, account, "request");
    }
    response
}

/// Works out the client's address, then takes a token from the caller's bucket: the account's once its
/// key or token checks out, else the client address's (so a made-up key per request buys nothing). Adds
/// `RateLimit-*` headers; 429 when the bucket is empty.
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let address = note_client_address(&state, &mut parts);
    let Some(limiter) = state.rate_limiter.as_ref() else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    // Probes and scrapes are never limited: a client sharing the probe's address (behind a NAT, or a
    // load balancer not among the trusted proxies) must not get a healthy replica restarted.
    if is_probe(parts.uri.path()) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let bucket = match extract::resolve(&parts, &state).await {
        Ok(Some(caller)) => {
            let bucket = format!("account:{}", caller.account_id());
            parts.extensions.insert(Resolved(caller));
            bucket
        }
        _ => format!("address:{address}"),
    };
    let decision = limiter.check(&bucket);
    let mut response = if decision.allowed {
        next.run(Request::from_parts(parts, body)).await
    } else {
        ApiError(Error::RateLimited {
            retry_after_seconds: decision.retry_after_seconds,
        })
        .into_response()
    };
    let h = response.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(decision.reset_seconds));
    response
}

/// The last line of defence: any error response that is not JSON yet (a framework rejection, a layer's
/// plain-text answer) is rewritten into the error envelope.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_envelope_or_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if status.as_u16() < 400 || is_envelope_or_page {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string());
    let message = match text {
        Some(t) if !t.is_empty() && status.as_u16() < 500 => t,
        _ => status.canonical_reason().unwrap_or("Error").to_string(),
    };
    let mut rewritten = ApiError(for_status(status, message)).into_response();
    *rewritten.status_mut() = status;
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name, value.clone());
        }
    }
    rewritten
}

/// A panic becomes a JSON 500 that reveals nothing; the panic itself goes to the log.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into());
    let request_id = context::current().map(|c| c.request_id).unwrap_or_default();
    tracing::error!(%request_id, %detail, "handler panicked");
    let mut response = ApiError(Error::internal(detail)).into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// API paths are served with and without their trailing slash: `/api/regions` is `/api/regions/`.
pub fn normalize_path<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let uri = request.uri();
    let path = uri.path();
    if path.starts_with("/api")
        && !path.ends_with('/')
        && !path.rsplit('/').next().unwrap_or("").contains('.')
    {
        let fixed = match uri.query() {
            Some(q) => format!("{path}/?{q}"),
            None => format!("{path}/"),
        };
        if let Ok(new_uri) = fixed.parse::<Uri>() {
            let mut parts = uri.clone().into_parts();
            parts.path_and_query = new_uri.into_parts().path_and_query;
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// Unknown route: the API's JSON envelope under `/api/`, the dashboard's page elsewhere.
pub async fn not_found(State(state): State<AppState>, request: Request) -> Response {
    let uri = request.uri().clone();
    if barrack_web::is_dashboard_path(uri.path()) {
        return barrack_web::fallback(&state.services, request.headers(), uri.path()).await;
    }
    caller_of(&state, request).await;
    let error = Error::NotFound(format!("No such endpoint: {}", uri.path()));
    if crate::routes::openai::is_openai_path(uri.path()) {
        return crate::routes::openai::OpenAiError(error).into_response();
    }
    ApiError(error).into_response()
}

/// Known route, wrong method.
pub async fn method_not_allowed(State(state): State<AppState>, request: Request) -> Response {
    let message = format!(
        "{} is not allowed on {}",
        request.method(),
        request.uri().path()
    );
    let openai = crate::routes::openai::is_openai_path(request.uri().path());
    caller_of(&state, request).await;
    if openai {
        return crate::routes::openai::method_not_allowed(message);
    }
    super::error::method_not_allowed(message)
}

/// The health endpoints and the metrics scrape, which the rate limit leaves alone.
fn is_probe(path: &str) -> bool {
    path == "/metrics" || path == "/api/health" || path.starts_with("/api/health/")
}

/// Learns who sent a request no route serves, so that its error names the key's tier as every other
/// error does; credentials that do not authenticate change nothing (the route's error is the answer).
async fn caller_of(state: &AppState, request: Request) {
    let (parts, _) = request.into_parts();
    let _ = extract::resolve(&parts, state).await;
}

/// The client's address, worked out once and noted in the request's extensions for what follows.
fn note_client_address(state: &AppState, parts: &mut Parts) -> IpAddr {
    let address = state
        .trusted_proxies
        .client(client_address::peer(parts), &parts.headers);
    parts.extensions.insert(ClientIp(address));
    address
}

/// The dashboard's requests: the client's address noted, as [`rate_limit`] notes it for the API's.
pub async fn client_address(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    note_client_address(&state, &mut parts);
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    use super::*;

    async fn boom() -> String {
        panic!("database password is hunter2")
    }

    #[tokio::test]
    async fn a_panic_is_a_json_500_that_reveals_nothing() {
        let app = Router::new()
            .route("/boom", get(boom))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(axum::middleware::from_fn(json_errors));
        let response = app
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], "INTERNAL_ERROR");
        assert_eq!(json["success"], false);
        assert_eq!(json["message"], "Internal server error");
        assert!(!String::from_utf8_lossy(&body).contains("hunter2"));
    }

    #[test]
    fn api_paths_gain_their_trailing_slash() {
        let fixed = normalize_path(Request::get("/api/balance?x=1").body(()).unwrap());
        assert_eq!(fixed.uri(), "/api/balance/?x=1");
        let kept = normalize_path(Request::get("/api/openapi.json").body(()).unwrap());
        assert_eq!(kept.uri(), "/api/openapi.json");
        let root = normalize_path(Request::get("/").body(()).unwrap());
        assert_eq!(root.uri(), "/");
    }
}
