//! A newcomer's way in: the URL exactly as the server prints it, a clear error for one without a scheme,
//! and `barrack login` from an email and a password to a profile with a working API key.

use barrack_api::account::AdminCreateUser;

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_the_server_prints_works_and_one_without_a_scheme_is_explained() {
    let server = TestServer::start().await;
    for printed in [
        format!("{}/api/", server.url),
        format!("{}/api", server.url),
        format!("{}/", server.url),
    ] {
        let cli = server.barrack().env("BARRACK_API_URL", &printed);
        let regions = cli.run(&["catalog", "regions", "-q"]).await;
        assert!(regions.ok().contains("FINLAND-1"), "{printed}: {regions:?}");
        let balance = cli.run(&["balance"]).await;
        assert!(balance.ok().contains("Balance"), "{printed}: {balance:?}");
    }

    let address = server.url.trim_start_matches("http://").to_string();
    let bare = server
        .barrack()
        .env("BARRACK_API_URL", &address)
        .run(&["balance"])
        .await;
    assert_eq!(bare.code, 2, "{bare:?}");
    assert!(bare.stderr.contains("BARRACK_API_URL"), "{bare:?}");
    assert!(
        bare.stderr.contains(&format!("http://{address}")),
        "the error shows the URL meant: {bare:?}"
    );

    // A profile saved with the printed URL works too.
    let cli = server.barrack_without_env();
    cli.run(&[
        "configure",
        "--api-url",
        &format!("{}/api/", server.url),
        "--api-key",
        &server.admin_key,
    ])
    .await
    .ok();
    assert!(cli.run(&["balance"]).await.ok().contains("Balance"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_turns_an_email_and_password_into_a_working_profile() {
    let server = TestServer::start().await;
    let email = "newcomer@example.com";
    server
        .client()
        .admin_create_user(&AdminCreateUser {
            email: email.into(),
            password: "correct horse battery".into(),
            name: "New Comer".into(),
            admin: false,
        })
        .await
        .unwrap();
    let cli = server.barrack_without_env();
    let printed_url = format!("{}/api/", server.url);

    let wrong = cli
        .run_with_input(
            &["login", "--email", email, "--api-url", &printed_url],
            "not the password\n",
        )
        .await;
    assert_eq!(wrong.code, 3, "{wrong:?}");
    assert!(!server.config_path().exists(), "nothing saved on failure");

    let login = cli
        .run_with_input(
            &[
                "login",
                "--email",
                email,
                "--api-url",
                &printed_url,
                "-o",
                "json",
            ],
            "correct horse battery\n",
        )
        .await
        .json();
    assert_eq!(login["profile"], "default");
    assert_eq!(login["api_url"], server.url.as_str());
    assert_eq!(login["api_key_name"], "barrack-cli");
    let saved = std::fs::read_to_string(server.config_path()).unwrap();
    assert!(saved.contains("sk_"), "{saved}");

    // The profile now works with no key in the environment, as the new account.
    let profile = cli.run(&["account", "show", "-o", "json"]).await.json();
    assert_eq!(profile["email"], email);
    let keys = cli.run(&["api-keys", "list", "-q"]).await;
    assert_eq!(keys.lines(), [login["api_key_id"].as_str().unwrap()]);

    // Another profile, another key; -q prints the new key's id.
    let staging = cli
        .run_with_input(
            &[
                "login",
                "--email",
                email,
                "--api-url",
                &server.url,
                "--profile",
                "staging",
                "--key-name",
                "laptop",
                "--tier",
                "advanced",
                "-q",
            ],
            "correct horse battery\n",
        )
        .await;
    let id = staging.lines()[0].to_string();
    let listed = cli
        .run(&["api-keys", "list", "--profile", "staging", "-o", "json"])
        .await
        .json();
    let laptop = listed["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .expect("the new key is listed")
        .clone();
    assert_eq!(laptop["name"], "laptop");
    assert_eq!(laptop["tier"], "advanced");
    server.stop().await;
}

/// `barrack admin` names an account by id or by email, as `barrackd admin` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_take_an_account_id_or_email() {
    let server = TestServer::start().await;
    let email = "operated@example.com";
    let user = server
        .client()
        .admin_create_user(&AdminCreateUser {
            email: email.into(),
            password: "correct horse battery".into(),
            name: "Operated".into(),
            admin: false,
        })
        .await
        .unwrap()
        .data;
    let cli = server.barrack();
    for (n, name) in [user.id.as_str(), email].into_iter().enumerate() {
        let key_name = format!("ops-{n}");
        let granted = cli
            .run(&[
                "admin",
                "grant-credits",
                "--user",
                name,
                "--amount",
                "2.50",
                "--currency",
                "USD",
            ])
            .await;
        assert!(granted.ok().contains("Granted 2.50 USD"), "{granted:?}");
        let key = cli
            .run(&[
                "admin",
                "create-key",
                "--user",
                name,
                "--name",
                &key_name,
                "--tier",
                "legacy",
                "-o",
                "json",
            ])
            .await
            .json();
        assert_eq!(key["user_id"], user.id.as_str());
    }
    let missing = cli
        .run(&[
            "admin",
            "create-key",
            "--user",
            "nobody@example.com",
            "--name",
            "x",
            "--tier",
            "legacy",
        ])
        .await;
    assert_eq!(missing.code, 4, "{missing:?}");
    server.stop().await;
}
