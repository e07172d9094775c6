//! Attaching volumes to instances, detaching and deleting them, the rules of attachment, and deploys that
//! boot from a volume or attach existing and new ones.

use barrack_api::Tier;
use barrack_api::volumes::{CreateVolumeRequest, VolumeQuery};
use barrack_client::InstanceActionKind;
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

use super::{IMAGE, active_instance, available_volume, failure, status, volume};

on_both_databases!(
    attach_detach_and_delete,
    attachment_rules,
    deploy_boots_from_a_volume_and_attaches_existing_and_new_ones,
    an_attach_overtaken_by_the_instances_delete_leaves_the_volume_available,
    a_deleted_instances_volume_is_available_when_the_deletion_completes,
    a_grown_boot_volume_is_the_instances_os_disk,
);

/// The instance is deleted after the attach was accepted and before it ran: nothing was attached, so the
/// volume is left available (with the reason) and attaches elsewhere, instead of staying in error.
async fn an_attach_overtaken_by_the_instances_delete_leaves_the_volume_available(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let doomed = active_instance(&app, &client, "doomed", "FINLAND-1").await;
    let other = active_instance(&app, &client, "other", "FINLAND-1").await;
    let v = available_volume(&app, &client, volume("v", 100, "FINLAND-1", "NVMe")).await;

    client
        .attach_volumes(&doomed, std::slice::from_ref(&v))
        .await
        .unwrap();
    assert_eq!(status(&client, &v).await, "attaching");
    client.delete_instance(&doomed).await.unwrap();
    app.settle().await;
    let shown = client.volume(&v).await.unwrap().data;
    assert_eq!(shown.status, "available", "{shown:?}");
    assert!(shown.attachment.is_none(), "{shown:?}");
    assert!(
        shown
            .status_reason
            .as_deref()
            .is_some_and(|r| r.contains("attach failed")),
        "{shown:?}"
    );
    assert_eq!(app.simulator().volume_attachment(&v), Some(None));

    client
        .attach_volumes(&other, std::slice::from_ref(&v))
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(status(&client, &v).await, "in-use");
    app.stop().await;
}

/// The deletion's own transaction ends the attachment: between it and the next reconciliation the
/// volume never shows an attachment to a deleted instance (which could be neither detached nor deleted).
async fn a_deleted_instances_volume_is_available_when_the_deletion_completes(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let doomed = active_instance(&app, &client, "doomed", "FINLAND-1").await;
    let v = available_volume(&app, &client, volume("v", 100, "FINLAND-1", "NVMe")).await;
    client
        .attach_volumes(&doomed, std::slice::from_ref(&v))
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(status(&client, &v).await, "in-use");

    client.delete_instance(&doomed).await.unwrap();
    // The jobs alone, without the reconciliation that `settle` also runs.
    let running = app.running.as_ref().expect("running");
    running.runner.run_until_idle().await.unwrap();
    assert!(
        client.instance(&doomed).await.is_err(),
        "the instance is deleted"
    );
    let shown = client.volume(&v).await.unwrap().data;
    assert_eq!(shown.status, "available", "{shown:?}");
    assert!(shown.attachment.is_none(), "{shown:?}");
    client.delete_volume(&v).await.unwrap();
    app.settle().await;
    app.stop().await;
}

async fn attach_detach_and_delete(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let instance = active_instance(&app, &client, "trainer", "FINLAND-1").await;
    let a = available_volume(&app, &client, volume("a", 100, "FINLAND-1", "NVMe")).await;
    let b = available_volume(&app, &client, volume("b", 50, "FINLAND-1", "HDD")).await;

    let raw = client
        .raw(
            Method::POST,
            &format!("/api/instances/{instance}/attach-volumes/"),
            Some(&json!({"volume_ids": [a, b]})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(raw.body["data"]["instance_id"], instance.as_str());
    assert_eq!(raw.body["data"]["action"], "attach");
    assert_eq!(
        raw.body["data"]["volumes"][0],
        json!({"volume_id": a, "action": "attach", "status": "attaching", "target_status": "in-use"})
    );
    assert_eq!(status(&client, &a).await, "attaching");
    app.settle().await;
    for id in [&a, &b] {
        let shown = client.volume(id).await.unwrap().data;
        assert_eq!(shown.status, "in-use");
        let attachment = shown.attachment.unwrap();
        assert_eq!(
            (
                attachment.instance_id.as_str(),
                attachment.instance_name.as_str(),
                attachment.instance_status.as_str(),
                attachment.boot_volume
            ),
            (instance.as_str(), "trainer", "ACTIVE", false)
        );
        assert_eq!(
            app.simulator().volume_attachment(id),
            Some(Some(instance.clone()))
        );
    }
    let listed = client.volumes(&VolumeQuery::default()).await.unwrap().data;
    assert!(listed.volumes.iter().all(|v| v.attachment.is_some()));

    // Attached volumes cannot be deleted, nor attached again.
    let e = client.delete_volume(&a).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("RESOURCE_IN_USE")));
    let e = client
        .attach_volumes(&instance, std::slice::from_ref(&a))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409));

    // An attached volume can grow, and stays attached.
    client.resize_volume(&b, 60).await.unwrap();
    app.settle().await;
    let shown = client.volume(&b).await.unwrap().data;
    assert_eq!((shown.status.as_str(), shown.size_gb), ("in-use", 60));

    let detached = client
        .detach_volumes(&instance, std::slice::from_ref(&a))
        .await
        .unwrap()
        .data;
    assert_eq!(
        (
            detached.volumes[0].status.as_str(),
            detached.volumes[0].target_status.as_str()
        ),
        ("detaching", "available")
    );
    app.settle().await;
    let shown = client.volume(&a).await.unwrap().data;
    assert_eq!(
        (shown.status.as_str(), shown.attachment),
        ("available", None)
    );
    assert_eq!(app.simulator().volume_attachment(&a), Some(None));
    let e = client
        .detach_volumes(&instance, std::slice::from_ref(&a))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("INVALID_STATE")));

    let deleted = client.delete_volume(&a).await.unwrap().data;
    assert_eq!(
        (deleted.status.as_str(), deleted.target_status.as_str()),
        ("deleting", "deleted")
    );
    app.settle().await;
    assert_eq!(client.volume(&a).await.unwrap_err().status(), Some(404));
    assert_eq!(app.simulator().volume_attachment(&a), None);
    let listed = client.volumes(&VolumeQuery::default()).await.unwrap().data;
    assert_eq!(listed.pagination.total, 1);
    // A deleted volume's name is free again.
    available_volume(&app, &client, volume("a", 10, "FINLAND-1", "HDD")).await;

    // Deleting the instance ends its volumes' attachments.
    client.delete_instance(&instance).await.unwrap();
    app.settle().await;
    let shown = client.volume(&b).await.unwrap().data;
    assert_eq!(
        (shown.status.as_str(), shown.attachment),
        ("available", None)
    );
    client.delete_volume(&b).await.unwrap();
    app.settle().await;
    assert_eq!(client.volume(&b).await.unwrap_err().status(), Some(404));
    app.stop().await;
}

async fn attachment_rules(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let instance = active_instance(&app, &client, "worker", "FINLAND-1").await;
    let here = available_volume(&app, &client, volume("here", 10, "FINLAND-1", "HDD")).await;
    let there = available_volume(&app, &client, volume("there", 10, "FINLAND-2", "HDD")).await;

    // Same region only; nothing is attached when one volume is refused.
    let e = client
        .attach_volumes(&instance, &[here.clone(), there.clone()])
        .await
        .unwrap_err();
    assert_eq!(
        failure(e),
        (400, "VALIDATION_ERROR".into(), vec!["volume_ids[1]".into()])
    );
    assert_eq!(status(&client, &here).await, "available");
    // The list must name volumes, once each.
    for ids in [vec![], vec![here.clone(), here.clone()]] {
        let e = client.attach_volumes(&instance, &ids).await.unwrap_err();
        assert_eq!(failure(e).0, 400);
    }
    let raw = client
        .raw(
            Method::POST,
            &format!("/api/instances/{instance}/detach-volumes/"),
            Some(&json!({})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400);
    assert!(raw.body["errors"]["volume_ids"].is_array(), "{}", raw.text);
    let e = client
        .attach_volumes(&instance, &["BRK-ZZZZZZV".to_string()])
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    let e = client
        .attach_volumes("BRK-ZZZZZZD", std::slice::from_ref(&here))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));

    // A volume attaching to one instance cannot go to another.
    let other = active_instance(&app, &client, "other", "FINLAND-1").await;
    client
        .attach_volumes(&instance, std::slice::from_ref(&here))
        .await
        .unwrap();
    let e = client
        .attach_volumes(&other, std::slice::from_ref(&here))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("RESOURCE_IN_USE")));
    let e = client
        .detach_volumes(&other, std::slice::from_ref(&here))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("INVALID_STATE")));
    app.settle().await;
    assert_eq!(status(&client, &here).await, "in-use");

    // The instance must be ACTIVE.
    client
        .instance_action(&instance, InstanceActionKind::Stop)
        .await
        .unwrap();
    app.settle().await;
    let spare = available_volume(&app, &client, volume("spare", 10, "FINLAND-1", "HDD")).await;
    for e in [
        client
            .attach_volumes(&instance, std::slice::from_ref(&spare))
            .await
            .unwrap_err(),
        client
            .detach_volumes(&instance, std::slice::from_ref(&here))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(
            (e.status(), e.code()),
            (Some(409), Some("INVALID_STATE")),
            "{e}"
        );
        assert!(e.to_string().contains("SHUTOFF"), "{e}");
    }
    assert_eq!(status(&client, &spare).await, "available");
    assert_eq!(status(&client, &here).await, "in-use");
    app.stop().await;
}

async fn deploy_boots_from_a_volume_and_attaches_existing_and_new_ones(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let volume = |name: &str, size: u32, bootable: bool| CreateVolumeRequest {
        name: name.into(),
        size,
        region: "FINLAND-1".into(),
        volume_type: "NVMe".into(),
        bootable,
        image_name: bootable.then(|| IMAGE.to_string()),
        labels: Default::default(),
    };
    let boot = available_volume(&app, &client, volume("root-disk", 200, true)).await;
    let data = available_volume(&app, &client, volume("datasets", 1024, false)).await;

    // The boot volume named again as a data volume: a 400 at the field, not a conflict to retry.
    let twice = json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "twice",
        "volume_id": boot, "boot_from_volume": true, "existing_volumes": [data, boot]
    });
    let raw = client
        .raw(reqwest::Method::POST, "/api/deploy-server/", Some(&twice))
        .await
        .unwrap();
    assert_eq!(raw.status, 400, "{}", raw.text);
    assert!(
        raw.body["errors"].get("existing_volumes[1]").is_some(),
        "{}",
        raw.text
    );

    let body = json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "from-volume",
        "volume_id": boot, "boot_from_volume": true, "existing_volumes": [data],
        "volumes": [{"name": "scratch", "size": 100, "volume_type": "HDD"}]
    });
    let raw = client
        .raw(reqwest::Method::POST, "/api/deploy-server/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    let d = &raw.body["data"];
    assert_eq!(d["boot_source"], "volume");
    assert_eq!(d["operating_system"], IMAGE);
    assert_eq!(d["specs"]["storage_gb"], 200);
    let storage = &d["billing"]["breakdown"]["storage"];
    // 200 GB of NVMe at 0.30/TB-h; 1 TB of NVMe 0.30/h; 100 GB of HDD at 0.08/TB-h.
    assert_eq!(
        storage["os_volume"],
        json!({"size_gb": 200, "type": "NVMe", "hourly_rate": 0.0586})
    );
    assert_eq!(storage["data_volumes"].as_array().unwrap().len(), 2);
    assert_eq!(storage["data_volumes_total"], 0.3078);
    assert_eq!(d["billing"]["total_hourly_rate"], 2.8564);
    let id = d["instance_id"].as_str().unwrap().to_string();

    app.settle().await;
    let instance = client.instance(&id).await.unwrap().data;
    assert_eq!(instance.status, "ACTIVE");
    assert_eq!(instance.billing.breakdown.storage.data_volumes.len(), 2);
    for volume_id in [&boot, &data] {
        let shown = client.volume(volume_id).await.unwrap().data;
        assert_eq!(shown.status, "in-use", "{volume_id}");
        assert_eq!(shown.attachment.unwrap().instance_id, id);
    }
    let scratch = client
        .volumes(&Default::default())
        .await
        .unwrap()
        .data
        .volumes
        .into_iter()
        .find(|v| v.name == "scratch")
        .unwrap();
    assert_eq!(scratch.status, "in-use");

    // A volume in use cannot boot or join another instance.
    let again = json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "second",
        "volume_id": boot, "boot_from_volume": true
    });
    assert_eq!(
        client
            .raw(reqwest::Method::POST, "/api/deploy-server/", Some(&again))
            .await
            .unwrap()
            .status,
        409
    );
    let bad = json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "third",
        "image_name": IMAGE, "ssh_key": "x", "volumes": [{"name": "tape", "size": 5, "volume_type": "Tape"}]
    });
    let raw = client
        .raw(reqwest::Method::POST, "/api/deploy-server/", Some(&bad))
        .await
        .unwrap();
    assert_eq!(raw.status, 400);
    assert!(
        raw.body["errors"].get("volumes[0].size").is_some()
            && raw.body["errors"].get("volumes[0].volume_type").is_some(),
        "{}",
        raw.text
    );

    // Deleting the instance keeps its volumes, detached.
    client.delete_instance(&id).await.unwrap();
    app.settle().await;
    for volume_id in [&boot, &data, &scratch.id] {
        assert_eq!(status(&client, volume_id).await, "available", "{volume_id}");
    }
    app.stop().await;
}

/// An instance booted from a volume that then grew: its OS disk is the volume, so the instance shows the
/// new size and its price, and its snapshots, the images made from them and their restores copy a disk of
/// that size.
async fn a_grown_boot_volume_is_the_instances_os_disk(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let post = |path: String, body: serde_json::Value| {
        let client = client.clone();
        async move { client.raw(Method::POST, &path, Some(&body)).await.unwrap() }
    };
    let created = post(
        "/api/volumes/".into(),
        json!({"name": "bootv", "size": 100, "region": "FINLAND-1", "volume_type": "NVMe",
               "bootable": true, "image_name": IMAGE}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let boot = created.body["data"]["id"].as_str().unwrap().to_string();
    app.settle().await;
    let deployed = post(
        "/api/deploy-server/".into(),
        json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
               "instance_name": "booted", "volume_id": boot, "boot_from_volume": true}),
    )
    .await;
    assert_eq!(deployed.status, 201, "{}", deployed.text);
    let id = deployed.body["data"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.settle().await;
    let before = client
        .raw(Method::GET, &format!("/api/instances/{id}/"), None)
        .await
        .unwrap();
    assert_eq!(before.body["data"]["specs"]["storage_gb"], 100);

    let resized = post(format!("/api/volumes/{boot}/resize/"), json!({"size": 150})).await;
    assert_eq!(resized.status, 200, "{}", resized.text);
    app.settle().await;
    let volume = client.volume(&boot).await.unwrap().data;
    assert_eq!((volume.size_gb, volume.status.as_str()), (150, "in-use"));

    // The instance shows the disk it has, at the price it is billed.
    let after = client
        .raw(Method::GET, &format!("/api/instances/{id}/"), None)
        .await
        .unwrap();
    let d = &after.body["data"];
    assert_eq!(d["specs"]["storage_gb"], 150, "{}", after.text);
    let os_volume = &d["billing"]["breakdown"]["storage"]["os_volume"];
    assert_eq!(os_volume["size_gb"], 150, "{}", after.text);
    let rate = |v: &serde_json::Value| v.as_f64().unwrap();
    let volume_rate = rate(&serde_json::to_value(volume.hourly_rate).unwrap());
    assert!(
        (rate(&os_volume["hourly_rate"]) - volume_rate).abs() < 1e-9,
        "the volume's own rate: {os_volume} vs {volume_rate}"
    );
    let old_os =
        rate(&before.body["data"]["billing"]["breakdown"]["storage"]["os_volume"]["hourly_rate"]);
    let grown_by = rate(&d["billing"]["total_hourly_rate"])
        - rate(&before.body["data"]["billing"]["total_hourly_rate"]);
    assert!(
        (grown_by - (volume_rate - old_os)).abs() < 1e-4,
        "the total grew by the disk's difference: {}",
        after.text
    );

    // A snapshot copies the disk as it is now, and so do an image of it and a restore.
    let snapshot = post(
        "/api/snapshots/".into(),
        json!({"name": "grown", "instance_id": id}),
    )
    .await;
    assert_eq!(snapshot.status, 201, "{}", snapshot.text);
    assert_eq!(snapshot.body["data"]["source"]["storage_gb"], 150);
    let snapshot_id = snapshot.body["data"]["id"].as_str().unwrap().to_string();
    app.settle().await;
    let image = post(
        "/api/images/".into(),
        json!({"snapshot_id": snapshot_id, "name": "grown image"}),
    )
    .await;
    assert_eq!(image.status, 201, "{}", image.text);
    assert_eq!(image.body["data"]["size_gb"], 150, "{}", image.text);
    let from_image = |name: &str, size: Option<u32>| {
        let mut body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
                              "instance_name": name, "image_name": "grown image", "ssh_key": "k"});
        if let Some(size) = size {
            body["os_volume"] = json!({"size": size});
        }
        body
    };
    let small = post("/api/deploy-server/".into(), from_image("small", Some(120))).await;
    assert_eq!(small.status, 400, "{}", small.text);
    assert!(
        small.body["errors"].get("os_volume.size").is_some(),
        "{}",
        small.text
    );
    let copy = post("/api/deploy-server/".into(), from_image("copy", None)).await;
    assert_eq!(copy.status, 201, "{}", copy.text);
    assert_eq!(copy.body["data"]["specs"]["storage_gb"], 150);
    // A bootable volume is made from an OS image; the custom image is named as such, not as missing.
    let volume = post(
        "/api/volumes/".into(),
        json!({"name": "boot-copy", "size": 200, "region": "FINLAND-1", "volume_type": "NVMe",
               "bootable": true, "image_name": "grown image"}),
    )
    .await;
    assert_eq!(volume.status, 400, "{}", volume.text);
    let said = volume.body["errors"]["image_name"][0].as_str().unwrap();
    assert!(said.contains("one of your custom images"), "{said}");
    let restored = post(
        format!("/api/snapshots/{snapshot_id}/restore/"),
        json!({"instance_name": "restored"}),
    )
    .await;
    assert_eq!(restored.status, 201, "{}", restored.text);
    assert_eq!(restored.body["data"]["specs"]["storage_gb"], 150);
    assert_eq!(
        restored.body["data"]["billing"]["breakdown"]["storage"]["os_volume"]["size_gb"],
        150
    );
    app.settle().await;

    // An instance whose boot volume grew before resizes followed it (its row still at 100) is brought
    // to its volume's size by migration 0044.
    let store = app.services().store();
    store
        .execute(
            "UPDATE instances SET storage_gb = 100 WHERE id = $1",
            &[id.as_str().into()],
        )
        .await
        .unwrap();
    let migration = barrack_store::MIGRATIONS
        .iter()
        .find(|m| m.version == 44)
        .unwrap();
    let script = match store.backend() {
        barrack_store::Backend::Sqlite => migration.sqlite,
        barrack_store::Backend::Postgres => migration.postgres,
    };
    store.execute_script(script).await.unwrap();
    let shown = client
        .raw(Method::GET, &format!("/api/instances/{id}/"), None)
        .await
        .unwrap();
    assert_eq!(
        shown.body["data"]["specs"]["storage_gb"], 150,
        "{}",
        shown.text
    );
    app.stop().await;
}
