//! Volumes against the simulated data centre in step mode: create, list, resize, clone, attach to and
//! detach from instances, delete; the documented rules and their status codes.

use barrack_api::account::ProfileUpdate;
use barrack_api::instances::DeployRequest;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_api::volumes::{CreateVolumeRequest, VolumeQuery};
use barrack_api::{Currency, PageQuery, Tier};
use barrack_client::{Client, ClientError, InstanceActionKind};
use barrack_compute::Operation;
use barrack_compute::sim::Fault;
use barrack_core::clock::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    create_list_show_and_types,
    resize_grows_and_clone_copies,
    attach_detach_and_delete,
    attachment_rules,
    tier_profile_and_balance_checks,
    other_accounts_volumes_are_not_found,
    driver_failures_retry_then_error,
    deploy_boots_from_a_volume_and_attaches_existing_and_new_ones,
);

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
    let id = client.deploy(&request).await.unwrap().data.instance_id;
    app.settle().await;
    assert_eq!(client.instance(&id).await.unwrap().data.status, "ACTIVE");
    id
}

async fn create_list_show_and_types(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;

    let body =
        json!({"name": "training data", "size": 100, "region": "FINLAND-1", "volume_type": "NVMe"});
    let raw = client
        .raw(Method::POST, "/api/volumes/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    assert_eq!(raw.body["tier"], "advanced");
    let d = &raw.body["data"];
    let id = d["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("BRK-") && id.ends_with('V') && id.len() == 11);
    assert_eq!(d["name"], "training data");
    assert_eq!(d["status"], "creating");
    assert_eq!(d["size_gb"], 100);
    assert_eq!(d["volume_type"], "NVMe");
    assert_eq!(d["region"], "FINLAND-1");
    assert_eq!(d["tier"], "advanced");
    assert_eq!(d["bootable"], false);
    assert_eq!(d["attachment"], Value::Null);
    assert_eq!(
        d["hourly_rate"],
        json!(0.0293),
        "100 GB of NVMe at 0.30 per TB-hour"
    );
    assert_eq!(d["currency"], "USD");
    assert_eq!(d["created_at"], "2025-01-15T10:30:00Z");
    assert_eq!(d["source_volume_id"], Value::Null);

    app.settle().await;
    let shown = client.volume(&id).await.unwrap().data;
    assert_eq!(shown.status, "available");
    assert_eq!(app.simulator().volume_size(&id), Some(100));
    assert_eq!(app.simulator().volume_attachment(&id), Some(None));

    // next_volume_name: the first free of volume1, volume2, ...
    let list = client.volumes(&VolumeQuery::default()).await.unwrap().data;
    assert_eq!(list.pagination.total, 1);
    assert_eq!(list.next_volume_name, "volume1");
    for name in ["volume1", "volume3"] {
        app.clock.advance_ms(1000);
        client
            .create_volume(&volume(name, 10, "FINLAND-2", "HDD"))
            .await
            .unwrap();
    }
    let list = client.volumes(&VolumeQuery::default()).await.unwrap().data;
    assert_eq!(list.pagination.total, 3);
    assert_eq!(list.next_volume_name, "volume2");
    assert_eq!(list.volumes[0].name, "volume3", "newest first");
    let in_finland_2 = VolumeQuery {
        region: Some("FINLAND-2".into()),
        ..Default::default()
    };
    assert_eq!(
        client
            .volumes(&in_finland_2)
            .await
            .unwrap()
            .data
            .volumes
            .len(),
        2
    );
    let creating = VolumeQuery {
        status: Some("creating".into()),
        limit: Some(1),
        ..Default::default()
    };
    let page = client.volumes(&creating).await.unwrap().data;
    assert_eq!(
        (
            page.volumes.len(),
            page.pagination.total,
            page.pagination.total_pages
        ),
        (1, 2, 2)
    );
    let bad = VolumeQuery {
        status: Some("busy".into()),
        ..Default::default()
    };
    assert_eq!(
        failure(client.volumes(&bad).await.unwrap_err()),
        (400, "VALIDATION_ERROR".into(), vec!["status".into()])
    );

    // Names are unique per account across regions.
    let e = client
        .create_volume(&volume("volume1", 10, "FINLAND-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("DUPLICATE_NAME")));

    // Field rules, all reported at once.
    let raw = client
        .raw(
            Method::POST,
            "/api/volumes/",
            Some(
                &json!({"name": "bad/name", "size": 5, "region": "MARS-1", "volume_type": "Tape"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400);
    let mut fields: Vec<&String> = raw.body["errors"].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["name", "region", "size", "volume_type"]);
    let e = client
        .create_volume(&volume(&"x".repeat(51), 10, "FINLAND-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(failure(e).2, ["name"]);
    let e = client
        .create_volume(&volume("huge", 1_048_577, "FINLAND-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(failure(e).2, ["size"]);

    // Bootable volumes: at least 100 GB and an image offered in the region.
    let mut boot = volume("boot", 50, "FINLAND-1", "NVMe");
    boot.bootable = true;
    let e = failure(client.create_volume(&boot).await.unwrap_err());
    assert_eq!(e.2, ["image_name", "size"]);
    boot.size = 100;
    boot.image_name = Some("Ubuntu Server 22.04 LTS R550 CUDA 12.4".into());
    let e = failure(client.create_volume(&boot).await.unwrap_err());
    assert_eq!((e.0, e.2), (400, vec!["image_name".to_string()]));
    boot.image_name = Some(IMAGE.into());
    let created = client.create_volume(&boot).await.unwrap().data;
    assert!(created.bootable);
    assert_eq!(created.image_name.as_deref(), Some(IMAGE));
    let mut data_with_image = volume("imaged", 10, "FINLAND-1", "NVMe");
    data_with_image.image_name = Some(IMAGE.into());
    assert_eq!(
        failure(client.create_volume(&data_with_image).await.unwrap_err()).2,
        ["image_name"]
    );

    // Volume types from the configuration.
    let types = client.volume_types().await.unwrap().data.volume_types;
    let names: Vec<(&str, Tier)> = types.iter().map(|t| (t.name.as_str(), t.tier)).collect();
    assert_eq!(
        names,
        [
            ("SSD", Tier::Legacy),
            ("NVMe", Tier::Advanced),
            ("HDD", Tier::Advanced)
        ]
    );
    let nvme = &types[1];
    assert_eq!(
        nvme.prices[&Currency::USD].0,
        "0.30".parse::<rust_decimal::Decimal>().unwrap()
    );
    assert_eq!(nvme.unit, "per TB per hour");
    assert_eq!(
        (
            nvme.minimum_size_gb,
            nvme.minimum_bootable_size_gb,
            nvme.maximum_size_gb
        ),
        (10, 100, 1_048_576)
    );

    // Every change is an event.
    app.settle().await;
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
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].0, "volume");
    assert_eq!(first[0].1, Some("creating"));
    assert!(first[0].2.starts_with("user:"));
    assert_eq!((first[1].1, first[1].2), (Some("available"), "system"));
    app.stop().await;
}

async fn resize_grows_and_clone_copies(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "DE", "100").await;
    let id = available_volume(&app, &client, volume("data", 100, "FINLAND-1", "NVMe")).await;

    let resized = client.resize_volume(&id, 200).await.unwrap().data;
    assert_eq!(
        (
            resized.action.as_str(),
            resized.status.as_str(),
            resized.target_status.as_str(),
            resized.size_gb
        ),
        ("resize", "resizing", "available", Some(200))
    );
    assert_eq!(status(&client, &id).await, "resizing");
    let busy = client.resize_volume(&id, 300).await.unwrap_err();
    assert_eq!(
        (busy.status(), busy.code()),
        (Some(409), Some("INVALID_STATE"))
    );
    assert!(busy.to_string().contains("resizing"), "{busy}");
    app.settle().await;
    let shown = client.volume(&id).await.unwrap().data;
    assert_eq!((shown.status.as_str(), shown.size_gb), ("available", 200));
    assert_eq!(app.simulator().volume_size(&id), Some(200));
    assert_eq!(shown.currency, Currency::EUR);
    assert_eq!(
        shown.hourly_rate.0,
        "0.0684".parse::<rust_decimal::Decimal>().unwrap(),
        "200 GB of NVMe at 0.35 EUR per TB-hour"
    );

    // Volumes only grow.
    for size in [150, 200] {
        let e = client.resize_volume(&id, size).await.unwrap_err();
        assert_eq!(
            failure(e),
            (400, "VALIDATION_ERROR".into(), vec!["size".into()])
        );
    }
    let raw = client
        .raw(
            Method::POST,
            &format!("/api/volumes/{id}/resize/"),
            Some(&json!({"size": "big"})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400);
    assert!(raw.body["errors"]["size"].is_array(), "{}", raw.text);

    // A clone is a new volume of the same size, type and region; the source is `cloning` meanwhile.
    let raw = client
        .raw(
            Method::POST,
            &format!("/api/volumes/{id}/clone/"),
            Some(&json!({"name": "data copy"})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    let copy: barrack_api::volumes::Volume =
        serde_json::from_value(raw.body["data"].clone()).unwrap();
    assert_ne!(copy.id, id);
    assert_eq!(
        (
            copy.name.as_str(),
            copy.size_gb,
            copy.volume_type.as_str(),
            copy.region.as_str(),
            copy.status.as_str()
        ),
        ("data copy", 200, "NVMe", "FINLAND-1", "creating")
    );
    assert_eq!(copy.source_volume_id.as_deref(), Some(id.as_str()));
    assert_eq!(status(&client, &id).await, "cloning");
    let e = client.delete_volume(&id).await.unwrap_err();
    assert_eq!(e.code(), Some("INVALID_STATE"));
    app.settle().await;
    assert_eq!(status(&client, &id).await, "available");
    assert_eq!(status(&client, &copy.id).await, "available");
    assert_eq!(app.simulator().volume_size(&copy.id), Some(200));
    assert_eq!(app.simulator().calls(Operation::CloneVolume), 1);

    let e = client.clone_volume(&id, "data copy").await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("DUPLICATE_NAME")));
    assert_eq!(
        failure(client.clone_volume(&id, "").await.unwrap_err()).2,
        ["name"]
    );
    assert_eq!(
        client
            .volumes(&VolumeQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        2
    );
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

async fn tier_profile_and_balance_checks(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.user(Tier::Advanced).await;

    // 400: a type or region of the other tier, each named.
    let e = client
        .create_volume(&volume("v", 100, "FINLAND-1", "SSD"))
        .await
        .unwrap_err();
    assert_eq!(
        failure(e),
        (400, "VALIDATION_ERROR".into(), vec!["volume_type".into()])
    );
    let e = client
        .create_volume(&volume("v", 100, "CANADA-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(
        failure(e),
        (400, "VALIDATION_ERROR".into(), vec!["region".into()])
    );

    // 403: the billing profile is incomplete.
    let e = client
        .create_volume(&volume("v", 100, "FINLAND-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some("PROFILE_INCOMPLETE"))
    );

    // 402: no credits, then less than the minimum balance, then less than the first hour.
    client
        .update_profile(&ProfileUpdate {
            address_line: Some(Some("1 Main St".into())),
            postal_code: Some(Some("10001".into())),
            country: Some(Some("US".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = client
        .create_volume(&volume("v", 100, "FINLAND-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(402), Some("INSUFFICIENT_BALANCE"))
    );
    app.grant(&account, "0.50", Currency::USD).await;
    let e = client
        .create_volume(&volume("v", 100, "FINLAND-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(402));
    app.grant(&account, "9.50", Currency::USD).await;
    // A 1 PB NVMe volume costs 307.20 USD an hour.
    let e = client
        .create_volume(&volume("v", 1_048_576, "FINLAND-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(402));
    assert!(e.to_string().contains("307.2"), "{e}");
    let id = available_volume(&app, &client, volume("v", 100, "FINLAND-1", "NVMe")).await;

    // Cloning creates a volume too, with the same checks.
    let (legacy, _) = app.funded_user(Tier::Legacy, "IN", "1000").await;
    let ssd = available_volume(&app, &legacy, volume("ssd", 10, "CANADA-1", "SSD")).await;
    assert_eq!(
        legacy.volume(&ssd).await.unwrap().data.currency,
        Currency::INR
    );
    let e = legacy
        .create_volume(&volume("nvme", 10, "CANADA-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(failure(e).2, ["volume_type"]);
    client
        .replace_profile(&ProfileUpdate {
            name: Some(Some("Test User".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = client.clone_volume(&id, "copy").await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some("PROFILE_INCOMPLETE"))
    );
    app.stop().await;
}

async fn other_accounts_volumes_are_not_found(db: Db) {
    let app = TestApp::start(db).await;
    let (owner, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let (other, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let instance = active_instance(&app, &owner, "mine", "FINLAND-1").await;
    let id = available_volume(&app, &owner, volume("mine", 10, "FINLAND-1", "HDD")).await;
    let theirs = available_volume(&app, &other, volume("theirs", 10, "FINLAND-1", "HDD")).await;

    let mut errors = vec![
        other.volume(&id).await.unwrap_err(),
        other.delete_volume(&id).await.unwrap_err(),
        other.resize_volume(&id, 20).await.unwrap_err(),
        other.clone_volume(&id, "stolen").await.unwrap_err(),
        // Their key on my instance, my volume on their instance, their volume on my instance.
        other
            .attach_volumes(&instance, std::slice::from_ref(&theirs))
            .await
            .unwrap_err(),
        other
            .detach_volumes(&instance, std::slice::from_ref(&id))
            .await
            .unwrap_err(),
        owner
            .attach_volumes(&instance, std::slice::from_ref(&theirs))
            .await
            .unwrap_err(),
    ];
    errors.push(owner.volume(&theirs).await.unwrap_err());
    for e in errors {
        assert_eq!(
            (e.status(), e.code()),
            (Some(404), Some("NOT_FOUND")),
            "{e}"
        );
    }
    assert!(
        other
            .volumes(&VolumeQuery::default())
            .await
            .unwrap()
            .data
            .volumes
            .iter()
            .all(|v| v.id == theirs)
    );
    // Each account has its own names.
    available_volume(&app, &other, volume("mine", 10, "FINLAND-1", "HDD")).await;
    app.stop().await;
}

async fn driver_failures_retry_then_error(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;

    // A transient failure is retried after a backoff.
    app.simulator()
        .inject(Fault::FailNth {
            operation: Operation::CreateVolume,
            nth: 1,
            permanent: false,
        })
        .unwrap();
    let id = client
        .create_volume(&volume("flaky", 10, "FINLAND-1", "HDD"))
        .await
        .unwrap()
        .data
        .id;
    app.settle().await;
    assert_eq!(status(&client, &id).await, "creating");
    app.clock.advance_ms(120_000);
    app.settle().await;
    assert_eq!(status(&client, &id).await, "available");
    assert_eq!(app.simulator().calls(Operation::CreateVolume), 2);

    // A permanent failure leaves the volume in error with the reason; it can still be deleted.
    app.simulator()
        .inject(Fault::FailNth {
            operation: Operation::ResizeVolume,
            nth: 1,
            permanent: true,
        })
        .unwrap();
    client.resize_volume(&id, 20).await.unwrap();
    app.settle().await;
    let shown = client.volume(&id).await.unwrap().data;
    assert_eq!((shown.status.as_str(), shown.size_gb), ("error", 10));
    assert!(
        shown
            .status_reason
            .as_deref()
            .unwrap()
            .starts_with("resize failed: injected failure"),
        "{:?}",
        shown.status_reason
    );
    let e = client.resize_volume(&id, 30).await.unwrap_err();
    assert_eq!(e.code(), Some("INVALID_STATE"));

    // A failed clone puts its source back to rest.
    let source = available_volume(&app, &client, volume("source", 10, "FINLAND-1", "HDD")).await;
    app.simulator()
        .inject(Fault::FailNth {
            operation: Operation::CloneVolume,
            nth: 1,
            permanent: true,
        })
        .unwrap();
    let copy = client.clone_volume(&source, "copy").await.unwrap().data.id;
    app.settle().await;
    assert_eq!(status(&client, &copy).await, "error");
    assert_eq!(status(&client, &source).await, "available");

    for id in [&id, &copy] {
        client.delete_volume(id).await.unwrap();
    }
    app.settle().await;
    assert_eq!(client.volume(&id).await.unwrap_err().status(), Some(404));
    assert_eq!(client.volume(&copy).await.unwrap_err().status(), Some(404));
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
