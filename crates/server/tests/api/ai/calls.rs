//! Whole chat calls: charged tokens times price, the history and summary, bad input, per-minute limits.

use barrack_api::Tier;
use barrack_core::ai::{cost_micros, tokenizer};
use barrack_core::money::from_micros;
use rust_decimal::Decimal;
use serde_json::json;

use super::*;
use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    chat_is_charged_tokens_times_price_and_the_balance_equals_the_ledger,
    bad_input_is_refused_in_the_right_shape_and_costs_nothing,
    calls_per_minute_are_limited_per_key,
    calls_in_flight_on_two_servers_never_spend_more_than_the_balance,
);

async fn chat_is_charged_tokens_times_price_and_the_balance_equals_the_ledger(db: Db) {
    let app = TestApp::start_with(db, instant_models).await;
    let (_, id, key) = app.funded_user_with_key(Tier::Advanced, "US", "10").await;
    let me = Caller::new(&app.base_url, &key);

    let models = me.get("/api/ai/models/").await;
    assert_eq!(models.status, 200, "{}", models.body);
    let list = models.body["data"]["models"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], SMALL);
    assert_eq!(list[0]["context_length"], 8192);
    assert_eq!(list[0]["prices"]["input"]["USD"], json!(0.1));
    assert_eq!(list[0]["prices"]["unit"], "per million tokens");

    let request =
        json!({"model": SMALL, "messages": user_message("Explain sharding"), "max_tokens": 40});
    let first = me.post("/api/ai/chat/", &request).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["success"], true);
    let reply = &first.body["data"];
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["model"], SMALL);
    let content = reply["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!content.is_empty());
    assert_eq!(reply["choices"][0]["message"]["role"], "assistant");
    let (input, output) = (
        reply["usage"]["prompt_tokens"].as_u64().unwrap(),
        reply["usage"]["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!(input, prompt_tokens("Explain sharding"));
    assert_eq!(output, tokenizer::count(content));
    assert!(output <= 40);
    assert_eq!(
        reply["usage"]["total_tokens"].as_u64().unwrap(),
        input + output
    );
    let cost = from_micros(cost_micros(small_prices(&app), input, output));
    assert!(cost > Decimal::ZERO);
    assert_eq!(dec(&reply["billing"]["cost"]), cost);
    assert_eq!(reply["billing"]["currency"], "USD");
    assert_eq!(me.balance().await, d("10") - cost);
    balance_equals_ledger(&app, &id).await;
    assert!(first.headers.contains_key("x-ratelimit-remaining-requests"));

    // Reproducible: the same call gives the same reply, and is charged again.
    let again = me.post("/api/ai/chat/", &request).await;
    assert_eq!(
        again.body["data"]["choices"][0]["message"]["content"],
        content
    );
    assert_eq!(me.balance().await, d("10") - cost - cost);

    // The ledger entry, the history and the summary agree with the reply.
    let ledger = me.get("/api/transactions/?type=usage").await;
    let entries = ledger.body["data"]["transactions"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(dec(&entries[0]["amount"]), -cost);
    let history = me.get("/api/ai/usage/history/").await;
    assert_eq!(history.status, 200, "{}", history.body);
    let calls = history.body["data"]["transactions"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    let call = calls
        .iter()
        .find(|c| c["id"] == reply["billing"]["ai_transaction_id"])
        .expect("the call is in the history");
    assert!(call["id"].as_str().unwrap().starts_with("BRK-"));
    assert!(call["id"].as_str().unwrap().ends_with('Q'));
    assert_eq!(call["model"], SMALL);
    assert_eq!(call["input_tokens"].as_u64(), Some(input));
    assert_eq!(call["output_tokens"].as_u64(), Some(output));
    assert_eq!(dec(&call["cost"]), cost);
    assert_eq!(call["status"], "completed");
    assert_eq!(
        call["ledger_transaction_id"],
        reply["billing"]["ledger_transaction_id"]
    );
    assert_eq!(
        call["request_id"],
        first.headers["x-request-id"].to_str().unwrap()
    );
    assert_eq!(history.body["data"]["pagination"]["total"], 2);

    let summary = me.get("/api/ai/usage/summary/").await;
    assert_eq!(summary.status, 200, "{}", summary.body);
    let summary = &summary.body["data"];
    assert_eq!(summary["currency"], "USD");
    assert_eq!(summary["models"][0]["model"], SMALL);
    assert_eq!(summary["models"][0]["requests"], 2);
    assert_eq!(summary["total"]["input_tokens"].as_u64(), Some(2 * input));
    assert_eq!(summary["total"]["output_tokens"].as_u64(), Some(2 * output));
    assert_eq!(dec(&summary["total"]["cost"]), cost + cost);
    // A range before the calls holds none.
    let before = me
        .get("/api/ai/usage/summary/?from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:00Z")
        .await;
    assert_eq!(before.body["data"]["total"]["requests"], 0);

    // Another account sees none of it.
    let (_, _, other_key) = app.funded_user_with_key(Tier::Advanced, "DE", "5").await;
    let other = Caller::new(&app.base_url, &other_key);
    let theirs = other.get("/api/ai/usage/history/").await;
    assert_eq!(theirs.body["data"]["transactions"], json!([]));
    let theirs = other.get("/api/ai/usage/summary/").await;
    assert_eq!(theirs.body["data"]["total"]["requests"], 0);
    assert_eq!(theirs.body["data"]["currency"], "EUR");

    // The OpenAI surface: models, and a completion with the key as a bearer token.
    let v1_models = me.get("/v1/models").await;
    assert_eq!(v1_models.body["object"], "list");
    assert_eq!(v1_models.body["data"][1]["id"], "barrack-sim-large");
    let v1 = me.post_bearer("/v1/chat/completions", &request).await;
    assert_eq!(v1.status, 200, "{}", v1.body);
    assert_eq!(v1.body["choices"][0]["message"]["content"], content);
    assert!(v1.body.get("billing").is_none());
    assert_eq!(me.balance().await, d("10") - cost * d("3"));
    balance_equals_ledger(&app, &id).await;
    app.stop().await;
}

async fn bad_input_is_refused_in_the_right_shape_and_costs_nothing(db: Db) {
    let app = TestApp::start_with(db, instant_models).await;
    let (_, id, key) = app.funded_user_with_key(Tier::Advanced, "US", "10").await;
    let me = Caller::new(&app.base_url, &key);
    let messages = user_message("hi");
    let cases = [
        (
            json!({"model": "no-such-model", "messages": messages}),
            404,
            None,
        ),
        (
            json!({"model": SMALL, "messages": []}),
            400,
            Some("messages"),
        ),
        (
            json!({"model": SMALL, "messages": [{"role": "wizard", "content": "hi"}]}),
            400,
            Some("messages[0].role"),
        ),
        (
            json!({"model": SMALL, "messages": [{"role": "user"}]}),
            400,
            Some("messages[0].content"),
        ),
        (
            json!({"model": SMALL, "messages": messages, "max_tokens": 9000}),
            400,
            Some("max_tokens"),
        ),
        (
            json!({"model": SMALL, "messages": messages, "max_tokens": 0}),
            400,
            Some("max_tokens"),
        ),
        (
            json!({"model": SMALL, "messages": messages, "temperature": 3}),
            400,
            Some("temperature"),
        ),
        (
            json!({"model": SMALL, "messages": messages, "n": 2}),
            400,
            Some("n"),
        ),
        (json!({"messages": messages}), 400, Some("model")),
        (
            json!({"model": SMALL, "messages": messages, "stop": [""]}),
            400,
            Some("stop"),
        ),
        (
            json!({"model": SMALL, "messages": "hi"}),
            400,
            Some("messages"),
        ),
    ];
    for (body, status, field) in &cases {
        let barrack = me.post("/api/ai/chat/", body).await;
        assert_eq!(barrack.status, *status, "{body}: {}", barrack.body);
        assert_eq!(barrack.body["success"], false);
        if let Some(field) = field {
            assert_eq!(barrack.body["code"], "VALIDATION_ERROR");
            assert!(
                barrack.body["errors"][field].is_array(),
                "{body}: {}",
                barrack.body
            );
        }
        let openai = me.post_bearer("/v1/chat/completions", body).await;
        assert_eq!(openai.status, *status, "{body}: {}", openai.body);
        assert!(
            openai.body["error"]["message"].is_string(),
            "{}",
            openai.body
        );
        if let Some(field) = field {
            assert_eq!(openai.body["error"]["param"], *field);
            assert_eq!(openai.body["error"]["type"], "invalid_request_error");
        }
    }
    // A prompt over the context.
    let long = "word ".repeat(9000);
    let too_long = me
        .post(
            "/api/ai/chat/",
            &json!({"model": SMALL, "messages": user_message(&long)}),
        )
        .await;
    assert_eq!(too_long.status, 400);
    assert!(too_long.body["errors"]["messages"].is_array());
    // A body over the server's limit.
    let huge = "x".repeat(app.services().config().body_limit_bytes + 1);
    let over = me
        .post(
            "/api/ai/chat/",
            &json!({"model": SMALL, "messages": user_message(&huge)}),
        )
        .await;
    assert_eq!(over.status, 413);
    assert_eq!(over.body["code"], "PAYLOAD_TOO_LARGE");
    let over = me
        .post_bearer(
            "/v1/chat/completions",
            &json!({"model": SMALL, "messages": user_message(&huge)}),
        )
        .await;
    assert_eq!(over.status, 413);
    assert!(over.body["error"].is_object());
    // No key, a wrong key.
    let anonymous = Caller::new(&app.base_url, "sk_not_a_key");
    let refused = anonymous
        .post_bearer("/v1/chat/completions", &cases[1].0)
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["error"]["type"], "authentication_error");
    // A method a /v1 route does not take, and a /v1 path that is not one, keep OpenAI's shape too.
    let wrong_method = me.get("/v1/chat/completions").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.body["error"]["code"], "method_not_allowed");
    let no_route = me.get("/v1/embeddings").await;
    assert_eq!(no_route.status, 404);
    assert_eq!(no_route.body["error"]["type"], "not_found_error");
    let refused = crate::common::http_client()
        .get(format!("{}/api/ai/models/", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // Nothing was charged or recorded.
    assert_eq!(me.balance().await, d("10"));
    let history = me.get("/api/ai/usage/history/").await;
    assert_eq!(history.body["data"]["transactions"], json!([]));
    let bad_page = me.get("/api/ai/usage/history/?limit=1000").await;
    assert_eq!(bad_page.status, 400);
    assert!(bad_page.body["errors"]["limit"].is_array());
    let bad_time = me.get("/api/ai/usage/summary/?from=yesterday").await;
    assert_eq!(bad_time.status, 400);
    assert!(bad_time.body["errors"]["from"].is_array());

    // An account without credits gets 402; one whose balance cannot cover the worst case too.
    let (_, _, poor_key) = app.user_with_key(Tier::Advanced).await;
    let poor = Caller::new(&app.base_url, &poor_key);
    let refused = poor
        .post(
            "/api/ai/chat/",
            &json!({"model": SMALL, "messages": messages}),
        )
        .await;
    assert_eq!(refused.status, 402);
    assert_eq!(refused.body["code"], "INSUFFICIENT_BALANCE");
    // The worst case is stated exactly: a fraction of a cent, not rounded up to one.
    let said = refused.body["message"].as_str().unwrap();
    let worst: Decimal = said
        .split("up to ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        said.contains("0 USD available") && worst > Decimal::ZERO && worst < Decimal::new(1, 2),
        "{said}"
    );
    let refused = poor
        .post_bearer(
            "/v1/chat/completions",
            &json!({"model": SMALL, "messages": messages}),
        )
        .await;
    assert_eq!(refused.status, 402);
    assert_eq!(refused.body["error"]["type"], "insufficient_quota");

    // `"stop": ""` is an optional field left empty, so absent, as everywhere in the API.
    let body = json!({"model": SMALL, "messages": messages, "stop": ""});
    let answered = me.post("/api/ai/chat/", &body).await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    let answered = me.post_bearer("/v1/chat/completions", &body).await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    balance_equals_ledger(&app, &id).await;
    app.stop().await;
}

async fn calls_per_minute_are_limited_per_key(db: Db) {
    let app = TestApp::start_with(db, |config| {
        instant_models(config);
        config.ai.requests_per_minute = 2;
        config.ai.tokens_per_minute = 1000;
    })
    .await;
    let (_, _, key) = app.funded_user_with_key(Tier::Advanced, "US", "10").await;
    let me = Caller::new(&app.base_url, &key);
    // A call that may use more tokens than a whole minute allows never fits: a 400 saying what to
    // lower, not a 429 to retry; it counts as no call.
    let too_large = me
        .post(
            "/api/ai/chat/",
            &json!({"model": SMALL, "messages": user_message("hi"), "max_tokens": 2000}),
        )
        .await;
    assert_eq!(too_large.status, 400, "{:?}", too_large.body);
    let message = too_large.body["errors"]["max_tokens"][0].as_str().unwrap();
    assert!(message.contains("1000 tokens a minute"), "{message}");
    let request = json!({"model": SMALL, "messages": user_message("hi"), "max_tokens": 5});
    for remaining in [1, 0] {
        let ok = me.post("/api/ai/chat/", &request).await;
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.headers["x-ratelimit-remaining-requests"],
            remaining.to_string().as_str()
        );
    }
    let limited = me.post("/api/ai/chat/", &request).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["code"], "RATE_LIMITED");
    assert!(limited.headers.contains_key("retry-after"));
    // Where the key stands, as OpenAI's refusals say it.
    assert_eq!(limited.headers["x-ratelimit-remaining-requests"], "0");
    assert_eq!(limited.headers["x-ratelimit-limit-requests"], "2");
    assert!(limited.headers.contains_key("x-ratelimit-reset-requests"));
    let limited = me.post_bearer("/v1/chat/completions", &request).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["error"]["type"], "rate_limit_error");
    assert_eq!(limited.headers["x-ratelimit-remaining-requests"], "0");
    // Another key of another account is not limited by this one.
    let (_, _, other) = app.funded_user_with_key(Tier::Advanced, "US", "10").await;
    let ok = Caller::new(&app.base_url, &other)
        .post("/api/ai/chat/", &request)
        .await;
    assert_eq!(ok.status, 200);
    let history = me.get("/api/ai/usage/history/").await;
    assert_eq!(history.body["data"]["pagination"]["total"], 2);
    app.stop().await;
}

/// Each call's worst case is held against the balance in the database while it runs, so calls admitted
/// at once by two servers of one installation see each other: with the credit for one call's worst case
/// and not two, one of six calls sent at once to both servers runs, and the balance stays above zero.
async fn calls_in_flight_on_two_servers_never_spend_more_than_the_balance(db: Db) {
    const LARGE: &str = "barrack-sim-large";
    let app = TestApp::start(db).await;
    let other = app.replica().await;
    // Slow enough (a first token after 300 ms) that the calls overlap.
    let model = app.services().config().ai.model(LARGE).unwrap().clone();
    let prices = (
        model.prices.input[&barrack_api::Currency::USD].0,
        model.prices.output[&barrack_api::Currency::USD].0,
    );
    let text = "word ".repeat(20_000);
    let max_tokens = 4_000u64;
    let worst = from_micros(cost_micros(prices, prompt_tokens(&text), max_tokens));
    assert!(worst > d("0.015") && worst < d("0.03"), "{worst}");
    let (_, id, key) = app.funded_user_with_key(Tier::Advanced, "US", "0.03").await;
    let request =
        json!({"model": LARGE, "messages": user_message(&text), "max_tokens": max_tokens});
    let other_url = format!("http://{}", other.addr);
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let base = if i % 2 == 0 {
                &app.base_url
            } else {
                &other_url
            };
            let me = Caller::new(base, &key);
            let request = request.clone();
            tokio::spawn(async move { me.post("/api/ai/chat/", &request).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 402, 402, 402, 402, 402]);
    let me = Caller::new(&app.base_url, &key);
    assert!(me.balance().await >= Decimal::ZERO);
    balance_equals_ledger(&app, &id).await;
    // Settled calls let their holds go: the rest of the credit is there for a small call.
    let small = me
        .post(
            "/api/ai/chat/",
            &json!({"model": SMALL, "messages": user_message("Hi"), "max_tokens": 10}),
        )
        .await;
    assert_eq!(small.status, 200, "{}", small.body);
    other.shutdown().await;
    app.stop().await;
}
