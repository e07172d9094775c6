//! AI chat over HTTP: calls billed by tokens from the ledger, usage, streaming, limits, bad input, and the
//! `openai` backend proxying to a second, real `barrackd`.

use std::time::Duration;

use barrack_api::Tier;
use barrack_core::ai::{cost_micros, tokenizer};
use barrack_core::config::Config;
use barrack_core::money::from_micros;
use futures::StreamExt;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::process::{ServerProcess, spawn};
use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    chat_is_charged_tokens_times_price_and_the_balance_equals_the_ledger,
    streams_deliver_chunks_and_charge_what_they_delivered,
    bad_input_is_refused_in_the_right_shape_and_costs_nothing,
    a_stream_the_client_abandons_is_charged_for_what_was_sent,
    calls_per_minute_are_limited_per_key,
    an_upstream_stream_is_read_whatever_its_reads_and_an_error_part_ends_it,
);

const SMALL: &str = "barrack-sim-small";

/// Simulated models answer at once in tests.
fn instant_models(config: &mut Config) {
    for model in &mut config.ai.models {
        model.first_token_ms = 0;
        model.tokens_per_second = 0;
    }
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// An account's raw HTTP access with its API key.
struct Caller {
    http: reqwest::Client,
    base: String,
    key: String,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Caller {
    fn new(base: &str, key: &str) -> Caller {
        Caller {
            http: crate::common::http_client(),
            base: base.to_string(),
            key: key.to_string(),
        }
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{status} answered with no JSON: {text}"));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("X-API-Key", &self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        Caller::answer(response).await
    }

    /// The SDKs' way: the key as a bearer token.
    async fn post_bearer(&self, path: &str, body: &Value) -> Answer {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        Caller::answer(response).await
    }

    async fn get(&self, path: &str) -> Answer {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("X-API-Key", &self.key)
            .send()
            .await
            .unwrap();
        Caller::answer(response).await
    }

    /// Every `data:` of a streamed call, as JSON (`[DONE]` as the string "[DONE]").
    async fn stream(&self, path: &str, body: &Value) -> Vec<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        events(&response.text().await.unwrap())
    }

    async fn balance(&self) -> Decimal {
        let answer = self.get("/api/balance/").await;
        answer.body["data"]["balance"].to_string().parse().unwrap()
    }
}

fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.into())))
        .collect()
}

fn user_message(text: &str) -> Value {
    json!([{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}])
}

/// Prompt tokens of [`user_message`], as the tokenizer counts them.
fn prompt_tokens(text: &str) -> u64 {
    let messages: Vec<barrack_api::ai::ChatMessage> =
        serde_json::from_value(user_message(text)).unwrap();
    tokenizer::count_messages(&messages)
}

/// The small model's USD prices per million tokens.
fn small_prices(app: &TestApp) -> (Decimal, Decimal) {
    let model = app.services().config().ai.model(SMALL).unwrap().clone();
    (
        model.prices.input[&barrack_api::Currency::USD].0,
        model.prices.output[&barrack_api::Currency::USD].0,
    )
}

async fn balance_equals_ledger(app: &TestApp, account_id: &str) {
    let store = app.services().store();
    let balances = store.balances(account_id).await.unwrap();
    for (currency, micros) in balances {
        assert_eq!(
            store.ledger_sum(account_id, &currency).await.unwrap(),
            micros,
            "{currency} balance"
        );
    }
}

fn dec(v: &Value) -> Decimal {
    v.to_string().parse().unwrap()
}

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

async fn streams_deliver_chunks_and_charge_what_they_delivered(db: Db) {
    let app = TestApp::start_with(db, instant_models).await;
    let (_, id, key) = app.funded_user_with_key(Tier::Legacy, "US", "10").await;
    let me = Caller::new(&app.base_url, &key);
    let request = json!({"model": SMALL, "messages": user_message("Stream please"), "max_tokens": 25,
                         "stream": true, "stream_options": {"include_usage": true}});
    let events = me.stream("/v1/chat/completions", &request).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks = &events[..events.len() - 1];
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str())
        .unwrap();
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));
    let (input, output) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!(output, tokenizer::count(&content));
    assert!(output <= 25);
    assert_eq!(finish == "length", output == 25);

    // The same call without streaming has the same reply.
    let whole = me
        .post(
            "/api/ai/chat/",
            &json!({"model": SMALL, "messages": user_message("Stream please"), "max_tokens": 25}),
        )
        .await;
    assert_eq!(
        whole.body["data"]["choices"][0]["message"]["content"],
        content.as_str()
    );

    let cost = from_micros(cost_micros(small_prices(&app), input, output));
    assert_eq!(me.balance().await, d("10") - cost - cost);
    let history = me.get("/api/ai/usage/history/").await;
    let calls = history.body["data"]["transactions"].as_array().unwrap();
    let streamed = calls.iter().find(|c| c["stream"] == true).unwrap();
    assert_eq!(streamed["output_tokens"].as_u64(), Some(output));
    assert_eq!(dec(&streamed["cost"]), cost);

    // Barrack's own endpoint streams too; without include_usage there is no usage chunk.
    let events = me
        .stream(
            "/api/ai/chat/",
            &json!({"model": SMALL, "messages": user_message("Stream please"), "max_tokens": 25, "stream": true}),
        )
        .await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|c| c["usage"].is_null())
    );
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
    let refused = poor
        .post_bearer(
            "/v1/chat/completions",
            &json!({"model": SMALL, "messages": messages}),
        )
        .await;
    assert_eq!(refused.status, 402);
    assert_eq!(refused.body["error"]["type"], "insufficient_quota");
    balance_equals_ledger(&app, &id).await;
    app.stop().await;
}

async fn a_stream_the_client_abandons_is_charged_for_what_was_sent(db: Db) {
    let app = TestApp::start_with(db, |config| {
        for model in &mut config.ai.models {
            model.first_token_ms = 0;
            model.tokens_per_second = 50;
        }
    })
    .await;
    let (_, id, key) = app.funded_user_with_key(Tier::Advanced, "US", "10").await;
    let me = Caller::new(&app.base_url, &key);
    let response = me
        .http
        .post(format!("{}/v1/chat/completions", app.base_url))
        .bearer_auth(&key)
        .json(
            &json!({"model": SMALL, "messages": user_message("A long answer"), "max_tokens": 2000,
                      "stream": true, "seed": 7}),
        )
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut received = String::new();
    while events(&received).len() < 4 {
        received.push_str(std::str::from_utf8(&body.next().await.unwrap().unwrap()).unwrap());
    }
    drop(body);

    // The call is settled as cancelled once the server notices.
    let mut call = None;
    for _ in 0..100 {
        let history = me.get("/api/ai/usage/history/").await;
        if let Some(c) = history.body["data"]["transactions"].get(0) {
            call = Some(c.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let call = call.expect("the abandoned call is recorded");
    assert_eq!(call["status"], "cancelled");
    let output = call["output_tokens"].as_u64().unwrap();
    let whole = barrack_core::ai::sim::reply(&barrack_core::ai::backend::BackendRequest {
        model: SMALL.into(),
        messages: serde_json::from_value(user_message("A long answer")).unwrap(),
        max_tokens: 2000,
        temperature: None,
        top_p: None,
        stop: vec![],
        seed: Some(7),
        input_tokens: 0,
    })
    .0
    .len() as u64;
    assert!(output >= 3 && output < whole, "{output} of {whole} tokens");
    let input = call["input_tokens"].as_u64().unwrap();
    let cost = from_micros(cost_micros(small_prices(&app), input, output));
    assert_eq!(dec(&call["cost"]), cost);
    assert_eq!(me.balance().await, d("10") - cost);
    balance_equals_ledger(&app, &id).await;
    app.stop().await;
}

async fn calls_per_minute_are_limited_per_key(db: Db) {
    let app = TestApp::start_with(db, |config| {
        instant_models(config);
        config.ai.requests_per_minute = 2;
    })
    .await;
    let (_, _, key) = app.funded_user_with_key(Tier::Advanced, "US", "10").await;
    let me = Caller::new(&app.base_url, &key);
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

/// A `barrackd` process serving one slow simulated model, with a funded operator; returns it and its key.
async fn upstream(dir: &std::path::Path, tokens_per_second: u32) -> (ServerProcess, String) {
    let config = dir.join("barrack.toml");
    std::fs::write(
        &config,
        format!(
            "[ai]\nrequests_per_minute = 0\ntokens_per_minute = 0\nupstream_timeout_seconds = 60\n\n\
             [[ai.models]]\nid = \"{SMALL}\"\ndescription = \"upstream\"\nbackend = \"sim\"\n\
             context_length = 8192\nmax_output_tokens = 2048\nfirst_token_ms = 0\n\
             tokens_per_second = {tokens_per_second}\n\
             prices.input = {{ USD = 0.10, EUR = 0.09, INR = 8 }}\n\
             prices.output = {{ USD = 0.30, EUR = 0.28, INR = 25 }}\n"
        ),
    )
    .unwrap();
    let server = spawn(
        &dir.join("data"),
        &dir.join("upstream.log"),
        &[("BARRACK_CONFIG", config.to_str().unwrap())],
    );
    let key = server
        .printed_key
        .clone()
        .expect("the first start prints a key");
    let http = crate::common::http_client();
    let profile: Value = http
        .get(format!("{}/api/account/profile/", server.url))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account = profile["data"]["id"].as_str().unwrap().to_string();
    let granted = http
        .post(format!(
            "{}/api/admin/accounts/{account}/credits/",
            server.url
        ))
        .header("X-API-Key", &key)
        .json(&json!({"amount": "100.00", "currency": "USD"}))
        .send()
        .await
        .unwrap();
    assert!(
        granted.status().is_success(),
        "{}",
        granted.text().await.unwrap()
    );
    (server, key)
}

/// A gateway whose model `proxied` is the upstream's small model, through the `openai` backend.
async fn gateway(db: Db, upstream_url: &str, key_file: &std::path::Path) -> TestApp {
    let url = format!("{upstream_url}/v1");
    let key_file = key_file.to_path_buf();
    TestApp::start_with(db, move |config| {
        instant_models(config);
        let mut proxied = config.ai.model(SMALL).unwrap().clone();
        proxied.id = "proxied".into();
        proxied.backend = barrack_core::ai::config::ModelBackendKind::Openai;
        proxied.base_url = Some(url);
        proxied.api_key_file = Some(key_file);
        proxied.upstream_model = Some(SMALL.into());
        config.ai.models.push(proxied);
        config.ai.upstream_timeout_seconds = 5;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_backend_proxies_a_second_barrackd_and_a_killed_upstream_costs_only_what_was_delivered()
 {
    let dir = std::env::temp_dir().join(format!("barrack-ai-upstream-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (server, upstream_key) = upstream(&dir, 40).await;
    let key_file = dir.join("upstream-key");
    std::fs::write(&key_file, format!("{upstream_key}\n")).unwrap();
    let app = gateway(Db::Sqlite, &server.url, &key_file).await;
    let (_, id, key) = app.funded_user_with_key(Tier::Advanced, "US", "10").await;
    let me = Caller::new(&app.base_url, &key);
    let upstream = Caller::new(&server.url, &upstream_key);
    let prices = small_prices(&app);

    // Through the gateway, the same reply as the upstream gives directly, charged by the upstream's usage.
    let ask = |model: &str| json!({"model": model, "messages": user_message("Proxy me"), "max_tokens": 12});
    let direct = upstream
        .post_bearer("/v1/chat/completions", &ask(SMALL))
        .await;
    assert_eq!(direct.status, 200, "{}", direct.body);
    let proxied = me.post("/api/ai/chat/", &ask("proxied")).await;
    assert_eq!(proxied.status, 200, "{}", proxied.body);
    let reply = &proxied.body["data"];
    assert_eq!(
        reply["choices"][0]["message"],
        direct.body["choices"][0]["message"]
    );
    assert_eq!(reply["usage"], direct.body["usage"]);
    assert_eq!(reply["model"], "proxied");
    let (input, output) = (
        reply["usage"]["prompt_tokens"].as_u64().unwrap(),
        reply["usage"]["completion_tokens"].as_u64().unwrap(),
    );
    let cost = from_micros(cost_micros(prices, input, output));
    assert_eq!(dec(&reply["billing"]["cost"]), cost);

    // Streams pass through.
    let mut streamed_request = ask("proxied");
    streamed_request["stream"] = json!(true);
    streamed_request["stream_options"] = json!({"include_usage": true});
    let streamed = me.stream("/v1/chat/completions", &streamed_request).await;
    assert_eq!(streamed.last().unwrap(), "[DONE]");
    let content: String = streamed
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        content,
        direct.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
    );
    assert_eq!(me.balance().await, d("10") - cost - cost);

    // The upstream dies mid-stream: the client gets an error event, and pays for what it received.
    let response = me
        .http
        .post(format!("{}/v1/chat/completions", app.base_url))
        .bearer_auth(&key)
        .json(
            &json!({"model": "proxied", "messages": user_message("A long one"), "max_tokens": 1500,
                      "stream": true}),
        )
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut body = response.bytes_stream();
    let mut received = String::new();
    while events_of(&received) < 4 {
        received.push_str(std::str::from_utf8(&body.next().await.unwrap().unwrap()).unwrap());
    }
    server.kill();
    while let Some(Ok(bytes)) = body.next().await {
        received.push_str(std::str::from_utf8(&bytes).unwrap());
    }
    let received = events(&received);
    let last = received.last().unwrap();
    assert_eq!(last["error"]["type"], "api_error", "{last}");
    assert_eq!(last["error"]["code"], "upstream_error");
    let delivered: String = received
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    let history = me.get("/api/ai/usage/history/").await;
    let failed = history.body["data"]["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["request_id"] == request_id.as_str())
        .expect("the broken-off call is in the history")
        .clone();
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["output_tokens"].as_u64(),
        Some(tokenizer::count(&delivered))
    );
    let failed_cost = from_micros(cost_micros(
        prices,
        failed["input_tokens"].as_u64().unwrap(),
        tokenizer::count(&delivered),
    ));
    assert_eq!(dec(&failed["cost"]), failed_cost);
    assert_eq!(me.balance().await, d("10") - cost - cost - failed_cost);

    // With the upstream gone: 502 in either shape, nothing charged.
    let gone = me.post("/api/ai/chat/", &ask("proxied")).await;
    assert_eq!(gone.status, 502, "{}", gone.body);
    assert_eq!(gone.body["code"], "UPSTREAM_ERROR");
    let gone = me
        .post_bearer("/v1/chat/completions", &ask("proxied"))
        .await;
    assert_eq!(gone.status, 502);
    assert_eq!(gone.body["error"]["type"], "api_error");
    assert_eq!(me.balance().await, d("10") - cost - cost - failed_cost);
    balance_equals_ledger(&app, &id).await;
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn events_of(text: &str) -> usize {
    events(text).len()
}

/// OpenAI's official Python client (`scripts/setup/ai.sh`) lists models and completes a chat, whole and
/// streamed, against `/v1`; the usage it reports is the ledger's and the history's. Runs when
/// `BARRACK_TEST_PYTHON=1`, as the contract suite does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_client_completes_and_streams() {
    let suite = "the openai client suite";
    if std::env::var("BARRACK_TEST_PYTHON").as_deref() != Ok("1") {
        crate::common::skipped(
            "python",
            suite,
            "set BARRACK_TEST_PYTHON=1 (and run scripts/setup/ai.sh) to run it",
        );
        return;
    }
    crate::common::ran("python", suite);
    let importable = std::process::Command::new("python3")
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        importable,
        "BARRACK_TEST_PYTHON=1 but python3 cannot import openai: run scripts/setup/ai.sh"
    );
    let app = TestApp::start_serving(Db::Sqlite, instant_models).await;
    let (_, id, key) = app.funded_user_with_key(Tier::Advanced, "US", "10").await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/ai/openai_client.py");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(&script)
            .env("BARRACK_URL", &app.base_url)
            .env("BARRACK_API_KEY", &key)
            .env("BARRACK_MODEL", SMALL)
            .output(),
    )
    .await
    .expect("the openai client finishes in 2 minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "the openai client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let steps: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name} in:\n{stdout}"))
            .clone()
    };
    let ids = step("models")["ids"].clone();
    assert_eq!(ids, json!([SMALL, "barrack-sim-large"]));
    let completion = step("completion");
    let streamed = step("stream");
    assert_eq!(completion["content"], streamed["content"]);
    assert_eq!(
        completion["prompt_tokens"].as_u64(),
        Some(prompt_tokens_of_sdk_messages())
    );
    assert_eq!(
        completion["completion_tokens"].as_u64(),
        Some(tokenizer::count(completion["content"].as_str().unwrap()))
    );
    assert_eq!(step("unknown_model")["status"], 404);
    assert_eq!(step("empty_messages")["status"], 400);
    assert_eq!(step("empty_messages")["param"], "messages");

    // What the client reported is what the history and the ledger hold.
    let me = Caller::new(&app.base_url, &key);
    let history = me.get("/api/ai/usage/history/").await;
    let calls = history.body["data"]["transactions"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(calls.len(), 2);
    let mut charged = Decimal::ZERO;
    for reported in [&completion, &streamed] {
        let request_id = reported["id"]
            .as_str()
            .unwrap()
            .trim_start_matches("chatcmpl-");
        let call = calls
            .iter()
            .find(|c| c["request_id"] == request_id)
            .unwrap_or_else(|| panic!("no call {request_id} in the history"));
        assert_eq!(call["input_tokens"], reported["prompt_tokens"]);
        assert_eq!(call["output_tokens"], reported["completion_tokens"]);
        let cost = from_micros(cost_micros(
            small_prices(&app),
            call["input_tokens"].as_u64().unwrap(),
            call["output_tokens"].as_u64().unwrap(),
        ));
        assert_eq!(dec(&call["cost"]), cost);
        charged += cost;
    }
    assert_eq!(me.balance().await, d("10") - charged);
    balance_equals_ledger(&app, &id).await;
    app.stop().await;
}

fn prompt_tokens_of_sdk_messages() -> u64 {
    let messages: Vec<barrack_api::ai::ChatMessage> = serde_json::from_value(json!([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is a GPU?"},
    ]))
    .unwrap();
    tokenizer::count_messages(&messages)
}

/// An upstream that accepts the connection and never answers: 504 in either shape, nothing charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_does_not_answer_in_time_is_a_504() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            connections.push(socket);
        }
    });
    let app = TestApp::start_with(Db::Sqlite, move |config| {
        let mut stalled = config.ai.model(SMALL).unwrap().clone();
        stalled.id = "stalled".into();
        stalled.backend = barrack_core::ai::config::ModelBackendKind::Openai;
        stalled.base_url = Some(url);
        config.ai.models.push(stalled);
        config.ai.upstream_timeout_seconds = 1;
    })
    .await;
    let (_, id, key) = app.funded_user_with_key(Tier::Advanced, "US", "10").await;
    let me = Caller::new(&app.base_url, &key);
    let ask = json!({"model": "stalled", "messages": user_message("hello?")});
    let timed_out = me.post("/api/ai/chat/", &ask).await;
    assert_eq!(timed_out.status, 504, "{}", timed_out.body);
    assert_eq!(timed_out.body["code"], "UPSTREAM_TIMEOUT");
    let timed_out = me.post_bearer("/v1/chat/completions", &ask).await;
    assert_eq!(timed_out.status, 504);
    assert_eq!(timed_out.body["error"]["code"], "upstream_timeout");
    assert_eq!(me.balance().await, d("10"));
    let history = me.get("/api/ai/usage/history/").await;
    let calls = history.body["data"]["transactions"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(
        calls
            .iter()
            .all(|c| c["status"] == "failed" && dec(&c["cost"]).is_zero())
    );
    balance_equals_ledger(&app, &id).await;
    app.stop().await;
    held.abort();
}

/// An upstream that answers every call with `pieces`, written one by one with a pause between, so the
/// gateway reads lines split across reads and several lines in one read; its address is returned.
async fn scripted_upstream(pieces: Vec<&'static str>) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let served = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let pieces = pieces.clone();
            tokio::spawn(async move {
                // The request: its head, then as many bytes as its Content-Length says.
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if request.len() >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                for piece in pieces {
                    let _ = socket.write_all(piece.as_bytes()).await;
                    let _ = socket.flush().await;
                    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                }
            });
        }
    });
    (url, served)
}

async fn an_upstream_stream_is_read_whatever_its_reads_and_an_error_part_ends_it(db: Db) {
    let finished = vec![
        "data: {\"id\":\"u\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\
         \"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\ndata: {\"choices\":\
         [{\"index\":0,\"delta\":{\"content\":\"Hel",
        "lo\"},\"finish_reason\":null}]}\n",
        "\ndata: {\"choices\":[{\"delta\":{\"content\":\" world\",\"refusal\":null},\"logprobs\":null,\
         \"finish_reason\":\"length\"}],\"system_fingerprint\":\"x\"}\n\n: a comment\n\ndata: {\"choices\":[],\
         \"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\ndata: [DO",
        "NE]\n\n",
    ];
    let broken = vec![
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"}}]}\n\ndata: {\"error\":\
         {\"message\":\"the model is overloaded\"}}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\" more\"}}]}\n\n",
    ];
    let (finished_url, finished_upstream) = scripted_upstream(finished).await;
    let (broken_url, broken_upstream) = scripted_upstream(broken).await;
    let app = TestApp::start_with(db, move |config| {
        for (id, url) in [("finished", finished_url), ("broken", broken_url)] {
            let mut model = config.ai.model(SMALL).unwrap().clone();
            model.id = id.into();
            model.backend = barrack_core::ai::config::ModelBackendKind::Openai;
            model.base_url = Some(url);
            config.ai.models.push(model);
        }
        config.ai.upstream_timeout_seconds = 5;
    })
    .await;
    let (_, id, key) = app.funded_user_with_key(Tier::Advanced, "US", "10").await;
    let me = Caller::new(&app.base_url, &key);
    let prices = small_prices(&app);

    // Split lines, lines sharing a read, fields the gateway does not read, a comment, a usage part with
    // no choices: the reply and the upstream's usage arrive whole, and the usage is what is charged.
    let ask =
        |model: &str| json!({"model": model, "messages": user_message("hi"), "max_tokens": 20});
    let whole = me.post("/api/ai/chat/", &ask("finished")).await;
    assert_eq!(whole.status, 200, "{}", whole.body);
    let reply = &whole.body["data"];
    assert_eq!(reply["choices"][0]["message"]["content"], "Hello world");
    assert_eq!(reply["choices"][0]["finish_reason"], "length");
    assert_eq!(reply["usage"]["prompt_tokens"], 7);
    assert_eq!(reply["usage"]["completion_tokens"], 2);
    let cost = from_micros(cost_micros(prices, 7, 2));
    assert_eq!(dec(&reply["billing"]["cost"]), cost);

    // An error part ends the call, and nothing after it is read: a whole reply is a 502 and costs
    // nothing; a stream delivers what came before the error, then the error, and pays for that.
    let failed = me.post("/api/ai/chat/", &ask("broken")).await;
    assert_eq!(failed.status, 502, "{}", failed.body);
    assert!(
        failed.body["message"]
            .as_str()
            .unwrap()
            .contains("the model is overloaded"),
        "{}",
        failed.body
    );
    assert_eq!(me.balance().await, d("10") - cost);
    let mut streamed_request = ask("broken");
    streamed_request["stream"] = json!(true);
    let streamed = me.stream("/v1/chat/completions", &streamed_request).await;
    let delivered: String = streamed
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(delivered, "Hello world");
    assert_eq!(streamed.last().unwrap()["error"]["code"], "upstream_error");
    let charged = from_micros(cost_micros(
        prices,
        prompt_tokens("hi"),
        tokenizer::count("Hello world"),
    ));
    assert_eq!(me.balance().await, d("10") - cost - charged);
    balance_equals_ledger(&app, &id).await;
    app.stop().await;
    finished_upstream.abort();
    broken_upstream.abort();
}
