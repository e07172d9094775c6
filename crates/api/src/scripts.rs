//! Startup scripts.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Pagination;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Script {
    pub id: String,
    pub name: String,
    pub script: String,
    pub size_bytes: u32,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /api/scripts/`, and `PUT /api/scripts/{id}/` (which replaces both).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptRequest {
    /// Unique per account: letters, digits, spaces, hyphens, underscores and dots.
    pub name: String,
    /// At most 16384 bytes.
    pub script: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScriptList {
    pub scripts: Vec<Script>,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteScriptsRequest {
    pub script_ids: Vec<String>,
}

/// What a bulk delete did: the ids deleted, and those the account has no script for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeletedScripts {
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
}
