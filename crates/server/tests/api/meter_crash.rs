//! The meter killed mid-run: `barrackd` processes are SIGKILLed while a clock advance bills 20,000 open
//! billing periods, and restarted. Whatever the moment of the kill, no minute is billed twice or skipped,
//! the ledger and what a stopped run left owed explain every charge, a finished run leaves nothing owed,
//! and the simulation clock keeps the time it was moved to.

use std::time::Duration;

use barrack_api::Currency;
use barrack_api::account::GrantCredits;
use barrack_client::Client;
use barrack_core::clock::{parse_iso, system_now_ms};
use barrack_store::Store;
use barrack_store::billing::{self, PeriodRow};
use barrack_store::binds;
use barrack_store::sql::Columns;

use crate::common::process::{ServerProcess, spawn};
use crate::common::{Db, TestDatabase};
use crate::on_both_databases;

on_both_databases!(a_meter_killed_mid_run_neither_double_bills_nor_skips);

const PERIODS: usize = 20_000;
/// 0.6 per hour: exactly 0.01 (10,000 micro-units) a minute, so a period's cost is its minutes × 10,000.
const RATE: &str = "0.6";
const MICROS_PER_MINUTE: i64 = 10_000;
const MINUTE_MS: i64 = 60_000;

fn start(database: &TestDatabase) -> ServerProcess {
    let dir = &database.dir;
    spawn(
        &dir.join("node"),
        &dir.join("node.log"),
        &[
            ("BARRACK_DATABASE_URL", &database.url),
            ("BARRACK_SECRET", "meter-crash-secret-long-enough-for-hmac"),
            ("BARRACK_RATE_LIMIT_REQUESTS", "0"),
            // Only the run at start and those of clock moves.
            ("BARRACK_BILLING_METER_INTERVAL_SECONDS", "3600"),
            // Runs of 20 transactions, so a kill can land between two.
            ("BARRACK_BILLING_METER_CHUNK_PERIODS", "1000"),
        ],
    )
}

/// What the database says about the periods and the money, checked for consistency on the way.
struct Books {
    /// Distinct `billed_minutes` values among the periods (one once a meter run finished).
    minutes: Vec<i64>,
    /// What the meter has moved and not charged yet (nothing once a run finished).
    owed: i64,
}

async fn books(store: &Store, account: &str) -> Books {
    // One statement, so one snapshot: a killed server's last commit may land while the books are read.
    let row = store
        .fetch_one(
            "SELECT \
             (SELECT COUNT(*) FROM billing_periods WHERE billed_micros <> billed_minutes * $1), \
             (SELECT CAST(COALESCE(SUM(billed_micros), 0) AS BIGINT) FROM billing_periods), \
             (SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM ledger_entries WHERE kind = 'usage'), \
             (SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM balances WHERE account_id = $2), \
             (SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM ledger_entries WHERE account_id = $2), \
             (SELECT CAST(COALESCE(SUM(micros), 0) AS BIGINT) FROM meter_owed)",
            &binds![MICROS_PER_MINUTE, account],
        )
        .await
        .unwrap();
    let figure = |i| row.int(i).unwrap();
    assert_eq!(
        figure(0),
        0,
        "every period's charge is its minutes at its rate"
    );
    // A run killed between its chunks and its end leaves what its chunks moved owed, for the next run
    // to charge.
    assert_eq!(
        -figure(2) + figure(5),
        figure(1),
        "the usage in the ledger and what is owed are exactly what the periods billed"
    );
    assert_eq!(figure(3), figure(4), "the balance is the ledger");
    let minutes = store
        .fetch_all(
            "SELECT DISTINCT billed_minutes FROM billing_periods ORDER BY billed_minutes",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.int(0).unwrap())
        .collect();
    Books {
        minutes,
        owed: figure(5),
    }
}

async fn a_meter_killed_mid_run_neither_double_bills_nor_skips(db: Db) {
    let database = TestDatabase::create(db).await;
    let server = start(&database);
    let key = server.printed_key.clone().unwrap();
    let client = |server: &ServerProcess| {
        // An advance bills every minute of the 20,000 periods before it answers: on a loaded machine the
        // first after a restart took over the client's default 30 s.
        Client::builder(&server.url)
            .api_key(&key)
            .max_retries(0)
            .timeout(Duration::from_secs(180))
            .build()
            .unwrap()
    };
    let admin = client(&server);
    let account = admin.profile().await.unwrap().data.id;
    admin
        .admin_grant_credits(
            &account,
            &GrantCredits {
                amount: "1000000".parse().unwrap(),
                currency: Currency::USD,
                note: None,
            },
        )
        .await
        .unwrap();
    // A completed move, so the clock's offset is known to be stored before any kill.
    admin.admin_advance_clock(30).await.unwrap();
    server.stop();

    // 20,000 resources billed from a whole minute on the server's clock.
    let store = Store::connect(&database.url, 2).await.unwrap();
    let offset = store.clock_offset().await.unwrap();
    assert_eq!(offset, 30 * MINUTE_MS);
    let now = system_now_ms() + offset;
    let started = now - now.rem_euclid(MINUTE_MS);
    let mut tx = store.begin().await.unwrap();
    for n in 0..PERIODS {
        billing::insert(
            &mut tx,
            &PeriodRow {
                id: format!("BRK-{n:06}VB"),
                account_id: account.clone(),
                resource_type: "volume".into(),
                resource_id: format!("vol-{n:06}"),
                resource_name: format!("volume-{n}"),
                component: "storage".into(),
                details: "{}".into(),
                currency: "USD".into(),
                hourly_rate: RATE.into(),
                started_at: started,
                ended_at: None,
                billed_minutes: 0,
                billed_micros: 0,
                fully_billed: false,
                carried_ms: 0,
                // Every other period as from before per-minute rates were stored: the meter rates it.
                per_minute_micros: (n % 2 == 0).then_some(MICROS_PER_MINUTE),
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    // Kill while a 60-minute advance is billing; aim at the middle of its run by moving the moment of the
    // kill later when it came before any charge and earlier when it came after all of them.
    let mut delay = Duration::from_millis(100);
    let mut cut_midway = 0;
    for attempt in 0..16 {
        let server = start(&database);
        // A completed move after the restart bills everything up to the moved clock.
        client(&server).admin_advance_clock(1).await.unwrap();
        let before = books(&store, &account).await.minutes;
        assert_eq!(before.len(), 1, "a restart finishes what a kill cut short");
        let advancing = {
            let admin = client(&server);
            tokio::spawn(async move { admin.admin_advance_clock(60).await })
        };
        tokio::time::sleep(delay).await;
        server.kill();
        let _ = advancing.await.unwrap();
        let after = books(&store, &account).await.minutes;
        eprintln!(
            "attempt {attempt}: killed after {delay:?}, billed minutes {before:?} -> {after:?}"
        );
        if after.len() > 1 {
            cut_midway += 1;
            if cut_midway == 3 {
                break;
            }
        } else if after == before {
            delay = delay.mul_f64(1.7);
        } else {
            delay = delay.mul_f64(0.6);
        }
    }
    assert!(
        cut_midway > 0,
        "no kill landed in the middle of a meter run"
    );

    // A restart bills the rest: every period has exactly the minutes that passed on the (moved) clock.
    let server = start(&database);
    let asked = system_now_ms();
    let moved = client(&server).admin_advance_clock(1).await.unwrap().data;
    let answered = system_now_ms();
    let offset = store.clock_offset().await.unwrap();
    assert!(
        offset > 31 * MINUTE_MS + cut_midway * MINUTE_MS,
        "the clock kept every move across restarts"
    );
    let server_now = parse_iso(&moved.now).unwrap();
    // The server read its clock between the request and the answer (a loaded machine may take seconds).
    assert!(
        (asked + offset - 1_000..=answered + offset + 1_000).contains(&server_now),
        "the reported time is the system clock plus the stored offset"
    );
    let books = books(&store, &account).await;
    assert_eq!(books.owed, 0, "a finished run charged everything owed");
    let minutes = books.minutes;
    let expected = (server_now - started) / MINUTE_MS;
    // The reported time is the one the move's last meter run billed up to; the periodic meter may have
    // billed one more minute since.
    assert!(
        minutes == [expected] || minutes == [expected + 1],
        "every period billed once for each of the {expected} minutes that passed: {minutes:?}"
    );
    server.stop();
    store.close().await;
    database.drop_database().await;
}
