//! Public address pools are ranges, not rows: a start writes nothing for them whatever their size, and
//! only addresses handed out are stored.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use barrack_api::instances::DeployRequest;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_api::{Currency, Tier};
use barrack_client::Client;
use barrack_store::sql::Columns;
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::{Db, TestApp, deploy_id};
use crate::on_both_databases;

on_both_databases!(
    a_16_pool_starts_empty_and_hands_out_addresses_of_its_block,
    an_exhausted_pool_refuses_until_an_address_is_released,
    a_small_pool_hands_out_each_address_once_and_the_balance_is_refused_before_the_address,
);

const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

fn deploy_request(name: &str, key: &str) -> DeployRequest {
    serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": name,
        "image_name": IMAGE, "ssh_key": key, "public_ip": true
    }))
    .unwrap()
}

async fn key(client: &Client) -> String {
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

async fn stored_addresses(app: &TestApp) -> i64 {
    app.services()
        .store()
        .fetch_one("SELECT COUNT(*) FROM public_ip_assignments", &[])
        .await
        .unwrap()
        .int(0)
        .unwrap()
}

async fn a_16_pool_starts_empty_and_hands_out_addresses_of_its_block(db: Db) {
    let app = TestApp::start_with(db, |config| {
        for region in &mut config.regions {
            if region.name == "FINLAND-1" {
                region.public_ip_pool = "10.20.0.0/16".into();
            }
        }
    })
    .await;
    assert_eq!(
        stored_addresses(&app).await,
        0,
        "a pool is not written out at start"
    );
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let key = key(&client).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(deploy_id(&client, &deploy_request(&format!("web{n}"), &key)).await);
    }
    app.settle().await;
    let mut seen = BTreeSet::new();
    for id in &ids {
        let instance = client.instance(id).await.unwrap().data;
        assert_eq!(instance.status, "ACTIVE");
        let address: Ipv4Addr = instance.ip_address.unwrap().parse().unwrap();
        let [a, b, ..] = address.octets();
        assert_eq!((a, b), (10, 20), "{address} is in the region's block");
        assert!(
            address != Ipv4Addr::new(10, 20, 0, 0) && address != Ipv4Addr::new(10, 20, 255, 255),
            "network and broadcast addresses are never handed out"
        );
        assert!(seen.insert(address), "{address} handed out twice");
    }
    assert_eq!(stored_addresses(&app).await, 4, "only assignments are rows");
    let assignments = app
        .services()
        .store()
        .public_ip_assignments()
        .await
        .unwrap();
    for id in &ids {
        assert!(assignments.iter().any(|(_, owner)| owner == id));
    }

    client.delete_instance(&ids[0]).await.unwrap();
    app.settle().await;
    assert_eq!(
        stored_addresses(&app).await,
        3,
        "a deleted instance's address is free again"
    );
    crate::common::assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

/// A server whose FINLAND-1 hands out the addresses of `pool`.
async fn start_with_pool(db: Db, pool: &str) -> TestApp {
    TestApp::start_with(db, |config| {
        for region in &mut config.regions {
            if region.name == "FINLAND-1" {
                region.public_ip_pool = pool.into();
            }
        }
    })
    .await
}

async fn an_exhausted_pool_refuses_until_an_address_is_released(db: Db) {
    // A /30 has two usable addresses.
    let app = start_with_pool(db, "100.72.0.0/30").await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let key = key(&client).await;
    let first = deploy_id(&client, &deploy_request("one", &key)).await;
    client.deploy(&deploy_request("two", &key)).await.unwrap();
    let refused = client
        .deploy(&deploy_request("three", &key))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(503), Some("PUBLIC_IP_UNAVAILABLE"))
    );
    app.settle().await;
    let shown: BTreeSet<String> = client
        .instances(&Default::default())
        .await
        .unwrap()
        .data
        .instances
        .into_iter()
        .filter_map(|i| i.ip_address)
        .collect();
    assert_eq!(
        shown,
        BTreeSet::from(["100.72.0.1".to_string(), "100.72.0.2".to_string()])
    );

    client.delete_instance(&first).await.unwrap();
    app.settle().await;
    client
        .deploy(&deploy_request("three", &key))
        .await
        .expect("the released address is handed out again");
    app.settle().await;
    crate::common::assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

async fn a_small_pool_hands_out_each_address_once_and_the_balance_is_refused_before_the_address(
    db: Db,
) {
    // A /29 has six usable addresses: most deploys' first pick is one taken already, and is searched past.
    let app = start_with_pool(db, "100.72.0.0/29").await;
    let (rich, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let rich_key = key(&rich).await;
    for n in 0..5 {
        rich.deploy(&deploy_request(&format!("rich-{n}"), &rich_key))
            .await
            .expect("a free address is found");
    }
    // Credit for an hour of one instance and a half: the first deploy takes the last address; the second
    // is refused for its balance (402) and not for the pool (503), since the balance is checked first.
    let (poor, poor_id) = app.funded_user(Tier::Advanced, "US", "1").await;
    let poor_key = key(&poor).await;
    let first_hour = rich
        .preflight(&deploy_request("priced", &rich_key))
        .await
        .unwrap()
        .data
        .price_per_hour
        .0;
    let more = (first_hour * Decimal::new(15, 1) - Decimal::ONE).round_dp(2);
    app.grant(&poor_id, &more.to_string(), Currency::USD).await;
    poor.deploy(&deploy_request("poor-0", &poor_key))
        .await
        .expect("the last address");
    let refused = poor
        .deploy(&deploy_request("poor-1", &poor_key))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(402), Some("INSUFFICIENT_BALANCE")),
        "{refused:?}"
    );
    let refused = rich
        .deploy(&deploy_request("rich-5", &rich_key))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(503), Some("PUBLIC_IP_UNAVAILABLE"))
    );
    app.settle().await;
    let mut shown = BTreeSet::new();
    for client in [&rich, &poor] {
        for instance in client
            .instances(&Default::default())
            .await
            .unwrap()
            .data
            .instances
        {
            assert!(shown.insert(instance.ip_address.expect("an address")));
        }
    }
    let expected: BTreeSet<String> = (1..=6).map(|n| format!("100.72.0.{n}")).collect();
    assert_eq!(shown, expected);
    crate::common::assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}
