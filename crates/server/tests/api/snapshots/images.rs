//! Custom images made of snapshots: they deploy instances and outlive their snapshot; which images a
//! snapshot has, one at a time and in a batch.

use barrack_api::Tier;
use barrack_api::images::ImageQuery;
use barrack_api::snapshots::SnapshotQuery;
use barrack_core::clock::Clock;
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, TestApp, assert_derived_state_consistent};
use crate::on_both_databases;

use super::{
    IMAGE, active_instance, deploy_body, failure, image_request, snapshot_request, ssh_key,
    successful_snapshot,
};

on_both_databases!(
    images_deploy_instances_and_outlive_their_snapshot,
    relationships_single_and_batch,
);

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
    let events = crate::common::events_of(&client).await;
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
