//! AI chat over HTTP: calls billed by tokens from the ledger, usage, streaming, limits, bad input, and the
//! `openai` backend proxying to a second, real `barrackd`. Each topic has its file under `ai/`; the helpers
//! they share are here.

mod calls;
mod sdk;
mod streams;
mod upstream;

use barrack_core::ai::tokenizer;
use barrack_core::config::Config;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::TestApp;

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
