//! Instance, volume, firewall, rule, account, key and script ids have six random characters (`spec/API.md` §1.5), so in a
//! large installation a new id is sometimes one already taken: the store must say so instead of failing
//! the create as a name conflict (or, for a rule, as an internal error). Snapshots and images:
//! `snapshots::create`.

use barrack_api::Tier;
use barrack_api::instances::DeployRequest;
use barrack_api::volumes::CreateVolumeRequest;
use barrack_store::StoreError;
use barrack_store::instances::RuleRow;
use barrack_store::{firewalls, instances, volumes};
use serde_json::json;

use crate::common::{Db, TestApp, deploy_id};
use crate::on_both_databases;

on_both_databases!(a_taken_id_is_reported_and_a_taken_name_stays_a_conflict);
on_both_databases!(a_taken_volume_id_is_reported_and_a_taken_name_stays_a_conflict);
on_both_databases!(a_taken_rule_id_is_reported_and_leaves_the_holder);
on_both_databases!(a_taken_firewall_id_is_reported_and_a_taken_name_stays_a_conflict);
on_both_databases!(a_taken_account_key_or_script_id_is_reported_and_leaves_the_holder);

async fn a_taken_id_is_reported_and_a_taken_name_stays_a_conflict(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "500").await;
    crate::common::create_key_k(&client).await;
    let request: DeployRequest = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "first",
        "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "k", "public_ip": false
    }))
    .unwrap();
    let id = deploy_id(&client, &request).await;
    let store = app.services().store();
    let first = store
        .instance_by_id(&id)
        .await
        .unwrap()
        .expect("the deployed instance");

    // The same id under another name: nothing is written, and the caller learns the id is taken.
    let mut copy = first.clone();
    copy.name = "second".into();
    let mut tx = store.begin().await.unwrap();
    assert!(!instances::insert(&mut tx, &copy).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        store.instance_by_id(&id).await.unwrap().unwrap().name,
        "first"
    );

    // A fresh id with a name the account uses is still a conflict on the name.
    let mut same_name = first.clone();
    same_name.id = "BRK-ZZZZZZD".into();
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        instances::insert(&mut tx, &same_name).await,
        Err(StoreError::Unique(_))
    ));
    drop(tx);

    // A fresh id and a fresh name is written.
    let mut other = first.clone();
    other.id = "BRK-ZZZZZZD".into();
    other.name = "third".into();
    let mut tx = store.begin().await.unwrap();
    assert!(instances::insert(&mut tx, &other).await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.instance_by_id("BRK-ZZZZZZD").await.unwrap().is_some());
    app.stop().await;
}

async fn a_taken_volume_id_is_reported_and_a_taken_name_stays_a_conflict(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "500").await;
    let request = CreateVolumeRequest {
        name: "first".into(),
        size: 10,
        region: "FINLAND-1".into(),
        volume_type: "NVMe".into(),
        bootable: false,
        image_name: None,
        labels: Default::default(),
    };
    let id = client.create_volume(&request).await.unwrap().data.id;
    let store = app.services().store();
    let first = store
        .volume_by_id(&id)
        .await
        .unwrap()
        .expect("the created volume");

    // The same id under another name: nothing is written, and the caller learns the id is taken.
    let mut copy = first.clone();
    copy.name = "second".into();
    let mut tx = store.begin().await.unwrap();
    assert!(!volumes::insert(&mut tx, &copy).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        store.volume_by_id(&id).await.unwrap().unwrap().name,
        "first"
    );

    // A fresh id with a name the account uses is still a conflict on the name.
    let mut same_name = first.clone();
    same_name.id = "BRK-ZZZZZZV".into();
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        volumes::insert(&mut tx, &same_name).await,
        Err(StoreError::Unique(_))
    ));
    drop(tx);

    // A fresh id and a fresh name is written.
    let mut other = first.clone();
    other.id = "BRK-ZZZZZZV".into();
    other.name = "third".into();
    let mut tx = store.begin().await.unwrap();
    assert!(volumes::insert(&mut tx, &other).await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.volume_by_id("BRK-ZZZZZZV").await.unwrap().is_some());
    app.stop().await;
}

/// A rule of an instance or of a firewall whose id is taken: nothing is written, the holder keeps it, and
/// the caller learns the id is taken (it draws another).
async fn a_taken_rule_id_is_reported_and_leaves_the_holder(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "500").await;
    crate::common::create_key_k(&client).await;
    let request: DeployRequest = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "ruled",
        "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "k", "public_ip": false,
        "security_rules": [{"direction": "ingress", "protocol": "tcp", "port_range_min": 22,
                            "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}]
    }))
    .unwrap();
    let id = deploy_id(&client, &request).await;
    let store = app.services().store();
    let held = store.instance_rules(&id).await.unwrap();
    assert_eq!(held.len(), 1, "the deploy's rule");
    let rule = &held[0];

    // The instance's rule id again, for another rule: refused, the holder kept.
    let mut tx = store.begin().await.unwrap();
    let again = instances::insert_rule(
        &mut tx,
        &rule.id,
        &id,
        ("egress", "IPv4", Some("udp")),
        (Some(53), Some(53)),
        None,
        0,
    )
    .await
    .unwrap();
    assert!(!again, "a taken instance rule id is reported");
    tx.commit().await.unwrap();
    assert_eq!(store.instance_rules(&id).await.unwrap(), held);

    // A firewall's rule under the same id, and under one of the firewall's own: both refused.
    let firewall = client
        .create_firewall(
            &serde_json::from_value(json!({
                "name": "web", "region": "FINLAND-1",
                "rules": [{"direction": "ingress", "protocol": "tcp", "port_range_min": 443,
                           "port_range_max": 443}]
            }))
            .unwrap(),
        )
        .await
        .unwrap()
        .data
        .id;
    let own = store.firewall_rules(&firewall).await.unwrap();
    assert_eq!(own.len(), 1);
    let other = |id: &str| RuleRow {
        id: id.into(),
        direction: "egress".into(),
        ethertype: "IPv4".into(),
        protocol: Some("udp".into()),
        port_range_min: Some(53),
        port_range_max: Some(53),
        remote_ip_prefix: None,
    };
    let mut tx = store.begin().await.unwrap();
    assert!(
        !firewalls::insert_rule(&mut tx, &firewall, &other(&own[0].id), 1, 0)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(store.firewall_rules(&firewall).await.unwrap(), own);

    // A free id is written.
    let mut tx = store.begin().await.unwrap();
    assert!(
        firewalls::insert_rule(&mut tx, &firewall, &other("BRK-ZZZZZZR"), 1, 0)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(store.firewall_rules(&firewall).await.unwrap().len(), 2);
    app.stop().await;
}

async fn a_taken_firewall_id_is_reported_and_a_taken_name_stays_a_conflict(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "500").await;
    let id = client
        .create_firewall(
            &serde_json::from_value(json!({"name": "first", "region": "FINLAND-1"})).unwrap(),
        )
        .await
        .unwrap()
        .data
        .id;
    let store = app.services().store();
    let first = store.firewall_by_id(&id).await.unwrap().unwrap();

    let mut copy = first.clone();
    copy.name = "second".into();
    let mut tx = store.begin().await.unwrap();
    assert!(!firewalls::insert(&mut tx, &copy).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(store.firewall_by_id(&id).await.unwrap().unwrap(), first);

    let mut same_name = first.clone();
    same_name.id = "BRK-ZZZZZZF".into();
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        firewalls::insert(&mut tx, &same_name).await,
        Err(StoreError::Unique(_))
    ));
    drop(tx);

    same_name.name = "third".into();
    let mut tx = store.begin().await.unwrap();
    assert!(firewalls::insert(&mut tx, &same_name).await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.firewall_by_id("BRK-ZZZZZZF").await.unwrap().is_some());
    app.stop().await;
}

/// Accounts, API keys, SSH keys and scripts: a row under a taken id is refused without a unique
/// violation (the service draws another), and the holder keeps its row.
async fn a_taken_account_key_or_script_id_is_reported_and_leaves_the_holder(db: Db) {
    use barrack_api::scripts::ScriptRequest;
    use barrack_store::{accounts, api_keys, scripts, ssh_keys};
    let app = TestApp::start(db).await;
    let (client, user) = app.funded_user(Tier::Advanced, "US", "500").await;
    crate::common::create_key_k(&client).await;
    let script = client
        .create_script(&ScriptRequest {
            name: "setup".into(),
            script: "#!/bin/sh\necho hi\n".into(),
        })
        .await
        .unwrap()
        .data
        .id;
    let store = app.services().store();
    let account = store.account_by_id(&user).await.unwrap().unwrap();
    let ssh_key = store.ssh_key(&user, "k").await.unwrap().unwrap();
    let stored_script = store.script(&user, &script).await.unwrap().unwrap();
    let mut tx = store.begin().await.unwrap();
    let api_key = api_keys::live_for_account(&mut tx, &user)
        .await
        .unwrap()
        .remove(0);
    drop(tx);

    let mut tx = store.begin().await.unwrap();
    let mut other_account = account.clone();
    other_account.email = "someone-else@example.com".into();
    assert!(!accounts::insert(&mut tx, &other_account).await.unwrap());
    let mut other_api_key = api_key.clone();
    other_api_key.name = "other".into();
    other_api_key.secret_hash = "another hash".into();
    assert!(!api_keys::insert(&mut tx, &other_api_key).await.unwrap());
    let mut other_ssh_key = ssh_key.clone();
    other_ssh_key.name = "other".into();
    assert!(!ssh_keys::insert(&mut tx, &other_ssh_key).await.unwrap());
    let mut other_script = stored_script.clone();
    other_script.name = "other".into();
    assert!(!scripts::insert(&mut tx, &other_script).await.unwrap());
    tx.commit().await.unwrap();

    assert_eq!(store.account_by_id(&user).await.unwrap().unwrap(), account);
    assert_eq!(store.ssh_keys(&user).await.unwrap(), vec![ssh_key]);
    assert_eq!(
        store.script(&user, &script).await.unwrap().unwrap(),
        stored_script
    );
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        api_keys::live_for_account(&mut tx, &user).await.unwrap(),
        vec![api_key]
    );
    drop(tx);

    // A fresh id and a fresh name is written.
    other_script.id = "BRK-ZZZZZZC".into();
    let mut tx = store.begin().await.unwrap();
    assert!(scripts::insert(&mut tx, &other_script).await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.script(&user, "BRK-ZZZZZZC").await.unwrap().is_some());
    app.stop().await;
}
