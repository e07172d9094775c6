//! API keys: `-q` prints ids only, for shell loops, and a new key's secret, shown only once; not found and
//! revoked keys get their exit codes.

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_quiet_output_is_ids_only() {
    let server = TestServer::start().await;
    let cli = server.barrack();

    let created = cli
        .run(&[
            "api-keys", "create", "--name", "ci", "--tier", "advanced", "-q",
        ])
        .await;
    // The secret, shown only this once, is what a script needs: `-q` prints it alone.
    let secret = match created.lines()[..] {
        [secret] => secret.to_string(),
        _ => panic!("one line expected: {created:?}"),
    };
    assert!(secret.starts_with("sk_"), "{created:?}");
    let with_it = cli.clone().env("BARRACK_API_KEY", &secret);
    let created_id = with_it
        .run(&["api-keys", "list", "-o", "json"])
        .await
        .json()["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .expect("the key is listed")["id"]
        .as_str()
        .unwrap()
        .to_string();

    let listed = cli.run(&["api-keys", "list", "-q"]).await;
    let ids = listed.lines();
    assert_eq!(ids.len(), 2, "the operator's key and the new one: {ids:?}");
    for id in &ids {
        assert!(
            id.starts_with("BRK-") && id.ends_with('A') && !id.contains(' '),
            "not a key id: {id:?}"
        );
    }
    assert!(ids.contains(&created_id.as_str()));

    let table = cli.run(&["api-keys", "list"]).await;
    assert!(table.ok().starts_with("ID "));
    assert!(table.ok().contains("advanced"));

    let json = cli
        .run(&[
            "api-keys", "create", "--name", "tmp", "--tier", "legacy", "-o", "json",
        ])
        .await
        .json();
    let secret = json["key"].as_str().unwrap();
    assert!(secret.starts_with("sk_"));
    let new_key = cli.clone().env("BARRACK_API_KEY", secret);
    assert_eq!(new_key.run(&["balance"]).await.code, 0);

    // An operator's key for an account, likewise.
    let account = cli
        .run(&["account", "show", "-q"])
        .await
        .ok()
        .trim()
        .to_string();
    let made = cli
        .run(&[
            "admin",
            "create-key",
            "--user",
            &account,
            "--name",
            "ops",
            "--tier",
            "legacy",
            "-q",
        ])
        .await;
    let made = made.ok().trim();
    assert!(made.starts_with("sk_"), "{made}");
    assert_eq!(
        cli.clone()
            .env("BARRACK_API_KEY", made)
            .run(&["balance"])
            .await
            .code,
        0
    );

    let deleted = cli
        .run(&["api-keys", "delete", json["id"].as_str().unwrap()])
        .await;
    assert!(deleted.ok().starts_with("Deleted API key BRK-"));
    let revoked = new_key.run(&["balance"]).await;
    assert_eq!(revoked.code, 3, "{revoked:?}");

    let again = cli
        .run(&["api-keys", "delete", json["id"].as_str().unwrap()])
        .await;
    assert_eq!(again.code, 4, "{again:?}");
    assert!(again.stderr.contains("NOT_FOUND"));
    server.stop().await;
}
