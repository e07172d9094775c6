use barrack_api::account::GrantCredits;
use barrack_api::ledger::{TransactionQuery, TransactionType};
use barrack_api::{Currency, Tier};
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    grants_are_ledger_entries_and_the_balance_equals_the_ledger,
    grants_are_validated,
    listings_name_every_bad_page_and_time_field
);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

async fn grants_are_ledger_entries_and_the_balance_equals_the_ledger(db: Db) {
    let app = TestApp::start(db).await;
    let (client, id) = app.user(Tier::Legacy).await;
    assert_eq!(client.balance().await.unwrap().data.balance, Decimal::ZERO);

    let grant = |amount: &str, currency| GrantCredits {
        amount: d(amount),
        currency,
        note: Some("welcome".into()),
    };
    let first = app
        .admin
        .admin_grant_credits(&id, &grant("25.00", Currency::USD))
        .await
        .unwrap()
        .data;
    assert_eq!(first.kind, TransactionType::Grant);
    assert_eq!((first.amount, first.balance_after), (d("25"), d("25")));
    assert!(first.id.starts_with("BRK-") && first.id.ends_with('T'));
    app.admin
        .admin_grant_credits(&id, &grant("0.10", Currency::USD))
        .await
        .unwrap();
    app.admin
        .admin_grant_credits(&id, &grant("100", Currency::INR))
        .await
        .unwrap();

    // Concurrent grants all land.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let admin = app.admin.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            admin
                .admin_grant_credits(&id, &grant("1.01", Currency::USD))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    let balance = client.balance().await.unwrap().data;
    assert_eq!(balance.currency, Currency::USD);
    assert_eq!(balance.balance, d("35.2"));
    assert_eq!(balance.minimum_balance, d("1"));
    let inr = balance
        .balances
        .iter()
        .find(|b| b.currency == Currency::INR)
        .unwrap();
    assert_eq!(inr.balance, d("100"));

    let store = app.services().store();
    let held = store.balances(&id).await.unwrap();
    for (currency, micros) in held {
        assert_eq!(
            store.ledger_sum(&id, &currency).await.unwrap(),
            micros,
            "balance = ledger for {currency}"
        );
    }

    let all = client
        .transactions(&TransactionQuery::default())
        .await
        .unwrap()
        .data;
    assert_eq!(all.pagination.total, 13);
    assert_eq!(all.transactions[0].description, "Credit grant: welcome");
    let inr_only = client
        .transactions(&TransactionQuery {
            currency: Some(Currency::INR),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    assert_eq!(inr_only.pagination.total, 1);
    let page = client
        .transactions(&TransactionQuery {
            limit: Some(5),
            page: Some(3),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    assert_eq!(
        (page.transactions.len(), page.pagination.total_pages),
        (3, 3)
    );
    let deposits = client
        .transactions(&TransactionQuery {
            kind: Some(TransactionType::Deposit),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    assert_eq!(deposits.pagination.total, 0);
    let future = client
        .transactions(&TransactionQuery {
            from: Some("2099-01-01T00:00:00Z".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    assert_eq!(future.pagination.total, 0);

    // Another account sees none of it.
    let (other, _) = app.user(Tier::Legacy).await;
    assert_eq!(
        other
            .transactions(&TransactionQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0
    );
    app.stop().await;
}

async fn grants_are_validated(db: Db) {
    let app = TestApp::start(db).await;
    let (_, id) = app.user(Tier::Legacy).await;
    for amount in ["0", "-5", "0.001", "1000000001"] {
        let err = app
            .admin
            .admin_grant_credits(
                &id,
                &GrantCredits {
                    amount: d(amount),
                    currency: Currency::USD,
                    note: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(400), "{amount}");
        assert!(
            err.field_errors().unwrap().contains_key("amount"),
            "{amount}"
        );
    }
    let missing = app
        .admin
        .admin_grant_credits(
            "BRK-NOBODYU",
            &GrantCredits {
                amount: d("5"),
                currency: Currency::USD,
                note: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404));
    let raw = app
        .admin
        .raw(
            reqwest::Method::POST,
            &format!("/api/admin/accounts/{id}/credits/"),
            Some(&serde_json::json!({"amount": "ten", "currency": "USD"})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400);
    assert!(raw.body["errors"].get("amount").is_some());
    // More digits than a float holds: refused on `amount`, not granted as 1.
    let raw = app
        .admin
        .raw_bytes(
            reqwest::Method::POST,
            &format!("/api/admin/accounts/{id}/credits/"),
            Some(br#"{"amount": 1.0000000000000000001, "currency": "USD"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400, "{}", raw.text);
    assert!(raw.body["errors"].get("amount").is_some(), "{}", raw.text);

    // A balance holds at most 10^12: a grant that would take it past that is refused whole, on `amount`,
    // where the sum once overflowed the column into a 500.
    let near_the_top = 999_999_500_000 * 1_000_000;
    app.write_ledger_entry(&id, Currency::INR, "grant", near_the_top)
        .await;
    let grant = |amount: &str| GrantCredits {
        amount: d(amount),
        currency: Currency::INR,
        note: None,
    };
    for _ in 0..2 {
        let err = app
            .admin
            .admin_grant_credits(&id, &grant("1000000000"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(400), "{err}");
        let message = &err.field_errors().unwrap()["amount"][0];
        assert!(message.contains("1000000000000"), "{message}");
    }
    app.admin
        .admin_grant_credits(&id, &grant("500000"))
        .await
        .unwrap();
    let store = app.services().store();
    let balance = store.balance(&id, "INR").await.unwrap();
    assert_eq!(
        balance,
        1_000_000_000_000 * 1_000_000,
        "filled to the top exactly"
    );
    assert_eq!(store.ledger_sum(&id, "INR").await.unwrap(), balance);
    app.stop().await;
}

/// The transactions, the billing records, the billing summary and the AI usage history check a page and a
/// time range alike: every bad field at once, each under its own name, and a range that ends before it
/// starts.
async fn listings_name_every_bad_page_and_time_field(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Legacy).await;
    let iso = "Use an ISO-8601 time such as 2025-01-15T10:30:00Z";
    let refusals = [
        (
            "page=0&from=yesterday&to=2025-13-01T00:00:00Z",
            json!({"page": ["Page must be 1 or more"], "from": [iso], "to": [iso]}),
        ),
        (
            "limit=101&to=2025-01-15T10:30:00Z",
            json!({"limit": ["Limit must be between 1 and 100"]}),
        ),
        (
            "from=2025-01-16T00:00:00Z&to=2025-01-15T23:59:59Z",
            json!({"to": ["To must not be before from"]}),
        ),
    ];
    for path in [
        "/api/transactions/",
        "/api/instances/billing/",
        "/api/billing/",
        "/api/ai/usage/history/",
    ] {
        for (query, errors) in &refusals {
            let raw = get(&client, path, query).await;
            assert_eq!(raw.status, 400, "{path}?{query}: {}", raw.text);
            assert_eq!(raw.body["code"], "VALIDATION_ERROR", "{path}?{query}");
            assert_eq!(&raw.body["errors"], errors, "{path}?{query}");
        }
        let good = get(
            &client,
            path,
            "page=2&limit=5&from=2025-01-15T10:30:00Z&to=2025-01-16T00:00:00%2B02:00",
        )
        .await;
        assert_eq!(good.status, 200, "{path}: {}", good.text);
    }
    app.stop().await;
}

async fn get(
    client: &barrack_client::Client,
    path: &str,
    query: &str,
) -> barrack_client::RawResponse {
    client
        .raw(reqwest::Method::GET, &format!("{path}?{query}"), None)
        .await
        .unwrap()
}
