//! `barrack-bench scale`: the same requests against a release server holding 10,000 instances and one
//! holding 1,000,000, on SQLite and (with `BARRACK_BENCH_POSTGRES_URL`) PostgreSQL.
//!
//! Deploying a million instances through the API would take the better part of an hour here, so all but
//! one are **written directly into the database** while the server is stopped: copies of an instance the
//! API deployed (same columns, its open billing periods copied too), placed on hosts of the simulated data
//! centre that the copy's server knows, with the GPUs they hold counted in `gpu_capacity`. The measured
//! account owns 10,000 of them in both runs, so its GETs and lists read the same rows; the rest belong to
//! other accounts with credit, 1,000 each. The server is then started on that database, and reads,
//! deploys (public addresses on, the product's default) and its memory are measured while its reconciler
//! and meter walk the whole table, as they would in production.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use barrack_api::account::{GrantCredits, ProfileUpdate};
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_client::Client;
use barrack_store::Store;
use barrack_store::sql::Columns;
use tokio::sync::Mutex;

use crate::{CONFIG, Load, Measurement, deploy_request, first_answer, measure, rss_mib};

/// Instances of the measured account, in both runs.
pub(crate) const OWN: usize = 10_000;
/// Instances per other account.
const PER_ACCOUNT: usize = 1_000;
/// Deploys timed at each size (8 clients).
const DEPLOYS: usize = 1_600;
/// The simulated hosts the copies are placed on start after this one; the first hosts stay free for the
/// deploys the bench makes.
const FIRST_BULK_HOST: usize = 1_501;
const HOST_PREFIX: &str = "finland-1-h100-sxm5-80gb";

/// What one size measured.
struct Figures {
    instances: usize,
    loaded_in: Duration,
    first_answer: Duration,
    rss_idle: f64,
    rss_after: f64,
    bare: Measurement,
    get: Measurement,
    list: Measurement,
    deploy: Measurement,
    deploys_failed: usize,
}

pub async fn run(backend: &str, postgres_admin_url: Option<&str>) -> Result<()> {
    let mut figures = Vec::new();
    for instances in [10_000, 1_000_000] {
        let database = match postgres_admin_url {
            Some(url) => Some(
                crate::ScratchDatabase::create(url, &format!("scale{}", instances / 1000)).await?,
            ),
            None => None,
        };
        let url = database.as_ref().map(|db| db.url.clone());
        let result = measure_size(backend, url.as_deref(), instances).await;
        if let Some(db) = database {
            db.drop_now().await?;
        }
        figures.push(result?);
    }
    report(backend, &figures);
    // The meter over a million open periods, in this process as `meter` measures it.
    match postgres_admin_url {
        None => {
            let dir = std::env::temp_dir()
                .join(format!("barrack-bench-scale-meter-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let url = format!("sqlite://{}?mode=rwc", dir.join("meter.db").display());
            let result = crate::meter::run(backend, &url, 1_000_000).await;
            let _ = std::fs::remove_dir_all(&dir);
            result
        }
        Some(admin) => {
            let db = crate::ScratchDatabase::create(admin, "scalemeter").await?;
            let result = crate::meter::run(backend, &db.url, 1_000_000).await;
            db.drop_now().await?;
            result
        }
    }
}

/// `barrack-bench scale-db DIR [INSTANCES]`: a SQLite database in `DIR` holding `instances` copies, loaded
/// as `scale` loads its own, kept with the configuration to start a server on it (to time a restart, or
/// to look at what a large installation holds).
pub async fn keep(dir: &std::path::Path, instances: usize) -> Result<()> {
    ensure!(
        instances >= OWN,
        "a scale database holds at least {OWN} instances"
    );
    let loaded = load(dir, None, &config(instances), instances).await?;
    println!(
        "{instances} instances loaded in {:.1} s into {}\nstart a server on it with:\n  \
         BARRACK_SECRET={} barrackd serve --data-dir {dir} --config {dir}/bench.toml\n\
         the operator's key: {}",
        loaded.loaded_in.as_secs_f64(),
        dir.display(),
        crate::SECRET,
        loaded.key,
        dir = dir.display(),
    );
    Ok(())
}

pub(crate) fn config(instances: usize) -> String {
    // Every copy holds one GPU; the hosts before `FIRST_BULK_HOST` are the bench's own.
    let gpus = (FIRST_BULK_HOST - 1) * 8 + instances;
    CONFIG.replace(
        r#"gpus = { "H100-SXM5-80GB" = 12000 }"#,
        &format!(r#"gpus = {{ "H100-SXM5-80GB" = {gpus} }}"#),
    )
}

async fn measure_size(
    backend: &str,
    database_url: Option<&str>,
    instances: usize,
) -> Result<Figures> {
    let dir = std::env::temp_dir().join(format!(
        "barrack-bench-scale-{backend}-{instances}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let config = config(instances);

    let Loaded { key, loaded_in, .. } = load(&dir, database_url, &config, instances).await?;

    // The server as an operator would restart it: default logging.
    let booting = Instant::now();
    let mut server = crate::start_logging(&dir, database_url, &config, None, false)?;
    let first = first_answer(&server.url, booting).await?;
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_mib(pid).unwrap_or(f64::NAN);
    server.key = key;

    let load = Load {
        http: reqwest::Client::new(),
        base_url: server.url.clone(),
        key: server.key.clone(),
    };
    let gets = Arc::new(
        (0..OWN)
            .map(|i| format!("/api/instances/{}/", bulk_id(i)))
            .collect(),
    );
    let lists = Arc::new(
        (1..=OWN / 50)
            .map(|p| format!("/api/instances/?limit=50&page={p}"))
            .collect(),
    );
    let health = Arc::new(vec!["/api/health/live/".to_string()]);
    let bare = measure(&load, health, 8).await?;
    let get = measure(&load, gets, 8).await?;
    let list = measure(&load, lists, 8).await?;
    let (deploy, deploys_failed) = deploys(&client(&server.url, &server.key)?).await?;
    let rss_after = rss_mib(pid).unwrap_or(f64::NAN);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Figures {
        instances,
        loaded_in,
        first_answer: first,
        rss_idle,
        rss_after,
        bare,
        get,
        list,
        deploy,
        deploys_failed,
    })
}

/// A database of `instances` copies owned as the module's comment says, made in `dir`.
pub(crate) struct Loaded {
    /// The operator's key, whose account owns `OWN` of the copies.
    pub key: String,
    pub account_id: String,
    /// The database, for the store.
    pub store_url: String,
    /// How long writing the copies took.
    pub loaded_in: Duration,
}

/// Deploys one instance through the API (the template of the copies), stops the server, and writes the
/// copies into its database.
pub(crate) async fn load(
    dir: &std::path::Path,
    database_url: Option<&str>,
    config: &str,
    instances: usize,
) -> Result<Loaded> {
    let server = crate::start_logging(dir, database_url, config, Some("warn"), true)?;
    let key = server.key.clone();
    let api = client(&server.url, &key)?;
    let account_id = prepare_account(&api).await?;
    let template = api
        .deploy(&deploy_request(0, false))
        .await?
        .data
        .instance_id;
    wait_active(&api, &template).await?;
    drop(server);
    let store_url = match database_url {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}?mode=rw", dir.join("barrack.db").display()),
    };
    let loading = Instant::now();
    bulk_load(&store_url, &account_id, &template, instances).await?;
    Ok(Loaded {
        key,
        account_id,
        store_url,
        loaded_in: loading.elapsed(),
    })
}

pub(crate) fn client(url: &str, key: &str) -> Result<Client> {
    Ok(Client::builder(url).api_key(key).max_retries(0).build()?)
}

/// Profile, credit and an SSH key for the operator's own account, which the bench deploys with; its id.
pub(crate) async fn prepare_account(client: &Client) -> Result<String> {
    let profile = client
        .update_profile(&ProfileUpdate {
            address_line: Some(Some("1 Bench Street".into())),
            postal_code: Some(Some("00100".into())),
            country: Some(Some("US".into())),
            ..Default::default()
        })
        .await?
        .data;
    let grant = GrantCredits {
        amount: "100000000".parse()?,
        currency: barrack_api::Currency::USD,
        note: None,
    };
    client.admin_grant_credits(&profile.id, &grant).await?;
    client
        .create_ssh_key(&CreateSshKeyRequest {
            name: "bench".into(),
            public_key: None,
        })
        .await?;
    Ok(profile.id)
}

async fn wait_active(client: &Client, id: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        let status = client.instance(id).await?.data.status;
        if status == "ACTIVE" {
            return Ok(());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "instance {id} still {status} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The id of copy `i`: `BRK-` + a letter from Q for each hundred thousand + five digits + `D`, in the
/// documented pattern (the store draws another id for a deploy whose random id is one of these).
fn bulk_id(i: usize) -> String {
    format!(
        "BRK-{}{:05}D",
        char::from(b'Q' + (i / 100_000) as u8),
        i % 100_000
    )
}

/// The same id in SQL, from the generated sequence number `i`.
fn bulk_id_sql(postgres: bool) -> &'static str {
    if postgres {
        "'BRK-' || chr(81 + i / 100000) || lpad(CAST(i % 100000 AS TEXT), 5, '0') || 'D'"
    } else {
        "'BRK-' || char(81 + i / 100000) || printf('%05d', i % 100000) || 'D'"
    }
}

/// Writes `instances` copies of `template` with their open billing periods, and the accounts that own
/// them, straight into the database (see the module's comment).
async fn bulk_load(url: &str, own_account: &str, template: &str, instances: usize) -> Result<()> {
    let postgres = url.starts_with("postgres");
    let store = Store::connect(url, 2).await?;
    let others = (instances - OWN) / PER_ACCOUNT;
    let now: i64 = store
        .fetch_one(
            "SELECT created_at FROM instances WHERE id = $1",
            &[template.into()],
        )
        .await?
        .int(0)?;
    crate::meter::seed_accounts(&store, "bench-owner", others, now).await?;

    let columns: Vec<String> = store
        .fetch_all(
            if postgres {
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'instances' \
                 ORDER BY ordinal_position"
            } else {
                "SELECT name FROM pragma_table_info('instances') ORDER BY cid"
            },
            &[],
        )
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect::<barrack_store::Result<_>>()?;
    let id = bulk_id_sql(postgres);
    let owner = format!(
        "CASE WHEN i < {OWN} THEN '{own_account}' ELSE 'bench-owner-' || \
         CAST((i - {OWN}) / {PER_ACCOUNT} AS TEXT) END"
    );
    let host = format!("'{HOST_PREFIX}-' || CAST({FIRST_BULK_HOST} + i / 8 AS TEXT)");
    let generated = |column: &str| -> String {
        match column {
            "id" => id.to_string(),
            "account_id" => owner.clone(),
            "name" => "'bulk-' || CAST(i AS TEXT)".into(),
            "host" => host.clone(),
            other => format!("t.{other}"),
        }
    };
    let select: Vec<String> = columns.iter().map(|c| generated(c)).collect();
    // A recursive sequence, written once for both databases, in chunks that keep each statement short.
    let chunk = 100_000;
    let mut start = 0;
    while start < instances {
        let end = (start + chunk).min(instances);
        let mut tx = store.begin().await?;
        tx.execute_script(&format!(
            "WITH RECURSIVE seq(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM seq WHERE i < {last}) \
             INSERT INTO instances ({columns}) SELECT {select} FROM seq CROSS JOIN instances t \
             WHERE t.id = '{template}'",
            last = end - 1,
            columns = columns.join(", "),
            select = select.join(", "),
        ))
        .await?;
        tx.execute_script(&format!(
            "WITH RECURSIVE seq(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM seq WHERE i < {last}) \
             INSERT INTO billing_periods (id, account_id, resource_type, resource_id, resource_name, component, \
             details, currency, hourly_rate, started_at, ended_at, billed_minutes, billed_micros, \
             fully_billed, carried_ms, per_minute_micros) \
             SELECT {id} || p.component, {owner}, p.resource_type, {id}, 'bulk-' || CAST(i AS TEXT), \
             p.component, p.details, p.currency, p.hourly_rate, p.started_at, NULL, 0, 0, p.fully_billed, 0, \
             p.per_minute_micros \
             FROM seq CROSS JOIN billing_periods p WHERE p.resource_id = '{template}' AND p.ended_at IS NULL",
            last = end - 1,
        ))
        .await?;
        tx.commit().await?;
        start = end;
    }
    // The copies hold a GPU each; the template's are counted already.
    store
        .execute(
            "UPDATE gpu_capacity SET allocated = allocated + $1 \
             WHERE region = 'FINLAND-1' AND gpu_model = 'H100-SXM5-80GB'",
            &[(instances as i64).into()],
        )
        .await?;
    if postgres {
        store.execute_script("VACUUM ANALYZE").await?;
    } else {
        store.execute_script("ANALYZE").await?;
    }
    let count = store
        .fetch_one("SELECT COUNT(*) FROM instances", &[])
        .await?
        .int(0)?;
    ensure!(
        count == instances as i64 + 1,
        "loaded {count} instances, expected {}",
        instances + 1
    );
    store.close().await;
    Ok(())
}

/// `DEPLOYS` deploys with public addresses from 8 clients, each timed; and how many failed.
async fn deploys(client: &Client) -> Result<(Measurement, usize)> {
    let started = Instant::now();
    let next = Arc::new(Mutex::new(0usize));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = {
                    let mut next = next.lock().await;
                    *next += 1;
                    *next
                };
                if i > DEPLOYS {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let t = Instant::now();
                // A deploy that fails (the client gives up after its timeout) is counted, not fatal:
                // its time is part of what the size costs.
                let failed = client.deploy(&deploy_request(i, true)).await.is_err();
                latencies.push((t.elapsed(), failed));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let failed = all.iter().filter(|(_, failed)| *failed).count();
    let latencies = all.into_iter().map(|(latency, _)| latency).collect();
    Ok((
        Measurement::from_latencies(latencies, started.elapsed()),
        failed,
    ))
}

fn report(backend: &str, figures: &[Figures]) {
    println!("\n== scale, {backend}: the same requests at 10,000 and 1,000,000 instances ==");
    println!(
        "(all but one instance written directly into the database; the measured account owns {OWN})"
    );
    for f in figures {
        println!(
            "{:>9} instances: loaded in {:.1} s; first answer {:.0} ms; RSS {:.1} MiB after start, \
             {:.1} MiB after the requests; bare endpoint {:.0}/s; {} of {DEPLOYS} deploys failed",
            f.instances,
            f.loaded_in.as_secs_f64(),
            f.first_answer.as_secs_f64() * 1000.0,
            f.rss_idle,
            f.rss_after,
            f.bare.per_second(),
            f.deploys_failed
        );
    }
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "8 clients", "p50 10k ms", "p99 10k ms", "p50 1M ms", "p99 1M ms", "p99 1M/10k"
    );
    let [small, large] = figures else { return };
    for (name, a, b) in [
        ("GET /api/instances/{id}/", &small.get, &large.get),
        ("GET /api/instances/ (50)", &small.list, &large.list),
        ("POST deploy (public IP)", &small.deploy, &large.deploy),
    ] {
        println!(
            "{:<34} {:>12.3} {:>12.3} {:>12.3} {:>12.3} {:>11.2}x",
            name,
            ms(a.p50),
            ms(a.p99),
            ms(b.p50),
            ms(b.p99),
            b.p99.as_secs_f64() / a.p99.as_secs_f64()
        );
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
