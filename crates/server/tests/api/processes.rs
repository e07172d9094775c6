//! Real server processes: killed mid-operation and restarted, and two servers sharing one PostgreSQL
//! database. Every unfinished operation must finish, exactly once, with stock and addresses consistent.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use barrack_api::PageQuery;
use barrack_api::instances::{DeployRequest, InstanceQuery};
use barrack_client::{Client, InstanceActionKind};
use barrack_store::Store;
use serde_json::json;

use crate::common::process::{ServerProcess, prepare_operator, spawn};
use crate::common::{Db, TestDatabase};
use crate::on_both_databases;

on_both_databases!(
    a_killed_server_resumes_every_unfinished_operation,
    servers_started_at_once_on_an_empty_database_all_serve,
);

/// Replicas brought up together on a new database: each runs the migrations in turn and all serve;
/// exactly one makes the operator account (and its key), the others carry on without one.
async fn servers_started_at_once_on_an_empty_database_all_serve(db: Db) {
    let database = TestDatabase::create(db).await;
    let boot = || {
        barrack_server::start(barrack_server::StartOptions {
            config: crate::common::test_config(&database),
            clock: None,
            background_work: false,
        })
    };
    let started = futures::future::join_all((0..3).map(|_| boot())).await;
    let servers: Vec<_> = started
        .into_iter()
        .map(|s| s.expect("every server starts"))
        .collect();
    let bootstraps: Vec<_> = servers
        .iter()
        .filter_map(|s| s.bootstrap.as_ref())
        .collect();
    assert_eq!(bootstraps.len(), 1, "one operator bootstrap");
    let key = bootstraps[0].key.key.clone();
    for server in &servers {
        let client = crate::common::client_of(server, &key);
        assert_eq!(
            client.profile().await.unwrap().data.email,
            bootstraps[0].email
        );
    }
    assert_eq!(
        servers[0].services.store().count_accounts().await.unwrap(),
        1
    );
    for server in servers {
        server.shutdown().await;
    }
    database.drop_database().await;
}

/// Short leases and real (small) simulator delays, so work is in flight when the process dies.
fn env(database: &TestDatabase) -> Vec<(&'static str, String)> {
    vec![
        ("BARRACK_DATABASE_URL", database.url.clone()),
        (
            "BARRACK_SECRET",
            "shared-secret-for-every-replica-of-barrack".into(),
        ),
        ("BARRACK_RATE_LIMIT_REQUESTS", "0".into()),
        ("BARRACK_JOBS_LEASE_SECONDS", "2".into()),
        ("BARRACK_JOBS_POLL_INTERVAL_MS", "50".into()),
        ("BARRACK_SIMULATOR_DELAYS_CREATE_MS", "150".into()),
        ("BARRACK_SIMULATOR_DELAYS_START_MS", "100".into()),
        ("BARRACK_SIMULATOR_DELAYS_STOP_MS", "100".into()),
        ("BARRACK_SIMULATOR_DELAYS_REBOOT_MS", "100".into()),
        ("BARRACK_SIMULATOR_DELAYS_HIBERNATE_MS", "150".into()),
        ("BARRACK_SIMULATOR_DELAYS_DELETE_MS", "100".into()),
    ]
}

fn start(dir: &Path, name: &str, env: &[(&str, String)]) -> ServerProcess {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn(&dir.join(name), &dir.join(format!("{name}.log")), &env)
}

fn deploy(name: String, key: &str) -> DeployRequest {
    serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": name,
        "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": key
    }))
    .unwrap()
}

/// The time a server answers with (its envelope's `timestamp`), in ms.
async fn answer_time_ms(client: &Client) -> i64 {
    let raw = client
        .raw(reqwest::Method::GET, "/api/balance/", None)
        .await
        .unwrap();
    barrack_core::clock::parse_iso(raw.body["timestamp"].as_str().unwrap()).unwrap()
}

const TRANSITIONAL: [&str; 7] = [
    "CREATING",
    "STARTING",
    "STOPPING",
    "REBOOTING",
    "HIBERNATING",
    "RESTORING",
    "DELETING",
];

/// Waits until no instance is in a transitional state; returns the count of instances per status.
async fn converge(client: &Client, timeout: Duration) -> HashMap<String, u32> {
    let started = Instant::now();
    loop {
        let mut counts = HashMap::new();
        let mut page = 1;
        loop {
            let list = client
                .instances(&InstanceQuery {
                    page: Some(page),
                    limit: Some(100),
                    ..Default::default()
                })
                .await
                .unwrap()
                .data;
            for i in &list.instances {
                *counts.entry(i.status.clone()).or_insert(0) += 1;
            }
            if page >= list.pagination.total_pages {
                break;
            }
            page += 1;
        }
        if !counts.keys().any(|s| TRANSITIONAL.contains(&s.as_str())) {
            return counts;
        }
        assert!(started.elapsed() < timeout, "did not converge: {counts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stock and addresses match the instances: allocations equal the GPUs held, no address is shared, and
/// nothing is left unfinished in the jobs table.
async fn assert_consistent(database: &TestDatabase) {
    let store = Store::connect(&database.url, 2).await.unwrap();
    crate::common::assert_derived_state_consistent(&store).await;
    // A job whose effect landed just before its server died is finished by another once its lease ends.
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.unfinished_jobs().await.unwrap() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.unfinished_jobs().await.unwrap(), 0);
    store.close().await;
}

async fn a_killed_server_resumes_every_unfinished_operation(db: Db) {
    let database = TestDatabase::create(db).await;
    let env = env(&database);
    let server = start(&database.dir, "node", &env);
    let key = server.printed_key.clone().unwrap();
    let client = Client::builder(&server.url)
        .api_key(&key)
        .max_retries(0)
        .build()
        .unwrap();
    let ssh = prepare_operator(&client, "ops").await;

    // 40 instances running, then 100 operations at once: 60 deploys and 40 actions, killed midway.
    for i in 0..40 {
        client
            .deploy(&deploy(format!("base-{i}"), &ssh))
            .await
            .unwrap();
    }
    converge(&client, Duration::from_secs(60)).await;
    let base = client
        .instances(&InstanceQuery {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .instances;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (client, request) = (client.clone(), deploy(format!("burst-{i}"), &ssh));
        tasks.push(tokio::spawn(async move {
            client.deploy(&request).await.map(|_| ())
        }));
    }
    for (i, instance) in base.iter().enumerate() {
        let (client, id) = (client.clone(), instance.instance_id.clone());
        tasks.push(tokio::spawn(async move {
            match i % 4 {
                0 => client
                    .instance_action(&id, InstanceActionKind::Stop)
                    .await
                    .map(|_| ()),
                1 => client
                    .instance_action(&id, InstanceActionKind::Hibernate)
                    .await
                    .map(|_| ()),
                2 => client
                    .instance_action(&id, InstanceActionKind::Reboot)
                    .await
                    .map(|_| ()),
                _ => client.delete_instance(&id).await.map(|_| ()),
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    server.kill();
    for task in tasks {
        let _ = task.await.unwrap(); // requests cut off by the kill may fail; what was accepted must finish
    }

    let server = start(&database.dir, "node", &env);
    assert!(server.printed_key.is_none());
    let client = Client::builder(&server.url).api_key(&key).build().unwrap();
    let counts = converge(&client, Duration::from_secs(90)).await;
    let failed = client
        .instances(&InstanceQuery {
            status: Some("ERROR".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    let reasons: Vec<_> = failed
        .instances
        .iter()
        .map(|i| (i.name.clone(), i.status_reason.clone()))
        .collect();
    assert!(
        !counts.contains_key("ERROR"),
        "nothing fails because of the crash: {counts:?} {reasons:?}"
    );
    assert_consistent(&database).await;
    server.stop();
    database.drop_database().await;
}

/// Two servers on one PostgreSQL database share the work; when one dies mid-operation, the other finishes
/// its jobs once their leases expire. Every job runs exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_postgres_database() {
    if !crate::common::postgres_available("processes::two_servers_share_one_postgres_database") {
        return;
    }
    let database = TestDatabase::create(Db::Postgres).await;
    let env = env(&database);
    let a = start(&database.dir, "a", &env);
    let key = a.printed_key.clone().unwrap();
    let b = start(&database.dir, "b", &env);
    assert!(
        b.printed_key.is_none(),
        "one installation, one operator bootstrap"
    );
    let via_a = Client::builder(&a.url).api_key(&key).build().unwrap();
    let via_b = Client::builder(&b.url).api_key(&key).build().unwrap();
    let ssh = prepare_operator(&via_a, "ops").await;

    let mut ids = Vec::new();
    for i in 0..30 {
        let client = if i % 2 == 0 { &via_a } else { &via_b };
        ids.push(
            client
                .deploy(&deploy(format!("shared-{i}"), &ssh))
                .await
                .unwrap()
                .data
                .instance_id,
        );
    }
    converge(&via_b, Duration::from_secs(60)).await;
    for id in &ids {
        // Either server serves every resource.
        assert_eq!(via_a.instance(id).await.unwrap().data.status, "ACTIVE");
        let events = via_b
            .instance_events(id, &PageQuery::default())
            .await
            .unwrap()
            .data
            .events;
        let completed = events
            .iter()
            .filter(|e| e.cause == "create completed")
            .count();
        assert_eq!(completed, 1, "{id} was created exactly once");
    }

    // A clock moved through A is B's time at once (B hears of it, rather than at its next meter run):
    // B's answers carry the moved time within moments.
    let day_ms = 24 * 3600 * 1000;
    let before = answer_time_ms(&via_b).await;
    via_a.admin_advance_clock(24 * 60).await.unwrap();
    let waited = Instant::now();
    while answer_time_ms(&via_b).await < before + day_ms {
        assert!(
            waited.elapsed() < Duration::from_millis(500),
            "B still answers with the time before A moved the clock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Stop half through A, then kill A: B takes over A's jobs when their leases expire.
    for id in &ids[..15] {
        via_a
            .instance_action(id, InstanceActionKind::Stop)
            .await
            .unwrap();
    }
    a.kill();
    let counts = converge(&via_b, Duration::from_secs(60)).await;
    assert_eq!(counts.get("SHUTOFF"), Some(&15), "{counts:?}");
    assert_eq!(counts.get("ACTIVE"), Some(&15), "{counts:?}");
    for id in &ids[..15] {
        let events = via_b
            .instance_events(id, &PageQuery::default())
            .await
            .unwrap()
            .data
            .events;
        assert_eq!(
            events
                .iter()
                .filter(|e| e.cause == "stop completed")
                .count(),
            1,
            "{id} stopped exactly once"
        );
    }
    assert_consistent(&database).await;
    b.stop();
    database.drop_database().await;
}
