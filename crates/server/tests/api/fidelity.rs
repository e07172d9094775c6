//! What the published docs say and clients generated from them do: Start on a hibernated instance,
//! optional fields sent as `null`, `""` or `[]`, transaction ids, and the documented status codes.

use barrack_api::Tier;
use barrack_api::ledger::TransactionQuery;
use barrack_client::InstanceActionKind;
use barrack_store::ai::AiRequestRow;
use barrack_store::ledger::{self, LedgerEntryRow};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp, create_key_k, deploy_id};
use crate::on_both_databases;

on_both_databases!(
    start_restores_a_hibernated_instance,
    null_empty_and_empty_lists_mean_absent,
    transaction_ids_follow_the_id_pattern,
    a_taken_ledger_id_gets_another,
    an_ai_call_is_recorded_once_and_its_entry_keeps_the_id_it_went_in_under,
    a_query_parameter_a_list_does_not_know_is_refused,
);

const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

fn is_id(id: &str, suffix: char) -> bool {
    let Some(rest) = id.strip_prefix("BRK-") else {
        return false;
    };
    rest.len() == 7
        && rest.ends_with(suffix)
        && rest[..6]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The VM management page: Start is available for instances in SHUTOFF or HIBERNATED.
async fn start_restores_a_hibernated_instance(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "500").await;
    create_key_k(&client).await;
    let request = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "sleeper",
        "image_name": IMAGE, "ssh_key": "k"
    }))
    .unwrap();
    let id = deploy_id(&client, &request).await;
    app.settle().await;
    client
        .instance_action(&id, InstanceActionKind::Hibernate)
        .await
        .unwrap();
    app.settle().await;
    let hibernated = client.instance(&id).await.unwrap().data;
    assert_eq!(hibernated.status, "HIBERNATED");
    assert_eq!(hibernated.allowed_actions, ["start", "restore", "delete"]);

    let started = client
        .instance_action(&id, InstanceActionKind::Start)
        .await
        .unwrap()
        .data;
    assert_eq!(
        (started.status.as_str(), started.target_status.as_str()),
        ("RESTORING", "ACTIVE")
    );
    assert_eq!(started.action, "restore", "what runs is a restore");
    app.settle().await;
    let active = client.instance(&id).await.unwrap().data;
    assert_eq!(active.status, "ACTIVE");
    assert!(
        active.ip_address.is_some(),
        "restored with an address again"
    );
    // Start from ACTIVE is still refused, naming what is allowed.
    let wrong = client
        .instance_action(&id, InstanceActionKind::Start)
        .await
        .unwrap_err();
    assert_eq!(wrong.status(), Some(409));
    app.stop().await;
}

/// Generated clients send every optional field: `null`, `""` and `[]` mean "absent". The documented
/// deploy example sends `volume_id` with `boot_from_volume: false`, which boots from the image. Unknown
/// fields are still refused.
async fn null_empty_and_empty_lists_mean_absent(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "500").await;
    create_key_k(&client).await;
    let deploy = |body: Value| {
        let client = client.clone();
        async move {
            client
                .raw(Method::POST, "/api/deploy-server/", Some(&body))
                .await
                .unwrap()
        }
    };
    let base = json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "image_name": IMAGE,
        "ssh_key": "k"
    });
    let with = |name: &str, extra: Value| {
        let mut body = base.clone();
        body["instance_name"] = json!(name);
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let nulls = with(
        "all-null",
        json!({"volume_id": null, "boot_from_volume": null, "public_ip": null, "security_rules": null,
               "cloud_init": null, "os_volume": null, "existing_volumes": null, "volumes": null,
               "script_id": null}),
    );
    let empties = with(
        "all-empty",
        json!({"volume_id": "", "boot_from_volume": false, "security_rules": [], "cloud_init": "",
               "existing_volumes": [], "volumes": [], "script_id": ""}),
    );
    let documented = with(
        "documented",
        json!({"volume_id": "string", "boot_from_volume": false, "public_ip": true}),
    );
    for body in [nulls, empties, documented] {
        let raw = deploy(body.clone()).await;
        assert_eq!(raw.status, 201, "{body}: {}", raw.text);
        assert_eq!(raw.body["data"]["boot_source"], "image");
        assert_eq!(
            raw.body["data"]["billing"]["breakdown"]["storage"]["os_volume"]["size_gb"], 100,
            "the default OS volume"
        );
    }
    let listed = client.instances(&Default::default()).await.unwrap().data;
    let all_null = listed
        .instances
        .iter()
        .find(|i| i.name == "all-null")
        .unwrap();
    assert!(all_null.public_ip, "public_ip: null is the default, true");
    assert!(all_null.script_id.is_none());

    // Blank optional strings elsewhere: a description, a public key, a restore name.
    let raw = client
        .raw(
            Method::POST,
            "/api/ssh-keys/",
            Some(&json!({"name": "generated", "public_key": ""})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    assert!(
        raw.body["data"]["private_key"].is_string(),
        "a blank key is generated"
    );

    // Unknown fields stay 400, naming the field.
    let raw = deploy(with("typo", json!({"volume_ids": []}))).await;
    assert_eq!(raw.status, 400, "{}", raw.text);
    assert!(raw.body["errors"]["volume_ids"].is_array(), "{}", raw.text);
    // A name is trimmed of the spaces around it, then checked, as every resource's is.
    let raw = deploy(with(" trimmed ", json!({}))).await;
    assert_eq!(raw.status, 201, "{}", raw.text);
    let id = raw.body["data"]["instance_id"].as_str().unwrap();
    assert_eq!(client.instance(id).await.unwrap().data.name, "trimmed");
    // And `""` is not a name: required fields are not optional.
    let raw = deploy(with("", json!({}))).await;
    assert_eq!(raw.status, 400);
    assert!(
        raw.body["errors"]["instance_name"].is_array(),
        "{}",
        raw.text
    );
    app.stop().await;
}

/// A misspelt filter is a 400 naming it, not a list with no filter; labels and the documented
/// parameters pass, and a filter that could only ever be empty (deleted instances) says so.
async fn a_query_parameter_a_list_does_not_know_is_refused(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "500").await;
    let get = async |path: &str| client.raw(Method::GET, path, None).await.unwrap();
    for (path, field) in [
        ("/api/instances/?statu=ACTIVE", "statu"),
        ("/api/instances/billing/?page=1&foo=bar", "foo"),
        ("/api/volumes/?regoin=FINLAND-1", "regoin"),
        ("/api/transactions/?type=grant&limt=5", "limt"),
        ("/api/events/?pgae=2", "pgae"),
        ("/api/instances/?status=DELETED", "status"),
        ("/api/ssh-keys/?limit=abc", "limit"),
        ("/api/api-keys/?page=2", "page"),
        ("/api/webhooks/?limit=1", "limit"),
    ] {
        let raw = get(path).await;
        assert_eq!(raw.status, 400, "{path}: {}", raw.text);
        assert_eq!(raw.body["code"], "VALIDATION_ERROR", "{path}");
        assert!(raw.body["errors"][field].is_array(), "{path}: {}", raw.text);
    }
    // A status no instance has is answered with those it can have.
    let unknown = get("/api/instances/?status=bogus").await;
    assert_eq!(unknown.status, 400);
    let message = unknown.body["errors"]["status"][0].as_str().unwrap();
    assert!(
        message.starts_with("Unknown status 'bogus'. Valid values: CREATING, ACTIVE"),
        "{message}"
    );
    // Exactly those a list accepts: not DELETED, which is refused.
    assert!(
        message.ends_with("DELETING, ERROR") && !message.contains("DELETED"),
        "{message}"
    );
    for path in [
        "/api/instances/?status=ACTIVE&page=1&limit=5&label=team=ml&label=env",
        "/api/volumes/?label=team",
        "/api/transactions/?page=1&limit=5",
        "/api/events/?page=1",
        "/api/ssh-keys/",
    ] {
        let raw = get(path).await;
        assert_eq!(raw.status, 200, "{path}: {}", raw.text);
    }
    app.stop().await;
}

/// Ledger entries are `BRK-` + 6 characters + `T`, like every other id.
async fn transaction_ids_follow_the_id_pattern(db: Db) {
    let app = TestApp::start(db).await;
    let (client, id) = app.funded_user(Tier::Legacy, "US", "10").await;
    app.grant(&id, "5", barrack_api::Currency::USD).await;
    let list = client
        .transactions(&TransactionQuery::default())
        .await
        .unwrap()
        .data;
    assert_eq!(list.transactions.len(), 2);
    for t in &list.transactions {
        assert!(is_id(&t.id, 'T'), "{}", t.id);
    }
    app.stop().await;
}

/// A funded account, and the id of its grant's ledger entry (an id a new entry may draw again).
async fn funded_with_entry(app: &TestApp) -> (String, String) {
    let (_, account) = app.funded_user(Tier::Legacy, "US", "10").await;
    let (entries, _) = app
        .services()
        .store()
        .ledger_entries(&account, &Default::default(), 0, 10)
        .await
        .unwrap();
    let taken = entries[0].id.clone();
    (account, taken)
}

/// With 6 random characters an entry's id can be taken already: the entry is stored under another one,
/// and an idempotency key used before still appends nothing.
async fn a_taken_ledger_id_gets_another(db: Db) {
    let app = TestApp::start(db).await;
    let (account, taken) = funded_with_entry(&app).await;
    let store = app.services().store();
    let entry = LedgerEntryRow {
        id: taken.clone(),
        account_id: account.clone(),
        currency: "USD".into(),
        kind: "grant".into(),
        amount_micros: 1_000_000,
        balance_after_micros: 0,
        description: "a second grant".into(),
        idempotency_key: Some("fidelity:once".into()),
        created_by: None,
        created_at: crate::common::START_MS,
    };
    let mut tx = store.begin().await.unwrap();
    let appended = ledger::append(&mut tx, &entry, barrack_core::ids::transaction_id)
        .await
        .unwrap()
        .expect("appended under another id");
    let again = ledger::append(&mut tx, &entry, barrack_core::ids::transaction_id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_ne!(appended.id, taken);
    assert!(is_id(&appended.id, 'T'), "{}", appended.id);
    assert_eq!(appended.balance_after_micros, 11_000_000);
    assert!(again.is_none(), "the idempotency key was used");
    // The refused second append moved nothing: the balance is still what the ledger adds up to.
    let balance: i64 = store
        .balances(&account)
        .await
        .unwrap()
        .into_iter()
        .filter(|(currency, _)| currency == "USD")
        .map(|(_, micros)| micros)
        .sum();
    assert_eq!(balance, 11_000_000);
    assert_eq!(store.ledger_sum(&account, "USD").await.unwrap(), balance);
    app.stop().await;
}

/// An AI call's row and its charge go in together: a charge whose id is taken goes in under another, which
/// the row names; the same request id recorded again changes nothing and answers with what was recorded.
async fn an_ai_call_is_recorded_once_and_its_entry_keeps_the_id_it_went_in_under(db: Db) {
    let app = TestApp::start(db).await;
    let (account, taken) = funded_with_entry(&app).await;
    let store = app.services().store();
    let call = |id: &str| AiRequestRow {
        id: id.into(),
        account_id: account.clone(),
        request_id: "fidelity-call".into(),
        model: "barrack-sim-small".into(),
        input_tokens: 10,
        output_tokens: 20,
        cost_micros: 1_500,
        currency: "USD".into(),
        status: "completed".into(),
        stream: false,
        ledger_entry_id: None,
        created_at: crate::common::START_MS,
    };
    let charge = |id: &str| LedgerEntryRow {
        id: id.into(),
        account_id: account.clone(),
        currency: "USD".into(),
        kind: "usage".into(),
        amount_micros: -1_500,
        balance_after_micros: 0,
        description: "AI chat".into(),
        idempotency_key: Some("ai:fidelity-call".into()),
        created_by: None,
        created_at: crate::common::START_MS,
    };
    let fresh_call = || barrack_core::ids::new_id(barrack_core::ids::IdKind::AiRequest);
    let recorded = store
        .record_ai_request(
            &call("BRK-AICAL1Q"),
            Some(&charge(&taken)),
            None,
            barrack_core::ids::transaction_id,
            fresh_call,
        )
        .await
        .unwrap();
    let entry_id = recorded.ledger_entry_id.clone().expect("charged");
    assert_ne!(entry_id, taken);
    assert!(is_id(&entry_id, 'T'), "{entry_id}");
    let entries = store
        .ledger_entries(&account, &Default::default(), 0, 10)
        .await
        .unwrap()
        .0;
    let entry = entries
        .iter()
        .find(|e| e.id == entry_id)
        .expect("the entry");
    assert_eq!(entry.amount_micros, -1_500);
    assert_eq!(entry.balance_after_micros, 9_998_500);

    let again = store
        .record_ai_request(
            &call("BRK-AICAL2Q"),
            Some(&charge("BRK-AICAL2T")),
            None,
            barrack_core::ids::transaction_id,
            fresh_call,
        )
        .await
        .unwrap();
    assert_eq!(again, recorded, "the first record answers");
    assert_eq!(store.balance(&account, "USD").await.unwrap(), 9_998_500);
    assert_eq!(store.ledger_sum(&account, "USD").await.unwrap(), 9_998_500);
    app.stop().await;
}
