//! Provisioning at scale and driver deadlines, on a serving server with the real clock: machines boot
//! without holding worker slots, and a driver call that hangs is abandoned at its deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use barrack_api::Tier;
use barrack_api::instances::{DeployRequest, Instance, InstanceQuery};
use barrack_client::{Client, InstanceActionKind};
use barrack_core::config::CapacityConfig;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::common::{Db, TestApp, create_key_k, deploy_id};
use crate::on_both_databases;

on_both_databases!(
    two_thousand_machines_boot_at_once_with_32_slots,
    a_hung_stop_is_abandoned_at_its_deadline_then_retried_or_dead_lettered,
    a_machine_whose_boot_the_driver_times_is_looked_at_when_it_is_due,
    a_boot_the_driver_expects_late_still_times_out,
);

const MODEL: &str = "H100-SXM5-80GB";
const REGION: &str = "FINLAND-1";

fn deploy_request(name: &str) -> DeployRequest {
    serde_json::from_value(json!({
        "gpu_model": MODEL, "gpu_count": 1, "region": REGION, "instance_name": name,
        "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "k", "public_ip": false
    }))
    .unwrap()
}

/// Instances of the caller in `status`.
async fn count(client: &Client, status: &str) -> u64 {
    client
        .instances(&InstanceQuery {
            status: Some(status.into()),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .pagination
        .total
}

async fn two_thousand_machines_boot_at_once_with_32_slots(db: Db) {
    const INSTANCES: u32 = 2_000;
    const SLOTS: u32 = 32;
    const BOOT_MS: u64 = 3_000;
    let app = TestApp::start_in_real_time(db, |config| {
        config.simulator.delays.create_ms = BOOT_MS;
        config.jobs.concurrency = SLOTS;
        config.jobs.poll_interval_ms = 50;
        config.jobs.observe_interval_ms = 250;
        config.capacity = vec![CapacityConfig {
            region: REGION.into(),
            gpus: BTreeMap::from([(MODEL.into(), INSTANCES)]),
        }];
    })
    .await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "10000000").await;
    create_key_k(&client).await;

    // How many machines boot at once, sampled while the deploys come in and the machines come up.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let most_booting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sim = app.running.as_ref().unwrap().simulator.clone().unwrap();
    let sampler = tokio::spawn({
        let (sampling, most_booting) = (sampling.clone(), most_booting.clone());
        async move {
            while sampling.load(Ordering::Relaxed) {
                most_booting.fetch_max(sim.booting(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(16));
    let mut deploys = tokio::task::JoinSet::new();
    for n in 0..INSTANCES {
        let (client, gate) = (client.clone(), gate.clone());
        deploys.spawn(async move {
            let _slot = gate.acquire().await.unwrap();
            client
                .deploy(&deploy_request(&format!("boot-{n}")))
                .await
                .expect("deploy accepted")
        });
    }
    deploys.join_all().await;
    let accepted = started.elapsed();

    // Holding a slot for each boot, 32 slots bring up 2,000 machines of 3 s in 2,000 / 32 × 3 s = 187.5 s
    // at best; booting side by side they are all up in a fraction of that.
    let held_slots = Duration::from_millis(u64::from(INSTANCES / SLOTS) * BOOT_MS);
    let limit = held_slots / 3;
    loop {
        let active = count(&client, "ACTIVE").await;
        if active == u64::from(INSTANCES) {
            break;
        }
        assert!(
            started.elapsed() < accepted + limit,
            "{active} of {INSTANCES} ACTIVE {:?} after the last deploy was accepted",
            started.elapsed() - accepted
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_active = started.elapsed();
    eprintln!(
        "{INSTANCES} deploys accepted in {accepted:?}; all ACTIVE {:?} after that",
        all_active - accepted
    );
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let most_booting = most_booting.load(Ordering::Relaxed);
    eprintln!("at most {most_booting} machines booted at once");
    assert!(
        most_booting > 4 * SLOTS as usize,
        "{most_booting} machines booted at once, with {SLOTS} slots"
    );
    assert_eq!(count(&client, "ERROR").await, 0);
    // Every one booted for its boot time: none is ACTIVE before the simulator says it is up.
    assert!(all_active >= Duration::from_millis(BOOT_MS));
    let jobs = app.admin.admin_jobs().await.unwrap().data.jobs;
    assert!(jobs.is_empty(), "nothing pending or dead: {jobs:?}");
    crate::common::assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

/// Waits until the instance is `status`, for at most `within`: the instance then, and how long it took.
async fn wait_for_status(
    client: &Client,
    id: &str,
    status: &str,
    within: Duration,
) -> (Instance, Duration) {
    let started = Instant::now();
    loop {
        let instance = client.instance(id).await.unwrap().data;
        if instance.status == status {
            return (instance, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "{id} is {} ({:?}), not {status}, after {within:?}",
            instance.status,
            instance.status_reason
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_machine_whose_boot_the_driver_times_is_looked_at_when_it_is_due(db: Db) {
    // Looks every 30 s, unless the driver knows better: the simulator's machines are up after 1 s.
    let app = TestApp::start_in_real_time(db, |config| {
        config.simulator.delays.create_ms = 1_000;
        config.jobs.poll_interval_ms = 50;
        config.jobs.observe_interval_ms = 30_000;
    })
    .await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let id = deploy_id(&client, &deploy_request("timed")).await;
    let (_, active) = wait_for_status(&client, &id, "ACTIVE", Duration::from_secs(15)).await;
    assert!(
        active >= Duration::from_millis(900),
        "ACTIVE after {active:?}, before its boot ended"
    );
    // The look found the machine up: nothing was asked of the driver again.
    let calls = app
        .simulator()
        .calls(barrack_compute::Operation::CreateInstance);
    assert_eq!(calls, 1, "the machine was asked for once");
    app.stop().await;
}

async fn a_boot_the_driver_expects_late_still_times_out(db: Db) {
    // A boot of a minute against a timeout of 2 s: the job waits no longer than the timeout for it.
    let app = TestApp::start_in_real_time(db, |config| {
        config.simulator.delays.create_ms = 60_000;
        config.jobs.poll_interval_ms = 50;
        config.jobs.observe_interval_ms = 500;
        config.jobs.boot_timeout_seconds = 2;
    })
    .await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let id = deploy_id(&client, &deploy_request("late")).await;
    let (instance, failed) = wait_for_status(&client, &id, "ERROR", Duration::from_secs(20)).await;
    assert!(
        failed >= Duration::from_secs(2),
        "ERROR after {failed:?}, before the timeout"
    );
    let reason = instance.status_reason.unwrap_or_default();
    assert!(reason.contains("did not come up within 2 s"), "{reason}");
    crate::common::assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

async fn a_hung_stop_is_abandoned_at_its_deadline_then_retried_or_dead_lettered(db: Db) {
    let app = TestApp::start_in_real_time(db, |config| {
        config.simulator.delays.create_ms = 0;
        config.deadlines.stop_instance_ms = 300;
        config.jobs.max_attempts = 2;
        config.jobs.poll_interval_ms = 50;
        config.jobs.observe_interval_ms = 50;
    })
    .await;
    // Retries come after a backoff of about a second.
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let wait_for = |id: String, status: &'static str| {
        let client = client.clone();
        async move {
            wait_for_status(&client, &id, status, Duration::from_secs(20))
                .await
                .0
        }
    };
    let id = deploy_id(&client, &deploy_request("hung")).await;
    wait_for(id.clone(), "ACTIVE").await;

    // One hung call: abandoned after 300 ms, the retry stops the instance.
    app.admin
        .admin_inject_fault(&json!({"kind": "hang", "operation": "stop_instance", "count": 1}))
        .await
        .unwrap();
    client
        .instance_action(&id, InstanceActionKind::Stop)
        .await
        .unwrap();
    wait_for(id.clone(), "SHUTOFF").await;
    assert_eq!(
        app.simulator()
            .calls(barrack_compute::Operation::StopInstance),
        2
    );
    client
        .instance_action(&id, InstanceActionKind::Start)
        .await
        .unwrap();
    wait_for(id.clone(), "ACTIVE").await;

    // Every attempt hangs: the job is dead-lettered with the reason, and the instance is in ERROR.
    app.admin
        .admin_inject_fault(&json!({"kind": "hang", "operation": "stop_instance", "count": 5}))
        .await
        .unwrap();
    client
        .instance_action(&id, InstanceActionKind::Stop)
        .await
        .unwrap();
    let failed = wait_for(id.clone(), "ERROR").await;
    let reason = failed.status_reason.unwrap();
    assert_eq!(
        reason,
        "stop failed: stop_instance did not finish within its deadline of 300 ms; abandoned"
    );
    let jobs = app.admin.admin_jobs().await.unwrap().data.jobs;
    let dead: Vec<_> = jobs.iter().filter(|j| j.status == "failed").collect();
    assert_eq!(dead.len(), 1, "{jobs:?}");
    assert_eq!(dead[0].last_error.as_deref(), Some(reason.as_str()));
    crate::common::assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}
