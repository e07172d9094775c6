//! What a request may name: the query parameters each list takes, the catalog names its filters take,
//! capacity rows given once, text without control characters, and answers no larger than the question.

use barrack_client::RawResponse;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp, ssh_firewall};
use crate::on_both_databases;

on_both_databases!(
    every_get_operation_refuses_a_query_parameter_it_does_not_take,
    every_other_operation_refuses_a_query_parameter_it_does_not_take,
    a_refused_query_parameter_leaves_everything_as_it_was,
    operator_jobs_check_their_status_and_page,
    filters_refuse_names_the_catalog_does_not_have,
    capacity_refuses_a_region_and_model_given_twice,
    many_bad_items_make_a_bounded_answer,
    emails_and_notes_refuse_control_and_formatting_characters,
);

fn field_errors(body: &Value) -> Vec<String> {
    body["errors"]
        .as_object()
        .map(|e| e.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every `GET` of the served document, with a parameter it does not take, answers 400 naming it: a typo
/// never reads as "no filter". The sweep follows the document, so a new route is covered the day it is
/// added.
async fn every_get_operation_refuses_a_query_parameter_it_does_not_take(db: Db) {
    let app = TestApp::start(db).await;
    let document = app
        .anonymous()
        .raw(Method::GET, "/api/openapi.json", None)
        .await
        .unwrap()
        .body;
    let mut swept = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        if item.get("get").is_none() {
            continue;
        }
        // Any id: the refusal comes before the resource is looked up.
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "BRK-AAAAAAU" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for query in ["zzz_unknown=1", "zzz_unknown=1&page=1"] {
            let raw = app
                .admin
                .raw(Method::GET, &format!("{concrete}?{query}"), None)
                .await
                .unwrap();
            assert_eq!(
                (raw.status.as_u16(), raw.body["code"].as_str()),
                (400, Some("VALIDATION_ERROR")),
                "GET {concrete}?{query}: {}",
                raw.text
            );
            assert!(
                field_errors(&raw.body).contains(&"zzz_unknown".to_string()),
                "GET {concrete}?{query} names the parameter: {}",
                raw.text
            );
        }
        assert!(
            item["get"]["responses"].get("400").is_some(),
            "GET {path} documents its 400"
        );
        swept += 1;
    }
    assert!(
        swept >= 50,
        "the document lists the GET operations ({swept})"
    );
    app.stop().await;
}

/// The operation the payment provider calls: it ignores what it does not know, parameters as members.
const PROVIDER_CALLED: &str = "/api/deposits/webhook/";

/// Every operation of the served document that is not a `GET`, with a parameter it does not take, answers
/// 400 naming it (as a member of the body would be) and does nothing: `DELETE ...?dry_run=true` is not a
/// deletion. A caller without a key is still told 401 first.
async fn every_other_operation_refuses_a_query_parameter_it_does_not_take(db: Db) {
    let app = TestApp::start(db).await;
    let document = app
        .anonymous()
        .raw(Method::GET, "/api/openapi.json", None)
        .await
        .unwrap()
        .body;
    let mut swept = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if ![Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(&method)
                || path == PROVIDER_CALLED
            {
                continue;
            }
            let concrete = path
                .split('/')
                .map(|s| if s.starts_with('{') { "BRK-AAAAAAU" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let what = format!("{method} {concrete}");
            for (query, body) in [
                ("zzz_unknown=1&dry_run=true", None),
                ("zzz_unknown=1&dry_run=true", Some(json!({}))),
            ] {
                let raw = app
                    .admin
                    .raw(
                        method.clone(),
                        &format!("{concrete}?{query}"),
                        body.as_ref(),
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    (raw.status.as_u16(), raw.body["code"].as_str()),
                    (400, Some("VALIDATION_ERROR")),
                    "{what}?{query}: {}",
                    raw.text
                );
                for name in ["zzz_unknown", "dry_run"] {
                    assert_eq!(
                        raw.body["errors"][name][0],
                        format!("Unknown query parameter '{name}'"),
                        "{what}?{query}: {}",
                        raw.text
                    );
                }
            }
            // Credentials required: no requirement of the operation is the empty one.
            let secured = op["security"].as_array().is_some_and(|reqs| {
                !reqs.is_empty()
                    && reqs
                        .iter()
                        .all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
            });
            if secured {
                let anonymous = app
                    .anonymous()
                    .raw(method.clone(), &format!("{concrete}?zzz_unknown=1"), None)
                    .await
                    .unwrap();
                assert_eq!(anonymous.status.as_u16(), 401, "{what}: {}", anonymous.text);
            }
            assert!(
                op["responses"].get("400").is_some(),
                "{what} documents its 400"
            );
            swept += 1;
        }
    }
    assert!(swept >= 50, "the document lists the operations ({swept})");
    app.stop().await;
}

/// A refused parameter refuses the whole request: the instance, key and firewall are still there, and
/// the parameters an operation does take still work (`DELETE /api/firewalls/{id}/?force=true`).
async fn a_refused_query_parameter_leaves_everything_as_it_was(db: Db) {
    let app = TestApp::start(db).await;
    let (user, _) = app
        .funded_user(barrack_api::Tier::Advanced, "US", "1000")
        .await;
    crate::common::create_key_k(&user).await;
    let deployed = user
        .raw(
            Method::POST,
            "/api/deploy-server/",
            Some(&json!({
                "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
                "instance_name": "keep", "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
                "ssh_key": "k", "public_ip": false
            })),
        )
        .await
        .unwrap();
    assert_eq!(deployed.status.as_u16(), 201, "{}", deployed.text);
    let instance = deployed.body["data"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.settle().await;
    let firewall = user
        .create_firewall(&ssh_firewall("keep-fw"))
        .await
        .unwrap()
        .data
        .id;
    for (method, path) in [
        (
            Method::DELETE,
            format!("/api/instances/{instance}/?dry_run=true"),
        ),
        (
            Method::POST,
            format!("/api/instances/{instance}/reboot/?force=1"),
        ),
        (
            Method::POST,
            format!("/api/instances/{instance}/stop/?force=1"),
        ),
        (
            Method::DELETE,
            format!("/api/firewalls/{firewall}/?force=true&dry_run=1"),
        ),
    ] {
        let raw = user.raw(method.clone(), &path, None).await.unwrap();
        assert_eq!(raw.status.as_u16(), 400, "{method} {path}: {}", raw.text);
    }
    let shown = user
        .raw(Method::GET, &format!("/api/instances/{instance}/"), None)
        .await
        .unwrap();
    assert_eq!(shown.body["data"]["status"], "ACTIVE", "{}", shown.text);
    let deleted = user
        .raw(
            Method::DELETE,
            &format!("/api/firewalls/{firewall}/?force=true"),
            None,
        )
        .await
        .unwrap();
    assert!(deleted.status.is_success(), "{}", deleted.text);
    app.stop().await;
}

/// `GET /api/admin/jobs/` pages like the other lists and checks its `status` filter.
async fn operator_jobs_check_their_status_and_page(db: Db) {
    let app = TestApp::start(db).await;
    for (query, field) in [
        ("status=bogus", "status"),
        ("status=done", "status"),
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("page=abc", "page"),
        ("page=0", "page"),
    ] {
        let raw = app
            .admin
            .raw(Method::GET, &format!("/api/admin/jobs/?{query}"), None)
            .await
            .unwrap();
        assert_eq!(raw.status.as_u16(), 400, "?{query}: {}", raw.text);
        assert_eq!(field_errors(&raw.body), vec![field.to_string()], "?{query}");
    }
    let raw = app
        .admin
        .raw(Method::GET, "/api/admin/jobs/?status=bogus&limit=0", None)
        .await
        .unwrap();
    assert_eq!(
        field_errors(&raw.body),
        vec!["limit".to_string(), "status".to_string()],
        "every bad parameter at once: {}",
        raw.text
    );
    // A pending job to list.
    app.admin
        .create_firewall(&ssh_firewall("jobs-fw"))
        .await
        .unwrap();
    for status in ["pending", "running", "failed"] {
        let raw = app
            .admin
            .raw(
                Method::GET,
                &format!("/api/admin/jobs/?status={status}&page=1&limit=100"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(raw.status.as_u16(), 200, "{}", raw.text);
        let jobs = raw.body["data"]["jobs"].as_array().unwrap();
        assert!(jobs.iter().all(|j| j["status"] == status), "{}", raw.text);
        assert_eq!(
            raw.body["data"]["pagination"]["total"].as_u64(),
            Some(jobs.len() as u64)
        );
        if status == "pending" {
            assert!(!jobs.is_empty(), "the firewall's job is pending");
        }
    }
    let page = app
        .admin
        .raw(Method::GET, "/api/admin/jobs/?limit=1&page=99", None)
        .await
        .unwrap();
    assert_eq!(page.status.as_u16(), 200);
    assert_eq!(page.body["data"]["jobs"], json!([]));
    assert_eq!(page.body["data"]["pagination"]["limit"], 1);
    app.stop().await;
}

/// A `region` or `gpu_model` filter the catalog does not have is a 400 naming the parameter and the
/// valid names, matched as written (as a deploy's body is), never an empty list.
async fn filters_refuse_names_the_catalog_does_not_have(db: Db) {
    let app = TestApp::start(db).await;
    let lists = [
        "/api/instances/",
        "/api/volumes/",
        "/api/firewalls/",
        "/api/snapshots/",
        "/api/images/",
    ];
    for list in lists {
        for region in ["finland-1", "MARS", "FINLAND-1%20"] {
            let raw = app
                .admin
                .raw(Method::GET, &format!("{list}?region={region}"), None)
                .await
                .unwrap();
            assert_eq!(
                raw.status.as_u16(),
                400,
                "{list}?region={region}: {}",
                raw.text
            );
            let messages = raw.body["errors"]["region"].to_string();
            assert!(
                messages.contains("Valid values") && messages.contains("FINLAND-1"),
                "{list}?region={region}: {}",
                raw.text
            );
        }
        let raw = app
            .admin
            .raw(Method::GET, &format!("{list}?region=FINLAND-1"), None)
            .await
            .unwrap();
        assert_eq!(
            raw.status.as_u16(),
            200,
            "{list}?region=FINLAND-1: {}",
            raw.text
        );
    }
    for model in ["h100-sxm5-80gb", "H100"] {
        let raw = app
            .admin
            .raw(
                Method::GET,
                &format!("/api/instances/?gpu_model={model}"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(raw.status.as_u16(), 400, "{}", raw.text);
        assert!(
            raw.body["errors"]["gpu_model"]
                .to_string()
                .contains("Valid values"),
            "{}",
            raw.text
        );
    }
    let raw = app
        .admin
        .raw(
            Method::GET,
            "/api/instances/?region=MARS&gpu_model=H100",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        field_errors(&raw.body),
        vec!["gpu_model".to_string(), "region".to_string()]
    );
    app.stop().await;
}

/// Two rows for one region and model are a 400 on the second, not the last one silently winning.
async fn capacity_refuses_a_region_and_model_given_twice(db: Db) {
    let app = TestApp::start(db).await;
    let before = app
        .admin
        .raw(Method::GET, "/api/admin/capacity/", None)
        .await
        .unwrap()
        .body;
    let raw = app
        .admin
        .raw(
            Method::PUT,
            "/api/admin/capacity/",
            Some(&json!({"capacity": [
                {"region": "FINLAND-3", "gpu_model": "H200-141GB", "total": 8},
                {"region": "FINLAND-3", "gpu_model": "H200-141GB", "total": 0},
            ]})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status.as_u16(), 400, "{}", raw.text);
    assert_eq!(field_errors(&raw.body), vec!["capacity[1]".to_string()]);
    let after = app
        .admin
        .raw(Method::GET, "/api/admin/capacity/", None)
        .await
        .unwrap()
        .body;
    assert_eq!(before["data"], after["data"], "nothing was written");
    app.stop().await;
}

/// However many bad items a request names, the answer lists a bounded number of errors and says how
/// many more there were; an over-long list is refused for its length alone.
/// A 400 of fewer than `max_bytes`.
fn assert_small_400(raw: &RawResponse, max_bytes: usize) {
    let head = &raw.text[..raw.text.len().min(500)];
    assert_eq!(raw.status.as_u16(), 400, "{head}");
    assert!(
        raw.text.len() < max_bytes,
        "{} bytes: {head}",
        raw.text.len()
    );
}

async fn many_bad_items_make_a_bounded_answer(db: Db) {
    let app = TestApp::start(db).await;
    let id = app
        .admin
        .create_firewall(&ssh_firewall("bounded"))
        .await
        .unwrap()
        .data
        .id;
    let ids = vec!["a"; 30_000];
    let raw = app
        .admin
        .raw(
            Method::POST,
            &format!("/api/firewalls/{id}/attach/"),
            Some(&json!({ "instance_ids": ids })),
        )
        .await
        .unwrap();
    assert_small_400(&raw, 2_000);
    assert_eq!(field_errors(&raw.body), vec!["instance_ids".to_string()]);
    // Under the length limit, duplicates are each named.
    let raw = app
        .admin
        .raw(
            Method::POST,
            &format!("/api/firewalls/{id}/attach/"),
            Some(&json!({ "instance_ids": ["a", "a"] })),
        )
        .await
        .unwrap();
    assert_eq!(field_errors(&raw.body), vec!["instance_ids[1]".to_string()]);

    let labels: serde_json::Map<String, Value> = (0..20_000)
        .map(|i| (format!("BAD KEY {i}"), json!("v")))
        .collect();
    let raw = app
        .admin
        .raw(
            Method::PATCH,
            &format!("/api/firewalls/{id}/labels/"),
            Some(&json!({ "labels": labels })),
        )
        .await
        .unwrap();
    assert_small_400(&raw, 20_000);
    let listed: usize = raw.body["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| m.as_array().unwrap().len())
        .sum();
    assert_eq!(listed, 50, "{}", &raw.text[..500]);
    assert!(
        raw.body["message"].as_str().unwrap().contains("19950 more"),
        "{}",
        raw.body["message"]
    );
    app.stop().await;
}

/// Control characters (Cc) and invisible formatting ones (Cf, the bidirectional overrides among them)
/// are refused in emails wherever one is taken, and control characters in free text such as a grant's
/// note.
async fn emails_and_notes_refuse_control_and_formatting_characters(db: Db) {
    let app = TestApp::start(db).await;
    let anonymous = app.anonymous();
    for email in [
        "e\u{1b}[31m@x.io",
        "del\u{7f}@x.io",
        "a@x.io\u{202e}",
        "a\u{200b}@x.io",
        "bel\u{7}@x.io",
    ] {
        let body = json!({"email": email, "password": "password123", "name": "Abc Def"});
        let raw = anonymous
            .raw(Method::POST, "/api/auth/register/", Some(&body))
            .await
            .unwrap();
        assert_eq!(raw.status.as_u16(), 400, "register {email:?}: {}", raw.text);
        assert_eq!(field_errors(&raw.body), vec!["email".to_string()]);
        let raw = app
            .admin
            .raw(Method::POST, "/api/admin/users/", Some(&body))
            .await
            .unwrap();
        assert_eq!(
            raw.status.as_u16(),
            400,
            "admin create {email:?}: {}",
            raw.text
        );
        assert_eq!(field_errors(&raw.body), vec!["email".to_string()]);
        let raw = anonymous
            .raw(
                Method::POST,
                "/api/auth/token/",
                Some(&json!({"email": email, "password": "password123"})),
            )
            .await
            .unwrap();
        assert_eq!(raw.status.as_u16(), 401, "log-in {email:?}: {}", raw.text);
    }
    let raw = anonymous
        .raw(
            Method::POST,
            "/api/auth/register/",
            Some(&json!({"email": "plain@x.io", "password": "password123", "name": "Abc Def"})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status.as_u16(), 201, "{}", raw.text);
    let account = raw.body["data"]["id"].as_str().unwrap().to_string();
    for note in ["a\u{1b}", "ring\u{7}", "rtl\u{202e}"] {
        let raw = app
            .admin
            .raw(
                Method::POST,
                &format!("/api/admin/accounts/{account}/credits/"),
                Some(&json!({"amount": "1", "currency": "USD", "note": note})),
            )
            .await
            .unwrap();
        assert_eq!(raw.status.as_u16(), 400, "note {note:?}: {}", raw.text);
        assert_eq!(field_errors(&raw.body), vec!["note".to_string()]);
    }
    let raw = app
        .admin
        .raw(
            Method::POST,
            &format!("/api/admin/accounts/{account}/credits/"),
            Some(&json!({"amount": "1", "currency": "USD", "note": "Welcome 🎉"})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status.as_u16(), 201, "{}", raw.text);
    app.stop().await;
}
