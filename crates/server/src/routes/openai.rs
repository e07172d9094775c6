//! The OpenAI-compatible surface for SDKs: `POST /v1/chat/completions` and `GET /v1/models`, with the API
//! key as `Authorization: Bearer sk_...` (what the SDKs send) or `X-API-Key`, and errors in OpenAI's shape
//! (`{"error": {"message", "type", "param", "code"}}`). Not part of Barrack's OpenAPI document: OpenAI
//! publishes this one.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use barrack_api::ai::ChatCompletionsRequest;
use barrack_core::Error;
use serde_json::json;

use super::ai::{current_request_id, rate_headers, sse, with_limits_on_refusal};
use crate::app::AppState;
use crate::http::{AnyQuery, ApiError, Auth, TypedBody};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(list_models))
}

/// An error in OpenAI's shape.
pub struct OpenAiError(pub Error);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        OpenAiError(e.0)
    }
}

impl From<Error> for OpenAiError {
    fn from(e: Error) -> Self {
        OpenAiError(e)
    }
}

/// Whether `path` is one of the OpenAI-compatible routes', whose errors keep OpenAI's shape.
pub(crate) fn is_openai_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// A 405 in OpenAI's shape, for a `/v1` route asked with a method it does not take.
pub(crate) fn method_not_allowed(message: String) -> Response {
    let error = json!({"error": {
        "message": message,
        "type": "invalid_request_error",
        "param": null,
        "code": "method_not_allowed",
    }});
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(error)).into_response()
}

/// OpenAI's `error` object for a domain error.
fn error_object(error: &Error) -> serde_json::Value {
    if let Error::Internal(detail) = error {
        tracing::error!(detail = %detail, "internal error");
    }
    let kind = match error.status() {
        401 => "authentication_error",
        402 => "insufficient_quota",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    };
    let param = error
        .field_errors()
        .and_then(|fields| fields.keys().next().cloned());
    let message = match error.field_errors() {
        Some(fields) => fields
            .iter()
            .flat_map(|(field, messages)| messages.iter().map(move |m| format!("{field}: {m}")))
            .collect::<Vec<_>>()
            .join("; "),
        None => error.public_message(),
    };
    json!({
        "message": message,
        "type": kind,
        "param": param,
        "code": error.code().to_lowercase(),
    })
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response =
            (status, axum::Json(json!({"error": error_object(&self.0)}))).into_response();
        if let Error::RateLimited {
            retry_after_seconds,
        } = self.0
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        }
        response
    }
}

async fn chat_completions(
    State(state): State<AppState>,
    auth: Result<Auth, ApiError>,
    // Parameters OpenAI's clients may add are ignored, as unknown members of the body are.
    _: AnyQuery,
    body: Result<TypedBody<ChatCompletionsRequest>, ApiError>,
) -> Result<Response, OpenAiError> {
    let Auth(caller) = auth?;
    let TypedBody(request) = body?;
    let answer = completions(&state, &caller, request).await;
    Ok(with_limits_on_refusal(&state, &caller, answer, |e| {
        OpenAiError(e).into_response()
    }))
}

/// `chat_completions`'s answer once the caller and the body are read, or the error it met.
async fn completions(
    state: &AppState,
    caller: &barrack_core::accounts::Caller,
    request: ChatCompletionsRequest,
) -> Result<Response, Error> {
    let request_id = current_request_id();
    let ai = &state.services.ai;
    if request.stream == Some(true) {
        let call = ai.start(caller, request, &request_id).await?;
        let rate = call.rate;
        let mut response = sse(call.chunks(), |e| {
            json!({"error": error_object(&e)}).to_string()
        });
        rate_headers(&mut response, rate);
        return Ok(response);
    }
    let (mut reply, rate) = ai.complete(caller, request, &request_id).await?;
    // The cost is Barrack's addition; SDK users find it in /api/ai/usage/history/.
    reply.billing = None;
    let mut response = axum::Json(reply).into_response();
    rate_headers(&mut response, rate);
    Ok(response)
}

async fn list_models(
    State(state): State<AppState>,
    auth: Result<Auth, ApiError>,
) -> Result<Response, OpenAiError> {
    auth?;
    Ok(axum::Json(state.services.ai.openai_models()).into_response())
}
