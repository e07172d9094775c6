//! Preflight and holds: `POST /api/deploy-server/preflight/` makes every check of a deploy of the same body
//! and answers its price without creating or charging anything; its errors are the deploy's, byte for byte.
//! With `hold: true` the GPUs and the address are reserved for a minute under a `hold_id`: stock shows them
//! taken, the deploy that names the hold gets exactly them, and an unused hold gives them back when the
//! platform clock passes its expiry, once, on whichever server.

use barrack_api::catalog::{CapacitySetting, SetCapacityRequest};
use barrack_api::instances::{DeployRequest, InstanceQuery, Preflight};
use barrack_api::ledger::TransactionQuery;
use barrack_api::{Currency, Tier};
use barrack_client::Client;
use barrack_core::clock::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{
    Db, TestApp, assert_derived_state_consistent, client_of, create_key_k, deploy_id,
};
use crate::on_both_databases;

on_both_databases!(
    a_preflight_creates_nothing_and_costs_nothing,
    every_check_answers_what_the_deploy_answers,
    a_hold_takes_stock_that_only_its_deploy_gets,
    an_unused_hold_is_given_back_at_its_expiry_or_release,
    a_hold_survives_a_restart,
    concurrent_holds_never_overcommit,
    holds_count_against_the_balance_as_the_instances_they_would_deploy,
    concurrent_deploys_use_a_hold_once,
    a_hold_ends_once_across_servers,
);

const MODEL: &str = "H100-SXM5-80GB";
const REGION: &str = "FINLAND-1";
const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";
const PREFLIGHT: &str = "/api/deploy-server/preflight/";
const DEPLOY: &str = "/api/deploy-server/";

fn body(name: &str, count: u32) -> Value {
    json!({
        "gpu_model": MODEL, "gpu_count": count, "region": REGION, "instance_name": name,
        "image_name": IMAGE, "ssh_key": "k"
    })
}

fn request(body: &Value) -> DeployRequest {
    serde_json::from_value(body.clone()).unwrap()
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

async fn set_capacity(app: &TestApp, total: u32) {
    app.admin
        .admin_set_capacity(&SetCapacityRequest {
            capacity: vec![CapacitySetting {
                region: REGION.into(),
                gpu_model: MODEL.into(),
                total,
            }],
        })
        .await
        .unwrap();
}

/// A server whose FINLAND-1 has `total` H100s, and a funded account holding the SSH key `k`.
async fn app_with_capacity(db: Db, total: u32) -> (TestApp, Client) {
    let app = TestApp::start(db).await;
    set_capacity(&app, total).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    (app, client)
}

async fn free_gpus(app: &TestApp) -> u32 {
    crate::common::free_gpus(app, REGION, MODEL).await
}

async fn addresses_handed_out(app: &TestApp) -> usize {
    app.services()
        .store()
        .public_ip_assignments()
        .await
        .unwrap()
        .len()
}

/// A hold of `count` GPUs for `name`.
async fn reserve(client: &Client, name: &str, count: u32) -> Preflight {
    let mut request = request(&body(name, count));
    request.hold = true;
    client.preflight(&request).await.unwrap().data
}

/// The status releasing hold `id` answers with.
async fn release_status(client: &Client, id: &str) -> u16 {
    match client.release_hold(id).await {
        Ok(_) => 200,
        Err(e) => e.status().unwrap(),
    }
}

/// Status and body of an answer, without what differs between any two requests.
fn answer(raw: &barrack_client::RawResponse) -> (u16, Value) {
    let mut body = raw.body.clone();
    if let Some(object) = body.as_object_mut() {
        object.remove("request_id");
    }
    (raw.status.as_u16(), body)
}

async fn a_preflight_creates_nothing_and_costs_nothing(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "DE", "100").await;
    create_key_k(&client).await;
    let balance = client.balance().await.unwrap().data;
    let ledger = client
        .transactions(&TransactionQuery::default())
        .await
        .unwrap()
        .data;
    let stock = free_gpus(&app).await;
    let addresses = addresses_handed_out(&app).await;
    let jobs = app.services().store().unfinished_jobs().await.unwrap();

    let sent = with(
        body("planned", 2),
        "volumes",
        json!([{"name": "data", "size": 100, "volume_type": "NVMe"}]),
    );
    let raw = client
        .raw(Method::POST, PREFLIGHT, Some(&sent))
        .await
        .unwrap();
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(raw.body["message"], "Preflight passed");
    let data = &raw.body["data"];
    assert_eq!(
        data["checks"],
        json!([
            "fields",
            "tier_and_region",
            "profile",
            "balance",
            "references",
            "placement"
        ])
    );
    assert_eq!(data["currency"], "EUR", "the account's currency");
    assert!(data.get("hold").is_none(), "{data}");

    // Nothing was written: no instance, no volume, no charge, no job, the stock and addresses as they were.
    app.settle().await;
    assert_eq!(
        client.balance().await.unwrap().data.balance,
        balance.balance
    );
    let after = client
        .transactions(&TransactionQuery::default())
        .await
        .unwrap()
        .data;
    assert_eq!(after.pagination.total, ledger.pagination.total);
    let instances = client.instances(&InstanceQuery::default()).await.unwrap();
    assert_eq!(instances.data.pagination.total, 0);
    let volumes = client.volumes(&Default::default()).await.unwrap().data;
    assert_eq!(volumes.pagination.total, 0);
    assert_eq!(free_gpus(&app).await, stock);
    assert_eq!(addresses_handed_out(&app).await, addresses);
    assert_eq!(
        app.services().store().unfinished_jobs().await.unwrap(),
        jobs
    );

    // The price is the deploy's, exactly, in the same decimals.
    let deployed = client.raw(Method::POST, DEPLOY, Some(&sent)).await.unwrap();
    assert_eq!(deployed.status, 201, "{}", deployed.text);
    let billing = &deployed.body["data"]["billing"];
    assert_eq!(data["price_per_hour"], billing["total_hourly_rate"]);
    let mut breakdown = billing["breakdown"].clone();
    breakdown["storage"]["data_volumes"][0]["volume_id"] = json!("");
    assert_eq!(
        data["breakdown"], breakdown,
        "a new volume has no id before it is created"
    );
    assert_eq!(data["currency"], billing["currency"]);
    assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

async fn every_check_answers_what_the_deploy_answers(db: Db) {
    let app = TestApp::start(db).await;
    let (client, id) = app.user(Tier::Advanced).await;
    create_key_k(&client).await;
    let (other, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let others_volume = other
        .create_volume(
            &serde_json::from_value(
                json!({"name": "theirs", "size": 100, "volume_type": "NVMe", "region": REGION}),
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .data
        .id;
    let same = |what: &'static str, sent: Value| {
        let client = client.clone();
        async move {
            let preflight = client
                .raw(Method::POST, PREFLIGHT, Some(&sent))
                .await
                .unwrap();
            let deploy = client.raw(Method::POST, DEPLOY, Some(&sent)).await.unwrap();
            assert_eq!(answer(&preflight), answer(&deploy), "{what}");
            assert!(
                preflight.status.as_u16() >= 400,
                "{what}: {}",
                preflight.text
            );
            preflight.status.as_u16()
        }
    };

    // 400: fields, all at once; an unknown field; hold on a deploy.
    let bad = with(
        with(body("x", 3), "image_name", Value::Null),
        "gpu_model",
        json!(MODEL),
    );
    assert_eq!(same("fields", bad).await, 400);
    assert_eq!(
        same("unknown field", with(body("x1", 1), "colour", json!("red"))).await,
        400
    );
    // 413: cloud_init over 16384 bytes.
    assert_eq!(
        same(
            "cloud_init",
            with(body("big", 1), "cloud_init", json!("#".repeat(16385)))
        )
        .await,
        413
    );
    // 400: tier and region, image of another region.
    assert_eq!(
        same("tier", with(body("legacy", 1), "region", json!("CANADA-1"))).await,
        400
    );
    let other_image = with(
        body("img", 1),
        "image_name",
        json!("Ubuntu Server 22.04 LTS R550 CUDA 12.4"),
    );
    assert_eq!(same("image", other_image).await, 400);
    // 403: profile incomplete.
    assert_eq!(same("profile", body("no-profile", 1)).await, 403);
    client
        .update_profile(&barrack_api::account::ProfileUpdate {
            address_line: Some(Some("1 Main St".into())),
            postal_code: Some(Some("10001".into())),
            country: Some(Some("US".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    // 402: below the minimum, then below the first hour of 8 GPUs.
    assert_eq!(same("minimum", body("no-money", 1)).await, 402);
    app.grant(&id, "10", Currency::USD).await;
    assert_eq!(same("first hour", body("too-big", 8)).await, 402);
    // 404: the SSH key, the script, a volume of another account, a hold of nobody.
    assert_eq!(
        same("key", with(body("no-key", 1), "ssh_key", json!("nope"))).await,
        404
    );
    assert_eq!(
        same(
            "script",
            with(body("no-script", 1), "script_id", json!("BRK-AAAAAAC"))
        )
        .await,
        404
    );
    let theirs = with(
        body("theirs", 1),
        "existing_volumes",
        json!([others_volume]),
    );
    assert_eq!(same("volume", theirs).await, 404);
    assert_eq!(
        same(
            "hold",
            with(body("no-hold", 1), "hold_id", json!("hold-nobody"))
        )
        .await,
        404
    );
    // 503: stock.
    app.grant(&id, "100", Currency::USD).await;
    set_capacity(&app, 4).await;
    assert_eq!(same("stock", body("no-stock", 8)).await, 503);
    // 409: a name taken (the deploy of the same body then succeeds once: compare on a taken name).
    client.deploy(&request(&body("taken", 1))).await.unwrap();
    assert_eq!(same("name", body("taken", 1)).await, 409);
    // hold is the preflight's alone.
    let held = with(body("held", 1), "hold", json!(true));
    let refused = client.raw(Method::POST, DEPLOY, Some(&held)).await.unwrap();
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.body["errors"]["hold"].is_array(),
        "{}",
        refused.text
    );

    assert_eq!(
        client
            .instances(&InstanceQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        1,
        "only the deploy that passed"
    );
    assert_eq!(free_gpus(&app).await, 3);
    assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

async fn a_hold_takes_stock_that_only_its_deploy_gets(db: Db) {
    let app = TestApp::start(db).await;
    set_capacity(&app, 4).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let (rival, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    create_key_k(&rival).await;

    let held = reserve(&client, "trainer", 4).await;
    let hold = held.hold.expect("a hold");
    assert_eq!(held.checks.last().map(String::as_str), Some("placement"));
    assert_eq!((hold.status.as_str(), hold.gpu_count), ("held", 4));
    let address = hold.ip_address.clone().expect("an address held");
    assert_eq!(
        barrack_core::clock::parse_iso(&hold.expires_at),
        Some(crate::common::START_MS + 60_000)
    );
    assert_eq!(free_gpus(&app).await, 0, "stock shows the hold to everyone");

    // Everyone else is out of stock, in preflight as in deploy.
    for path in [PREFLIGHT, DEPLOY] {
        let e = rival
            .raw(Method::POST, path, Some(&body("rival", 1)))
            .await
            .unwrap();
        assert_eq!(
            (e.status.as_u16(), e.body["code"].as_str()),
            (503, Some("GPU_UNAVAILABLE")),
            "{path}"
        );
    }
    // Another account's hold is not found, for deploy, preflight and release alike.
    let theirs = with(body("thief", 4), "hold_id", json!(hold.hold_id));
    for path in [PREFLIGHT, DEPLOY] {
        let e = rival.raw(Method::POST, path, Some(&theirs)).await.unwrap();
        assert_eq!(e.status, 404, "{path}: {}", e.text);
    }
    assert_eq!(release_status(&rival, &hold.hold_id).await, 404);

    // A body that asks for something else is 400 naming each field.
    let mut mismatched = with(body("trainer", 2), "region", json!("FINLAND-2"));
    mismatched["hold_id"] = json!(hold.hold_id);
    let e = client
        .raw(Method::POST, DEPLOY, Some(&mismatched))
        .await
        .unwrap();
    assert_eq!(e.status, 400, "{}", e.text);
    let mut fields: Vec<&String> = e.body["errors"].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["gpu_count", "region"]);
    let no_address = with(
        with(body("trainer", 4), "hold_id", json!(hold.hold_id)),
        "public_ip",
        json!(false),
    );
    let e = client
        .raw(Method::POST, DEPLOY, Some(&no_address))
        .await
        .unwrap();
    assert_eq!(e.status, 400, "{}", e.text);
    assert!(e.body["errors"]["public_ip"].is_array());

    // A preflight of the deploy with the hold passes (and checks the hold); the deploy gets exactly what
    // was held although there is no stock.
    let mine = with(body("trainer", 4), "hold_id", json!(hold.hold_id));
    let checked = client.preflight(&request(&mine)).await.unwrap().data;
    assert!(checked.checks.contains(&"hold".to_string()));
    assert_eq!(free_gpus(&app).await, 0);
    let instance_id = deploy_id(&client, &request(&mine)).await;
    app.settle().await;
    let instance = client.instance(&instance_id).await.unwrap().data;
    assert_eq!(instance.status, "ACTIVE");
    assert_eq!(instance.ip_address.as_deref(), Some(address.as_str()));
    assert_eq!(free_gpus(&app).await, 0);
    assert_derived_state_consistent(app.services().store()).await;

    // Used once.
    let again = client
        .raw(
            Method::POST,
            DEPLOY,
            Some(&with(mine, "instance_name", json!("second"))),
        )
        .await
        .unwrap();
    assert_eq!(
        (again.status.as_u16(), again.body["code"].as_str()),
        (409, Some("HOLD_ENDED")),
        "{}",
        again.text
    );
    assert_eq!(release_status(&client, &hold.hold_id).await, 409);
    // Its expiry changes nothing: the instance has the GPUs and the address.
    app.clock.advance_ms(120_000);
    app.settle().await;
    assert_eq!(free_gpus(&app).await, 0);
    assert_eq!(
        client
            .instance(&instance_id)
            .await
            .unwrap()
            .data
            .ip_address
            .as_deref(),
        Some(address.as_str())
    );
    assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

async fn an_unused_hold_is_given_back_at_its_expiry_or_release(db: Db) {
    let (app, client) = app_with_capacity(db, 8).await;
    let addresses = addresses_handed_out(&app).await;

    let hold = reserve(&client, "later", 8).await.hold.unwrap();
    assert_eq!(free_gpus(&app).await, 0);
    assert_eq!(addresses_handed_out(&app).await, addresses + 1);
    app.clock.advance_ms(59_000);
    app.settle().await;
    assert_eq!(
        free_gpus(&app).await,
        0,
        "still held a second before expiry"
    );
    app.clock.advance_ms(1_000);
    app.settle().await;
    assert_eq!(free_gpus(&app).await, 8, "given back at expiry");
    assert_eq!(addresses_handed_out(&app).await, addresses);
    let late = client
        .raw(
            Method::POST,
            DEPLOY,
            Some(&with(body("later", 8), "hold_id", json!(hold.hold_id))),
        )
        .await
        .unwrap();
    assert_eq!(
        (late.status.as_u16(), late.body["code"].as_str()),
        (409, Some("HOLD_ENDED")),
        "{}",
        late.text
    );
    assert!(late.text.contains("expired at"), "{}", late.text);
    assert_derived_state_consistent(app.services().store()).await;

    // Past its time but not yet collected, a hold is not usable either.
    let stale = hold_for_deploy(&client, "stale").await;
    app.clock.advance_ms(60_000);
    let e = client
        .raw(Method::POST, DEPLOY, Some(&stale))
        .await
        .unwrap();
    assert_eq!(e.status, 409, "{}", e.text);
    app.settle().await;
    assert_eq!(free_gpus(&app).await, 8);

    // Released early: given back at once, once.
    let released = reserve(&client, "early", 8).await.hold.unwrap();
    assert_eq!(free_gpus(&app).await, 0);
    let raw = client
        .raw(
            Method::DELETE,
            &format!("/api/deploy-server/holds/{}/", released.hold_id),
            None,
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(raw.body["data"]["status"], "released");
    assert_eq!(free_gpus(&app).await, 8);
    assert_eq!(addresses_handed_out(&app).await, addresses);
    assert_eq!(release_status(&client, &released.hold_id).await, 409);
    app.clock.advance_ms(120_000);
    app.settle().await;
    assert_eq!(
        free_gpus(&app).await,
        8,
        "its expiry gives nothing back twice"
    );
    assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

/// A hold of 8 GPUs and the body of the deploy that would use it.
async fn hold_for_deploy(client: &Client, name: &str) -> Value {
    let hold = reserve(client, name, 8).await.hold.unwrap();
    with(body(name, 8), "hold_id", json!(hold.hold_id))
}

async fn a_hold_survives_a_restart(db: Db) {
    let (mut app, client) = app_with_capacity(db, 8).await;
    let kept = hold_for_deploy(&client, "kept").await;
    app.restart_with(|_| {}).await;
    assert_eq!(free_gpus(&app).await, 0, "held across the restart");
    let instance_id = deploy_id(&client, &request(&kept)).await;
    app.settle().await;
    assert_eq!(
        client.instance(&instance_id).await.unwrap().data.status,
        "ACTIVE"
    );

    // And an unused one still expires after a restart.
    client.delete_instance(&instance_id).await.unwrap();
    app.settle().await;
    reserve(&client, "forgotten", 8).await;
    app.restart_with(|_| {}).await;
    assert_eq!(free_gpus(&app).await, 0);
    app.clock.advance_ms(61_000);
    app.settle().await;
    assert_eq!(free_gpus(&app).await, 8);
    assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

async fn concurrent_holds_never_overcommit(db: Db) {
    let (app, client) = app_with_capacity(db, 10).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let client = client.clone();
            let mut request = request(&body(&format!("worker-{i}"), 1));
            request.hold = true;
            tokio::spawn(async move { client.preflight(&request).await })
        })
        .collect();
    let (mut held, mut unavailable) = (vec![], 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(answer) => held.push(answer.data.hold.unwrap()),
            Err(e) if e.code() == Some("GPU_UNAVAILABLE") => unavailable += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((held.len(), unavailable), (10, 6));
    let mut addresses: Vec<_> = held.iter().map(|h| h.ip_address.clone().unwrap()).collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 10, "an address each");
    assert_eq!(free_gpus(&app).await, 0);
    assert_derived_state_consistent(app.services().store()).await;
    app.clock.advance_ms(60_000);
    app.settle().await;
    assert_eq!(free_gpus(&app).await, 10);
    assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

/// Holds cost nothing while held, yet each counts in the balance's check of the next, as an instance
/// of its GPUs would: an account with the credit for two hours of two GPUs holds two, not the region's
/// stock, however many it asks for at once; once they end it may hold again.
async fn holds_count_against_the_balance_as_the_instances_they_would_deploy(db: Db) {
    let app = TestApp::start(db).await;
    set_capacity(&app, 16).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "6").await;
    create_key_k(&client).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            let mut request = request(&body(&format!("hog-{i}"), 1));
            request.hold = true;
            tokio::spawn(async move { client.preflight(&request).await })
        })
        .collect();
    let (mut held, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => held += 1,
            Err(e) if e.status() == Some(402) => {
                // The two holds' GPUs are what is committed; rates are shown as prices are (4 places).
                let message = e.to_string();
                assert!(
                    message.contains(
                        "4.98 USD per hour already committed and 2.5193 USD per hour more asked"
                    ),
                    "{message}"
                );
                refused += 1
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // An hour of one H100 and its disk is 2.5193, of two 5.0093 (6 covers it), of three 7.50.
    assert_eq!((held, refused), (2, 6));
    assert_eq!(free_gpus(&app).await, 14);
    app.clock.advance_ms(60_000);
    app.settle().await;
    assert_eq!(free_gpus(&app).await, 16);
    reserve(&client, "after", 1).await;
    app.stop().await;
}

async fn concurrent_deploys_use_a_hold_once(db: Db) {
    let (app, client) = app_with_capacity(db, 8).await;
    let hold = reserve(&client, "first", 8).await.hold.unwrap();
    // Eight deploys name the hold at once, and the account releases it meanwhile.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            let sent = with(
                body(&format!("taker-{i}"), 8),
                "hold_id",
                json!(hold.hold_id),
            );
            tokio::spawn(
                async move { client.raw(Method::POST, DEPLOY, Some(&sent)).await.unwrap() },
            )
        })
        .collect();
    let released = release_status(&client, &hold.hold_id).await;
    let mut statuses = vec![];
    for task in tasks {
        let answer = task.await.unwrap();
        if answer.status != 201 {
            assert_eq!(answer.body["code"], "HOLD_ENDED", "{}", answer.text);
        }
        statuses.push(answer.status.as_u16());
    }
    let deployed = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(
        (deployed, released == 200),
        if released == 200 {
            (0, true)
        } else {
            (1, false)
        },
        "{statuses:?}, release {released}"
    );
    app.settle().await;
    assert_eq!(free_gpus(&app).await, if deployed == 1 { 0 } else { 8 });
    assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

async fn a_hold_ends_once_across_servers(db: Db) {
    let app = TestApp::start(db).await;
    set_capacity(&app, 8).await;
    let (client, _, key) = app.funded_user_with_key(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    // An instance holds GPUs too, so a hold given back twice would show as too few allocated.
    client.deploy(&request(&body("running", 2))).await.unwrap();
    let other = app.replica().await;
    let replica = client_of(&other, &key);
    for round in 0..4 {
        let hold = reserve(&client, &format!("race-{round}"), 2)
            .await
            .hold
            .unwrap();
        app.clock.advance_ms(60_000);
        // Both servers run the expiry while the account releases it through the replica.
        let (_, second, released) = tokio::join!(
            app.settle(),
            other.settle(),
            release_status(&replica, &hold.hold_id)
        );
        second.unwrap();
        assert!([200, 409].contains(&released), "{released}");
        assert_eq!(free_gpus(&app).await, 6, "round {round}");
        assert_derived_state_consistent(app.services().store()).await;
    }
    other.shutdown().await;
    app.stop().await;
}
