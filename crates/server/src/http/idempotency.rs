//! `Idempotency-Key` on POSTs: the first request with a key runs and its response is kept for a day;
//! a retry with the same key and body gets that response again (with `Idempotent-Replayed: true`), the
//! same key with another body is 422 `IDEMPOTENCY_MISMATCH`, and a retry while the first still runs is 409
//! `IDEMPOTENCY_IN_PROGRESS`. Keys are per account.
//!
//! Handlers that change something through a service answer with `Created::of`/`Success::of`, and the
//! service's final transaction stores the response with the effect (`barrack_core::idempotency`). A
//! response that no such transaction stored (an error, a handler without a transaction of its own) is
//! stored here after the fact.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use barrack_core::Error;
use barrack_core::idempotency::{self, Claim};
use barrack_store::idempotency::{Claim as Found, NewClaim};

use super::error::ApiError;
use super::extract::{self, Resolved};
use crate::app::AppState;

pub const HEADER: &str = "idempotency-key";
/// How long a key is remembered.
pub const KEEP_MS: i64 = 24 * 3600 * 1000;
/// How long a claim stays a running request's before a retry may take it over (its server died): far
/// longer than any POST takes, short enough that clients retrying after a crash wait little. Real time
/// ([`barrack_core::clock::Clock::real_ms`]), which moving the simulation clock does not shorten.
pub const LEASE_MS: i64 = 10_000;

/// Paths whose responses carry a secret shown once (API keys, an operator's too, generated SSH private
/// keys, a new webhook's signing secret) or stream (AI chat): a key is not applied there, so no secret is
/// kept in the database. `path` may be a route's template (`/api/admin/users/{id}/api-keys/`).
pub fn applies(path: &str) -> bool {
    path.starts_with("/api/")
        && !path.starts_with("/api/api-keys")
        && !path.ends_with("/api-keys/")
        && !path.starts_with("/api/ssh-keys")
        && path != "/api/webhooks/"
        && !path.starts_with("/api/auth/")
        && !path.starts_with("/api/ai/chat")
        && path != "/api/pricing/"
}

pub async fn idempotency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !applies(request.uri().path()) {
        return next.run(request).await;
    }
    if !request.headers().contains_key(HEADER) {
        return next.run(request).await;
    }
    // Who asks first, so that a refused key is answered in the caller's tier like every error.
    let (mut parts, body) = request.into_parts();
    let caller = match extract::resolve(&parts, &state).await {
        Ok(Some(caller)) => caller,
        // The handler answers 401.
        Ok(None) => return next.run(Request::from_parts(parts, body)).await,
        Err(e) => return e.into_response(),
    };
    let value = match extract::single_header(&parts.headers, "Idempotency-Key") {
        Ok(value) => value,
        Err(e) => return ApiError(e).into_response(),
    };
    // Not text at all reads as an invalid key.
    let key = value
        .map_or("\u{0}", |value| value.to_str().unwrap_or("\u{0}"))
        .to_string();
    if let Err(e) = idempotency::check_key(&key) {
        return ApiError(e).into_response();
    }
    parts.extensions.insert(Resolved(caller.clone()));
    let limit = state.services.config().body_limit_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return ApiError(super::error::body_too_large(limit)).into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let fingerprint = idempotency::fingerprint(parts.method.as_str(), path, &bytes);
    let clock = state.services.clock();
    let (now, lease_now) = (clock.now_ms(), clock.real_ms());
    let owner = barrack_core::ids::random_alphanumeric(24);
    let account_id = caller.account_id().to_string();
    let found = state
        .services
        .store()
        .claim_idempotency_key(&NewClaim {
            account_id: &account_id,
            key: &key,
            fingerprint: &fingerprint,
            owner: &owner,
            now,
            lease_now,
            locked_until: lease_now + LEASE_MS,
            expired_before: now - KEEP_MS,
        })
        .await;
    match found {
        Err(e) => return ApiError(e.into()).into_response(),
        Ok(Found::Replay { status, body }) => return replay(status, body),
        Ok(Found::Mismatch) => {
            return ApiError(Error::IdempotencyMismatch(
                "This Idempotency-Key was used with a different request; use a new key".into(),
            ))
            .into_response();
        }
        Ok(Found::InProgress) => {
            let mut response = ApiError(Error::conflict(
                "IDEMPOTENCY_IN_PROGRESS",
                "A request with this Idempotency-Key is still being processed; retry shortly",
            ))
            .into_response();
            // Tells clients this conflict passes by itself.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        Ok(Found::Claimed) => {}
    }
    // Now and then, not on every request: rows past their day are ignored until they go.
    if rand::random::<u8>() < 3
        && let Err(e) = state
            .services
            .store()
            .purge_idempotency_keys(now - KEEP_MS)
            .await
    {
        tracing::warn!(error = %e, "could not remove expired idempotency keys");
    }
    let claim = Claim::new(account_id, key, owner);
    let request = Request::from_parts(parts, Body::from(bytes));
    let response = claim.clone().scope(next.run(request)).await;
    finish(&state, &claim, response).await
}

/// Keeps the response of a request that ran (unless a retry should run it again) and answers it.
async fn finish(state: &AppState, claim: &Claim, response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    if let Some((status, stored)) = claim.stored() {
        // Stored with the effect: answer exactly those bytes.
        parts.status = StatusCode::from_u16(status).unwrap_or(parts.status);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from(stored));
    }
    let store = state.services.store();
    let status = parts.status.as_u16();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // Server errors, conflicts and rate limits may pass: a retry runs the request again.
    let keep = is_json && (200..500).contains(&status) && !matches!(status, 401 | 409 | 429);
    if !keep {
        if let Err(e) = store
            .release_idempotency_key(&claim.account_id, &claim.key, &claim.owner)
            .await
        {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError(Error::internal("unreadable response body")).into_response();
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let kept = async {
        let mut tx = store.begin().await?;
        barrack_store::idempotency::complete(
            &mut tx,
            &claim.account_id,
            &claim.key,
            &claim.owner,
            status,
            &text,
        )
        .await?;
        tx.commit().await
    };
    if let Err(e) = kept.await {
        tracing::warn!(error = %e, "could not keep an idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
