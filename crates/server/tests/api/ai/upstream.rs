//! The `openai` backend: a second, real `barrackd` proxied, an upstream that dies, stalls or answers in
//! odd reads.

use std::path::PathBuf;

use barrack_api::account::GrantCredits;
use barrack_api::{Currency, Tier};
use barrack_client::Client;
use barrack_core::ai::{cost_micros, tokenizer};
use barrack_core::money::from_micros;
use futures::StreamExt;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::*;
use crate::common::process::{ServerProcess, spawn};
use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    an_upstream_stream_is_read_whatever_its_reads_and_an_error_part_ends_it,
    a_whole_reply_is_asked_whole_upstream_charged_by_its_usage_and_a_failure_or_timeout_costs_nothing,
    a_whole_reply_without_usage_is_counted_and_an_error_body_costs_nothing,
    an_upstream_that_reports_more_than_the_call_was_admitted_for_is_charged_at_most_that,
);

/// A `barrackd` process serving one slow simulated model, with a funded operator, in a folder of its own
/// that also holds its log and a file with its key.
struct Upstream {
    dir: PathBuf,
    server: Option<ServerProcess>,
    url: String,
    key: String,
    key_file: PathBuf,
}

impl Upstream {
    async fn start(name: &str, tokens_per_second: u32) -> Upstream {
        let dir = std::env::temp_dir().join(format!("barrack-ai-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
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
        let operator = Client::builder(&server.url).api_key(&key).build().unwrap();
        let account = operator.profile().await.unwrap().data.id;
        let grant = GrantCredits {
            amount: "100.00".parse().unwrap(),
            currency: Currency::USD,
            note: None,
        };
        operator
            .admin_grant_credits(&account, &grant)
            .await
            .unwrap();
        let key_file = dir.join("upstream-key");
        std::fs::write(&key_file, format!("{key}\n")).unwrap();
        Upstream {
            dir,
            url: server.url.clone(),
            server: Some(server),
            key,
            key_file,
        }
    }

    /// The operator's raw HTTP access to the upstream itself.
    fn caller(&self) -> Caller {
        Caller::new(&self.url, &self.key)
    }

    /// A gateway model `id` that is the upstream's `upstream_model`, called with the upstream's key.
    fn route(&self, id: &'static str, upstream_model: &str) -> Route {
        Route {
            id,
            base_url: format!("{}/v1", self.url),
            api_key_file: Some(self.key_file.clone()),
            upstream_model: Some(upstream_model.into()),
        }
    }

    /// SIGKILL: the upstream dies wherever it is.
    fn kill(&mut self) {
        self.server.take().expect("running").kill();
    }

    /// Stops the process and removes its folder.
    fn remove(mut self) {
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A model of the gateway's that is the small model's copy, served through the `openai` backend by the
/// server at `base_url`.
struct Route {
    id: &'static str,
    base_url: String,
    api_key_file: Option<PathBuf>,
    upstream_model: Option<String>,
}

impl Route {
    /// A model `id` served by an upstream that needs no key and is asked for the model by its own name.
    fn to(id: &'static str, base_url: String) -> Route {
        Route {
            id,
            base_url,
            api_key_file: None,
            upstream_model: None,
        }
    }
}

/// A gateway serving its own models at once and `routes` through the `openai` backend, with an account
/// funded with 10 USD calling it.
struct Gateway {
    app: TestApp,
    account_id: String,
    key: String,
    me: Caller,
    prices: (Decimal, Decimal),
}

impl Gateway {
    /// A call posted as it is, with the request id the server answered with, the body left to read.
    async fn send(&self, path: &str, body: &Value) -> (reqwest::Response, String) {
        let response = self
            .me
            .http
            .post(format!("{}{path}", self.app.base_url))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        (response, request_id)
    }

    async fn start(db: Db, upstream_timeout_seconds: u64, routes: Vec<Route>) -> Gateway {
        let app = TestApp::start_with(db, move |config| {
            instant_models(config);
            for route in routes {
                let mut model = config.ai.model(SMALL).unwrap().clone();
                model.id = route.id.into();
                model.backend = barrack_core::ai::config::ModelBackendKind::Openai;
                model.base_url = Some(route.base_url);
                model.api_key_file = route.api_key_file;
                model.upstream_model = route.upstream_model;
                config.ai.models.push(model);
            }
            config.ai.upstream_timeout_seconds = upstream_timeout_seconds;
        })
        .await;
        let (_, account_id, key) = app.funded_user_with_key(Tier::Advanced, "US", "10").await;
        let me = Caller::new(&app.base_url, &key);
        let prices = small_prices(&app);
        Gateway {
            app,
            account_id,
            key,
            me,
            prices,
        }
    }

    /// Checks that the account's balance is the sum of its ledger, and stops the gateway.
    async fn stop(self) {
        balance_equals_ledger(&self.app, &self.account_id).await;
        self.app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_backend_proxies_a_second_barrackd_and_a_killed_upstream_costs_only_what_was_delivered()
 {
    let mut server = Upstream::start("upstream", 40).await;
    let gateway = Gateway::start(Db::Sqlite, 5, vec![server.route("proxied", SMALL)]).await;
    let (me, prices) = (&gateway.me, gateway.prices);
    let upstream = server.caller();

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
    let (response, request_id) = gateway
        .send(
            "/v1/chat/completions",
            &json!({"model": "proxied", "messages": user_message("A long one"), "max_tokens": 1500,
                      "stream": true}),
        )
        .await;
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
    // Streamed, the same 502 before any event, the envelope of the call's own request id.
    let (response, request_id) = gateway
        .send(
            "/api/ai/chat/",
            &json!({"model": "proxied", "messages": user_message("Hi"), "stream": true}),
        )
        .await;
    assert_eq!(response.status(), 502);
    let gone: Value = response.json().await.unwrap();
    assert_eq!(gone["code"], "UPSTREAM_ERROR", "{gone}");
    assert_eq!(gone["request_id"], request_id.as_str(), "{gone}");
    assert_eq!(me.balance().await, d("10") - cost - cost - failed_cost);
    gateway.stop().await;
    server.remove();
}

/// A call asked whole goes upstream whole (the upstream records it as not streamed) and is charged the
/// upstream's usage; the timeout covers the whole generation, where a stream's covers each part; an
/// upstream that refuses the call or does not finish in time costs nothing, in either error shape.
async fn a_whole_reply_is_asked_whole_upstream_charged_by_its_usage_and_a_failure_or_timeout_costs_nothing(
    db: Db,
) {
    // 10 tokens a second: 3 tokens take 0.3 s; a reply of 40 at most takes at least 1.3 s (the
    // simulated model's replies have 12 words or more).
    let server = Upstream::start(&format!("whole-{db:?}"), 10).await;
    let routes = vec![
        server.route("proxied", SMALL),
        server.route("unknown-upstream", "no-such-model"),
    ];
    let gateway = Gateway::start(db, 1, routes).await;
    let (me, prices) = (&gateway.me, gateway.prices);
    let upstream = server.caller();
    let ask = |model: &str, max_tokens: u32| {
        json!({"model": model, "messages": user_message("Whole, please"), "max_tokens": max_tokens,
               "seed": 7})
    };

    let direct = upstream
        .post_bearer("/v1/chat/completions", &ask(SMALL, 3))
        .await;
    assert_eq!(direct.status, 200, "{}", direct.body);
    let mut cost = Decimal::ZERO;
    for openai in [true, false] {
        let answer = if openai {
            me.post_bearer("/v1/chat/completions", &ask("proxied", 3))
                .await
        } else {
            me.post("/api/ai/chat/", &ask("proxied", 3)).await
        };
        assert_eq!(answer.status, 200, "{}", answer.body);
        let reply = if openai {
            &answer.body
        } else {
            &answer.body["data"]
        };
        assert_eq!(
            reply["choices"][0]["message"],
            direct.body["choices"][0]["message"]
        );
        assert_eq!(
            reply["choices"][0]["finish_reason"],
            direct.body["choices"][0]["finish_reason"]
        );
        assert_eq!(reply["usage"], direct.body["usage"]);
        let request_id = answer.headers["x-request-id"].to_str().unwrap();
        let history = me.get("/api/ai/usage/history/").await;
        let recorded = history.body["data"]["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["request_id"] == request_id)
            .expect("the call is in the history")
            .clone();
        assert_eq!(recorded["status"], "completed");
        assert_eq!(recorded["stream"], false);
        assert_eq!(recorded["input_tokens"], reply["usage"]["prompt_tokens"]);
        assert_eq!(
            recorded["output_tokens"],
            reply["usage"]["completion_tokens"]
        );
        let charged = from_micros(cost_micros(
            prices,
            reply["usage"]["prompt_tokens"].as_u64().unwrap(),
            reply["usage"]["completion_tokens"].as_u64().unwrap(),
        ));
        assert_eq!(dec(&recorded["cost"]), charged);
        cost += charged;
    }
    assert_eq!(me.balance().await, d("10") - cost);
    // The upstream was asked for whole replies: the direct call and the two proxied ones, none streamed.
    let upstream_calls = upstream.get("/api/ai/usage/history/").await;
    let upstream_calls = upstream_calls.body["data"]["transactions"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(upstream_calls.len(), 3, "{upstream_calls:?}");
    assert!(
        upstream_calls
            .iter()
            .all(|c| c["stream"] == false && c["status"] == "completed"),
        "{upstream_calls:?}"
    );

    // The upstream refuses the call (it serves no such model): 502 in either shape, nothing charged.
    let refused = me.post("/api/ai/chat/", &ask("unknown-upstream", 3)).await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert_eq!(refused.body["code"], "UPSTREAM_ERROR");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("no-such-model"),
        "{}",
        refused.body
    );
    let refused = me
        .post_bearer("/v1/chat/completions", &ask("unknown-upstream", 3))
        .await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert_eq!(refused.body["error"]["type"], "api_error");
    assert_eq!(refused.body["error"]["code"], "upstream_error");

    // Longer than the 1 s timeout: whole, that is a 504 costing nothing; streamed, each part comes well
    // within it, so the same call completes.
    let slow = me.post("/api/ai/chat/", &ask("proxied", 40)).await;
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert_eq!(slow.body["code"], "UPSTREAM_TIMEOUT");
    let slow = me
        .post_bearer("/v1/chat/completions", &ask("proxied", 40))
        .await;
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert_eq!(slow.body["error"]["code"], "upstream_timeout");
    assert_eq!(me.balance().await, d("10") - cost);
    let history = me.get("/api/ai/usage/history/").await;
    let calls = history.body["data"]["transactions"].as_array().unwrap();
    assert_eq!(calls.len(), 6);
    assert_eq!(
        calls
            .iter()
            .filter(|c| c["status"] == "failed" && dec(&c["cost"]).is_zero())
            .count(),
        4,
        "{calls:?}"
    );
    let mut streamed_request = ask("proxied", 40);
    streamed_request["stream"] = json!(true);
    let streamed = me.stream("/v1/chat/completions", &streamed_request).await;
    assert_eq!(streamed.last().unwrap(), "[DONE]");
    gateway.stop().await;
    server.remove();
}

/// An upstream nobody listens at: a streamed call is a 502 in either shape, as a whole call is, before
/// any event, and costs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_to_an_unreachable_upstream_is_a_502_before_any_event() {
    // A port just freed: the connection is refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let gateway = Gateway::start(Db::Sqlite, 1, vec![Route::to("gone", url)]).await;
    let me = &gateway.me;
    let ask = json!({"model": "gone", "messages": user_message("hello?"), "stream": true});
    let refused = me.post("/api/ai/chat/", &ask).await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert_eq!(refused.body["code"], "UPSTREAM_ERROR");
    let refused = me.post_bearer("/v1/chat/completions", &ask).await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert_eq!(refused.body["error"]["type"], "api_error");
    assert_eq!(refused.body["error"]["code"], "upstream_error");
    assert_eq!(me.balance().await, d("10"));
    let history = me.get("/api/ai/usage/history/").await;
    let calls = history.body["data"]["transactions"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|c| c["status"] == "failed" && c["stream"] == true && dec(&c["cost"]).is_zero()),
        "{calls:?}"
    );
    gateway.stop().await;
}

/// Reads a request off `socket`: its head, then as many bytes as its Content-Length says; false when the
/// connection closes first.
async fn read_request(socket: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = socket.read(&mut buffer).await.unwrap_or(0);
        if n == 0 {
            return false;
        }
        request.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&request).to_lowercase();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if request.len() >= head_end + 4 + length {
                return true;
            }
        }
    }
}

/// An upstream that answers every call with `body` as `content_type`, at once; its address is returned.
async fn whole_upstream(
    content_type: &'static str,
    body: &'static str,
) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let served = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                if !read_request(&mut socket).await {
                    return;
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, served)
}

/// An upstream that answers every call with a redirect to `location`; its address is returned.
async fn redirecting_upstream(location: String) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let served = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let location = location.clone();
            tokio::spawn(async move {
                if !read_request(&mut socket).await {
                    return;
                }
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\n\
                     content-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, served)
}

async fn a_whole_reply_without_usage_is_counted_and_an_error_body_costs_nothing(db: Db) {
    let (plain_url, plain) = whole_upstream(
        "application/json",
        "{\"id\":\"u\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":\
         {\"role\":\"assistant\",\"content\":\"Hello there world\",\"refusal\":null},\
         \"logprobs\":null,\"finish_reason\":\"length\"}]}",
    )
    .await;
    let (error_url, error) = whole_upstream(
        "application/json",
        "{\"error\":{\"message\":\"the model is overloaded\",\"type\":\"server_error\"}}",
    )
    .await;
    let (garbled_url, garbled) = whole_upstream("application/json", "{\"choices\": [").await;
    // A redirect to an upstream that would answer is not followed.
    let (redirect_url, redirect) =
        redirecting_upstream(format!("{plain_url}/chat/completions")).await;
    let routes = vec![
        Route::to("plain", plain_url),
        Route::to("erring", error_url),
        Route::to("garbled", garbled_url),
        Route::to("redirected", redirect_url),
    ];
    let gateway = Gateway::start(db, 5, routes).await;
    let (me, prices) = (&gateway.me, gateway.prices);
    let ask = say_hi;

    // No usage in the reply: the gateway counts the prompt and the reply with its tokenizer.
    let whole = me.post("/api/ai/chat/", &ask("plain")).await;
    assert_eq!(whole.status, 200, "{}", whole.body);
    let reply = &whole.body["data"];
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "Hello there world"
    );
    assert_eq!(reply["choices"][0]["finish_reason"], "length");
    let (input, output) = (prompt_tokens("hi"), tokenizer::count("Hello there world"));
    assert_eq!(reply["usage"]["prompt_tokens"], input);
    assert_eq!(reply["usage"]["completion_tokens"], output);
    let cost = from_micros(cost_micros(prices, input, output));
    assert_eq!(dec(&reply["billing"]["cost"]), cost);

    // An error body with status 200, and a body that is not a completion: 502 in either shape, free.
    let failed = me.post("/api/ai/chat/", &ask("erring")).await;
    assert_eq!(failed.status, 502, "{}", failed.body);
    assert!(
        failed.body["message"]
            .as_str()
            .unwrap()
            .contains("the model is overloaded"),
        "{}",
        failed.body
    );
    let failed = me
        .post_bearer("/v1/chat/completions", &ask("garbled"))
        .await;
    assert_eq!(failed.status, 502, "{}", failed.body);
    assert_eq!(failed.body["error"]["code"], "upstream_error");
    let redirected = me.post("/api/ai/chat/", &ask("redirected")).await;
    assert_eq!(redirected.status, 502, "{}", redirected.body);
    assert!(
        redirected.body["message"].as_str().unwrap().contains("307"),
        "{}",
        redirected.body
    );
    assert_eq!(me.balance().await, d("10") - cost);
    gateway.stop().await;
    plain.abort();
    error.abort();
    garbled.abort();
    redirect.abort();
}

async fn an_upstream_that_reports_more_than_the_call_was_admitted_for_is_charged_at_most_that(
    db: Db,
) {
    // Usage far beyond the call's max_tokens (and a prompt larger than the gateway counted), whole and
    // streamed.
    let (whole_url, whole) = whole_upstream(
        "application/json",
        "{\"id\":\"u\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":\
         {\"role\":\"assistant\",\"content\":\" word\"},\"finish_reason\":\"stop\"}],\
         \"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":50000000,\"total_tokens\":50001000}}",
    )
    .await;
    let (streamed_url, streamed) = scripted_upstream(vec![
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" word\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\
         \"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":50000000,\"total_tokens\":50001000}}\n\n\
         data: [DONE]\n\n",
    ])
    .await;
    let routes = vec![
        Route::to("overreporting", whole_url),
        Route::to("overreporting-stream", streamed_url),
    ];
    let gateway = Gateway::start(db, 5, routes).await;
    let (me, prices) = (&gateway.me, gateway.prices);
    let ask = say_hi;
    let worst = from_micros(cost_micros(prices, prompt_tokens("hi"), 20));

    let reply = me.post("/api/ai/chat/", &ask("overreporting")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = &reply.body["data"];
    assert_eq!(reply["usage"]["prompt_tokens"], prompt_tokens("hi"));
    assert_eq!(reply["usage"]["completion_tokens"], 20);
    assert_eq!(dec(&reply["billing"]["cost"]), worst);
    assert_eq!(me.balance().await, d("10") - worst);

    let mut streamed_request = ask("overreporting-stream");
    streamed_request["stream"] = json!(true);
    streamed_request["stream_options"] = json!({"include_usage": true});
    let chunks = me.stream("/v1/chat/completions", &streamed_request).await;
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("a usage chunk");
    assert_eq!(usage["usage"]["completion_tokens"], 20, "{usage}");
    assert_eq!(me.balance().await, d("10") - worst - worst);
    let history = me.get("/api/ai/usage/history/").await;
    let calls = history.body["data"]["transactions"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(
        calls
            .iter()
            .all(|c| c["output_tokens"] == 20 && dec(&c["cost"]) == worst),
        "{calls:?}"
    );
    gateway.stop().await;
    whole.abort();
    streamed.abort();
}

/// A call of `model` saying "hi", with a reply of 20 tokens at most.
fn say_hi(model: &str) -> Value {
    json!({"model": model, "messages": user_message("hi"), "max_tokens": 20})
}

fn events_of(text: &str) -> usize {
    events(text).len()
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
    let gateway = Gateway::start(Db::Sqlite, 1, vec![Route::to("stalled", url)]).await;
    let me = &gateway.me;
    let ask = json!({"model": "stalled", "messages": user_message("hello?")});
    let timed_out = me.post("/api/ai/chat/", &ask).await;
    assert_eq!(timed_out.status, 504, "{}", timed_out.body);
    assert_eq!(timed_out.body["code"], "UPSTREAM_TIMEOUT");
    let timed_out = me.post_bearer("/v1/chat/completions", &ask).await;
    assert_eq!(timed_out.status, 504);
    assert_eq!(timed_out.body["error"]["code"], "upstream_timeout");
    // Streamed, the same: the answer waits for the upstream's first event, so the client gets the 504
    // rather than a 200 whose only event is the error.
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let timed_out = me.post("/api/ai/chat/", &streamed).await;
    assert_eq!(timed_out.status, 504, "{}", timed_out.body);
    assert_eq!(timed_out.body["code"], "UPSTREAM_TIMEOUT");
    let timed_out = me.post_bearer("/v1/chat/completions", &streamed).await;
    assert_eq!(timed_out.status, 504, "{}", timed_out.body);
    assert_eq!(timed_out.body["error"]["code"], "upstream_timeout");
    assert_eq!(me.balance().await, d("10"));
    let history = me.get("/api/ai/usage/history/").await;
    let calls = history.body["data"]["transactions"].as_array().unwrap();
    assert_eq!(calls.len(), 4);
    assert!(
        calls
            .iter()
            .all(|c| c["status"] == "failed" && dec(&c["cost"]).is_zero())
    );
    gateway.stop().await;
    held.abort();
}

/// An upstream that answers every call with `pieces`, written one by one with a pause between, so the
/// gateway reads lines split across reads and several lines in one read; its address is returned.
async fn scripted_upstream(pieces: Vec<&'static str>) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let served = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let pieces = pieces.clone();
            tokio::spawn(async move {
                if !read_request(&mut socket).await {
                    return;
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
    let routes = vec![
        Route::to("finished", finished_url),
        Route::to("broken", broken_url),
    ];
    let gateway = Gateway::start(db, 5, routes).await;
    let (me, prices) = (&gateway.me, gateway.prices);

    // Split lines, lines sharing a read, fields the gateway does not read, a comment, a usage part with
    // no choices: the reply and the upstream's usage arrive whole, and the usage is what is charged.
    let ask = say_hi;
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
    // Through /api/ai/chat/ the error that ends the stream is the envelope of the call's request id (the
    // stream runs after the handler's request context ended).
    let (response, request_id) = gateway.send("/api/ai/chat/", &streamed_request).await;
    assert_eq!(response.status(), 200);
    let streamed = events(&response.text().await.unwrap());
    let last = streamed.last().unwrap();
    assert_eq!(last["code"], "UPSTREAM_ERROR", "{last}");
    assert_eq!(last["request_id"], request_id.as_str(), "{last}");
    assert_eq!(me.balance().await, d("10") - cost - charged - charged);
    gateway.stop().await;
    finished_upstream.abort();
    broken_upstream.abort();
}
