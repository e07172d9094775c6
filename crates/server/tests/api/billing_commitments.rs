//! Commitments: what raises an account's hourly burn is checked, inside its write transaction, against the
//! balance less the burn already committed, so concurrent requests cannot spend the same credit twice.

use barrack_api::Tier;
use barrack_api::volumes::CreateVolumeRequest;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;

use std::collections::BTreeMap;

use barrack_store::Db as _;
use barrack_store::billing;
use barrack_store::sql::Columns;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::billing_meter::{insert_all, period};
use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

on_both_databases!(
    twenty_parallel_deploys_on_credit_for_three_start_three,
    a_volume_cannot_grow_past_the_balance,
    open_rate_counts_follow_every_change_of_a_period,
    a_deploy_counts_its_own_instance_and_volumes_once,
);

/// USD 2.49 an hour for one H100 and 0.029296875 for its 100 GB disk: 8 USD covers three such hours, not four.
async fn twenty_parallel_deploys_on_credit_for_three_start_three(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "8").await;
    create_key_k(&client).await;
    let deploys: Vec<_> = (0..20)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                let body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
                    "instance_name": format!("race-{n}"), "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
                    "ssh_key": "k", "os_volume": {"size": 100}});
                client
                    .raw(Method::POST, "/api/deploy-server/", Some(&body))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    for deploy in deploys {
        let raw = deploy.await.unwrap();
        match raw.status.as_u16() {
            201 => created += 1,
            402 => {
                assert_eq!(raw.body["code"], "INSUFFICIENT_BALANCE", "{}", raw.text);
                let message = raw.body["message"].as_str().unwrap();
                assert!(message.contains("committed"), "{message}");
            }
            other => panic!("{other}: {}", raw.text),
        }
    }
    assert_eq!(created, 3, "credit for three hours of one instance each");
    app.settle().await;
    let listed = client
        .raw(Method::GET, "/api/instances/", None)
        .await
        .unwrap();
    assert_eq!(
        listed.body["data"]["pagination"]["total"], 3,
        "{}",
        listed.text
    );
    app.stop().await;
}

/// A deploy that creates its instance and a data volume checks the commitment after writing them, leaving
/// them out of the committed burn and adding its first hour once: credit a cent short of that hour
/// refuses it, credit just over it deploys once and no more, and parallel deploys on credit for three
/// hours of it create three.
async fn a_deploy_counts_its_own_instance_and_volumes_once(db: Db) {
    let app = TestApp::start(db).await;
    let body = |n: usize| {
        json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
            "instance_name": format!("own-{n}"), "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
            "ssh_key": "k", "os_volume": {"size": 100},
            "volumes": [{"name": format!("data-{n}"), "size": 500, "volume_type": "NVMe"}]})
    };
    // The first hour, from a preflight of a well-funded account.
    let (rich, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&rich).await;
    let preflight = rich
        .raw(
            Method::POST,
            "/api/deploy-server/preflight/",
            Some(&body(0)),
        )
        .await
        .unwrap();
    assert_eq!(preflight.status.as_u16(), 200, "{}", preflight.text);
    let hour: Decimal = preflight.body["data"]["price_per_hour"]
        .to_string()
        .parse()
        .unwrap();
    assert!(hour > Decimal::ONE, "above the minimum balance: {hour}");
    // Credits are granted in cents: the least grant that covers `d`.
    let cent = Decimal::new(1, 2);
    let covering = |d: Decimal| (d / cent).ceil() * cent;
    let account_with = async |credit: Decimal| {
        let (client, _) = app
            .funded_user(Tier::Advanced, "US", &credit.to_string())
            .await;
        create_key_k(&client).await;
        client
    };
    let deploy = async |client: &barrack_client::Client, n: usize| {
        let raw = client
            .raw(Method::POST, "/api/deploy-server/", Some(&body(n)))
            .await
            .unwrap();
        (raw.status.as_u16(), raw.text)
    };

    let short = account_with(covering(hour) - cent).await;
    let (status, text) = deploy(&short, 1).await;
    assert_eq!(status, 402, "{text}");

    let exact = account_with(covering(hour)).await;
    let (status, text) = deploy(&exact, 1).await;
    assert_eq!(status, 201, "{text}");
    let (status, text) = deploy(&exact, 2).await;
    assert_eq!(status, 402, "{text}");

    let parallel = account_with(covering(hour * Decimal::from(3))).await;
    let deploys: Vec<_> = (0..12)
        .map(|n| {
            let (client, body) = (parallel.clone(), body(n));
            tokio::spawn(async move {
                let raw = client
                    .raw(Method::POST, "/api/deploy-server/", Some(&body))
                    .await
                    .unwrap();
                raw.status.as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in deploys {
        statuses.push(task.await.unwrap());
    }
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(created, 3, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [201, 402].contains(s)),
        "{statuses:?}"
    );
    app.settle().await;
    app.stop().await;
}

/// A 100 GB NVMe volume costs 0.03 an hour; 1 PB would cost 300. 50 USD of credit allows the first only.
async fn a_volume_cannot_grow_past_the_balance(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "50").await;
    let volume = client
        .create_volume(&CreateVolumeRequest {
            name: "data".into(),
            size: 100,
            region: "FINLAND-1".into(),
            volume_type: "NVMe".into(),
            bootable: false,
            image_name: None,
            labels: Default::default(),
        })
        .await
        .unwrap()
        .data;
    app.settle().await;
    let refused = client
        .resize_volume(&volume.id, 1_000_000)
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(402), Some("INSUFFICIENT_BALANCE")),
        "{refused}"
    );
    // A growth the balance covers is fine.
    client.resize_volume(&volume.id, 200).await.unwrap();
    app.settle().await;
    app.stop().await;
}

/// The counts of open periods per account, currency and rate that commitments read are kept by triggers:
/// after periods are opened (some already closed), closed, reopened, repriced, moved to another currency
/// and deleted at random, they are what counting the periods says, on both databases.
async fn open_rate_counts_follow_every_change_of_a_period(db: Db) {
    let app = TestApp::start(db).await;
    let (_, a) = app.funded_user(Tier::Advanced, "US", "10").await;
    let (_, b) = app.funded_user(Tier::Advanced, "DE", "10").await;
    let store = app.services().store().clone();
    let rates = ["2.49", "0.0068359375", "0.05", "2.490"];
    let mut rng = StdRng::seed_from_u64(33);
    let mut ids: Vec<String> = Vec::new();
    for round in 0..8 {
        let mut opened = Vec::new();
        for i in 0..25 {
            let account = if rng.gen_bool(0.5) { &a } else { &b };
            let currency = if rng.gen_bool(0.7) { "USD" } else { "EUR" };
            let id = format!("BRK-{round}{i:03}VB");
            let mut p = period(
                id.clone(),
                (account, currency),
                rates[rng.gen_range(0..rates.len())],
                (1_000, 0),
                true,
            );
            if rng.gen_bool(0.2) {
                p.ended_at = Some(2_000);
            }
            opened.push(p);
            ids.push(id);
        }
        insert_all(&app, &opened).await;
        let mut tx = store.begin().await.unwrap();
        for id in &ids {
            let sql = match rng.gen_range(0..10) {
                0 | 1 => "UPDATE billing_periods SET ended_at = 5000 WHERE id = $1",
                2 => "UPDATE billing_periods SET ended_at = NULL WHERE id = $1",
                3 => "UPDATE billing_periods SET hourly_rate = '9.96' WHERE id = $1",
                4 => "UPDATE billing_periods SET currency = 'INR' WHERE id = $1",
                5 => {
                    "UPDATE billing_periods SET hourly_rate = hourly_rate, ended_at = ended_at WHERE id = $1"
                }
                6 => "DELETE FROM billing_periods WHERE id = $1",
                _ => continue,
            };
            tx.execute(sql, &[id.as_str().into()]).await.unwrap();
        }
        // Many rows in one statement.
        if round % 3 == 2 {
            tx.execute(
                "UPDATE billing_periods SET ended_at = 7000 WHERE account_id = $1 AND ended_at IS NULL \
                 AND currency = 'USD'",
                &[a.as_str().into()],
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();

        crate::common::assert_derived_state_consistent(&store).await;
        let scanned: BTreeMap<(String, String, String), i64> = store
            .fetch_all(
                "SELECT account_id, currency, hourly_rate, CAST(COUNT(*) AS BIGINT) FROM billing_periods \
                 WHERE ended_at IS NULL GROUP BY account_id, currency, hourly_rate",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let key = (r.text(0).unwrap(), r.text(1).unwrap(), r.text(2).unwrap());
                (key, r.int(3).unwrap())
            })
            .collect();
        assert!(!scanned.is_empty(), "round {round} left periods open");
        // What the commitment reads is the same.
        let mut tx = store.begin().await.unwrap();
        let rates_of_a = billing::commitments(&mut tx, &a, "USD", None)
            .await
            .unwrap()
            .rates;
        drop(tx);
        let expected: Vec<(String, i64)> = scanned
            .iter()
            .filter(|((account, currency, _), _)| *account == a && currency == "USD")
            .map(|((_, _, rate), n)| (rate.clone(), *n))
            .collect();
        assert_eq!(rates_of_a, expected, "round {round}");
    }
    app.stop().await;
}
