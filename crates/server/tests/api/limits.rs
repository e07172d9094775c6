//! Per-account quotas and per-request caps: counted and written under the account's lock, so requests
//! sent at once cannot pass a quota together.

use barrack_api::Tier;
use barrack_api::deposits::CreateDepositRequest;
use barrack_api::instances::{DeployRequest, SecurityRuleRequest};
use barrack_api::scripts::ScriptRequest;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_client::{Client, ClientError};
use serde_json::json;

use crate::common::{Db, TestApp, deploy_id};
use crate::on_both_databases;

on_both_databases!(
    concurrent_ssh_key_creations_stop_at_the_limit,
    concurrent_security_rules_stop_at_the_limit,
    startup_scripts_stop_at_the_limit,
    pending_deposits_stop_at_the_limit,
    a_deploy_takes_at_most_sixteen_data_volumes,
    images_stop_at_the_limit,
);

/// Runs `n` requests at once; (how many passed, how many were 409 LIMIT_EXCEEDED). Anything else fails.
async fn at_once<T, F>(n: usize, request: impl Fn(usize) -> F) -> (usize, usize)
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, ClientError>> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(request(i))).collect();
    let (mut passed, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => passed += 1,
            Err(e) => {
                assert_eq!(
                    (e.status(), e.code()),
                    (Some(409), Some("LIMIT_EXCEEDED")),
                    "{e}"
                );
                refused += 1;
            }
        }
    }
    (passed, refused)
}

/// A distinct Ed25519 public key in OpenSSH form for each `n`.
fn ed25519_public_key(n: usize) -> String {
    use base64::Engine;
    let mut blob = Vec::new();
    for part in [b"ssh-ed25519".as_slice(), &[n as u8; 32]] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!(
        "ssh-ed25519 {} key{n}@example",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// Thirty SSH keys at once leave the account with the limit, 25.
async fn concurrent_ssh_key_creations_stop_at_the_limit(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Legacy).await;
    let (created, refused) = at_once(30, |i| {
        let client = client.clone();
        async move {
            client
                .create_ssh_key(&CreateSshKeyRequest {
                    name: format!("key-{i}"),
                    public_key: Some(ed25519_public_key(i + 1)),
                })
                .await
        }
    })
    .await;
    let held = client.ssh_keys().await.unwrap().data.ssh_keys.len();
    assert_eq!(held, 25, "created {created}, refused {refused}");
    assert_eq!((created, refused), (25, 5));
    app.stop().await;
}

fn rule(port: u32) -> SecurityRuleRequest {
    serde_json::from_value(json!({
        "direction": "ingress", "protocol": "tcp", "port_range_min": port, "port_range_max": port,
        "remote_ip_prefix": "0.0.0.0/0"
    }))
    .unwrap()
}

/// An instance's own security rules stop at 50 when sixty are added at once.
async fn concurrent_security_rules_stop_at_the_limit(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "500.00").await;
    crate::common::create_key_k(&client).await;
    let request: DeployRequest = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
        "instance_name": "ruled", "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
        "ssh_key": "k"
    }))
    .unwrap();
    let id = deploy_id(&client, &request).await;
    app.settle().await;
    let (added, refused) = at_once(60, |i| {
        let client = client.clone();
        let id = id.clone();
        async move {
            client
                .add_security_rule(&id, &rule(10_000 + i as u32))
                .await
        }
    })
    .await;
    let rules = client
        .instance(&id)
        .await
        .unwrap()
        .data
        .security_rules
        .len();
    assert_eq!(rules, 50, "added {added}, refused {refused}");
    assert_eq!((added, refused), (50, 10));
    app.stop().await;
}

/// An account holds at most 100 startup scripts, however many are sent at once.
async fn startup_scripts_stop_at_the_limit(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Legacy).await;
    let (created, refused) = at_once(110, |i| {
        let client = client.clone();
        async move {
            client
                .create_script(&ScriptRequest {
                    name: format!("script {i}"),
                    script: "#!/bin/sh\necho hello\n".into(),
                })
                .await
        }
    })
    .await;
    assert_eq!((created, refused), (100, 10));
    app.stop().await;
}

/// At most ten deposits wait for payment at once; completing one makes room for another.
async fn pending_deposits_stop_at_the_limit(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Legacy, "US", "1.00").await;
    let open = |client: Client| async move {
        client
            .create_deposit(&CreateDepositRequest {
                amount: "25.00".parse().unwrap(),
                currency: None,
            })
            .await
    };
    let (opened, refused) = at_once(14, |_| open(client.clone())).await;
    assert_eq!((opened, refused), (10, 4));
    let deposits = client
        .deposits(&Default::default())
        .await
        .unwrap()
        .data
        .deposits;
    app.admin
        .admin_complete_deposit(&deposits[0].id)
        .await
        .unwrap();
    open(client.clone()).await.expect("room for one more");
    let e = open(client.clone()).await.unwrap_err();
    assert_eq!(e.code(), Some("LIMIT_EXCEEDED"), "{e}");
    app.stop().await;
}

/// Seventeen data volumes (new and existing together) are refused with one message, before anything is
/// read or written; sixteen pass the field checks.
async fn a_deploy_takes_at_most_sixteen_data_volumes(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "500.00").await;
    crate::common::create_key_k(&client).await;
    let deploy = |volumes: usize, existing: usize| {
        let volumes: Vec<_> = (0..volumes)
            .map(|i| json!({"name": format!("data{i}"), "size": 100, "volume_type": "NVMe"}))
            .collect();
        let existing: Vec<_> = (0..existing).map(|i| format!("VOL-NOSUCH{i}")).collect();
        serde_json::from_value::<DeployRequest>(json!({
            "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
            "instance_name": "many", "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
            "ssh_key": "k", "volumes": volumes, "existing_volumes": existing
        }))
        .unwrap()
    };
    for (new, existing) in [(17, 0), (10, 7), (1000, 0)] {
        let e = client.deploy(&deploy(new, existing)).await.unwrap_err();
        assert_eq!(e.status(), Some(400), "{e}");
        let fields = e.field_errors().unwrap();
        assert_eq!(fields.len(), 1, "one message: {fields:?}");
        assert!(fields.contains_key("volumes"), "{fields:?}");
    }
    client
        .deploy(&deploy(16, 0))
        .await
        .expect("sixteen new volumes are within the cap");
    app.stop().await;
}

/// An account holds at most 100 images, however many are asked for at once.
async fn images_stop_at_the_limit(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "500.00").await;
    crate::common::create_key_k(&client).await;
    let request: DeployRequest = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
        "instance_name": "imaged", "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
        "ssh_key": "k"
    }))
    .unwrap();
    let id = deploy_id(&client, &request).await;
    app.settle().await;
    let snapshot = client
        .create_snapshot(&barrack_api::snapshots::CreateSnapshotRequest {
            instance_id: id,
            name: "base".into(),
            description: None,
            is_image: false,
            labels: Default::default(),
        })
        .await
        .unwrap()
        .data
        .id;
    app.settle().await;
    let (created, refused) = at_once(105, |i| {
        let client = client.clone();
        let snapshot = snapshot.clone();
        async move {
            client
                .create_image(&barrack_api::images::CreateImageRequest {
                    snapshot_id: snapshot,
                    name: format!("image {i}"),
                    description: None,
                    labels: Default::default(),
                })
                .await
        }
    })
    .await;
    assert_eq!((created, refused), (100, 5));
    app.stop().await;
}
