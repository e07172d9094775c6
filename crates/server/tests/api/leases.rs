//! Leases: an instance deployed or patched with `ttl_minutes` or `expires_at` is deleted or hibernated at
//! the end, on the platform clock, through the job engine: a `lease_expiring` event ten minutes before,
//! `lease_expired` at the end, each once however often the work runs.

use barrack_api::PageQuery;
use std::sync::Arc;

use barrack_api::Tier;
use barrack_api::labels::InstancePatch;
use barrack_client::{Client, ClientError};
use barrack_core::clock::{Clock, parse_iso};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, START_MS, TestApp, create_key_k, deploy_id};
use crate::on_both_databases;

on_both_databases!(
    a_lease_warns_then_deletes_once,
    a_patched_lease_hibernates_and_can_be_changed_or_ended,
    bad_lease_fields_are_400_on_the_field,
    a_lease_job_run_again_or_at_once_acts_once,
    a_clock_move_over_a_lease_end_bills_up_to_the_end,
    clearing_a_lease_that_is_not_there_records_nothing,
);

const MINUTE: i64 = 60_000;

fn deploy_body(name: &str, extra: Value) -> Value {
    let mut body = json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
        "instance_name": name, "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "k"
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

async fn deploy(client: &Client, name: &str, extra: Value) -> String {
    deploy_id(
        client,
        &serde_json::from_value(deploy_body(name, extra)).unwrap(),
    )
    .await
}

/// The kinds of the instance's events, oldest first.
async fn event_kinds(client: &Client, id: &str) -> Vec<String> {
    let page = PageQuery {
        page: None,
        limit: Some(100),
    };
    let mut events = client.instance_events(id, &page).await.unwrap().data.events;
    events.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    events.into_iter().map(|e| e.kind).collect()
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

async fn status(client: &Client, id: &str) -> String {
    let raw = client
        .raw(Method::GET, &format!("/api/instances/{id}/"), None)
        .await
        .unwrap();
    if raw.status == 404 {
        return "DELETED".into();
    }
    raw.body["data"]["status"].as_str().unwrap().to_string()
}

async fn a_lease_warns_then_deletes_once(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let id = deploy(&client, "leased", json!({"ttl_minutes": 30})).await;
    let keep = deploy(&client, "kept", json!({})).await;
    app.settle().await;
    let shown = client.instance(&id).await.unwrap().data;
    let lease = shown.lease.expect("a lease");
    assert_eq!(lease.on_expiry, "delete");
    assert_eq!(lease.expires_at, "2025-01-15T11:00:00Z");
    assert!(client.instance(&keep).await.unwrap().data.lease.is_none());
    let raw = client
        .raw(Method::GET, &format!("/api/instances/{keep}/"), None)
        .await
        .unwrap();
    assert_eq!(raw.body["data"]["lease"], Value::Null);

    // Nineteen minutes in: nothing yet.
    app.clock.advance_ms(19 * MINUTE);
    app.settle().await;
    assert_eq!(count(&event_kinds(&client, &id).await, "lease_expiring"), 0);
    // Ten minutes before the end: the warning, once however often the work runs.
    app.clock.advance_ms(2 * MINUTE);
    app.settle().await;
    app.settle().await;
    let kinds = event_kinds(&client, &id).await;
    assert_eq!(count(&kinds, "lease_expiring"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "lease_expired"), 0, "{kinds:?}");
    assert_eq!(status(&client, &id).await, "ACTIVE");

    // The end: the instance is deleted, the event written once.
    app.clock.advance_ms(9 * MINUTE);
    app.settle().await;
    app.settle().await;
    app.clock.advance_ms(60 * MINUTE);
    app.settle().await;
    let kinds = event_kinds(&client, &id).await;
    assert_eq!(count(&kinds, "lease_expiring"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "lease_expired"), 1, "{kinds:?}");
    assert_eq!(status(&client, &id).await, "DELETED");
    assert_eq!(status(&client, &keep).await, "ACTIVE");
    app.stop().await;
}

async fn a_patched_lease_hibernates_and_can_be_changed_or_ended(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let id = deploy(&client, "patched", json!({})).await;
    let ended = deploy(&client, "ended", json!({"ttl_minutes": 15})).await;
    app.settle().await;

    // expires_at in RFC 3339, hibernating.
    let at = barrack_core::clock::format_ms(START_MS + 120 * MINUTE);
    let patch: InstancePatch =
        serde_json::from_value(json!({"expires_at": at, "on_expiry": "hibernate"})).unwrap();
    let shown = client.patch_instance(&id, &patch).await.unwrap().data;
    assert_eq!(shown.lease.as_ref().unwrap().expires_at, at);
    assert_eq!(shown.lease.as_ref().unwrap().on_expiry, "hibernate");
    // Moved earlier: the old end's job has nothing left to do.
    let patch: InstancePatch = serde_json::from_value(json!({"ttl_minutes": 60})).unwrap();
    let shown = client.patch_instance(&id, &patch).await.unwrap().data;
    let lease = shown.lease.unwrap();
    assert_eq!(lease.expires_at, "2025-01-15T11:30:00Z");
    assert_eq!(
        lease.on_expiry, "hibernate",
        "a lease moved without on_expiry keeps what it does at its end"
    );
    // on_expiry alone changes what the lease does at its end, and nothing else.
    let lease_after = async |body: Value| {
        let patch: InstancePatch = serde_json::from_value(body).unwrap();
        let shown = client.patch_instance(&id, &patch).await.unwrap().data;
        shown.lease.unwrap()
    };
    let lease = lease_after(json!({"on_expiry": "delete"})).await;
    assert_eq!(lease.on_expiry, "delete");
    let lease = lease_after(json!({"on_expiry": "hibernate"})).await;
    assert_eq!(
        (lease.expires_at.as_str(), lease.on_expiry.as_str()),
        ("2025-01-15T11:30:00Z", "hibernate")
    );
    // Ended: nothing happens at its old end.
    let patch: InstancePatch = serde_json::from_value(json!({"clear_lease": true})).unwrap();
    assert!(
        client
            .patch_instance(&ended, &patch)
            .await
            .unwrap()
            .data
            .lease
            .is_none()
    );

    // The warning ten minutes before, then the end.
    app.clock.advance_ms(51 * MINUTE);
    app.settle().await;
    assert_eq!(count(&event_kinds(&client, &id).await, "lease_expiring"), 1);
    app.clock.advance_ms(10 * MINUTE);
    app.settle().await;
    app.settle().await;
    assert_eq!(status(&client, &id).await, "HIBERNATED");
    assert!(client.instance(&id).await.unwrap().data.lease.is_none());
    assert_eq!(status(&client, &ended).await, "ACTIVE");
    let kinds = event_kinds(&client, &id).await;
    assert_eq!(count(&kinds, "lease_expiring"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "lease_expired"), 1, "{kinds:?}");
    assert_eq!(
        count(&event_kinds(&client, &ended).await, "lease_expired"),
        0
    );

    // Long after: the superseded two-hour job finds no lease and does nothing.
    app.clock.advance_ms(120 * MINUTE);
    app.settle().await;
    assert_eq!(status(&client, &id).await, "HIBERNATED");
    assert_eq!(count(&event_kinds(&client, &id).await, "lease_expired"), 1);

    // Another account's instance is not found.
    let (other, _) = app.funded_user(Tier::Advanced, "US", "10").await;
    let patch: InstancePatch = serde_json::from_value(json!({"ttl_minutes": 5})).unwrap();
    assert_eq!(
        other
            .patch_instance(&ended, &patch)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    app.stop().await;
}

fn field_of(error: ClientError) -> Vec<String> {
    match error {
        ClientError::Api {
            status: 400,
            errors,
            ..
        } => errors.into_keys().collect(),
        other => panic!("expected a 400, got {other:?}"),
    }
}

async fn bad_lease_fields_are_400_on_the_field(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let past = barrack_core::clock::format_ms(START_MS - MINUTE);
    let soon = barrack_core::clock::format_ms(START_MS + MINUTE);
    let cases = [
        (json!({"ttl_minutes": 10, "expires_at": soon}), "expires_at"),
        (json!({"expires_at": past}), "expires_at"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
        (json!({"expires_at": "2999-01-01T00:00:00Z"}), "expires_at"),
        (json!({"ttl_minutes": 0}), "ttl_minutes"),
        (json!({"ttl_minutes": -5}), "ttl_minutes"),
        (json!({"ttl_minutes": 100_000_000}), "ttl_minutes"),
        (
            json!({"ttl_minutes": 10, "on_expiry": "explode"}),
            "on_expiry",
        ),
    ];
    for (extra, field) in &cases {
        let err = client
            .deploy(&serde_json::from_value(deploy_body("bad", extra.clone())).unwrap())
            .await
            .unwrap_err();
        assert_eq!(field_of(err), [field.to_string()], "deploy {extra}");
    }
    let err = client
        .deploy(
            &serde_json::from_value(deploy_body("bad", json!({"on_expiry": "delete"}))).unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(field_of(err), ["on_expiry"]);
    let raw = client
        .raw(
            Method::POST,
            "/api/deploy-server/",
            Some(&deploy_body("bad", json!({"ttl_minutes": "ten"}))),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400, "{}", raw.text);
    assert!(raw.body["errors"]["ttl_minutes"].is_array(), "{}", raw.text);
    assert_eq!(
        client
            .instances(&Default::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0,
        "nothing deployed"
    );

    let id = deploy(&client, "good", json!({})).await;
    for (extra, field) in &cases {
        let patch: InstancePatch = serde_json::from_value(extra.clone()).unwrap();
        let err = client.patch_instance(&id, &patch).await.unwrap_err();
        assert_eq!(field_of(err), [field.to_string()], "patch {extra}");
    }
    for (body, field) in [
        (json!({}), "body"),
        (json!({"on_expiry": "hibernate"}), "on_expiry"),
        (
            json!({"clear_lease": true, "ttl_minutes": 5}),
            "clear_lease",
        ),
    ] {
        let patch: InstancePatch = serde_json::from_value(body.clone()).unwrap();
        let err = client.patch_instance(&id, &patch).await.unwrap_err();
        assert_eq!(field_of(err), [field.to_string()], "patch {body}");
    }
    assert!(client.instance(&id).await.unwrap().data.lease.is_none());
    app.stop().await;
}

/// Replicas and crashes: the lease's job run by four workers at once, and again after (as when a server
/// died before marking it done), writes one warning, one `lease_expired` and one deletion.
async fn a_lease_job_run_again_or_at_once_acts_once(db: Db) {
    use barrack_core::jobs::JobHandler;

    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let id = deploy(&client, "raced", json!({"ttl_minutes": 5})).await;
    app.settle().await;
    let job_id = app
        .admin
        .admin_jobs()
        .await
        .unwrap()
        .data
        .jobs
        .into_iter()
        .find(|j| j.kind == "lease" && j.resource_id == id)
        .expect("the lease's job")
        .id;
    let job = app.services().store().job(&job_id).await.unwrap().unwrap();
    let worker = Arc::new(barrack_core::leases::LeaseWorker::new(
        app.services().instances.clone(),
    ));
    let race = |worker: Arc<barrack_core::leases::LeaseWorker>| {
        let job = job.clone();
        async move {
            let runs: Vec<_> = (0..4)
                .map(|_| {
                    let (worker, job) = (worker.clone(), job.clone());
                    tokio::spawn(async move { worker.run(&job).await })
                })
                .collect();
            for run in runs {
                run.await.unwrap();
            }
        }
    };
    // Warned once (the job was due at once: the lease is shorter than the warning).
    race(worker.clone()).await;
    race(worker.clone()).await;
    app.clock.advance_ms(6 * MINUTE);
    race(worker.clone()).await;
    race(worker.clone()).await;
    app.settle().await;
    let kinds = event_kinds(&client, &id).await;
    assert_eq!(count(&kinds, "lease_expiring"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "lease_expired"), 1, "{kinds:?}");
    let deletions = client
        .instance_events(
            &id,
            &PageQuery {
                page: None,
                limit: Some(100),
            },
        )
        .await
        .unwrap()
        .data
        .events
        .into_iter()
        .filter(|e| e.to_status.as_deref() == Some("DELETING"))
        .count();
    assert_eq!(deletions, 1);
    assert_eq!(status(&client, &id).await, "DELETED");
    app.stop().await;
}

/// A simulated clock moved an hour over two 30-minute leases bills 30 minutes of each, as the hour
/// passing minute by minute would: the move stops at the leases' end and ends them.
async fn a_clock_move_over_a_lease_end_bills_up_to_the_end(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let deleted = deploy(
        &client,
        "lease-delete",
        json!({"ttl_minutes": 30, "on_expiry": "delete"}),
    )
    .await;
    let hibernated = deploy(
        &client,
        "lease-hibernate",
        json!({"ttl_minutes": 30, "on_expiry": "hibernate"}),
    )
    .await;
    app.settle().await;
    app.admin.admin_advance_clock(60).await.unwrap();
    app.settle().await;
    assert_eq!(status(&client, &deleted).await, "DELETED");
    assert_eq!(status(&client, &hibernated).await, "HIBERNATED");
    // The move stopped at each warning too: it was given, ten minutes before the end, once.
    for id in [&deleted, &hibernated] {
        let page = PageQuery {
            page: None,
            limit: Some(100),
        };
        let events = client.instance_events(id, &page).await.unwrap().data.events;
        let at = |kind: &str| {
            let times: Vec<i64> = events
                .iter()
                .filter(|e| e.kind == kind)
                .map(|e| parse_iso(&e.created_at).unwrap())
                .collect();
            assert_eq!(times.len(), 1, "one {kind}: {events:?}");
            times[0]
        };
        assert_eq!(at("lease_expired") - at("lease_expiring"), 10 * 60_000);
    }
    let records = client
        .instance_billing(&Default::default())
        .await
        .unwrap()
        .records;
    let compute: Vec<_> = records.iter().filter(|r| r.status == "completed").collect();
    assert_eq!(compute.len(), 2, "{records:?}");
    for record in compute {
        assert_eq!(
            record.total_duration_minutes, 30,
            "{} is billed for its lease of 30 minutes",
            record.vm_name
        );
    }
    app.stop().await;
}

async fn clearing_a_lease_that_is_not_there_records_nothing(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let leased = deploy(&client, "leased", json!({"ttl_minutes": 60})).await;
    let plain = deploy(&client, "plain", json!({})).await;
    app.settle().await;
    let clear: InstancePatch = serde_json::from_value(json!({"clear_lease": true})).unwrap();
    let changes = |kinds: &[String]| count(kinds, "lease_changed");

    // The first clear ends the lease (one event); the second finds none and records nothing.
    let before = changes(&event_kinds(&client, &leased).await);
    for _ in 0..2 {
        let shown = client.patch_instance(&leased, &clear).await.unwrap().data;
        assert!(shown.lease.is_none());
    }
    assert_eq!(changes(&event_kinds(&client, &leased).await), before + 1);

    // Never leased: 200 with the instance as it is, and no event.
    for _ in 0..2 {
        let shown = client.patch_instance(&plain, &clear).await.unwrap().data;
        assert!(shown.lease.is_none());
        assert_eq!(shown.instance_id, plain);
    }
    assert_eq!(changes(&event_kinds(&client, &plain).await), 0);
    app.stop().await;
}
