//! What the driver says about machines: the hosts operators see (and lose), and instance utilisation.

use barrack_api::Tier;
use barrack_api::instances::DeployRequest;
use barrack_client::InstanceActionKind;
use serde_json::json;

use std::sync::Arc;
use std::time::Duration;

use barrack_client::Client;
use barrack_core::clock::Clock;
use barrack_server::StartOptions;

use crate::common::{Db, TestApp, client_of, create_key_k, deploy_id, test_config};
use crate::on_both_databases;

on_both_databases!(
    operators_list_hosts_and_lose_only_known_ones,
    a_lost_hosts_gpus_leave_stock_until_a_reset,
    a_host_lost_through_one_replica_is_lost_on_every_one_and_after_a_restart,
    replicas_act_on_machines_another_replica_changed_since,
    active_instances_report_their_utilisation,
    a_restarted_server_places_new_machines_beside_the_recorded_ones,
);

fn deploy_request(name: &str, gpus: u32) -> DeployRequest {
    serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": gpus, "region": "FINLAND-1", "instance_name": name,
        "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "k"
    }))
    .unwrap()
}

async fn operators_list_hosts_and_lose_only_known_ones(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;

    let hosts = app.admin.admin_hosts().await.unwrap().data.hosts;
    // The configured capacity, split into 8-GPU machines: every region and model has its hosts.
    let configured: u32 = app
        .services()
        .config()
        .capacity
        .iter()
        .flat_map(|c| c.gpus.values())
        .sum();
    assert_eq!(hosts.iter().map(|h| h.gpus).sum::<u32>(), configured);
    assert!(
        hosts
            .iter()
            .all(|h| h.gpus <= 8 && !h.lost && h.gpus_used == 0)
    );
    let first = hosts
        .iter()
        .find(|h| h.region == "FINLAND-1" && h.gpu_model.as_deref() == Some("H100-SXM5-80GB"))
        .expect("a FINLAND-1 H100 host")
        .clone();
    assert_eq!(first.gpus_free, first.gpus);

    let id = deploy_id(&client, &deploy_request("placed", 2)).await;
    app.settle().await;
    let host = client.instance(&id).await.unwrap().data;
    assert_eq!(host.status, "ACTIVE");
    let hosts = app.admin.admin_hosts().await.unwrap().data.hosts;
    let used: Vec<_> = hosts.iter().filter(|h| h.gpus_used > 0).collect();
    assert_eq!(used.len(), 1);
    assert_eq!(
        (used[0].gpus_used, used[0].gpus_free),
        (2, used[0].gpus - 2)
    );

    // An unknown host is a 404 naming it, and nothing is lost.
    let unknown = app
        .admin
        .admin_inject_fault(&json!({"kind": "lose_host", "host": "no-such-host"}))
        .await
        .unwrap_err();
    assert_eq!(unknown.status(), Some(404));
    assert!(unknown.to_string().contains("no-such-host"), "{unknown}");
    assert!(
        app.admin
            .admin_hosts()
            .await
            .unwrap()
            .data
            .hosts
            .iter()
            .all(|h| !h.lost)
    );

    // A known host is lost: listed as such, with nothing free, and its instance goes to ERROR.
    let lost_name = used[0].name.clone();
    app.admin
        .admin_inject_fault(&json!({"kind": "lose_host", "host": lost_name}))
        .await
        .unwrap();
    app.settle().await;
    let hosts = app.admin.admin_hosts().await.unwrap().data.hosts;
    let lost = hosts.iter().find(|h| h.name == lost_name).unwrap();
    assert!(lost.lost);
    assert_eq!((lost.gpus_used, lost.gpus_free), (0, 0));
    let failed = client.instance(&id).await.unwrap().data;
    assert_eq!(failed.status, "ERROR");
    assert_eq!(
        failed.status_reason.as_deref(),
        Some(format!("host {lost_name} lost").as_str())
    );
    let events = client
        .instance_events(&id, &Default::default())
        .await
        .unwrap()
        .data
        .events;
    assert!(
        events
            .iter()
            .any(|e| e.to_status.as_deref() == Some("ERROR")),
        "the loss is an event: {events:?}"
    );

    // Operators only.
    let denied = client.admin_hosts().await.unwrap_err();
    assert_eq!(denied.status(), Some(403));
    app.stop().await;
}

/// FINLAND-1's H100s as operators see them: (allocated, lost, available).
async fn h100_stock(app: &TestApp) -> (u32, u32, u32) {
    let capacity = app.admin.admin_capacity().await.unwrap().data.capacity;
    let row = capacity
        .iter()
        .find(|c| c.region == "FINLAND-1" && c.gpu_model == "H100-SXM5-80GB")
        .expect("FINLAND-1 H100 capacity");
    (row.allocated, row.lost, row.available)
}

async fn a_lost_hosts_gpus_leave_stock_until_a_reset(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100000").await;
    create_key_k(&client).await;
    let hosts = app.admin.admin_hosts().await.unwrap().data.hosts;
    let h100_hosts = hosts
        .iter()
        .filter(|h| h.region == "FINLAND-1" && h.gpu_model.as_deref() == Some("H100-SXM5-80GB"))
        .count() as u32;
    assert!(h100_hosts >= 2, "{hosts:?}");
    let total = h100_hosts * 8;
    assert_eq!(h100_stock(&app).await, (0, 0, total));

    let first = deploy_id(&client, &deploy_request("first", 8)).await;
    app.settle().await;
    let host = client.instance(&first).await.unwrap().data;
    assert_eq!(host.status, "ACTIVE");
    let lost_name = app
        .admin
        .admin_hosts()
        .await
        .unwrap()
        .data
        .hosts
        .into_iter()
        .find(|h| h.gpus_used == 8)
        .expect("the host the instance is on")
        .name;

    // Lost: its 8 GPUs leave stock at once, while its instance still holds them.
    app.admin
        .admin_inject_fault(&json!({"kind": "lose_host", "host": lost_name}))
        .await
        .unwrap();
    assert_eq!(h100_stock(&app).await, (8, 8, total - 16));
    // The reconciler fails the instance, which gives its GPUs back: the host's stay out.
    app.settle().await;
    assert_eq!(client.instance(&first).await.unwrap().data.status, "ERROR");
    assert_eq!(h100_stock(&app).await, (0, 8, total - 8));

    // Every live host can be filled; one more 8-GPU machine is refused at once, not accepted for a host
    // that is gone and failed later.
    let mut live = Vec::new();
    for i in 1..h100_hosts {
        live.push(deploy_id(&client, &deploy_request(&format!("live{i}"), 8)).await);
    }
    let refused = client
        .deploy(&deploy_request("one-too-many", 8))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(503), "{refused}");
    assert_eq!(refused.code(), Some("GPU_UNAVAILABLE"), "{refused}");
    app.settle().await;
    for id in &live {
        assert_eq!(client.instance(id).await.unwrap().data.status, "ACTIVE");
    }
    assert_eq!(h100_stock(&app).await, (total - 8, 8, 0));
    // Sweeps that find the host still lost change nothing.
    app.settle().await;
    assert_eq!(h100_stock(&app).await, (total - 8, 8, 0));

    // A reset brings every simulated host back, with the whole stock.
    app.admin.admin_reset().await.unwrap();
    app.settle().await;
    assert_eq!(h100_stock(&app).await, (0, 0, total));
    app.stop().await;
}

/// A host lost through one server is lost for every server on the database, and for the first one
/// after a restart, until a reset: another replica placed a deploy on it (which then failed with "host
/// lost") while a live host had room, and listed it as live.
async fn a_host_lost_through_one_replica_is_lost_on_every_one_and_after_a_restart(db: Db) {
    let mut app = TestApp::start(db).await;
    let other = app.replica().await;
    let (_, _, key) = app
        .funded_user_with_key(Tier::Advanced, "US", "100000")
        .await;
    let b = client_of(&other, &key);
    create_key_k(&b).await;
    let b_admin = client_of(&other, &app.admin_key);
    let is_h100 = |h: &&barrack_api::instances::Host| {
        h.region == "FINLAND-1" && h.gpu_model.as_deref() == Some("H100-SXM5-80GB")
    };
    let hosts = b_admin.admin_hosts().await.unwrap().data.hosts;
    let h100_hosts: Vec<_> = hosts.iter().filter(is_h100).collect();
    assert!(h100_hosts.len() >= 2, "{hosts:?}");
    // The first in configuration order: the one best-fit placement fills first.
    let lost_name = h100_hosts[0].name.clone();

    app.admin
        .admin_inject_fault(&json!({"kind": "lose_host", "host": lost_name}))
        .await
        .unwrap();
    let lost_on = |hosts: Vec<barrack_api::instances::Host>| {
        let host = hosts.into_iter().find(|h| h.name == lost_name).unwrap();
        (host.lost, host.gpus_free)
    };
    assert_eq!(
        lost_on(b_admin.admin_hosts().await.unwrap().data.hosts),
        (true, 0)
    );

    // Every live host fills up through the other replica; none of its deploys lands on the lost one.
    let mut placed = Vec::new();
    for i in 1..h100_hosts.len() {
        placed.push(deploy_id(&b, &deploy_request(&format!("live{i}"), 8)).await);
    }
    other.settle().await.unwrap();
    for id in &placed {
        let instance = b.instance(id).await.unwrap().data;
        assert_eq!(
            (instance.status.as_str(), instance.status_reason.as_deref()),
            ("ACTIVE", None),
            "{id}"
        );
    }

    // A restarted server still has it lost.
    app.restart_with(|_| {}).await;
    assert_eq!(
        lost_on(app.admin.admin_hosts().await.unwrap().data.hosts),
        (true, 0)
    );

    // A reset through the other replica brings it back everywhere.
    b_admin.admin_reset().await.unwrap();
    assert_eq!(
        lost_on(app.admin.admin_hosts().await.unwrap().data.hosts),
        (false, 8)
    );
    other.shutdown().await;
    app.stop().await;
}

/// Each server simulates machines in its own memory: one that acted on an instance and then saw another
/// replica hibernate, restore, stop or start it acts on it as the database records it, not as it last
/// left it (a stop after another replica's restore was refused as "hibernated", and the instance ended
/// in ERROR).
async fn replicas_act_on_machines_another_replica_changed_since(db: Db) {
    use InstanceActionKind::*;
    let app = TestApp::start(db).await;
    let other = app.replica().await;
    let (a, _, key) = app.funded_user_with_key(Tier::Advanced, "US", "5000").await;
    create_key_k(&a).await;
    let b = client_of(&other, &key);
    let id = deploy_id(&a, &deploy_request("hops", 1)).await;
    app.settle().await;
    assert_eq!(a.instance(&id).await.unwrap().data.status, "ACTIVE");
    let steps = [
        (Hibernate, true, "HIBERNATED"),
        (Restore, false, "ACTIVE"),
        (Stop, true, "SHUTOFF"),
        (Start, false, "ACTIVE"),
        (Hibernate, true, "HIBERNATED"),
        (Restore, false, "ACTIVE"),
        (Reboot, true, "ACTIVE"),
        (Stop, false, "SHUTOFF"),
        (Hibernate, true, "HIBERNATED"),
        (Restore, true, "ACTIVE"),
        (Stop, false, "SHUTOFF"),
        (Start, true, "ACTIVE"),
    ];
    for (i, (action, on_first, reached)) in steps.into_iter().enumerate() {
        let client = if on_first { &a } else { &b };
        client.instance_action(&id, action).await.unwrap();
        if on_first {
            app.settle().await;
        } else {
            other.settle().await.unwrap();
        }
        let shown = a.instance(&id).await.unwrap().data;
        assert_eq!(
            (shown.status.as_str(), shown.status_reason.as_deref()),
            (reached, None),
            "step {i}: {action:?} on the {} server",
            if on_first { "first" } else { "second" }
        );
    }
    crate::common::assert_derived_state_consistent(app.services().store()).await;
    other.shutdown().await;
    app.stop().await;
}

async fn active_instances_report_their_utilisation(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let (other, _) = app.funded_user(Tier::Advanced, "US", "10").await;
    create_key_k(&client).await;
    let id = deploy_id(&client, &deploy_request("busy", 2)).await;
    // Not up yet: no figures.
    let creating = client.instance_metrics(&id).await.unwrap_err();
    assert_eq!(creating.status(), Some(409));
    app.settle().await;

    let metrics = client.instance_metrics(&id).await.unwrap().data;
    assert_eq!(metrics.instance_id, id);
    assert!((0.0..=100.0).contains(&metrics.cpu_percent));
    let spec = client.instance(&id).await.unwrap().data.specs;
    assert_eq!(
        metrics.memory_total_bytes,
        u64::from(spec.ram_gb) * 1024 * 1024 * 1024
    );
    let used = metrics.memory_used_bytes.unwrap();
    assert!(used > 0 && used < metrics.memory_total_bytes);
    assert!(metrics.network_rx_bytes_per_sec.unwrap() >= 0.0);
    assert!((0.0..=100.0).contains(&metrics.gpu_percent.unwrap()));
    assert!(metrics.sampled_at.ends_with('Z'));

    // Another account's instance does not exist for it; a stopped one has no figures.
    assert_eq!(
        other.instance_metrics(&id).await.unwrap_err().status(),
        Some(404)
    );
    client
        .instance_action(&id, InstanceActionKind::Stop)
        .await
        .unwrap();
    app.settle().await;
    let stopped = client.instance_metrics(&id).await.unwrap_err();
    assert_eq!(stopped.status(), Some(409));
    assert!(stopped.to_string().contains("SHUTOFF"), "{stopped}");
    app.stop().await;
}

/// A serving server started on a database with machines on record learns of them behind its listener
/// (reading every instance before answering kept a large installation waiting): the deploys it takes
/// meanwhile are placed only once it knows them, beside the recorded machines, never on their GPUs.
async fn a_restarted_server_places_new_machines_beside_the_recorded_ones(db: Db) {
    let mut app = TestApp::start(db).await;
    let (client, _, key) = app.funded_user_with_key(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    client.deploy(&deploy_request("recorded", 8)).await.unwrap();
    app.settle().await;
    let used = |hosts: &[barrack_api::instances::Host]| -> Vec<(String, u32)> {
        hosts
            .iter()
            .filter(|h| h.gpus_used > 0)
            .map(|h| (h.name.clone(), h.gpus_used))
            .collect()
    };
    let before = used(&app.admin.admin_hosts().await.unwrap().data.hosts);
    assert_eq!(before.len(), 1, "{before:?}");

    // The server stops; another starts with its workers in the background, as `barrackd serve` does.
    app.running.take().unwrap().shutdown().await;
    let serving = barrack_server::start(StartOptions {
        config: test_config(&app.database),
        clock: Some(app.clock.clone() as Arc<dyn Clock>),
        background_work: true,
    })
    .await
    .unwrap();
    let url = format!("http://{}", serving.addr);
    let client = Client::builder(&url)
        .api_key(&key)
        .max_retries(0)
        .build()
        .unwrap();
    // Best fit breaks ties in host order: a server that did not know the recorded machine would put an
    // 8-GPU deploy on the recorded machine's host, the first one.
    let new = deploy_id(&client, &deploy_request("new", 8)).await;
    let mut waited = Duration::ZERO;
    loop {
        let status = client.instance(&new).await.unwrap().data.status;
        if status == "ACTIVE" {
            break;
        }
        assert!(waited < Duration::from_secs(30), "still {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    let admin = Client::builder(&url)
        .api_key(&app.admin_key)
        .max_retries(0)
        .build()
        .unwrap();
    let hosts = admin.admin_hosts().await.unwrap().data.hosts;
    assert!(hosts.iter().all(|h| h.gpus_used <= h.gpus), "{hosts:?}");
    let after = used(&hosts);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.contains(&before[0]), "{after:?}");
    serving.shutdown().await;
    app.database.drop_database().await;
}
