//! Success responses in the default envelope.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use barrack_api::Envelope;
use barrack_core::clock::format_ms;
use barrack_core::idempotency;
use serde::Serialize;

use super::{ApiResult, context};

/// 200 with `{"success": true, "message", "request_id", "timestamp", "data", "tier"}`.
pub struct Success<T>(pub &'static str, pub T);

/// 201 with the same envelope.
pub struct Created<T>(pub &'static str, pub T);

fn body<T: Serialize>(message: &str, data: T) -> Envelope<T> {
    let ctx = context::current();
    Envelope {
        success: true,
        message: message.to_string(),
        request_id: ctx
            .as_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default(),
        timestamp: format_ms(
            ctx.as_ref()
                .map(|c| c.now_ms)
                .unwrap_or_else(barrack_core::clock::system_now_ms),
        ),
        data,
        tier: ctx.and_then(|c| c.tier()),
    }
}

fn envelope<T: Serialize>(status: StatusCode, message: &str, data: T) -> Response {
    (status, axum::Json(body(message, data))).into_response()
}

/// Tells an idempotent request how the service's result will be answered, so the service's commit can
/// store exactly that response with its effect (the same bytes `axum::Json` writes).
fn render_as(status: StatusCode, message: &'static str) {
    // Called inside the request (the service's commit), so the request's context is the current one.
    idempotency::set_renderer(Box::new(move |data| {
        let json = serde_json::to_string(&body(message, data)).unwrap_or_default();
        (status.as_u16(), json)
    }));
}

impl<T: Serialize> IntoResponse for Success<T> {
    fn into_response(self) -> Response {
        envelope(StatusCode::OK, self.0, self.1)
    }
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        envelope(StatusCode::CREATED, self.0, self.1)
    }
}

impl<T: Serialize> Success<T> {
    /// 200 with what `work` (a service call that changes something) returns; with an `Idempotency-Key`,
    /// the service stores this response in the transaction of its effect.
    pub async fn of(
        message: &'static str,
        work: impl Future<Output = barrack_core::Result<T>>,
    ) -> ApiResult<Success<T>> {
        render_as(StatusCode::OK, message);
        Ok(Success(message, work.await?))
    }
}

impl<T: Serialize> Created<T> {
    /// 201 with what `work` (a service call that creates something) returns; with an `Idempotency-Key`,
    /// the service stores this response in the transaction of its effect.
    pub async fn of(
        message: &'static str,
        work: impl Future<Output = barrack_core::Result<T>>,
    ) -> ApiResult<Created<T>> {
        render_as(StatusCode::CREATED, message);
        Ok(Created(message, work.await?))
    }
}
