//! Per-minute billing in step mode: the documented example, exactly-once metering, the ledger, depletion.

use barrack_api::billing::BillingQuery;
use barrack_api::{Currency, Tier};
use barrack_client::{Client, InstanceActionKind};
use barrack_core::clock::Clock;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k, events_of};
use crate::on_both_databases;

on_both_databases!(
    the_documented_example_bills_1195_2_for_7200_minutes,
    each_state_is_billed_for_exactly_its_minutes,
    metering_twice_or_concurrently_never_bills_twice,
    running_out_of_credit_hibernates_and_restore_needs_credit,
    falling_below_an_hour_at_once_warns_of_the_day_too,
    an_instance_back_on_an_empty_account_hibernates_at_once,
    guards_of_several_servers_at_once_warn_once,
);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

pub(crate) async fn deploy(client: &Client, name: &str, count: u32) -> String {
    let keys = client.ssh_keys().await.unwrap().data.ssh_keys;
    if keys.is_empty() {
        create_key_k(client).await;
    }
    let body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": count, "region": "FINLAND-1", "instance_name": name,
                      "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "k",
                      "os_volume": {"size": 100}});
    let raw = client
        .raw(Method::POST, "/api/deploy-server/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    raw.body["data"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The balance equals the sum of the ledger in every currency.
async fn assert_balance_is_ledger(app: &TestApp, account: &str) {
    let store = app.services().store();
    for (currency, micros) in store.balances(account).await.unwrap() {
        assert_eq!(
            store.ledger_sum(account, &currency).await.unwrap(),
            micros,
            "{currency}"
        );
    }
}

async fn the_documented_example_bills_1195_2_for_7200_minutes(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "5000").await;
    let id = deploy(&client, "ml-training-server", 4).await;
    app.settle().await;
    let instance = client.instance(&id).await.unwrap().data;
    assert_eq!(instance.billing.total_hourly_rate.0, d("9.9893"));

    let advanced = app.admin.admin_advance_clock(7200).await.unwrap().data;
    assert!(advanced.periods_billed >= 2);
    let billing = client
        .instance_billing(&BillingQuery::default())
        .await
        .unwrap();
    assert_eq!(billing.records.len(), 1);
    let record = &billing.records[0];
    assert!(record.billing_id.starts_with("BRK-") && record.billing_id.ends_with("DB"));
    assert_eq!(record.instance_id, id);
    assert_eq!(
        (record.gpu_type.as_str(), record.gpu_count, record.tier),
        ("H100-SXM5-80GB", 4, Tier::Advanced)
    );
    assert_eq!(record.total_duration_minutes, 7200);
    assert_eq!(record.per_minute_rate.0, d("0.166"));
    assert_eq!(record.total_cost.0, d("1195.2"));
    assert_eq!(record.status, "active");
    assert_eq!(record.end_time, None);
    assert_eq!(
        record.description,
        "Deployment billing - 7200 minutes for H100-SXM5-80GB x4 (ml-training-server)"
    );
    assert_eq!(billing.summary.totalMinutes, 7200);
    assert_eq!(billing.summary.activeCount, 1);
    assert_eq!(
        (
            billing.total,
            billing.page,
            billing.limit,
            billing.total_pages
        ),
        (1, 1, 20, 1)
    );
    assert_eq!(billing.currency, Currency::USD);

    // The flat shape and camelCase summary, as documented.
    let raw = client
        .raw(Method::GET, "/api/instances/billing/", None)
        .await
        .unwrap();
    let mut keys: Vec<&str> = raw
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "currency",
            "limit",
            "page",
            "records",
            "success",
            "summary",
            "total",
            "total_pages"
        ]
    );
    for key in [
        "totalMinutes",
        "activeCount",
        "completedCount",
        "hibernatedCount",
        "averageUsage",
        "totalCost",
    ] {
        assert!(raw.body["summary"].get(key).is_some(), "{key}");
    }

    // The OS disk (100 GB NVMe) is billed too: 0.029296875 per hour is 0.000488 a minute, for 7200 minutes.
    let disks = client
        .volume_billing(&BillingQuery::default())
        .await
        .unwrap();
    assert_eq!(disks.records[0].per_minute_rate.0, d("0.000488"));
    assert_eq!(disks.records[0].total_cost.0, d("3.5136"));
    // The summary adds up the records exactly, not to the cent.
    assert_eq!(disks.summary.totalCost.0, d("3.5136"));
    let balance = client.balance().await.unwrap().data.balance;
    assert_eq!(balance, d("5000") - d("1195.2") - d("3.5136"));
    assert_balance_is_ledger(&app, &account).await;
    let usage = client
        .transactions(&barrack_api::ledger::TransactionQuery {
            kind: Some(barrack_api::ledger::TransactionType::Usage),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    let charged: Decimal = usage.transactions.iter().map(|t| t.amount).sum();
    assert_eq!(
        charged,
        -(d("1195.2") + d("3.5136")),
        "the ledger explains every debit"
    );
    app.stop().await;
}

async fn each_state_is_billed_for_exactly_its_minutes(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "DE", "5000").await;
    let id = deploy(&client, "states", 1).await;
    app.settle().await;
    let minute = 60_000;
    let steps: [(Option<InstanceActionKind>, i64); 5] = [
        (None, 90),
        (Some(InstanceActionKind::Stop), 30),
        (Some(InstanceActionKind::Start), 45),
        (Some(InstanceActionKind::Hibernate), 600),
        (Some(InstanceActionKind::Restore), 15),
    ];
    for (action, minutes) in steps {
        if let Some(action) = action {
            client.instance_action(&id, action).await.unwrap();
            app.settle().await;
        }
        app.clock.advance_ms(minutes * minute);
        app.settle().await;
    }
    let records = client
        .instance_billing(&BillingQuery {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut by_status: Vec<(String, u64)> = records
        .records
        .iter()
        .map(|r| (r.status.clone(), r.total_duration_minutes))
        .collect();
    by_status.sort();
    // ACTIVE 90, SHUTOFF 30, ACTIVE 45 (full rate, one period each), HIBERNATED 600, ACTIVE 15 (still open).
    assert_eq!(
        by_status,
        [
            ("active".to_string(), 15),
            ("completed".to_string(), 30),
            ("completed".to_string(), 45),
            ("completed".to_string(), 90),
            ("completed".to_string(), 600),
        ]
    );
    let hibernation = records
        .records
        .iter()
        .find(|r| r.total_duration_minutes == 600)
        .unwrap();
    assert_eq!(
        hibernation.total_cost.0,
        d("0.1002"),
        "EUR 0.01 per hour is 0.000167 a minute, for 600 minutes"
    );
    let compute: Decimal = records
        .records
        .iter()
        .filter(|r| r.total_duration_minutes != 600)
        .map(|r| r.total_cost.0)
        .sum();
    assert_eq!(
        compute,
        d("0.044833") * d("180"),
        "180 minutes of EUR 2.69 per hour, 0.044833 a minute"
    );
    assert_balance_is_ledger(&app, &account).await;

    let aggregate = client.billing(&BillingQuery::default()).await.unwrap().data;
    assert_eq!(aggregate.instances.minutes, 780);
    assert_eq!(aggregate.currency, Currency::EUR);
    app.stop().await;
}

async fn metering_twice_or_concurrently_never_bills_twice(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "1000").await;
    for i in 0..5 {
        deploy(&client, &format!("m{i}"), 1).await;
    }
    app.settle().await;
    app.clock.advance_ms(61 * 60_000);
    let billing = app.services().billing.clone();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let billing = billing.clone();
            tokio::spawn(async move { billing.meter().await.unwrap() })
        })
        .collect();
    let mut periods = 0;
    for run in runs {
        periods += run.await.unwrap().periods_billed;
    }
    assert_eq!(
        periods, 10,
        "5 instances x (GPUs, OS disk), each billed by exactly one run"
    );
    assert_eq!(
        billing.meter().await.unwrap().periods_billed,
        0,
        "a replayed run bills nothing"
    );
    let records = client
        .instance_billing(&BillingQuery::default())
        .await
        .unwrap();
    assert!(
        records
            .records
            .iter()
            .all(|r| r.total_duration_minutes == 61)
    );
    let spent = d("1000") - client.balance().await.unwrap().data.balance;
    // A minute costs its per-minute rate, rounded once to the micro-unit: GPUs 0.0415, OS disk 0.000488.
    let per_instance = d("0.0415") * d("61") + d("0.000488") * d("61");
    let expected = per_instance * d("5");
    assert_eq!(spent, expected);
    assert_balance_is_ledger(&app, &account).await;
    app.stop().await;
}

async fn falling_below_an_hour_at_once_warns_of_the_day_too(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "3").await;
    deploy(&client, "tight", 1).await;
    app.settle().await;
    // USD 2.52 an hour on 3: a few minutes in, less than an hour is left, with no day's warning before.
    app.clock.advance_ms(20 * 60_000);
    app.settle().await;
    let mut kinds: Vec<String> = events_of(&client)
        .await
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| k.starts_with("low_balance"))
        .collect();
    // Recorded in the same millisecond: listed in either order.
    kinds.sort();
    assert_eq!(kinds, ["low_balance_1h", "low_balance_24h"], "{kinds:?}");
    app.stop().await;
}

async fn running_out_of_credit_hibernates_and_restore_needs_credit(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "10").await;
    let id = deploy(&client, "thrifty", 1).await;
    app.settle().await;
    // USD 2.52 an hour: a day's warning at once, then an hour's, then depletion after about 4 hours.
    app.clock.advance_ms(60 * 60_000);
    app.settle().await;
    app.clock.advance_ms(150 * 60_000);
    app.settle().await;
    app.clock.advance_ms(60 * 60_000);
    app.settle().await;
    let instance = client.instance(&id).await.unwrap().data;
    assert_eq!(instance.status, "HIBERNATED");
    let events = events_of(&client).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"low_balance_24h") && kinds.contains(&"low_balance_1h"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "low_balance_24h").count(),
        1,
        "warned once per threshold"
    );
    let why = events
        .iter()
        .find(|e| e.to_status.as_deref() == Some("HIBERNATING"))
        .unwrap();
    assert!(why.cause.contains("credit balance reached zero") && why.actor == "system");
    assert!(client.balance().await.unwrap().data.balance <= Decimal::ZERO);
    assert_balance_is_ledger(&app, &account).await;

    let refused = client
        .instance_action(&id, InstanceActionKind::Restore)
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(402), Some("INSUFFICIENT_BALANCE"))
    );
    app.grant(&account, "50", Currency::USD).await;
    client
        .instance_action(&id, InstanceActionKind::Restore)
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(client.instance(&id).await.unwrap().data.status, "ACTIVE");
    let _ = app.clock.now_ms();
    app.stop().await;
}

/// An instance that comes back to a billed state (here from a reboot) on an account whose credit ran
/// out hibernates as soon as it is back, with the account's other instances, instead of running until
/// the next charged minute shows the account empty.
async fn an_instance_back_on_an_empty_account_hibernates_at_once(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "10").await;
    let rebooted = deploy(&client, "rebooted", 1).await;
    let beside = deploy(&client, "beside", 1).await;
    app.settle().await;
    // The credit spent elsewhere: an adjustment takes the balance to zero, as the ledger records it.
    let balance = app
        .services()
        .store()
        .balance(&account, "USD")
        .await
        .unwrap();
    app.write_ledger_entry(&account, Currency::USD, "adjustment", -balance)
        .await;
    client
        .instance_action(&rebooted, InstanceActionKind::Reboot)
        .await
        .unwrap();
    app.settle().await;
    for id in [&rebooted, &beside] {
        let instance = client.instance(id).await.unwrap().data;
        assert_eq!(instance.status, "HIBERNATED", "{}", instance.name);
    }
    let events = events_of(&client).await;
    assert!(
        events
            .iter()
            .any(|e| e.resource_id == rebooted && e.cause.contains("credit balance reached zero")),
        "{events:?}"
    );
    assert_balance_is_ledger(&app, &account).await;
    app.stop().await;
}

/// Every server's meter guards the accounts its run charged, and several may do so at the same moment
/// (replicas, or runs that overlap): each low-balance warning is still recorded once.
async fn guards_of_several_servers_at_once_warn_once(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "10").await;
    deploy(&client, "thrifty", 1).await;
    app.settle().await;
    // USD 2.52 an hour against USD 10: under a day's credit.
    app.clock.advance_ms(60 * 60_000);
    let services = app.services();
    let run = services.billing.meter().await.unwrap();
    let guards: Vec<_> = (0..4)
        .map(|_| {
            let (billing, instances, run) = (
                services.billing.clone(),
                services.instances.clone(),
                run.clone(),
            );
            tokio::spawn(async move { billing.guard(&run, &instances).await })
        })
        .collect();
    for guard in guards {
        guard.await.unwrap().unwrap();
    }
    let events = events_of(&client).await;
    let warnings = events
        .iter()
        .filter(|e| e.kind == "low_balance_24h")
        .count();
    assert_eq!(warnings, 1, "{events:?}");
    app.stop().await;
}
