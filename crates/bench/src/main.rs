//! `barrack-bench`: boots the release `barrackd` and measures it, on SQLite and (when
//! `BARRACK_BENCH_POSTGRES_URL` is set) on PostgreSQL, then times the meter (see `meter.rs`).
//!
//! ```sh
//! cargo build --release --bins && target/release/barrack-bench [operator|server|meter|scale|dashboard|labels|ai]
//! ```
//!
//! On PostgreSQL each measurement runs in a database of its own, created next to the one the URL names
//! and dropped afterwards.
//!
//! `server` measures the product's defaults (public addresses, a log line per request) and a tuned
//! variant (no public addresses, warn logging). Every figure is reported next to a bare JSON endpoint of
//! the same server (`GET /api/health/live/`) measured in the same run, because absolute numbers on a shared, noisy machine mean little; the ratio says what
//! the database and the domain cost.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use barrack_api::instances::{DeployRequest, InstanceQuery};
use serde_json::json;

mod ai;
mod dashboard;
mod labels;
mod meter;
mod scale;

/// Instances present while reads are measured.
const INSTANCES: usize = 10_000;
/// How long each read measurement runs.
const WINDOW: Duration = Duration::from_secs(5);

struct Server {
    child: Child,
    url: String,
    key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The servers' secret (`BARRACK_SECRET`), which the operator keys they print are bound to.
const SECRET: &str = "benchmark-secret-long-enough-for-hmac";

fn barrackd() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("no directory")?.join("barrackd");
    if !path.exists() {
        bail!(
            "{} not found: build it first with `cargo build --release --bins`",
            path.display()
        );
    }
    Ok(path)
}

/// Capacity for ten thousand one-GPU instances (and some to spare), no rate limit, machines that take the
/// simulator's default 1.5 s to boot (what the workers' pace is measured with) and no other delays.
const CONFIG: &str = r#"
[rate_limit]
requests = 0
window_seconds = 60

[simulator.delays]
create_ms = 1500
start_ms = 0
stop_ms = 0
reboot_ms = 0
hibernate_ms = 0
restore_ms = 0
delete_ms = 0
volume_ms = 0
snapshot_ms = 0
network_ms = 0

[[capacity]]
region = "FINLAND-1"
gpus = { "H100-SXM5-80GB" = 12000 }

# The product's regions, FINLAND-1 with a /16 address pool: enough public addresses for every instance,
# and the largest pool a region may have (what the time to the first answer is measured with).
[[regions]]
name = "CANADA-1"
tier = "legacy"
description = "Legacy tier region in Canada"
location = "Canada"
public_ip_pool = "198.51.100.0/24"

[[regions]]
name = "FINLAND-1"
tier = "advanced"
description = "Advanced tier region in Finland"
location = "Finland"
public_ip_pool = "10.64.0.0/16"

[[regions]]
name = "FINLAND-2"
tier = "advanced"
description = "Advanced tier region in Finland"
location = "Finland"
public_ip_pool = "203.0.113.128/25"

[[regions]]
name = "FINLAND-3"
tier = "advanced"
description = "Advanced tier region in Finland"
location = "Finland"
public_ip_pool = "192.0.2.0/24"
"#;

/// How a measured server is set up.
#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    /// Deploys ask for a public address (the product's default).
    public_ip: bool,
    /// `BARRACK_LOG`; `None` keeps the product's default (a line per request at info).
    log: Option<&'static str>,
}

/// The product as shipped, then tuned as an operator chasing throughput might run it.
const VARIANTS: [Variant; 2] = [
    Variant {
        name: "defaults: public IPs, default logging",
        public_ip: true,
        log: None,
    },
    Variant {
        name: "tuned: no public IPs, warn logging",
        public_ip: false,
        log: Some("warn"),
    },
];

fn start(data_dir: &Path, database_url: Option<&str>, log: Option<&str>) -> Result<Server> {
    start_logging(data_dir, database_url, CONFIG, log, true)
}

/// Starts another server on the database `data_dir` and `database_url` already hold (a replica, or a
/// restart) and times its first answer.
async fn time_to_first_answer(data_dir: &Path, database_url: Option<&str>) -> Result<Duration> {
    let booting = Instant::now();
    let server = start_logging(data_dir, database_url, CONFIG, Some("warn"), false)?;
    first_answer(&server.url, booting).await
}

/// Polls the bare endpoint until it answers; the time since `booting`.
async fn first_answer(url: &str, booting: Instant) -> Result<Duration> {
    let http = reqwest::Client::new();
    loop {
        let answer = http.get(format!("{url}/api/health/live/")).send().await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return Ok(booting.elapsed());
        }
        if booting.elapsed() > Duration::from_secs(60) {
            bail!("no answer a minute after start");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Boots the release server with `config` in an empty `data_dir`; `log` as `BARRACK_LOG` (`None`: the
/// default). The log goes where a service manager would take it: written, then thrown away.
fn start_logging(
    data_dir: &Path,
    database_url: Option<&str>,
    config_text: &str,
    log: Option<&str>,
    first_start: bool,
) -> Result<Server> {
    std::fs::create_dir_all(data_dir)?;
    let config = data_dir.join("bench.toml");
    std::fs::write(&config, config_text)?;
    let mut command = Command::new(barrackd()?);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(&config)
        .env_remove("BARRACK_LOG")
        .env("BARRACK_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        command.env("BARRACK_DATABASE_URL", url);
    }
    if let Some(log) = log {
        command.env("BARRACK_LOG", log);
    }
    let mut child = command.spawn()?;
    let mut key = None;
    for line in BufReader::new(child.stdout.take().context("stdout")?).lines() {
        let line = line?;
        if line.trim().starts_with("sk_") {
            key = Some(line.trim().to_string());
        }
        if let Some(rest) = line.strip_prefix("Barrack API listening on ") {
            let url = rest.trim().trim_end_matches("/api/").to_string();
            let key = match key {
                Some(key) => key,
                None if !first_start => String::new(),
                None => bail!("the server printed no operator key: use an empty data directory"),
            };
            return Ok(Server { child, url, key });
        }
    }
    bail!("barrackd exited before listening")
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

struct Measurement {
    requests: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Measurement {
    /// Percentiles of `latencies`, requests that took `elapsed` in all.
    fn from_latencies(mut latencies: Vec<Duration>, elapsed: Duration) -> Measurement {
        latencies.sort();
        let pct =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        Measurement {
            requests: latencies.len(),
            elapsed,
            p50: pct(0.50),
            p99: pct(0.99),
        }
    }

    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// The load generator: reads each response whole (status and body bytes) but, like a load generator and
/// unlike an API client, does not decode it, so the figures are the server's rather than the JSON parsing
/// of a process sharing its cores.
#[derive(Clone)]
struct Load {
    http: reqwest::Client,
    base_url: String,
    key: String,
}

impl Load {
    async fn get(&self, path: &str) -> Result<()> {
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .header("X-API-Key", &self.key)
            .send()
            .await?;
        let status = response.status();
        response.bytes().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}");
        }
        Ok(())
    }
}

/// Runs `clients` loops of GET `path` for the window and reports throughput and latency percentiles.
async fn measure(load: &Load, paths: Arc<Vec<String>>, clients: usize) -> Result<Measurement> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (load, paths, next) = (load.clone(), paths.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < WINDOW {
                let path = &paths[next.fetch_add(1, Ordering::Relaxed) % paths.len()];
                let t = Instant::now();
                load.get(path).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(Measurement::from_latencies(all, started.elapsed()))
}

fn deploy_request(i: usize, public_ip: bool) -> DeployRequest {
    serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": format!("bench-{i}"),
        "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": "bench", "public_ip": public_ip
    }))
    .expect("valid request")
}

async fn run(backend: &str, database_url: Option<&str>, variant: Variant) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("barrack-bench-{backend}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // From the process's start to its first answer (migrations, seeding, the listener), with a /16 pool.
    let booting = Instant::now();
    let server = start(&dir, database_url, variant.log)?;
    let fresh_start = first_answer(&server.url, booting).await?;
    let pid = server.child.id();
    let client = crate::scale::client(&server.url, &server.key)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_mib(pid);

    crate::scale::prepare_account(&client).await?;

    // Deploys accepted per second, 8 clients, until 10,000 instances exist.
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= INSTANCES {
                    return Ok::<_, anyhow::Error>(ids);
                }
                let request = deploy_request(i, variant.public_ip);
                ids.push(client.deploy(&request).await?.data.instance_id);
            }
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await??);
    }
    let accepted = started.elapsed();
    let deploy_rate = INSTANCES as f64 / accepted.as_secs_f64();
    // Let the workers finish creating them before reads are measured, and time it.
    loop {
        let creating = client
            .instances(&InstanceQuery {
                status: Some("CREATING".into()),
                limit: Some(1),
                ..Default::default()
            })
            .await?
            .data
            .pagination
            .total;
        if creating == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let converged = started.elapsed().as_secs_f64();
    if let Some(url) = database_url {
        // What autovacuum does within a minute of a bulk load: until then PostgreSQL plans with the
        // statistics of an empty table.
        let store = barrack_store::Store::connect(url, 1).await?;
        store.execute_script("VACUUM ANALYZE").await?;
        store.close().await;
    }
    let loaded = rss_mib(pid);
    let load = Load {
        http: reqwest::Client::new(),
        base_url: server.url.clone(),
        key: server.key.clone(),
    };
    let health = Arc::new(vec!["/api/health/live/".to_string()]);
    let bare_8 = measure(&load, health.clone(), 8).await?;

    println!("\n== {backend}, {}: {INSTANCES} instances ==", variant.name);
    let restart = time_to_first_answer(&dir, database_url).await?;
    println!(
        "first answer after start, FINLAND-1 pool a /16: {:.0} ms on an empty database (migrations \
         included), {:.0} ms on this one ({INSTANCES} instances)",
        fresh_start.as_secs_f64() * 1000.0,
        restart.as_secs_f64() * 1000.0
    );
    println!(
        "idle memory after start: {:.1} MiB; with {INSTANCES} instances: {:.1} MiB",
        idle.unwrap_or(f64::NAN),
        loaded.unwrap_or(f64::NAN)
    );
    println!(
        "deploys accepted: {deploy_rate:.0}/s (8 clients, public_ip {}); bare endpoint {:.0}/s: {:.3}x",
        variant.public_ip,
        bare_8.per_second(),
        deploy_rate / bare_8.per_second()
    );
    println!(
        "all {INSTANCES} ACTIVE {converged:.1} s after the first deploy, {:.1} s after the last was \
         accepted (machines boot in 1.5 s): {:.0} creates/s through the workers",
        converged - accepted.as_secs_f64(),
        INSTANCES as f64 / converged
    );
    let gets = Arc::new(
        ids.iter()
            .map(|id| format!("/api/instances/{id}/"))
            .collect::<Vec<_>>(),
    );
    let lists = Arc::new(
        (1..=INSTANCES / 50)
            .map(|p| format!("/api/instances/?limit=50&page={p}"))
            .collect::<Vec<_>>(),
    );
    println!(
        "{:<28} {:>8} {:>12} {:>10} {:>10} {:>14}",
        "endpoint", "clients", "requests/s", "p50 ms", "p99 ms", "vs bare JSON"
    );
    for clients in [1, 8] {
        let bare = measure(&load, health.clone(), clients).await?;
        for (name, paths) in [
            ("GET /api/health/ (bare)", &health),
            ("GET /api/instances/{id}/", &gets),
            ("GET /api/instances/ (50)", &lists),
        ] {
            let m = measure(&load, paths.clone(), clients).await?;
            println!(
                "{:<28} {:>8} {:>12.0} {:>10.3} {:>10.3} {:>13.2}x",
                name,
                clients,
                m.per_second(),
                m.p50.as_secs_f64() * 1000.0,
                m.p99.as_secs_f64() * 1000.0,
                m.per_second() / bare.per_second()
            );
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A PostgreSQL database created for one measurement, dropped with it.
struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    async fn create(admin_url: &str, label: &str) -> Result<ScratchDatabase> {
        let name = format!("barrack_bench_{label}_{}", std::process::id());
        let admin = barrack_store::Store::connect(admin_url, 1).await?;
        admin
            .execute_script(&format!("DROP DATABASE IF EXISTS {name}"))
            .await?;
        admin
            .execute_script(&format!("CREATE DATABASE {name}"))
            .await?;
        admin.close().await;
        let (base, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = if query.is_empty() {
            format!("{server}/{name}")
        } else {
            format!("{server}/{name}?{query}")
        };
        Ok(ScratchDatabase {
            admin_url: admin_url.to_string(),
            name,
            url,
        })
    }

    async fn drop_now(self) -> Result<()> {
        let admin = barrack_store::Store::connect(&self.admin_url, 1).await?;
        admin
            .execute_script(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await?;
        admin.close().await;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    barrack_client::install_tls_provider();
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    if what == "scale-db" {
        let Some(dir) = std::env::args().nth(2) else {
            bail!("usage: barrack-bench scale-db DIR [INSTANCES]");
        };
        let instances = match std::env::args().nth(3) {
            Some(n) => n.parse().context("INSTANCES is a number")?,
            None => 1_000_000,
        };
        return scale::keep(Path::new(&dir), instances).await;
    }
    if !matches!(
        what.as_str(),
        "all" | "operator" | "server" | "meter" | "scale" | "dashboard" | "labels" | "ai"
    ) {
        bail!(
            "usage: barrack-bench [operator|server|meter [periods]|scale|dashboard|labels|ai] | barrack-bench scale-db DIR [INSTANCES]"
        );
    }
    let postgres = std::env::var("BARRACK_BENCH_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    // `operator`: every figure an operator's installation is judged by (`server`, then `scale` with the
    // meter over a million periods), on both databases in one run.
    if matches!(what.as_str(), "all" | "operator" | "server") {
        for variant in VARIANTS {
            run("sqlite", None, variant).await?;
            if let Some(url) = &postgres {
                let db = ScratchDatabase::create(url, "server").await?;
                let result = run("postgres", Some(&db.url), variant).await;
                db.drop_now().await?;
                result?;
            }
        }
    }
    if matches!(what.as_str(), "all" | "meter") {
        // `barrack-bench meter 1000000`: another number of open periods than 100,000.
        let periods = match std::env::args().nth(2) {
            Some(n) => n
                .parse()
                .context("usage: barrack-bench meter [number of open periods]")?,
            None => 100_000,
        };
        let dir = std::env::temp_dir().join(format!("barrack-bench-meter-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let url = format!("sqlite://{}?mode=rwc", dir.join("meter.db").display());
        let result = meter::run("sqlite", &url, periods).await;
        let _ = std::fs::remove_dir_all(&dir);
        result?;
        if let Some(url) = &postgres {
            let db = ScratchDatabase::create(url, "meter").await?;
            let result = meter::run("postgres", &db.url, periods).await;
            db.drop_now().await?;
            result?;
        }
    }
    if matches!(what.as_str(), "all" | "operator" | "scale") {
        scale::run("sqlite", None).await?;
        if let Some(url) = &postgres {
            scale::run("postgres", Some(url)).await?;
        }
    }
    if matches!(what.as_str(), "all" | "dashboard") {
        dashboard::run("sqlite", None).await?;
        if let Some(url) = &postgres {
            let db = ScratchDatabase::create(url, "dashboard").await?;
            let result = dashboard::run("postgres", Some(&db.url)).await;
            db.drop_now().await?;
            result?;
        }
    }
    if matches!(what.as_str(), "all" | "labels") {
        labels::run("sqlite", None).await?;
        if let Some(url) = &postgres {
            let db = ScratchDatabase::create(url, "labels").await?;
            let result = labels::run("postgres", Some(&db.url)).await;
            db.drop_now().await?;
            result?;
        }
    }
    if matches!(what.as_str(), "all" | "ai") {
        let dir = std::env::temp_dir().join(format!("barrack-bench-ai-{}", std::process::id()));
        let result = ai::run(&dir).await;
        let _ = std::fs::remove_dir_all(&dir);
        result?;
    }
    if postgres.is_none() {
        println!(
            "\n(set BARRACK_BENCH_POSTGRES_URL to a PostgreSQL database URL whose user may create databases to measure PostgreSQL too)"
        );
    }
    Ok(())
}
