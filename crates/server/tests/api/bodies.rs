//! Request bodies: operations that take none refuse one, and a body that does not deserialize names the
//! field at fault in plain words.

use barrack_api::Tier;
use barrack_api::deposits::{CreateDepositRequest, DepositStatus};
use barrack_api::scripts::ScriptRequest;
use reqwest::Method;
use serde_json::Value;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    every_bodiless_operation_refuses_a_body,
    a_refused_body_leaves_everything_as_it_was,
    a_refused_body_names_each_member_at_fault
);

/// The served document's operations that change something and take no body: (method, path).
async fn bodiless_operations(app: &TestApp) -> Vec<(Method, String)> {
    let doc = app
        .anonymous()
        .raw_bytes(Method::GET, "/api/openapi.json", None)
        .await
        .unwrap()
        .body;
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(&method)
                && op.get("requestBody").is_none()
            {
                ops.push((method, path.clone()));
            }
        }
    }
    ops
}

/// `path` with each `{param}` replaced by an id of nothing.
fn with_ids(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "BRK-ZZZZZZX"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The envelope's `errors`, as a map of field to messages.
fn errors(raw: &barrack_client::RawResponse) -> serde_json::Map<String, Value> {
    raw.body["errors"].as_object().cloned().unwrap_or_default()
}

async fn every_bodiless_operation_refuses_a_body(db: Db) {
    let app = TestApp::start(db).await;
    let ops = bodiless_operations(&app).await;
    assert!(
        ops.iter()
            .any(|(m, p)| *m == Method::POST && p == "/api/admin/reset/"),
        "the reset is one of them"
    );
    assert!(ops.len() >= 20, "{} operations", ops.len());
    for (method, path) in &ops {
        let what = format!("{method} {path}");
        let url = with_ids(path);
        let members = app
            .admin
            .raw_bytes(
                method.clone(),
                &url,
                Some(br#"{"dry_run": true, "amount": "5000"}"#.to_vec()),
            )
            .await
            .unwrap();
        assert_eq!(members.status, 400, "{what}: {}", members.text);
        assert_eq!(members.body["code"], "VALIDATION_ERROR", "{what}");
        let errors_of = errors(&members);
        assert_eq!(errors_of.len(), 2, "{what}: {}", members.text);
        assert_eq!(errors_of["dry_run"][0], "Unknown field 'dry_run'", "{what}");
        assert_eq!(errors_of["amount"][0], "Unknown field 'amount'", "{what}");
        for body in [
            &b"not json"[..],
            b"garbage",
            b"  ",
            b"[]",
            b"null",
            b"{oops",
        ] {
            let refused = app
                .admin
                .raw_bytes(method.clone(), &url, Some(body.to_vec()))
                .await
                .unwrap();
            let sent = String::from_utf8_lossy(body);
            assert_eq!(refused.status, 400, "{what} with {sent}: {}", refused.text);
            assert_eq!(
                errors(&refused).keys().collect::<Vec<_>>(),
                ["body"],
                "{what} with {sent}: {}",
                refused.text
            );
        }
        // Without a key it is still 401 first.
        let anonymous = app
            .anonymous()
            .raw_bytes(method.clone(), &url, Some(b"garbage".to_vec()))
            .await
            .unwrap();
        assert_eq!(anonymous.status, 401, "{what}: {}", anonymous.text);
        // No body, or an empty object, is not refused (an id of nothing is a 404, or the action's own
        // answer).
        for body in [None, Some(b"{}".to_vec()), Some(b" { } ".to_vec())] {
            let raw = app
                .admin
                .raw_bytes(method.clone(), &url, body)
                .await
                .unwrap();
            assert_ne!(raw.status, 400, "{what}: {}", raw.text);
        }
    }
    app.stop().await;
}

async fn a_refused_body_leaves_everything_as_it_was(db: Db) {
    let app = TestApp::start(db).await;
    let (user, user_id) = app.funded_user(Tier::Legacy, "US", "10").await;
    let deposit = user
        .create_deposit(&CreateDepositRequest {
            amount: "25".parse().unwrap(),
            currency: None,
        })
        .await
        .unwrap()
        .data;
    let script = user
        .create_script(&ScriptRequest {
            name: "setup".into(),
            script: "#!/bin/sh\necho hi\n".into(),
        })
        .await
        .unwrap()
        .data;
    let refused = [
        (
            Method::POST,
            "/api/admin/reset/".to_string(),
            &br#"{"dry_run": true}"#[..],
        ),
        (Method::POST, "/api/admin/reset/".into(), b"not json"),
        (
            Method::POST,
            "/api/admin/reset/".into(),
            br#"{"confirm": false}"#,
        ),
        (
            Method::POST,
            format!("/api/admin/users/{user_id}/disable/"),
            br#"{"reason": "x"}"#,
        ),
        (
            Method::POST,
            format!("/api/admin/deposits/{}/complete/", deposit.id),
            br#"{"amount": "5000"}"#,
        ),
        (
            Method::DELETE,
            format!("/api/scripts/{}/", script.id),
            b"garbage",
        ),
    ];
    for (method, path, body) in refused {
        let client = if path.starts_with("/api/admin/") {
            &app.admin
        } else {
            &user
        };
        let raw = client
            .raw_bytes(method.clone(), &path, Some(body.to_vec()))
            .await
            .unwrap();
        assert_eq!(raw.status, 400, "{method} {path}: {}", raw.text);
    }
    // The account is still there, its key works, its deposit is pending and its script kept.
    assert_eq!(
        user.balance().await.unwrap().data.balance,
        "10".parse().unwrap()
    );
    assert_eq!(
        user.deposit(&deposit.id).await.unwrap().data.status,
        DepositStatus::Pending
    );
    assert_eq!(user.script(&script.id).await.unwrap().data.name, "setup");
    // What clients send for these, `{}` or nothing, still does them.
    let completed = app.admin.admin_complete_deposit(&deposit.id).await.unwrap();
    assert_eq!(completed.data.status, DepositStatus::Completed);
    assert_eq!(completed.data.amount, "25".parse().unwrap());
    user.delete_script(&script.id).await.unwrap();
    let reset = app
        .admin
        .raw_bytes(Method::POST, "/api/admin/reset/", None)
        .await
        .unwrap();
    assert_eq!(reset.status, 200, "{}", reset.text);
    assert_eq!(user.balance().await.unwrap_err().status(), Some(401));
    app.stop().await;
}

/// A request (method, path, body) and the fields its answer must name, each with how its message starts.
type Case<'a> = (Method, &'a str, &'a str, &'a [(&'a str, &'a str)]);

async fn a_refused_body_names_each_member_at_fault(db: Db) {
    let app = TestApp::start(db).await;
    let whole = "Must be a whole number";
    let object = "Must be a string, not an object";
    let cases: [Case; 20] = [
        (
            Method::POST,
            "/api/admin/scenarios/",
            r#"{"kind": "gpu_scarcity", "region": "FINLAND-1", "available": "2"}"#,
            &[("available", &format!("{whole}, not string \"2\""))],
        ),
        (
            Method::POST,
            "/api/admin/scenarios/",
            r#"{"kind": "gpu_scarcity", "region": "FINLAND-1", "available": -2}"#,
            &[("available", "Must not be negative, not the number -2")],
        ),
        (
            Method::POST,
            "/api/admin/faults/",
            r#"{"kind": "hang", "operation": "create_instance", "zzz": 1}"#,
            &[("zzz", "Unknown field 'zzz'")],
        ),
        (
            Method::GET,
            "/api/instances/?page=1&page=2",
            "",
            &[("page", "Given more than once")],
        ),
        (
            Method::GET,
            "/api/pricing/?tier=legacy&tier=advanced",
            "",
            &[("tier", "Given more than once")],
        ),
        (
            Method::POST,
            "/api/pricing/",
            r#"{"tier": 5}"#,
            &[("tier", "Must be a string, not the number 5")],
        ),
        // A number's message states no range the field does not have (a count of GPUs is 1, 2, 4
        // or 8; a page 1 or more, a limit 1 to 100).
        (
            Method::POST,
            "/api/deploy-server/",
            r#"{"gpu_count": 1.5}"#,
            &[("gpu_count", "Must be a whole number, not the number 1.5")],
        ),
        (
            Method::GET,
            "/api/instances/?page=",
            "",
            &[("page", "Must be a whole number, not \"\"")],
        ),
        (
            Method::GET,
            "/api/instances/?limit=abc&page=-1",
            "",
            &[
                ("limit", "Must be a whole number, not \"abc\""),
                ("page", "Must not be negative, not \"-1\""),
            ],
        ),
        (Method::GET, "/api/instances/?page=0", "", &[("page", "")]),
        // Every member at fault inside a member is named too.
        (
            Method::POST,
            "/api/deploy-server/",
            r#"{"volumes": [{"name": "a", "size": "x", "volume_type": 1}]}"#,
            &[
                (
                    "volumes[0].size",
                    "Must be a whole number, not string \"x\"",
                ),
                (
                    "volumes[0].volume_type",
                    "Must be a string, not the number 1",
                ),
            ],
        ),
        (
            Method::PUT,
            "/api/admin/capacity/",
            r#"{"capacity": [{"region": 5}, {"total": "8"}]}"#,
            &[
                ("capacity[0].region", "Must be a string, not the number 5"),
                (
                    "capacity[1].total",
                    "Must be a whole number, not string \"8\"",
                ),
            ],
        ),
        // Names are strings, never serde's object form of them.
        (
            Method::POST,
            "/api/pricing/",
            r#"{"tier": {"legacy": 1}, "resource_type": {"gpus": null}}"#,
            &[("tier", object), ("resource_type", object)],
        ),
        (
            Method::POST,
            "/api/api-keys/",
            r#"{"name": "zz", "tier": {"advanced": null}}"#,
            &[("tier", object)],
        ),
        (
            Method::POST,
            "/api/admin/faults/",
            r#"{"kind": "fail_nth", "operation": {"reboot_instance": null}, "nth": 1}"#,
            &[("operation", object)],
        ),
        (
            Method::POST,
            "/api/admin/faults/",
            r#"{"kind": "fail_nth", "operation": {"x": 1}, "nth": 1}"#,
            &[("operation", object)],
        ),
        // In a body whose `kind` chooses its members, the member at fault is named, not `kind`.
        (
            Method::POST,
            "/api/admin/faults/",
            r#"{"kind": "fail_nth", "operation": "bogus", "nth": 1}"#,
            &[("operation", "Must be one of create_instance")],
        ),
        (
            Method::POST,
            "/api/admin/faults/",
            r#"{"kind": "hang", "operation": "bogus"}"#,
            &[("operation", "Must be one of create_instance")],
        ),
        (
            Method::POST,
            "/api/volumes/",
            r#"{"name": 5}"#,
            &[("name", "Must be a string, not the number 5")],
        ),
        (
            Method::POST,
            "/api/deploy-server/",
            r#"{"gpu_count": "1", "region": 5}"#,
            &[
                ("gpu_count", ""),
                ("region", "Must be a string, not the number 5"),
            ],
        ),
    ];
    for (method, path, body, expected) in cases {
        let body = (!body.is_empty()).then(|| body.as_bytes().to_vec());
        let raw = app
            .admin
            .raw_bytes(method.clone(), path, body)
            .await
            .unwrap();
        let what = format!("{method} {path}");
        assert_eq!(raw.status, 400, "{what}: {}", raw.text);
        let errors = errors(&raw);
        for (field, message) in expected {
            let said = errors
                .get(*field)
                .and_then(|m| m[0].as_str())
                .unwrap_or_else(|| panic!("{what}: {field} is not named: {}", raw.text));
            assert!(said.starts_with(message), "{what}: {said}");
            // No range the field does not have.
            assert!(!said.contains("0 or more"), "{what}: {said}");
            assert!(!said.contains("4294967295"), "{what}: {said}");
            // serde's own words are not the API's.
            for word in ["invalid type", "expected", "integer `", "`"] {
                assert!(!said.contains(word), "{what}: {said}");
            }
        }
        assert!(!errors.contains_key("body"), "{what}: {}", raw.text);
        if !expected.iter().any(|(field, _)| *field == "kind") {
            assert!(!errors.contains_key("kind"), "{what}: {}", raw.text);
        }
    }
    // A member of the wrong kind does not hide the required members missing.
    let raw = app
        .admin
        .raw_bytes(
            Method::POST,
            "/api/volumes/",
            Some(br#"{"name": 5}"#.to_vec()),
        )
        .await
        .unwrap();
    let required: Vec<_> = errors(&raw)
        .iter()
        .filter(|(_, m)| m[0] == "This field is required")
        .map(|(f, _)| f.clone())
        .collect();
    assert!(!required.is_empty(), "{}", raw.text);
    app.stop().await;
}
