//! Snapshots and custom images against the simulated data centre in step mode: take a snapshot of a
//! running instance, make an image of it, deploy from the image, restore the snapshot into a new instance,
//! delete the snapshot and keep what was made from it; the documented rules and their status codes.
//!
//! A file per topic: [`access`], [`create`], [`driver_failures`], [`images`], [`restore`].

mod access;
mod create;
mod driver_failures;
mod images;
mod restore;

use barrack_api::images::CreateImageRequest;
use barrack_api::instances::DeployRequest;
use barrack_api::snapshots::CreateSnapshotRequest;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_client::{Client, ClientError};
use serde_json::{Value, json};

use crate::common::TestApp;

const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

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

/// The name of the account's SSH key, made on first use.
async fn ssh_key(client: &Client) -> String {
    let keys = client.ssh_keys().await.unwrap().data.ssh_keys;
    match keys.first() {
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
    }
}

async fn deploy_body(client: &Client, body: Value) -> Result<String, ClientError> {
    let mut body = body;
    body["ssh_key"] = json!(ssh_key(client).await);
    let request: DeployRequest = serde_json::from_value(body).unwrap();
    Ok(client.deploy(&request).await?.data.instance_id)
}

/// An ACTIVE instance of `gpus` H100s in `region` with a `disk_gb` OS disk; its id.
async fn active_instance(
    app: &TestApp,
    client: &Client,
    name: &str,
    region: &str,
    gpus: u32,
    disk_gb: u32,
) -> String {
    let id = deploy_body(
        client,
        json!({
            "gpu_model": "H100-SXM5-80GB", "gpu_count": gpus, "region": region, "instance_name": name,
            "image_name": IMAGE, "os_volume": {"size": disk_gb}
        }),
    )
    .await
    .unwrap();
    app.settle().await;
    assert_eq!(client.instance(&id).await.unwrap().data.status, "ACTIVE");
    id
}

fn snapshot_request(instance_id: &str, name: &str, is_image: bool) -> CreateSnapshotRequest {
    CreateSnapshotRequest {
        instance_id: instance_id.into(),
        name: name.into(),
        description: None,
        is_image,
        labels: Default::default(),
    }
}

/// A snapshot of `instance_id` settled to SUCCESS; its id.
async fn successful_snapshot(
    app: &TestApp,
    client: &Client,
    instance_id: &str,
    name: &str,
) -> String {
    let id = client
        .create_snapshot(&snapshot_request(instance_id, name, false))
        .await
        .unwrap()
        .data
        .id;
    app.settle().await;
    assert_eq!(client.snapshot(&id).await.unwrap().data.status, "SUCCESS");
    id
}

fn image_request(snapshot_id: &str, name: &str) -> CreateImageRequest {
    CreateImageRequest {
        snapshot_id: snapshot_id.into(),
        name: name.into(),
        description: None,
        labels: Default::default(),
    }
}

async fn snapshot_status(client: &Client, id: &str) -> String {
    client.snapshot(id).await.unwrap().data.status
}
