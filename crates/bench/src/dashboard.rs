//! `barrack-bench dashboard`: the instances page of an account with 10,000 instances, rendered by the
//! release `barrackd`, one request at a time, next to `GET /api/health/` of the same server in the same
//! run; and the weight of the pages' HTML. Targets: p50 ≤ 10 ms, ≤ 100 KB per page.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{INSTANCES, deploy_request, start};

/// Requests timed per page.
const SAMPLES: usize = 300;

struct Browser {
    http: reqwest::Client,
    base_url: String,
    cookie: String,
}

impl Browser {
    /// Signs in through the sign-in form as the operator the first start created.
    async fn sign_in(base_url: &str, email: &str, password: &str) -> Result<Browser> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let form = http.get(format!("{base_url}/login")).send().await?;
        let form_cookie = cookie_of(&form, "barrack_form").context("no form cookie")?;
        let body = form.text().await?;
        let marker = r#"name="csrf" value=""#;
        let start = body.find(marker).context("no form token")? + marker.len();
        let token = &body[start..start + 32];
        let signed = http
            .post(format!("{base_url}/login"))
            .header("cookie", format!("barrack_form={form_cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "csrf={}&email={}&password={}&tier=advanced",
                encode(token),
                encode(email),
                encode(password)
            ))
            .send()
            .await?;
        let session = cookie_of(&signed, "barrack_session").context("sign-in failed")?;
        Ok(Browser {
            http,
            base_url: base_url.to_string(),
            cookie: format!("barrack_session={session}"),
        })
    }

    /// The page's HTML size and how long the answer took.
    async fn get(&self, path: &str) -> Result<(usize, Duration)> {
        let t = Instant::now();
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .header("cookie", &self.cookie)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?.len();
        let elapsed = t.elapsed();
        if !status.is_success() {
            bail!("GET {path}: {status}");
        }
        Ok((bytes, elapsed))
    }
}

fn cookie_of(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_string())
}

/// p50 and p99 of `SAMPLES` sequential requests, and the largest body.
async fn time(browser: &Browser, path: &str) -> Result<(Duration, Duration, usize)> {
    for _ in 0..10 {
        browser.get(path).await?;
    }
    let mut latencies = Vec::with_capacity(SAMPLES);
    let mut largest = 0;
    for _ in 0..SAMPLES {
        let (bytes, elapsed) = browser.get(path).await?;
        largest = largest.max(bytes);
        latencies.push(elapsed);
    }
    latencies.sort();
    Ok((
        latencies[SAMPLES / 2],
        latencies[SAMPLES * 99 / 100],
        largest,
    ))
}

pub async fn run(backend: &str, database_url: Option<&str>) -> Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "barrack-bench-dashboard-{backend}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let server = start(&dir, database_url, Some("warn"))?;
    let credentials = std::fs::read_to_string(dir.join("admin-credentials"))?;
    let field = |name: &str| {
        credentials
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_string)
            .context("admin-credentials")
    };
    let (email, password) = (field("email")?, field("password")?);
    let client = crate::scale::client(&server.url, &server.key)?;
    crate::scale::prepare_account(&client).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= INSTANCES {
                    return Ok::<_, anyhow::Error>(());
                }
                client.deploy(&deploy_request(i, false)).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }

    let browser = Browser::sign_in(&server.url, &email, &password).await?;
    println!("\n== dashboard, {backend}: {INSTANCES} instances ==");
    let (base50, base99, _) = time(&browser, "/api/health/").await?;
    println!(
        "baseline GET /api/health/: p50 {:.2} ms, p99 {:.2} ms",
        ms(base50),
        ms(base99)
    );
    let first = client
        .instances(&barrack_api::instances::InstanceQuery {
            page: Some(1),
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .data
        .instances
        .into_iter()
        .next()
        .context("no instance")?
        .instance_id;
    let instance_page = format!("/instances/{first}");
    for (label, path) in [
        ("instances, first page", "/instances"),
        ("instances, page 100", "/instances?page=100"),
        ("instances, name filter", "/instances?name=bench-99"),
        ("overview", "/"),
        ("deploy", "/deploy"),
        ("one instance", instance_page.as_str()),
        ("volumes", "/volumes"),
        ("firewalls", "/firewalls"),
        ("images", "/images"),
        ("operator: accounts", "/operator"),
        ("operator: capacity", "/operator/capacity"),
        ("operator: jobs", "/operator/jobs"),
    ] {
        let (p50, p99, bytes) = time(&browser, path).await?;
        println!(
            "{label:<24} GET {path}: p50 {:.2} ms ({:.1}× baseline), p99 {:.2} ms, {:.1} KB",
            ms(p50),
            p50.as_secs_f64() / base50.as_secs_f64(),
            ms(p99),
            bytes as f64 / 1024.0
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A form value, percent-encoded.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
