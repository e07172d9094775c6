//! Startup scripts: the documented validation, CRUD, bulk delete, and their use at deploy.

use barrack_api::scripts::ScriptRequest;
use barrack_api::{PageQuery, Tier};
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

on_both_databases!(
    the_documented_validation_example,
    scripts_crud_and_bulk_delete,
    deploy_copies_the_script
);

async fn the_documented_validation_example(db: Db) {
    let app = TestApp::start(db).await;
    let body = json!({"name": "setup/script!", "script": "x".repeat(16385)});
    let raw = app
        .admin
        .raw(Method::POST, "/api/scripts/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status, 400);
    let request_id = raw.body["request_id"].as_str().unwrap().to_string();
    assert_eq!(request_id.len(), 8);
    assert_eq!(
        raw.body,
        json!({
            "success": false,
            "message": "Invalid request data",
            "code": "VALIDATION_ERROR",
            "errors": {
                "name": ["Name must contain only alphanumeric characters, spaces, hyphens, underscores, and dots"],
                "script": ["Script content must be 16384 bytes or less"]
            },
            "request_id": request_id,
            "tier": "advanced"
        })
    );
    // A name of spaces alone is refused for what it is, not for a length it has.
    let blank = app
        .admin
        .raw(
            Method::POST,
            "/api/scripts/",
            Some(&json!({"name": "   ", "script": "x"})),
        )
        .await
        .unwrap();
    assert_eq!(blank.status, 400);
    assert_eq!(
        blank.body["errors"],
        json!({"name": ["Name must not be empty or only spaces"]})
    );
    // Exactly 16384 bytes is allowed.
    let ok = json!({"name": "big one", "script": "y".repeat(16384)});
    assert_eq!(
        app.admin
            .raw(Method::POST, "/api/scripts/", Some(&ok))
            .await
            .unwrap()
            .status,
        201
    );
    app.stop().await;
}

async fn scripts_crud_and_bulk_delete(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Legacy).await;
    let request = |name: &str, script: &str| ScriptRequest {
        name: name.into(),
        script: script.into(),
    };
    let created = client
        .create_script(&request("install drivers", "#!/bin/bash\necho hi\n"))
        .await
        .unwrap()
        .data;
    assert!(created.id.starts_with("BRK-") && created.id.ends_with('C'));
    assert_eq!(created.size_bytes, 20);
    let dup = client
        .create_script(&request("install drivers", "echo"))
        .await
        .unwrap_err();
    // The scripts page lists 201, 400, 401 and 500: a taken name is a 400 on `name`.
    assert_eq!(
        (dup.status(), dup.code()),
        (Some(400), Some("VALIDATION_ERROR"))
    );
    assert!(
        dup.field_errors().unwrap()["name"][0].contains("already exists"),
        "{dup:?}"
    );
    let second = client
        .create_script(&request("second", "echo 2"))
        .await
        .unwrap()
        .data;

    let updated = client
        .update_script(&created.id, &request("install-drivers.v2", "echo v2"))
        .await
        .unwrap()
        .data;
    assert_eq!(
        (updated.name.as_str(), updated.script.as_str()),
        ("install-drivers.v2", "echo v2")
    );
    let taken = client
        .update_script(&created.id, &request("second", "echo"))
        .await
        .unwrap_err();
    assert_eq!(taken.status(), Some(400));
    assert!(taken.field_errors().unwrap().contains_key("name"));
    let list = client.scripts(&PageQuery::default()).await.unwrap().data;
    assert_eq!(list.pagination.total, 2);

    let (other, _) = app.user(Tier::Legacy).await;
    assert_eq!(
        other.script(&created.id).await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        other
            .update_script(&created.id, &request("mine", "x"))
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert_eq!(
        other.delete_script(&created.id).await.unwrap_err().status(),
        Some(404)
    );
    let theirs = other
        .delete_scripts(std::slice::from_ref(&created.id))
        .await
        .unwrap()
        .data;
    assert_eq!(
        (theirs.deleted.len(), theirs.not_found.len()),
        (0, 1),
        "another account's ids are not found"
    );

    client.delete_script(&second.id).await.unwrap();
    let bulk = client
        .delete_scripts(&[created.id.clone(), "BRK-NOPE00C".into()])
        .await
        .unwrap()
        .data;
    assert_eq!(bulk.deleted, std::slice::from_ref(&created.id));
    assert_eq!(bulk.not_found, ["BRK-NOPE00C"]);
    assert_eq!(
        client
            .scripts(&PageQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0
    );
    let empty = client.delete_scripts(&[]).await.unwrap_err();
    assert!(empty.field_errors().unwrap().contains_key("script_ids"));
    app.stop().await;
}

async fn deploy_copies_the_script(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    create_key_k(&client).await;
    let script = client
        .create_script(&ScriptRequest {
            name: "warmup".into(),
            script: "#!/bin/sh\nnvidia-smi\n".into(),
        })
        .await
        .unwrap()
        .data;
    let body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "with-script",
                      "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "k", "script_id": script.id});
    let raw = client
        .raw(Method::POST, "/api/deploy-server/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    assert_eq!(
        raw.body["data"]["features"]["startup_script_configured"],
        true
    );
    let id = raw.body["data"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Deleting the script does not break the instance that used it.
    client.delete_script(&script.id).await.unwrap();
    app.settle().await;
    let instance = client.instance(&id).await.unwrap().data;
    assert_eq!(instance.status, "ACTIVE");
    assert!(instance.features.startup_script_configured);
    assert_eq!(instance.script_id.as_deref(), Some(script.id.as_str()));

    let missing = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "no-script",
                         "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "k", "script_id": script.id});
    assert_eq!(
        client
            .raw(Method::POST, "/api/deploy-server/", Some(&missing))
            .await
            .unwrap()
            .status,
        404
    );
    app.stop().await;
}
