//! Accounts and operator commands, end to end: passwords on stdin, credits, the profile, permissions.

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_sets_up_an_account_that_then_uses_its_key() {
    let server = TestServer::start().await;
    let admin = server.barrack();

    let user = admin
        .run_with_input(
            &[
                "admin",
                "create-user",
                "--email",
                "ada@example.com",
                "--name",
                "Ada Lovelace",
                "-q",
            ],
            "correct horse battery\n",
        )
        .await;
    let user_id = user.lines()[0].to_string();
    assert!(
        admin
            .run(&["admin", "users", "-q"])
            .await
            .lines()
            .contains(&user_id.as_str())
    );

    let key = admin
        .run(&[
            "admin",
            "create-key",
            "--user",
            &user_id,
            "--name",
            "laptop",
            "--tier",
            "legacy",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(key["user_id"], user_id.as_str());
    let grant = admin
        .run(&[
            "admin",
            "grant-credits",
            "--user",
            &user_id,
            "--amount",
            "25.00",
            "--currency",
            "USD",
        ])
        .await;
    assert!(grant.ok().contains("Granted 25.00 USD"), "{grant:?}");
    // Sent as written: a float would have made it 1 and granted it.
    let inexact = admin
        .run(&[
            "admin",
            "grant-credits",
            "--user",
            &user_id,
            "--amount",
            "1.0000000000000000001",
            "--currency",
            "USD",
        ])
        .await;
    assert_eq!(inexact.code, 6, "{inexact:?}");
    assert!(inexact.stderr.contains("amount"), "{}", inexact.stderr);

    let ada = admin
        .clone()
        .env("BARRACK_API_KEY", key["key"].as_str().unwrap());
    let balance = ada.run(&["balance", "-o", "json"]).await.json();
    assert_eq!(balance["balance"], 25);
    assert_eq!(
        ada.run(&["transactions", "--type", "grant", "-q"])
            .await
            .lines()
            .len(),
        1
    );
    assert_eq!(
        ada.run(&["account", "show", "-q"]).await.lines(),
        [user_id.as_str()]
    );

    // The account holds USD: a country billed in EUR would strand them, so it is refused on `country`.
    let stranding = ada.run(&["account", "update", "--country", "DE"]).await;
    assert_eq!(stranding.code, 6, "{stranding:?}");
    assert!(stranding.stderr.contains("  country: "), "{stranding:?}");
    let updated = ada
        .run(&[
            "account",
            "update",
            "--address-line",
            "1 Main St",
            "--postal-code",
            "10115",
            "--country",
            "US",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(updated["currency"], "USD");
    assert_eq!(updated["profile_complete"], true);
    let city = ada.run(&["account", "update", "--city", "Berlin"]).await;
    assert!(city.ok().contains("Berlin"));
    let replace = ada
        .run(&["account", "update", "--replace", "--city", "Paris"])
        .await;
    assert_eq!(replace.code, 6, "PUT needs a name: {replace:?}");
    assert!(replace.stderr.contains("  name: "));

    let forbidden = ada.run(&["admin", "users"]).await;
    assert_eq!(forbidden.code, 3, "{forbidden:?}");
    assert!(forbidden.stderr.contains("operator"));

    let tokens = ada
        .run_with_input(
            &[
                "account",
                "token",
                "--email",
                "ada@example.com",
                "-o",
                "json",
            ],
            "correct horse battery\n",
        )
        .await
        .json();
    let refresh = tokens["refresh"].as_str().unwrap();
    let access = ada
        .run_with_input(
            &["account", "refresh-token", "-o", "json"],
            &format!("{refresh}\n"),
        )
        .await
        .json();
    assert!(access["access"].as_str().is_some_and(|t| !t.is_empty()));
    let spent = ada
        .run_with_input(&["account", "refresh-token"], &format!("{refresh}\n"))
        .await;
    assert_eq!(spent.code, 3, "a refresh token is used once: {spent:?}");
    let fresh = ada
        .run_with_input(
            &[
                "account",
                "token",
                "--email",
                "ada@example.com",
                "-o",
                "json",
            ],
            "correct horse battery\n",
        )
        .await
        .json();
    let fresh_refresh = fresh["refresh"].as_str().unwrap();
    let logout = ada
        .run_with_input(&["account", "logout"], &format!("{fresh_refresh}\n"))
        .await;
    assert!(logout.ok().contains("Sessions ended"), "{logout:?}");
    let after = ada
        .run_with_input(&["account", "refresh-token"], &format!("{fresh_refresh}\n"))
        .await;
    assert_eq!(after.code, 3, "{after:?}");
    let changed = ada
        .run_with_input(
            &["account", "password"],
            "correct horse battery\nan even better horse\n",
        )
        .await;
    assert!(changed.ok().contains("Sessions ended"), "{changed:?}");
    let old = ada
        .run_with_input(
            &["account", "token", "--email", "ada@example.com"],
            "correct horse battery\n",
        )
        .await;
    assert_eq!(old.code, 3, "the old password: {old:?}");
    ada.run_with_input(
        &["account", "token", "--email", "ada@example.com"],
        "an even better horse\n",
    )
    .await
    .ok();
    let wrong = ada
        .run_with_input(
            &["account", "token", "--email", "ada@example.com"],
            "wrong password\n",
        )
        .await;
    assert_eq!(wrong.code, 3, "{wrong:?}");

    let no_password = ada
        .run(&[
            "account",
            "register",
            "--email",
            "bob@example.com",
            "--name",
            "Bob",
        ])
        .await;
    assert_eq!(no_password.code, 2, "{no_password:?}");
    let capacity = admin
        .run(&["admin", "set-capacity", "CANADA-1/L40=40"])
        .await;
    assert!(
        capacity
            .ok()
            .lines()
            .any(|l| l.starts_with("CANADA-1") && l.contains("L40") && l.contains(" 40 "))
    );

    let disabled = admin
        .run(&["admin", "disable-user", "--user", &user_id, "-o", "json"])
        .await
        .json();
    assert_eq!(disabled["disabled"], true);
    assert_eq!(disabled["api_keys_revoked"], 1);
    let refused = ada.run(&["account", "show"]).await;
    assert_eq!(refused.code, 3, "a disabled account's key: {refused:?}");
    let enabled = admin
        .run(&["admin", "enable-user", "--user", &user_id])
        .await;
    assert!(enabled.ok().contains("Disabled"), "{enabled:?}");
    server.stop().await;
}
