//! Restoring a snapshot into a new instance with the snapshot's specs, also on a server that did not
//! take it.

use barrack_api::catalog::{CapacitySetting, SetCapacityRequest};
use barrack_api::{PageQuery, Tier};
use barrack_client::{Client, InstanceActionKind};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp, assert_derived_state_consistent};
use crate::on_both_databases;

use super::{IMAGE, active_instance, deploy_body, failure, image_request, successful_snapshot};

on_both_databases!(
    restore_makes_a_new_instance_with_the_snapshots_specs,
    another_server_boots_from_snapshots_it_did_not_take,
);

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
