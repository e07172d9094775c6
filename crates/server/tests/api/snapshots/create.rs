//! Taking snapshots: only of active instances, which keep running meanwhile; names, lists and filters,
//! what a snapshot being taken refuses, and the events.

use barrack_api::Tier;
use barrack_api::snapshots::SnapshotQuery;
use barrack_client::InstanceActionKind;
use barrack_compute::Operation;
use barrack_core::clock::Clock;
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{IMAGE, active_instance, failure, image_request, snapshot_request};

on_both_databases!(snapshots_of_active_instances_only,);
on_both_databases!(a_taken_snapshot_or_image_id_is_reported_and_a_taken_name_stays_a_conflict);

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
    assert_eq!(d["hourly_rate"], 0.1, "the advanced tier's snapshot price");
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
    // An empty instance filter would match nothing: refused like every empty filter.
    let empty = SnapshotQuery {
        instance_id: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(
        failure(client.snapshots(&empty).await.unwrap_err()),
        (400, "VALIDATION_ERROR".into(), vec!["instance_id".into()])
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
    let events = crate::common::events_of(&client).await;
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

/// Snapshot and image ids have six random characters, so a new one is now and then taken: the store says
/// so (the service draws another) instead of failing the create as the name's conflict.
async fn a_taken_snapshot_or_image_id_is_reported_and_a_taken_name_stays_a_conflict(db: Db) {
    use barrack_store::{StoreError, images, snapshots};
    let app = TestApp::start(db).await;
    let (client, user) = app.funded_user(Tier::Advanced, "US", "100").await;
    let instance = active_instance(&app, &client, "trainer", "FINLAND-1", 1, 100).await;
    let snapshot = client
        .create_snapshot(&snapshot_request(&instance, "first", true))
        .await
        .unwrap()
        .data
        .id;
    let store = app.services().store();
    let first = store.snapshot_by_id(&snapshot).await.unwrap().unwrap();
    let image = store.image_named(&user, "first").await.unwrap().unwrap();

    // The same ids under other names: nothing written, the caller told.
    let mut tx = store.begin().await.unwrap();
    let mut copy = first.clone();
    copy.name = "second".into();
    assert!(!snapshots::insert(&mut tx, &copy).await.unwrap());
    let mut image_copy = image.clone();
    image_copy.name = "second".into();
    assert!(!images::insert(&mut tx, &image_copy).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        store.snapshot_by_id(&snapshot).await.unwrap().unwrap(),
        first
    );
    assert_eq!(store.image(&user, &image.id).await.unwrap().unwrap(), image);
    assert!(store.image_named(&user, "second").await.unwrap().is_none());

    // Fresh ids with the names in use: still the names' conflicts.
    let mut same_name = first.clone();
    same_name.id = "BRK-ZZZZZZS".into();
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        snapshots::insert(&mut tx, &same_name).await,
        Err(StoreError::Unique(_))
    ));
    drop(tx);
    let mut same_image_name = image.clone();
    same_image_name.id = "BRK-ZZZZZZI".into();
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        images::insert(&mut tx, &same_image_name).await,
        Err(StoreError::Unique(_))
    ));
    drop(tx);

    // Fresh ids and names are written.
    let mut tx = store.begin().await.unwrap();
    same_name.name = "third".into();
    assert!(snapshots::insert(&mut tx, &same_name).await.unwrap());
    same_image_name.name = "third".into();
    assert!(images::insert(&mut tx, &same_image_name).await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.snapshot_by_id("BRK-ZZZZZZS").await.unwrap().is_some());
    assert!(store.image(&user, "BRK-ZZZZZZI").await.unwrap().is_some());
    app.stop().await;
}
