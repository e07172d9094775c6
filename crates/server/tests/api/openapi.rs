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

on_both_databases!(declared_bounds_are_the_validators);

/// A number the document declares at `pointer`.
fn declared(doc: &Value, pointer: &str) -> usize {
    doc.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("the document declares nothing at {pointer}")) as usize
}

/// The answer does not fault `field`.
fn accepted(raw: &barrack_client::RawResponse, field: &str, what: &str) {
    assert!(
        raw.status.is_success() || raw.body["errors"].get(field).is_none(),
        "{what}: {} {}",
        raw.status,
        raw.text
    );
    assert!(raw.status.as_u16() < 500, "{what}: {}", raw.text);
}

/// The answer is a 400 naming `field`.
fn refused(raw: &barrack_client::RawResponse, field: &str, what: &str) {
    assert_eq!(raw.status, 400, "{what}: {}", raw.text);
    assert!(raw.body["errors"][field].is_array(), "{what}: {}", raw.text);
}

/// The bounds the document declares are the validators': a request at each bound is accepted and one
/// past it is refused, naming the field.
async fn declared_bounds_are_the_validators(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app
        .funded_user(barrack_api::Tier::Advanced, "US", "5000")
        .await;
    crate::common::create_key_k(&client).await;
    let doc: Value = serde_json::from_str(&barrack_server::openapi::document_json()).unwrap();
    let schema = |name: &str, field: &str, key: &str| {
        declared(
            &doc,
            &format!("/components/schemas/{name}/properties/{field}/{key}"),
        )
    };
    let post = |path: &'static str, body: Value| {
        let client = client.clone();
        async move { client.raw(Method::POST, path, Some(&body)).await.unwrap() }
    };

    // Instance names.
    let deploy = |name: String| {
        serde_json::json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
            "instance_name": name, "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "k"})
    };
    let (min, max) = (
        schema("DeploymentRequest", "instance_name", "minLength"),
        schema("DeploymentRequest", "instance_name", "maxLength"),
    );
    for (len, ok) in [(min, true), (max, true), (min - 1, false), (max + 1, false)] {
        let raw = post("/api/deploy-server/", deploy("n".repeat(len))).await;
        let what = format!("instance_name of {len}");
        if ok {
            accepted(&raw, "instance_name", &what)
        } else {
            refused(&raw, "instance_name", &what)
        }
    }

    // Volume names and sizes (sizes from the configuration).
    let name_max = schema("CreateVolumeRequest", "name", "maxLength");
    let (size_min, size_max) = (
        schema("CreateVolumeRequest", "size", "minimum"),
        schema("CreateVolumeRequest", "size", "maximum"),
    );
    let volume = |name: String, size: usize| serde_json::json!({"name": name, "size": size, "region": "FINLAND-1", "volume_type": "HDD"});
    accepted(
        &post("/api/volumes/", volume("v".repeat(name_max), size_min)).await,
        "name",
        "longest volume name",
    );
    refused(
        &post("/api/volumes/", volume("w".repeat(name_max + 1), size_min)).await,
        "name",
        "volume name past the limit",
    );
    refused(
        &post("/api/volumes/", volume("small".into(), size_min - 1)).await,
        "size",
        "volume under the minimum",
    );
    accepted(
        &post("/api/volumes/", volume("big".into(), size_max)).await,
        "size",
        "largest volume",
    );
    refused(
        &post("/api/volumes/", volume("huge".into(), size_max + 1)).await,
        "size",
        "volume over the maximum",
    );

    // Scripts: the name and the content in bytes.
    let script_max = schema("CreateScriptRequest", "script", "maxLength");
    let script_name_max = schema("CreateScriptRequest", "name", "maxLength");
    let script =
        |name: String, bytes: usize| serde_json::json!({"name": name, "script": "#".repeat(bytes)});
    accepted(
        &post(
            "/api/scripts/",
            script("s".repeat(script_name_max), script_max),
        )
        .await,
        "script",
        "largest script",
    );
    refused(
        &post("/api/scripts/", script("t".into(), script_max + 1)).await,
        "script",
        "script past the limit",
    );
    refused(
        &post("/api/scripts/", script("u".repeat(script_name_max + 1), 1)).await,
        "name",
        "script name past the limit",
    );

    // SSH key names.
    let key_max = schema("CreateSSHKeyRequest", "name", "maxLength");
    accepted(
        &post(
            "/api/ssh-keys/",
            serde_json::json!({"name": "a".repeat(key_max)}),
        )
        .await,
        "name",
        "longest key name",
    );
    refused(
        &post(
            "/api/ssh-keys/",
            serde_json::json!({"name": "b".repeat(key_max + 1)}),
        )
        .await,
        "name",
        "key name past the limit",
    );

    // Pages.
    let params = doc["paths"]["/api/transactions/"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let param = |name: &str, key: &str| {
        params.iter().find(|p| p["name"] == name).unwrap()["schema"][key]
            .as_u64()
            .unwrap()
    };
    let (page_min, limit_max) = (param("page", "minimum"), param("limit", "maximum"));
    let get = |query: String| {
        let client = client.clone();
        async move {
            client
                .raw(Method::GET, &format!("/api/transactions/?{query}"), None)
                .await
                .unwrap()
        }
    };
    accepted(
        &get(format!("page={page_min}&limit={limit_max}")).await,
        "limit",
        "the largest page",
    );
    refused(
        &get(format!("page={}", page_min - 1)).await,
        "page",
        "page under the minimum",
    );
    refused(
        &get(format!("limit={}", limit_max + 1)).await,
        "limit",
        "limit over the maximum",
    );
    app.stop().await;
}

on_both_databases!(the_served_document_shows_the_running_catalog);

/// `/api/openapi.json` declares the running configuration's catalog; `openapi.json` the default one.
async fn the_served_document_shows_the_running_catalog(db: Db) {
    let app = TestApp::start_with(db, |c| {
        c.volumes.minimum_size_gb = 20;
        c.volumes.maximum_size_gb = 4096;
        c.gpu_models.retain(|m| m.name != "B300-262GB");
        for capacity in &mut c.capacity {
            capacity.gpus.remove("B300-262GB");
        }
    })
    .await;
    let served = app
        .anonymous()
        .raw(Method::GET, "/api/openapi.json", None)
        .await
        .unwrap()
        .body;
    let size = &served["components"]["schemas"]["CreateVolumeRequest"]["properties"]["size"];
    assert_eq!(
        (size["minimum"].as_u64(), size["maximum"].as_u64()),
        (Some(20), Some(4096))
    );
    let models = served["components"]["schemas"]["GpuModelEnum"]["enum"]
        .as_array()
        .unwrap();
    assert_eq!(models.len(), 8);
    assert!(!models.contains(&Value::from("B300-262GB")));
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(COMMITTED).unwrap()).unwrap();
    let default_models = committed["components"]["schemas"]["GpuModelEnum"]["enum"]
        .as_array()
        .unwrap();
    assert!(default_models.contains(&Value::from("B300-262GB")));
    // Creating a volume below the served minimum is refused, as the served document says.
    let (client, _) = app
        .funded_user(barrack_api::Tier::Advanced, "US", "100")
        .await;
    let raw = client
        .raw(
            Method::POST,
            "/api/volumes/",
            Some(&serde_json::json!({"name": "v", "size": 19, "region": "FINLAND-1", "volume_type": "HDD"})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400, "{}", raw.text);
    assert!(raw.body["errors"]["size"].is_array());
    app.stop().await;
}
