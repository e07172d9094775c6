//! The one error type of the domain. Each error has a stable code, a public message safe to show a user,
//! and (for internal errors) a private context that only goes to the log.

use barrack_api::FieldErrors;
use barrack_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: fields at fault, each with its messages.
    #[error("{message}")]
    Validation {
        message: String,
        errors: FieldErrors,
    },
    /// 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: authenticated, not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 403: the billing profile lacks these fields.
    #[error("Complete your billing profile first: missing {}", .0.join(", "))]
    ProfileIncomplete(Vec<&'static str>),
    /// 402.
    #[error("{0}")]
    InsufficientBalance(String),
    /// 404: unknown, or another account's (never reveal which).
    #[error("{0}")]
    NotFound(String),
    /// 409, with a finer code: `CONFLICT`, `DUPLICATE_NAME`, `RESOURCE_IN_USE`, `INVALID_STATE`, `LIMIT_EXCEEDED`.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 422: an idempotency key sent again with a different request.
    #[error("{0}")]
    IdempotencyMismatch(String),
    /// 429.
    #[error("Too many requests; retry in {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    /// 503: not enough GPU stock; the message says where there is some.
    #[error("{0}")]
    GpuUnavailable(String),
    /// 503: the region's public address pool is exhausted.
    #[error("{0}")]
    PublicIpUnavailable(String),
    /// 503: the region is down (a simulated outage).
    #[error("{0}")]
    RegionUnavailable(String),
    /// 502: a model backend (an upstream server) failed or could not be reached.
    #[error("{0}")]
    BadGateway(String),
    /// 504: a model backend did not answer in time.
    #[error("{0}")]
    GatewayTimeout(String),
    /// 503: the database cannot be reached (or no connection came free in time); the context is logged.
    #[error("The database cannot be reached; try again shortly")]
    Unavailable(String),
    /// 500: the context is logged, never shown.
    #[error("Internal server error")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation { .. } => "VALIDATION_ERROR",
            Error::Unauthenticated(_) => "AUTHENTICATION_FAILED",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::ProfileIncomplete(_) => "PROFILE_INCOMPLETE",
            Error::InsufficientBalance(_) => "INSUFFICIENT_BALANCE",
            Error::NotFound(_) => "NOT_FOUND",
            Error::Conflict { code, .. } => code,
            Error::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Error::IdempotencyMismatch(_) => "IDEMPOTENCY_MISMATCH",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::GpuUnavailable(_) => "GPU_UNAVAILABLE",
            Error::PublicIpUnavailable(_) => "PUBLIC_IP_UNAVAILABLE",
            Error::RegionUnavailable(_) => "REGION_UNAVAILABLE",
            Error::BadGateway(_) => "UPSTREAM_ERROR",
            Error::GatewayTimeout(_) => "UPSTREAM_TIMEOUT",
            Error::Unavailable(_) => "SERVICE_UNAVAILABLE",
            Error::Internal(_) => "INTERNAL_ERROR",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Error::Validation { .. } => 400,
            Error::Unauthenticated(_) => 401,
            Error::InsufficientBalance(_) => 402,
            Error::Forbidden(_) | Error::ProfileIncomplete(_) => 403,
            Error::NotFound(_) => 404,
            Error::Conflict { .. } => 409,
            Error::PayloadTooLarge(_) => 413,
            Error::IdempotencyMismatch(_) => 422,
            Error::RateLimited { .. } => 429,
            Error::Internal(_) => 500,
            Error::BadGateway(_) => 502,
            Error::GatewayTimeout(_) => 504,
            Error::GpuUnavailable(_)
            | Error::PublicIpUnavailable(_)
            | Error::RegionUnavailable(_)
            | Error::Unavailable(_) => 503,
        }
    }

    /// The message shown to the caller.
    pub fn public_message(&self) -> String {
        self.to_string()
    }

    pub fn field_errors(&self) -> Option<&FieldErrors> {
        match self {
            Error::Validation { errors, .. } if !errors.is_empty() => Some(errors),
            _ => None,
        }
    }

    /// A validation error about one field.
    pub fn field(field: &str, message: impl Into<String>) -> Error {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_string(), vec![message.into()]);
        Error::Validation {
            message: "Invalid request data".into(),
            errors,
        }
    }

    pub fn not_found(what: &str, id: &str) -> Error {
        Error::NotFound(format!("{what} '{id}' not found"))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Error {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn internal(context: impl std::fmt::Display) -> Error {
        Error::Internal(context.to_string())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => Error::conflict(
                "CONFLICT",
                "A concurrent request changed what this one needed; nothing was done, try again",
            ),
            e if e.is_unreachable() => Error::Unavailable(e.to_string()),
            e => Error::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database out of reach, or no connection free in time, is a 503 the caller may retry; any other
    /// store failure a 500.
    #[test]
    fn an_unreachable_database_is_503() {
        let unreachable = Error::from(StoreError::Connect("connection refused".into()));
        assert_eq!(
            (unreachable.status(), unreachable.code()),
            (503, "SERVICE_UNAVAILABLE")
        );
        assert!(
            !unreachable.public_message().contains("refused"),
            "no internals"
        );
        let other = Error::from(StoreError::Unexpected("a NULL balance".into()));
        assert_eq!((other.status(), other.code()), (500, "INTERNAL_ERROR"));
    }
}
