//! Volumes, and attaching them to instances.

use barrack_api::Envelope;
use barrack_api::volumes::{
    CloneVolumeRequest, CreateVolumeRequest, ResizeVolumeRequest, Volume, VolumeAction,
    VolumeAttachmentChange, VolumeIdsRequest, VolumeList, VolumeQuery, VolumeTypeList,
};
use reqwest::Method;

use crate::{Client, Result, with_query};

impl Client {
    pub async fn volumes(&self, query: &VolumeQuery) -> Result<Envelope<VolumeList>> {
        self.get(&with_query("/api/volumes/", query)).await
    }

    /// The volumes carrying every label of `labels` (`key=value` or `key`).
    pub async fn volumes_labelled(
        &self,
        query: &VolumeQuery,
        labels: &[String],
    ) -> Result<Envelope<VolumeList>> {
        self.get(&crate::with_labels(
            &with_query("/api/volumes/", query),
            labels,
        ))
        .await
    }

    pub async fn create_volume(&self, request: &CreateVolumeRequest) -> Result<Envelope<Volume>> {
        self.post("/api/volumes/", request).await
    }

    pub async fn volume(&self, id: &str) -> Result<Envelope<Volume>> {
        self.get(&format!("/api/volumes/{id}/")).await
    }

    pub async fn delete_volume(&self, id: &str) -> Result<Envelope<VolumeAction>> {
        self.request::<_, ()>(Method::DELETE, &format!("/api/volumes/{id}/"), None)
            .await
    }

    /// Grows a volume to `size` GB.
    pub async fn resize_volume(&self, id: &str, size: u32) -> Result<Envelope<VolumeAction>> {
        self.post(
            &format!("/api/volumes/{id}/resize/"),
            &ResizeVolumeRequest { size },
        )
        .await
    }

    /// A new volume named `name`, copied from volume `id`.
    pub async fn clone_volume(&self, id: &str, name: &str) -> Result<Envelope<Volume>> {
        self.post(
            &format!("/api/volumes/{id}/clone/"),
            &CloneVolumeRequest {
                name: name.to_string(),
            },
        )
        .await
    }

    pub async fn volume_types(&self) -> Result<Envelope<VolumeTypeList>> {
        self.get("/api/volumes/types/").await
    }

    pub async fn attach_volumes(
        &self,
        instance_id: &str,
        volume_ids: &[String],
    ) -> Result<Envelope<VolumeAttachmentChange>> {
        self.post(
            &format!("/api/instances/{instance_id}/attach-volumes/"),
            &VolumeIdsRequest {
                volume_ids: volume_ids.to_vec(),
            },
        )
        .await
    }

    pub async fn detach_volumes(
        &self,
        instance_id: &str,
        volume_ids: &[String],
    ) -> Result<Envelope<VolumeAttachmentChange>> {
        self.post(
            &format!("/api/instances/{instance_id}/detach-volumes/"),
            &VolumeIdsRequest {
                volume_ids: volume_ids.to_vec(),
            },
        )
        .await
    }
}
