//! AI chat: Barrack's endpoints under `/api/ai/` (answers in the envelope, errors in the error envelope).
//! The OpenAI-compatible surface for SDKs is `routes::openai`.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use barrack_api::ai::{
    AiModelList, ChatCompletionChunk, ChatCompletionsRequest, ChatCompletionsResponse,
    UsageHistory, UsageHistoryQuery, UsageSummary, UsageSummaryQuery,
};
use barrack_api::{Envelope, ErrorResponse};
use barrack_core::ai::ChatChunks;
use barrack_core::ai::limits::RateStatus;
use futures::StreamExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::NoParams;
use crate::http::{ApiError, ApiResult, Auth, Query, Success, TypedBody, context};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_ai_models))
        .routes(routes!(ai_chat))
        .routes(routes!(ai_usage_summary))
        .routes(routes!(ai_usage_history))
}

/// Get available AI models
#[utoipa::path(get, path = "/api/ai/models/", tag = "AI Chat",
    responses((status = 200, body = Envelope<AiModelList>), (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn list_ai_models(
    State(state): State<AppState>,
    Auth(_caller): Auth,
    Query(NoParams {}): Query<NoParams>,
) -> ApiResult<Success<AiModelList>> {
    Ok(Success(
        "AI models retrieved successfully",
        state.services.ai.models(),
    ))
}

/// Chat with AI
///
/// OpenAI's chat-completions request; the answer is its chat-completion object in the envelope, with the
/// call's cost under `billing`. With `"stream": true` the answer is server-sent events instead: each
/// `data:` line a `chat.completion.chunk`, then `data: [DONE]`. A backend that fails before its first part
/// is answered as a whole call is (502, 504, nothing charged); one that fails later ends the stream with
/// a `data:` line holding the error envelope.
#[utoipa::path(post, path = "/api/ai/chat/", tag = "AI Chat", request_body = ChatCompletionsRequest,
    responses((status = 200, description = "The reply, or with `stream` its chunks as server-sent events",
               content((Envelope<ChatCompletionsResponse> = "application/json"),
                       (ChatCompletionChunk = "text/event-stream"))),
              (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
              (status = 402, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 413, body = ErrorResponse), (status = 429, body = ErrorResponse),
              (status = 502, body = ErrorResponse), (status = 504, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn ai_chat(
    State(state): State<AppState>,
    Auth(caller): Auth,
    TypedBody(request): TypedBody<ChatCompletionsRequest>,
) -> Response {
    let answer = chat(&state, &caller, request).await;
    with_limits_on_refusal(&state, &caller, answer, |e| ApiError(e).into_response())
}

/// `ai_chat`'s answer, or the error it met.
async fn chat(
    state: &AppState,
    caller: &barrack_core::accounts::Caller,
    request: ChatCompletionsRequest,
) -> Result<Response, barrack_core::Error> {
    let request_id = current_request_id();
    let ai = &state.services.ai;
    if request.stream == Some(true) {
        let call = ai.start(caller, request, &request_id).await?;
        let rate = call.rate;
        // The stream's error is met after this handler returns, outside the request's context.
        let ctx = context::current();
        let mut response = sse(call.chunks(), move |e| {
            serde_json::to_string(&ApiError(e).body_in(ctx.clone())).unwrap_or_default()
        });
        rate_headers(&mut response, rate);
        return Ok(response);
    }
    let (reply, rate) = ai.complete(caller, request, &request_id).await?;
    let mut response = Success("Chat completion created", reply).into_response();
    rate_headers(&mut response, rate);
    Ok(response)
}

/// Get AI usage summary
#[utoipa::path(get, path = "/api/ai/usage/summary/", tag = "AI Usage", params(UsageSummaryQuery),
    responses((status = 200, body = Envelope<UsageSummary>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn ai_usage_summary(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<UsageSummaryQuery>,
) -> ApiResult<Success<UsageSummary>> {
    let summary = state.services.ai.usage_summary(&caller, query).await?;
    Ok(Success("AI usage summary retrieved successfully", summary))
}

/// Get AI usage history
#[utoipa::path(get, path = "/api/ai/usage/history/", tag = "AI Usage", params(UsageHistoryQuery),
    responses((status = 200, body = Envelope<UsageHistory>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)),
    security(("api_key" = []), ("bearer" = [])))]
async fn ai_usage_history(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(query): Query<UsageHistoryQuery>,
) -> ApiResult<Success<UsageHistory>> {
    let history = state.services.ai.usage_history(&caller, query).await?;
    Ok(Success("AI usage history retrieved successfully", history))
}

pub(crate) fn current_request_id() -> String {
    context::current()
        .map(|c| c.request_id)
        .unwrap_or_else(barrack_core::ids::request_id)
}

/// Server-sent events of a call's chunks, then `[DONE]`; an error ends the stream with `error_data`.
pub(crate) fn sse(
    chunks: ChatChunks,
    error_data: impl Fn(barrack_core::Error) -> String + Send + Sync + 'static,
) -> Response {
    let error_data = std::sync::Arc::new(error_data);
    let events = futures::stream::unfold((chunks, false), move |(mut chunks, ended)| {
        let error_data = error_data.clone();
        async move {
            if ended {
                return None;
            }
            let (data, ended) = match chunks.next().await {
                Some(Ok(chunk)) => (chunk_data(&chunk), false),
                // Nothing follows an error, not even `[DONE]`.
                Some(Err(e)) => (error_data(e), true),
                None => ("[DONE]".to_string(), true),
            };
            Some((
                Ok::<_, Infallible>(Event::default().data(data)),
                (chunks, ended),
            ))
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn chunk_data(chunk: &ChatCompletionChunk) -> String {
    serde_json::to_string(chunk).unwrap_or_default()
}

/// The answer, or the error's: a call refused by the per-minute limits (429) carries the `x-ratelimit-*`
/// headers too, saying where the caller stands, as OpenAI's refusals do.
pub(crate) fn with_limits_on_refusal(
    state: &AppState,
    caller: &barrack_core::accounts::Caller,
    answer: Result<Response, barrack_core::Error>,
    error_response: impl FnOnce(barrack_core::Error) -> Response,
) -> Response {
    match answer {
        Ok(response) => response,
        Err(e) => {
            let limited = matches!(e, barrack_core::Error::RateLimited { .. });
            let mut response = error_response(e);
            if limited {
                rate_headers(&mut response, state.services.ai.rate_status(caller));
            }
            response
        }
    }
}

/// `x-ratelimit-*`, as OpenAI's API sends them.
pub(crate) fn rate_headers(response: &mut Response, rate: RateStatus) {
    let headers = response.headers_mut();
    if rate.limit_requests > 0 {
        headers.insert(
            "x-ratelimit-limit-requests",
            HeaderValue::from(rate.limit_requests),
        );
        headers.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from(rate.remaining_requests),
        );
    }
    if rate.limit_tokens > 0 {
        headers.insert(
            "x-ratelimit-limit-tokens",
            HeaderValue::from(rate.limit_tokens),
        );
        headers.insert(
            "x-ratelimit-remaining-tokens",
            HeaderValue::from(rate.remaining_tokens),
        );
    }
    if let Ok(reset) = HeaderValue::from_str(&format!("{}s", rate.reset_seconds)) {
        headers.insert("x-ratelimit-reset-requests", reset.clone());
        headers.insert("x-ratelimit-reset-tokens", reset);
    }
}
