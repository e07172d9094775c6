//! Capacity operators set through the API reaches the simulated data centre: its hosts follow it on every
//! server of the database, so a deploy the stock accepted is placed; a model a region does not offer can
//! have no capacity there, and stock never shows it.

use barrack_api::Tier;
use barrack_api::catalog::{CapacitySetting, CatalogQuery, SetCapacityRequest};
use barrack_api::instances::DeployRequest;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_client::{Client, InstanceActionKind};
use barrack_compute::sim::SimHost;
use serde_json::json;

use crate::common::{Db, TestApp, client_of, deploy_id};
use crate::on_both_databases;

on_both_databases!(
    capacity_set_through_the_api_is_placed_on_every_server,
    capacity_of_a_model_the_region_does_not_offer_is_refused_and_never_in_stock,
    capacity_above_configured_hosts_is_refused,
    a_replica_drops_machines_of_instances_deleted_elsewhere_to_place_a_deploy,
    every_server_lists_the_gpus_in_use_the_database_holds,
);

const H200: &str = "H200-141GB";

fn setting(region: &str, gpu_model: &str, total: u32) -> SetCapacityRequest {
    SetCapacityRequest {
        capacity: vec![CapacitySetting {
            region: region.into(),
            gpu_model: gpu_model.into(),
            total,
        }],
    }
}

fn deploy_request(name: &str) -> DeployRequest {
    serde_json::from_value(json!({
        "gpu_model": H200, "gpu_count": 8, "region": "FINLAND-3", "instance_name": name,
        "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "laptop"
    }))
    .unwrap()
}

/// (GPUs, used) of the hosts a server lists for FINLAND-3's H200s.
async fn h200_hosts(admin: &Client) -> Vec<(u32, u32)> {
    admin
        .admin_hosts()
        .await
        .unwrap()
        .data
        .hosts
        .into_iter()
        .filter(|h| h.region == "FINLAND-3" && h.gpu_model.as_deref() == Some(H200))
        .map(|h| (h.gpus, h.gpus_used))
        .collect()
}

async fn capacity_set_through_the_api_is_placed_on_every_server(db: Db) {
    let app = TestApp::start(db).await;
    assert_eq!(
        h200_hosts(&app.admin).await,
        [(8, 0), (8, 0)],
        "16 configured"
    );
    app.admin
        .admin_set_capacity(&setting("FINLAND-3", H200, 24))
        .await
        .unwrap();
    assert_eq!(h200_hosts(&app.admin).await, [(8, 0), (8, 0), (8, 0)]);

    // A second server on the same database (a replica, or this one restarted) was configured with 16: it
    // places what the ledger says, and the instances of the first land on the hosts it knows.
    let other = app.replica().await;
    let other_admin = client_of(&other, &app.admin_key);
    let (_, _, key) = app.funded_user_with_key(Tier::Advanced, "US", "5000").await;
    let replica = client_of(&other, &key);
    replica
        .create_ssh_key(&CreateSshKeyRequest {
            name: "laptop".into(),
            public_key: None,
        })
        .await
        .unwrap();
    let mut ids = vec![];
    for name in ["one", "two", "three"] {
        ids.push(deploy_id(&replica, &deploy_request(name)).await);
    }
    other.settle().await.unwrap();
    for id in &ids {
        let shown = replica.instance(id).await.unwrap().data;
        assert_eq!(
            (shown.status.as_str(), shown.status_reason),
            ("ACTIVE", None),
            "{id}: a 201 is never followed by an ERROR for lack of stock"
        );
    }
    // (Each server simulates the machines it acted on, so the one that placed them lists them.)
    assert_eq!(h200_hosts(&other_admin).await, [(8, 8), (8, 8), (8, 8)]);
    let full = replica.deploy(&deploy_request("four")).await.unwrap_err();
    assert_eq!(full.status(), Some(503), "{full}");

    // Lowering it retires hosts: the instances on them keep running, nothing new goes there.
    app.admin
        .admin_set_capacity(&setting("FINLAND-3", H200, 16))
        .await
        .unwrap();
    assert_eq!(h200_hosts(&other_admin).await, [(8, 8), (8, 8), (0, 8)]);
    let sim = other.simulator.clone().unwrap();
    let on_retired = ids
        .iter()
        .find(|id| sim.instance(id).unwrap().1.unwrap().ends_with("-03"))
        .unwrap();
    replica.delete_instance(on_retired).await.unwrap();
    other.settle().await.unwrap();
    assert_eq!(h200_hosts(&other_admin).await, [(8, 8), (8, 8)]);
    crate::common::assert_derived_state_consistent(app.services().store()).await;
    other.shutdown().await;
    app.stop().await;
}

async fn capacity_of_a_model_the_region_does_not_offer_is_refused_and_never_in_stock(db: Db) {
    let app = TestApp::start(db).await;
    let refused = app
        .admin
        .admin_set_capacity(&setting("FINLAND-3", "B300-262GB", 8))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(400), "{refused}");
    let message = refused.field_errors().unwrap()["capacity[0].gpu_model"].join(" ");
    assert!(
        message.contains("FINLAND-3 does not offer B300-262GB")
            && message.contains("H100-SXM5-80GB, H200-141GB"),
        "{message}"
    );

    // A row left in the database (set before the rule, or for a model the configuration dropped since)
    // is not stock: deploys there are refused.
    app.services()
        .store()
        .set_capacity("FINLAND-3", "B300-262GB", 8, 0)
        .await
        .unwrap();
    let stock = app
        .anonymous()
        .gpu_stocks(&CatalogQuery {
            region: Some("FINLAND-3".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .stocks;
    let models: Vec<&str> = stock.iter().map(|s| s.gpu_model.as_str()).collect();
    assert_eq!(models, ["H100-SXM5-80GB", H200]);
    app.stop().await;
}

async fn capacity_above_configured_hosts_is_refused(db: Db) {
    let app = TestApp::start_with(db, |config| {
        config.simulator.hosts = vec![SimHost {
            name: "fi3-h200-01".into(),
            region: "FINLAND-3".into(),
            gpu_model: H200.into(),
            gpus: 8,
        }];
    })
    .await;
    // Seeded at the first start within what the hosts have: the configuration's 16 H200s are 8, and
    // models no host offers have no stock.
    let capacity = app.admin.admin_capacity().await.unwrap().data.capacity;
    let total = |region: &str, model: &str| {
        capacity
            .iter()
            .find(|c| c.region == region && c.gpu_model == model)
            .map(|c| c.total)
    };
    assert_eq!(total("FINLAND-3", H200), Some(8));
    assert_eq!(total("FINLAND-1", "H100-SXM5-80GB"), Some(0));
    let refused = app
        .admin
        .admin_set_capacity(&setting("FINLAND-3", H200, 16))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(400), "{refused}");
    let message = refused.field_errors().unwrap()["capacity[0].total"].join(" ");
    assert!(message.contains("at most 8"), "{message}");
    app.admin
        .admin_set_capacity(&setting("FINLAND-3", H200, 8))
        .await
        .unwrap();
    app.stop().await;
}

/// A server that once acted on an instance keeps its machine in memory; when another replica deletes the
/// instance, the first still counts its GPUs on the host. A deploy the stock accepted, placed on that
/// server, drops the machines of instances the database no longer has and is placed, instead of failing
/// for lack of room that only its memory lacks.
async fn a_replica_drops_machines_of_instances_deleted_elsewhere_to_place_a_deploy(db: Db) {
    let app = TestApp::start(db).await;
    // One host of 8 H200s.
    app.admin
        .admin_set_capacity(&setting("FINLAND-3", H200, 8))
        .await
        .unwrap();
    let other = app.replica().await;
    let (a, _, key) = app.funded_user_with_key(Tier::Advanced, "US", "5000").await;
    a.create_ssh_key(&CreateSshKeyRequest {
        name: "laptop".into(),
        public_key: None,
    })
    .await
    .unwrap();
    let b = client_of(&other, &key);
    let mut small = deploy_request("small");
    small.gpu_count = 1;
    let id = deploy_id(&a, &small).await;
    app.settle().await;
    // The second server stops it (and so holds its machine), the first deletes it.
    b.instance_action(&id, barrack_client::InstanceActionKind::Stop)
        .await
        .unwrap();
    other.settle().await.unwrap();
    a.delete_instance(&id).await.unwrap();
    app.settle().await;
    assert_eq!(a.instance(&id).await.unwrap_err().status(), Some(404));

    // The whole host, deployed through the second server: placed there.
    let whole = deploy_id(&b, &deploy_request("whole")).await;
    other.settle().await.unwrap();
    let shown = b.instance(&whole).await.unwrap().data;
    assert_eq!(
        (shown.status.as_str(), shown.status_reason.as_deref()),
        ("ACTIVE", None)
    );
    crate::common::assert_derived_state_consistent(app.services().store()).await;
    other.shutdown().await;
    app.stop().await;
}

/// The hosts' GPUs in use are the same through every server of the database: a machine placed through
/// one and hibernated through another shows as placed, then as free, on both.
async fn every_server_lists_the_gpus_in_use_the_database_holds(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _, key) = app.funded_user_with_key(Tier::Advanced, "US", "1000").await;
    client
        .create_ssh_key(&CreateSshKeyRequest {
            name: "laptop".into(),
            public_key: None,
        })
        .await
        .unwrap();
    let id = deploy_id(&client, &deploy_request("placed-here")).await;
    app.settle().await;
    let other = app.replica().await;
    let there = client_of(&other, &app.admin_key);
    let used = |hosts: Vec<(u32, u32)>| hosts.iter().map(|(_, used)| used).sum::<u32>();
    assert_eq!(used(h200_hosts(&app.admin).await), 8);
    assert_eq!(
        used(h200_hosts(&there).await),
        8,
        "placed through the other server"
    );

    client_of(&other, &key)
        .instance_action(&id, InstanceActionKind::Hibernate)
        .await
        .unwrap();
    other.settle().await.unwrap();
    assert_eq!(used(h200_hosts(&there).await), 0);
    assert_eq!(
        used(h200_hosts(&app.admin).await),
        0,
        "hibernated through the other server"
    );
    other.shutdown().await;
    app.stop().await;
}
