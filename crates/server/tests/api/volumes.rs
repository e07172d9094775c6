//! Volumes against the simulated data centre in step mode: create, list, resize, clone, attach to and
//! detach from instances, delete; the documented rules and their status codes.
//!
//! A file per topic: [`access`], [`attachments`], [`create`], [`driver_failures`].

mod access;
mod attachments;
mod create;
mod driver_failures;

use barrack_api::instances::DeployRequest;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_api::volumes::CreateVolumeRequest;
use barrack_client::{Client, ClientError};
use serde_json::json;

use crate::common::{TestApp, deploy_id};

const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

fn volume(name: &str, size: u32, region: &str, volume_type: &str) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        size,
        region: region.into(),
        volume_type: volume_type.into(),
        bootable: false,
        image_name: None,
        labels: Default::default(),
    }
}

/// A volume created and settled to `available`; its id.
async fn available_volume(app: &TestApp, client: &Client, request: CreateVolumeRequest) -> String {
    let id = client.create_volume(&request).await.unwrap().data.id;
    app.settle().await;
    assert_eq!(status(client, &id).await, "available");
    id
}

async fn status(client: &Client, id: &str) -> String {
    client.volume(id).await.unwrap().data.status
}

/// (status, code, fields at fault) of an error.
fn failure(e: ClientError) -> (u16, String, Vec<String>) {
    (
        e.status().unwrap(),
        e.code().unwrap_or_default().to_string(),
        e.field_errors()
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

/// An ACTIVE 1-GPU instance in `region`; its id.
async fn active_instance(app: &TestApp, client: &Client, name: &str, region: &str) -> String {
    let keys = client.ssh_keys().await.unwrap().data.ssh_keys;
    let key = match keys.first() {
        Some(k) => k.name.clone(),
        None => {
            client
                .create_ssh_key(&CreateSshKeyRequest {
                    name: "laptop".into(),
                    public_key: None,
                })
                .await
                .unwrap()
                .data
                .key
                .name
        }
    };
    let request: DeployRequest = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": region, "instance_name": name,
        "image_name": IMAGE, "ssh_key": key
    }))
    .unwrap();
    let id = deploy_id(client, &request).await;
    app.settle().await;
    assert_eq!(client.instance(&id).await.unwrap().data.status, "ACTIVE");
    id
}
