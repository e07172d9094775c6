//! Streamed calls: chunks, usage, and a stream the client abandons charged for what was sent.

use std::time::Duration;

use barrack_api::Tier;
use barrack_core::ai::{cost_micros, tokenizer};
use barrack_core::money::from_micros;
use futures::StreamExt;
use serde_json::json;

use super::*;
use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    streams_deliver_chunks_and_charge_what_they_delivered,
    a_stream_the_client_abandons_is_charged_for_what_was_sent,
);

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
