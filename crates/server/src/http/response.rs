//! Success responses in the default envelope.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use barrack_api::Envelope;
use barrack_core::clock::format_ms;
use serde::Serialize;

use super::context;

/// 200 with `{"success": true, "message", "request_id", "timestamp", "data", "tier"}`.
pub struct Success<T>(pub &'static str, pub T);

/// 201 with the same envelope.
pub struct Created<T>(pub &'static str, pub T);

fn envelope<T: Serialize>(status: StatusCode, message: &str, data: T) -> Response {
    let ctx = context::current();
    let body = Envelope {
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
    };
    (status, axum::Json(body)).into_response()
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
