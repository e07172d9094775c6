//! `barrack-bench meter`: the time the meter takes to charge one minute for 100,000 live resources
//! (`scale`: for 1,000,000).
//!
//! Runs the billing service in this process over a fresh database (SQLite, and PostgreSQL when
//! `BARRACK_BENCH_POSTGRES_URL` is set) seeded with open billing periods, on a clock it moves by hand.
//! The floor it is compared with is one bare statement that rewrites every period row: what touching
//! each period once costs on that database, with no reading, pricing or ledger.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use barrack_compute::sim::{SimConfig, SimDriver};
use barrack_core::auth::Secrets;
use barrack_core::billing::MeterPace;
use barrack_core::clock::{Clock, ManualClock};
use barrack_core::config::Config;
use barrack_core::platform::money::per_minute_micros;
use barrack_core::{Context, Services, Store};
use barrack_store::accounts::{self, AccountRow};
use barrack_store::billing::WalkOrder;
use barrack_store::ledger::{self, LedgerEntryRow};
use tokio::sync::Notify;

/// Accounts the resources belong to.
const ACCOUNTS: usize = 1_000;
const MINUTE_MS: i64 = 60_000;

/// Meters `resources` live resources (one open period each) for two minutes.
pub async fn run(backend: &str, database_url: &str, resources: usize) -> Result<()> {
    let store = Store::connect(database_url, 8).await?;
    store.migrate().await?;
    // Whole minutes, so that one minute later exactly one minute of each period is closed.
    let start = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let clock = Arc::new(ManualClock::starting_at(start));
    let services = Services::new(Context {
        store: store.clone(),
        config: Config::load(None, &[])?,
        clock: clock.clone(),
        secrets: Secrets::from_server_secret("benchmark-secret-long-enough-for-hmac"),
        driver: Arc::new(SimDriver::new(SimConfig::default())),
        work: Arc::new(Notify::new()),
        closing: tokio::sync::watch::channel(false).0,
        resets_seen: Default::default(),
    });

    let seeding = Instant::now();
    let account_ids = seed_accounts(&store, "bench-account", ACCOUNTS, start).await?;
    seed_periods(&store, resources, start).await?;
    if backend == "postgres" {
        // Statistics for the seeded rows, as autovacuum would gather soon after such a load; without
        // them the first run's plans are guesses.
        store.execute_script("ANALYZE").await?;
    }
    println!(
        "\n== meter, {backend}: {resources} live resources in {ACCOUNTS} accounts (seeded in {:.1} s) ==",
        seeding.elapsed().as_secs_f64()
    );

    let floor = {
        let t = Instant::now();
        store
            .execute(
                "UPDATE billing_periods SET billed_minutes = billed_minutes",
                &[],
            )
            .await?;
        t.elapsed()
    };
    println!("{:<44} {:>10} {:>16}", "", "seconds", "vs bare update");
    println!(
        "{:<44} {:>10.3} {:>15.2}x",
        "bare UPDATE of every period (floor)",
        floor.as_secs_f64(),
        1.0
    );
    // The walk in the table's order (what the meter does) and in the unbilled index's, in turns, over
    // the same periods: on PostgreSQL both are the index's.
    let chunk = services.context.config.billing.meter_chunk_periods;
    let orders = [
        (WalkOrder::Physical, "table order"),
        (WalkOrder::Keys, "index order"),
    ];
    for (tick, (order, order_name)) in (1..=4).zip(orders.into_iter().cycle()) {
        clock.advance_ms(MINUTE_MS);
        let t = Instant::now();
        let run = services
            .billing
            .meter_walking(chunk, order, MeterPace::Full)
            .await?;
        let metered = t.elapsed();
        services.billing.guard(&run, &services.instances).await?;
        let guarded = t.elapsed() - metered;
        ensure!(
            run.periods_billed == resources as u64 && run.minutes_billed == resources as u64,
            "tick {tick} billed {} periods and {} minutes, expected {resources} of each",
            run.periods_billed,
            run.minutes_billed
        );
        for (what, took) in [
            (
                format!("meter one minute, tick {tick}, {order_name}"),
                metered,
            ),
            (
                format!("  then balance guard of {ACCOUNTS} accounts"),
                guarded,
            ),
            (format!("  together, tick {tick}"), metered + guarded),
        ] {
            println!(
                "{:<44} {:>10.3} {:>15.2}x{}",
                what,
                took.as_secs_f64(),
                took.as_secs_f64() / floor.as_secs_f64(),
                match target(backend, resources) {
                    Some(limit) if took > limit && !what.contains("guard") => {
                        format!("   (target: under {} s)", limit.as_secs())
                    }
                    _ => String::new(),
                }
            );
        }
    }
    for account in account_ids.iter().step_by(97) {
        let balance = store
            .balances(account)
            .await?
            .into_iter()
            .map(|(_, m)| m)
            .sum::<i64>();
        ensure!(
            balance == store.ledger_sum(account, "USD").await?,
            "balance of {account} differs from its ledger"
        );
    }
    Ok(())
}

/// How long metering one minute may take: 1 s for 100,000 periods on SQLite; 5 s (SQLite) and 15 s
/// (PostgreSQL) for a million.
fn target(backend: &str, resources: usize) -> Option<Duration> {
    match (backend, resources) {
        ("sqlite", 100_000) => Some(Duration::from_secs(1)),
        ("sqlite", 1_000_000) => Some(Duration::from_secs(5)),
        (_, 1_000_000) => Some(Duration::from_secs(15)),
        _ => None,
    }
}

/// `count` accounts with credit, ids `{prefix}-{n}`, created at `at`.
pub async fn seed_accounts(
    store: &Store,
    prefix: &str,
    count: usize,
    at: i64,
) -> Result<Vec<String>> {
    let mut account_ids = Vec::new();
    let mut tx = store.begin().await?;
    for a in 0..count {
        let id = format!("{prefix}-{a}");
        accounts::insert(
            &mut tx,
            &AccountRow {
                id: id.clone(),
                email: format!("{prefix}-{a}@example.com"),
                password_hash: "not-a-login".into(),
                name: format!("Bench {a}"),
                phone: None,
                address_line: None,
                city: None,
                state: None,
                postal_code: None,
                country: Some("US".into()),
                is_admin: false,
                created_at: at,
                updated_at: at,
                disabled_at: None,
            },
        )
        .await?;
        ledger::append(
            &mut tx,
            &LedgerEntryRow {
                id: barrack_core::ids::transaction_id(),
                account_id: id.clone(),
                currency: "USD".into(),
                kind: "grant".into(),
                amount_micros: 1_000_000 * 1_000_000,
                balance_after_micros: 0,
                description: "Benchmark credit".into(),
                idempotency_key: None,
                created_by: None,
                created_at: at,
            },
            barrack_core::ids::transaction_id,
        )
        .await?;
        account_ids.push(id);
    }
    tx.commit().await?;
    Ok(account_ids)
}

/// One open period per resource, spread over the accounts of [`seed_accounts`]: six in ten GPU
/// instances, three volumes, one snapshot, each with its per-minute rate as the server stores it.
/// Generated by the database (a recursive sequence both dialects run), a hundred thousand rows per
/// statement.
async fn seed_periods(store: &Store, resources: usize, start: i64) -> Result<()> {
    let per_minute = |hourly: &str| per_minute_micros(hourly.parse().expect("a rate"));
    let (compute, storage, snapshot) = (
        per_minute("2.49"),
        per_minute("0.0068359375"),
        per_minute("0.05"),
    );
    let postgres = store.backend() == barrack_store::Backend::Postgres;
    let id = if postgres {
        "'BRK-' || lpad(CAST(r AS TEXT), 7, '0') || 'B'"
    } else {
        "'BRK-' || printf('%07d', r) || 'B'"
    };
    let mut from = 0;
    while from < resources {
        let to = (from + 100_000).min(resources);
        store
            .execute_script(&format!(
                "WITH RECURSIVE seq(r) AS (SELECT {from} UNION ALL SELECT r + 1 FROM seq WHERE r < {last}) \
                 INSERT INTO billing_periods (id, account_id, resource_type, resource_id, resource_name, \
                 component, details, currency, hourly_rate, started_at, ended_at, billed_minutes, \
                 billed_micros, fully_billed, carried_ms, per_minute_micros) \
                 SELECT {id}, 'bench-account-' || CAST(r % {ACCOUNTS} AS TEXT), \
                 CASE WHEN r % 10 < 6 THEN 'instance' WHEN r % 10 < 9 THEN 'volume' ELSE 'snapshot' END, \
                 'bench-resource-' || CAST(r AS TEXT), 'bench-' || CAST(r AS TEXT), \
                 CASE WHEN r % 10 < 6 THEN 'compute' WHEN r % 10 < 9 THEN 'storage' ELSE 'snapshot' END, \
                 CASE WHEN r % 10 < 6 THEN '{{\"gpu_type\":\"H100-SXM5-80GB\",\"gpu_count\":1}}' \
                 WHEN r % 10 < 9 THEN '{{\"size_gb\":100,\"volume_type\":\"NVMe\"}}' \
                 ELSE '{{\"size_gb\":50}}' END, \
                 'USD', \
                 CASE WHEN r % 10 < 6 THEN '2.49' WHEN r % 10 < 9 THEN '0.0068359375' ELSE '0.05' END, \
                 {start}, NULL, 0, 0, 0, 0, \
                 CASE WHEN r % 10 < 6 THEN {compute} WHEN r % 10 < 9 THEN {storage} ELSE {snapshot} END \
                 FROM seq",
                last = to - 1,
            ))
            .await?;
        from = to;
    }
    Ok(())
}
