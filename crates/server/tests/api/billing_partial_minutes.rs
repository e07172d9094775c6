//! Partial minutes: every second of billable time is billed once, however short the periods that hold it.

use barrack_api::Tier;
use barrack_api::billing::BillingQuery;
use barrack_api::ledger::{TransactionQuery, TransactionType};
use barrack_client::InstanceActionKind;
use barrack_core::clock::Clock;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

on_both_databases!(reboots_59_seconds_apart_are_billed_for_their_minutes);

/// An instance rebooted every 59 s, 120 times: each ACTIVE stretch is under a minute, together they are
/// 118 minutes, and 118 minutes are charged (the last, unfinished minute may be left).
async fn reboots_59_seconds_apart_are_billed_for_their_minutes(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
        "instance_name": "restless", "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
        "ssh_key": "k", "os_volume": {"size": 100}});
    let raw = client
        .raw(Method::POST, "/api/deploy-server/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    let id = raw.body["data"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.settle().await;
    let instance = client.instance(&id).await.unwrap().data;
    assert_eq!(instance.status, "ACTIVE");
    let hourly = instance.billing.total_hourly_rate.0;

    for _ in 0..120 {
        app.clock.advance_ms(59_000);
        client
            .instance_action(&id, InstanceActionKind::Reboot)
            .await
            .unwrap();
        app.settle().await;
        assert_eq!(client.instance(&id).await.unwrap().data.status, "ACTIVE");
    }
    app.settle().await;

    let records = client
        .instance_billing(&BillingQuery {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap();
    let minutes = records.summary.totalMinutes;
    assert!(
        (117..=119).contains(&minutes),
        "{minutes} minutes billed of 118"
    );

    let mut charged = Decimal::ZERO;
    let mut page = 1;
    loop {
        let list = client
            .transactions(&TransactionQuery {
                kind: Some(TransactionType::Usage),
                page: Some(page),
                limit: Some(100),
                ..Default::default()
            })
            .await
            .unwrap()
            .data;
        charged -= list.transactions.iter().map(|t| t.amount).sum::<Decimal>();
        if page >= list.pagination.total_pages {
            break;
        }
        page += 1;
    }
    let per_minute = hourly / Decimal::from(60);
    assert!(
        charged >= per_minute * Decimal::from(117) && charged <= per_minute * Decimal::from(119),
        "charged {charged}, 118 minutes at {hourly} an hour are {}",
        per_minute * Decimal::from(118)
    );
    let store = app.services().store();
    assert_eq!(
        store.ledger_sum(&account, "USD").await.unwrap(),
        store.balances(&account).await.unwrap()[0].1
    );
    app.stop().await;
}
