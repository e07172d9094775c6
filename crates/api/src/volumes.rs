//! Block storage volumes: create, list, resize, clone, attach to and detach from instances
//! (`spec/API.md` §4.2, "Resource rules").

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::catalog::{Amount, Prices};
use crate::{Currency, Pagination, Tier};

/// `POST /api/volumes/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVolumeRequest {
    /// Unique per account across regions: 1–50 letters, digits, spaces, hyphens, underscores and dots.
    pub name: String,
    /// Size in GB: at least 10 for data volumes and 100 for bootable ones, at most 1048576.
    pub size: u32,
    /// A region of the caller's tier.
    pub region: String,
    /// A volume type of the caller's tier (`SSD` for legacy; `NVMe` or `HDD` for advanced).
    pub volume_type: String,
    /// A bootable volume carries an OS image and can boot an instance (`boot_from_volume`).
    #[serde(default, deserialize_with = "crate::rules::null_as_default")]
    pub bootable: bool,
    /// The OS image of a bootable volume; it must be offered in `region`.
    #[serde(
        default,
        deserialize_with = "crate::rules::blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_name: Option<String>,
    /// Labels of the new volume (see `PATCH /api/volumes/{id}/labels/`).
    #[serde(
        default,
        deserialize_with = "crate::rules::null_as_default",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub labels: crate::labels::Labels,
}

/// `POST /api/volumes/{id}/resize/`: volumes only grow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeVolumeRequest {
    /// The new size in GB, larger than the current one.
    pub size: u32,
}

/// `POST /api/volumes/{id}/clone/`: a new volume of the same size, type and region.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneVolumeRequest {
    /// The clone's name, unique per account.
    pub name: String,
}

/// `POST /api/instances/{id}/attach-volumes/` and `/detach-volumes/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeIdsRequest {
    pub volume_ids: Vec<String>,
}

/// The instance a volume is attached to (or being attached to or detached from).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VolumeAttachment {
    pub instance_id: String,
    pub instance_name: String,
    /// The instance's own status (`ACTIVE`, `SHUTOFF`, ...).
    pub instance_status: String,
    /// Whether the instance boots from this volume (a boot volume cannot be detached).
    pub boot_volume: bool,
}

/// A volume as listed and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Volume {
    pub id: String,
    pub name: String,
    pub region: String,
    pub tier: Tier,
    pub volume_type: String,
    pub size_gb: u32,
    pub bootable: bool,
    /// The OS image of a bootable volume.
    pub image_name: Option<String>,
    /// `creating`, `available`, `attaching`, `in-use`, `detaching`, `resizing`, `cloning`, `deleting` or
    /// `error`.
    pub status: String,
    /// Why the volume is in `error`, or what last went wrong with it.
    pub status_reason: Option<String>,
    /// The volume this one was cloned from.
    pub source_volume_id: Option<String>,
    pub attachment: Option<VolumeAttachment>,
    /// What the volume costs per hour at its current size.
    pub hourly_rate: Amount,
    pub currency: Currency,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub labels: crate::labels::Labels,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VolumeList {
    pub volumes: Vec<Volume>,
    pub pagination: Pagination,
    /// The first of `volume1`, `volume2`, ... the account does not use yet: a default for the next name.
    pub next_volume_name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VolumeQuery {
    pub page: Option<u32>,
    pub limit: Option<u32>,
    /// Only volumes in this region.
    pub region: Option<String>,
    /// Only volumes in this state (e.g. `available`).
    pub status: Option<String>,
}

/// Answer of an operation on a volume: the volume in its transitional state and the state it will rest in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VolumeAction {
    pub volume_id: String,
    /// `delete`, `resize`, `attach` or `detach`.
    pub action: String,
    pub status: String,
    pub target_status: String,
    /// The size the volume will have (resize).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u32>,
}

/// Answer of attach-volumes and detach-volumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VolumeAttachmentChange {
    pub instance_id: String,
    /// `attach` or `detach`.
    pub action: String,
    pub volumes: Vec<VolumeAction>,
}

/// A volume type offered to one tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VolumeType {
    pub name: String,
    pub tier: Tier,
    pub description: String,
    /// Per TB (1024 GB) per hour.
    #[schema(value_type = crate::catalog::PricesSchema)]
    pub prices: Prices,
    pub unit: String,
    /// Smallest data volume, in GB.
    pub minimum_size_gb: u32,
    /// Smallest bootable volume, in GB.
    pub minimum_bootable_size_gb: u32,
    pub maximum_size_gb: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VolumeTypeList {
    pub volume_types: Vec<VolumeType>,
}
