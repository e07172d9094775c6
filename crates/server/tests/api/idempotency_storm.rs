//! A retry storm across a crash: 8 clients each send the same 100 deploys three times, each deploy under
//! its own `Idempotency-Key`, while the `barrackd` process is SIGKILLed midway and started again. Exactly
//! 100 instances exist afterwards, and every answer for a key names the same instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use barrack_client::Client;
use barrack_store::Store;
use barrack_store::sql::Columns;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::process::{ServerProcess, prepare_operator, spawn};
use crate::common::{Db, TestDatabase};
use crate::on_both_databases;

on_both_databases!(a_retry_storm_across_a_crash_deploys_each_instance_once);

const CLIENTS: usize = 8;
const DEPLOYS: usize = 100;
const ROUNDS: usize = 3;

fn start(database: &TestDatabase, generation: u32) -> ServerProcess {
    let dir = &database.dir;
    spawn(
        &dir.join("node"),
        &dir.join(format!("node-{generation}.log")),
        &[
            ("BARRACK_DATABASE_URL", &database.url),
            (
                "BARRACK_SECRET",
                "storm-secret-long-enough-for-the-hmac-key",
            ),
            ("BARRACK_RATE_LIMIT_REQUESTS", "0"),
        ],
    )
}

/// Deploy `n`, placed within the default stock: 64 H100s in FINLAND-1, 32 in FINLAND-3, H200s after.
fn deploy(n: usize) -> Value {
    let (region, model) = match n {
        0..64 => ("FINLAND-1", "H100-SXM5-80GB"),
        64..96 => ("FINLAND-3", "H100-SXM5-80GB"),
        _ => ("FINLAND-1", "H200-141GB"),
    };
    json!({
        "gpu_model": model, "gpu_count": 1, "region": region,
        "instance_name": format!("storm-{n}"), "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
        "ssh_key": "storm", "public_ip": false
    })
}

/// Sends deploy `n` under its key until it gets an answer that is not "try again": across the crash
/// the connection fails, and claims the dead server held answer 409 until their lease ends.
async fn deploy_until_answered(url: &RwLock<String>, key: &str, n: usize) -> (u16, Value) {
    let started = Instant::now();
    loop {
        let base = url.read().unwrap().clone();
        let client = Client::builder(&base)
            .api_key(key)
            .max_retries(0)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
            .with_idempotency_key(format!("storm-{n}"));
        match client
            .raw(Method::POST, "/api/deploy-server/", Some(&deploy(n)))
            .await
        {
            Ok(raw) if raw.status == 409 && raw.body["code"] == "IDEMPOTENCY_IN_PROGRESS" => {}
            Ok(raw) => return (raw.status.as_u16(), raw.body),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "deploy {n} got no answer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_retry_storm_across_a_crash_deploys_each_instance_once(db: Db) {
    let database = TestDatabase::create(db).await;
    let server = start(&database, 0);
    let key = server.printed_key.clone().unwrap();
    let admin = Client::builder(&server.url)
        .api_key(&key)
        .max_retries(0)
        .build()
        .unwrap();
    prepare_operator(&admin, "storm").await;

    let url = Arc::new(RwLock::new(server.url.clone()));
    // Instance id per key, from every 201 any client got.
    let ids: Arc<Mutex<HashMap<usize, Vec<String>>>> = Arc::default();
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (url, key, ids) = (url.clone(), key.clone(), ids.clone());
        clients.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                for i in 0..DEPLOYS {
                    // Each client walks the deploys from its own starting point, so keys collide in flight.
                    let n = (i + c * 13 + round * 7) % DEPLOYS;
                    let (status, body) = deploy_until_answered(&url, &key, n).await;
                    assert_eq!(status, 201, "deploy {n}: {body}");
                    let id = body["data"]["instance_id"].as_str().unwrap().to_string();
                    ids.lock().unwrap().entry(n).or_default().push(id);
                }
            }
        }));
    }

    // Kill the server in the middle of the creations (half the keys answered), requests in flight.
    let total = CLIENTS * DEPLOYS * ROUNDS;
    while ids.lock().unwrap().len() < DEPLOYS / 2 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill();
    let answered_keys = ids.lock().unwrap().len();
    // What the crash left: keys whose deploy committed though no client has its answer yet, and claims
    // of requests that died before committing.
    let store = Store::connect(&database.url, 2).await.unwrap();
    let count = |state: &'static str| {
        let store = store.clone();
        async move {
            store
                .fetch_one(
                    "SELECT COUNT(*) FROM idempotency_keys WHERE state = $1",
                    &barrack_store::binds![state],
                )
                .await
                .unwrap()
                .int(0)
                .unwrap()
        }
    };
    let (done, running) = (count("done").await, count("running").await);
    store.close().await;
    let restarted = start(&database, 1);
    *url.write().unwrap() = restarted.url.clone();
    for client in clients {
        client.await.unwrap();
    }
    let elapsed = started.elapsed();

    let ids = ids.lock().unwrap().clone();
    assert_eq!(ids.len(), DEPLOYS);
    for (n, seen) in ids.iter() {
        assert_eq!(seen.len(), CLIENTS * ROUNDS);
        assert!(
            seen.iter().all(|id| id == &seen[0]),
            "every answer for deploy {n} names one instance: {seen:?}"
        );
    }
    let store = Store::connect(&database.url, 2).await.unwrap();
    let instances = store
        .fetch_one("SELECT COUNT(*) FROM instances", &[])
        .await
        .unwrap()
        .int(0)
        .unwrap();
    assert_eq!(instances, DEPLOYS as i64, "exactly one instance per key");
    eprintln!(
        "{db:?}: {total} requests from {CLIENTS} clients in {:.1} s; killed with {answered_keys} keys answered, \
         {done} deploys committed, {running} claims in flight",
        elapsed.as_secs_f64()
    );
    store.close().await;
    restarted.stop();
    database.drop_database().await;
}
