//! `barrack-bench ai`: what the AI gateway adds. Two release servers at the default log level: an upstream
//! serving a simulated model that answers at once, and a gateway whose `openai` backend points at it. Chat
//! calls at 8 clients go to the upstream directly and through the gateway in the same run, in rounds that
//! alternate which goes first, so a machine whose load changes during the run weighs on both alike; the
//! difference of their latencies is the gateway's cost (admission, tokenizer, reservation, the proxy hop,
//! settlement in the ledger). Then 1,000 streams are held open on the gateway and its resident memory is
//! read.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{Server, rss_mib, start_logging};

const CLIENTS: usize = 8;
const WINDOW: Duration = Duration::from_secs(5);
/// Rounds of direct and proxied calls; odd rounds call the gateway first.
const ROUNDS: usize = 4;
const STREAMS: usize = 1_000;

const LIMITS: &str = "[rate_limit]\nrequests = 0\nwindow_seconds = 60\n\n[ai]\nrequests_per_minute = 0\n\
                      tokens_per_minute = 0\nupstream_timeout_seconds = 60\n";

fn sim_model(id: &str, tokens_per_second: u32) -> String {
    format!(
        "\n[[ai.models]]\nid = \"{id}\"\ndescription = \"bench\"\nbackend = \"sim\"\ncontext_length = 8192\n\
         max_output_tokens = 2048\nfirst_token_ms = 0\ntokens_per_second = {tokens_per_second}\n\
         prices.input = {{ USD = 0.10, EUR = 0.09, INR = 8 }}\n\
         prices.output = {{ USD = 0.30, EUR = 0.28, INR = 25 }}\n"
    )
}

/// Gives the server's operator credits to call with.
async fn fund(http: &reqwest::Client, server: &Server) -> Result<()> {
    let profile: Value = http
        .get(format!("{}/api/account/profile/", server.url))
        .header("X-API-Key", &server.key)
        .send()
        .await?
        .json()
        .await?;
    let id = profile["data"]["id"].as_str().context("profile id")?;
    let granted = http
        .post(format!("{}/api/admin/accounts/{id}/credits/", server.url))
        .header("X-API-Key", &server.key)
        .json(&json!({"amount": "1000000", "currency": "USD"}))
        .send()
        .await?;
    if !granted.status().is_success() {
        bail!("granting credits: {}", granted.text().await?);
    }
    Ok(())
}

/// The latencies of one path's calls, sorted.
struct Latencies {
    calls: Vec<Duration>,
    elapsed: Duration,
}

impl Latencies {
    fn pct(&self, p: f64) -> Duration {
        let all = &self.calls;
        all[((all.len() as f64 * p) as usize).min(all.len() - 1)]
    }

    fn add(&mut self, other: Latencies) {
        self.calls.extend(other.calls);
        self.calls.sort();
        self.elapsed += other.elapsed;
    }

    fn line(&self, label: &str) -> String {
        format!(
            "chat, {CLIENTS} clients, {label:<24} {:>7.0} calls/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
            self.calls.len() as f64 / self.elapsed.as_secs_f64(),
            ms(self.pct(0.50)),
            ms(self.pct(0.99))
        )
    }
}

async fn chat_load(http: &reqwest::Client, url: &str, key: &str, model: &str) -> Result<Latencies> {
    let started = Instant::now();
    let body = Arc::new(json!({"model": model, "max_tokens": 16,
        "messages": [{"role": "user", "content": "Say something about GPUs"}]}));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (http, url, key, body) = (http.clone(), url.to_string(), key.to_string(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < WINDOW {
                let t = Instant::now();
                let response = http
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&*body)
                    .send()
                    .await?;
                let status = response.status();
                response.bytes().await?;
                if !status.is_success() {
                    bail!("chat: {status}");
                }
                latencies.push(t.elapsed());
            }
            Ok(latencies)
        }));
    }
    let mut calls = Vec::new();
    for task in tasks {
        calls.extend(task.await??);
    }
    let elapsed = started.elapsed();
    calls.sort();
    Ok(Latencies { calls, elapsed })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn run(dir: &Path) -> Result<()> {
    println!("\n== AI gateway (SQLite) ==");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(STREAMS + CLIENTS)
        .build()?;
    // Both at the default log level (`BARRACK_LOG` unset): a line per request, as in production.
    let upstream = start_logging(
        &dir.join("upstream"),
        None,
        &format!("{LIMITS}{}", sim_model("sim-instant", 0)),
        None,
        true,
    )?;
    let gateway_config = format!(
        "{LIMITS}{}{}\n[[ai.models]]\nid = \"proxied\"\ndescription = \"bench\"\nbackend = \"openai\"\n\
         base_url = \"{}/v1\"\napi_key_file = \"{}\"\nupstream_model = \"sim-instant\"\ncontext_length = 8192\n\
         max_output_tokens = 2048\nprices.input = {{ USD = 0.10, EUR = 0.09, INR = 8 }}\n\
         prices.output = {{ USD = 0.30, EUR = 0.28, INR = 25 }}\n",
        sim_model("sim-instant", 0),
        sim_model("sim-slow", 1),
        upstream.url,
        dir.join("upstream-key").display(),
    );
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("upstream-key"), &upstream.key)?;
    let gateway = start_logging(&dir.join("gateway"), None, &gateway_config, None, true)?;
    fund(&http, &upstream).await?;
    fund(&http, &gateway).await?;

    // Warm both paths (connections, the tokenizer's tables).
    chat_once(&http, &upstream.url, &upstream.key, "sim-instant").await?;
    chat_once(&http, &gateway.url, &gateway.key, "proxied").await?;

    let mut direct = Latencies {
        calls: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let mut proxied = Latencies {
        calls: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for round in 0..ROUNDS {
        let (d, p) = if round % 2 == 0 {
            let d = chat_load(&http, &upstream.url, &upstream.key, "sim-instant").await?;
            (
                d,
                chat_load(&http, &gateway.url, &gateway.key, "proxied").await?,
            )
        } else {
            let p = chat_load(&http, &gateway.url, &gateway.key, "proxied").await?;
            (
                chat_load(&http, &upstream.url, &upstream.key, "sim-instant").await?,
                p,
            )
        };
        println!(
            "round {} ({} first): added p50 {:+.2} ms, p99 {:+.2} ms",
            round + 1,
            if round % 2 == 0 { "direct" } else { "gateway" },
            ms(p.pct(0.50)) - ms(d.pct(0.50)),
            ms(p.pct(0.99)) - ms(d.pct(0.99)),
        );
        direct.add(d);
        proxied.add(p);
    }
    let local = chat_load(&http, &gateway.url, &gateway.key, "sim-instant").await?;
    println!("{}", direct.line("upstream directly"));
    println!("{}", proxied.line("through the gateway"));
    println!("{}", local.line("gateway's own sim model"));
    println!(
        "gateway added latency, all {ROUNDS} rounds: p50 {:+.2} ms, p99 {:+.2} ms (target: <= 1 ms at p50)",
        ms(proxied.pct(0.50)) - ms(direct.pct(0.50)),
        ms(proxied.pct(0.99)) - ms(direct.pct(0.99))
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("machine load average (1, 5, 15 min): {}", load.join(" "));
    }

    // 1,000 open streams of a model that sends one token a second.
    let before = rss_mib(gateway.child.id()).unwrap_or(0.0);
    let mut open = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        let response = http
            .post(format!("{}/v1/chat/completions", gateway.url))
            .bearer_auth(&gateway.key)
            .json(
                &json!({"model": "sim-slow", "max_tokens": 600, "stream": true,
                "messages": [{"role": "user", "content": "Take your time"}]}),
            )
            .send();
        open.push(response);
    }
    let mut streams = Vec::with_capacity(STREAMS);
    for response in futures_join(open).await {
        let mut response = response?;
        if !response.status().is_success() {
            bail!("stream: {}", response.status());
        }
        // The role chunk: the stream is open and running.
        response.chunk().await?;
        streams.push(response);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = rss_mib(gateway.child.id()).unwrap_or(0.0);
    println!(
        "{STREAMS} open streams: gateway RSS {during:.1} MiB ({before:.1} MiB before; {:+.1} MiB, {:.1} KiB per stream; target: <= 100 MiB)",
        during - before,
        (during - before) * 1024.0 / STREAMS as f64
    );
    drop(streams);
    drop(gateway);
    drop(upstream);
    Ok(())
}

async fn chat_once(http: &reqwest::Client, url: &str, key: &str, model: &str) -> Result<()> {
    let response = http
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "max_tokens": 4,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("chat {model} at {url}: {}", response.text().await?);
    }
    Ok(())
}

/// Sends every request at once and waits for all the answers' heads.
async fn futures_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}
