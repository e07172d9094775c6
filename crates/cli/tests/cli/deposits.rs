//! Buying credits: a deposit opened from the command line, then completed by an operator.

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_open_list_show_and_complete() {
    let server = TestServer::start().await;
    server.fund_operator(10).await;
    let cli = server.barrack();

    let small = cli.run(&["deposits", "create", "--amount", "4.99"]).await;
    assert_eq!(small.code, 6, "{small:?}");
    assert!(small.stderr.contains("amount"), "{}", small.stderr);
    // Sent as written: a float would make it 5.00 and open the deposit.
    let precise = cli
        .run(&["deposits", "create", "--amount", "5.0000000000000000001"])
        .await;
    assert_eq!(precise.code, 6, "{precise:?}");
    assert!(precise.stderr.contains("amount"), "{}", precise.stderr);
    // A negative amount is the server's to refuse, on its field, not a flag the parser does not know.
    let negative = cli.run(&["deposits", "create", "--amount", "-5"]).await;
    assert_eq!(negative.code, 6, "{negative:?}");
    assert!(negative.stderr.contains("amount"), "{}", negative.stderr);
    let garbled = cli.run(&["deposits", "create", "--amount", "ten"]).await;
    assert_eq!(garbled.code, 2, "{garbled:?}");

    let opened = cli
        .run(&["deposits", "create", "--amount", "25.00", "-o", "json"])
        .await
        .json();
    assert_eq!(opened["status"], "pending");
    assert_eq!(opened["total_payable"], 25);
    let id = opened["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("BRK-") && id.ends_with('P'));

    let human = cli
        .run(&["deposits", "create", "--amount", "5", "--currency", "USD"])
        .await;
    assert!(
        human.ok().contains("Total payable") && human.ok().contains("5.00 USD"),
        "{human:?}"
    );
    assert!(human.stderr.contains("Pay 5.00 USD"), "{}", human.stderr);
    let wrong_currency = cli
        .run(&["deposits", "create", "--amount", "5", "--currency", "EUR"])
        .await;
    assert_eq!(wrong_currency.code, 6, "{wrong_currency:?}");

    let listed = cli.run(&["deposits", "list", "-q"]).await;
    assert_eq!(listed.lines().len(), 2);
    assert!(listed.lines().contains(&id.as_str()));
    let shown = cli.run(&["deposits", "show", &id]).await;
    assert!(
        shown.ok().contains("pending") && shown.ok().contains(&id),
        "{shown:?}"
    );

    let done = cli
        .run(&["admin", "complete-deposit", &id, "-o", "json"])
        .await
        .json();
    assert_eq!(done["status"], "completed");
    let balance = cli.run(&["balance", "-o", "json"]).await.json();
    assert_eq!(balance["balance"], 35);
    let again = cli.run(&["admin", "complete-deposit", &id]).await;
    assert_eq!(again.code, 5, "{again:?}");
    let missing = cli.run(&["deposits", "show", "BRK-NOPE00P"]).await;
    assert_eq!(missing.code, 4, "{missing:?}");
    server.stop().await;
}
