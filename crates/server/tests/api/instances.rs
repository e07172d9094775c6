//! Deploy and the instance lifecycle against the simulated data centre in step mode (no sleeping: each
//! test moves work forward with `settle` and time with the manual clock).

use barrack_api::catalog::{CapacitySetting, SetCapacityRequest};
use barrack_api::instances::{DeployRequest, InstanceQuery, OsVolumeRequest, SecurityRuleRequest};
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_api::{PageQuery, Tier};
use barrack_client::{Client, InstanceActionKind};
use barrack_core::clock::Clock;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::{Db, TestApp, deploy_id};
use crate::on_both_databases;

on_both_databases!(
    the_documented_deploy_returns_201_and_becomes_active,
    a_month_long_lifecycle_in_step_mode,
    deploy_checks_run_in_the_documented_order,
    concurrent_deploys_never_oversubscribe_stock,
    driver_failures_leave_instances_in_error_with_stock_released,
    addresses_rules_and_other_accounts,
    pages_of_the_list_show_each_instance_once_with_its_labels,
    an_instances_rules_keep_their_order_in_its_view_and_the_list,
    a_machine_powered_off_behind_the_server_is_shutoff_and_a_reboot_boots_it,
);

const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

async fn ssh_key(client: &Client) -> String {
    let key = client
        .create_ssh_key(&CreateSshKeyRequest {
            name: "laptop".into(),
            public_key: None,
        })
        .await
        .unwrap();
    key.data.key.name
}

fn deploy_request(name: &str, key: &str, count: u32) -> DeployRequest {
    serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": count, "region": "FINLAND-1", "instance_name": name,
        "image_name": IMAGE, "ssh_key": key
    }))
    .unwrap()
}

async fn instance_status(client: &Client, id: &str) -> String {
    client.instance(id).await.unwrap().data.status
}

async fn free_gpus(app: &TestApp, region: &str) -> u32 {
    crate::common::free_gpus(app, region, "H100-SXM5-80GB").await
}

async fn assert_stock_consistent(app: &TestApp) {
    crate::common::assert_derived_state_consistent(app.services().store()).await;
}

async fn the_documented_deploy_returns_201_and_becomes_active(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let key = ssh_key(&client).await;
    let body = json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 4, "region": "FINLAND-1", "instance_name": "ml-training-server",
        "image_name": IMAGE, "boot_from_volume": false, "ssh_key": key, "public_ip": true,
        "security_rules": [{"direction": "ingress", "protocol": "tcp", "ethertype": "IPv4", "port_range_min": 22,
                            "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}],
        "cloud_init": "#cloud-config\npackages: [htop]\n", "os_volume": {"size": 100},
        "existing_volumes": [], "volumes": []
    });
    let raw = client
        .raw(Method::POST, "/api/deploy-server/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    let b = &raw.body;
    assert_eq!(b["success"], true);
    assert_eq!(b["message"], "VM deployed successfully");
    assert_eq!(b["tier"], "advanced");
    let d = &b["data"];
    let mut keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "billing",
            "boot_source",
            "created_at",
            "features",
            "instance_id",
            "ip_address",
            "ip_status",
            "operating_system",
            "region",
            "specs",
            "status",
            "vm_name"
        ]
    );
    let id = d["instance_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("BRK-") && id.ends_with('D') && id.len() == 11);
    assert!(d["vm_name"].as_str().unwrap().starts_with("barrack-h100s-"));
    assert_eq!(d["region"], "FINLAND-1");
    assert_eq!(d["ip_address"], Value::Null);
    assert_eq!(d["ip_status"], "pending");
    assert_eq!(
        d["billing"],
        json!({"breakdown": {"compute": {"gpu": {"model": "H100-SXM5-80GB", "count": 4, "hourly_rate": 9.96}},
                              "storage": {"os_volume": {"size_gb": 100, "type": "NVMe", "hourly_rate": 0.0293},
                                          "data_volumes": [], "data_volumes_total": 0}},
               "total_hourly_rate": 9.9893, "currency": "USD"})
    );
    assert_eq!(
        d["specs"],
        json!({"gpu_type": "H100-SXM5-80GB", "gpu_count": 4, "ram_gb": 740, "vcpus": 176, "storage_gb": 100})
    );
    assert_eq!(d["status"], "CREATING");
    assert_eq!(d["boot_source"], "image");
    assert_eq!(d["operating_system"], IMAGE);
    assert_eq!(d["features"], json!({"startup_script_configured": false}));
    assert_eq!(d["created_at"], "2025-01-15T10:30:00Z");
    assert_eq!(
        free_gpus(&app, "FINLAND-1").await,
        60,
        "the GPUs are taken at deploy"
    );

    app.settle().await;
    let instance = client.instance(&id).await.unwrap().data;
    assert_eq!(instance.status, "ACTIVE");
    assert_eq!(instance.ip_status, "assigned");
    assert!(
        instance
            .ip_address
            .as_deref()
            .unwrap()
            .starts_with("203.0.113.")
    );
    assert_eq!(
        instance.allowed_actions,
        ["stop", "reboot", "hibernate", "delete"]
    );
    assert_eq!(instance.security_rules.len(), 1);
    assert_eq!(instance.security_rules[0].port_range_min, Some(22));
    let (state, host) = app.simulator().instance(&id).unwrap();
    assert_eq!(state, barrack_compute::PowerState::Running);
    assert!(host.unwrap().starts_with("finland-1-h100-sxm5-80gb-"));
    assert_stock_consistent(&app).await;
    app.stop().await;
}

async fn a_month_long_lifecycle_in_step_mode(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "DE", "100000").await;
    let key = ssh_key(&client).await;
    let id = deploy_id(&client, &deploy_request("lifecycle", &key, 8)).await;
    app.settle().await;
    let day = 24 * 60 * 60 * 1000;
    use InstanceActionKind::*;
    let steps: [(InstanceActionKind, &str, &str); 6] = [
        (Stop, "STOPPING", "SHUTOFF"),
        (Start, "STARTING", "ACTIVE"),
        (Reboot, "REBOOTING", "ACTIVE"),
        (Hibernate, "HIBERNATING", "HIBERNATED"),
        (Restore, "RESTORING", "ACTIVE"),
        (Stop, "STOPPING", "SHUTOFF"),
    ];
    for (action, through, to) in steps {
        app.clock.advance_ms(5 * day);
        let done = client.instance_action(&id, action).await.unwrap().data;
        assert_eq!(
            (done.status.as_str(), done.target_status.as_str()),
            (through, to),
            "{action:?}"
        );
        assert_eq!(instance_status(&client, &id).await, through);
        // Nothing else may happen while the operation runs.
        let busy = client.instance_action(&id, Start).await.unwrap_err();
        assert_eq!(
            (busy.status(), busy.code()),
            (Some(409), Some("INVALID_STATE"))
        );
        assert!(busy.to_string().contains(through));
        app.settle().await;
        assert_eq!(instance_status(&client, &id).await, to);
        let expected_free = if to == "HIBERNATED" { 64 } else { 56 };
        assert_eq!(
            free_gpus(&app, "FINLAND-1").await,
            expected_free,
            "after {action:?}"
        );
        assert_stock_consistent(&app).await;
    }
    let hibernated_ip = client.instance(&id).await.unwrap().data.ip_address;
    assert!(hibernated_ip.is_some(), "restore assigns an address again");

    let wrong = client.instance_action(&id, Reboot).await.unwrap_err();
    assert_eq!(wrong.code(), Some("INVALID_STATE"));
    assert!(
        wrong.to_string().contains("SHUTOFF")
            && wrong.to_string().contains("start, hibernate, delete"),
        "{wrong}"
    );

    app.clock.advance_ms(5 * day);
    assert_eq!(
        client.delete_instance(&id).await.unwrap().data.status,
        "DELETING"
    );
    app.settle().await;
    assert_eq!(
        client.instance(&id).await.unwrap_err().status(),
        Some(404),
        "deleted instances are gone"
    );
    assert_eq!(
        client
            .instances(&InstanceQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0
    );
    assert_eq!(free_gpus(&app, "FINLAND-1").await, 64);
    assert!(app.simulator().instance(&id).is_none());
    assert_stock_consistent(&app).await;

    let events = crate::common::events_of(&client).await;
    let path: Vec<String> = events
        .iter()
        .map(|e| e.to_status.clone().unwrap())
        .collect();
    assert_eq!(
        path,
        [
            "CREATING",
            "ACTIVE",
            "STOPPING",
            "SHUTOFF",
            "STARTING",
            "ACTIVE",
            "REBOOTING",
            "ACTIVE",
            "HIBERNATING",
            "HIBERNATED",
            "RESTORING",
            "ACTIVE",
            "STOPPING",
            "SHUTOFF",
            "DELETING",
            "DELETED"
        ]
    );
    assert!(events[2].actor.starts_with("user:") && events[3].actor == "system");
    assert_eq!(events[2].cause, "stop requested");
    assert_eq!(
        events.last().unwrap().created_at,
        barrack_core::clock::format_ms(app.clock.now_ms())
    );
    app.stop().await;
}

async fn deploy_checks_run_in_the_documented_order(db: Db) {
    let app = TestApp::start(db).await;
    let (client, id) = app.user(Tier::Advanced).await;
    let key = ssh_key(&client).await;
    let status = |e: barrack_client::ClientError| {
        (
            e.status().unwrap(),
            e.code().unwrap().to_string(),
            e.field_errors()
                .map(|f| f.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default(),
        )
    };

    // 400: fields, all reported at once.
    let mut bad = deploy_request("x", &key, 3);
    bad.gpu_model = "H100-SXM5-80GB".into();
    bad.image_name = None;
    let e = status(client.deploy(&bad).await.unwrap_err());
    assert_eq!((e.0, e.1.as_str()), (400, "VALIDATION_ERROR"));
    assert_eq!(e.2, ["gpu_count", "image_name", "instance_name"]);
    // 413: cloud_init over 16384 bytes.
    let mut big = deploy_request("big-init", &key, 1);
    big.cloud_init = Some("#".repeat(16385));
    assert_eq!(status(client.deploy(&big).await.unwrap_err()).0, 413);
    // 400: tier and region.
    let mut legacy_region = deploy_request("wrong-tier", &key, 1);
    legacy_region.region = "CANADA-1".into();
    let e = status(client.deploy(&legacy_region).await.unwrap_err());
    assert_eq!((e.0, e.2.clone()), (400, vec!["region".to_string()]));
    // 400: an image of another region, naming the region's images.
    let mut other_image = deploy_request("wrong-image", &key, 1);
    other_image.image_name = Some("Ubuntu Server 22.04 LTS R550 CUDA 12.4".into());
    let e = client.deploy(&other_image).await.unwrap_err();
    let message = e.field_errors().unwrap()["image_name"].join(" ");
    assert!(
        message.contains(
            "not available in FINLAND-1; its images are: Ubuntu 24.04 + CUDA 12.8 Open + Docker"
        ),
        "{message}"
    );
    // 403: profile incomplete.
    let e = status(
        client
            .deploy(&deploy_request("no-profile", &key, 1))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.0, e.1.as_str()), (403, "PROFILE_INCOMPLETE"));
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
    let e = status(
        client
            .deploy(&deploy_request("no-money", &key, 1))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.0, e.1.as_str()), (402, "INSUFFICIENT_BALANCE"));
    app.grant(&id, "10", barrack_api::Currency::USD).await;
    let e = status(
        client
            .deploy(&deploy_request("too-big", &key, 8))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.0, 402, "8 GPUs cost 19.92 an hour");
    // 404: references.
    let e = status(
        client
            .deploy(&deploy_request("no-key", "not-my-key", 1))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.0, e.1.as_str()), (404, "NOT_FOUND"));
    // 503: stock, naming where there is some.
    app.grant(&id, "100", barrack_api::Currency::USD).await;
    app.admin
        .admin_set_capacity(&SetCapacityRequest {
            capacity: vec![CapacitySetting {
                region: "FINLAND-1".into(),
                gpu_model: "H100-SXM5-80GB".into(),
                total: 4,
            }],
        })
        .await
        .unwrap();
    let unavailable = client
        .deploy(&deploy_request("no-stock", &key, 8))
        .await
        .unwrap_err();
    assert_eq!(
        (unavailable.status(), unavailable.code()),
        (Some(503), Some("GPU_UNAVAILABLE"))
    );
    assert!(
        unavailable.to_string().contains("FINLAND-2 (32 free)"),
        "{unavailable}"
    );
    // 201, then 409 for the same name.
    client
        .deploy(&deploy_request("taken", &key, 1))
        .await
        .unwrap();
    let e = status(
        client
            .deploy(&deploy_request("taken", &key, 1))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.0, e.1.as_str()), (409, "DUPLICATE_NAME"));
    assert_eq!(
        free_gpus(&app, "FINLAND-1").await,
        3,
        "a refused deploy takes nothing"
    );
    app.stop().await;
}

async fn concurrent_deploys_never_oversubscribe_stock(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let key = ssh_key(&client).await;
    app.admin
        .admin_set_capacity(&SetCapacityRequest {
            capacity: vec![CapacitySetting {
                region: "FINLAND-1".into(),
                gpu_model: "H100-SXM5-80GB".into(),
                total: 20,
            }],
        })
        .await
        .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            let request = deploy_request(&format!("worker-{i}"), &key, 1);
            tokio::spawn(async move { client.deploy(&request).await })
        })
        .collect();
    let (mut created, mut unavailable) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(e) if e.status() == Some(503) => unavailable += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((created, unavailable), (20, 30));
    app.settle().await;
    let active = client
        .instances(&InstanceQuery {
            status: Some("ACTIVE".into()),
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active.data.pagination.total, 20);
    assert_eq!(free_gpus(&app, "FINLAND-1").await, 0);
    assert_stock_consistent(&app).await;
    app.stop().await;
}

async fn driver_failures_leave_instances_in_error_with_stock_released(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let key = ssh_key(&client).await;

    // A permanent failure: ERROR with the reason, GPUs and address given back, deletable.
    app.admin.admin_inject_fault(&json!({"kind": "fail_nth", "operation": "create_instance", "nth": 1, "permanent": true})).await.unwrap();
    let id = deploy_id(&client, &deploy_request("doomed", &key, 2)).await;
    app.settle().await;
    let failed = client.instance(&id).await.unwrap().data;
    assert_eq!(failed.status, "ERROR");
    assert!(
        failed
            .status_reason
            .as_deref()
            .unwrap()
            .contains("injected failure"),
        "{:?}",
        failed.status_reason
    );
    assert_eq!(failed.allowed_actions, ["delete"]);
    assert_eq!(free_gpus(&app, "FINLAND-1").await, 64);
    assert_stock_consistent(&app).await;
    let dead = app.admin.admin_jobs().await.unwrap().data.jobs;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].status, "failed");
    client.delete_instance(&id).await.unwrap();
    app.settle().await;
    assert_eq!(client.instance(&id).await.unwrap_err().status(), Some(404));
    let listed = app.admin.admin_jobs().await.unwrap().data.jobs;
    assert!(
        listed.iter().all(|j| j.resource_id != id),
        "the dead letter of a deleted instance leaves the jobs list: {listed:?}"
    );

    // A transient failure is retried after its backoff and succeeds.
    app.admin
        .admin_inject_fault(&json!({"kind": "fail_nth", "operation": "create_instance", "nth": 1}))
        .await
        .unwrap();
    let id = deploy_id(&client, &deploy_request("retried", &key, 1)).await;
    app.settle().await;
    assert_eq!(
        instance_status(&client, &id).await,
        "CREATING",
        "waiting for the retry"
    );
    app.clock.advance_ms(5_000);
    app.settle().await;
    assert_eq!(instance_status(&client, &id).await, "ACTIVE");

    // A lost host: the reconciler moves its instances to ERROR.
    let (_, host) = app.simulator().instance(&id).unwrap();
    app.admin
        .admin_inject_fault(&json!({"kind": "lose_host", "host": host.unwrap()}))
        .await
        .unwrap();
    app.settle().await;
    let lost = client.instance(&id).await.unwrap().data;
    assert_eq!(lost.status, "ERROR");
    assert!(lost.status_reason.unwrap().contains("lost"));
    assert_eq!(lost.ip_address, None);
    assert_stock_consistent(&app).await;

    let bad = app
        .admin
        .admin_inject_fault(&json!({"kind": "meteor"}))
        .await
        .unwrap_err();
    assert_eq!(bad.status(), Some(400));
    app.stop().await;
}

async fn addresses_rules_and_other_accounts(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let key = ssh_key(&client).await;
    let mut request = deploy_request("private", &key, 1);
    request.public_ip = false;
    request.os_volume = Some(OsVolumeRequest { size: 200 });
    let id = deploy_id(&client, &request).await;
    app.settle().await;
    let instance = client.instance(&id).await.unwrap().data;
    assert!(
        instance.ip_address.as_deref().unwrap().starts_with("10."),
        "private address"
    );
    assert_eq!(instance.specs.storage_gb, 200);

    let toggled = client.toggle_public_ip(&id).await.unwrap().data;
    assert!(toggled.public_ip);
    assert!(
        toggled
            .ip_address
            .as_deref()
            .unwrap()
            .starts_with("203.0.113.")
    );
    let back = client.toggle_public_ip(&id).await.unwrap().data;
    assert!(!back.public_ip && back.ip_address.unwrap().starts_with("10."));

    let rule = SecurityRuleRequest {
        direction: "ingress".into(),
        protocol: Some("tcp".into()),
        ethertype: None,
        port_range_min: Some(8888),
        port_range_max: Some(8888),
        remote_ip_prefix: Some("198.51.100.0/24".into()),
    };
    let added = client.add_security_rule(&id, &rule).await.unwrap().data;
    assert!(added.id.ends_with('R'));
    assert_eq!(
        client
            .add_security_rule(&id, &rule)
            .await
            .unwrap_err()
            .status(),
        Some(409)
    );
    let bad = SecurityRuleRequest {
        remote_ip_prefix: Some("198.51.100.7/24".into()),
        ..rule.clone()
    };
    let e = client.add_security_rule(&id, &bad).await.unwrap_err();
    assert!(e.field_errors().unwrap().contains_key("remote_ip_prefix"));
    let removed = client.remove_security_rule(&id, &added.id).await.unwrap();
    assert!(removed.success);
    assert_eq!(
        (removed.instance_id.as_str(), removed.rule_id.as_str()),
        (id.as_str(), added.id.as_str())
    );
    assert_eq!(
        client
            .remove_security_rule(&id, &added.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );

    client
        .instance_action(&id, InstanceActionKind::Hibernate)
        .await
        .unwrap();
    app.settle().await;
    let summary = client.hibernated_instances().await.unwrap().data;
    assert_eq!(summary.count, 1);
    assert_eq!(summary.hourly_cost.0, "0.01".parse().unwrap());
    // The instance itself says what it is billed at now: not its GPUs or disk, its hibernation.
    let billing = client.instance(&id).await.unwrap().data.billing;
    assert_eq!(billing.total_hourly_rate.0, "0.01".parse().unwrap());
    assert_eq!(billing.breakdown.compute.gpu.hourly_rate.0, Decimal::ZERO);
    assert_eq!(
        billing.breakdown.storage.os_volume.hourly_rate.0,
        Decimal::ZERO
    );
    assert_eq!(
        client
            .snapshot_eligible_instances(&PageQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0
    );

    // The key is in use: it cannot be deleted.
    let keys = client.ssh_keys().await.unwrap().data.ssh_keys;
    let in_use = client.delete_ssh_key(&keys[0].id).await.unwrap_err();
    assert_eq!(
        (in_use.status(), in_use.code()),
        (Some(409), Some("RESOURCE_IN_USE"))
    );

    // Another account sees none of it.
    let (other, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    for (method, path) in [
        (Method::GET, format!("/api/instances/{id}/")),
        (Method::DELETE, format!("/api/instances/{id}/")),
        (Method::POST, format!("/api/instances/{id}/restore/")),
        (
            Method::POST,
            format!("/api/instances/{id}/toggle-public-ip/"),
        ),
        (Method::GET, format!("/api/instances/{id}/events/")),
        (
            Method::DELETE,
            format!("/api/instances/{id}/security-rules/BRK-AAAAAAR/"),
        ),
        (Method::GET, format!("/api/ssh-keys/{}/", keys[0].id)),
        (Method::DELETE, format!("/api/ssh-keys/{}/", keys[0].id)),
    ] {
        let raw = other.raw(method.clone(), &path, None).await.unwrap();
        assert_eq!(raw.status, 404, "{method} {path}");
    }
    let e = other
        .deploy(&deploy_request("stolen-key", &keys[0].id, 1))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "another account's SSH key");
    app.stop().await;
}

/// Pages of the list without filters, from either end of the account's instances (PostgreSQL finds a page
/// in the older half from the oldest end), with the deleted instance left out of pages and total, and each
/// instance's labels wherever its page is.
async fn pages_of_the_list_show_each_instance_once_with_its_labels(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let key = ssh_key(&client).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(deploy_id(&client, &deploy_request(&format!("paged-{i}"), &key, 1)).await);
        // Two instances a millisecond: equal creation times are ordered by id.
        if i % 2 == 1 {
            app.clock.advance_ms(1);
        }
    }
    app.settle().await;
    client.delete_instance(&ids[3]).await.unwrap();
    app.settle().await;
    for id in [&ids[0], &ids[6]] {
        client
            .patch_labels(
                barrack_client::LabelledResource::Instances,
                id,
                &barrack_api::labels::LabelsPatch {
                    labels: [("team".to_string(), Some(format!("t-{id}")))].into(),
                },
            )
            .await
            .unwrap();
    }
    let everything = client
        .instances(&InstanceQuery {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    assert_eq!(everything.pagination.total, 7);
    let newest_first: Vec<String> = everything
        .instances
        .iter()
        .map(|i| i.instance_id.clone())
        .collect();
    assert!(
        !newest_first.contains(&ids[3]),
        "the deleted instance is not listed"
    );
    let mut paged = Vec::new();
    for page in 1..=5 {
        let list = client
            .instances(&InstanceQuery {
                page: Some(page),
                limit: Some(2),
                ..Default::default()
            })
            .await
            .unwrap()
            .data;
        assert_eq!(
            (
                list.pagination.page,
                list.pagination.limit,
                list.pagination.total,
                list.pagination.total_pages
            ),
            (page, 2, 7, 4)
        );
        assert_eq!(
            list.instances.len(),
            [2, 2, 2, 1, 0][page as usize - 1],
            "page {page}"
        );
        for instance in list.instances {
            let labelled = instance.instance_id == ids[0] || instance.instance_id == ids[6];
            assert_eq!(
                instance.labels.get("team"),
                labelled
                    .then(|| format!("t-{}", instance.instance_id))
                    .as_ref(),
                "labels of {} on page {page}",
                instance.instance_id
            );
            paged.push(instance.instance_id);
        }
    }
    assert_eq!(
        paged, newest_first,
        "pages of 2 list what one page of 100 does"
    );
    app.stop().await;
}

/// The view's rules come from several tables read in one statement; whatever order the database returns
/// them in, the instance's own rules are shown oldest first (by id within a moment) and the view and the
/// list agree.
async fn an_instances_rules_keep_their_order_in_its_view_and_the_list(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let key = ssh_key(&client).await;
    let port = |p: u16| json!({"direction": "ingress", "protocol": "tcp", "port_range_min": p, "port_range_max": p});
    let mut request = deploy_request("ordered", &key, 1);
    request.security_rules =
        serde_json::from_value(json!([port(103), port(101), port(102), port(100)])).unwrap();
    let id = deploy_id(&client, &request).await;
    let other = deploy_id(&client, &deploy_request("plain", &key, 1)).await;
    app.settle().await;
    for added in [200, 150, 300] {
        app.clock.advance_ms(1000);
        let rule = SecurityRuleRequest {
            direction: "ingress".into(),
            protocol: Some("tcp".into()),
            ethertype: None,
            port_range_min: Some(added),
            port_range_max: Some(added),
            remote_ip_prefix: None,
        };
        client.add_security_rule(&id, &rule).await.unwrap();
    }
    let shown = client.instance(&id).await.unwrap().data;
    let deployed_with: Vec<&str> = shown.security_rules[..4]
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    let mut by_id = deployed_with.clone();
    by_id.sort();
    assert_eq!(deployed_with, by_id, "added in one moment: by id");
    let later: Vec<Option<u16>> = shown.security_rules[4..]
        .iter()
        .map(|r| r.port_range_min)
        .collect();
    assert_eq!(later, [Some(200), Some(150), Some(300)], "then as added");
    let listed = client
        .instances(&InstanceQuery::default())
        .await
        .unwrap()
        .data
        .instances;
    assert_eq!(listed.len(), 2);
    let in_list = listed.iter().find(|i| i.instance_id == id).unwrap();
    assert_eq!(
        serde_json::to_value(&in_list.security_rules).unwrap(),
        serde_json::to_value(&shown.security_rules).unwrap()
    );
    let plain = listed.iter().find(|i| i.instance_id == other).unwrap();
    assert!(plain.security_rules.is_empty(), "no rules of another's");
    app.stop().await;
}

/// Billing records of the account's instances as (status, minutes), sorted.
async fn billing_periods(client: &Client) -> Vec<(String, u64)> {
    let records = client
        .instance_billing(&barrack_api::billing::BillingQuery {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut periods: Vec<(String, u64)> = records
        .records
        .iter()
        .map(|r| (r.status.clone(), r.total_duration_minutes))
        .collect();
    periods.sort();
    periods
}

/// A machine that stops without the platform stopping it (a shutdown inside the guest, or on its host)
/// is found by the reconciler: its instance moves to SHUTOFF with the reason and an event, and is
/// billed as a stopped instance is. A reboot of a machine found off (before the reconciler saw it)
/// boots it instead of failing the instance.
async fn a_machine_powered_off_behind_the_server_is_shutoff_and_a_reboot_boots_it(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let key = ssh_key(&client).await;
    let id = deploy_id(&client, &deploy_request("halted", &key, 1)).await;
    app.settle().await;
    assert_eq!(instance_status(&client, &id).await, "ACTIVE");
    let address = client.instance(&id).await.unwrap().data.ip_address;
    app.clock.advance_ms(10 * 60_000);
    app.settle().await;

    assert!(app.simulator().power_off(&id));
    app.settle().await;
    let off = client.instance(&id).await.unwrap().data;
    assert_eq!(off.status, "SHUTOFF");
    assert!(
        off.status_reason
            .as_deref()
            .is_some_and(|r| r.contains("found powered off")),
        "{:?}",
        off.status_reason
    );
    assert_eq!(
        off.ip_address, address,
        "it keeps its address, as a stop does"
    );
    let event = crate::common::events_of(&client)
        .await
        .into_iter()
        .rfind(|e| e.resource_id == id)
        .unwrap();
    assert_eq!(
        (event.from_status.as_deref(), event.to_status.as_deref()),
        (Some("ACTIVE"), Some("SHUTOFF"))
    );
    assert_eq!(event.actor, "system");
    assert!(event.cause.contains("found powered off"), "{}", event.cause);
    app.clock.advance_ms(5 * 60_000);
    app.settle().await;
    assert_eq!(
        billing_periods(&client).await,
        [("active".to_string(), 15)],
        "SHUTOFF is billed as ACTIVE is, as after a stop: one period, neither closed nor doubled"
    );
    assert_stock_consistent(&app).await;
    // Seen again, nothing changes.
    app.clock.advance_ms(60_000);
    app.settle().await;
    assert_eq!(instance_status(&client, &id).await, "SHUTOFF");

    client
        .instance_action(&id, InstanceActionKind::Start)
        .await
        .unwrap();
    app.settle().await;
    let started = client.instance(&id).await.unwrap().data;
    assert_eq!(
        (started.status.as_str(), started.status_reason),
        ("ACTIVE", None)
    );

    // Off again, and rebooted before the reconciler saw it: the reboot boots it.
    assert!(app.simulator().power_off(&id));
    client
        .instance_action(&id, InstanceActionKind::Reboot)
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(instance_status(&client, &id).await, "ACTIVE");
    assert_eq!(
        app.simulator().instance(&id).unwrap().0,
        barrack_compute::PowerState::Running
    );
    assert_stock_consistent(&app).await;
    app.stop().await;
}
