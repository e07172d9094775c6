//! Public addresses are never handed to two instances, however toggles and deploys interleave.

use std::collections::BTreeSet;

use barrack_api::Tier;
use serde_json::json;

use crate::common::{Db, TestApp, deploy_id};
use crate::on_both_databases;

use super::{deploy_request, failure, key_name};

on_both_databases!(concurrent_toggles_and_deploys_never_share_an_address,);

async fn concurrent_toggles_and_deploys_never_share_an_address(db: Db) {
    // FINLAND-1 hands out the six usable addresses of a /29 (a block no other region uses).
    let app = TestApp::start_with(db, |config| {
        for region in &mut config.regions {
            if region.name == "FINLAND-1" {
                region.public_ip_pool = "100.64.0.8/29".into();
            }
        }
    })
    .await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let key = key_name(&client).await;

    // Four private instances, then four deploys with public addresses and toggles of the private ones,
    // all at once: eight claims on six addresses.
    let mut private = Vec::new();
    for n in 0..4 {
        let mut request = deploy_request(&format!("private{n}"), &key, "FINLAND-1", json!([]));
        request.public_ip = false;
        private.push(deploy_id(&client, &request).await);
    }
    app.settle().await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..4 {
        let client = client.clone();
        let request = deploy_request(&format!("public{n}"), &key, "FINLAND-1", json!([]));
        tasks.spawn(async move {
            client
                .deploy(&request)
                .await
                .map(|d| d.data.instance_id)
                .map_err(failure)
        });
    }
    for id in &private {
        let client = client.clone();
        let id = id.clone();
        tasks.spawn(async move {
            client
                .toggle_public_ip(&id)
                .await
                .map(|t| t.data.instance_id)
                .map_err(failure)
        });
    }
    let mut granted = 0;
    let mut refused = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(_) => granted += 1,
            Err((503, code, _)) => {
                assert_eq!(code, "PUBLIC_IP_UNAVAILABLE");
                refused += 1;
            }
            Err(other) => panic!("unexpected failure {other:?}"),
        }
    }
    assert_eq!(
        (granted, refused),
        (6, 2),
        "exactly the pool's six addresses"
    );
    app.settle().await;

    // Toggling back and forth while deploying more: the pool never hands an address out twice.
    for round in 0..3 {
        let instances = client
            .instances(&Default::default())
            .await
            .unwrap()
            .data
            .instances;
        let mut tasks = tokio::task::JoinSet::new();
        for instance in instances.iter().filter(|i| i.status == "ACTIVE") {
            let client = client.clone();
            let id = instance.instance_id.clone();
            tasks.spawn(async move {
                client
                    .toggle_public_ip(&id)
                    .await
                    .map(|_| ())
                    .map_err(failure)
            });
        }
        for n in 0..2 {
            let client = client.clone();
            let request = deploy_request(&format!("more{round}-{n}"), &key, "FINLAND-1", json!([]));
            tasks.spawn(async move { client.deploy(&request).await.map(|_| ()).map_err(failure) });
        }
        while let Some(result) = tasks.join_next().await {
            if let Err((status, code, _)) = result.unwrap() {
                assert_eq!((status, code.as_str()), (503, "PUBLIC_IP_UNAVAILABLE"));
            }
        }
        app.settle().await;
        let assignments = app
            .services()
            .store()
            .public_ip_assignments()
            .await
            .unwrap();
        assert!(assignments.len() <= 6);
        crate::common::assert_derived_state_consistent(app.services().store()).await;
        // What instances show agrees with the pool: each public address once, and it is theirs.
        let instances = client
            .instances(&Default::default())
            .await
            .unwrap()
            .data
            .instances;
        let mut shown = BTreeSet::new();
        for i in instances
            .iter()
            .filter(|i| i.public_ip && i.status == "ACTIVE")
        {
            let address = i
                .ip_address
                .clone()
                .expect("an ACTIVE public instance has its address");
            assert!(shown.insert(address.clone()), "{address} shown twice");
            assert!(
                assignments.contains(&(address.clone(), i.instance_id.clone())),
                "{address} of {} is not assigned to it",
                i.instance_id
            );
        }
    }
    app.stop().await;
}
