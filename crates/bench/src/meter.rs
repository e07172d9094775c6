//! `barrack-bench meter`: the time the meter takes to charge one minute for 100,000 live resources.
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
use barrack_core::clock::{Clock, ManualClock};
use barrack_core::config::Config;
use barrack_core::{Context, Services, Store};
use barrack_store::accounts::{self, AccountRow};
use barrack_store::billing::{self, PeriodRow};
use barrack_store::ledger::{self, LedgerEntryRow};
use tokio::sync::Notify;

/// Live billable resources (one open period each).
const RESOURCES: usize = 100_000;
/// Accounts they belong to.
const ACCOUNTS: usize = 1_000;
const MINUTE_MS: i64 = 60_000;

pub async fn run(backend: &str, database_url: &str) -> Result<()> {
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
    });

    let seeding = Instant::now();
    let account_ids = seed(&store, start).await?;
    println!(
        "\n== meter, {backend}: {RESOURCES} live resources in {ACCOUNTS} accounts (seeded in {:.1} s) ==",
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
    for tick in 1..=2 {
        clock.advance_ms(MINUTE_MS);
        let t = Instant::now();
        let run = services.billing.meter().await?;
        let metered = t.elapsed();
        services.billing.guard(&run, &services.instances).await?;
        let guarded = t.elapsed() - metered;
        ensure!(
            run.periods_billed == RESOURCES as u64 && run.minutes_billed == RESOURCES as u64,
            "tick {tick} billed {} periods and {} minutes, expected {RESOURCES} of each",
            run.periods_billed,
            run.minutes_billed
        );
        for (what, took) in [
            (format!("meter one minute, tick {tick}"), metered),
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
                // The one-second target is SQLite's.
                if backend != "sqlite" || took < Duration::from_secs(1) || what.contains("guard") {
                    ""
                } else {
                    "   (target: under 1 s)"
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

/// Accounts with credit, and one open period per resource: GPU instances, volumes and snapshots.
async fn seed(store: &Store, start: i64) -> Result<Vec<String>> {
    let mut account_ids = Vec::new();
    let mut tx = store.begin().await?;
    for a in 0..ACCOUNTS {
        let id = format!("bench-account-{a:05}");
        accounts::insert(
            &mut tx,
            &AccountRow {
                id: id.clone(),
                email: format!("bench{a}@example.com"),
                password_hash: "not-a-login".into(),
                name: format!("Bench {a}"),
                phone: None,
                address_line: None,
                city: None,
                state: None,
                postal_code: None,
                country: Some("US".into()),
                is_admin: false,
                created_at: start,
                updated_at: start,
                disabled_at: None,
            },
        )
        .await?;
        ledger::append(
            &mut tx,
            &LedgerEntryRow {
                id: format!("bench-grant-{a:05}"),
                account_id: id.clone(),
                currency: "USD".into(),
                kind: "grant".into(),
                amount_micros: 1_000_000 * 1_000_000,
                balance_after_micros: 0,
                description: "Benchmark credit".into(),
                idempotency_key: None,
                created_by: None,
                created_at: start,
            },
            barrack_core::ids::transaction_id,
        )
        .await?;
        account_ids.push(id);
    }
    tx.commit().await?;
    for chunk in (0..RESOURCES).collect::<Vec<_>>().chunks(10_000) {
        let mut tx = store.begin().await?;
        for &r in chunk {
            let (resource_type, component, rate, details) = match r % 10 {
                0..=5 => (
                    "instance",
                    "compute",
                    "2.49",
                    r#"{"gpu_type":"H100-SXM5-80GB","gpu_count":1}"#,
                ),
                6..=8 => (
                    "volume",
                    "storage",
                    "0.0068359375",
                    r#"{"size_gb":100,"volume_type":"NVMe"}"#,
                ),
                _ => ("snapshot", "snapshot", "0.05", r#"{"size_gb":50}"#),
            };
            billing::insert(
                &mut tx,
                &PeriodRow {
                    id: format!("BRK-{r:07}B"),
                    account_id: account_ids[r % ACCOUNTS].clone(),
                    resource_type: resource_type.into(),
                    resource_id: format!("bench-{resource_type}-{r:07}"),
                    resource_name: format!("bench-{r}"),
                    component: component.into(),
                    details: details.into(),
                    currency: "USD".into(),
                    hourly_rate: rate.into(),
                    started_at: start,
                    ended_at: None,
                    billed_minutes: 0,
                    billed_micros: 0,
                    fully_billed: false,
                    carried_ms: 0,
                },
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(account_ids)
}
