//! Snapshots of instances' disks: take, list, show, delete, and restore into a new instance
//! (`spec/API.md` §4.2, "Resource rules").

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::catalog::Amount;
use crate::{Currency, Pagination, Tier};

/// `POST /api/snapshots/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotRequest {
    /// An ACTIVE instance of the caller's; it keeps running.
    pub instance_id: String,
    /// Unique per account: 1–50 letters, digits, spaces, hyphens, underscores and dots.
    pub name: String,
    /// At most 255 characters.
    #[serde(
        default,
        deserialize_with = "crate::rules::blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// Also make a custom image of the same name from the snapshot once it succeeds.
    #[serde(default, deserialize_with = "crate::rules::null_as_default")]
    pub is_image: bool,
    /// Labels of the new snapshot (see `PATCH /api/snapshots/{id}/labels/`).
    #[serde(
        default,
        deserialize_with = "crate::rules::null_as_default",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub labels: crate::labels::Labels,
}

/// `POST /api/snapshots/{id}/restore/`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreSnapshotRequest {
    /// The new instance's name [default: `{snapshot-name}-restored`, spaces made hyphens].
    #[serde(
        default,
        deserialize_with = "crate::rules::blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub instance_name: Option<String>,
}

/// The instance a snapshot was taken of, and its configuration then: what a restore re-creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotSource {
    pub instance_id: String,
    pub instance_name: String,
    /// The instance's status now (`DELETED` once it is gone).
    pub instance_status: Option<String>,
    pub region: String,
    pub gpu_model: String,
    pub gpu_count: u32,
    pub vcpus: u32,
    pub ram_gb: u32,
    /// Size of the OS disk in GB.
    pub storage_gb: u32,
    pub os_volume_type: String,
    pub operating_system: Option<String>,
}

/// A snapshot as listed and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// `CREATING`, `SUCCESS`, `ERROR`, `DELETING` (or `DELETED`).
    pub status: String,
    /// Why the snapshot is in `ERROR`.
    pub status_reason: Option<String>,
    pub region: String,
    pub tier: Tier,
    /// The instance the snapshot was taken of.
    pub instance_id: String,
    /// That instance's configuration when the snapshot was taken.
    pub source: SnapshotSource,
    /// The size the snapshot is billed for (the tier's fixed size).
    pub size_gb: u32,
    /// Whether an image was asked for with the snapshot.
    pub is_image: bool,
    /// Custom images made from this snapshot that are not deleted.
    pub image_count: u32,
    /// What the snapshot costs per hour.
    pub hourly_rate: Amount,
    pub currency: Currency,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub labels: crate::labels::Labels,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotList {
    pub snapshots: Vec<Snapshot>,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    pub page: Option<u32>,
    pub limit: Option<u32>,
    /// Only snapshots in this region.
    pub region: Option<String>,
    /// Only snapshots in this state (e.g. `SUCCESS`).
    pub status: Option<String>,
    /// Only snapshots of this instance.
    pub instance_id: Option<String>,
}

/// Answer of an operation on a snapshot: its transitional state and the state it will rest in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotAction {
    pub snapshot_id: String,
    /// `delete`.
    pub action: String,
    pub status: String,
    pub target_status: String,
}
