//! Commitments: what raises an account's hourly burn is checked, inside its write transaction, against the
//! balance less the burn already committed, so concurrent requests cannot spend the same credit twice.

use barrack_api::Tier;
use barrack_api::volumes::CreateVolumeRequest;
use barrack_client::InstanceActionKind;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;

use std::collections::BTreeMap;

use barrack_store::Db as _;
use barrack_store::billing;
use barrack_store::sql::Columns;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::billing::deploy;
use crate::billing_meter::{insert_all, period};
use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

on_both_databases!(
    twenty_parallel_deploys_on_credit_for_three_start_three,
    a_volume_cannot_grow_past_the_balance,
    open_rate_counts_follow_every_change_of_a_period,
    a_deploy_counts_its_own_instance_and_volumes_once,
    a_restore_commits_the_instance_in_full,
    a_stopping_instance_is_committed_as_the_shutoff_one_it_becomes,
    snapshots_being_created_are_committed,
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

/// A restore bills the instance in full again, GPUs and OS disk, where its account paid 0.01 an hour to
/// keep it hibernated: on 2.56 USD, with a 200 GB volume (0.05859375 an hour) beside it, the restore of an
/// H100 with a 100 GB disk (2.519296875 an hour) needs 2.57789 and is refused, though the GPUs' hour and
/// the burn the hibernation leaves (2.55859375) would fit; two cents more restore it.
async fn a_restore_commits_the_instance_in_full(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "2.56").await;
    let id = deploy(&client, "sleeper", 1).await;
    app.settle().await;
    client
        .instance_action(&id, InstanceActionKind::Hibernate)
        .await
        .unwrap();
    app.settle().await;
    let volume = client
        .raw(
            Method::POST,
            "/api/volumes/",
            Some(&json!({"name": "beside", "size": 200, "region": "FINLAND-1", "volume_type": "NVMe"})),
        )
        .await
        .unwrap();
    assert_eq!(volume.status.as_u16(), 201, "{}", volume.text);
    app.settle().await;
    let balance = app
        .services()
        .store()
        .balance(&account, "USD")
        .await
        .unwrap();
    assert_eq!(balance, 2_560_000, "nothing charged while the clock stands");

    let refused = client
        .instance_action(&id, InstanceActionKind::Restore)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(402), "{refused}");
    let message = refused.to_string();
    assert!(
        message.contains("2.56 USD available")
            && message.contains("2.58 USD needed")
            && message.contains("an hour of both, 2.5779 USD"),
        "amounts to the cent, what is needed rounded up: {message}"
    );
    let instance = client.instance(&id).await.unwrap().data;
    assert_eq!(instance.status, "HIBERNATED");

    app.grant(&account, "0.02", barrack_api::Currency::USD)
        .await;
    client
        .instance_action(&id, InstanceActionKind::Restore)
        .await
        .unwrap();
    app.settle().await;
    app.stop().await;
}

/// SHUTOFF is billed in full and STOPPING is on its way there: while an instance stops (its periods
/// closed until it is SHUTOFF), its price stays committed, so the credit it is about to draw again cannot
/// deploy a second instance. 4 USD holds one H100 hour with its disk (2.5193), not two.
async fn a_stopping_instance_is_committed_as_the_shutoff_one_it_becomes(db: Db) {
    let app = TestApp::start_with(db, |c| c.simulator.delays.stop_ms = 600_000).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "4").await;
    let id = deploy(&client, "first", 1).await;
    app.settle().await;
    client
        .instance_action(&id, InstanceActionKind::Stop)
        .await
        .unwrap();
    assert_eq!(client.instance(&id).await.unwrap().data.status, "STOPPING");
    let body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
                      "instance_name": "second", "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
                      "ssh_key": "k", "os_volume": {"size": 100}});
    let refused = client
        .raw(Method::POST, "/api/deploy-server/", Some(&body))
        .await
        .unwrap();
    assert_eq!(refused.status, 402, "{}", refused.text);
    assert!(
        refused
            .text
            .contains("2.5193 USD per hour already committed"),
        "{}",
        refused.text
    );
    app.stop().await;
}

/// A snapshot is billed (0.10 an hour) from the moment it succeeds: one being created is committed, so a
/// second made at once on credit for one is refused. 2.65 USD holds the instance (2.5193) and one snapshot.
async fn snapshots_being_created_are_committed(db: Db) {
    let app = TestApp::start_with(db, |c| c.simulator.delays.snapshot_ms = 600_000).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "2.65").await;
    let id = deploy(&client, "source", 1).await;
    app.settle().await;
    let snapshot = async |name: &str| {
        let body = json!({"instance_id": id, "name": name});
        client
            .raw(Method::POST, "/api/snapshots/", Some(&body))
            .await
    };
    let first = snapshot("first").await.unwrap();
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["data"]["status"], "CREATING", "{}", first.text);
    let second = snapshot("second").await.unwrap();
    assert_eq!(second.status, 402, "{}", second.text);
    assert!(
        second
            .text
            .contains("2.6193 USD per hour already committed"),
        "{}",
        second.text
    );
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

/// PostgreSQL checks a plain deploy's commitment in the database (migration 0039, so that the deploy
/// commits in the same round trip), pricing the commitment's rows with the prices the server gives it.
/// For random commitments (open rates over shards, instances heading to a billed state in every such
/// state, of models and volume types the catalog sells and of others, with and without a boot volume,
/// volumes and snapshots being created, another currency's rows, the written instance's volumes) it must sum the
/// server's burn to the last digit and refuse exactly the deploys the server refuses.
#[tokio::test]
async fn postgres_prices_commitments_as_the_server_does() {
    use barrack_core::billing::commitments::{commitment_prices, committed};
    use barrack_store::admission::{Admission, Committed, admit_and_commit};

    if !crate::common::postgres_available(
        "billing_commitments::postgres_prices_commitments_as_the_server_does",
    ) {
        return;
    }
    let app = TestApp::start(Db::Postgres).await;
    let (_, account) = app.funded_user(Tier::Advanced, "US", "10").await;
    let context = app.running.as_ref().unwrap().services.context.clone();
    let store = &context.store;
    let config = &context.config;
    let usd = barrack_api::Currency::USD;
    let models: Vec<String> = config.gpu_models.iter().map(|m| m.name.clone()).collect();
    let types: Vec<String> = config.volume_types.iter().map(|t| t.name.clone()).collect();
    let written = "BRK-WRITTEN";
    let mut rng = StdRng::seed_from_u64(39);
    let mut refusals = 0;
    for round in 0..60 {
        for table in [
            "open_period_rates",
            "instance_heading_counts",
            "volumes",
            "snapshots",
            "balances",
        ] {
            store
                .execute(
                    &format!("DELETE FROM {table} WHERE account_id = $1"),
                    &barrack_store::binds![account.as_str()],
                )
                .await
                .unwrap();
        }
        let balance: i64 = rng.gen_range(0..200_000_000);
        store
            .execute(
                "INSERT INTO balances (account_id, currency, amount_micros, updated_at) \
                 VALUES ($1, 'USD', $2, 0), ($1, 'EUR', 999999999, 0)",
                &barrack_store::binds![account.as_str(), balance],
            )
            .await
            .unwrap();
        let rates = ["2.49", "0.029296875", "0.00029296875", "13.370001", "0.3"];
        for _ in 0..rng.gen_range(0..6) {
            let rate = rates[rng.gen_range(0..rates.len())];
            let currency = if rng.gen_bool(0.2) { "EUR" } else { "USD" };
            store
                .execute(
                    "INSERT INTO open_period_rates (account_id, currency, hourly_rate, shard, periods) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, currency, hourly_rate, shard) \
                     DO UPDATE SET periods = open_period_rates.periods + excluded.periods",
                    &barrack_store::binds![
                        account.as_str(),
                        currency,
                        rate,
                        rng.gen_range(0..3_i64),
                        rng.gen_range(-2..6_i64)
                    ],
                )
                .await
                .unwrap();
        }
        let states = [
            "CREATING",
            "STARTING",
            "STOPPING",
            "REBOOTING",
            "RESTORING",
            "HIBERNATING",
        ];
        let pick = |rng: &mut StdRng, known: &[String], other: &str| {
            if rng.gen_bool(0.15) {
                other.to_string()
            } else {
                known[rng.gen_range(0..known.len())].clone()
            }
        };
        for _ in 0..rng.gen_range(0..7) {
            let currency = if rng.gen_bool(0.2) { "EUR" } else { "USD" };
            let model = pick(&mut rng, &models, "RETIRED-GPU");
            let volume_type = pick(&mut rng, &types, "RETIRED-DISK");
            store
                .execute(
                    "INSERT INTO instance_heading_counts (account_id, currency, status, gpu_model, \
                     gpu_count, os_volume_type, storage_gb, boot_volume, shard, instances) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                    &barrack_store::binds![
                        account.as_str(),
                        currency,
                        states[rng.gen_range(0..states.len())],
                        model.as_str(),
                        rng.gen_range(1..9_i64),
                        volume_type.as_str(),
                        rng.gen_range(1..4_000_i64),
                        i64::from(rng.gen_bool(0.3)),
                        rng.gen_range(0..3_i64),
                        rng.gen_range(-1..5_i64)
                    ],
                )
                .await
                .unwrap();
        }
        for n in 0..rng.gen_range(0..4) {
            let volume_type = pick(&mut rng, &types, "RETIRED-DISK");
            let instance = match rng.gen_range(0..3) {
                0 => None,
                1 => Some(written),
                _ => Some("BRK-OTHER"),
            };
            let currency = if rng.gen_bool(0.2) { "EUR" } else { "USD" };
            store
                .execute(
                    "INSERT INTO volumes (id, account_id, name, tier, region, volume_type, size_gb, \
                     bootable, instance_id, status, currency, generation, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'advanced', 'FINLAND-1', $4, $5, 0, $6, 'creating', $7, 1, 0, 0)",
                    &barrack_store::binds![
                        format!("vol-{round}-{n}"),
                        account.as_str(),
                        format!("v{n}"),
                        volume_type.as_str(),
                        rng.gen_range(1..10_000_i64),
                        instance,
                        currency
                    ],
                )
                .await
                .unwrap();
        }
        // Snapshots being created, of either tier, some in another currency or already done.
        for n in 0..rng.gen_range(0..4) {
            let tier = if rng.gen_bool(0.5) {
                "legacy"
            } else {
                "advanced"
            };
            let status = if rng.gen_bool(0.8) {
                "CREATING"
            } else {
                "SUCCESS"
            };
            let currency = if rng.gen_bool(0.2) { "EUR" } else { "USD" };
            store
                .execute(
                    "INSERT INTO snapshots (id, account_id, name, tier, region, instance_id, \
                     instance_name, gpu_model, gpu_count, vcpus, ram_gb, storage_gb, os_volume_type, \
                     size_gb, is_image, status, currency, generation, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'FINLAND-1', 'BRK-OTHER', 'other', 'H100-SXM5-80GB', 1, \
                     8, 64, 100, 'NVMe', 100, 0, $5, $6, 1, 0, 0)",
                    &barrack_store::binds![
                        format!("snp-{round}-{n}"),
                        account.as_str(),
                        format!("s{n}"),
                        tier,
                        status,
                        currency
                    ],
                )
                .await
                .unwrap();
        }

        let mut tx = store.begin().await.unwrap();
        let (burn, held) = committed(&mut tx, &context, &account, usd, Some(written))
            .await
            .unwrap();
        drop(tx);
        let added = Decimal::new(rng.gen_range(0..2_000_000_i64), 5);
        let admission = Admission {
            account_id: &account,
            currency: "USD",
            instance_id: written,
            region: "FINLAND-1",
            gpu_model: "H100-SXM5-80GB",
            gpu_count: 0,
            address: None,
            now: 0,
        };
        let admit = async |added: Decimal| {
            let tx = store.begin().await.unwrap();
            admit_and_commit(tx, &admission, &commitment_prices(&context, usd, added))
                .await
                .unwrap()
        };
        // An hour no balance covers: refused, with the burn the database summed.
        match admit(Decimal::from(1_000_000_000)).await {
            Committed::Refused {
                balance: refused_balance,
                burn: summed,
            } => {
                assert_eq!(
                    summed.parse::<Decimal>().unwrap(),
                    burn,
                    "round {round}: the database's burn"
                );
                assert_eq!(Decimal::new(refused_balance, 6), held, "round {round}");
            }
            other => panic!("round {round}: {other:?}"),
        }
        let minimum = config.billing.minimum_balance.get(&usd).unwrap().0;
        let server_refuses = held < (burn + added).max(minimum);
        let outcome = admit(added).await;
        assert_eq!(
            matches!(outcome, Committed::Refused { .. }),
            server_refuses,
            "round {round}: balance {held}, burn {burn}, first hour {added}: {outcome:?}"
        );
        refusals += usize::from(server_refuses);
    }
    assert!(
        (10..50).contains(&refusals),
        "both answers tried: {refusals} refusals in 60"
    );
    app.stop().await;
}
