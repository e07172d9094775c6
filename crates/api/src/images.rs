//! Custom images made from snapshots: create, list, show, delete, and which images each snapshot has
//! (`spec/API.md` §4.2, "Resource rules"). A custom image boots instances at deploy (`image_name`).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{Pagination, Tier};

/// `POST /api/images/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateImageRequest {
    /// A `SUCCESS` snapshot of the caller's; the image is in its region.
    pub snapshot_id: String,
    /// Unique per account among images: 1–50 letters, digits, spaces, hyphens, underscores and dots.
    pub name: String,
    /// At most 255 characters.
    #[serde(
        default,
        deserialize_with = "crate::rules::blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// Labels of the new image (see `PATCH /api/images/{id}/labels/`).
    #[serde(
        default,
        deserialize_with = "crate::rules::null_as_default",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub labels: crate::labels::Labels,
}

/// A custom image as listed and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Image {
    pub id: String,
    /// What deploy takes as `image_name`.
    pub name: String,
    pub description: Option<String>,
    /// `CREATING` (its snapshot is being taken), `SUCCESS`, `ERROR` (or `DELETED`).
    pub status: String,
    pub status_reason: Option<String>,
    /// The only region the image boots instances in.
    pub region: String,
    pub tier: Tier,
    /// The snapshot the image was made from; the image keeps its disk after the snapshot is deleted.
    pub snapshot_id: String,
    pub snapshot_name: String,
    /// The instance the snapshot was taken of.
    pub source_instance_id: String,
    /// The OS the image's disk carries, as its source instance showed it.
    pub operating_system: Option<String>,
    /// The size of the disk in GB: the smallest OS disk an instance booted from the image can have.
    pub size_gb: u32,
    pub os_volume_type: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub labels: crate::labels::Labels,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImageList {
    pub images: Vec<Image>,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImageQuery {
    pub page: Option<u32>,
    pub limit: Option<u32>,
    /// Only images in this region.
    pub region: Option<String>,
    /// Only images in this state (e.g. `SUCCESS`).
    pub status: Option<String>,
}

/// Answer of deleting an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageAction {
    pub image_id: String,
    /// `delete`.
    pub action: String,
    pub status: String,
    pub target_status: String,
}

/// An image, as a snapshot's relationship names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageSummary {
    pub id: String,
    pub name: String,
    pub status: String,
    pub region: String,
}

/// `GET /api/snapshots/{id}/image-relationship/`: the custom images made from a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotImageRelationship {
    pub snapshot_id: String,
    pub snapshot_name: String,
    pub snapshot_status: String,
    /// Whether any image (not deleted) was made from the snapshot.
    pub has_images: bool,
    pub image_count: u32,
    pub images: Vec<ImageSummary>,
}

/// `POST /api/snapshots/image-relationships/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotIdsRequest {
    /// 1 to 100 snapshot ids; repeats are answered once.
    pub snapshot_ids: Vec<String>,
}

/// The relationships of the snapshots found, in the order asked, and the ids the account has no
/// snapshot for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageRelationships {
    pub relationships: Vec<SnapshotImageRelationship>,
    pub not_found: Vec<String>,
}
