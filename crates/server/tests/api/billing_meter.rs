//! The meter charges in the database, chunk by chunk: concurrent runs whose chunks end anywhere (inside an
//! account, between currencies), periods closed between and during runs, periods from before per-minute
//! rates were stored, and rates that do not parse. Every period ends up billed for exactly its minutes at
//! its rate, once, and the ledger says exactly what the periods moved.

use std::collections::BTreeMap;

use barrack_api::{Currency, Tier};
use barrack_core::billing::MeterPace;
use barrack_core::clock::Clock;
use barrack_core::platform::money::per_minute_micros;
use barrack_store::billing::{self, PeriodRow, WalkOrder};
use barrack_store::sql::Columns;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    concurrent_runs_in_any_chunks_charge_every_minute_once,
    a_period_closed_between_runs_is_charged_to_its_end,
    a_run_charges_the_periods_due_and_counts_every_open_one_in_the_burn,
    rating_periods_waits_for_a_chunk_holding_them_instead_of_deadlocking,
    a_period_whose_id_is_taken_is_left_out_and_named,
    an_account_is_charged_once_a_run_and_what_a_stopped_run_owed_by_the_next,
);

const MINUTE_MS: i64 = 60_000;

pub(crate) fn period(
    id: String,
    (account, currency): (&str, &str),
    rate: &str,
    (started_at, carried_ms): (i64, i64),
    rated: bool,
) -> PeriodRow {
    PeriodRow {
        id: id.clone(),
        account_id: account.to_string(),
        resource_type: "volume".into(),
        resource_id: format!("vol-{id}"),
        resource_name: id,
        component: "storage".into(),
        details: "{}".into(),
        currency: currency.into(),
        hourly_rate: rate.into(),
        started_at,
        ended_at: None,
        billed_minutes: 0,
        billed_micros: 0,
        fully_billed: false,
        carried_ms,
        // Unrated periods are as from before the per-minute rate was stored.
        per_minute_micros: rated
            .then(|| rate.parse().ok().map(per_minute_micros))
            .flatten(),
    }
}

pub(crate) async fn insert_all(app: &TestApp, periods: &[PeriodRow]) {
    let mut tx = app.services().store().begin().await.unwrap();
    for p in periods {
        billing::insert(&mut tx, p).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// What the periods should hold at `now`: every whole minute up to their end or `now`, at their rate;
/// nothing for a rate that does not parse.
fn assert_billed_exactly(periods: &[PeriodRow], now: i64) {
    for p in periods {
        let Ok(rate) = p.hourly_rate.parse() else {
            assert_eq!(
                (p.billed_minutes, p.billed_micros, p.fully_billed),
                (0, 0, false),
                "{}: a rate that does not parse is never billed",
                p.id
            );
            continue;
        };
        let end = p.ended_at.map_or(now, |e| e.min(now));
        let minutes = ((end - (p.started_at - p.carried_ms)) / MINUTE_MS).max(0);
        assert_eq!(p.billed_minutes, minutes, "{} billed minutes", p.id);
        assert_eq!(
            p.billed_micros,
            minutes * per_minute_micros(rate),
            "{} billed micro-units",
            p.id
        );
        assert_eq!(
            p.fully_billed,
            p.ended_at.is_some(),
            "{} fully billed",
            p.id
        );
    }
}

/// The usage the ledger charged each account in each currency equals what its periods billed, and every
/// balance equals its ledger.
async fn assert_ledger_is_periods(app: &TestApp, accounts: &[&str], periods: &[PeriodRow]) {
    let store = app.services().store();
    let mut billed: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for p in periods {
        *billed.entry((&p.account_id, &p.currency)).or_default() += p.billed_micros;
    }
    for account in accounts {
        for currency in ["USD", "EUR"] {
            let usage = store
                .fetch_one(
                    "SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM ledger_entries \
                     WHERE account_id = $1 AND currency = $2 AND kind = 'usage'",
                    &[(*account).into(), currency.into()],
                )
                .await
                .unwrap();
            assert_eq!(
                -usage.int(0).unwrap(),
                billed.get(&(*account, currency)).copied().unwrap_or(0),
                "usage of {account} in {currency}"
            );
        }
        for (currency, micros) in store.balances(account).await.unwrap() {
            assert_eq!(
                store.ledger_sum(account, &currency).await.unwrap(),
                micros,
                "balance of {account} in {currency}"
            );
        }
    }
}

async fn periods_of(app: &TestApp, accounts: &[&str]) -> Vec<PeriodRow> {
    let mut all = Vec::new();
    for account in accounts {
        all.extend(
            app.services()
                .store()
                .all_periods(account, &Default::default())
                .await
                .unwrap(),
        );
    }
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all
}

async fn concurrent_runs_in_any_chunks_charge_every_minute_once(db: Db) {
    let app = TestApp::start_with(db, |c| c.billing.meter_rest_percent = 100).await;
    let (_, a) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let (_, b) = app.funded_user(Tier::Advanced, "US", "1000").await;
    app.grant(&b, "1000", Currency::EUR).await;
    let (_, c) = app.funded_user(Tier::Advanced, "DE", "1000").await;
    let accounts = [a.as_str(), b.as_str(), c.as_str()];
    let rates = ["2.49", "0.0068359375", "0.05", "9.96", "2.69"];
    let start = app.clock.now_ms();
    let mut seeded = Vec::new();
    // Inserted account after account in turn, so that the table's order (SQLite's rowids) and the
    // unbilled index's (account, id) order differ: chunks in either cut across accounts and currencies.
    for i in 0..60i64 {
        for (n, account) in accounts.iter().enumerate() {
            let currency = match n {
                0 => "USD",
                1 if i % 2 == 0 => "USD",
                _ => "EUR",
            };
            seeded.push(period(
                format!("BRK-{n}{i:03}VB"),
                (account, currency),
                rates[i as usize % rates.len()],
                // Starts off the minute and carries up to a minute, so minutes end anywhere.
                (start - (i * 7_919) % 600_000, (i * 13_337) % MINUTE_MS),
                i % 3 != 0,
            ));
        }
    }
    // Never charged, by any run.
    seeded.push(period(
        "BRK-0999VB".into(),
        (&a, "USD"),
        "n/a",
        (start, 0),
        false,
    ));
    insert_all(&app, &seeded).await;

    let billing = app.services().billing.clone();
    let store = app.services().store().clone();
    let mut minutes_reported = 0;
    for round in 0..6i64 {
        let before = app.clock.now_ms();
        app.clock.advance_ms(61_000 + round * 17_321);
        // State changes between runs: some periods closed at a moment since the last run.
        let mut tx = store.begin().await.unwrap();
        for (i, p) in seeded.iter().enumerate() {
            if i as i64 % 9 == round {
                billing::close(&mut tx, &p.id, before + (i as i64 * 4_999) % 61_000)
                    .await
                    .unwrap();
            }
        }
        tx.commit().await.unwrap();
        // Five runs at once, each cutting its chunks elsewhere and walking in either order, one resting
        // between its chunks as the server's periodic runs do, while other periods close at the runs'
        // own now.
        let runs: Vec<_> = [
            (3u32, WalkOrder::Physical, MeterPace::Full),
            (7, WalkOrder::Keys, MeterPace::Full),
            (40, WalkOrder::Physical, MeterPace::Full),
            (1000, WalkOrder::Keys, MeterPace::Full),
            (5, WalkOrder::Physical, MeterPace::Background),
        ]
        .into_iter()
        .map(|(size, order, pace)| {
            let billing = billing.clone();
            tokio::spawn(async move { billing.meter_walking(size, order, pace).await.unwrap() })
        })
        .collect();
        let closing = {
            let store = store.clone();
            let now = app.clock.now_ms();
            let ids: Vec<String> = seeded
                .iter()
                .enumerate()
                .filter(|(i, _)| *i as i64 % 9 == round + 3)
                .map(|(_, p)| p.id.clone())
                .collect();
            tokio::spawn(async move {
                for id in ids {
                    let mut tx = store.begin().await.unwrap();
                    billing::close(&mut tx, &id, now).await.unwrap();
                    tx.commit().await.unwrap();
                }
            })
        };
        for (n, run) in runs.into_iter().enumerate() {
            let run = run.await.unwrap();
            // Only the resting run rests, between its chunks (dozens of them).
            assert_eq!(
                run.rested.is_zero(),
                n != 4,
                "run {n} rested {:?}",
                run.rested
            );
            minutes_reported += run.minutes_billed;
        }
        closing.await.unwrap();
    }
    // One more run finishes the periods closed during the last runs.
    minutes_reported += billing.meter_in_chunks(11).await.unwrap().minutes_billed;
    let now = app.clock.now_ms();

    let periods = periods_of(&app, &accounts).await;
    assert_eq!(periods.len(), seeded.len());
    assert!(periods.iter().filter(|p| p.ended_at.is_some()).count() > 40);
    assert_billed_exactly(&periods, now);
    assert_eq!(
        minutes_reported,
        periods.iter().map(|p| p.billed_minutes as u64).sum::<u64>(),
        "the runs report each minute they billed, once"
    );
    assert_ledger_is_periods(&app, &accounts, &periods).await;
    assert_eq!(
        billing.meter_in_chunks(5).await.unwrap().periods_billed,
        0,
        "a replayed run bills nothing"
    );
    app.stop().await;
}

async fn a_period_closed_between_runs_is_charged_to_its_end(db: Db) {
    let app = TestApp::start(db).await;
    let (_, account) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let now = app.clock.now_ms();
    let start = now - now.rem_euclid(MINUTE_MS);
    // The same period stored with its per-minute rate and as from before it was stored, closed and left
    // open, and one whose rate does not parse.
    let seeded = vec![
        period(
            "BRK-A00001VB".into(),
            (&account, "USD"),
            "2.49",
            (start, 0),
            true,
        ),
        period(
            "BRK-A00002VB".into(),
            (&account, "USD"),
            "2.49",
            (start, 0),
            false,
        ),
        period(
            "BRK-A00003VB".into(),
            (&account, "USD"),
            "2.49",
            (start, 0),
            true,
        ),
        period(
            "BRK-A00004VB".into(),
            (&account, "USD"),
            "2.49",
            (start, 0),
            false,
        ),
        period(
            "BRK-A00005VB".into(),
            (&account, "USD"),
            "0.5x",
            (start, 0),
            false,
        ),
    ];
    insert_all(&app, &seeded).await;
    let billing = app.services().billing.clone();
    app.clock
        .advance_ms(start + 10 * MINUTE_MS + 30_000 - app.clock.now_ms());
    let run = billing.meter().await.unwrap();
    assert_eq!((run.periods_billed, run.minutes_billed), (4, 40));
    let usage = &run.accounts[&(account.clone(), "USD".to_string())];
    assert_eq!(
        usage.hourly,
        "9.96".parse().unwrap(),
        "the burn of the four open periods"
    );

    // Two of them end 12 minutes 59 seconds in; the meter runs again 30 minutes in.
    let store = app.services().store();
    let mut tx = store.begin().await.unwrap();
    for id in ["BRK-A00001VB", "BRK-A00002VB"] {
        assert!(
            billing::close(&mut tx, id, start + 12 * MINUTE_MS + 59_000)
                .await
                .unwrap()
        );
    }
    tx.commit().await.unwrap();
    app.clock.advance_ms(20 * MINUTE_MS);
    let run = billing.meter().await.unwrap();
    assert_eq!(
        (run.periods_billed, run.minutes_billed),
        (4, 2 * 2 + 2 * 20),
        "the closed periods billed to their end, the open ones to now"
    );
    let periods = periods_of(&app, &[&account]).await;
    let minutes: Vec<_> = periods
        .iter()
        .map(|p| (p.billed_minutes, p.billed_micros, p.fully_billed))
        .collect();
    assert_eq!(
        minutes,
        [
            (12, 12 * 41_500, true),
            (12, 12 * 41_500, true),
            (30, 30 * 41_500, false),
            (30, 30 * 41_500, false),
            (0, 0, false),
        ]
    );
    assert_billed_exactly(&periods, app.clock.now_ms());
    assert_ledger_is_periods(&app, &[&account], &periods).await;
    assert_eq!(
        billing.meter().await.unwrap().periods_billed,
        0,
        "a replayed run bills nothing"
    );
    app.stop().await;
}

/// A run seconds after the last finds most periods with no minute closed since: it charges those that
/// have one, leaves the others as they are, and still counts every open period in the account's burn.
async fn a_run_charges_the_periods_due_and_counts_every_open_one_in_the_burn(db: Db) {
    let app = TestApp::start(db).await;
    let (_, account) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let now = app.clock.now_ms();
    let start = now - now.rem_euclid(MINUTE_MS);
    // Started on the minute, 30 s and 45 s after it.
    let seeded: Vec<PeriodRow> = [0, 30_000, 45_000]
        .into_iter()
        .enumerate()
        .map(|(i, offset)| {
            period(
                format!("BRK-A0000{}VB", i + 1),
                (&account, "USD"),
                "2.49",
                (start + offset, 0),
                true,
            )
        })
        .collect();
    insert_all(&app, &seeded).await;
    let billing = app.services().billing.clone();
    // 70 s in: the first has a minute closed, the others none.
    app.clock
        .advance_ms(start + MINUTE_MS + 10_000 - app.clock.now_ms());
    let run = billing.meter().await.unwrap();
    assert_eq!((run.periods_billed, run.minutes_billed), (1, 1));
    assert_eq!(
        run.accounts[&(account.clone(), "USD".to_string())].hourly,
        "7.47".parse().unwrap(),
        "the burn of the three open periods, not of the one charged"
    );
    let periods = periods_of(&app, &[&account]).await;
    assert_eq!(
        periods.iter().map(|p| p.billed_minutes).collect::<Vec<_>>(),
        [1, 0, 0]
    );
    assert_billed_exactly(&periods, app.clock.now_ms());
    // 2 min 50 s in: two minutes of each.
    app.clock.advance_ms(MINUTE_MS + 40_000);
    let run = billing.meter().await.unwrap();
    assert_eq!((run.periods_billed, run.minutes_billed), (3, 5));
    let periods = periods_of(&app, &[&account]).await;
    assert_billed_exactly(&periods, app.clock.now_ms());
    assert_ledger_is_periods(&app, &[&account], &periods).await;
    app.stop().await;
}

/// However many chunks hold an account's periods, a run charges it one usage entry per currency; what a
/// run moved and did not get to charge (it stopped after a chunk) is charged by the next run, once.
async fn an_account_is_charged_once_a_run_and_what_a_stopped_run_owed_by_the_next(db: Db) {
    let app = TestApp::start(db).await;
    let (_, a) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let (_, b) = app.funded_user(Tier::Advanced, "US", "1000").await;
    app.grant(&b, "1000", Currency::EUR).await;
    let accounts = [a.as_str(), b.as_str()];
    let start = app.clock.now_ms();
    let mut seeded = Vec::new();
    // Interleaved, so that chunks of two periods each hold both accounts.
    for i in 0..12i64 {
        for (n, account) in accounts.iter().enumerate() {
            let currency = if n == 1 && i % 3 == 0 { "EUR" } else { "USD" };
            seeded.push(period(
                format!("BRK-{n}{i:03}OW"),
                (account, currency),
                "2.49",
                (start - i * 1_000, 0),
                true,
            ));
        }
    }
    insert_all(&app, &seeded).await;
    let store = app.services().store().clone();
    let billing = app.services().billing.clone();
    let usage_entries = |account: String| {
        let store = store.clone();
        async move {
            store
                .fetch_one(
                    "SELECT COUNT(*) FROM ledger_entries WHERE account_id = $1 AND kind = 'usage'",
                    &[account.as_str().into()],
                )
                .await
                .unwrap()
                .int(0)
                .unwrap()
        }
    };

    app.clock.advance_ms(2 * MINUTE_MS);
    let run = billing.meter_in_chunks(2).await.unwrap();
    assert_eq!(run.periods_billed, seeded.len() as u64);
    assert_eq!(usage_entries(a.clone()).await, 1, "one entry for a's USD");
    assert_eq!(
        usage_entries(b.clone()).await,
        2,
        "one each for b's USD and EUR"
    );
    for account in accounts {
        assert!(
            run.accounts
                .iter()
                .any(|((id, _), usage)| id == account && usage.balance_micros.is_some()),
            "the run reports {account}'s balance after its charge"
        );
    }

    // A run that stopped after its first chunk: the chunk's periods moved and owed, nothing charged.
    app.clock.advance_ms(MINUTE_MS);
    let now = app.clock.now_ms();
    let mut tx = store.begin().await.unwrap();
    let order = WalkOrder::Physical;
    let after = billing::walk_start(&mut tx, order).await.unwrap();
    let chunk = billing::Chunk {
        until: billing::chunk_end(&mut tx, &after, 5).await.unwrap(),
        after,
    };
    let due = billing::chunk_due(&mut tx, &chunk, now).await.unwrap();
    let expected: i64 = due.iter().map(|d| d.periods).sum();
    let moved = billing::advance_chunk(&mut tx, &chunk, now, false)
        .await
        .unwrap();
    assert_eq!((moved, expected), (5, 5));
    let mut owed: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for d in &due {
        let o = owed
            .entry((d.account_id.clone(), d.currency.clone()))
            .or_default();
        o.0 += d.micros;
        o.1 += d.periods;
    }
    let owed: Vec<billing::Owed> = owed
        .into_iter()
        .map(
            |((account_id, currency), (micros, periods))| billing::Owed {
                account_id,
                currency,
                micros,
                periods,
            },
        )
        .collect();
    billing::owe(&mut tx, &owed).await.unwrap();
    tx.commit().await.unwrap();
    let owed_rows = |store: barrack_store::Store| async move {
        store
            .fetch_one("SELECT COUNT(*) FROM meter_owed", &[])
            .await
            .unwrap()
            .int(0)
            .unwrap()
    };
    assert!(
        owed_rows(store.clone()).await > 0,
        "the stopped run's chunk is owed"
    );
    assert_eq!(usage_entries(a.clone()).await, 1, "and not charged");

    // Two runs at once after it: what it owed is charged once, with the rest of the minute.
    let runs: Vec<_> = [3u32, 50]
        .into_iter()
        .map(|size| {
            let billing = billing.clone();
            tokio::spawn(async move { billing.meter_in_chunks(size).await.unwrap() })
        })
        .collect();
    let mut billed = 0;
    for run in runs {
        billed += run.await.unwrap().periods_billed;
    }
    assert_eq!(billed, seeded.len() as u64 - 5, "the runs moved the others");
    let periods = periods_of(&app, &accounts).await;
    assert_billed_exactly(&periods, app.clock.now_ms());
    assert_ledger_is_periods(&app, &accounts, &periods).await;
    let left = owed_rows(store.clone()).await;
    assert_eq!(left, 0, "nothing is left owed after a run ends");
    app.stop().await;
}

/// Period ids are random: opening periods whose id is taken inserts the others, names the taken ones
/// for a new draw, and leaves the period holding the id, and the account's burn, as they were.
async fn a_period_whose_id_is_taken_is_left_out_and_named(db: Db) {
    let app = TestApp::start(db).await;
    let (_, account) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let now = app.clock.now_ms();
    let start = now - now.rem_euclid(MINUTE_MS);
    let holder = period(
        "BRK-TAKEN1VB".into(),
        (&account, "USD"),
        "2.49",
        (start, 0),
        true,
    );
    insert_all(&app, std::slice::from_ref(&holder)).await;
    let mut clash = period(
        "BRK-TAKEN1VB".into(),
        (&account, "USD"),
        "5",
        (start, 0),
        true,
    );
    clash.resource_id = "vol-another".into();
    let fresh = period(
        "BRK-FRESH1VB".into(),
        (&account, "USD"),
        "2.49",
        (start, 0),
        true,
    );

    let store = app.services().store();
    let mut tx = store.begin().await.unwrap();
    let taken = billing::insert_all(&mut tx, &[clash.clone(), fresh.clone()])
        .await
        .unwrap();
    assert_eq!(taken, ["BRK-TAKEN1VB"]);
    assert!(matches!(
        billing::insert(&mut tx, &clash).await,
        Err(barrack_store::StoreError::Unique(_))
    ));
    tx.commit().await.unwrap();
    assert_eq!(periods_of(&app, &[&account]).await, [fresh, holder]);
    app.clock.advance_ms(start + MINUTE_MS + 1_000 - now);
    let run = app.services().billing.meter().await.unwrap();
    assert_eq!(
        run.accounts[&(account.clone(), "USD".to_string())].hourly,
        "4.98".parse().unwrap(),
        "the burn counts the two periods inserted, not the one left out"
    );
    app.stop().await;
}

/// A run giving periods their per-minute charge locks them in the order a meter's chunk does, (account,
/// id), so the two wait for each other in turn. Here a chunk holds the first of two periods and then asks
/// for the second, while a rating of both, listed and stored the other way round, waits: taking the
/// second first, it would hold what the chunk asks for while waiting for what the chunk holds (a
/// deadlock on PostgreSQL, which aborts one of them).
async fn rating_periods_waits_for_a_chunk_holding_them_instead_of_deadlocking(db: Db) {
    let app = TestApp::start(db).await;
    let (_, a) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let (_, b) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let (first, second) = if a < b { (a, b) } else { (b, a) };
    let start = app.clock.now_ms();
    let earlier = period(
        "BRK-0000VB".into(),
        (&first, "USD"),
        "2.49",
        (start, 0),
        false,
    );
    let later = period(
        "BRK-9999VB".into(),
        (&second, "USD"),
        "2.49",
        (start, 0),
        false,
    );
    // Stored in the opposite order to the chunk's.
    insert_all(&app, &[later.clone(), earlier.clone()]).await;
    let store = app.services().store().clone();
    // The chunk holds its first period (on SQLite its transaction holds the writer already).
    let mut chunk = store.begin().await.unwrap();
    assert_eq!(hold_period(&mut chunk, &earlier.id).await.unwrap(), 1);

    let micros = per_minute_micros("2.49".parse().unwrap());
    let rated: Vec<(String, String, i64)> = [&later, &earlier]
        .iter()
        .map(|p| (p.id.clone(), p.hourly_rate.clone(), micros))
        .collect();
    let rating = tokio::spawn({
        let store = store.clone();
        async move {
            let mut tx = store.begin().await?;
            let done = billing::rate_periods(&mut tx, &rated).await?;
            tx.commit().await?;
            Ok::<_, barrack_store::StoreError>(done)
        }
    });
    // The rating is under way (on PostgreSQL, waiting for the held period) when the chunk goes on.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let held = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        hold_period(&mut chunk, &later.id),
    )
    .await
    .expect("the chunk's second period is not held by the rating")
    .expect("the chunk takes its second period");
    assert_eq!(held, 1);
    chunk.commit().await.unwrap();
    let rated = tokio::time::timeout(std::time::Duration::from_secs(10), rating)
        .await
        .expect("the rating ends once the chunk commits")
        .unwrap()
        .expect("the rating commits");
    assert_eq!(rated, 2);
    let periods = periods_of(&app, &[first.as_str(), second.as_str()]).await;
    assert!(
        periods.iter().all(|p| p.per_minute_micros == Some(micros)),
        "{periods:?}"
    );
    app.stop().await;
}

/// Locks a period as the meter's chunk does, by writing it.
async fn hold_period(tx: &mut barrack_store::Tx, id: &str) -> barrack_store::Result<u64> {
    use barrack_store::Db;
    tx.execute(
        "UPDATE billing_periods SET billed_minutes = billed_minutes WHERE id = $1",
        &[id.into()],
    )
    .await
}
