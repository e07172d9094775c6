//! Profiles: `configure` writes a private file that later commands use; the environment overrides it.

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_writes_a_private_profile_that_commands_use() {
    let server = TestServer::start().await;
    let cli = server.barrack_without_env();

    // Interactive answers from a pipe, as without a terminal.
    let input = format!("{}\n{}\n", server.url, server.admin_key);
    let configured = cli.run_with_input(&["configure"], &input).await;
    assert!(configured.ok().contains("Saved profile 'default'"));
    assert!(
        configured
            .stderr
            .contains("API URL [http://127.0.0.1:8080]")
    );

    let path = server.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&server.url) && text.contains(&server.admin_key));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the config file holds keys");
    }

    let balance = cli.run(&["balance"]).await;
    assert!(balance.ok().contains("Balance"), "{balance:?}");

    // Flags instead of questions; an empty answer keeps what the profile had.
    cli.run(&[
        "configure",
        "--profile",
        "staging",
        "--api-url",
        &server.url,
        "--api-key",
        "sk_notarealkey",
    ])
    .await
    .ok();
    cli.run_with_input(&["configure"], "\n\n").await.ok();
    assert!(cli.run(&["balance"]).await.ok().contains("Balance"));

    let staging = cli.run(&["--profile", "staging", "balance"]).await;
    assert_eq!(
        staging.code, 3,
        "an unknown key is an auth failure: {staging:?}"
    );
    assert!(staging.stderr.contains("AUTHENTICATION_FAILED"));
    assert!(staging.stderr.contains("profile 'staging'"), "{staging:?}");
    let from_env = cli
        .clone()
        .env("BARRACK_PROFILE", "staging")
        .run(&["balance"])
        .await;
    assert_eq!(from_env.code, 3);

    let missing = cli.run(&["--profile", "production", "balance"]).await;
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("barrack configure --profile production")
    );

    // The environment wins over the file.
    let env_key = cli
        .clone()
        .env("BARRACK_API_KEY", "sk_unknown")
        .run(&["balance"])
        .await;
    assert_eq!(env_key.code, 3, "{env_key:?}");
    assert!(env_key.stderr.contains("BARRACK_API_KEY"));
    let unreachable = cli
        .clone()
        .env("BARRACK_API_URL", "http://127.0.0.1:1")
        .run(&["balance"])
        .await;
    assert_eq!(unreachable.code, 1, "{unreachable:?}");
    assert!(unreachable.stderr.contains("cannot reach"));

    let bad_url = cli
        .run(&[
            "configure",
            "--api-url",
            "localhost:8080",
            "--api-key",
            "sk_x",
        ])
        .await;
    assert_eq!(bad_url.code, 2);
    server.stop().await;
}
