//! Waiting without polling: `GET /api/instances/{id}/?wait_for=STATE&timeout=S` answers as soon as the
//! instance is in the state, or with the current state at the timeout; bad values are 400 on the field.

use std::time::{Duration, Instant};

use barrack_api::Tier;
use barrack_client::{Client, InstanceActionKind};
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k, deploy_id};
use crate::on_both_databases;

on_both_databases!(a_wait_answers_when_the_state_is_reached_or_at_the_timeout);

async fn get(client: &Client, path: &str) -> barrack_client::RawResponse {
    client.raw(Method::GET, path, None).await.unwrap()
}

async fn a_wait_answers_when_the_state_is_reached_or_at_the_timeout(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let request = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
        "instance_name": "waiter", "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
        "ssh_key": "k"
    }))
    .unwrap();
    let id = deploy_id(&client, &request).await;

    // Answered once a worker makes it ACTIVE, not at the timeout.
    let waiter = {
        let client = client.clone();
        let path = format!("/api/instances/{id}/?wait_for=ACTIVE&timeout=20");
        tokio::spawn(async move {
            let started = Instant::now();
            let raw = get(&client, &path).await;
            (raw, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "still CREATING: the wait goes on");
    app.settle().await;
    let (raw, waited) = waiter.await.unwrap();
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(raw.body["data"]["status"], "ACTIVE");
    assert!(
        waited < Duration::from_secs(5),
        "answered at once: {waited:?}"
    );

    // A state not reached: the current one at the timeout.
    let started = Instant::now();
    let raw = get(
        &client,
        &format!("/api/instances/{id}/?wait_for=SHUTOFF&timeout=1"),
    )
    .await;
    assert_eq!(raw.body["data"]["status"], "ACTIVE");
    assert!(started.elapsed() >= Duration::from_millis(900));

    // An operation that ends elsewhere answers when it ends: a stop waited for as ACTIVE.
    client
        .instance_action(&id, InstanceActionKind::Stop)
        .await
        .unwrap();
    let waiter = {
        let client = client.clone();
        let path = format!("/api/instances/{id}/?wait_for=ACTIVE&timeout=20");
        tokio::spawn(async move { get(&client, &path).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.settle().await;
    let raw = waiter.await.unwrap();
    assert_eq!(raw.body["data"]["status"], "SHUTOFF", "{}", raw.text);

    // The typed client.
    let shown = client
        .wait_for_instance(&id, "SHUTOFF", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(shown.data.status, "SHUTOFF");

    // Bad values name the field.
    for (query, field) in [
        ("wait_for=SLEEPING", "wait_for"),
        ("wait_for=ACTIVE&timeout=0", "timeout"),
        ("wait_for=ACTIVE&timeout=301", "timeout"),
        ("wait_for=ACTIVE&timeout=soon", "timeout"),
        ("timeout=5", "timeout"),
    ] {
        let raw = get(&client, &format!("/api/instances/{id}/?{query}")).await;
        assert_eq!(raw.status, 400, "{query}: {}", raw.text);
        assert!(
            raw.body["errors"][field].is_array(),
            "{query}: {}",
            raw.text
        );
    }

    // Another account's instance is not found, waiting or not.
    let (other, _) = app.funded_user(Tier::Advanced, "US", "10").await;
    let raw = get(
        &other,
        &format!("/api/instances/{id}/?wait_for=ACTIVE&timeout=1"),
    )
    .await;
    assert_eq!(raw.status, 404);
    app.stop().await;
}
