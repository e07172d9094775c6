//! Snapshots and custom images against the simulated data centre in step mode: take a snapshot of a
//! running instance, make an image of it, deploy from the image, restore the snapshot into a new instance,
//! delete the snapshot and keep what was made from it; the documented rules and their status codes.

use barrack_api::account::ProfileUpdate;
use barrack_api::catalog::{CapacitySetting, SetCapacityRequest};
use barrack_api::images::{CreateImageRequest, ImageQuery};
use barrack_api::instances::DeployRequest;
use barrack_api::snapshots::{CreateSnapshotRequest, SnapshotQuery};
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_api::{Currency, PageQuery, Tier};
use barrack_client::{Client, ClientError, InstanceActionKind};
use barrack_compute::Operation;
use barrack_compute::sim::Fault;
use barrack_core::clock::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp, assert_derived_state_consistent};
use crate::on_both_databases;

on_both_databases!(
    snapshots_of_active_instances_only,
    images_deploy_instances_and_outlive_their_snapshot,
    restore_makes_a_new_instance_with_the_snapshots_specs,
    profile_balance_and_tier_checks,
    relationships_single_and_batch,
    other_accounts_snapshots_and_images_are_not_found,
    driver_failures_retry_then_error,
    another_server_boots_from_snapshots_it_did_not_take,
);

const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";
const LEGACY_IMAGE: &str = "Ubuntu Server 22.04 LTS R550 CUDA 12.4";

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

async fn snapshots_of_active_instances_only(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let instance = active_instance(&app, &client, "trainer", "FINLAND-1", 2, 200).await;

    let body =
        json!({"instance_id": instance, "name": "before upgrade", "description": "  CUDA 12.8  "});
    let raw = client
        .raw(Method::POST, "/api/snapshots/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    assert_eq!(raw.body["tier"], "advanced");
    let d = &raw.body["data"];
    let id = d["id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("BRK-") && id.ends_with('S') && id.len() == 11,
        "{id}"
    );
    assert_eq!(d["name"], "before upgrade");
    assert_eq!(d["description"], "CUDA 12.8");
    assert_eq!(d["status"], "CREATING");
    assert_eq!(d["instance_id"], instance.as_str());
    assert_eq!(d["region"], "FINLAND-1");
    assert_eq!(d["is_image"], false);
    assert_eq!(d["image_count"], 0);
    assert_eq!(d["size_gb"], 100);
    assert_eq!(d["currency"], "USD");
    assert_eq!(
        d["hourly_rate"], 0,
        "the advanced tier has no snapshot pricing"
    );
    assert_eq!(d["created_at"], "2025-01-15T10:30:00Z");
    assert_eq!(
        d["source"],
        json!({
            "instance_id": instance, "instance_name": "trainer", "instance_status": "ACTIVE",
            "region": "FINLAND-1", "gpu_model": "H100-SXM5-80GB", "gpu_count": 2, "vcpus": 88, "ram_gb": 370,
            "storage_gb": 200, "os_volume_type": "NVMe", "operating_system": IMAGE
        })
    );

    // The instance keeps running while the snapshot is taken, and after.
    assert_eq!(
        client.instance(&instance).await.unwrap().data.status,
        "ACTIVE"
    );
    app.settle().await;
    let shown = client.snapshot(&id).await.unwrap().data;
    assert_eq!(shown.status, "SUCCESS");
    assert_eq!(shown.status_reason, None);
    assert!(app.simulator().has_snapshot(&id));
    assert_eq!(app.simulator().calls(Operation::CreateSnapshot), 1);
    assert_eq!(
        client.instance(&instance).await.unwrap().data.status,
        "ACTIVE"
    );

    // Names: unique per account, the label rule, a bounded description.
    let e = client
        .create_snapshot(&snapshot_request(&instance, "before upgrade", false))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("DUPLICATE_NAME")));
    let raw = client
        .raw(
            Method::POST,
            "/api/snapshots/",
            Some(&json!({"instance_id": "", "name": "bad/name", "description": "x".repeat(256)})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400);
    let mut fields: Vec<&String> = raw.body["errors"].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["description", "instance_id", "name"]);
    let e = client
        .create_snapshot(&snapshot_request(&instance, &"x".repeat(51), false))
        .await
        .unwrap_err();
    assert_eq!(failure(e).2, ["name"]);
    let e = client
        .create_snapshot(&snapshot_request("BRK-ZZZZZZD", "nowhere", false))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(404), Some("NOT_FOUND")));

    // Only ACTIVE instances: a stopped one is refused, naming its state.
    client
        .instance_action(&instance, InstanceActionKind::Stop)
        .await
        .unwrap();
    app.settle().await;
    let e = client
        .create_snapshot(&snapshot_request(&instance, "stopped", false))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("INVALID_STATE")),
        "{e}"
    );
    assert!(e.to_string().contains("SHUTOFF"), "{e}");

    // Lists: newest first, filters, bad filters.
    client
        .instance_action(&instance, InstanceActionKind::Start)
        .await
        .unwrap();
    app.settle().await;
    app.clock.advance_ms(1000);
    let second = client
        .create_snapshot(&snapshot_request(&instance, "second", false))
        .await
        .unwrap()
        .data
        .id;
    let list = client
        .snapshots(&SnapshotQuery::default())
        .await
        .unwrap()
        .data;
    assert_eq!(list.pagination.total, 2);
    assert_eq!(list.snapshots[0].id, second, "newest first");
    let creating = SnapshotQuery {
        status: Some("CREATING".into()),
        instance_id: Some(instance.clone()),
        ..Default::default()
    };
    let page = client.snapshots(&creating).await.unwrap().data;
    assert_eq!(
        (page.snapshots.len(), page.snapshots[0].id.as_str()),
        (1, second.as_str())
    );
    let bad = SnapshotQuery {
        status: Some("busy".into()),
        ..Default::default()
    };
    assert_eq!(
        failure(client.snapshots(&bad).await.unwrap_err()),
        (400, "VALIDATION_ERROR".into(), vec!["status".into()])
    );
    // A snapshot being taken cannot be deleted, restored or made an image of yet.
    for e in [
        client.delete_snapshot(&second).await.unwrap_err(),
        client.restore_snapshot(&second, None).await.unwrap_err(),
        client
            .create_image(&image_request(&second, "early"))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(
            (e.status(), e.code()),
            (Some(409), Some("INVALID_STATE")),
            "{e}"
        );
        assert!(e.to_string().contains("CREATING"), "{e}");
    }
    app.settle().await;

    // Every change is an event of resource type `snapshot`.
    let events = client
        .events(&PageQuery {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .events;
    let first: Vec<(&str, Option<&str>, &str)> = events
        .iter()
        .filter(|e| e.resource_id == id)
        .map(|e| {
            (
                e.resource_type.as_str(),
                e.to_status.as_deref(),
                e.actor.as_str(),
            )
        })
        .collect();
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first.iter().all(|e| e.0 == "snapshot"));
    assert!(
        first
            .iter()
            .any(|e| e.1 == Some("CREATING") && e.2.starts_with("user:"))
    );
    assert!(
        first
            .iter()
            .any(|e| e.1 == Some("SUCCESS") && e.2 == "system")
    );
    app.stop().await;
}

async fn images_deploy_instances_and_outlive_their_snapshot(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let source = active_instance(&app, &client, "golden-source", "FINLAND-1", 1, 250).await;
    let snapshot = successful_snapshot(&app, &client, &source, "golden").await;

    // An image of a SUCCESS snapshot is ready at once, in the snapshot's region.
    let raw = client
        .raw(
            Method::POST,
            "/api/images/",
            Some(
                &json!({"snapshot_id": snapshot, "name": "golden image", "description": "drivers"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    let image: barrack_api::images::Image =
        serde_json::from_value(raw.body["data"].clone()).unwrap();
    assert!(image.id.starts_with("BRK-") && image.id.ends_with('I') && image.id.len() == 11);
    assert_eq!(
        (
            image.name.as_str(),
            image.status.as_str(),
            image.region.as_str(),
            image.snapshot_id.as_str(),
            image.size_gb,
            image.source_instance_id.as_str(),
        ),
        (
            "golden image",
            "SUCCESS",
            "FINLAND-1",
            snapshot.as_str(),
            250,
            source.as_str()
        )
    );
    assert_eq!(image.operating_system.as_deref(), Some(IMAGE));
    assert_eq!(image.description.as_deref(), Some("drivers"));
    let e = client
        .create_image(&image_request(&snapshot, "golden image"))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("DUPLICATE_NAME")));
    assert_eq!(
        failure(
            client
                .create_image(&image_request(&snapshot, ""))
                .await
                .unwrap_err()
        )
        .2,
        ["name"]
    );
    // An OS image's name would never reach the custom image at deploy.
    let e = client
        .create_image(&image_request(&snapshot, IMAGE))
        .await
        .unwrap_err();
    assert_eq!(
        failure(e),
        (400, "VALIDATION_ERROR".into(), vec!["name".into()])
    );
    let e = client
        .create_snapshot(&snapshot_request(&source, IMAGE, true))
        .await
        .unwrap_err();
    assert_eq!(failure(e).2, ["name"]);
    assert_eq!(
        client.snapshot(&snapshot).await.unwrap().data.image_count,
        1
    );

    // Deploy from the custom image, by name: an instance of the source's disk, booted from the snapshot.
    let from_image = |name: &str, region: &str| {
        json!({
            "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": region, "instance_name": name,
            "image_name": "golden image"
        })
    };
    let mut body = from_image("copy-1", "FINLAND-1");
    body["ssh_key"] = json!(ssh_key(&client).await);
    let raw = client
        .raw(Method::POST, "/api/deploy-server/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    let d = &raw.body["data"];
    assert_eq!(d["boot_source"], "image");
    assert_eq!(d["operating_system"], "golden image");
    assert_eq!(d["specs"]["storage_gb"], 250, "the image's disk size");
    assert_eq!(
        d["billing"]["breakdown"]["storage"]["os_volume"],
        json!({"size_gb": 250, "type": "NVMe", "hourly_rate": 0.0732})
    );
    let copy = d["instance_id"].as_str().unwrap().to_string();
    app.settle().await;
    let shown = client.instance(&copy).await.unwrap().data;
    let original = client.instance(&source).await.unwrap().data;
    assert_eq!(shown.status, "ACTIVE");
    assert_eq!(shown.specs, original.specs, "the source's specs");

    // Its region only; an OS disk at least its size; another region's name is unknown there.
    let e = deploy_body(&client, from_image("elsewhere", "FINLAND-2"))
        .await
        .unwrap_err();
    assert_eq!(
        failure(e),
        (400, "VALIDATION_ERROR".into(), vec!["image_name".into()])
    );
    let mut small = from_image("small", "FINLAND-1");
    small["os_volume"] = json!({"size": 100});
    let e = deploy_body(&client, small).await.unwrap_err();
    assert_eq!(failure(e).2, ["os_volume.size"]);
    // By id too.
    let mut by_id = from_image("by-id", "FINLAND-1");
    by_id["image_name"] = json!(image.id);
    let by_id = deploy_body(&client, by_id).await.unwrap();

    // An image asked for with the snapshot waits for it.
    let with_image = client
        .create_snapshot(&snapshot_request(&source, "nightly", true))
        .await
        .unwrap()
        .data;
    assert!(with_image.is_image);
    assert_eq!(with_image.image_count, 1);
    let images = client.images(&ImageQuery::default()).await.unwrap().data;
    let nightly = images.images.iter().find(|i| i.name == "nightly").unwrap();
    assert_eq!(nightly.status, "CREATING");
    assert_eq!(nightly.snapshot_id, with_image.id);
    let e = deploy_body(&client, json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "too-early",
        "image_name": "nightly"
    }))
    .await
    .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("INVALID_STATE")));
    let e = client.delete_image(&nightly.id).await.unwrap_err();
    assert_eq!(e.code(), Some("INVALID_STATE"));
    app.settle().await;
    assert_eq!(
        client.image(&nightly.id).await.unwrap().data.status,
        "SUCCESS"
    );
    assert_eq!(client.instance(&by_id).await.unwrap().data.status, "ACTIVE");
    let events = client
        .events(&PageQuery {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .events;
    let image_events: Vec<Option<&str>> = events
        .iter()
        .filter(|e| e.resource_id == nightly.id)
        .map(|e| {
            assert_eq!(e.resource_type, "image");
            e.to_status.as_deref()
        })
        .collect();
    assert_eq!(image_events.len(), 2);
    assert!(image_events.contains(&Some("CREATING")) && image_events.contains(&Some("SUCCESS")));

    // Deleting the snapshot leaves the instances and the image working; the image keeps the disk.
    let deleted = client.delete_snapshot(&snapshot).await.unwrap().data;
    assert_eq!(
        (deleted.status.as_str(), deleted.target_status.as_str()),
        ("DELETING", "DELETED")
    );
    app.settle().await;
    assert_eq!(
        client.snapshot(&snapshot).await.unwrap_err().status(),
        Some(404)
    );
    assert!(
        client
            .snapshots(&SnapshotQuery::default())
            .await
            .unwrap()
            .data
            .snapshots
            .iter()
            .all(|s| s.id != snapshot)
    );
    assert!(
        app.simulator().has_snapshot(&snapshot),
        "the image holds the disk"
    );
    assert_eq!(client.instance(&copy).await.unwrap().data.status, "ACTIVE");
    let image_now = client.image(&image.id).await.unwrap().data;
    assert_eq!(
        (image_now.status.as_str(), image_now.snapshot_id.as_str()),
        ("SUCCESS", snapshot.as_str())
    );
    let again = deploy_body(&client, from_image("copy-2", "FINLAND-1"))
        .await
        .unwrap();
    app.settle().await;
    let again = client.instance(&again).await.unwrap().data;
    assert_eq!(again.status, "ACTIVE");
    assert_eq!(again.specs.storage_gb, 250);
    // The name of a deleted snapshot is free again.
    successful_snapshot(&app, &client, &source, "golden").await;

    // The last image gone, the disk goes too; instances made from it stay.
    let gone = client.delete_image(&image.id).await.unwrap().data;
    assert_eq!(gone.status, "DELETED");
    app.settle().await;
    assert!(!app.simulator().has_snapshot(&snapshot));
    assert_eq!(
        client.image(&image.id).await.unwrap_err().status(),
        Some(404)
    );
    let e = deploy_body(&client, from_image("copy-3", "FINLAND-1"))
        .await
        .unwrap_err();
    assert_eq!(failure(e).2, ["image_name"]);
    for id in [&copy, &again.instance_id, &by_id] {
        assert_eq!(client.instance(id).await.unwrap().data.status, "ACTIVE");
    }
    // A snapshot's own image survives it, then frees the disk when deleted.
    client.delete_snapshot(&with_image.id).await.unwrap();
    app.settle().await;
    assert!(app.simulator().has_snapshot(&with_image.id));
    client.delete_image(&nightly.id).await.unwrap();
    app.settle().await;
    assert!(!app.simulator().has_snapshot(&with_image.id));
    assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

async fn restore_makes_a_new_instance_with_the_snapshots_specs(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "DE", "100").await;
    let source = active_instance(&app, &client, "trainer", "FINLAND-1", 4, 300).await;
    let snapshot = successful_snapshot(&app, &client, &source, "weekly").await;

    let raw = client
        .raw(
            Method::POST,
            &format!("/api/snapshots/{snapshot}/restore/"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    let d = &raw.body["data"];
    let restored = d["instance_id"].as_str().unwrap().to_string();
    assert_ne!(restored, source);
    assert_eq!(d["status"], "CREATING");
    assert_eq!(d["boot_source"], "snapshot");
    assert_eq!(d["region"], "FINLAND-1");
    assert_eq!(d["operating_system"], IMAGE);
    assert_eq!(d["ip_address"], Value::Null);
    assert_eq!(
        d["specs"],
        json!({"gpu_type": "H100-SXM5-80GB", "gpu_count": 4, "ram_gb": 740, "vcpus": 176, "storage_gb": 300})
    );
    assert_eq!(d["billing"]["currency"], "EUR");
    app.settle().await;
    let new = client.instance(&restored).await.unwrap().data;
    let old = client.instance(&source).await.unwrap().data;
    assert_eq!(new.status, "ACTIVE");
    assert_eq!(new.name, "weekly-restored");
    assert_eq!(new.boot_source, "snapshot");
    assert_eq!(new.specs, old.specs);
    assert!(new.ip_address.is_some());
    assert_ne!(new.ip_address, old.ip_address);
    assert_eq!(old.status, "ACTIVE");

    // The default name is taken now; another one is given.
    let e = client.restore_snapshot(&snapshot, None).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("DUPLICATE_NAME")));
    let e = client
        .restore_snapshot(&snapshot, Some("bad name!"))
        .await
        .unwrap_err();
    assert_eq!(
        failure(e),
        (400, "VALIDATION_ERROR".into(), vec!["instance_name".into()])
    );
    let raw = client
        .raw(
            Method::POST,
            &format!("/api/snapshots/{snapshot}/restore/"),
            Some(&json!({"instance_name": "second", "region": "FINLAND-2"})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400, "unknown fields are refused");
    let second = client
        .restore_snapshot(&snapshot, Some("second"))
        .await
        .unwrap()
        .data
        .instance_id;

    // Restoring takes stock like a deploy: 503 without enough GPUs.
    app.admin
        .admin_set_capacity(&SetCapacityRequest {
            capacity: vec![CapacitySetting {
                region: "FINLAND-1".into(),
                gpu_model: "H100-SXM5-80GB".into(),
                total: 12,
            }],
        })
        .await
        .unwrap();
    let e = client
        .restore_snapshot(&snapshot, Some("third"))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(503), Some("GPU_UNAVAILABLE")));
    app.settle().await;
    assert_eq!(
        client.instance(&second).await.unwrap().data.status,
        "ACTIVE"
    );

    // Deleting the snapshot (and the source) leaves the restored instances independent.
    client.delete_snapshot(&snapshot).await.unwrap();
    client.delete_instance(&source).await.unwrap();
    app.settle().await;
    assert!(!app.simulator().has_snapshot(&snapshot));
    for id in [&restored, &second] {
        assert_eq!(client.instance(id).await.unwrap().data.status, "ACTIVE");
    }
    let e = client
        .restore_snapshot(&snapshot, Some("fourth"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    // A restored instance hibernates and comes back like any other.
    client
        .instance_action(&restored, InstanceActionKind::Hibernate)
        .await
        .unwrap();
    app.settle().await;
    client
        .instance_action(&restored, InstanceActionKind::Restore)
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(
        client.instance(&restored).await.unwrap().data.status,
        "ACTIVE"
    );
    let events = client
        .instance_events(&restored, &PageQuery::default())
        .await
        .unwrap()
        .data
        .events;
    assert!(
        events
            .iter()
            .any(|e| e.cause.contains(&format!("restore of snapshot {snapshot}"))),
        "{events:?}"
    );
    assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

async fn profile_balance_and_tier_checks(db: Db) {
    let app = TestApp::start(db).await;

    // 403 and 402 come before the instance is looked at, as at deploy.
    let (bare, account) = app.user(Tier::Advanced).await;
    let e = bare
        .create_snapshot(&snapshot_request("BRK-ZZZZZZD", "s", false))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some("PROFILE_INCOMPLETE"))
    );
    bare.update_profile(&ProfileUpdate {
        address_line: Some(Some("1 Main St".into())),
        postal_code: Some(Some("10001".into())),
        country: Some(Some("US".into())),
        ..Default::default()
    })
    .await
    .unwrap();
    let e = bare
        .create_snapshot(&snapshot_request("BRK-ZZZZZZD", "s", false))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(402), Some("INSUFFICIENT_BALANCE"))
    );
    app.grant(&account, "0.50", Currency::USD).await;
    let e = bare
        .create_snapshot(&snapshot_request("BRK-ZZZZZZD", "s", false))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(402), "below the minimum balance");

    // Legacy snapshots are priced: 10 INR an hour for 100 GB.
    let (legacy, _) = app.funded_user(Tier::Legacy, "IN", "1000").await;
    let instance = deploy_body(
        &legacy,
        json!({
            "gpu_model": "RTX-A6000", "gpu_count": 1, "region": "CANADA-1", "instance_name": "box",
            "image_name": LEGACY_IMAGE
        }),
    )
    .await
    .unwrap();
    app.settle().await;
    let snapshot = successful_snapshot(&app, &legacy, &instance, "box snapshot").await;
    let shown = legacy.snapshot(&snapshot).await.unwrap().data;
    assert_eq!(
        (shown.currency, shown.size_gb, shown.tier),
        (Currency::INR, 100, Tier::Legacy)
    );
    assert_eq!(shown.hourly_rate.0, rust_decimal::Decimal::from(10));

    // Restoring checks the profile and the balance too (an account moved to the US has USD 0; the API
    // refuses that move for an account with credits, so it is made in the database).
    let legacy_account = legacy.profile().await.unwrap().data.id;
    app.set_country_in_database(&legacy_account, "US").await;
    let e = legacy.restore_snapshot(&snapshot, None).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(402), Some("INSUFFICIENT_BALANCE"))
    );
    let e = legacy
        .create_snapshot(&snapshot_request(&instance, "again", false))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(402));
    app.set_country_in_database(&legacy_account, "IN").await;
    legacy
        .replace_profile(&ProfileUpdate {
            name: Some(Some("Test User".into())),
            country: Some(Some("IN".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = legacy.restore_snapshot(&snapshot, None).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some("PROFILE_INCOMPLETE"))
    );
    let e = legacy
        .create_image(&image_request(&snapshot, "no profile needed"))
        .await;
    assert!(e.is_ok(), "images cost nothing of their own: {e:?}");

    // A key of the other tier acts in its own tier only.
    let advanced = legacy.with_api_key(
        app.admin
            .admin_create_api_key(
                &legacy.profile().await.unwrap().data.id,
                "adv",
                Tier::Advanced,
            )
            .await
            .unwrap()
            .data
            .key
            .key,
    );
    let e = advanced
        .create_image(&image_request(&snapshot, "other tier"))
        .await
        .unwrap_err();
    assert_eq!(
        failure(e),
        (400, "VALIDATION_ERROR".into(), vec!["snapshot_id".into()])
    );
    app.stop().await;
}

async fn relationships_single_and_batch(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let instance = active_instance(&app, &client, "box", "FINLAND-1", 1, 100).await;
    let plain = successful_snapshot(&app, &client, &instance, "plain").await;
    let imaged = successful_snapshot(&app, &client, &instance, "imaged").await;
    let a = client
        .create_image(&image_request(&imaged, "a"))
        .await
        .unwrap()
        .data;
    app.clock.advance_ms(1000);
    let b = client
        .create_image(&image_request(&imaged, "b"))
        .await
        .unwrap()
        .data;

    let raw = client
        .raw(
            Method::GET,
            &format!("/api/snapshots/{imaged}/image-relationship/"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(
        raw.body["data"],
        json!({
            "snapshot_id": imaged, "snapshot_name": "imaged", "snapshot_status": "SUCCESS",
            "has_images": true, "image_count": 2,
            "images": [
                {"id": a.id, "name": "a", "status": "SUCCESS", "region": "FINLAND-1"},
                {"id": b.id, "name": "b", "status": "SUCCESS", "region": "FINLAND-1"}
            ]
        })
    );
    let none = client
        .snapshot_image_relationship(&plain)
        .await
        .unwrap()
        .data;
    assert!(!none.has_images && none.image_count == 0 && none.images.is_empty());
    let e = client
        .snapshot_image_relationship("BRK-ZZZZZZS")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));

    // Batch: in the order asked, repeats once, unknown ids reported rather than failing.
    let raw = client
        .raw(
            Method::POST,
            "/api/snapshots/image-relationships/",
            Some(&json!({"snapshot_ids": [plain, "BRK-ZZZZZZS", imaged, plain]})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 200, "{}", raw.text);
    let data = &raw.body["data"];
    assert_eq!(data["not_found"], json!(["BRK-ZZZZZZS"]));
    let relationships = data["relationships"].as_array().unwrap();
    assert_eq!(relationships.len(), 2);
    assert_eq!(relationships[0]["snapshot_id"], plain.as_str());
    assert_eq!(relationships[0]["has_images"], false);
    assert_eq!(relationships[1]["image_count"], 2);
    for body in [
        json!({"snapshot_ids": []}),
        json!({}),
        json!({"snapshot_ids": vec!["x"; 101]}),
    ] {
        let raw = client
            .raw(
                Method::POST,
                "/api/snapshots/image-relationships/",
                Some(&body),
            )
            .await
            .unwrap();
        assert_eq!(raw.status, 400, "{body}");
        assert!(
            raw.body["errors"]["snapshot_ids"].is_array(),
            "{}",
            raw.text
        );
    }

    // A deleted image leaves the relationship; a deleted snapshot is not found.
    client.delete_image(&a.id).await.unwrap();
    let one = client
        .snapshot_image_relationship(&imaged)
        .await
        .unwrap()
        .data;
    assert_eq!(
        (one.image_count, one.images[0].id.as_str()),
        (1, b.id.as_str())
    );
    client.delete_snapshot(&plain).await.unwrap();
    app.settle().await;
    let batch = client
        .snapshot_image_relationships(&[plain.clone(), imaged.clone()])
        .await
        .unwrap()
        .data;
    assert_eq!(batch.not_found, [plain]);
    assert_eq!(batch.relationships.len(), 1);
    app.stop().await;
}

async fn other_accounts_snapshots_and_images_are_not_found(db: Db) {
    let app = TestApp::start(db).await;
    let (owner, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let (other, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let instance = active_instance(&app, &owner, "mine", "FINLAND-1", 1, 100).await;
    let snapshot = successful_snapshot(&app, &owner, &instance, "mine").await;
    let image = owner
        .create_image(&image_request(&snapshot, "mine"))
        .await
        .unwrap()
        .data;

    let errors = vec![
        other.snapshot(&snapshot).await.unwrap_err(),
        other.delete_snapshot(&snapshot).await.unwrap_err(),
        other
            .restore_snapshot(&snapshot, Some("stolen"))
            .await
            .unwrap_err(),
        other
            .snapshot_image_relationship(&snapshot)
            .await
            .unwrap_err(),
        other
            .create_snapshot(&snapshot_request(&instance, "stolen", false))
            .await
            .unwrap_err(),
        other
            .create_image(&image_request(&snapshot, "stolen"))
            .await
            .unwrap_err(),
        other.image(&image.id).await.unwrap_err(),
        other.delete_image(&image.id).await.unwrap_err(),
    ];
    for e in errors {
        assert_eq!(
            (e.status(), e.code()),
            (Some(404), Some("NOT_FOUND")),
            "{e}"
        );
    }
    let batch = other
        .snapshot_image_relationships(std::slice::from_ref(&snapshot))
        .await
        .unwrap()
        .data;
    assert_eq!(
        (batch.relationships.len(), batch.not_found),
        (0, vec![snapshot.clone()])
    );
    assert_eq!(
        other
            .snapshots(&SnapshotQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0
    );
    assert_eq!(
        other
            .images(&ImageQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0
    );
    // Another account's image does not boot: by name or id it is unknown to the caller.
    for name in [image.name.as_str(), image.id.as_str()] {
        let e = deploy_body(
            &other,
            json!({
                "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "x1",
                "image_name": name
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(failure(e).2, ["image_name"]);
    }
    // Names are per account.
    let theirs = active_instance(&app, &other, "theirs", "FINLAND-1", 1, 100).await;
    let their_snapshot = successful_snapshot(&app, &other, &theirs, "mine").await;
    other
        .create_image(&image_request(&their_snapshot, "mine"))
        .await
        .unwrap();
    assert_eq!(
        owner.image(&image.id).await.unwrap().data.snapshot_id,
        snapshot
    );
    app.stop().await;
}

async fn driver_failures_retry_then_error(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let instance = active_instance(&app, &client, "box", "FINLAND-1", 1, 100).await;

    // A transient failure is retried after a backoff.
    app.simulator()
        .inject(Fault::FailNth {
            operation: Operation::CreateSnapshot,
            nth: 1,
            permanent: false,
        })
        .unwrap();
    let flaky = client
        .create_snapshot(&snapshot_request(&instance, "flaky", false))
        .await
        .unwrap()
        .data
        .id;
    app.settle().await;
    assert_eq!(snapshot_status(&client, &flaky).await, "CREATING");
    app.clock.advance_ms(120_000);
    app.settle().await;
    assert_eq!(snapshot_status(&client, &flaky).await, "SUCCESS");
    assert_eq!(app.simulator().calls(Operation::CreateSnapshot), 2);

    // A permanent failure leaves the snapshot in ERROR with the reason, and its image too.
    app.simulator()
        .inject(Fault::FailNth {
            operation: Operation::CreateSnapshot,
            nth: 1,
            permanent: true,
        })
        .unwrap();
    let broken = client
        .create_snapshot(&snapshot_request(&instance, "broken", true))
        .await
        .unwrap()
        .data
        .id;
    app.settle().await;
    let shown = client.snapshot(&broken).await.unwrap().data;
    assert_eq!(shown.status, "ERROR");
    assert!(
        shown
            .status_reason
            .as_deref()
            .unwrap()
            .starts_with("create failed: injected failure"),
        "{:?}",
        shown.status_reason
    );
    let image = client
        .images(&ImageQuery::default())
        .await
        .unwrap()
        .data
        .images
        .remove(0);
    assert_eq!(
        (image.name.as_str(), image.status.as_str()),
        ("broken", "ERROR")
    );
    assert!(image.status_reason.is_some());
    let e = client.restore_snapshot(&broken, None).await.unwrap_err();
    assert_eq!(e.code(), Some("INVALID_STATE"));
    assert!(e.to_string().contains("ERROR"), "{e}");
    let e = deploy_body(&client, json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "x1",
        "image_name": "broken"
    }))
    .await
    .unwrap_err();
    assert_eq!(e.code(), Some("INVALID_STATE"));

    // Both can be deleted; a failed delete is retried, then the snapshot is gone.
    client.delete_image(&image.id).await.unwrap();
    app.simulator()
        .inject(Fault::FailNth {
            operation: Operation::DeleteSnapshot,
            nth: 1,
            permanent: false,
        })
        .unwrap();
    client.delete_snapshot(&broken).await.unwrap();
    app.settle().await;
    app.clock.advance_ms(120_000);
    app.settle().await;
    assert_eq!(
        client.snapshot(&broken).await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        client.instance(&instance).await.unwrap().data.status,
        "ACTIVE"
    );
    app.stop().await;
}

async fn another_server_boots_from_snapshots_it_did_not_take(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "100").await;
    let instance = active_instance(&app, &client, "box", "FINLAND-1", 1, 100).await;
    let kept = successful_snapshot(&app, &client, &instance, "kept").await;
    let imaged = successful_snapshot(&app, &client, &instance, "imaged").await;
    client
        .create_image(&image_request(&imaged, "golden"))
        .await
        .unwrap();
    client.delete_snapshot(&imaged).await.unwrap();
    app.settle().await;

    // A second server on the same database (a replica, or this one restarted), whose simulated data
    // centre never saw the snapshots: it learns of them from the database before booting from them.
    let other = app.replica().await;
    let other_sim = other.simulator.clone().unwrap();
    assert!(!other_sim.has_snapshot(&kept) && !other_sim.has_snapshot(&imaged));
    let key = app
        .admin
        .admin_create_api_key(&account, "replica", Tier::Advanced)
        .await
        .unwrap()
        .data
        .key
        .key;
    let replica = Client::builder(format!("http://{}", other.addr))
        .api_key(key)
        .max_retries(0)
        .build()
        .unwrap();
    let from_image = deploy_body(
        &replica,
        json!({
            "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "copy",
            "image_name": "golden"
        }),
    )
    .await
    .unwrap();
    let restored = replica
        .restore_snapshot(&kept, None)
        .await
        .unwrap()
        .data
        .instance_id;
    other.settle().await.unwrap();
    for id in [&from_image, &restored] {
        let shown = replica.instance(id).await.unwrap().data;
        assert_eq!(
            (shown.status.as_str(), shown.status_reason),
            ("ACTIVE", None),
            "{id}"
        );
    }
    assert!(other_sim.has_snapshot(&kept) && other_sim.has_snapshot(&imaged));
    other.shutdown().await;
    app.stop().await;
}
