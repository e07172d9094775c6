//! Billing records are what was charged: the meter's amounts, plus the minutes it has not charged yet,
//! labelled; `per_minute_rate × minutes = total_cost` in every record; a stored rate that does not parse
//! is an error, never free.

use barrack_api::Tier;
use barrack_api::billing::BillingQuery;
use barrack_core::clock::Clock;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

on_both_databases!(
    records_show_the_charged_amounts_and_label_the_rest,
    a_rate_that_does_not_parse_is_an_error_not_free,
);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

async fn deploy(client: &barrack_client::Client, name: &str, count: u32) -> String {
    let body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": count, "region": "FINLAND-1",
        "instance_name": name, "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
        "ssh_key": "k", "os_volume": {"size": 100}});
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

async fn records_show_the_charged_amounts_and_label_the_rest(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "5000").await;
    create_key_k(&client).await;
    deploy(&client, "ml-training-server", 4).await;
    app.settle().await;
    app.admin.admin_advance_clock(7200).await.unwrap();

    let instances = client
        .instance_billing(&BillingQuery::default())
        .await
        .unwrap();
    let record = &instances.records[0];
    assert_eq!(
        record.vm_name, "ml-training-server",
        "the instance's name, as documented"
    );
    assert_eq!(
        record.description,
        "Deployment billing - 7200 minutes for H100-SXM5-80GB x4 (ml-training-server)"
    );
    let volumes = client
        .volume_billing(&BillingQuery::default())
        .await
        .unwrap();
    for (rate, minutes, cost) in instances
        .records
        .iter()
        .map(|r| {
            (
                r.per_minute_rate.0,
                r.total_duration_minutes,
                r.total_cost.0,
            )
        })
        .chain(volumes.records.iter().map(|r| {
            (
                r.per_minute_rate.0,
                r.total_duration_minutes,
                r.total_cost.0,
            )
        }))
    {
        assert_eq!(rate * Decimal::from(minutes), cost, "{rate} x {minutes}");
    }
    let spent = d("5000") - client.balance().await.unwrap().data.balance;
    let shown = instances.records[0].total_cost.0 + volumes.records[0].total_cost.0;
    assert_eq!(spent, shown, "the records are what the ledger charged");

    // Ten minutes pass before the meter runs: the records run to now and say what is not charged yet.
    app.clock.advance_ms(10 * 60_000);
    let instances = client
        .instance_billing(&BillingQuery::default())
        .await
        .unwrap();
    let record = &instances.records[0];
    assert_eq!(record.total_duration_minutes, 7210);
    assert_eq!(record.total_cost.0, d("0.166") * d("7210"));
    assert_eq!(
        record.description,
        "Deployment billing - 7210 minutes for H100-SXM5-80GB x4 (ml-training-server); not yet charged: 10 minutes, 1.66 USD"
    );
    assert_eq!(instances.summary.totalMinutes, 7210);
    let volumes = client
        .volume_billing(&BillingQuery::default())
        .await
        .unwrap();
    assert!(
        volumes.records[0]
            .description
            .ends_with("; not yet charged: 10 minutes, 0.00488 USD"),
        "{}",
        volumes.records[0].description
    );
    assert_eq!(
        d("5000") - client.balance().await.unwrap().data.balance,
        spent,
        "reading charges nothing"
    );

    // Once the meter has run, the same amounts are charged and the label is gone.
    app.settle().await;
    let after = client
        .instance_billing(&BillingQuery::default())
        .await
        .unwrap();
    assert_eq!(after.records[0].total_cost, record.total_cost);
    assert!(!after.records[0].description.contains("not yet charged"));
    assert_eq!(
        d("5000") - client.balance().await.unwrap().data.balance,
        spent + d("1.66") + d("0.00488")
    );
    // Nothing is billed after now: a range starting later is refused on `from`, on every billing list.
    for path in [
        "/api/billing/",
        "/api/instances/billing/",
        "/api/volumes/billing/",
    ] {
        let future = client
            .raw(
                Method::GET,
                &format!("{path}?from=2999-01-01T00:00:00Z"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(future.status, 400, "{path}: {}", future.text);
        assert!(future.body["errors"]["from"].is_array(), "{}", future.text);
    }
    app.stop().await;
}

async fn a_rate_that_does_not_parse_is_an_error_not_free(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "100").await;
    create_key_k(&client).await;
    let id = deploy(&client, "box", 1).await;
    app.settle().await;
    let store = app.services().store();
    store
        .execute(
            "UPDATE billing_periods SET hourly_rate = 'n/a' WHERE resource_id = $1 AND component = 'compute'",
            &[id.as_str().into()],
        )
        .await
        .unwrap();
    let before = client.balance().await.unwrap().data.balance;
    app.clock.advance_ms(60 * 60_000);
    app.settle().await;

    // The listing refuses to show it as free.
    let raw = client
        .raw(Method::GET, "/api/instances/billing/", None)
        .await
        .unwrap();
    assert_eq!(raw.status, 500, "{}", raw.text);

    // The meter charged the OS disk and left the unreadable period uncharged, for an operator to fix.
    let spent = before - client.balance().await.unwrap().data.balance;
    assert_eq!(spent, d("0.000488") * d("60"));
    let periods = store
        .all_periods(&account, &Default::default())
        .await
        .unwrap();
    let compute = periods.iter().find(|p| p.component == "compute").unwrap();
    assert_eq!((compute.billed_minutes, compute.billed_micros), (0, 0));
    app.stop().await;
}
