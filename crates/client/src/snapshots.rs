//! Snapshots, restoring them, and custom images made from them.

use barrack_api::Envelope;
use barrack_api::images::{
    CreateImageRequest, Image, ImageAction, ImageList, ImageQuery, ImageRelationships,
    SnapshotIdsRequest, SnapshotImageRelationship,
};
use barrack_api::instances::DeployedInstance;
use barrack_api::snapshots::{
    CreateSnapshotRequest, RestoreSnapshotRequest, Snapshot, SnapshotAction, SnapshotList,
    SnapshotQuery,
};
use reqwest::Method;

use crate::{Client, Result, with_query};

impl Client {
    pub async fn snapshots(&self, query: &SnapshotQuery) -> Result<Envelope<SnapshotList>> {
        self.get(&with_query("/api/snapshots/", query)).await
    }

    /// The snapshots carrying every label of `labels` (`key=value` or `key`).
    pub async fn snapshots_labelled(
        &self,
        query: &SnapshotQuery,
        labels: &[String],
    ) -> Result<Envelope<SnapshotList>> {
        self.get(&crate::with_labels(
            &with_query("/api/snapshots/", query),
            labels,
        ))
        .await
    }

    pub async fn create_snapshot(
        &self,
        request: &CreateSnapshotRequest,
    ) -> Result<Envelope<Snapshot>> {
        self.post("/api/snapshots/", request).await
    }

    pub async fn snapshot(&self, id: &str) -> Result<Envelope<Snapshot>> {
        self.get(&format!("/api/snapshots/{id}/")).await
    }

    pub async fn delete_snapshot(&self, id: &str) -> Result<Envelope<SnapshotAction>> {
        self.request::<_, ()>(Method::DELETE, &format!("/api/snapshots/{id}/"), None)
            .await
    }

    /// A new instance from snapshot `id`, named `instance_name` (or `{snapshot}-restored`).
    pub async fn restore_snapshot(
        &self,
        id: &str,
        instance_name: Option<&str>,
    ) -> Result<Envelope<DeployedInstance>> {
        self.post(
            &format!("/api/snapshots/{id}/restore/"),
            &RestoreSnapshotRequest {
                instance_name: instance_name.map(str::to_string),
            },
        )
        .await
    }

    pub async fn images(&self, query: &ImageQuery) -> Result<Envelope<ImageList>> {
        self.get(&with_query("/api/images/", query)).await
    }

    /// The images carrying every label of `labels` (`key=value` or `key`).
    pub async fn images_labelled(
        &self,
        query: &ImageQuery,
        labels: &[String],
    ) -> Result<Envelope<ImageList>> {
        self.get(&crate::with_labels(
            &with_query("/api/images/", query),
            labels,
        ))
        .await
    }

    pub async fn create_image(&self, request: &CreateImageRequest) -> Result<Envelope<Image>> {
        self.post("/api/images/", request).await
    }

    pub async fn image(&self, id: &str) -> Result<Envelope<Image>> {
        self.get(&format!("/api/images/{id}/")).await
    }

    pub async fn delete_image(&self, id: &str) -> Result<Envelope<ImageAction>> {
        self.request::<_, ()>(Method::DELETE, &format!("/api/images/{id}/"), None)
            .await
    }

    /// The custom images made from snapshot `id`.
    pub async fn snapshot_image_relationship(
        &self,
        id: &str,
    ) -> Result<Envelope<SnapshotImageRelationship>> {
        self.get(&format!("/api/snapshots/{id}/image-relationship/"))
            .await
    }

    /// The custom images made from each of the snapshots; ids without a snapshot are in `not_found`.
    pub async fn snapshot_image_relationships(
        &self,
        snapshot_ids: &[String],
    ) -> Result<Envelope<ImageRelationships>> {
        self.post(
            "/api/snapshots/image-relationships/",
            &SnapshotIdsRequest {
                snapshot_ids: snapshot_ids.to_vec(),
            },
        )
        .await
    }
}
