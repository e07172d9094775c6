//! Maps the domain error to HTTP, in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use barrack_api::ErrorResponse;
use barrack_core::Error;

use super::context::{self, RequestContext};

/// A domain error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<barrack_store::StoreError> for ApiError {
    fn from(e: barrack_store::StoreError) -> Self {
        ApiError(e.into())
    }
}

impl ApiError {
    /// The error envelope of this error for the current request.
    pub fn body(&self) -> ErrorResponse {
        self.body_in(context::current())
    }

    /// The body for the request `ctx` describes: for an error met after the handler returned (a stream's),
    /// where the request's context is no longer current.
    pub fn body_in(&self, ctx: Option<RequestContext>) -> ErrorResponse {
        let error = &self.0;
        let request_id = ctx
            .as_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default();
        match error {
            Error::Internal(detail) => {
                tracing::error!(request_id = %request_id, detail = %detail, "internal error");
            }
            Error::Unavailable(detail) => {
                tracing::warn!(request_id = %request_id, detail = %detail, "database unreachable");
            }
            _ => {}
        }
        ErrorResponse {
            success: false,
            message: error.public_message(),
            code: error.code().to_string(),
            errors: error.field_errors().cloned(),
            request_id,
            tier: ctx.and_then(|c| c.tier()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let error = self.0;
        let status =
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(body)).into_response();
        if let Error::RateLimited {
            retry_after_seconds,
        } = error
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        }
        response
    }
}

/// The server's limit on a request body, in bytes, for the 413 that states it ([`body_too_large`]).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// 413 for a request body over the server's limit, stating the limit.
pub fn body_too_large(limit: usize) -> Error {
    Error::PayloadTooLarge(format!("Request body is over the limit of {limit} bytes"))
}

/// The error for a status produced outside a handler (unknown route, wrong method, framework rejections).
pub fn for_status(status: StatusCode, message: String) -> Error {
    match status.as_u16() {
        400 => Error::Validation {
            message,
            errors: Default::default(),
        },
        401 => Error::Unauthenticated(message),
        403 => Error::Forbidden(message),
        404 => Error::NotFound(message),
        405 => Error::conflict("METHOD_NOT_ALLOWED", message),
        413 => Error::PayloadTooLarge(message),
        _ => Error::internal(message),
    }
}

/// 405 keeps its own status: `Error::Conflict` would say 409.
pub fn method_not_allowed(message: String) -> Response {
    let mut response = ApiError(Error::conflict("METHOD_NOT_ALLOWED", message)).into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}
