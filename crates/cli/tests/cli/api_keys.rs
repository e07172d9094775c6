//! API keys: `-q` prints ids only, for shell loops; not found and revoked keys get their exit codes.

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
    let created_id = match created.lines()[..] {
        [id] => id.to_string(),
        _ => panic!("one id expected: {created:?}"),
    };

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
