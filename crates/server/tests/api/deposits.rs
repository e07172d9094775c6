//! Deposits: minimums, GST, the complete profile they need, and completion exactly once through the
//! provider's signed webhook or an operator.

use barrack_api::account::ProfileUpdate;
use barrack_api::deposits::{CreateDepositRequest, Deposit, DepositStatus};
use barrack_api::ledger::{TransactionQuery, TransactionType};
use barrack_api::{Currency, PageQuery, Tier};
use barrack_client::Client;
use barrack_core::payments::sign_webhook;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    deposits_check_minimums_currency_and_decimals,
    deposits_need_a_complete_profile,
    inr_deposits_show_gst_and_credit_the_amount,
    a_signed_webhook_credits_exactly_once,
    forged_altered_and_mismatched_webhooks_credit_nothing,
    without_a_secret_every_webhook_is_refused,
    operators_complete_deposits_once,
    deposits_are_private_to_their_account,
    no_deposit_takes_a_balance_above_the_largest_an_account_may_hold,
    a_cancelled_deposit_frees_its_place_and_is_never_credited,
);

const SECRET: &str = "whsec-test-secret-0123456789";

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

async fn app(db: Db) -> TestApp {
    TestApp::start_with(db, |config| {
        config.payments.webhook_secret = Some(SECRET.into());
    })
    .await
}

/// A user with a complete profile in `country` and no credits.
async fn customer(app: &TestApp, country: &str) -> (Client, String) {
    let (client, id) = app.user(Tier::Legacy).await;
    let profile = client
        .update_profile(&ProfileUpdate {
            address_line: Some(Some("1 Test Street".into())),
            postal_code: Some(Some("00100".into())),
            country: Some(Some(country.into())),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    assert!(profile.profile_complete);
    (client, id)
}

async fn deposit(client: &Client, amount: &str) -> Deposit {
    client
        .create_deposit(&CreateDepositRequest {
            amount: d(amount),
            currency: None,
        })
        .await
        .unwrap()
        .data
}

/// Posts raw bytes to the webhook with an optional signature header: status and body.
async fn webhook(app: &TestApp, body: &[u8], signature: Option<&str>) -> (u16, Value) {
    let mut request = crate::common::http_client()
        .post(format!("{}/api/deposits/webhook/", app.base_url))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-Barrack-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body)
}

fn event(deposit_id: &str, amount: &str, currency: &str) -> Vec<u8> {
    format!(
        r#"{{"event": "payment.succeeded", "deposit_id": "{deposit_id}", "amount": "{amount}", "currency": "{currency}"}}"#
    )
    .into_bytes()
}

async fn balance(client: &Client) -> Decimal {
    client.balance().await.unwrap().data.balance
}

async fn deposit_entries(client: &Client) -> Vec<barrack_api::ledger::Transaction> {
    client
        .transactions(&TransactionQuery {
            kind: Some(TransactionType::Deposit),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .transactions
}

/// Every held balance equals the sum of its ledger.
async fn assert_balances_equal_ledger(app: &TestApp, account_id: &str) {
    let store = app.services().store();
    for (currency, micros) in store.balances(account_id).await.unwrap() {
        assert_eq!(
            store.ledger_sum(account_id, &currency).await.unwrap(),
            micros,
            "balance = ledger for {currency}"
        );
    }
}

async fn deposits_check_minimums_currency_and_decimals(db: Db) {
    let app = app(db).await;
    let (us, _) = customer(&app, "US").await;
    let (india, _) = customer(&app, "IN").await;
    let cases: [(&Client, Value, &str); 11] = [
        (&us, json!({"amount": "4.99"}), "amount"),
        (&us, json!({"amount": 0}), "amount"),
        (&us, json!({"amount": "-10"}), "amount"),
        (&us, json!({"amount": "5.001"}), "amount"),
        (
            &us,
            json!({"amount": "25.00", "currency": "EUR"}),
            "currency",
        ),
        (&india, json!({"amount": "99.99"}), "amount"),
        (&us, json!({"amount": "ten"}), "amount"),
        // A string holds plain digits: nothing else is read as an amount.
        (&us, json!({"amount": " 25"}), "amount"),
        (&us, json!({"amount": "+25"}), "amount"),
        (&us, json!({"amount": "2_500"}), "amount"),
        (&us, json!({"amount": "2.5e1"}), "amount"),
    ];
    // More digits than a number with a fraction is read exactly with, or out of a float's range (1e-400
    // would be read as 0): refused on the amount, not read as another number. Nor is an amount given
    // twice read as the last of them.
    for body in [
        r#"{"amount": 5.0000000000000000001}"#,
        r#"{"amount": 1e400}"#,
        r#"{"amount": 1e-400}"#,
        r#"{"amount": "5", "amount": "6"}"#,
    ] {
        let refused = us
            .raw_bytes(Method::POST, "/api/deposits/", Some(body.into()))
            .await
            .unwrap();
        assert_eq!(refused.status, 400, "{body}: {}", refused.text);
        let errors = refused.body["errors"]["amount"].to_string();
        assert!(
            errors.contains("significant digits") || errors.contains("more than once"),
            "{body}: {}",
            refused.text
        );
    }
    for (client, body, field) in cases {
        let raw = client
            .raw(Method::POST, "/api/deposits/", Some(&body))
            .await
            .unwrap();
        assert_eq!(raw.status, 400, "{body}: {}", raw.text);
        assert_eq!(raw.body["code"], "VALIDATION_ERROR");
        assert!(
            raw.body["errors"].get(field).is_some(),
            "{body}: {}",
            raw.text
        );
    }
    let below = us
        .raw(
            Method::POST,
            "/api/deposits/",
            Some(&json!({"amount": "4.99"})),
        )
        .await
        .unwrap();
    assert_eq!(
        below.body["errors"]["amount"][0],
        "The minimum deposit is 5.00 USD"
    );
    for body in [
        json!({"amount": "5.00"}),
        json!({"amount": 5}),
        json!({"amount": 12.5, "currency": "USD"}),
    ] {
        let raw = us
            .raw(Method::POST, "/api/deposits/", Some(&body))
            .await
            .unwrap();
        assert_eq!(raw.status, 201, "{body}: {}", raw.text);
        assert_eq!(raw.body["data"]["status"], "pending");
        assert_eq!(raw.body["data"]["tax"], 0);
        assert_eq!(raw.body["data"]["currency"], "USD");
    }
    let unknown = us
        .raw(
            Method::POST,
            "/api/deposits/",
            Some(&json!({"amount": 5, "coupon": "x"})),
        )
        .await
        .unwrap();
    assert_eq!(unknown.status, 400);
    assert!(unknown.body["errors"].get("coupon").is_some());
    assert_eq!(
        balance(&us).await,
        Decimal::ZERO,
        "opening a deposit credits nothing"
    );

    // Operators change the minimums.
    let strict = TestApp::start_with(db, |config| {
        let minimum = config
            .payments
            .minimum_deposit
            .get_mut(&Currency::USD)
            .unwrap();
        minimum.0 = d("50");
    })
    .await;
    let (client, _) = customer(&strict, "US").await;
    let err = client
        .create_deposit(&CreateDepositRequest {
            amount: d("25"),
            currency: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.field_errors().unwrap().contains_key("amount"));
    strict.stop().await;
    app.stop().await;
}

async fn deposits_need_a_complete_profile(db: Db) {
    let app = app(db).await;
    let (client, _) = app.user(Tier::Legacy).await;
    let err = client
        .create_deposit(&CreateDepositRequest {
            amount: d("25.00"),
            currency: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.code(), Some("PROFILE_INCOMPLETE"));
    assert_eq!(
        client
            .deposits(&PageQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0
    );
    app.stop().await;
}

async fn inr_deposits_show_gst_and_credit_the_amount(db: Db) {
    let app = app(db).await;
    let (client, account_id) = customer(&app, "IN").await;
    let created = client
        .raw(
            Method::POST,
            "/api/deposits/",
            Some(&json!({"amount": "1000", "currency": "INR"})),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.text);
    let data = &created.body["data"];
    assert_eq!(data["amount"], 1000);
    assert_eq!(data["tax"], 180);
    assert_eq!(data["tax_percent"], 18);
    assert_eq!(data["total_payable"], 1180);
    assert_eq!(data["currency"], "INR");
    assert_eq!(data["status"], "pending");
    assert_eq!(data["provider"], "manual");
    let id = data["id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("BRK-") && id.ends_with('P') && id.len() == 11,
        "{id}"
    );
    assert_eq!(data["payment_reference"], id.as_str());
    assert_eq!(
        data["checkout_url"],
        Value::Null,
        "the manual provider has no page"
    );
    assert_eq!(data["transaction_id"], Value::Null);

    // Rounded to the paisa: 18 % of 123.45 is 22.221.
    let odd = deposit(&client, "123.45").await;
    assert_eq!((odd.tax, odd.total_payable), (d("22.22"), d("145.67")));

    let (status, body) = webhook(
        &app,
        &event(&id, "1000", "INR"),
        Some(&sign_webhook(SECRET, &event(&id, "1000", "INR"))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "completed");
    assert_eq!(balance(&client).await, d("1000"), "the tax is not credited");
    let entries = deposit_entries(&client).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].amount, entries[0].currency),
        (d("1000"), Currency::INR)
    );
    assert_balances_equal_ledger(&app, &account_id).await;

    // Europe pays no GST.
    let (eu, _) = customer(&app, "DE").await;
    let euro = deposit(&eu, "5").await;
    assert_eq!(
        (euro.currency, euro.tax, euro.total_payable),
        (Currency::EUR, Decimal::ZERO, d("5"))
    );
    app.stop().await;
}

async fn a_signed_webhook_credits_exactly_once(db: Db) {
    let app = app(db).await;
    let (client, account_id) = customer(&app, "US").await;
    let opened = deposit(&client, "25.00").await;
    let body = event(&opened.id, "25.00", "USD");
    let signature = sign_webhook(SECRET, &body);

    let (status, answer) = webhook(&app, &body, Some(&signature)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["success"], true);
    assert_eq!(answer["data"]["status"], "completed");
    assert!(answer["data"]["completed_at"].is_string());
    let transaction_id = answer["data"]["transaction_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(balance(&client).await, d("25"));
    let entries = deposit_entries(&client).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, transaction_id);
    assert_eq!(entries[0].kind, TransactionType::Deposit);
    assert_eq!(entries[0].amount, d("25"));
    let shown = client.deposit(&opened.id).await.unwrap().data;
    assert_eq!(shown.status, DepositStatus::Completed);
    assert_eq!(
        shown.transaction_id.as_deref(),
        Some(transaction_id.as_str())
    );

    // The same webhook again: refused, nothing credited.
    let (status, answer) = webhook(&app, &body, Some(&signature)).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "INVALID_STATE");
    assert_eq!(balance(&client).await, d("25"));
    assert_eq!(deposit_entries(&client).await.len(), 1);

    // Many deliveries at once: one completes, every other is a replay.
    let second = deposit(&client, "10").await;
    let body = event(&second.id, "10", "USD");
    let signature = sign_webhook(SECRET, &body);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (url, body, signature) = (app.base_url.clone(), body.clone(), signature.clone());
        tasks.push(tokio::spawn(async move {
            crate::common::http_client()
                .post(format!("{url}/api/deposits/webhook/"))
                .header("X-Barrack-Signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(balance(&client).await, d("35"));
    assert_eq!(deposit_entries(&client).await.len(), 2);
    assert_balances_equal_ledger(&app, &account_id).await;
    app.stop().await;
}

async fn forged_altered_and_mismatched_webhooks_credit_nothing(db: Db) {
    let app = app(db).await;
    let (client, _) = customer(&app, "US").await;
    let opened = deposit(&client, "25.00").await;
    let body = event(&opened.id, "25.00", "USD");
    let signature = sign_webhook(SECRET, &body);

    let forged = sign_webhook("not-the-secret-at-all", &body);
    let altered = event(&opened.id, "2500.00", "USD");
    // The same JSON with other spacing: signatures cover the exact bytes.
    let reserialized =
        serde_json::to_vec(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
    assert_ne!(reserialized, body);
    let flipped = {
        let mut s = signature.clone().into_bytes();
        let last = s.len() - 1;
        s[last] = if s[last] == b'0' { b'1' } else { b'0' };
        String::from_utf8(s).unwrap()
    };
    let attempts: [(&[u8], Option<&str>); 7] = [
        (&body, Some(&forged)),
        (&body, None),
        (&body, Some("sha256=zz")),
        (&body, Some(&signature[7..])),
        (&body, Some(&flipped)),
        (&altered, Some(&signature)),
        (&reserialized, Some(&signature)),
    ];
    for (i, (payload, sig)) in attempts.into_iter().enumerate() {
        let (status, answer) = webhook(&app, payload, sig).await;
        assert_eq!(status, 401, "attempt {i}: {answer}");
        assert_eq!(answer["code"], "AUTHENTICATION_FAILED");
        assert_eq!(answer["request_id"].as_str().map(str::len), Some(8));
        let text = answer.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains(&signature[7..]),
            "{text}"
        );
    }
    // An unsigned malformed body is refused for its signature before it is read.
    let (status, _) = webhook(&app, b"{oops", None).await;
    assert_eq!(status, 401);

    // Authentic, but not matching the deposit or not an event it acts on.
    for (payload, field) in [
        (event(&opened.id, "30.00", "USD"), "amount"),
        (event(&opened.id, "25.00", "EUR"), "currency"),
        (
            br#"{"event": "payment.refunded", "deposit_id": "x", "amount": 1, "currency": "USD"}"#
                .to_vec(),
            "event",
        ),
        (br#"{"event": "payment.succeeded"}"#.to_vec(), "deposit_id"),
        // Fields are named as on every other body.
        (
            format!(
                r#"{{"event": "payment.succeeded", "deposit_id": "{}", "amount": "25.00", "currency": "usd"}}"#,
                opened.id
            )
            .into_bytes(),
            "currency",
        ),
        (
            format!(
                r#"{{"event": "payment.succeeded", "deposit_id": "{}", "amount": "1", "amount": "25.00", "currency": "USD"}}"#,
                opened.id
            )
            .into_bytes(),
            "amount",
        ),
        (
            format!(
                r#"{{"event": "payment.succeeded", "deposit_id": "{}\u0000", "amount": "25.00", "currency": "USD"}}"#,
                opened.id
            )
            .into_bytes(),
            "deposit_id",
        ),
        // The deposit's fields in order, but not an object.
        (
            format!(r#"["payment.succeeded", "{}", "25.00", "USD"]"#, opened.id).into_bytes(),
            "body",
        ),
        // 25.00 to a float, but not what was paid.
        (
            format!(
                r#"{{"event": "payment.succeeded", "deposit_id": "{}", "amount": 25.0000000000000000001, "currency": "USD"}}"#,
                opened.id
            )
            .into_bytes(),
            "amount",
        ),
    ] {
        let (status, answer) = webhook(&app, &payload, Some(&sign_webhook(SECRET, &payload))).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["errors"].get(field).is_some(), "{field}: {answer}");
    }
    let unknown = event("BRK-NOPE00P", "25.00", "USD");
    let (status, answer) = webhook(&app, &unknown, Some(&sign_webhook(SECRET, &unknown))).await;
    assert_eq!(status, 404, "{answer}");

    assert_eq!(balance(&client).await, Decimal::ZERO);
    assert!(deposit_entries(&client).await.is_empty());
    assert_eq!(
        client.deposit(&opened.id).await.unwrap().data.status,
        DepositStatus::Pending
    );
    // The genuine one still completes it.
    let (status, _) = webhook(&app, &body, Some(&signature)).await;
    assert_eq!(status, 200);
    assert_eq!(balance(&client).await, d("25"));
    app.stop().await;
}

async fn without_a_secret_every_webhook_is_refused(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = customer(&app, "US").await;
    let opened = deposit(&client, "25.00").await;
    let body = event(&opened.id, "25.00", "USD");
    for secret in [SECRET, "", "anything-at-all-really"] {
        let (status, answer) = webhook(&app, &body, Some(&sign_webhook(secret, &body))).await;
        assert_eq!(status, 401, "{answer}");
    }
    let (status, _) = webhook(&app, &body, None).await;
    assert_eq!(status, 401);
    assert_eq!(balance(&client).await, Decimal::ZERO);
    assert_eq!(
        client.deposit(&opened.id).await.unwrap().data.status,
        DepositStatus::Pending
    );
    app.stop().await;
}

async fn operators_complete_deposits_once(db: Db) {
    let app = app(db).await;
    let (client, account_id) = customer(&app, "US").await;
    let opened = deposit(&client, "40.00").await;

    let err = client.admin_complete_deposit(&opened.id).await.unwrap_err();
    assert_eq!(err.status(), Some(403), "only operators");

    let done = app
        .admin
        .admin_complete_deposit(&opened.id)
        .await
        .unwrap()
        .data;
    assert_eq!(done.status, DepositStatus::Completed);
    assert!(done.transaction_id.is_some());
    assert_eq!(balance(&client).await, d("40"));

    let again = app
        .admin
        .admin_complete_deposit(&opened.id)
        .await
        .unwrap_err();
    assert_eq!(again.status(), Some(409));
    assert_eq!(again.code(), Some("INVALID_STATE"));
    // Nor can the provider complete it a second time.
    let body = event(&opened.id, "40.00", "USD");
    let (status, _) = webhook(&app, &body, Some(&sign_webhook(SECRET, &body))).await;
    assert_eq!(status, 409);
    assert_eq!(balance(&client).await, d("40"));
    assert_eq!(deposit_entries(&client).await.len(), 1);

    let missing = app
        .admin
        .admin_complete_deposit("BRK-NOPE00P")
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404));
    assert_balances_equal_ledger(&app, &account_id).await;
    app.stop().await;
}

async fn deposits_are_private_to_their_account(db: Db) {
    let app = app(db).await;
    let (owner, _) = customer(&app, "US").await;
    let (other, _) = customer(&app, "US").await;
    let first = deposit(&owner, "5").await;
    let second = deposit(&owner, "6").await;

    let err = other.deposit(&first.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(
        other
            .deposits(&PageQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0
    );
    let page = owner
        .deposits(&PageQuery {
            page: Some(1),
            limit: Some(1),
        })
        .await
        .unwrap()
        .data;
    assert_eq!((page.pagination.total, page.pagination.total_pages), (2, 2));
    let all = owner.deposits(&PageQuery::default()).await.unwrap().data;
    let mut ids: Vec<&str> = all.deposits.iter().map(|d| d.id.as_str()).collect();
    ids.sort();
    let mut expected = [first.id.as_str(), second.id.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    let bad = owner
        .raw(Method::GET, "/api/deposits/?limit=500", None)
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(owner.deposit(&first.id).await.unwrap().data.amount, d("5"));
    app.stop().await;
}

async fn no_deposit_takes_a_balance_above_the_largest_an_account_may_hold(db: Db) {
    let app = app(db).await;
    let (client, account_id) = customer(&app, "US").await;
    // Two deposits opened while there is room for either, not both.
    let first = deposit(&client, "600000000").await;
    let second = deposit(&client, "600000000").await;
    // 999,399,999,999 granted in one entry, past the API's largest single grant.
    app.write_ledger_entry(
        &account_id,
        Currency::USD,
        "grant",
        999_399_999_999 * 1_000_000,
    )
    .await;
    let done = app.admin.admin_complete_deposit(&first.id).await.unwrap();
    assert_eq!(done.data.status, DepositStatus::Completed);

    // 999,999,999,999 now; one more credit unit leaves room for no deposit.
    let grant = app
        .admin
        .raw(
            Method::POST,
            &format!("/api/admin/accounts/{account_id}/credits/"),
            Some(&json!({"amount": "1", "currency": "USD"})),
        )
        .await
        .unwrap();
    assert_eq!(grant.status, 201, "{}", grant.text);
    // Completing the second would leave 1,000,600,000,000 (the largest is 1e12): refused, pending.
    let err = app
        .admin
        .admin_complete_deposit(&second.id)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409), "{err:?}");
    let body = event(&second.id, "600000000", "USD");
    let (status, answer) = webhook(&app, &body, Some(&sign_webhook(SECRET, &body))).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("largest an account may hold")),
        "{answer}"
    );
    assert_eq!(
        client.deposit(&second.id).await.unwrap().data.status,
        DepositStatus::Pending
    );
    assert_eq!(balance(&client).await, d("1000000000000"));

    // A new deposit that would go above it is refused on its amount before any checkout.
    let refused = client
        .raw(
            Method::POST,
            "/api/deposits/",
            Some(&json!({"amount": "600000000"})),
        )
        .await
        .unwrap();
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.body["errors"]["amount"][0]
            .as_str()
            .is_some_and(|m| m.contains("largest an account may hold"))
    );
    let small = client
        .raw(
            Method::POST,
            "/api/deposits/",
            Some(&json!({"amount": "5"})),
        )
        .await
        .unwrap();
    assert_eq!(small.status, 400, "{}", small.text);
    assert_balances_equal_ledger(&app, &account_id).await;
    app.stop().await;
}

async fn a_cancelled_deposit_frees_its_place_and_is_never_credited(db: Db) {
    let app = app(db).await;
    let (client, account_id) = customer(&app, "US").await;
    let (other, _) = customer(&app, "US").await;
    let mut opened = Vec::new();
    for _ in 0..10 {
        opened.push(deposit(&client, "5").await);
    }
    let request = CreateDepositRequest {
        amount: d("5"),
        currency: None,
    };
    let full = client.create_deposit(&request).await.unwrap_err();
    assert_eq!(
        (full.status(), full.code()),
        (Some(409), Some("LIMIT_EXCEEDED"))
    );
    assert!(full.to_string().contains("cancel"), "{full}");

    // Another account's deposit is not found, and stays pending.
    let err = other.cancel_deposit(&opened[0].id).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    assert_eq!(
        client.deposit(&opened[0].id).await.unwrap().data.status,
        DepositStatus::Pending
    );

    let cancelled = client.cancel_deposit(&opened[0].id).await.unwrap().data;
    assert_eq!(cancelled.status, DepositStatus::Cancelled);
    assert_eq!(
        client.deposit(&opened[0].id).await.unwrap().data.status,
        DepositStatus::Cancelled
    );
    // Its place is free again.
    client.create_deposit(&request).await.unwrap();
    let again = client.cancel_deposit(&opened[0].id).await.unwrap_err();
    assert_eq!(
        (again.status(), again.code()),
        (Some(409), Some("INVALID_STATE"))
    );

    // A payment confirmed for the cancelled deposit credits nothing, by webhook or by an operator.
    let body = event(&opened[0].id, "5", "USD");
    let (status, answer) = webhook(&app, &body, Some(&sign_webhook(SECRET, &body))).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "INVALID_STATE");
    let err = app
        .admin
        .admin_complete_deposit(&opened[0].id)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    assert_eq!(balance(&client).await, d("0"));
    assert!(deposit_entries(&client).await.is_empty());

    // A completed deposit cannot be cancelled.
    let body = event(&opened[1].id, "5", "USD");
    let (status, answer) = webhook(&app, &body, Some(&sign_webhook(SECRET, &body))).await;
    assert_eq!(status, 200, "{answer}");
    let err = client.cancel_deposit(&opened[1].id).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(409), Some("INVALID_STATE"))
    );
    assert_eq!(
        client.deposit(&opened[1].id).await.unwrap().data.status,
        DepositStatus::Completed
    );
    assert_eq!(balance(&client).await, d("5"));
    assert_balances_equal_ledger(&app, &account_id).await;
    app.stop().await;
}
