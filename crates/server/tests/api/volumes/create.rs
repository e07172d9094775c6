//! Creating, listing and showing volumes: names, field rules, bootable volumes, types from the
//! configuration and events; resizing (volumes only grow) and cloning.

use barrack_api::volumes::VolumeQuery;
use barrack_api::{Currency, Tier};
use barrack_compute::Operation;
use barrack_core::clock::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{IMAGE, available_volume, failure, status, volume};

on_both_databases!(create_list_show_and_types, resize_grows_and_clone_copies,);

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
