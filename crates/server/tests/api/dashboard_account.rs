//! The dashboard's account side over HTTP with cookies: a deposit opened from its page and followed on its
//! checkout page until an operator completes it, the transactions page by page, the billing chart's points
//! against the API's own sums, the overview's burn, and AI chat that answers (whole or streamed) and
//! charges; forms without the session's token change nothing.

use barrack_api::billing::BillingQuery;
use barrack_client::Client;
use barrack_core::clock::Clock;
use reqwest::StatusCode;
use rust_decimal::Decimal;

use crate::common::{Db, TestApp};
use crate::dashboard::{Browser, PASSWORD, Page, account, funded_browser};
use crate::on_both_databases;

on_both_databases!(
    a_deposit_is_opened_and_followed_from_the_pages,
    the_cost_chart_has_a_point_per_day_matching_the_api,
    ai_chat_answers_streams_and_charges,
    an_api_key_is_made_only_in_a_tier_the_form_offers,
);

/// The text between `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {text}"))
        + start.len();
    let to = text[from..].find(end).unwrap() + from;
    &text[from..to]
}

/// An API key for the signed-in account, created on the account page (shown once).
async fn api_key(app: &TestApp, browser: &mut Browser, token: &str) -> Client {
    let created = browser
        .post(
            "/account/api-keys",
            &[("csrf", token), ("name", "web-test"), ("tier", "advanced")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = between(&created.body, r#"aria-label="API key">"#, "</pre>");
    Client::builder(&app.base_url)
        .api_key(key)
        .max_retries(0)
        .build()
        .unwrap()
}

async fn a_deposit_is_opened_and_followed_from_the_pages(db: Db) {
    let app = TestApp::start(db).await;
    let (mut browser, token, _) = funded_browser(&app, "0").await;

    let form = browser.get("/deposits").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("No deposits yet."));
    assert!(form.body.contains("The smallest is $5.00"), "{}", form.body);

    // Bad amounts: the messages at the field, nothing opened.
    for (amount, message) in [
        (
            "lots",
            "&#39;lots&#39; is not a decimal number: write digits, optionally a point",
        ),
        // An exponent is refused as the API refuses it, never read as ₹100 or $0.50.
        ("1e2", "&#39;1e2&#39; is not a decimal number"),
        ("5e-1", "&#39;5e-1&#39; is not a decimal number"),
        ("1E3", "&#39;1E3&#39; is not a decimal number"),
        ("", "This field is required"),
        ("2", "The minimum deposit is $5.00"),
        ("10.001", "Amount must have at most 2 decimal places"),
    ] {
        let refused = browser
            .post("/deposits", &[("csrf", &token), ("amount", amount)])
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{amount}");
        assert!(
            refused.body.contains(r#"aria-describedby="amount-error""#),
            "{}",
            refused.body
        );
        assert!(refused.body.contains(message), "{amount}: {}", refused.body);
        assert!(refused.body.contains(&format!(r#"value="{amount}""#)));
    }
    // Without the form's token: refused, nothing opened.
    let forged = browser.post("/deposits", &[("amount", "25")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        browser
            .get("/deposits")
            .await
            .body
            .contains("No deposits yet.")
    );

    // Opened: the browser goes where the deposit's checkout_url says, the dashboard's checkout page.
    let opened = browser
        .post("/deposits", &[("csrf", &token), ("amount", "25")])
        .await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER, "{}", opened.body);
    let path = opened.location().to_string();
    let id = path.trim_start_matches("/deposits/").to_string();
    assert!(id.starts_with("BRK-"), "{path}");
    let checkout = browser.get(&path).await;
    assert_eq!(checkout.status, StatusCode::OK);
    assert!(checkout.body.contains(r#"id="checkout-explained""#));
    assert!(
        checkout
            .body
            .contains("payment provider is <code>manual</code>")
    );
    assert!(
        checkout
            .body
            .contains(r#"<strong id="total">$25.00</strong>"#)
    );
    assert!(checkout.body.contains(">pending<"));
    assert!(
        checkout
            .body
            .contains(&format!(r#"hx-get="/deposits/{id}/status""#)),
        "follows itself while pending"
    );
    let listed = browser.get("/deposits").await;
    assert!(listed.body.contains(&format!(r#"href="/deposits/{id}""#)));

    // Another account cannot see it.
    let (email, _) = account(&app).await;
    let mut other = Browser::new(&app);
    other.sign_in(&email, PASSWORD, "advanced").await;
    assert_eq!(other.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        other.get(&format!("{path}/status")).await.status,
        StatusCode::NOT_FOUND
    );

    // The operator confirms the payment: the status part shows it and stops refreshing.
    app.admin.admin_complete_deposit(&id).await.unwrap();
    let status = browser.get(&format!("{path}/status")).await;
    assert!(status.body.contains(">completed<"), "{}", status.body);
    assert!(!status.body.contains("hx-trigger"));
    assert!(status.body.contains("$25.00 added to your balance"));
    let credits = browser.get("/deposits").await;
    assert!(
        credits
            .body
            .contains(r#"<strong id="balance">$25.00</strong>"#)
    );
    let transactions = browser.get("/transactions?type=deposit").await;
    assert!(
        transactions.body.contains("+$25.00"),
        "{}",
        transactions.body
    );
    assert!(transactions.body.contains("1 transaction<"));
    app.stop().await;
}

async fn the_cost_chart_has_a_point_per_day_matching_the_api(db: Db) {
    let app = TestApp::start(db).await;
    let (mut browser, token, _) = funded_browser(&app, "100").await;
    let client = api_key(&app, &mut browser, &token).await;
    let deployed = browser
        .post(
            "/deploy",
            &[
                ("csrf", &token),
                ("instance_name", "charted"),
                ("region", "FINLAND-1"),
                ("gpu_model", "H100-SXM5-80GB"),
                ("gpu_count", "1"),
                ("image_name", crate::dashboard::IMAGE),
                ("ssh_key", "k"),
            ],
        )
        .await;
    assert_eq!(deployed.status, StatusCode::SEE_OTHER, "{}", deployed.body);
    app.settle().await;
    let fresh = browser.get("/").await;
    let burn = between(&fresh.body, r#"<p class="big" id="burn">"#, "</p>");
    assert_ne!(burn, "$0.00 per hour", "billed from the moment it runs");
    // From 2025-01-15 10:30 to 2025-01-16 02:30: two days of the chart hold cost.
    app.clock.advance_ms(16 * 3_600_000);

    let page = browser.get("/billing?days=7").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body.matches("<rect ").count(), 7);
    let value = |page: &Page, day: &str| -> Decimal {
        between(
            &page.body,
            &format!(r#"data-label="{day}" data-value=""#),
            "\"",
        )
        .parse()
        .unwrap()
    };
    for quiet in ["2025-01-10", "2025-01-11", "2025-01-14"] {
        assert_eq!(value(&page, quiet), Decimal::ZERO, "{quiet}");
    }
    let midnight = "2025-01-16T00:00:00Z";
    let cost = |from: &str| {
        let client = &client;
        let from = from.to_string();
        async move {
            client
                .billing(&BillingQuery {
                    from: Some(from),
                    ..BillingQuery::default()
                })
                .await
                .unwrap()
                .data
                .total_cost
                .0
        }
    };
    let all = cost("2025-01-15T00:00:00Z").await;
    let second_day = cost(midnight).await;
    assert!(second_day > Decimal::ZERO && all > second_day);
    assert_eq!(value(&page, "2025-01-16"), second_day);
    assert_eq!(value(&page, "2025-01-15"), all - second_day);
    assert!(page.body.contains(r#"role="img""#));
    assert!(
        page.body
            .contains("<title id=\"cost-title\">Cost per day, last 7 days</title>")
    );
    assert!(
        page.body.contains(">charted<"),
        "the instance's record is listed"
    );

    // The overview: burn per hour, how long the balance lasts, this month's cost (January since the 1st).
    let hourly = client
        .instance_billing(&BillingQuery::default())
        .await
        .unwrap()
        .records
        .iter()
        .map(|r| r.per_minute_rate.0 * Decimal::from(60))
        .sum::<Decimal>();
    assert!(hourly > Decimal::ZERO);
    let overview = browser.get("/").await;
    let burn = between(&overview.body, r#"<p class="big" id="burn">"#, "</p>");
    assert!(burn.ends_with(" per hour"), "{burn}");
    assert!(overview.body.contains("at this rate"), "{}", overview.body);
    let month = between(&overview.body, r#"id="month-cost">This month: "#, " <a");
    assert_eq!(month, format!("${:.2}", all.round_dp(2)));

    // A range the page does not offer is a message at the range, with the default chart.
    let odd = browser.get("/billing?days=12").await;
    assert!(odd.body.contains("Choose 7, 30 or 90 days"));
    assert_eq!(odd.body.matches("<rect ").count(), 30);
    app.stop().await;
}

async fn ai_chat_answers_streams_and_charges(db: Db) {
    let app = TestApp::start(db).await;
    let (mut poor, poor_token, _) = funded_browser(&app, "0").await;
    let short = poor
        .post(
            "/ai/chat",
            &[
                ("csrf", &poor_token),
                ("model", "barrack-sim-small"),
                ("prompt", "Hello"),
                ("max_tokens", "16"),
            ],
        )
        .await;
    assert_eq!(short.status, StatusCode::PAYMENT_REQUIRED, "{}", short.body);
    assert!(short.body.contains(r#"href="/account#credits""#));

    let (mut browser, token, _) = funded_browser(&app, "10").await;
    let page = browser.get("/ai").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(r#"<option value="barrack-sim-small" selected>"#)
    );
    assert!(page.body.contains(r#"src="/assets/ai.js""#));
    assert!(page.body.contains("No calls yet."));

    // Refused at the fields, nothing charged.
    let empty = browser
        .post(
            "/ai/chat",
            &[
                ("csrf", &token),
                ("model", "barrack-sim-small"),
                ("prompt", " "),
            ],
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.body.contains(r#"id="prompt-error""#));
    let too_long = browser
        .post(
            "/ai/chat",
            &[
                ("csrf", &token),
                ("model", "barrack-sim-small"),
                ("prompt", "Hi"),
                ("max_tokens", "999999"),
            ],
        )
        .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert!(
        too_long.body.contains(r#"id="max_tokens-error""#),
        "{}",
        too_long.body
    );
    let forged = browser
        .post(
            "/ai/chat",
            &[("model", "barrack-sim-small"), ("prompt", "Hello")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let forged = browser
        .post(
            "/ai/chat/stream",
            &[("model", "barrack-sim-small"), ("prompt", "Hello")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(browser.get("/ai").await.body.contains("No calls yet."));

    // The whole reply, with what it cost.
    let answered = browser
        .post(
            "/ai/chat",
            &[
                ("csrf", &token),
                ("model", "barrack-sim-small"),
                ("prompt", "Tell me about GPUs"),
                ("max_tokens", "16"),
            ],
        )
        .await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.body);
    assert!(answered.body.contains(r#"<li class="msg user">"#));
    assert!(answered.body.contains(r#"<li class="msg assistant">"#));
    assert!(
        answered
            .body
            .contains(r#"name="history" value="u:Tell me about GPUs""#)
    );
    let billed = between(&answered.body, "Last reply: ", "</p>").to_string();
    assert!(
        billed.contains("tokens in") && billed.contains(": $"),
        "{billed}"
    );

    // Streamed: server-sent events of the reply, then what it cost; the conversation goes along.
    let history: Vec<(&str, String)> = vec![
        ("csrf", token.clone()),
        ("model", "barrack-sim-small".into()),
        ("history", "u:Tell me about GPUs".into()),
        ("history", "a:They are fast.".into()),
        ("prompt", "And more?".into()),
        ("max_tokens", "16".into()),
    ];
    let form: Vec<(&str, &str)> = history.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let streamed = browser.post("/ai/chat/stream", &form).await;
    assert_eq!(streamed.status, StatusCode::OK, "{}", streamed.body);
    assert!(streamed.content_type().starts_with("text/event-stream"));
    assert!(streamed.body.contains("event: delta"), "{}", streamed.body);
    let done = between(&streamed.body, "event: done\ndata: ", "\n");
    let done: serde_json::Value = serde_json::from_str(done).unwrap();
    assert!(done["billed"].as_str().unwrap().contains(": $"), "{done}");
    // Refused before the call: the page with the message at the field, not a stream.
    let refused = browser
        .post(
            "/ai/chat/stream",
            &[("csrf", &token), ("model", "nope"), ("prompt", "Hi")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(refused.content_type().starts_with("text/html"));
    assert!(
        refused.body.contains(r#"id="model-error""#)
            && refused.body.contains("Model &#39;nope&#39; not found"),
        "{}",
        refused.body
    );

    // Both calls are in the usage and charged from the ledger.
    let usage = browser.get("/ai").await;
    let calls = between(&usage.body, r#"<table id="calls">"#, "</table>");
    assert_eq!(calls.matches("<code>BRK-").count(), 2, "{calls}");
    assert!(calls.contains("(streamed)"));
    assert!(calls.contains("completed"));
    let total = between(&usage.body, r#"<td id="usage-total">"#, "</td>");
    assert_ne!(total, "$0.00");
    // A range of days: today's calls are in a range ending today, not in one starting tomorrow; the
    // pages of calls keep the range.
    let day = |ms: i64| barrack_core::clock::format_ms(ms)[..10].to_string();
    let today = day(app.clock.now_ms());
    let tomorrow = day(app.clock.now_ms() + 86_400_000);
    let ranged = browser.get(&format!("/ai?from={today}&to={today}")).await;
    assert_eq!(
        between(&ranged.body, r#"<td id="usage-total">"#, "</td>"),
        total
    );
    assert!(ranged.body.contains(&format!(r#"value="{today}""#)));
    let later = browser
        .get(&format!("/ai?from={tomorrow}&to={tomorrow}"))
        .await;
    assert_eq!(
        between(&later.body, r#"<td id="usage-total">"#, "</td>"),
        "$0.00"
    );
    assert!(later.body.contains("No calls yet."));
    // A day that is not one, or a range that ends before it starts, is said at its field.
    let wrong = browser.get("/ai?from=yesterday").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong
            .body
            .contains(r#"id="from" name="from" type="date" value="yesterday" aria-invalid="true""#),
        "{}",
        wrong.body
    );
    let backwards = browser
        .get(&format!("/ai?from={tomorrow}&to={today}"))
        .await;
    assert_eq!(backwards.status, StatusCode::BAD_REQUEST);
    assert!(
        backwards
            .body
            .contains("Choose a day on or after the first")
    );
    let usage_rows = browser.get("/transactions?type=usage").await;
    assert!(
        usage_rows.body.contains("2 transactions<"),
        "{}",
        usage_rows.body
    );
    app.stop().await;
}

/// The account page refuses a tier it does not offer at the tier's field, as the API does, rather than
/// making a key of the session's tier.
async fn an_api_key_is_made_only_in_a_tier_the_form_offers(db: Db) {
    let app = TestApp::start(db).await;
    let (mut browser, token, _) = funded_browser(&app, "0").await;
    let keys = |page: &str| page.matches("/revoke\"").count();
    let before = keys(&browser.get("/account").await.body);
    for tier in [Some("superadmin"), Some("ADVANCED"), Some(""), None] {
        let mut form = vec![("csrf", token.as_str()), ("name", "odd")];
        if let Some(tier) = tier {
            form.push(("tier", tier));
        }
        let refused = browser.post("/account/api-keys", &form).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{tier:?}");
        assert!(
            refused.body.contains(r#"id="key-tier-error""#)
                && refused
                    .body
                    .contains("Choose the legacy or the advanced tier"),
            "{}",
            refused.body
        );
        assert!(refused.body.contains(r#"value="odd""#), "the name is kept");
    }
    assert_eq!(keys(&browser.get("/account").await.body), before);
    app.stop().await;
}
