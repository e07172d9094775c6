//! The response envelopes every endpoint answers with (`spec/API.md` §1.3, §1.4).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Tier;

/// The default success envelope.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Envelope<T> {
    pub success: bool,
    pub message: String,
    /// 8 lowercase alphanumerics, also sent as the `X-Request-Id` header.
    pub request_id: String,
    /// ISO-8601 UTC.
    pub timestamp: String,
    pub data: T,
    /// The tier of the key that made the request; absent on anonymous catalog calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
}

/// Field name → messages, for validation errors.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// How [`FieldErrors`] is published: its own schema, so that no two maps share the name of the Rust type.
pub struct FieldErrorsSchema;

impl utoipa::PartialSchema for FieldErrorsSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Type};
        ObjectBuilder::new()
            .description(Some(
                "Each field at fault (a path such as `volumes[0].size`, or `body`) → its messages.",
            ))
            .additional_properties(Some(AdditionalProperties::RefOr(
                ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::String))
                    .into(),
            )))
            .into()
    }
}

impl ToSchema for FieldErrorsSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "FieldErrors".into()
    }
}

/// The error envelope.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub success: bool,
    pub message: String,
    /// A stable machine code such as `VALIDATION_ERROR`, `NOT_FOUND`, `INVALID_STATE`.
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<FieldErrorsSchema>)]
    pub errors: Option<FieldErrors>,
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
}

/// Page position of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pagination {
    pub page: u32,
    pub limit: u32,
    pub total: u64,
    pub total_pages: u32,
}

impl Pagination {
    pub fn new(page: PageRequest, total: u64) -> Pagination {
        let total_pages = total.div_ceil(u64::from(page.limit)) as u32;
        Pagination {
            page: page.page,
            limit: page.limit,
            total,
            total_pages,
        }
    }
}

/// `?page=1&limit=20` on every list.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    pub limit: Option<u32>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub limit: u32,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 100;

    pub fn offset(self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.limit)
    }
}

impl PageQuery {
    pub fn new(page: Option<u32>, limit: Option<u32>) -> PageQuery {
        PageQuery { page, limit }
    }

    /// Checks the bounds; the error names the field at fault.
    pub fn validate(self) -> Result<PageRequest, (&'static str, String)> {
        let page = self.page.unwrap_or(1);
        let limit = self.limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
        if page == 0 {
            return Err(("page", "Page must be 1 or more".into()));
        }
        if limit == 0 || limit > PageRequest::MAX_LIMIT {
            return Err((
                "limit",
                format!("Limit must be between 1 and {}", PageRequest::MAX_LIMIT),
            ));
        }
        Ok(PageRequest { page, limit })
    }
}
