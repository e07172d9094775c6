//! Controls of the local Barrack's simulated data centre: exporting the whole state and importing it into
//! another database (of the same kind or the other), resetting to a first start, and scenarios.

use std::sync::Arc;
use std::time::Duration;

use barrack_api::Tier;
use barrack_api::catalog::CatalogQuery;
use barrack_api::instances::{DeployRequest, InstanceQuery};
use barrack_api::ledger::TransactionQuery;
use barrack_api::simulation::ScenarioSpec;
use barrack_client::{Client, InstanceActionKind};
use barrack_core::clock::Clock;
use barrack_server::{Running, StartOptions};
use barrack_store::Store;
use serde_json::{Value, json};

use crate::common::{
    Db, TestApp, TestDatabase, create_key_k, deploy_id, postgres_url, test_config,
};
use crate::lifecycle::reach;
use crate::on_both_databases;

on_both_databases!(
    exported_state_imported_into_fresh_databases_answers_the_same,
    import_refuses_a_database_holding_state_and_another_schema_version,
    export_pages_a_table_larger_than_a_page_in_key_order,
    state_commands_move_a_state_through_a_private_file,
    reset_brings_a_used_server_back_to_its_first_start,
    reset_fills_the_rate_limits_of_every_replica,
    overlapping_scenarios_added_at_once_through_two_replicas_are_one,
    gpu_scarcity_limits_stock_until_removed,
    region_outage_refuses_work_in_the_region_until_removed,
    slow_host_stretches_boots_on_its_machines,
);

fn deploy_request(name: &str, region: &str, gpu_model: &str, count: u32) -> DeployRequest {
    serde_json::from_value(json!({
        "gpu_model": gpu_model, "gpu_count": count, "region": region, "instance_name": name,
        "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "k"
    }))
    .unwrap()
}

/// The answers compared across databases: the data of each, without per-request fields.
async fn answers(client: &Client) -> Value {
    let instances = client.instances(&InstanceQuery::default()).await.unwrap();
    let balance = client.balance().await.unwrap();
    let ledger = client
        .transactions(&TransactionQuery::default())
        .await
        .unwrap();
    json!({
        "instances": serde_json::to_value(instances.data).unwrap(),
        "balance": serde_json::to_value(balance.data).unwrap(),
        "ledger": serde_json::to_value(ledger.data).unwrap(),
    })
}

/// The balance equals the sum of the ledger in every currency.
async fn assert_balance_is_ledger(store: &Store, account: &str) {
    let balances = store.balances(account).await.unwrap();
    assert!(!balances.is_empty());
    for (currency, micros) in balances {
        assert_eq!(
            store.ledger_sum(account, &currency).await.unwrap(),
            micros,
            "{currency}"
        );
    }
}

/// A server on an existing database, on the test's clock.
async fn serve(database: &TestDatabase, clock: Arc<dyn Clock>) -> Running {
    barrack_server::start(StartOptions {
        config: test_config(database),
        clock: Some(clock),
        background_work: false,
    })
    .await
    .expect("server starts on the imported database")
}

async fn export(store: &Store) -> Vec<u8> {
    let mut document = Vec::new();
    store
        .export_state(&mut document, "2025-01-15T10:30:00Z")
        .await
        .unwrap();
    document
}

/// A migrated, empty database, as `barrackd state import` prepares one.
async fn empty_store(database: &TestDatabase) -> Store {
    let store = Store::connect(&database.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn exported_state_imported_into_fresh_databases_answers_the_same(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account, key) = app.funded_user_with_key(Tier::Advanced, "US", "500").await;
    create_key_k(&client).await;
    let kept = deploy_id(
        &client,
        &deploy_request("kept", "FINLAND-1", "H100-SXM5-80GB", 2),
    )
    .await;
    let gone = deploy_id(
        &client,
        &deploy_request("gone", "FINLAND-1", "H100-SXM5-80GB", 1),
    )
    .await;
    app.settle().await;
    app.admin.admin_advance_clock(90).await.unwrap();
    client.delete_instance(&gone).await.unwrap();
    app.settle().await;
    let before = answers(&client).await;
    let stock_before = app
        .anonymous()
        .gpu_stocks(&CatalogQuery::default())
        .await
        .unwrap()
        .data;
    let document = export(app.services().store()).await;
    let text = String::from_utf8(document.clone()).unwrap();
    assert!(text.lines().next().unwrap().contains("\"schema_version\""));
    assert!(text.lines().last().unwrap().contains("\"end\":true"));

    // Into a fresh database of the same kind, and of the other kind when PostgreSQL is here.
    let mut targets = vec![db];
    let other = match db {
        Db::Sqlite => Db::Postgres,
        Db::Postgres => Db::Sqlite,
    };
    if postgres_url().is_some() {
        targets.push(other);
    }
    for target in targets {
        let database = TestDatabase::create(target).await;
        let store = empty_store(&database).await;
        let counts = store.import_state(&document[..], false).await.unwrap();
        assert!(
            counts.tables["instances"] >= 2 && counts.tables["ledger_entries"] > 0,
            "{counts:?}"
        );
        assert_balance_is_ledger(&store, &account).await;
        crate::common::assert_derived_state_consistent(&store).await;
        store.close().await;

        let running = serve(&database, app.clock.clone() as Arc<dyn Clock>).await;
        assert!(
            running.bootstrap.is_none(),
            "the operator came with the state"
        );
        let base = format!("http://{}", running.addr);
        let moved = Client::builder(&base)
            .api_key(&key)
            .max_retries(0)
            .build()
            .unwrap();
        assert_eq!(answers(&moved).await, before, "{db:?} -> {target:?}");
        let anonymous = Client::builder(&base).build().unwrap();
        let stock = anonymous
            .gpu_stocks(&CatalogQuery::default())
            .await
            .unwrap()
            .data;
        assert_eq!(
            serde_json::to_value(stock).unwrap(),
            serde_json::to_value(&stock_before).unwrap()
        );
        // The imported instance lives on: the operator's key works, the machine can be acted on.
        let admin = moved.with_api_key(&app.admin_key);
        admin.admin_users(&Default::default()).await.unwrap();
        moved
            .instance_action(&kept, InstanceActionKind::Stop)
            .await
            .unwrap();
        running.settle().await.unwrap();
        assert_eq!(moved.instance(&kept).await.unwrap().data.status, "SHUTOFF");
        // Time moved on the source shows on the copy: the meter does not bill the 90 minutes again.
        assert_balance_is_ledger(running.services.store(), &account).await;
        assert_eq!(
            moved.balance().await.unwrap().data.balance,
            client.balance().await.unwrap().data.balance
        );
        running.shutdown().await;
        database.drop_database().await;
    }
    app.stop().await;
}

/// The rows of `table` in a state document, in the order written.
fn document_rows(document: &[u8], table: &str) -> Vec<Vec<Value>> {
    let text = std::str::from_utf8(document).unwrap();
    let mut inside = false;
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let value: Value = serde_json::from_str(line).unwrap();
        match value {
            Value::Array(row) if inside => rows.push(row),
            Value::Array(_) => {}
            object => inside = object["table"] == table,
        }
    }
    rows
}

async fn export_pages_a_table_larger_than_a_page_in_key_order(db: Db) {
    use barrack_store::state::EXPORT_PAGE;
    let database = TestDatabase::create(db).await;
    let source = empty_store(&database).await;
    // Labels have a three-column text key: two pages and a row, with keys whose text order is not the
    // order they were written in.
    let total = 2 * EXPORT_PAGE + 1;
    source
        .execute(
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {total}) \
                 INSERT INTO labels (resource_type, resource_id, account_id, label_key, label_value, \
                 resource_created_at, live) SELECT CASE WHEN i % 3 = 0 THEN 'instance' ELSE 'volume' END, \
                 'r-' || (i % 997), 'acct', 'k' || i, 'v' || i, i, 1 FROM n"
            ),
            &[],
        )
        .await
        .unwrap();
    let document = export(&source).await;
    let rows = document_rows(&document, "labels");
    assert_eq!(rows.len() as i64, total, "every row once");
    // The columns are resource_type, resource_id, account_id, label_key, ...: the key is 0, 1, 3.
    let keys: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let text = |i: usize| r[i].as_str().unwrap().to_string();
            (text(0), text(1), text(3))
        })
        .collect();
    let distinct: std::collections::BTreeSet<_> = keys.iter().cloned().collect();
    assert_eq!(distinct.len(), keys.len(), "no row twice across pages");
    if db == Db::Sqlite {
        // Byte order, as SQLite compares text; PostgreSQL's follows the database's collation.
        let mut sorted = keys.clone();
        sorted.sort();
        assert!(sorted == keys, "rows in key order");
    }

    let target = TestDatabase::create(db).await;
    let copy = empty_store(&target).await;
    let counts = copy.import_state(&document[..], false).await.unwrap();
    assert_eq!(counts.tables["labels"] as i64, total);
    assert_eq!(
        export(&copy).await,
        document,
        "the copy exports the same document"
    );
    source.close().await;
    copy.close().await;
    database.drop_database().await;
    target.drop_database().await;
}

async fn import_refuses_a_database_holding_state_and_another_schema_version(db: Db) {
    let app = TestApp::start(db).await;
    let store = app.services().store();
    let document = export(store).await;

    let refused = store.import_state(&document[..], false).await.unwrap_err();
    assert!(refused.to_string().contains("--replace"), "{refused}");

    let text = String::from_utf8(document.clone()).unwrap();
    let schema = barrack_store::state::schema_version();
    let older = text.replacen(
        &format!("\"schema_version\":{schema}"),
        "\"schema_version\":3",
        1,
    );
    let database = TestDatabase::create(db).await;
    let fresh = empty_store(&database).await;
    let refused = fresh
        .import_state(older.as_bytes(), false)
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("schema version 3") && message.contains(&schema.to_string()),
        "{message}"
    );
    // Cut off before its end: refused, and nothing of it stays.
    let cut: String = text
        .lines()
        .take(text.lines().count() - 1)
        .collect::<Vec<_>>()
        .join("\n");
    let refused = fresh.import_state(cut.as_bytes(), false).await.unwrap_err();
    assert!(refused.to_string().contains("cut off"), "{refused}");
    assert!(!fresh.holds_state().await.unwrap());
    assert!(fresh.import_state(&b"not json"[..], false).await.is_err());
    // Whole, it goes in; with --replace, again over it.
    fresh.import_state(&document[..], false).await.unwrap();
    fresh.import_state(&document[..], true).await.unwrap();
    assert!(fresh.holds_state().await.unwrap());
    fresh.close().await;
    database.drop_database().await;
    app.stop().await;
}

async fn state_commands_move_a_state_through_a_private_file(db: Db) {
    use crate::operator_commands::{SECRET, barrackd, text};
    let app = TestApp::start(db).await;
    let (client, _, key) = app.funded_user_with_key(Tier::Legacy, "US", "25").await;
    let dir = app.database.dir.display().to_string();
    let file = app.database.dir.join("state.jsonl");
    let file = file.display().to_string();
    let env = [("BARRACK_SECRET", SECRET)];

    let export = [
        "state",
        "export",
        &file,
        "--data-dir",
        &dir,
        "--database-url",
        &app.database.url,
    ];
    // An export copies rows as they are: it needs the database, not the server's secret (which
    // PostgreSQL installations keep in their servers' environment).
    let output = barrackd(&export, &[]);
    assert!(output.status.success(), "{:?}", text(&output));
    assert!(text(&output).1.contains("Exported"), "{:?}", text(&output));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "hashes of keys and passwords are in it"
        );
    }

    // Into the database the server runs on: refused (it holds state; on PostgreSQL the server's
    // sessions are seen too), and the state is untouched.
    let import = |url: &str, replace: bool| {
        let mut args = vec![
            "state",
            "import",
            &file,
            "--data-dir",
            &dir,
            "--database-url",
            url,
        ];
        if replace {
            args.push("--replace");
        }
        barrackd(&args, &env)
    };
    // PostgreSQL sees the server's sessions first; a SQLite file cannot, and it holds state.
    let expected = match db {
        Db::Sqlite => "--replace",
        Db::Postgres => "running barrackd",
    };
    // (With --replace a SQLite file would be replaced under the server: the guide says to stop it.)
    let attempts: &[bool] = match db {
        Db::Sqlite => &[false],
        Db::Postgres => &[false, true],
    };
    for &replace in attempts {
        let refused = import(&app.database.url, replace);
        assert!(!refused.status.success());
        assert!(text(&refused).1.contains(expected), "{:?}", text(&refused));
    }
    client.balance().await.unwrap();

    // Into an empty database of the same kind: set up, filled, and the user's key works there.
    let target = TestDatabase::create(db).await;
    let output = import(&target.url, false);
    assert!(output.status.success(), "{:?}", text(&output));
    let running = serve(&target, app.clock.clone() as Arc<dyn Clock>).await;
    let moved = Client::builder(format!("http://{}", running.addr))
        .api_key(&key)
        .max_retries(0)
        .build()
        .unwrap();
    assert_eq!(
        serde_json::to_value(moved.balance().await.unwrap().data).unwrap(),
        serde_json::to_value(client.balance().await.unwrap().data).unwrap()
    );
    running.shutdown().await;
    target.drop_database().await;
    app.stop().await;
}

async fn reset_brings_a_used_server_back_to_its_first_start(db: Db) {
    let app = TestApp::start(db).await;
    let first_users = app
        .admin
        .admin_users(&Default::default())
        .await
        .unwrap()
        .data;
    let first_stock = app
        .anonymous()
        .gpu_stocks(&CatalogQuery::default())
        .await
        .unwrap()
        .data;
    let first_capacity = app.admin.admin_capacity().await.unwrap().data;
    let first_hosts = app.admin.admin_hosts().await.unwrap().data;

    let (client, _, key) = app.funded_user_with_key(Tier::Advanced, "US", "500").await;
    create_key_k(&client).await;
    client
        .deploy(&deploy_request("busy", "FINLAND-1", "H100-SXM5-80GB", 8))
        .await
        .unwrap();
    app.settle().await;
    // A replica on the same database, which knows the machine and has looked the user's key up.
    let replica = serve(&app.database, app.clock.clone() as Arc<dyn Clock>).await;
    let replica_url = format!("http://{}", replica.addr);
    let replica_user = Client::builder(&replica_url)
        .api_key(&key)
        .max_retries(0)
        .build()
        .unwrap();
    let replica_admin = replica_user.with_api_key(&app.admin_key);
    replica_user.balance().await.unwrap();
    let busy_hosts = replica_admin.admin_hosts().await.unwrap().data;
    assert!(
        busy_hosts.hosts.iter().any(|h| h.gpus_used == 8),
        "the replica knows the machine"
    );
    app.admin
        .admin_add_scenario(&ScenarioSpec::RegionOutage {
            region: "FINLAND-2".into(),
        })
        .await
        .unwrap();
    app.admin
        .admin_inject_fault(&json!({"kind": "lose_host", "host": "finland-1-b300-262gb-01"}))
        .await
        .unwrap();

    let reset = app.admin.admin_reset().await.unwrap().data;
    assert_eq!(reset.operators_kept, 1);
    // The operator's key still works, and everything answers as on the first start.
    let users = app
        .admin
        .admin_users(&Default::default())
        .await
        .unwrap()
        .data;
    assert_eq!(
        serde_json::to_value(&users).unwrap(),
        serde_json::to_value(&first_users).unwrap()
    );
    let stock = app
        .anonymous()
        .gpu_stocks(&CatalogQuery::default())
        .await
        .unwrap()
        .data;
    assert_eq!(
        serde_json::to_value(stock).unwrap(),
        serde_json::to_value(first_stock).unwrap()
    );
    assert_eq!(
        serde_json::to_value(app.admin.admin_capacity().await.unwrap().data).unwrap(),
        serde_json::to_value(first_capacity).unwrap()
    );
    assert_eq!(
        serde_json::to_value(app.admin.admin_hosts().await.unwrap().data).unwrap(),
        serde_json::to_value(first_hosts).unwrap(),
        "machines forgotten, the lost host back"
    );
    assert!(
        app.admin
            .admin_scenarios()
            .await
            .unwrap()
            .data
            .scenarios
            .is_empty()
    );
    assert_eq!(app.admin.admin_jobs().await.unwrap().data.jobs.len(), 0);
    // The user and its key are gone, on the replica too; the replica forgot the machines.
    let error = client.balance().await.unwrap_err();
    assert_eq!(error.status(), Some(401), "{error}");
    let error = replica_user.balance().await.unwrap_err();
    assert_eq!(error.status(), Some(401), "{error}");
    assert_eq!(
        serde_json::to_value(replica_admin.admin_hosts().await.unwrap().data).unwrap(),
        serde_json::to_value(app.admin.admin_hosts().await.unwrap().data).unwrap(),
    );
    replica.shutdown().await;
    // A new user deploys the whole host the old instance held.
    let (client, _) = app.funded_user(Tier::Advanced, "US", "500").await;
    create_key_k(&client).await;
    let id = deploy_id(
        &client,
        &deploy_request("busy", "FINLAND-1", "H100-SXM5-80GB", 8),
    )
    .await;
    app.settle().await;
    assert_eq!(client.instance(&id).await.unwrap().data.status, "ACTIVE");
    crate::common::assert_derived_state_consistent(app.services().store()).await;

    // A user's key cannot reset.
    let error = client.admin_reset().await.unwrap_err();
    assert_eq!(error.status(), Some(403));
    app.stop().await;
}

async fn reset_fills_the_rate_limits_of_every_replica(db: Db) {
    let limit = 8;
    let app = TestApp::start_with(db, |c| {
        c.rate_limit.requests = limit;
        c.rate_limit.window_seconds = 3600;
    })
    .await;
    let mut config = test_config(&app.database);
    config.rate_limit.requests = limit;
    config.rate_limit.window_seconds = 3600;
    let replica = barrack_server::start(StartOptions {
        config,
        clock: Some(app.clock.clone() as Arc<dyn Clock>),
        background_work: false,
    })
    .await
    .unwrap();
    let here = app.anonymous();
    let there = Client::builder(format!("http://{}", replica.addr))
        .max_retries(0)
        .build()
        .unwrap();
    let status = |client: &Client| {
        let client = client.clone();
        async move {
            client
                .raw(reqwest::Method::GET, "/api/gpu-stocks/", None)
                .await
                .unwrap()
                .status
                .as_u16()
        }
    };
    // Anonymous callers from this address use up their budget on both servers.
    for client in [&here, &there] {
        for _ in 0..limit {
            assert_eq!(status(client).await, 200);
        }
        assert_eq!(status(client).await, 429);
    }

    app.admin.admin_reset().await.unwrap();
    assert_eq!(status(&here).await, 200, "the resetting server at once");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match status(&there).await {
            200 => break,
            429 if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("the replica still answers {other} after the reset"),
        }
    }
    // A whole budget again, not one request: the buckets are full.
    for _ in 1..limit {
        assert_eq!(status(&there).await, 200);
    }
    assert_eq!(status(&there).await, 429, "and limited again after it");
    replica.shutdown().await;
    app.stop().await;
}

async fn overlapping_scenarios_added_at_once_through_two_replicas_are_one(db: Db) {
    let app = TestApp::start(db).await;
    let replica = serve(&app.database, app.clock.clone() as Arc<dyn Clock>).await;
    let replica_admin = Client::builder(format!("http://{}", replica.addr))
        .api_key(&app.admin_key)
        .max_retries(0)
        .build()
        .unwrap();
    let h100 = "H100-SXM5-80GB";
    let full = free_gpus(&app.anonymous(), "FINLAND-1", h100).await;
    // Every two of these hold back some of the same stock, under different kinds or targets (the unique
    // index on kind and target cannot tell).
    let specs = [
        ScenarioSpec::RegionOutage {
            region: "FINLAND-1".into(),
        },
        ScenarioSpec::GpuScarcity {
            region: "FINLAND-1".into(),
            gpu_model: None,
            available: 2,
        },
        ScenarioSpec::GpuScarcity {
            region: "FINLAND-1".into(),
            gpu_model: Some(h100.into()),
            available: 1,
        },
    ];
    for round in 0..4 {
        let mut attempts = tokio::task::JoinSet::new();
        for copy in 0..3 {
            for (i, spec) in specs.iter().enumerate() {
                let client = if (copy + i + round) % 2 == 0 {
                    app.admin.clone()
                } else {
                    replica_admin.clone()
                };
                let spec = spec.clone();
                attempts.spawn(async move { client.admin_add_scenario(&spec).await });
            }
        }
        let mut added = Vec::new();
        while let Some(result) = attempts.join_next().await {
            match result.unwrap() {
                Ok(scenario) => added.push(scenario.data),
                Err(e) => assert_eq!(e.status(), Some(409), "round {round}: {e}"),
            }
        }
        assert_eq!(added.len(), 1, "round {round}: {added:?}");
        let listed = app.admin.admin_scenarios().await.unwrap().data.scenarios;
        assert_eq!(listed, added, "round {round}");
        let expected = match &added[0].spec {
            ScenarioSpec::RegionOutage { .. } => 0,
            ScenarioSpec::GpuScarcity { available, .. } => *available,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            free_gpus(&app.anonymous(), "FINLAND-1", h100).await,
            expected,
            "round {round}: the stock the one scenario holds back"
        );
        replica_admin
            .admin_remove_scenario(&added[0].id)
            .await
            .unwrap();
        assert_eq!(free_gpus(&app.anonymous(), "FINLAND-1", h100).await, full);
    }
    replica.shutdown().await;
    app.stop().await;
}

/// Free GPUs of a model in a region, as stock shows them.
async fn free_gpus(client: &Client, region: &str, gpu_model: &str) -> u32 {
    let stock = client
        .gpu_stocks(&CatalogQuery::default())
        .await
        .unwrap()
        .data;
    let stock = serde_json::to_value(stock).unwrap();
    stock["stocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["region"] == region && s["gpu_model"] == gpu_model)
        .and_then(|s| s["available"].as_u64())
        .unwrap_or_else(|| panic!("no stock of {gpu_model} in {region}: {stock}")) as u32
}

async fn gpu_scarcity_limits_stock_until_removed(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let h100 = "H100-SXM5-80GB";
    let full = free_gpus(&client, "FINLAND-1", h100).await;
    let scenario = app
        .admin
        .admin_add_scenario(&ScenarioSpec::GpuScarcity {
            region: "FINLAND-1".into(),
            gpu_model: Some(h100.into()),
            available: 3,
        })
        .await
        .unwrap()
        .data;
    assert!(scenario.id.starts_with("BRK-"));
    assert_eq!(free_gpus(&client, "FINLAND-1", h100).await, 3);
    assert_eq!(
        free_gpus(&client, "FINLAND-1", "H200-141GB").await,
        32,
        "other models keep their stock"
    );
    let error = client
        .deploy(&deploy_request("four", "FINLAND-1", h100, 4))
        .await
        .unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (Some(503), Some("GPU_UNAVAILABLE"))
    );
    assert!(error.to_string().contains("FINLAND-1"), "{error}");
    client
        .deploy(&deploy_request("two", "FINLAND-1", h100, 2))
        .await
        .unwrap();
    assert_eq!(
        free_gpus(&client, "FINLAND-1", h100).await,
        1,
        "deploys use it up"
    );
    // Overlapping stock is refused; a bad region names the field.
    let error = app
        .admin
        .admin_add_scenario(&ScenarioSpec::RegionOutage {
            region: "FINLAND-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(409), "{error}");
    let error = app
        .admin
        .admin_add_scenario_json(
            &json!({"kind": "gpu_scarcity", "region": "MARS-1", "available": 1}),
        )
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");
    assert!(error.to_string().contains("region"), "{error}");
    let error = app
        .admin
        .admin_add_scenario_json(&json!({"kind": "drought", "region": "FINLAND-1"}))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");
    assert_eq!(
        app.admin.admin_scenarios().await.unwrap().data.scenarios,
        vec![scenario.clone()]
    );

    app.admin.admin_remove_scenario(&scenario.id).await.unwrap();
    assert_eq!(free_gpus(&client, "FINLAND-1", h100).await, full - 2);
    client
        .deploy(&deploy_request("four", "FINLAND-1", h100, 4))
        .await
        .unwrap();
    let error = app
        .admin
        .admin_remove_scenario(&scenario.id)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(404));
    app.settle().await;
    crate::common::assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

async fn region_outage_refuses_work_in_the_region_until_removed(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let h100 = "H100-SXM5-80GB";
    let id = deploy_id(&client, &deploy_request("there", "FINLAND-1", h100, 1)).await;
    app.settle().await;
    let outage = app
        .admin
        .admin_add_scenario(&ScenarioSpec::RegionOutage {
            region: "FINLAND-1".into(),
        })
        .await
        .unwrap()
        .data;
    assert_eq!(free_gpus(&client, "FINLAND-1", h100).await, 0);
    let error = client
        .deploy(&deploy_request("new", "FINLAND-1", h100, 1))
        .await
        .unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (Some(503), Some("GPU_UNAVAILABLE"))
    );
    assert!(
        error.to_string().contains("FINLAND-2"),
        "names where stock is: {error}"
    );
    let error = client
        .instance_action(&id, InstanceActionKind::Stop)
        .await
        .unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (Some(503), Some("REGION_UNAVAILABLE")),
        "{error}"
    );
    let error = client.delete_instance(&id).await.unwrap_err();
    assert_eq!(error.code(), Some("REGION_UNAVAILABLE"));
    // Other regions work.
    client
        .deploy(&deploy_request("elsewhere", "FINLAND-2", h100, 1))
        .await
        .unwrap();

    app.admin.admin_remove_scenario(&outage.id).await.unwrap();
    assert!(free_gpus(&client, "FINLAND-1", h100).await > 0);
    client
        .instance_action(&id, InstanceActionKind::Stop)
        .await
        .unwrap();
    client
        .deploy(&deploy_request("new", "FINLAND-1", h100, 1))
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(client.instance(&id).await.unwrap().data.status, "SHUTOFF");
    app.stop().await;
}

async fn slow_host_stretches_boots_on_its_machines(db: Db) {
    let app = TestApp::start_in_real_time(db, |config| {
        config.simulator.delays.create_ms = 200;
        config.simulator.delays.delete_ms = 50;
        config.jobs.poll_interval_ms = 50;
        config.jobs.observe_interval_ms = 50;
    })
    .await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    // FINLAND-1's 8 B300s are one host.
    let host = "finland-1-b300-262gb-01";
    let b300 = "B300-262GB";
    let error = app
        .admin
        .admin_add_scenario(&ScenarioSpec::SlowHost {
            host: "no-such-host".into(),
            factor: 10.0,
        })
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(404));
    let error = app
        .admin
        .admin_add_scenario(&ScenarioSpec::SlowHost {
            host: host.into(),
            factor: 0.5,
        })
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(400));
    let slow = app
        .admin
        .admin_add_scenario(&ScenarioSpec::SlowHost {
            host: host.into(),
            factor: 25.0,
        })
        .await
        .unwrap()
        .data;
    let started = std::time::Instant::now();
    let id = deploy_id(&client, &deploy_request("slow", "FINLAND-1", b300, 1)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        client.instance(&id).await.unwrap().data.status,
        "CREATING",
        "a 200 ms boot takes 5 s on the slow host"
    );
    reach(&client, &id, "ACTIVE", Duration::from_secs(20)).await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    app.admin.admin_remove_scenario(&slow.id).await.unwrap();
    let started = std::time::Instant::now();
    let id = deploy_id(&client, &deploy_request("quick", "FINLAND-1", b300, 1)).await;
    reach(&client, &id, "ACTIVE", Duration::from_secs(20)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    app.stop().await;
}
