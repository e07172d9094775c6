//! `spec/API.md` §1: envelopes, request ids, JSON for every rejection, rate limits.

use barrack_api::Tier;
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    success_envelopes_carry_the_request_id_in_body_and_header,
    every_rejection_is_the_json_error_envelope,
    bodies_over_the_limit_get_413,
    rate_limits_answer_429_with_headers,
    a_transaction_given_up_for_a_deadlock_is_a_conflict,
);

fn is_request_id(s: &str) -> bool {
    s.len() == 8
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

async fn success_envelopes_carry_the_request_id_in_body_and_header(db: Db) {
    let app = TestApp::start(db).await;
    for path in ["/api/balance/", "/api/balance"] {
        let raw = app.admin.raw(Method::GET, path, None).await.unwrap();
        assert_eq!(
            raw.status, 200,
            "{path} is served with and without the trailing slash"
        );
        let header = raw.headers["x-request-id"].to_str().unwrap();
        assert!(is_request_id(header));
        assert_eq!(raw.body["request_id"], header);
        assert_eq!(raw.body["success"], true);
        assert_eq!(raw.body["tier"], "advanced");
        assert!(raw.body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(raw.body["message"].is_string());
        assert!(raw.body["data"].is_object());
    }
    let a = app
        .admin
        .raw(Method::GET, "/api/regions/", None)
        .await
        .unwrap();
    let b = app
        .admin
        .raw(Method::GET, "/api/regions/", None)
        .await
        .unwrap();
    assert_ne!(a.body["request_id"], b.body["request_id"]);
    app.stop().await;
}

async fn every_rejection_is_the_json_error_envelope(db: Db) {
    let app = TestApp::start(db).await;
    type Case = (Method, &'static str, Option<Vec<u8>>, u16, &'static str);
    let cases: Vec<Case> = vec![
        (Method::GET, "/api/no-such-thing/", None, 404, "NOT_FOUND"),
        (Method::GET, "/api", None, 404, "NOT_FOUND"),
        (
            Method::DELETE,
            "/api/regions/",
            None,
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (
            Method::POST,
            "/api/api-keys/",
            Some(b"{not json".to_vec()),
            400,
            "VALIDATION_ERROR",
        ),
        (
            Method::POST,
            "/api/api-keys/",
            Some(b"[1, 2]".to_vec()),
            400,
            "VALIDATION_ERROR",
        ),
        (
            Method::POST,
            "/api/api-keys/",
            Some(br#"{"name": 7, "tier": "legacy"}"#.to_vec()),
            400,
            "VALIDATION_ERROR",
        ),
        (
            Method::POST,
            "/api/api-keys/",
            Some(br#"{"name": "x", "tier": "gold"}"#.to_vec()),
            400,
            "VALIDATION_ERROR",
        ),
        (
            Method::POST,
            "/api/api-keys/",
            Some(b"{}".to_vec()),
            400,
            "VALIDATION_ERROR",
        ),
        (
            Method::POST,
            "/api/api-keys/",
            Some(vec![0xff, 0xfe, 0x00]),
            400,
            "VALIDATION_ERROR",
        ),
        (
            Method::GET,
            "/api/transactions/?page=0",
            None,
            400,
            "VALIDATION_ERROR",
        ),
        (
            Method::GET,
            "/api/transactions/?limit=1000",
            None,
            400,
            "VALIDATION_ERROR",
        ),
        (
            Method::GET,
            "/api/transactions/?type=theft",
            None,
            400,
            "VALIDATION_ERROR",
        ),
        (
            Method::GET,
            "/api/transactions/?from=yesterday",
            None,
            400,
            "VALIDATION_ERROR",
        ),
        (
            Method::DELETE,
            "/api/api-keys/BRK-NOPE00A/",
            None,
            404,
            "NOT_FOUND",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let raw = app
            .admin
            .raw_bytes(method.clone(), path, body.clone())
            .await
            .unwrap();
        assert_eq!(raw.status.as_u16(), status, "{method} {path}: {}", raw.text);
        assert!(
            raw.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{method} {path}"
        );
        assert_eq!(raw.body["success"], false, "{method} {path}");
        assert_eq!(raw.body["code"], code, "{method} {path}: {}", raw.text);
        assert!(raw.body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(is_request_id(raw.body["request_id"].as_str().unwrap()));
        // Sent with a key, every error names its tier, routes that do not exist included.
        assert_eq!(
            raw.body["tier"], "advanced",
            "{method} {path}: {}",
            raw.text
        );
        if status == 400 {
            assert!(
                raw.body["errors"]
                    .as_object()
                    .is_some_and(|e| !e.is_empty()),
                "{method} {path}: {}",
                raw.text
            );
        }
    }
    // U+0000, which PostgreSQL cannot hold in text, and a member given twice are refused on the field,
    // wherever they come: a body, the query, the path.
    let (user, user_id) = app.user(Tier::Legacy).await;
    type Refused<'a> = (
        &'a barrack_client::Client,
        Method,
        String,
        Option<&'a [u8]>,
        &'a str,
    );
    let nul: [Refused; 8] = [
        (
            &app.admin,
            Method::POST,
            format!("/api/admin/accounts/{user_id}/credits/"),
            Some(br#"{"amount": "10", "currency": "USD", "note": "a\u0000b"}"#),
            "note",
        ),
        (
            &user,
            Method::PUT,
            "/api/account/profile/".into(),
            Some(br#"{"name": "User", "address_line": "1 Main\u0000"}"#),
            "address_line",
        ),
        (
            &user,
            Method::POST,
            "/api/scripts/".into(),
            Some(br##"{"name": "s1", "script": "#!/bin/sh\u0000"}"##),
            "script",
        ),
        (
            &user,
            Method::POST,
            "/api/api-keys/".into(),
            Some(br#"{"name": "k", "tier": "legacy", "name": "k2"}"#),
            "name",
        ),
        (
            &user,
            Method::GET,
            "/api/instances/?status=ACTIVE%00".into(),
            None,
            "status",
        ),
        (
            &user,
            Method::GET,
            "/api/instances/?label=team%00".into(),
            None,
            "label",
        ),
        (
            &user,
            Method::GET,
            "/api/instances/BRK-AB%00CDEI/".into(),
            None,
            "id",
        ),
        (
            &user,
            Method::POST,
            "/api/ai/chat/".into(),
            Some(br#"{"model": "m\u0000", "messages": [{"role": "user", "content": "hi"}]}"#),
            "model",
        ),
    ];
    for (client, method, path, body, field) in nul {
        let raw = client
            .raw_bytes(method.clone(), &path, body.map(<[u8]>::to_vec))
            .await
            .unwrap();
        assert_eq!(raw.status.as_u16(), 400, "{method} {path}: {}", raw.text);
        assert!(
            raw.body["errors"].get(field).is_some(),
            "{method} {path}: {}",
            raw.text
        );
    }
    assert_eq!(
        app.services()
            .store()
            .balance(&user_id, "USD")
            .await
            .unwrap(),
        0,
        "nothing granted"
    );
    // A missing required field is named.
    let raw = app
        .admin
        .raw(
            Method::POST,
            "/api/api-keys/",
            Some(&json!({"tier": "legacy"})),
        )
        .await
        .unwrap();
    assert_eq!(
        raw.body["errors"]["name"],
        json!(["This field is required"])
    );
    // Every missing one at once, not one per try.
    let required = json!(["This field is required"]);
    let raw = app
        .admin
        .raw(Method::POST, "/api/deploy-server/", Some(&json!({})))
        .await
        .unwrap();
    assert_eq!(raw.status, 400, "{}", raw.text);
    let errors = raw.body["errors"].as_object().unwrap();
    let mut named: Vec<&str> = errors.keys().map(String::as_str).collect();
    named.sort_unstable();
    assert_eq!(
        named,
        ["gpu_count", "gpu_model", "instance_name", "region"],
        "{}",
        raw.text
    );
    assert!(errors.values().all(|e| *e == required), "{}", raw.text);
    let raw = app
        .admin
        .raw(
            Method::POST,
            "/api/deploy-server/",
            Some(&json!({"gpu_model": "H100-SXM5-80GB"})),
        )
        .await
        .unwrap();
    let errors = raw.body["errors"].as_object().unwrap();
    assert_eq!(errors.len(), 3, "{}", raw.text);
    app.stop().await;
}

async fn bodies_over_the_limit_get_413(db: Db) {
    let app = TestApp::start_with(db, |c| c.body_limit_bytes = 131_072).await;
    let big = json!({"name": "x".repeat(140_000), "tier": "legacy"});
    let raw = app
        .admin
        .raw(Method::POST, "/api/api-keys/", Some(&big))
        .await
        .unwrap();
    assert_eq!(raw.status, 413);
    assert_eq!(raw.body["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(raw.body["success"], false);
    assert_eq!(
        raw.body["message"], "Request body is over the limit of 131072 bytes",
        "our wording with the limit, not the framework's"
    );
    app.stop().await;
}

async fn rate_limits_answer_429_with_headers(db: Db) {
    let app = TestApp::start_with(db, |c| {
        c.rate_limit.requests = 3;
        c.rate_limit.window_seconds = 60;
    })
    .await;
    for remaining in ["2", "1", "0"] {
        let raw = app
            .admin
            .raw(Method::GET, "/api/balance/", None)
            .await
            .unwrap();
        assert_eq!(raw.status, 200);
        assert_eq!(raw.headers["ratelimit-limit"], "3");
        assert_eq!(raw.headers["ratelimit-remaining"], remaining);
    }
    let limited = app
        .admin
        .raw(Method::GET, "/api/balance/", None)
        .await
        .unwrap();
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["code"], "RATE_LIMITED");
    assert_eq!(limited.headers["retry-after"], "20");
    assert!(limited.headers.contains_key("ratelimit-reset"));
    // Each client has its own budget.
    let anonymous = app
        .anonymous()
        .raw(Method::GET, "/api/regions/", None)
        .await
        .unwrap();
    assert_eq!(anonymous.status, 200);
    app.stop().await;
}

/// Two PostgreSQL transactions that take two accounts' rows in opposite orders deadlock; the one the
/// database gives up is a conflict the client may retry (409 `CONFLICT`), never an internal error, and the
/// other commits. SQLite's write transactions are serial, so none can wait for another there.
async fn a_transaction_given_up_for_a_deadlock_is_a_conflict(db: Db) {
    use barrack_store::Db as _;
    let app = TestApp::start(db).await;
    if db == Db::Sqlite {
        app.stop().await;
        return;
    }
    let (_, a) = app.funded_user(Tier::Advanced, "US", "10").await;
    let (_, b) = app.funded_user(Tier::Advanced, "US", "10").await;
    let store = app.services().store().clone();
    let touch = "UPDATE accounts SET updated_at = updated_at + 1 WHERE id = $1";
    let first_then = |first: String, second: String| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await?;
            tx.execute(touch, &[first.as_str().into()]).await?;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            tx.execute(touch, &[second.as_str().into()]).await?;
            tx.commit().await
        }
    };
    let (one, other) = tokio::join!(
        first_then(a.clone(), b.clone()),
        first_then(b.clone(), a.clone())
    );
    let given_up = match (one, other) {
        (Err(e), Ok(())) | (Ok(()), Err(e)) => e,
        other => panic!("one of the two must be given up, the other commit: {other:?}"),
    };
    assert!(
        matches!(given_up, barrack_store::StoreError::Conflict(_)),
        "{given_up:?}"
    );
    let answered = barrack_core::Error::from(given_up);
    assert!(
        matches!(
            answered,
            barrack_core::Error::Conflict {
                code: "CONFLICT",
                ..
            }
        ),
        "{answered:?}"
    );
    app.stop().await;
}
