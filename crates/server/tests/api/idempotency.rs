//! `Idempotency-Key`: a retried POST replays the first response instead of acting twice; another body
//! under the same key is 422; a retry while the first runs is 409, and a claim its server abandoned is
//! taken over once its lease runs out.

use barrack_api::Tier;
use barrack_api::instances::{DeployRequest, InstanceQuery};
use barrack_client::{Client, RawResponse};
use barrack_core::clock::Clock;
use barrack_store::idempotency::{Claim, NewClaim};
use barrack_store::sql::Columns;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp, create_key_k};

/// Who holds the claims of [`commit_unanswered`]: a server that dies before answering.
const DEAD_SERVER: &str = "died-before-answering";
use crate::on_both_databases;

on_both_databases!(
    a_retried_deploy_replays_the_first_response_and_deploys_once,
    keys_are_per_account_and_forgotten_after_a_day,
    a_retry_while_the_first_runs_is_409_until_its_lease_ends,
    moving_the_clock_does_not_end_the_lease_of_a_running_request,
    other_creates_and_actions_replay_too,
    volume_and_snapshot_changes_store_their_answer_with_the_change,
    credits_and_deposits_store_their_answer_with_the_change,
    a_toggle_and_rules_store_their_answer_with_the_change,
    secrets_shown_once_are_never_kept_for_a_retry,
);

fn deploy_body(name: &str) -> Value {
    json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": name,
        "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "k", "public_ip": false
    })
}

async fn post(client: &Client, path: &str, key: &str, body: &Value) -> RawResponse {
    client
        .with_idempotency_key(key)
        .raw(Method::POST, path, Some(body))
        .await
        .unwrap()
}

async fn instance_count(client: &Client) -> u64 {
    client
        .instances(&InstanceQuery::default())
        .await
        .unwrap()
        .data
        .pagination
        .total
}

async fn a_retried_deploy_replays_the_first_response_and_deploys_once(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;

    let first = post(
        &client,
        "/api/deploy-server/",
        "deploy-1",
        &deploy_body("one"),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert!(first.headers.get("idempotent-replayed").is_none());
    for _ in 0..3 {
        // Fields in another order are the same request.
        let mut reordered = serde_json::Map::new();
        let body = deploy_body("one");
        for (k, v) in body.as_object().unwrap().iter().rev() {
            reordered.insert(k.clone(), v.clone());
        }
        let again = post(
            &client,
            "/api/deploy-server/",
            "deploy-1",
            &Value::Object(reordered),
        )
        .await;
        assert_eq!(again.status, 201);
        assert_eq!(
            again.text, first.text,
            "the very same body, request id and all"
        );
        assert_eq!(again.headers["idempotent-replayed"], "true");
    }
    assert_eq!(instance_count(&client).await, 1);

    // The same key for another request.
    let other = post(
        &client,
        "/api/deploy-server/",
        "deploy-1",
        &deploy_body("two"),
    )
    .await;
    assert_eq!(other.status, 422, "{}", other.text);
    assert_eq!(other.body["code"], "IDEMPOTENCY_MISMATCH");
    let elsewhere = post(
        &client,
        "/api/scripts/",
        "deploy-1",
        &json!({"name": "s", "script": "x"}),
    )
    .await;
    assert_eq!(elsewhere.status, 422);

    // A refused request is kept too: its retry is refused the same way without running again.
    let bad = post(
        &client,
        "/api/deploy-server/",
        "deploy-bad",
        &json!({"gpu_count": 0}),
    )
    .await;
    assert_eq!(bad.status, 400);
    let bad_again = post(
        &client,
        "/api/deploy-server/",
        "deploy-bad",
        &json!({"gpu_count": 0}),
    )
    .await;
    assert_eq!(bad_again.text, bad.text);

    // The response was stored with the instance, by the deploy's own transaction.
    let store = app.services().store();
    let row = store
        .fetch_one(
            "SELECT state, response_status, response_body FROM idempotency_keys WHERE idem_key = 'deploy-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.text(0).unwrap(), "done");
    assert_eq!(row.int(1).unwrap(), 201);
    assert_eq!(row.text(2).unwrap(), first.text);

    // Keys must be visible ASCII.
    let raw = post(
        &client,
        "/api/deploy-server/",
        "has space",
        &deploy_body("three"),
    )
    .await;
    assert_eq!(raw.status, 400);
    assert!(
        raw.body["errors"]["Idempotency-Key"].is_array(),
        "{}",
        raw.text
    );

    // Without a key nothing changes: two deploys are two instances.
    let typed: DeployRequest = serde_json::from_value(deploy_body("four")).unwrap();
    client.deploy(&typed).await.unwrap();
    assert_eq!(instance_count(&client).await, 2);
    app.stop().await;
}

async fn keys_are_per_account_and_forgotten_after_a_day(db: Db) {
    let app = TestApp::start(db).await;
    let (alice, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let (bob, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&alice).await;
    create_key_k(&bob).await;
    let a = post(&alice, "/api/deploy-server/", "same", &deploy_body("alpha")).await;
    let b = post(&bob, "/api/deploy-server/", "same", &deploy_body("bravo")).await;
    assert_eq!(
        (a.status.as_u16(), b.status.as_u16()),
        (201, 201),
        "{}",
        b.text
    );
    assert_ne!(a.body["data"]["instance_id"], b.body["data"]["instance_id"]);

    // A day later the key is free for another request.
    app.clock.advance_ms(24 * 3600 * 1000 + 1);
    let later = post(
        &alice,
        "/api/deploy-server/",
        "same",
        &deploy_body("charlie"),
    )
    .await;
    assert_eq!(later.status, 201, "{}", later.text);
    assert_eq!(instance_count(&alice).await, 2);
    app.stop().await;
}

async fn a_retry_while_the_first_runs_is_409_until_its_lease_ends(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    // A request holding the key on a server that then died: claimed, never completed.
    let body = deploy_body("held");
    let fingerprint = barrack_core::idempotency::fingerprint(
        "POST",
        "/api/deploy-server/",
        &serde_json::to_vec(&body).unwrap(),
    );
    let now = app.clock.now_ms();
    let claimed = app
        .services()
        .store()
        .claim_idempotency_key(&NewClaim {
            account_id: &account,
            key: "held",
            fingerprint: &fingerprint,
            owner: "someone-else",
            now,
            lease_now: now,
            locked_until: now + 10_000,
            expired_before: now - 24 * 3600 * 1000,
        })
        .await
        .unwrap();
    assert_eq!(claimed, Claim::Claimed);

    let busy = post(&client, "/api/deploy-server/", "held", &body).await;
    assert_eq!(busy.status, 409, "{}", busy.text);
    assert_eq!(busy.body["code"], "IDEMPOTENCY_IN_PROGRESS");
    assert_eq!(busy.headers["retry-after"], "1");
    assert_eq!(instance_count(&client).await, 0);

    // Its lease over, the retry takes the claim and runs once; the old holder can no longer complete it.
    app.clock.advance_ms(10_001);
    let ran = post(&client, "/api/deploy-server/", "held", &body).await;
    assert_eq!(ran.status, 201, "{}", ran.text);
    let mut tx = app.services().store().begin().await.unwrap();
    let stale =
        barrack_store::idempotency::complete(&mut tx, &account, "held", "someone-else", 201, "{}")
            .await
            .unwrap();
    assert!(!stale);
    drop(tx);
    let again = post(&client, "/api/deploy-server/", "held", &body).await;
    assert_eq!(again.text, ran.text);
    assert_eq!(instance_count(&client).await, 1);
    app.stop().await;
}

/// A request's claim is leased in real time: moving the simulation clock (which each replica follows
/// at its own moment) does not let a retry take over a request another server is still running.
async fn moving_the_clock_does_not_end_the_lease_of_a_running_request(db: Db) {
    let app = TestApp::start_in_real_time(db, |_| {}).await;
    let (client, account) = app.user(Tier::Advanced).await;
    let body = json!({"name": "web", "region": "FINLAND-1"});
    let fingerprint = barrack_core::idempotency::fingerprint(
        "POST",
        "/api/firewalls/",
        &serde_json::to_vec(&body).unwrap(),
    );
    // Another server's request holds the key, claimed before the move.
    let now = barrack_core::clock::system_now_ms();
    let claimed = app
        .services()
        .store()
        .claim_idempotency_key(&NewClaim {
            account_id: &account,
            key: "running",
            fingerprint: &fingerprint,
            owner: "another-server",
            now,
            lease_now: now,
            locked_until: now + 10_000,
            expired_before: now - 24 * 3600 * 1000,
        })
        .await
        .unwrap();
    assert_eq!(claimed, Claim::Claimed);

    app.admin.admin_advance_clock(600).await.unwrap();
    let retry = post(&client, "/api/firewalls/", "running", &body).await;
    assert_eq!(retry.status, 409, "{}", retry.text);
    assert_eq!(retry.body["code"], "IDEMPOTENCY_IN_PROGRESS");
    let mut tx = app.services().store().begin().await.unwrap();
    assert!(
        barrack_store::idempotency::complete(
            &mut tx,
            &account,
            "running",
            "another-server",
            201,
            "{}"
        )
        .await
        .unwrap(),
        "the running request still holds its claim"
    );
    drop(tx);
    app.stop().await;
}

async fn other_creates_and_actions_replay_too(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let deployed = post(&client, "/api/deploy-server/", "d", &deploy_body("vm")).await;
    let id = deployed.body["data"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.settle().await;

    let stop = format!("/api/instances/{id}/stop/");
    let stopped = post(&client, &stop, "stop-1", &json!({})).await;
    assert_eq!(stopped.status, 200, "{}", stopped.text);
    app.settle().await;
    let replayed = post(&client, &stop, "stop-1", &json!({})).await;
    assert_eq!(
        replayed.text, stopped.text,
        "not a 409 for stopping a stopped instance"
    );
    // No body reads as `{}`: a retry sending the other is the same request, replayed.
    for (action, first, retry) in [
        ("start", None, Some(&b"{}"[..])),
        ("reboot", Some(&b" { } "[..]), None),
    ] {
        let path = format!("/api/instances/{id}/{action}/");
        let key = format!("{action}-1");
        let send = |body: Option<&[u8]>| {
            let client = client.with_idempotency_key(&key);
            let path = path.clone();
            let body = body.map(<[u8]>::to_vec);
            async move { client.raw_bytes(Method::POST, &path, body).await.unwrap() }
        };
        let answered = send(first).await;
        assert_eq!(answered.status, 200, "{action}: {}", answered.text);
        app.settle().await;
        let replayed = send(retry).await;
        assert_eq!(replayed.status, 200, "{action}: {}", replayed.text);
        assert_eq!(replayed.headers["idempotent-replayed"], "true", "{action}");
        assert_eq!(replayed.text, answered.text, "{action}");
    }

    let volume = json!({"name": "data", "size": 10, "region": "FINLAND-1", "volume_type": "NVMe"});
    let v1 = post(&client, "/api/volumes/", "vol", &volume).await;
    let v2 = post(&client, "/api/volumes/", "vol", &volume).await;
    assert_eq!(v1.status, 201, "{}", v1.text);
    assert_eq!(v2.text, v1.text);

    let script = json!({"name": "setup", "script": "#!/bin/sh\necho hi"});
    let s1 = post(&client, "/api/scripts/", "script", &script).await;
    let s2 = post(&client, "/api/scripts/", "script", &script).await;
    assert_eq!(s1.status, 201, "{}", s1.text);
    assert_eq!(s2.text, s1.text, "not a duplicate-name error");

    let firewall = json!({"name": "web", "region": "FINLAND-1"});
    let f1 = post(&client, "/api/firewalls/", "fw", &firewall).await;
    let f2 = post(&client, "/api/firewalls/", "fw", &firewall).await;
    assert_eq!(f1.status, 201, "{}", f1.text);
    assert_eq!(f2.text, f1.text);
    app.stop().await;
}

/// Runs `work` (the service call behind `POST path` with `body`) as a server would that claimed `key`,
/// committed the change, and was killed before answering: nothing is stored after the fact, so only what
/// the change's own transaction stored can answer the retry. `status` is the route's success status.
async fn commit_unanswered<T: serde::Serialize>(
    app: &TestApp,
    account: &str,
    key: &str,
    (path, body, status): (&str, &Value, u16),
    work: impl Future<Output = barrack_core::Result<T>>,
) -> Value {
    let fingerprint =
        barrack_core::idempotency::fingerprint("POST", path, &serde_json::to_vec(body).unwrap());
    let now = app.clock.now_ms();
    let claimed = app
        .services()
        .store()
        .claim_idempotency_key(&NewClaim {
            account_id: account,
            key,
            fingerprint: &fingerprint,
            owner: DEAD_SERVER,
            now,
            lease_now: now,
            locked_until: now + 10_000,
            expired_before: now - 24 * 3600 * 1000,
        })
        .await
        .unwrap();
    assert_eq!(claimed, Claim::Claimed);
    let claim = barrack_core::idempotency::Claim::new(
        account.to_string(),
        key.to_string(),
        DEAD_SERVER.to_string(),
    );
    let done = claim
        .scope(async move {
            barrack_core::idempotency::set_renderer(Box::new(move |data| {
                (status, json!({"success": true, "data": data}).to_string())
            }));
            work.await
        })
        .await
        .unwrap();
    serde_json::to_value(done).unwrap()
}

/// [`commit_unanswered`] for `client`'s account, then the client's retry: the stored answer, replayed.
async fn lost_then_replayed<T: serde::Serialize>(
    (app, client, account): (&TestApp, &Client, &str),
    key: &str,
    request: (&str, &Value, u16),
    work: impl Future<Output = barrack_core::Result<T>>,
) -> Value {
    let data = commit_unanswered(app, account, key, request, work).await;
    assert_replayed(client, request, key, &data).await;
    data
}

/// The retry of a request whose change committed: its stored answer, not a second run.
async fn assert_replayed(
    client: &Client,
    (path, body, status): (&str, &Value, u16),
    key: &str,
    data: &Value,
) {
    let retry = post(client, path, key, body).await;
    assert_eq!(retry.status, status, "{path}: {}", retry.text);
    assert_eq!(retry.headers["idempotent-replayed"], "true", "{path}");
    assert_eq!(&retry.body["data"], data, "{path}");
}

/// A request answered, then retried: the same answer, replayed.
async fn answered_and_replayed(
    client: &Client,
    (path, body, status): (&str, &Value, u16),
    key: &str,
) -> Value {
    let first = post(client, path, key, body).await;
    assert_eq!(first.status, status, "{path}: {}", first.text);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = post(client, path, key, body).await;
    assert_eq!(again.text, first.text, "{path}");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    first.body["data"].clone()
}

/// Resize, snapshot creation and restore, clone, attach and detach store their answer in the transaction that makes
/// the change: a server killed between that commit and its answer leaves the answer, and the client's
/// retry gets it (not a 400 "only grow" for a resize that happened, nor a 409 naming its own snapshot).
async fn volume_and_snapshot_changes_store_their_answer_with_the_change(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account, secret) = app.funded_user_with_key(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let services = app.services();
    let caller = services.accounts.authenticate_key(&secret).await.unwrap();
    let deployed = post(&client, "/api/deploy-server/", "d", &deploy_body("vm")).await;
    let vm = deployed.body["data"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let created = post(
        &client,
        "/api/volumes/",
        "v",
        &json!({"name": "data", "size": 20, "region": "FINLAND-1", "volume_type": "NVMe"}),
    )
    .await;
    let volume = created.body["data"]["id"].as_str().unwrap().to_string();
    app.settle().await;
    let volume_size = || async { client.volume(&volume).await.unwrap().data.size_gb };

    // Resize.
    let resize = format!("/api/volumes/{volume}/resize/");
    let to_30 = json!({"size": 30});
    let data = answered_and_replayed(&client, (&resize, &to_30, 200), "resize-1").await;
    assert_eq!(data["size_gb"], 30);
    app.settle().await;
    let to_40 = json!({"size": 40});
    let data = lost_then_replayed(
        (&app, &client, &account),
        "resize-2",
        (&resize, &to_40, 200),
        services.volumes.resize(
            &caller,
            &volume,
            serde_json::from_value(to_40.clone()).unwrap(),
        ),
    )
    .await;
    app.settle().await;
    assert_eq!(volume_size().await, 40);
    assert_replayed(&client, (&resize, &to_40, 200), "resize-2", &data).await;

    // Snapshot creation.
    let one = json!({"name": "one", "instance_id": vm});
    let snapshot = answered_and_replayed(&client, ("/api/snapshots/", &one, 201), "snap-1").await;
    let snapshot = snapshot["id"].as_str().unwrap().to_string();
    app.settle().await;
    let two = json!({"name": "two", "instance_id": vm, "is_image": true});
    let data = commit_unanswered(
        &app,
        &account,
        "snap-2",
        ("/api/snapshots/", &two, 201),
        services
            .snapshots
            .create(&caller, serde_json::from_value(two.clone()).unwrap()),
    )
    .await;
    assert_eq!(
        (&data["name"], &data["image_count"]),
        (&json!("two"), &json!(1))
    );
    assert_replayed(&client, ("/api/snapshots/", &two, 201), "snap-2", &data).await;
    app.settle().await;
    assert_replayed(&client, ("/api/snapshots/", &two, 201), "snap-2", &data).await;

    // Restoring a snapshot.
    let restore = format!("/api/snapshots/{snapshot}/restore/");
    let restored = json!({"instance_name": "restored"});
    lost_then_replayed(
        (&app, &client, &account),
        "restore-1",
        (&restore, &restored, 201),
        services.instances.restore_from_snapshot(
            &caller,
            &snapshot,
            serde_json::from_value(restored.clone()).unwrap(),
        ),
    )
    .await;
    app.settle().await;
    assert_eq!(instance_count(&client).await, 2);

    // Clone.
    let clone = format!("/api/volumes/{volume}/clone/");
    let copy = json!({"name": "copy"});
    answered_and_replayed(&client, (&clone, &copy, 201), "clone-1").await;
    app.settle().await;
    let copy2 = json!({"name": "copy2"});
    lost_then_replayed(
        (&app, &client, &account),
        "clone-2",
        (&clone, &copy2, 201),
        services.volumes.clone_volume(
            &caller,
            &volume,
            serde_json::from_value(copy2.clone()).unwrap(),
        ),
    )
    .await;
    app.settle().await;

    // Attach and detach.
    let attach = format!("/api/instances/{vm}/attach-volumes/");
    let detach = format!("/api/instances/{vm}/detach-volumes/");
    let ids = json!({"volume_ids": [volume]});
    let request = || serde_json::from_value(ids.clone()).unwrap();
    answered_and_replayed(&client, (&attach, &ids, 200), "attach-1").await;
    app.settle().await;
    lost_then_replayed(
        (&app, &client, &account),
        "detach-1",
        (&detach, &ids, 200),
        services.volumes.detach(&caller, &vm, request()),
    )
    .await;
    app.settle().await;
    lost_then_replayed(
        (&app, &client, &account),
        "attach-2",
        (&attach, &ids, 200),
        services.volumes.attach(&caller, &vm, request()),
    )
    .await;
    app.settle().await;
    assert_eq!(client.volume(&volume).await.unwrap().data.status, "in-use");
    answered_and_replayed(&client, (&detach, &ids, 200), "detach-2").await;
    app.settle().await;
    assert_eq!(
        client.volume(&volume).await.unwrap().data.status,
        "available"
    );
    assert_eq!(volume_size().await, 40);
    app.stop().await;
}

/// A credit grant and a deposit store their answer in the transaction that makes them: a server killed
/// between that commit and its answer leaves the answer, and the retry gets it rather than crediting
/// the account twice or opening a second deposit.
async fn credits_and_deposits_store_their_answer_with_the_change(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account, secret) = app.funded_user_with_key(Tier::Advanced, "US", "100").await;
    let services = app.services();
    let caller = services.accounts.authenticate_key(&secret).await.unwrap();
    let operator = app.admin.profile().await.unwrap().data.id;

    let credits = format!("/api/admin/accounts/{account}/credits/");
    let grant = json!({"amount": "25.00", "currency": "USD", "note": "goodwill"});
    let data = commit_unanswered(
        &app,
        &operator,
        "grant-1",
        (&credits, &grant, 201),
        services.ledger.grant(
            &operator,
            &account,
            "25.00".parse().unwrap(),
            barrack_api::Currency::USD,
            Some("goodwill".into()),
        ),
    )
    .await;
    assert_replayed(&app.admin, (&credits, &grant, 201), "grant-1", &data).await;
    assert_eq!(
        client.balance().await.unwrap().data.balance.to_string(),
        "125",
        "credited once"
    );

    let deposit = json!({"amount": "30.00"});
    let data = commit_unanswered(
        &app,
        &account,
        "deposit-1",
        ("/api/deposits/", &deposit, 201),
        services
            .deposits
            .create(&caller, serde_json::from_value(deposit.clone()).unwrap()),
    )
    .await;
    assert_replayed(
        &client,
        ("/api/deposits/", &deposit, 201),
        "deposit-1",
        &data,
    )
    .await;
    let deposits = client
        .deposits(&barrack_api::PageQuery::default())
        .await
        .unwrap()
        .data;
    assert_eq!(deposits.pagination.total, 1, "one deposit opened");

    app.stop().await;
}

/// The public IP's toggle, rule additions, firewall creation and attachment store their answer with the change: a
/// retry after a lost answer replays it, rather than toggling the address back or refusing its own rule
/// or name as a duplicate.
async fn a_toggle_and_rules_store_their_answer_with_the_change(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account, secret) = app.funded_user_with_key(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let services = app.services();
    let caller = services.accounts.authenticate_key(&secret).await.unwrap();
    let deployed = post(&client, "/api/deploy-server/", "d", &deploy_body("vm")).await;
    let vm = deployed.body["data"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.settle().await;

    let toggle = format!("/api/instances/{vm}/toggle-public-ip/");
    let data = commit_unanswered(
        &app,
        &account,
        "toggle-1",
        (&toggle, &json!({}), 200),
        services.instances.toggle_public_ip(&caller, &vm),
    )
    .await;
    assert_eq!(data["public_ip"], true);
    assert_replayed(&client, (&toggle, &json!({}), 200), "toggle-1", &data).await;
    assert!(
        client.instance(&vm).await.unwrap().data.public_ip,
        "toggled once"
    );

    let ssh = json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22});
    let rules = format!("/api/instances/{vm}/security-rules/");
    lost_then_replayed(
        (&app, &client, &account),
        "rule-1",
        (&rules, &ssh, 201),
        services
            .instances
            .add_rule(&caller, &vm, serde_json::from_value(ssh.clone()).unwrap()),
    )
    .await;

    let edge =
        json!({"name": "edge", "region": "FINLAND-1", "rules": [ssh], "labels": {"team": "ml"}});
    let data = commit_unanswered(
        &app,
        &account,
        "firewall-1",
        ("/api/firewalls/", &edge, 201),
        services
            .firewalls
            .create(&caller, serde_json::from_value(edge.clone()).unwrap()),
    )
    .await;
    assert_replayed(
        &client,
        ("/api/firewalls/", &edge, 201),
        "firewall-1",
        &data,
    )
    .await;
    let firewall = data["id"].as_str().unwrap().to_string();
    // What the creation answered is what the firewall reads as.
    let shown = client
        .raw(Method::GET, &format!("/api/firewalls/{firewall}/"), None)
        .await
        .unwrap();
    assert_eq!(shown.body["data"], data);
    let https = json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 443, "port_range_max": 443});
    let rules = format!("/api/firewalls/{firewall}/rules/");
    lost_then_replayed(
        (&app, &client, &account),
        "rule-2",
        (&rules, &https, 201),
        services.firewalls.add_rule(
            &caller,
            &firewall,
            serde_json::from_value(https.clone()).unwrap(),
        ),
    )
    .await;

    // Attaching (to a firewall made): the retry is the first answer, not 409 for an attachment of its own.
    app.settle().await;
    let attach = format!("/api/firewalls/{firewall}/attach/");
    let to_vm = json!({"instance_ids": [vm]});
    lost_then_replayed(
        (&app, &client, &account),
        "attach-1",
        (&attach, &to_vm, 200),
        services.firewalls.attach(
            &caller,
            &firewall,
            serde_json::from_value(to_vm.clone()).unwrap(),
        ),
    )
    .await;
    app.stop().await;
}

/// A response carrying a secret shown once is never stored for a retry (the database would then hold
/// the secret itself): the key is ignored, and the retry runs again (a key's name is then taken, a
/// webhook gets a secret of its own).
async fn secrets_shown_once_are_never_kept_for_a_retry(db: Db) {
    // A webhook's target must resolve: a local one, which an operator allows here.
    let app = TestApp::start_with(db, |c| {
        c.webhooks.allowed_targets = vec!["127.0.0.1".into()];
    })
    .await;
    let (client, account) = app.funded_user(Tier::Advanced, "US", "10").await;
    let operator_keys = format!("/api/admin/users/{account}/api-keys/");
    let key = json!({"name": "ci", "tier": "advanced"});
    let own_key = json!({"name": "laptop", "tier": "advanced"});
    let hook = json!({"url": "http://127.0.0.1:9/barrack"});
    for (client, path, body, again) in [
        (&app.admin, operator_keys.as_str(), &key, 409),
        (&client, "/api/api-keys/", &own_key, 409),
        (&client, "/api/webhooks/", &hook, 201),
    ] {
        let first = post(client, path, "secret-1", body).await;
        assert_eq!(first.status, 201, "{path}: {}", first.text);
        let retry = post(client, path, "secret-1", body).await;
        assert_eq!(retry.status, again, "{path}: {}", retry.text);
        assert!(retry.headers.get("idempotent-replayed").is_none(), "{path}");
        assert!(
            !retry
                .text
                .contains(first.body["data"]["key"].as_str().unwrap_or("none"))
                && !retry
                    .text
                    .contains(first.body["data"]["secret"].as_str().unwrap_or("none")),
            "{path}: the first secret came back"
        );
    }
    app.stop().await;
}
