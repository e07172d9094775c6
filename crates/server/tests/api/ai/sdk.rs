//! OpenAI's official Python client against `/v1`.

use std::time::Duration;

use barrack_api::Tier;
use barrack_core::ai::{cost_micros, tokenizer};
use barrack_core::money::from_micros;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::*;
use crate::common::{Db, TestApp};

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
