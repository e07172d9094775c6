//! The security model: the operator surface, health, secrets on disk, sessions, limits.

use barrack_api::Tier;
use barrack_api::account::TokenObtainPair;
use barrack_client::Client;
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, ORDINARY_PASSWORD, TestApp, TestDatabase, ordinary_account, test_config};
use crate::on_both_databases;

on_both_databases!(
    every_operator_operation_refuses_other_callers,
    health_reports_the_database_and_liveness_does_not,
    files_holding_secrets_are_private_and_short_secrets_refused,
    rotating_the_token_secret_keeps_keys_and_rotating_the_secret_keeps_sessions,
    the_rate_limit_follows_the_account_and_the_address_not_header_bytes,
    forwarded_for_counts_only_from_trusted_proxies,
    concurrent_key_creations_stop_at_the_limit,
    a_request_carries_one_credential_and_one_idempotency_key,
);

/// An ordinary account: a client on its API key and one on a session token.
async fn ordinary_callers(app: &TestApp) -> (Client, Client) {
    let (_, email, by_key) = ordinary_account(app, "plain", Tier::Advanced).await;
    let tokens = app
        .anonymous()
        .obtain_token(&TokenObtainPair {
            email,
            password: ORDINARY_PASSWORD.into(),
            tier: None,
        })
        .await
        .unwrap()
        .data;
    (by_key, app.admin.with_bearer(&tokens.access))
}

/// Every operation the served document lists under `/api/admin/` answers 403 FORBIDDEN to an ordinary
/// account (by key and by token) and 401 to nobody, whatever the body: the sweep follows the document, so
/// a new operator route is covered the day it is added.
async fn every_operator_operation_refuses_other_callers(db: Db) {
    let app = TestApp::start(db).await;
    let (by_key, by_token) = ordinary_callers(&app).await;
    let anonymous = app.anonymous();
    let document = anonymous
        .raw(Method::GET, "/api/openapi.json", None)
        .await
        .unwrap()
        .body;
    let mut swept = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        if !path.starts_with("/api/admin/") {
            continue;
        }
        // Any id: the refusal must come before the resource is looked up.
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "BRK-AAAAAAU" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if !matches!(
                method,
                Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            ) {
                continue;
            }
            for body in [None, Some(json!({})), Some(json!({"admin": true}))] {
                for (who, client, status, code) in [
                    ("key", &by_key, 403, "FORBIDDEN"),
                    ("token", &by_token, 403, "FORBIDDEN"),
                    ("nobody", &anonymous, 401, "AUTHENTICATION_FAILED"),
                ] {
                    let raw = client
                        .raw(method.clone(), &concrete, body.as_ref())
                        .await
                        .unwrap();
                    assert_eq!(
                        (raw.status.as_u16(), raw.body["code"].as_str()),
                        (status, Some(code)),
                        "{method} {concrete} by {who} with {body:?}: {}",
                        raw.text
                    );
                }
            }
            swept += 1;
        }
    }
    assert!(
        swept >= 10,
        "the document lists the operator operations ({swept})"
    );
    app.stop().await;
}

/// `/api/health/` asks the database and answers 503 in the error envelope when it cannot be reached;
/// `/api/health/live/` keeps answering 200, since restarting the process would not help.
async fn health_reports_the_database_and_liveness_does_not(db: Db) {
    let app = TestApp::start(db).await;
    let anonymous = app.anonymous();
    let ready = anonymous
        .raw(Method::GET, "/api/health/", None)
        .await
        .unwrap();
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["data"]["database"], "ok");
    assert_eq!(ready.body["data"]["status"], "ok");

    // Take the database away under the running server.
    match db {
        Db::Sqlite => {
            for entry in std::fs::read_dir(&app.database.dir).unwrap() {
                let path = entry.unwrap().path();
                if path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("barrack.db")
                {
                    std::fs::remove_file(path).unwrap();
                }
            }
        }
        Db::Postgres => app.database.drop_database().await,
    }
    let down = anonymous
        .raw(Method::GET, "/api/health/", None)
        .await
        .unwrap();
    assert_eq!(down.status, 503, "{}", down.text);
    assert_eq!(down.body["success"], false);
    assert_eq!(down.body["code"], "SERVICE_UNAVAILABLE");
    assert!(
        down.body["request_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    let live = anonymous
        .raw(Method::GET, "/api/health/live/", None)
        .await
        .unwrap();
    assert_eq!(live.status, 200, "{}", live.text);
    assert_eq!(live.body["data"]["status"], "ok");
    app.stop().await;
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The data directory is 0700 and the SQLite database, the generated secret and the first operator's
/// credentials 0600, even when a looser file was there before; a server secret shorter than 32 bytes stops
/// the start, whether configured or found in the data directory.
#[cfg(unix)]
async fn files_holding_secrets_are_private_and_short_secrets_refused(db: Db) {
    use std::os::unix::fs::PermissionsExt;
    let database = TestDatabase::create(db).await;
    let data = database.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let credentials = data.join("admin-credentials");
    std::fs::write(&credentials, "stale and world-readable").unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).unwrap();

    for short in ["", "only-twenty-bytes-xx", &"s".repeat(31)] {
        let mut config = test_config(&database);
        config.data_dir = data.clone();
        config.secret = Some(short.to_string());
        let refused = barrack_server::start(barrack_server::StartOptions::new(config)).await;
        let message = format!("{:#}", refused.err().expect("a short secret is refused"));
        assert!(message.contains("at least 32 bytes"), "{message}");
    }

    let mut config = test_config(&database);
    config.data_dir = data.clone();
    config.secret = None;
    let running = barrack_server::start(barrack_server::StartOptions::new(config))
        .await
        .unwrap();
    assert_eq!(mode(&data), 0o700, "the data directory");
    assert_eq!(mode(&credentials), 0o600, "an existing credentials file");
    let written = std::fs::read_to_string(&credentials).unwrap();
    assert!(written.contains("api_key: sk_"), "{written}");
    assert_eq!(mode(&data.join("server.secret")), 0o600);
    if db == Db::Sqlite {
        assert_eq!(
            mode(&database.dir.join("barrack.db")),
            0o600,
            "the database"
        );
    }
    let leftovers: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    running.shutdown().await;

    // A short secret left in the data directory is refused too, not used.
    std::fs::write(data.join("server.secret"), "tiny").unwrap();
    let mut config = test_config(&database);
    config.data_dir = data.clone();
    config.secret = None;
    let refused = barrack_server::start(barrack_server::StartOptions::new(config)).await;
    let message = format!(
        "{:#}",
        refused.err().expect("a short stored secret is refused")
    );
    assert!(message.contains("server.secret"), "{message}");
    database.drop_database().await;
}

#[cfg(not(unix))]
async fn files_holding_secrets_are_private_and_short_secrets_refused(_db: Db) {}

const TOKEN_SECRET_A: &str = "token-signing-secret-number-one-0123456789";
const TOKEN_SECRET_B: &str = "token-signing-secret-number-two-0123456789";

/// API keys are hashed under the server secret and sessions signed under the token secret: changing one
/// leaves the other working.
async fn rotating_the_token_secret_keeps_keys_and_rotating_the_secret_keeps_sessions(db: Db) {
    let mut app = TestApp::start_with(db, |c| c.token_secret = Some(TOKEN_SECRET_A.into())).await;
    let (by_key, by_token) = ordinary_callers(&app).await;
    by_key.profile().await.unwrap();
    by_token.profile().await.unwrap();

    app.restart_with(|c| c.token_secret = Some(TOKEN_SECRET_B.into()))
        .await;
    by_key
        .profile()
        .await
        .expect("the key survives a new token secret");
    let ended = by_token.profile().await.unwrap_err();
    assert_eq!(
        ended.status(),
        Some(401),
        "sessions end with the token secret"
    );

    let (_, by_token) = ordinary_callers(&app).await;
    app.restart_with(|c| {
        c.secret = Some("a-completely-different-server-secret-0123".into());
        c.token_secret = Some(TOKEN_SECRET_B.into());
    })
    .await;
    by_token
        .profile()
        .await
        .expect("the session survives a new server secret");
    let revoked = by_key.profile().await.unwrap_err();
    assert_eq!(
        revoked.status(),
        Some(401),
        "keys end with the server secret"
    );
    app.stop().await;
}

fn random_key() -> String {
    format!("sk_{}", barrack_core::ids::random_alphanumeric(40))
}

/// A made-up key per request does not buy a fresh budget (it counts against the address), and an
/// account's keys and tokens share one budget.
async fn the_rate_limit_follows_the_account_and_the_address_not_header_bytes(db: Db) {
    let app = TestApp::start_with(db, |c| {
        c.rate_limit.requests = 4;
        c.rate_limit.window_seconds = 3600;
    })
    .await;
    let (by_key, by_token) = ordinary_callers(&app).await;
    let anonymous = app.anonymous();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let guess = anonymous.with_api_key(random_key());
        statuses.push(
            guess
                .raw(Method::GET, "/api/balance/", None)
                .await
                .unwrap()
                .status
                .as_u16(),
        );
    }
    // The anonymous log-in in `ordinary_callers` took the address's first request.
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429], "guessed keys");
    // Probes and scrapes from the same address are never limited.
    for path in ["/api/health/live/", "/api/health/", "/metrics"] {
        let raw = anonymous.raw(Method::GET, path, None).await.unwrap();
        assert_ne!(raw.status, 429, "{path}");
    }
    let bearer = anonymous.with_bearer("not.a.token");
    let raw = bearer
        .raw(Method::GET, "/api/balance/", None)
        .await
        .unwrap();
    assert_eq!(
        raw.status, 429,
        "a bad token counts against the address too"
    );

    // The account's budget is its own, whichever credential it uses.
    let second_key = by_key
        .create_api_key("second", Tier::Advanced)
        .await
        .unwrap();
    let by_second_key = by_key.with_api_key(&second_key.data.key);
    let mut statuses = Vec::new();
    for client in [&by_key, &by_token, &by_second_key, &by_key] {
        statuses.push(
            client
                .raw(Method::GET, "/api/balance/", None)
                .await
                .unwrap()
                .status
                .as_u16(),
        );
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "one account, three credentials"
    );
    let other = app
        .admin
        .raw(Method::GET, "/api/balance/", None)
        .await
        .unwrap();
    assert_eq!(other.status, 200, "another account from the same address");
    app.stop().await;
}

/// Behind a trusted proxy each forwarded client has its own budget; from anyone else `X-Forwarded-For`
/// is ignored, so forging it buys nothing.
async fn forwarded_for_counts_only_from_trusted_proxies(db: Db) {
    for (trusted, expected) in [
        (vec![], [200, 200, 429, 429]),
        (vec!["127.0.0.0/8".to_string()], [200, 200, 200, 200]),
    ] {
        let app = TestApp::start_with(db, |c| {
            c.rate_limit.requests = 2;
            c.rate_limit.window_seconds = 3600;
            c.rate_limit.trusted_proxies = trusted.clone();
        })
        .await;
        let http = crate::common::http_client();
        let mut statuses = Vec::new();
        for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"] {
            let response = http
                .get(format!("{}/api/regions/", app.base_url))
                .header("X-Forwarded-For", format!("198.51.100.1, {client}"))
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        assert_eq!(statuses, expected, "trusted proxies {trusted:?}");
        app.stop().await;
    }
}

/// Sixty API keys created at once leave the account with at most the limit (50): the count and the insert
/// happen under the account's lock; the rest are 409 LIMIT_EXCEEDED.
async fn concurrent_key_creations_stop_at_the_limit(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Legacy).await;
    let creations: Vec<_> = (0..60)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { client.create_api_key(&format!("k{n}"), Tier::Legacy).await })
        })
        .collect();
    let (mut created, mut refused) = (0, 0);
    for creation in creations {
        match creation.await.unwrap() {
            Ok(_) => created += 1,
            Err(e) => {
                assert_eq!(
                    (e.status(), e.code()),
                    (Some(409), Some("LIMIT_EXCEEDED")),
                    "{e}"
                );
                refused += 1;
            }
        }
    }
    let count = client.api_keys().await.unwrap().data.api_keys.len();
    assert_eq!(count, 50, "created {created}, refused {refused}");
    assert_eq!((created, refused), (49, 11));
    app.stop().await;
}

/// Which credential a request acts with, and under which key it is retried, is never a guess: a second
/// `X-API-Key` or `Authorization`, or a second `Idempotency-Key`, is a 400 naming the header, before
/// anything runs; with both credential headers the API key acts.
async fn a_request_carries_one_credential_and_one_idempotency_key(db: Db) {
    let app = TestApp::start(db).await;
    let (_, _, key) = app.user_with_key(Tier::Legacy).await;
    let (_, _, other_key) = app.user_with_key(Tier::Legacy).await;
    let http = crate::common::http_client();
    let url = format!("{}/api/scripts/", app.base_url);
    let bearer = |key: &str| format!("Bearer {key}");
    let refused: [(&str, Vec<(&str, String)>); 2] = [
        (
            "X-API-Key",
            vec![("X-API-Key", key.clone()), ("X-API-Key", other_key.clone())],
        ),
        (
            "Authorization",
            vec![
                ("Authorization", bearer(&key)),
                ("Authorization", bearer(&other_key)),
            ],
        ),
    ];
    for (field, headers) in refused {
        let mut get = http.get(&url);
        for (name, value) in &headers {
            get = get.header(*name, value);
        }
        let response = get.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{headers:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "VALIDATION_ERROR", "{body}");
        assert!(body["errors"][field].is_array(), "{headers:?}: {body}");
    }
    // One of each is what every client sends.
    for (name, value) in [("X-API-Key", key.clone()), ("Authorization", bearer(&key))] {
        let response = http.get(&url).header(name, value).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{name}");
    }
    // Both: the API key acts, whatever the bearer token says.
    let both = http
        .get(format!("{}/api/account/profile/", app.base_url))
        .header("X-API-Key", &key)
        .header("Authorization", "Bearer not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(both.status().as_u16(), 200);
    let profile: serde_json::Value = both.json().await.unwrap();
    let mine: serde_json::Value = http
        .get(format!("{}/api/account/profile/", app.base_url))
        .header("Authorization", bearer(&key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["data"]["id"], mine["data"]["id"]);
    let script = json!({"name": "once", "script": "#!/bin/sh\necho hi\n"});
    // A script posted under these Idempotency-Key headers: refused on the header, in the caller's tier.
    let refused_with = async |keys: &[&str]| {
        let mut post = http.post(&url).header("X-API-Key", &key).json(&script);
        for idempotency_key in keys {
            post = post.header("Idempotency-Key", *idempotency_key);
        }
        let response = post.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{keys:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["errors"]["Idempotency-Key"].is_array(), "{body}");
        assert_eq!(
            body["tier"], "legacy",
            "answered in the caller's tier: {body}"
        );
    };
    refused_with(&["first", "second"]).await;
    refused_with(&[""]).await;
    let listed: serde_json::Value = http
        .get(&url)
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["data"]["pagination"]["total"], 0,
        "nothing ran: {listed}"
    );
    app.stop().await;
}
