//! The whole life of an instance on a serving server with the real clock, as a user drives it over HTTP:
//! deploy → ACTIVE → stop → start → reboot → hibernate → restore → delete. The simulated machines take
//! real (short) times to boot, so every booting action goes through the driver's readiness.

use std::time::{Duration, Instant};

use barrack_api::Tier;
use barrack_api::instances::DeployRequest;
use barrack_client::{Client, InstanceActionKind};
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

on_both_databases!(the_lifecycle_on_the_simulator);

/// Waits for the instance to reach `status` (failing on ERROR or after `limit`).
async fn reach(client: &Client, id: &str, status: &str, limit: Duration) {
    let started = Instant::now();
    loop {
        let instance = client.instance(id).await.unwrap().data;
        if instance.status == status {
            return;
        }
        assert_ne!(
            instance.status, "ERROR",
            "{id} failed on the way to {status}: {:?}",
            instance.status_reason
        );
        assert!(
            started.elapsed() < limit,
            "{id} is {} after {limit:?}, not {status}",
            instance.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drives one instance through every action and checks what it looks like on the way; `request` names
/// an image and region the server's driver can run, `limit` how long any step may take.
async fn lifecycle(app: &TestApp, request: DeployRequest, limit: Duration) {
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let deployed = client.deploy(&request).await.unwrap().data;
    let id = deployed.instance_id;
    assert_eq!(deployed.status, "CREATING");
    reach(&client, &id, "ACTIVE", limit).await;
    let active = client.instance(&id).await.unwrap().data;
    assert!(active.ip_address.is_some());
    assert_eq!(active.ip_status, "assigned");

    let steps = [
        (InstanceActionKind::Stop, "STOPPING", "SHUTOFF"),
        (InstanceActionKind::Start, "STARTING", "ACTIVE"),
        (InstanceActionKind::Reboot, "REBOOTING", "ACTIVE"),
        (InstanceActionKind::Hibernate, "HIBERNATING", "HIBERNATED"),
        (InstanceActionKind::Restore, "RESTORING", "ACTIVE"),
    ];
    for (action, transitional, resting) in steps {
        let answer = client.instance_action(&id, action).await.unwrap().data;
        assert_eq!(answer.status, transitional, "{action:?}");
        reach(&client, &id, resting, limit).await;
    }
    let hibernated_and_back = client.instance(&id).await.unwrap().data;
    assert!(
        hibernated_and_back.ip_address.is_some(),
        "restored with an address"
    );

    client.delete_instance(&id).await.unwrap();
    let started = Instant::now();
    while client.instance(&id).await.is_ok() {
        assert!(
            started.elapsed() < limit,
            "{id} still there after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.instance(&id).await.unwrap_err().status(), Some(404));

    // Every change is an event, oldest first.
    let events = client
        .instance_events(&id, &Default::default())
        .await
        .unwrap()
        .data
        .events;
    let reached: Vec<&str> = events
        .iter()
        .filter_map(|e| e.to_status.as_deref())
        .collect();
    assert_eq!(
        reached,
        [
            "CREATING",
            "ACTIVE",
            "STOPPING",
            "SHUTOFF",
            "STARTING",
            "ACTIVE",
            "REBOOTING",
            "ACTIVE",
            "HIBERNATING",
            "HIBERNATED",
            "RESTORING",
            "ACTIVE",
            "DELETING",
            "DELETED"
        ]
    );
    crate::common::assert_derived_state_consistent(app.services().store()).await;
}

async fn the_lifecycle_on_the_simulator(db: Db) {
    let app = TestApp::start_in_real_time(db, |config| {
        let delays = &mut config.simulator.delays;
        delays.create_ms = 300;
        delays.start_ms = 200;
        delays.stop_ms = 100;
        delays.reboot_ms = 200;
        delays.hibernate_ms = 100;
        delays.restore_ms = 300;
        delays.delete_ms = 100;
        config.jobs.poll_interval_ms = 50;
        config.jobs.observe_interval_ms = 50;
    })
    .await;
    let request = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "life",
        "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "k"
    }))
    .unwrap();
    lifecycle(&app, request, Duration::from_secs(20)).await;
    app.stop().await;
}
