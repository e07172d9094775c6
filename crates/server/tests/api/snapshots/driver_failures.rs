//! Driver failures: a transient one is retried after a backoff, a permanent one leaves the snapshot (and
//! its image) in error; both can still be deleted, and a failed delete is retried.

use barrack_api::Tier;
use barrack_api::images::ImageQuery;
use barrack_compute::Operation;
use barrack_core::clock::Clock;
use serde_json::json;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{active_instance, deploy_body, snapshot_request, snapshot_status};

on_both_databases!(driver_failures_retry_then_error,);

async fn driver_failures_retry_then_error(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let instance = active_instance(&app, &client, "box", "FINLAND-1", 1, 100).await;

    // A transient failure is retried after a backoff.
    app.fail_next(Operation::CreateSnapshot, false);
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
    app.fail_next(Operation::CreateSnapshot, true);
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
    app.fail_next(Operation::DeleteSnapshot, false);
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
