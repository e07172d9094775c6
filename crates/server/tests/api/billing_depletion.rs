//! Depletion is per currency: running out of one currency hibernates only what is billed in it. What an
//! account stores stops being charged when its credit runs out, is kept for the grace period with
//! notices, then is marked for deletion; credit brings the charges back.

use barrack_api::billing::BillingQuery;
use barrack_api::{Currency, Tier};
use barrack_client::Client;
use barrack_core::clock::Clock;
use reqwest::Method;
use serde_json::json;

use rust_decimal::Decimal;

use crate::common::{Db, TestApp, client_of, create_key_k};
use crate::on_both_databases;

on_both_databases!(
    running_out_of_dollars_leaves_instances_billed_in_euros_running,
    stored_data_stops_charging_is_kept_then_marked_for_deletion,
    a_long_clock_move_charges_only_up_to_where_the_credit_ran_out,
    an_instance_created_after_the_credit_ran_out_hibernates_at_once,
    a_clock_move_warns_at_the_minute_each_threshold_is_crossed,
    concurrent_clock_moves_charge_only_up_to_where_the_credit_ran_out,
    one_clock_move_through_the_grace_period_records_each_stage_at_its_time,
);

async fn deploy(client: &Client, name: &str) -> String {
    let body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
        "instance_name": name, "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
        "ssh_key": "k", "os_volume": {"size": 100}});
    let raw = client
        .raw(Method::POST, "/api/deploy-server/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status.as_u16(), 201, "{}", raw.text);
    raw.body["data"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn running_out_of_dollars_leaves_instances_billed_in_euros_running(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "3").await;
    create_key_k(&client).await;
    let dollars = deploy(&client, "in-dollars").await;
    app.settle().await;
    // The account moved to Germany (by an operator: the API keeps a currency in use): what it deploys
    // from now on is billed in euros.
    app.set_country_in_database(&account, "DE").await;
    app.grant(&account, "1000", Currency::EUR).await;
    let euros = deploy(&client, "in-euros").await;
    app.settle().await;

    // USD 2.52 an hour on 3 USD: the dollars run out within two hours.
    app.admin.admin_advance_clock(120).await.unwrap();
    app.settle().await;
    assert_eq!(
        client.instance(&dollars).await.unwrap().data.status,
        "HIBERNATED"
    );
    assert_eq!(
        client.instance(&euros).await.unwrap().data.status,
        "ACTIVE",
        "billed in euros, which the account still has"
    );
    app.stop().await;
}

/// Ten hours at once bill what ten hours minute by minute would: the instance runs until the credit is
/// spent, then hibernates, and nothing is charged for the hours after.
async fn a_long_clock_move_charges_only_up_to_where_the_credit_ran_out(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "3").await;
    create_key_k(&client).await;
    let instance = deploy(&client, "jumper").await;
    app.settle().await;
    let hourly = hourly(&client, &instance).await;
    assert!(hourly > d("2"), "{hourly}");

    app.admin.admin_advance_clock(600).await.unwrap();
    app.settle().await;
    assert_eq!(
        client.instance(&instance).await.unwrap().data.status,
        "HIBERNATED"
    );
    // Spent to zero and at most the minute that crossed it beyond: not ten hours' worth.
    let left = balance(&client).await;
    assert!(left <= Decimal::ZERO, "{left}");
    assert!(
        left > -(hourly / d("60")),
        "{left} after a move of 600 minutes"
    );
    let ledger = client.transactions(&Default::default()).await.unwrap().data;
    let charged: Decimal = ledger
        .transactions
        .iter()
        .filter(|t| t.amount < Decimal::ZERO)
        .map(|t| -t.amount)
        .sum();
    assert_eq!(d("3") - charged, left, "the balance is the ledger");
    let kinds: Vec<String> = event_kinds(&client)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for warning in ["low_balance_24h", "low_balance_1h"] {
        assert!(
            kinds.contains(&warning.to_string()),
            "the move from over an hour of credit to none warns of {warning} too: {kinds:?}"
        );
    }
    app.stop().await;
}

/// Two moves at once, through two servers: each sizes its steps from its own meter runs, so they take
/// turns, and the account is charged up to its credit as by one move of their sum.
async fn concurrent_clock_moves_charge_only_up_to_where_the_credit_ran_out(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "3").await;
    create_key_k(&client).await;
    let instance = deploy(&client, "racer").await;
    app.settle().await;
    let hourly = hourly(&client, &instance).await;
    let other = app.replica().await;
    let there = client_of(&other, &app.admin_key);
    let (here, away) = tokio::join!(
        app.admin.admin_advance_clock(180),
        there.admin_advance_clock(180)
    );
    here.unwrap();
    away.unwrap();
    app.settle().await;
    assert_eq!(
        client.instance(&instance).await.unwrap().data.status,
        "HIBERNATED"
    );
    let left = balance(&client).await;
    assert!(
        left <= Decimal::ZERO && left > -(hourly / d("60")),
        "{left}: charged past the credit by more than the minute that crossed it"
    );
    assert_balance_is_ledger(&app, &account).await;
    other.shutdown().await;
    app.stop().await;
}

/// One move from before the credit runs out to past the grace period's end records the deletion notice
/// a day before the end and the mark for deletion at the end, as the minutes passing one by one would,
/// and the mark names the instance hibernated for the depletion as well as the volume.
async fn one_clock_move_through_the_grace_period_records_each_stage_at_its_time(db: Db) {
    let app = TestApp::start_with(db, |c| c.billing.storage_grace_hours = 48).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "3").await;
    create_key_k(&client).await;
    let instance = deploy(&client, "sleeper").await;
    let volume = create_volume(
        &client,
        json!({"name": "kept", "size": 10, "region": "FINLAND-1", "volume_type": "HDD"}),
    )
    .await;
    app.settle().await;

    // About an hour and ten minutes of credit, then the 48 hours of grace, in one move of four days.
    app.admin.admin_advance_clock(4 * 24 * 60).await.unwrap();
    let depletion = app.services().store().depletions().await.unwrap();
    let [depletion] = depletion.as_slice() else {
        panic!("{depletion:?}");
    };
    assert_eq!(depletion.account_id, account);
    let events = crate::common::events_of(&client).await;
    let at = |kind: &str| {
        let event = events
            .iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("no {kind}: {events:?}"));
        (event.created_at.clone(), event.cause.clone())
    };
    let hour = 3_600_000;
    let (notice_at, _) = at("storage_deletion_notice");
    assert_eq!(
        notice_at,
        barrack_core::clock::format_ms(depletion.delete_after - 24 * hour)
    );
    let (due_at, due) = at("storage_deletion_due");
    assert_eq!(
        due_at,
        barrack_core::clock::format_ms(depletion.delete_after)
    );
    assert!(
        due.contains(&volume) && due.contains(&instance),
        "the mark names everything held: {due}"
    );
    app.stop().await;
}

/// An instance that finishes creating after the account's credit ran out (the depletion passed over it
/// while it was on its way) hibernates at once instead of running until the next charged minute.
async fn an_instance_created_after_the_credit_ran_out_hibernates_at_once(db: Db) {
    let app = TestApp::start(db).await;
    // An hour of two: the second deploy is accepted.
    let (client, _) = app.funded_user(Tier::Advanced, "US", "6").await;
    create_key_k(&client).await;
    let first = deploy(&client, "first").await;
    app.settle().await;
    let late = deploy(&client, "late").await;
    // Still CREATING (the jobs run only when the test settles them) while the first spends the credit.
    app.admin.admin_advance_clock(300).await.unwrap();
    app.settle().await;
    for id in [&first, &late] {
        assert_eq!(
            client.instance(id).await.unwrap().data.status,
            "HIBERNATED",
            "{id}"
        );
    }
    app.stop().await;
}

/// Three hours at once on 5 USD of an H100 (2.5193 an hour) and its OS disk warn as the same minutes one
/// by one would: of the day at the first minute, of the hour at the minute the balance falls below an
/// hour of the burn (about 2.5 USD left, an hour before the credit runs out), then the depletion at the
/// minute it reaches zero.
async fn a_clock_move_warns_at_the_minute_each_threshold_is_crossed(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "5").await;
    create_key_k(&client).await;
    let instance = deploy(&client, "warned").await;
    app.settle().await;
    let hourly = hourly(&client, &instance).await;
    // What a minute is charged: the instance's and its OS disk's per-minute rates.
    let all = BillingQuery {
        limit: Some(100),
        ..Default::default()
    };
    let gpu = client.instance_billing(&all).await.unwrap().records;
    let disk = client.volume_billing(&all).await.unwrap().records;
    assert_eq!((gpu.len(), disk.len()), (1, 1));
    let per_minute = gpu[0].per_minute_rate.0 + disk[0].per_minute_rate.0;
    assert!(per_minute > d("0.04"), "{gpu:?} {disk:?}");
    let start = app.clock.now_ms();

    app.admin.admin_advance_clock(180).await.unwrap();
    app.settle().await;

    // The first minute the balance after `m` charged minutes meets `crossed`, and that balance.
    let first_minute = |crossed: &dyn Fn(Decimal) -> bool| {
        let m = (1..=180i64)
            .find(|m| crossed(d("5") - per_minute * Decimal::from(*m)))
            .unwrap();
        (m, d("5") - per_minute * Decimal::from(m))
    };
    let (day, _) = first_minute(&|b| b < hourly * d("24"));
    let (hour, left_at_hour) = first_minute(&|b| b < hourly);
    let (out, _) = first_minute(&|b| b <= Decimal::ZERO);
    // A day is gone at once; the hour's warning comes an hour before the end, with two hours to go.
    assert_eq!(day, 1);
    assert!((59..=61).contains(&(out - hour)), "{hour} {out}");
    assert!(out > 100 && out < 180, "{out}");

    let events = crate::common::events_of(&client).await;
    let at = |kind: &str| {
        let event = events
            .iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("no {kind}: {events:?}"));
        let ms = barrack_core::clock::parse_iso(&event.created_at).unwrap();
        ((ms - start + 999) / 60_000, event.cause.clone())
    };
    let (minute, cause) = at("low_balance_24h");
    assert_eq!(minute, day, "{cause}");
    let left_after_one = (d("5") - per_minute).round_dp(2);
    assert!(
        cause.contains(&format!("{left_after_one} USD left")),
        "{cause}"
    );
    let (minute, cause) = at("low_balance_1h");
    assert_eq!(
        minute, hour,
        "the hour's warning an hour before the end: {cause}"
    );
    assert!(left_at_hour < hourly && left_at_hour >= hourly - per_minute);
    assert!(
        cause.contains(&format!(
            "{} USD left, about 1.0 hours",
            left_at_hour.round_dp(2)
        )),
        "{cause}"
    );
    let (minute, cause) = at("storage_suspended");
    assert_eq!(minute, out, "{cause}");
    assert_eq!(
        client.instance(&instance).await.unwrap().data.status,
        "HIBERNATED"
    );
    // Charged up to the minute that crossed zero, and the balance is the ledger.
    let left = balance(&client).await;
    assert_eq!(left, d("5") - per_minute * Decimal::from(out));
    let charged: Decimal = client
        .transactions(&Default::default())
        .await
        .unwrap()
        .data
        .transactions
        .iter()
        .filter(|t| t.amount < Decimal::ZERO)
        .map(|t| -t.amount)
        .sum();
    assert_eq!(d("5") - charged, left);
    app.stop().await;
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

async fn event_kinds(client: &Client) -> Vec<(String, String)> {
    crate::common::events_of(client)
        .await
        .into_iter()
        .map(|e| (e.kind, e.cause))
        .collect()
}

async fn balance(client: &Client) -> Decimal {
    client.balance().await.unwrap().data.balance
}

/// The instance's price per hour, all in.
async fn hourly(client: &Client, instance: &str) -> Decimal {
    let shown = client.instance(instance).await.unwrap().data;
    shown.billing.total_hourly_rate.0
}

/// A volume made with `body`: its id.
async fn create_volume(client: &Client, body: serde_json::Value) -> String {
    let created = client
        .raw(Method::POST, "/api/volumes/", Some(&body))
        .await
        .unwrap();
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    created.body["data"]["id"].as_str().unwrap().to_string()
}

/// The account's USD balance equals the sum of its ledger.
async fn assert_balance_is_ledger(app: &TestApp, account: &str) {
    let store = app.services().store();
    assert_eq!(
        store.ledger_sum(account, "USD").await.unwrap(),
        store.balances(account).await.unwrap()[0].1
    );
}

async fn stored_data_stops_charging_is_kept_then_marked_for_deletion(db: Db) {
    let app = TestApp::start_with(db, |c| c.billing.storage_grace_hours = 48).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "10").await;
    create_key_k(&client).await;
    let instance = deploy(&client, "spender").await;
    let volume = create_volume(
        &client,
        json!({"name": "data", "size": 1024, "region": "FINLAND-1", "volume_type": "NVMe"}),
    )
    .await;
    app.settle().await;

    // About USD 2.82 an hour on 10: five hours run the credit out.
    app.admin.admin_advance_clock(300).await.unwrap();
    app.settle().await;
    assert_eq!(
        client.instance(&instance).await.unwrap().data.status,
        "HIBERNATED"
    );
    let kinds = event_kinds(&client).await;
    let suspended = kinds
        .iter()
        .find(|(k, _)| k == "storage_suspended")
        .unwrap_or_else(|| panic!("{kinds:?}"));
    // The instance it hibernates keeps its disk too, and is named with the volume.
    assert!(
        suspended.1.contains("1 volume, 1 hibernated instance")
            && suspended.1.contains("without charge until"),
        "{}",
        suspended.1
    );
    let debt = balance(&client).await;
    assert!(debt <= Decimal::ZERO);
    let hibernated = client.hibernated_instances().await.unwrap().data;
    assert_eq!(
        (hibernated.count, hibernated.hourly_cost.0),
        (1, Decimal::ZERO),
        "a hibernation is not charged while the credit is out"
    );

    // A day later: nothing more charged, the data kept, and the deletion notice out.
    app.admin.admin_advance_clock(24 * 60).await.unwrap();
    app.settle().await;
    assert_eq!(
        balance(&client).await,
        debt,
        "storage stops charging at depletion"
    );
    assert_eq!(client.volume(&volume).await.unwrap().data.id, volume);
    let records = client
        .volume_billing(&BillingQuery::default())
        .await
        .unwrap();
    assert!(
        records.records.iter().all(|r| r.status == "completed"),
        "{:?}",
        records.records
    );
    assert!(
        event_kinds(&client)
            .await
            .iter()
            .any(|(k, _)| k == "storage_deletion_notice")
    );

    // At the end of the grace period the data is marked for deletion, naming it; still nothing charged.
    app.admin.admin_advance_clock(24 * 60).await.unwrap();
    app.settle().await;
    let kinds = event_kinds(&client).await;
    let due = kinds
        .iter()
        .find(|(k, _)| k == "storage_deletion_due")
        .unwrap_or_else(|| panic!("{kinds:?}"));
    assert!(
        due.1.contains(&volume) && due.1.contains(&instance),
        "{}",
        due.1
    );
    assert_eq!(balance(&client).await, debt);

    // Credits end the depletion: the volume and the hibernated instance are charged again, per minute.
    app.grant(&account, "50", Currency::USD).await;
    app.settle().await;
    assert!(
        event_kinds(&client)
            .await
            .iter()
            .any(|(k, _)| k == "storage_resumed")
    );
    let hibernated = client.hibernated_instances().await.unwrap().data;
    assert_eq!(hibernated.hourly_cost.0, d("0.01"), "charged again");
    let before = balance(&client).await;
    app.admin.admin_advance_clock(60).await.unwrap();
    app.settle().await;
    // 1024 GB of NVMe at 0.30 per TB-hour is 0.005 a minute; hibernation at 0.01 an hour 0.000167.
    assert_eq!(
        before - balance(&client).await,
        (d("0.005") + d("0.000167")) * d("60")
    );
    assert_balance_is_ledger(&app, &account).await;
    app.stop().await;
}
