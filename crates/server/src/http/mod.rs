//! HTTP conventions of `spec/API.md` §1: envelopes, request ids, JSON errors, authentication, rate limits.

pub mod client_address;
pub mod context;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod middleware;
pub mod rate_limit;
pub mod response;

pub use error::{ApiError, ApiResult};
pub use extract::{
    Admin, AmountBody, AnyQuery, Auth, Body, LabelParams, MaybeAuth, NoBody, NoParams, PathId,
    PathIds, Query, SignUpOpen, TypedBody,
};
pub use response::{Created, Success};
