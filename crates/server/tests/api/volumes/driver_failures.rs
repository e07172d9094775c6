//! Driver failures: a transient one is retried after a backoff, a permanent one leaves the volume in error
//! (and it can still be deleted), a failed clone puts its source back to rest.

use barrack_api::Tier;
use barrack_compute::Operation;
use barrack_compute::sim::Fault;
use barrack_core::clock::Clock;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{available_volume, status, volume};

on_both_databases!(driver_failures_retry_then_error,);

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
