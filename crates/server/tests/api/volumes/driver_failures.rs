//! Driver failures: a transient one is retried after a backoff, a failed resize leaves the volume as it
//! was, another permanent one leaves the volume in error (and it can still be deleted), a failed clone
//! puts its source back to rest.

use barrack_api::Tier;
use barrack_api::billing::BillingQuery;
use barrack_compute::Operation;
use barrack_core::clock::Clock;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{active_instance, available_volume, status, volume};

on_both_databases!(driver_failures_retry_then_error,);

async fn driver_failures_retry_then_error(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;

    // A transient failure is retried after a backoff.
    app.fail_next(Operation::CreateVolume, false);
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

    // A resize that fails for good leaves the volume as it was: available at its old size, billed for
    // it, with the reason and an event saying why; it can be resized again.
    app.fail_next(Operation::ResizeVolume, true);
    let rate = client.volume(&id).await.unwrap().data.hourly_rate;
    client.resize_volume(&id, 20).await.unwrap();
    app.settle().await;
    let shown = client.volume(&id).await.unwrap().data;
    assert_eq!((shown.status.as_str(), shown.size_gb), ("available", 10));
    assert_eq!(shown.hourly_rate, rate);
    assert!(
        shown
            .status_reason
            .as_deref()
            .unwrap()
            .starts_with("resize failed: injected failure"),
        "{:?}",
        shown.status_reason
    );
    let events = crate::common::events_of(&client).await;
    let failed = events
        .iter()
        .find(|e| e.resource_id == id && e.cause.starts_with("resize failed: "))
        .expect("an event of the failed resize");
    assert_eq!(
        (failed.from_status.as_deref(), failed.to_status.as_deref()),
        (Some("resizing"), Some("available"))
    );
    let open: Vec<_> = client
        .volume_billing(&BillingQuery::default())
        .await
        .unwrap()
        .records
        .into_iter()
        .filter(|r| r.volume_id == id && r.end_time.is_none())
        .map(|r| r.size_gb)
        .collect();
    assert_eq!(open, [10], "billed for its old size");
    client.resize_volume(&id, 30).await.unwrap();
    app.settle().await;
    let shown = client.volume(&id).await.unwrap().data;
    assert_eq!((shown.status.as_str(), shown.size_gb), ("available", 30));
    assert_eq!(shown.status_reason, None);

    // Attached, it stays attached and in-use.
    let instance = active_instance(&app, &client, "host", "FINLAND-1").await;
    let attached =
        available_volume(&app, &client, volume("attached", 10, "FINLAND-1", "HDD")).await;
    client
        .attach_volumes(&instance, std::slice::from_ref(&attached))
        .await
        .unwrap();
    app.settle().await;
    app.fail_next(Operation::ResizeVolume, true);
    client.resize_volume(&attached, 20).await.unwrap();
    app.settle().await;
    let shown = client.volume(&attached).await.unwrap().data;
    assert_eq!((shown.status.as_str(), shown.size_gb), ("in-use", 10));
    assert_eq!(
        shown.attachment.map(|a| a.instance_id),
        Some(instance.clone())
    );
    client
        .detach_volumes(&instance, std::slice::from_ref(&attached))
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(status(&client, &attached).await, "available");

    // A permanent failure of another operation leaves the volume in error with the reason; it can
    // still be deleted.
    app.fail_next(Operation::CreateVolume, true);
    let broken = client
        .create_volume(&volume("broken", 10, "FINLAND-1", "HDD"))
        .await
        .unwrap()
        .data
        .id;
    app.settle().await;
    let shown = client.volume(&broken).await.unwrap().data;
    assert_eq!(shown.status, "error");
    assert!(
        shown
            .status_reason
            .as_deref()
            .unwrap()
            .starts_with("create failed: injected failure"),
        "{:?}",
        shown.status_reason
    );
    let e = client.resize_volume(&broken, 30).await.unwrap_err();
    assert_eq!(e.code(), Some("INVALID_STATE"));

    // A failed clone puts its source back to rest.
    let source = available_volume(&app, &client, volume("source", 10, "FINLAND-1", "HDD")).await;
    app.fail_next(Operation::CloneVolume, true);
    let copy = client.clone_volume(&source, "copy").await.unwrap().data.id;
    app.settle().await;
    assert_eq!(status(&client, &copy).await, "error");
    assert_eq!(status(&client, &source).await, "available");

    for id in [&id, &copy, &broken, &attached] {
        client.delete_volume(id).await.unwrap();
    }
    app.settle().await;
    assert_eq!(client.volume(&id).await.unwrap_err().status(), Some(404));
    assert_eq!(client.volume(&copy).await.unwrap_err().status(), Some(404));
    assert_eq!(
        client.volume(&broken).await.unwrap_err().status(),
        Some(404)
    );
    app.stop().await;
}
