//! The OpenAPI document: committed, checked for drift, and used to sweep every operation.

use reqwest::Method;
use serde_json::Value;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");

/// The committed `openapi.json` is what the code generates. Regenerate with
/// `cargo run --bin barrackd -- openapi > openapi.json` (or `BARRACK_UPDATE_OPENAPI=1` and this test).
#[test]
fn committed_document_matches_the_code() {
    let generated = barrack_server::openapi::document_json();
    if std::env::var("BARRACK_UPDATE_OPENAPI").is_ok() {
        std::fs::write(COMMITTED, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED)
        .expect("openapi.json is committed at the repository root");
    assert!(
        committed == generated,
        "openapi.json is out of date: regenerate it with `cargo run --bin barrackd -- openapi > openapi.json`"
    );
}

struct Operation {
    method: Method,
    path: String,
    needs_key: bool,
    has_body: bool,
    /// Authenticated by a signature over the body (the payment webhook) rather than a key: the signature
    /// is checked before the body is read, so an unsigned malformed body is 401, not 400.
    signed: bool,
}

fn operations() -> Vec<Operation> {
    let doc: Value = serde_json::from_str(&barrack_server::openapi::document_json()).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let security = op.get("security").and_then(Value::as_array);
            let needs_key = security.is_some_and(|s| {
                !s.iter()
                    .any(|req| req.as_object().is_some_and(|o| o.is_empty()))
            });
            let path = path
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        "BRK-ZZZZZZX"
                    } else {
                        seg
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let signed = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|params| {
                    params
                        .iter()
                        .any(|p| p["in"] == "header" && p["name"] == "X-Barrack-Signature")
                });
            ops.push(Operation {
                method,
                path,
                needs_key,
                has_body: op.get("requestBody").is_some(),
                signed,
            });
        }
    }
    ops
}

fn assert_envelope(raw: &barrack_client::RawResponse, what: &str) {
    assert!(
        raw.status.as_u16() < 500,
        "{what}: {} {}",
        raw.status,
        raw.text
    );
    assert!(
        raw.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{what}"
    );
    if !raw.status.is_success() {
        assert_eq!(raw.body["success"], false, "{what}: {}", raw.text);
        assert!(
            raw.body["code"].is_string() && raw.body["message"].is_string(),
            "{what}: {}",
            raw.text
        );
        assert_eq!(
            raw.body["request_id"].as_str().map(str::len),
            Some(8),
            "{what}"
        );
    }
}

on_both_databases!(every_operation_rejects_missing_keys_and_malformed_input);

async fn every_operation_rejects_missing_keys_and_malformed_input(db: Db) {
    let app = TestApp::start(db).await;
    let ops = operations();
    assert!(ops.len() >= 20, "the sweep sees the whole API");
    for op in &ops {
        let what = format!("{} {}", op.method, op.path);
        let anonymous = app
            .anonymous()
            .raw_bytes(op.method.clone(), &op.path, None)
            .await
            .unwrap();
        assert_envelope(&anonymous, &what);
        if op.signed {
            assert_eq!(anonymous.status, 401, "{what} without a signature");
            assert_eq!(anonymous.body["code"], "AUTHENTICATION_FAILED");
        }
        if op.needs_key {
            assert_eq!(anonymous.status, 401, "{what} without a key");
            assert_eq!(anonymous.body["code"], "AUTHENTICATION_FAILED");
            let bad_key = app
                .anonymous()
                .with_api_key("sk_wrong")
                .raw_bytes(op.method.clone(), &op.path, None)
                .await
                .unwrap();
            assert_eq!(bad_key.status, 401, "{what} with an unknown key");
        }
        if op.has_body {
            for body in [
                &b"{\"unterminated"[..],
                b"[]",
                b"\"text\"",
                b"{\"name\": {\"deep\": [1, {}]}}",
                b"null",
            ] {
                let raw = app
                    .admin
                    .raw_bytes(op.method.clone(), &op.path, Some(body.to_vec()))
                    .await
                    .unwrap();
                assert_envelope(&raw, &what);
                assert!(
                    raw.status.is_client_error(),
                    "{what} with {}: {}",
                    String::from_utf8_lossy(body),
                    raw.text
                );
            }
            let malformed = app
                .admin
                .raw_bytes(op.method.clone(), &op.path, Some(b"{oops".to_vec()))
                .await
                .unwrap();
            if op.signed {
                assert_eq!(malformed.status, 401, "{what} unsigned");
                assert_eq!(malformed.body["code"], "AUTHENTICATION_FAILED", "{what}");
            } else {
                assert_eq!(malformed.status, 400, "{what}");
                assert_eq!(malformed.body["code"], "VALIDATION_ERROR", "{what}");
            }
        }
        let query = format!(
            "{}?page=-1&limit=x&tier=gold&region=%00&from=never",
            op.path
        );
        let raw = app
            .admin
            .raw_bytes(op.method.clone(), &query, None)
            .await
            .unwrap();
        assert_envelope(&raw, &format!("{what} with a bad query"));
    }
    app.stop().await;
}
