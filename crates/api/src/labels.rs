//! Labels (`key=value`) of instances, volumes, snapshots, images and firewalls, and instance leases.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A resource's labels, in key order.
pub type Labels = BTreeMap<String, String>;

/// Labels one resource may carry.
pub const MAX_LABELS: usize = 64;
/// Longest key and longest value, in characters.
pub const MAX_LABEL_KEY: usize = 63;
pub const MAX_LABEL_VALUE: usize = 63;
/// What a key looks like: lowercase letters and digits, with `.`, `_`, `/` and `-` inside.
pub const LABEL_KEY_PATTERN: &str = "^[a-z0-9]([a-z0-9._/-]*[a-z0-9])?$";

/// `PATCH /api/<resources>/{id}/labels/`: a merge patch. A key with a string sets that label, a key with
/// `null` removes it; labels not named are kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelsPatch {
    pub labels: BTreeMap<String, Option<String>>,
}

/// A resource's labels after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LabelsView {
    pub resource_id: String,
    pub labels: Labels,
}

/// `?label=team=ml&label=env`: the label filters of a list, ANDed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LabelQuery {
    /// `key=value` keeps resources whose label `key` has that value, `key` alone those that carry `key`;
    /// repeat the parameter to require several.
    #[serde(default)]
    pub label: Vec<String>,
}

/// When an instance deletes or hibernates itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Lease {
    /// RFC 3339, UTC.
    pub expires_at: String,
    /// `delete` or `hibernate`.
    pub on_expiry: String,
}

/// Longest lease accepted, in days (a year).
pub const MAX_LEASE_DAYS: i64 = 366;
/// Longest lease accepted, in minutes.
pub const MAX_LEASE_MINUTES: i64 = MAX_LEASE_DAYS * 24 * 60;

/// `PATCH /api/instances/{id}/`: sets or ends the instance's lease. `ttl_minutes` counts from now;
/// give it or `expires_at`, not both. `clear_lease: true` ends the lease instead.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstancePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_minutes: Option<i64>,
    #[serde(
        default,
        deserialize_with = "crate::rules::blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<String>,
    /// `delete` (default) or `hibernate`.
    #[serde(
        default,
        deserialize_with = "crate::rules::blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub on_expiry: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::rules::null_as_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub clear_lease: bool,
}
