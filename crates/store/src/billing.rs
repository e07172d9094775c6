//! Billing periods, and the meter's conditional advance of them.

use std::sync::LazyLock;

use crate::sql::{Columns, Listing, placeholders};
use crate::{Backend, Bind, Db, Result, Row, Store, Tx, binds};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodRow {
    pub id: String,
    pub account_id: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: String,
    /// `compute`, `os_disk`, `hibernation`, `storage` or `snapshot`.
    pub component: String,
    /// JSON describing what is billed (model and count, size and type, ...), fixed with the rate.
    pub details: String,
    pub currency: String,
    /// Exact decimal, per hour, fixed when the period starts.
    pub hourly_rate: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub billed_minutes: i64,
    pub billed_micros: i64,
    pub fully_billed: bool,
    /// Milliseconds the resource's previous period at the same rate left short of a whole minute, counted
    /// as already elapsed in this one (see [`carry_for`]).
    pub carried_ms: i64,
    /// What a minute costs in micro-units (the hourly rate / 60, rounded once); `None` until known, and
    /// then never charged (see [`unrated_periods`]).
    pub per_minute_micros: Option<i64>,
}

const COLUMNS: &str = "id, account_id, resource_type, resource_id, resource_name, component, details, currency, \
     hourly_rate, started_at, ended_at, billed_minutes, billed_micros, fully_billed, carried_ms, per_minute_micros";

fn from_row(row: &Row) -> Result<PeriodRow> {
    Ok(PeriodRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        resource_type: row.text(2)?,
        resource_id: row.text(3)?,
        resource_name: row.text(4)?,
        component: row.text(5)?,
        details: row.text(6)?,
        currency: row.text(7)?,
        hourly_rate: row.text(8)?,
        started_at: row.int(9)?,
        ended_at: row.opt_int(10)?,
        billed_minutes: row.int(11)?,
        billed_micros: row.int(12)?,
        fully_billed: row.flag(13)?,
        carried_ms: row.int(14)?,
        per_minute_micros: row.opt_int(15)?,
    })
}

/// Inserts one period; a taken id is `StoreError::Unique`.
pub async fn insert(db: &mut impl Db, p: &PeriodRow) -> Result<()> {
    match insert_all(db, std::slice::from_ref(p)).await?.first() {
        Some(taken) => Err(crate::StoreError::Unique(format!(
            "billing period id {taken}"
        ))),
        None => Ok(()),
    }
}

/// Opens `periods` in one statement (on PostgreSQL, one fold of the rate counts' notes for all of them),
/// and returns the ids it found taken: those periods are not inserted, and the caller draws them new ids
/// (random ids of the documented length meet at a million periods and more).
pub async fn insert_all(db: &mut impl Db, periods: &[PeriodRow]) -> Result<Vec<String>> {
    if periods.is_empty() {
        return Ok(Vec::new());
    }
    let width = crate::sql::column_count(COLUMNS);
    let rows: Vec<String> = (0..periods.len())
        .map(|i| format!("({})", placeholders(i * width + 1, width)))
        .collect();
    let sql = format!(
        "INSERT INTO billing_periods ({COLUMNS}) VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id",
        rows.join(", ")
    );
    let mut binds: Vec<Bind> = Vec::with_capacity(periods.len() * width);
    for p in periods {
        binds.extend(binds![
            &p.id,
            &p.account_id,
            &p.resource_type,
            &p.resource_id,
            &p.resource_name,
            &p.component,
            &p.details,
            &p.currency,
            &p.hourly_rate,
            p.started_at,
            p.ended_at,
            p.billed_minutes,
            p.billed_micros,
            p.fully_billed,
            p.carried_ms,
            p.per_minute_micros,
        ]);
    }
    let inserted = db
        .fetch_all(&sql, &binds)
        .await?
        .iter()
        .map(|row| row.text(0))
        .collect::<Result<std::collections::HashSet<String>>>()?;
    Ok(periods
        .iter()
        .filter(|p| !inserted.contains(&p.id))
        .map(|p| p.id.clone())
        .collect())
}

/// A resource's open periods, and whether it has any closed one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourcePeriods {
    pub open: Vec<PeriodRow>,
    /// Whether a period of the resource ever ended: when none did (an instance's first start), there is
    /// nothing to carry into new periods and [`last_closed`] need not be asked.
    pub any_closed: bool,
}

/// The resource's open periods and whether it has a closed one, in one read inside a transaction.
pub async fn resource_periods(tx: &mut Tx, resource_id: &str) -> Result<ResourcePeriods> {
    // The one-row side keeps the answer when the resource has no open period.
    let sql = format!(
        "SELECT {COLUMNS}, c.any_closed FROM (SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM billing_periods \
         WHERE resource_id = $1 AND ended_at IS NOT NULL) THEN 1 ELSE 0 END AS BIGINT) AS any_closed) c \
         LEFT JOIN billing_periods ON resource_id = $1 AND ended_at IS NULL ORDER BY started_at, id"
    );
    let rows = tx.fetch_all(&sql, &binds![resource_id]).await?;
    let mut periods = ResourcePeriods::default();
    let flag = crate::sql::column_count(COLUMNS);
    for row in &rows {
        periods.any_closed = row.int(flag)? == 1;
        if row.opt_text(0)?.is_some() {
            periods.open.push(from_row(row)?);
        }
    }
    Ok(periods)
}

/// The latest closed period of the resource's `component` at `hourly_rate` in `currency`, as (started_at,
/// ended_at, carried_ms): what it left short of a whole minute is carried into the next such period.
pub async fn last_closed(
    tx: &mut Tx,
    (resource_id, component): (&str, &str),
    (currency, hourly_rate): (&str, &str),
) -> Result<Option<(i64, i64, i64)>> {
    let row = tx
        .fetch_optional(
            "SELECT started_at, ended_at, carried_ms FROM billing_periods \
             WHERE resource_id = $1 AND component = $2 AND currency = $3 AND hourly_rate = $4 \
             AND ended_at IS NOT NULL ORDER BY ended_at DESC, started_at DESC LIMIT 1",
            &binds![resource_id, component, currency, hourly_rate],
        )
        .await?;
    row.map(|r| Ok((r.int(0)?, r.int(1)?, r.int(2)?)))
        .transpose()
}

/// Ends an open period at `at` (its remaining minutes are billed by the next meter tick).
pub async fn close(tx: &mut Tx, id: &str, at: i64) -> Result<bool> {
    let done = tx
        .execute(
            "UPDATE billing_periods SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL",
            &binds![id, at],
        )
        .await?;
    Ok(done == 1)
}

/// Periods with minutes left to bill whose per-minute charge is not known (inserted before it was stored,
/// or whose rate changed since), after `after` in id order, as (id, hourly rate).
pub async fn unrated_periods(
    tx: &mut Tx,
    after: &str,
    limit: u32,
) -> Result<Vec<(String, String)>> {
    tx.fetch_all(
        "SELECT id, hourly_rate FROM billing_periods \
         WHERE per_minute_micros IS NULL AND fully_billed = 0 AND id > $1 ORDER BY id LIMIT $2",
        &binds![after, i64::from(limit)],
    )
    .await?
    .iter()
    .map(|row| Ok((row.text(0)?, row.text(1)?)))
    .collect()
}

/// Records the per-minute charges of periods as (id, hourly rate, micro-units), each only while its rate
/// is still the one the charge was computed from; returns how many were recorded. The batch travels as
/// one JSON parameter: binding thousands of parameters one by one costs more than the update itself.
/// PostgreSQL locks the batch's periods in (account, id) order first, the order a meter's chunk locks
/// them in ([`chunk_due`]), so that a run rating periods and another's chunk holding some of them wait
/// for each other instead of deadlocking.
pub async fn rate_periods(tx: &mut Tx, rated: &[(String, String, i64)]) -> Result<u64> {
    if rated.is_empty() {
        return Ok(0);
    }
    let json = serde_json::Value::Array(
        rated
            .iter()
            .map(|(id, rate, micros)| serde_json::json!([id, rate, micros]))
            .collect(),
    )
    .to_string();
    let sql = match tx.backend() {
        Backend::Sqlite => {
            "UPDATE billing_periods SET per_minute_micros = j.value->>2 FROM json_each($1) AS j \
             WHERE billing_periods.id = j.value->>0 AND billing_periods.hourly_rate = j.value->>1 \
             AND billing_periods.per_minute_micros IS NULL"
        }
        Backend::Postgres => {
            "WITH locked AS MATERIALIZED (SELECT id FROM billing_periods \
             WHERE id IN (SELECT j.value->>0 FROM jsonb_array_elements($1::JSONB) AS j (value)) \
             ORDER BY account_id, id FOR UPDATE) \
             UPDATE billing_periods SET per_minute_micros = (j.value->>2)::BIGINT \
             FROM jsonb_array_elements($1::JSONB) AS j (value), locked \
             WHERE billing_periods.id = locked.id AND billing_periods.id = j.value->>0 \
             AND billing_periods.hourly_rate = j.value->>1 AND billing_periods.per_minute_micros IS NULL"
        }
    };
    tx.execute(sql, &binds![json]).await
}

/// Where the meter's walk through the periods with minutes left to bill stands. SQLite walks them in
/// rowid order, the order of the table's pages, so that a chunk reads and rewrites few pages, each once;
/// PostgreSQL walks them in (account, id) order, locking each chunk's rows in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    Row(i64),
    Key(String, String),
}

/// A stretch of the meter's walk: the periods after `after` up to and including `until` (to the end when
/// `None`).
#[derive(Debug, Clone)]
pub struct Chunk {
    pub after: Mark,
    pub until: Option<Mark>,
}

impl Chunk {
    /// The chunk's condition, with placeholders from `$2` (`$1` is the meter's now).
    fn range(&self) -> (String, Vec<Bind<'_>>) {
        let mut binds: Vec<Bind<'_>> = Vec::new();
        let mut sql = String::new();
        for (mark, op) in [(Some(&self.after), ">"), (self.until.as_ref(), "<=")] {
            let Some(mark) = mark else { continue };
            if !sql.is_empty() {
                sql.push_str(" AND ");
            }
            let n = binds.len() + 2;
            match mark {
                Mark::Row(rowid) => {
                    sql.push_str(&format!("rowid {op} ${n}"));
                    binds.push((*rowid).into());
                }
                Mark::Key(account, id) => {
                    sql.push_str(&format!("(account_id, id) {op} (${n}, ${})", n + 1));
                    binds.extend([account.as_str().into(), id.as_str().into()]);
                }
            }
        }
        (sql, binds)
    }
}

/// The order of the meter's walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkOrder {
    /// The order of the table's pages where the database has one (SQLite's rowids); the unbilled index's
    /// elsewhere.
    Physical,
    /// The unbilled index's (account, id) order, on both databases.
    Keys,
}

/// Where the meter's walk starts: in rowid order just before the first period with minutes left to bill
/// (read off the unbilled index, so that the billed history before it is never read); in key order
/// before every key.
pub async fn walk_start(tx: &mut Tx, order: WalkOrder) -> Result<Mark> {
    match (tx.backend(), order) {
        (Backend::Sqlite, WalkOrder::Physical) => {
            let row = tx
                .fetch_one(
                    "SELECT COALESCE(MIN(rowid), 1) - 1 FROM billing_periods \
                     INDEXED BY billing_periods_unbilled WHERE fully_billed = 0",
                    &[],
                )
                .await?;
            Ok(Mark::Row(row.int(0)?))
        }
        _ => Ok(Mark::Key(String::new(), String::new())),
    }
}

/// The last period of the chunk of `size` unbilled periods after `after`, or `None` when fewer are left
/// (the chunk runs to the end). On SQLite read in rowid order from the table itself, which brings the
/// chunk's pages in for its aggregate and update; on PostgreSQL off the unbilled index alone.
pub async fn chunk_end(tx: &mut Tx, after: &Mark, size: u32) -> Result<Option<Mark>> {
    let offset = i64::from(size.max(1)) - 1;
    match after {
        Mark::Row(rowid) => {
            let row = tx
                .fetch_optional(
                    "SELECT rowid FROM billing_periods WHERE fully_billed = 0 AND rowid > $1 \
                     ORDER BY rowid LIMIT 1 OFFSET $2",
                    &binds![*rowid, offset],
                )
                .await?;
            row.map(|r| Ok(Mark::Row(r.int(0)?))).transpose()
        }
        Mark::Key(account, id) => {
            let row = tx
                .fetch_optional(
                    "SELECT account_id, id FROM billing_periods WHERE fully_billed = 0 \
                     AND (account_id, id) > ($1, $2) ORDER BY account_id, id LIMIT 1 OFFSET $3",
                    &binds![account.as_str(), id.as_str(), offset],
                )
                .await?;
            row.map(|r| Ok(Mark::Key(r.text(0)?, r.text(1)?)))
                .transpose()
        }
    }
}

/// The whole minutes of a period up to `$1` (the meter's now), its carry included and never fewer than
/// already billed: `minutes_until` of the meter, in SQL (integer division truncates on both databases).
fn minutes_sql(backend: Backend) -> String {
    let (greatest, least) = match backend {
        Backend::Sqlite => ("max", "min"),
        Backend::Postgres => ("GREATEST", "LEAST"),
    };
    format!(
        "{greatest}(billed_minutes, ({least}(COALESCE(ended_at, $1), $1) - (started_at - carried_ms)) / 60000)"
    )
}

/// What a chunk holds to charge for one account, currency and hourly rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkDue {
    pub account_id: String,
    pub currency: String,
    pub hourly_rate: String,
    /// Micro-units the new minutes cost.
    pub micros: i64,
    pub minutes: i64,
    /// Periods whose billed minutes move or that are billed to their end.
    pub periods: i64,
    /// Periods still open at the meter's now (the account's burn).
    pub open: i64,
    /// Periods closed by the meter's now, billed to their end by this chunk.
    pub closed: i64,
}

/// Inside the meter's transaction: what the chunk's periods with a known per-minute charge owe up to
/// `now`, summed in the database by account, currency and rate. The chunk's periods are the
/// transaction's until it ends: SQLite's write lock is already held (`BEGIN IMMEDIATE`, taken before the
/// chunk's end was read), and PostgreSQL locks them
/// in (account, id) order in this very statement, waiting for a meter that holds some and then summing what
/// it left.
pub async fn chunk_due(tx: &mut Tx, chunk: &Chunk, now: i64) -> Result<Vec<ChunkDue>> {
    let backend = tx.backend();
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "ORDER BY account_id, id FOR UPDATE",
    };
    let (range, range_binds) = chunk.range();
    let sql = format!(
        "SELECT account_id, currency, hourly_rate, CAST(SUM(per_minute_micros * moved) AS BIGINT), \
         CAST(SUM(moved) AS BIGINT), CAST(SUM(CASE WHEN moved > 0 OR closed = 1 THEN 1 ELSE 0 END) AS BIGINT), \
         CAST(SUM(1 - closed) AS BIGINT), CAST(SUM(closed) AS BIGINT) \
         FROM (SELECT account_id, currency, hourly_rate, per_minute_micros, \
         {minutes} - billed_minutes AS moved, CASE WHEN ended_at <= $1 THEN 1 ELSE 0 END AS closed \
         FROM billing_periods WHERE fully_billed = 0 AND {range} {lock}) AS p \
         WHERE per_minute_micros IS NOT NULL \
         GROUP BY account_id, currency, hourly_rate ORDER BY account_id, currency, hourly_rate",
        minutes = minutes_sql(backend),
    );
    let mut binds: Vec<Bind<'_>> = vec![now.into()];
    binds.extend(range_binds);
    tx.fetch_all(&sql, &binds)
        .await?
        .iter()
        .map(|row| {
            Ok(ChunkDue {
                account_id: row.text(0)?,
                currency: row.text(1)?,
                hourly_rate: row.text(2)?,
                micros: row.int(3)?,
                minutes: row.int(4)?,
                periods: row.int(5)?,
                open: row.int(6)?,
                closed: row.int(7)?,
            })
        })
        .collect()
}

/// Inside the same transaction, after [`chunk_due`]: moves the billed minutes and micro-units of the
/// chunk's periods with a known charge to `now`, and marks those closed by then billed to their end;
/// returns how many periods moved, which is what `chunk_due` counted unless a period joined the chunk in
/// between. Open periods and closed ones go in separate statements, because writing `fully_billed` at
/// all makes SQLite rewrite the partial indexes' entries; the closed ones are found through their own
/// small index (`closed` says whether there are any).
pub async fn advance_chunk(tx: &mut Tx, chunk: &Chunk, now: i64, closed: bool) -> Result<u64> {
    let minutes = minutes_sql(tx.backend());
    let (range, range_binds) = chunk.range();
    let mut binds: Vec<Bind<'_>> = vec![now.into()];
    binds.extend(range_binds);
    let set = format!(
        "billed_minutes = {minutes}, billed_micros = billed_micros + per_minute_micros * ({minutes} - billed_minutes)"
    );
    let mut moved = tx
        .execute(
            &format!(
                "UPDATE billing_periods SET {set} WHERE fully_billed = 0 AND {range} \
                 AND per_minute_micros IS NOT NULL AND (ended_at IS NULL OR ended_at > $1) \
                 AND {minutes} > billed_minutes"
            ),
            &binds,
        )
        .await?;
    if closed {
        moved += tx
            .execute(
                &format!(
                    "UPDATE billing_periods SET {set}, fully_billed = 1 \
                     WHERE fully_billed = 0 AND ended_at IS NOT NULL AND {range} \
                     AND per_minute_micros IS NOT NULL AND ended_at <= $1"
                ),
                &binds,
            )
            .await?;
    }
    Ok(moved)
}

/// What the meter has moved on an account's periods in one currency and not charged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    pub account_id: String,
    pub currency: String,
    pub micros: i64,
    /// Period charges it sums (a period counts once per chunk that moved it).
    pub periods: i64,
}

/// Inside a meter chunk's transaction, after [`advance_chunk`]: adds what the chunk moved to what each
/// account owes, in one statement. `owed` must be in (account, currency) order, the order
/// [`settle_owed`] takes the rows in, so that a chunk and a settlement never wait for each other's rows
/// in opposite orders. The batch travels as one JSON parameter, as in [`rate_periods`].
pub async fn owe(tx: &mut Tx, owed: &[Owed]) -> Result<()> {
    if owed.is_empty() {
        return Ok(());
    }
    let json = serde_json::Value::Array(
        owed.iter()
            .map(|o| serde_json::json!([o.account_id, o.currency, o.micros, o.periods]))
            .collect(),
    )
    .to_string();
    let rows = match tx.backend() {
        // `WHERE true` tells SQLite's parser the ON CONFLICT is the insert's, not a join's.
        Backend::Sqlite => {
            "SELECT j.value->>0, j.value->>1, j.value->>2, j.value->>3 FROM json_each($1) AS j WHERE true"
        }
        Backend::Postgres => {
            "SELECT j.value->>0, j.value->>1, (j.value->>2)::BIGINT, (j.value->>3)::BIGINT \
             FROM jsonb_array_elements($1::JSONB) WITH ORDINALITY AS j (value, n) ORDER BY j.n"
        }
    };
    tx.execute(
        &format!(
            "INSERT INTO meter_owed (account_id, currency, micros, periods) {rows} \
             ON CONFLICT (account_id, currency) DO UPDATE \
             SET micros = meter_owed.micros + excluded.micros, periods = meter_owed.periods + excluded.periods"
        ),
        &binds![json],
    )
    .await?;
    Ok(())
}

/// Up to `limit` of the accounts and currencies with something owed, after `after` in (account,
/// currency) order.
pub async fn owing(
    db: &mut impl Db,
    after: Option<&(String, String)>,
    limit: u32,
) -> Result<Vec<(String, String)>> {
    let (account, currency) = after.map_or(("", ""), |(a, c)| (a.as_str(), c.as_str()));
    db.fetch_all(
        "SELECT account_id, currency FROM meter_owed \
         WHERE account_id > $1 OR (account_id = $1 AND currency > $2) \
         ORDER BY account_id, currency LIMIT $3",
        &binds![account, currency, i64::from(limit)],
    )
    .await?
    .iter()
    .map(|row| Ok((row.text(0)?, row.text(1)?)))
    .collect()
}

/// Inside the transaction that charges it: takes what an account owes in a currency off the table
/// (`None` when another run took it first). The caller charges it to the ledger in the same transaction.
pub async fn settle_owed(tx: &mut Tx, account_id: &str, currency: &str) -> Result<Option<Owed>> {
    tx.fetch_optional(
        "DELETE FROM meter_owed WHERE account_id = $1 AND currency = $2 RETURNING micros, periods",
        &binds![account_id, currency],
    )
    .await?
    .map(|row| {
        Ok(Owed {
            account_id: account_id.to_string(),
            currency: currency.to_string(),
            micros: row.int(0)?,
            periods: row.int(1)?,
        })
    })
    .transpose()
}

/// Which periods a listing wants.
#[derive(Debug, Clone, Default)]
pub struct PeriodFilter {
    pub resource_types: Vec<String>,
    pub components: Vec<String>,
    /// Only periods overlapping [from, to).
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub resource_id: Option<String>,
}

impl Store {
    /// A page of the account's periods matching `filter`, newest first, and how many match.
    pub async fn periods(
        &self,
        account_id: &str,
        filter: &PeriodFilter,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<PeriodRow>, u64)> {
        let (condition, binds) = period_condition(account_id, filter);
        let listing = Listing {
            table: "billing_periods",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "started_at DESC, id DESC",
            source: None,
        };
        let (rows, total) = listing.page(self, offset, limit).await?;
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }

    /// The hourly rates of the account's open periods of `component` in `currency`, as stored (what
    /// they bill now, whatever the prices say since they opened).
    pub async fn open_rates(
        &self,
        account_id: &str,
        component: &str,
        currency: &str,
    ) -> Result<Vec<String>> {
        let rows = self
            .fetch_all(
                "SELECT hourly_rate FROM billing_periods WHERE account_id = $1 AND component = $2 \
                 AND currency = $3 AND ended_at IS NULL",
                &binds![account_id, component, currency],
            )
            .await?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    /// Every period of the account matching `filter` (for summaries over all pages).
    pub async fn all_periods(
        &self,
        account_id: &str,
        filter: &PeriodFilter,
    ) -> Result<Vec<PeriodRow>> {
        let (condition, binds) = period_condition(account_id, filter);
        let sql = format!(
            "SELECT {COLUMNS} FROM billing_periods WHERE {condition} ORDER BY started_at, id"
        );
        let rows = self.fetch_all(&sql, &binds).await?;
        rows.iter().map(from_row).collect()
    }
}

fn period_condition<'a>(account_id: &'a str, filter: &'a PeriodFilter) -> (String, Vec<Bind<'a>>) {
    let mut conditions = vec!["account_id = $1".to_string()];
    let mut binds: Vec<Bind<'a>> = vec![account_id.into()];
    let mut any_of = |column: &str, values: &'a [String], binds: &mut Vec<Bind<'a>>| {
        if values.is_empty() {
            return;
        }
        let mut placeholders = Vec::new();
        for v in values {
            binds.push(v.into());
            placeholders.push(format!("${}", binds.len()));
        }
        conditions.push(format!("{column} IN ({})", placeholders.join(", ")));
    };
    any_of("resource_type", &filter.resource_types, &mut binds);
    any_of("component", &filter.components, &mut binds);
    if let Some(id) = &filter.resource_id {
        binds.push(id.into());
        conditions.push(format!("resource_id = ${}", binds.len()));
    }
    if let Some(to) = filter.to_ms {
        binds.push(to.into());
        conditions.push(format!("started_at < ${}", binds.len()));
    }
    if let Some(from) = filter.from_ms {
        binds.push(from.into());
        conditions.push(format!("(ended_at IS NULL OR ended_at > ${})", binds.len()));
    }
    (conditions.join(" AND "), binds)
}

/// What an account has committed to spend per hour in one currency, as the database holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commitments {
    /// The balance in micro-units.
    pub balance: i64,
    /// The hourly rates of its open periods, each with how many open periods have it.
    pub rates: Vec<(String, i64)>,
    /// Its instances on their way to a billed state, by shape.
    pub heading: Vec<crate::instances::HeadingShape>,
    /// Its volumes being created: type and size in GB.
    pub creating_volumes: Vec<(String, i64)>,
    /// Its snapshots being created (billed once they succeed): tier and how many.
    pub creating_snapshots: Vec<(String, i64)>,
}

/// The commitment's read, with the account, the currency and the written instance as $1, $2 and $3: one
/// row set, each row tagged with what it is: 0 the balance, 1 a rate, 2 a heading shape, 3 a volume, 4
/// snapshots of a tier.
pub(crate) static COMMITMENTS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT CAST(0 AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), \
         amount_micros, CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT) \
         FROM balances WHERE account_id = $1 AND currency = $2 \
         UNION ALL SELECT 1, hourly_rate, NULL, NULL, CAST(SUM(periods) AS BIGINT), 0, 0, 0 \
         FROM open_period_rates WHERE account_id = $1 AND currency = $2 \
         GROUP BY hourly_rate HAVING SUM(periods) > 0 \
         UNION ALL {} \
         UNION ALL SELECT 3, volume_type, NULL, NULL, size_gb, 0, 0, 0 FROM volumes \
         WHERE account_id = $1 AND currency = $2 AND status = 'creating' \
         AND (instance_id IS NULL OR instance_id <> $3) \
         UNION ALL SELECT 4, tier, NULL, NULL, COUNT(*), 0, 0, 0 FROM snapshots \
         WHERE account_id = $1 AND currency = $2 AND status = 'CREATING' GROUP BY tier",
        crate::instances::heading_shapes_sql("2")
    )
});

/// What an account has committed to spend per hour in one currency, read inside the transaction that is
/// about to commit more, in one statement after the account's lock: the balance, the open periods' rates
/// from the counts triggers keep per account and rate (an account may have tens of thousands of open
/// periods, and a handful of distinct rates), the instances heading to a billed state counted by shape,
/// and the volumes being created. On PostgreSQL the account's row is locked first, by a statement of its
/// own (in the function `account_commitments`, which then runs this read, written in it: one round
/// trip) so that the read sees what the transaction it waited for committed; two such transactions of
/// one account so run one after the other (SQLite's write transactions are serial already). The lock
/// leaves rows that point at the account (a worker's new period, say) free to be written meanwhile.
/// `written`, when given, is an instance the transaction has written already: it and the volumes created
/// with it are left out (the caller counts them itself). A plain deploy reads it with its address and
/// GPUs ([`crate::admission`]).
pub async fn commitments(
    tx: &mut Tx,
    account_id: &str,
    currency: &str,
    written: Option<&str>,
) -> Result<Commitments> {
    // No instance has an empty id.
    let written = written.unwrap_or("");
    let rows = match tx.backend() {
        // The lock, then the read, in one round trip (migrations 0035 and 0038).
        Backend::Postgres => {
            tx.fetch_all(
                "SELECT * FROM account_commitments($1, $2, $3)",
                &binds![account_id, currency, written],
            )
            .await?
        }
        Backend::Sqlite => {
            tx.fetch_all(&COMMITMENTS_SQL, &binds![account_id, currency, written])
                .await?
        }
    };
    commitments_from(&rows)
}

/// [`Commitments`] from the rows of [`COMMITMENTS_SQL`].
pub(crate) fn commitments_from(rows: &[Row]) -> Result<Commitments> {
    let mut commitments = Commitments::default();
    for row in rows {
        match row.int(0)? {
            0 => commitments.balance = row.int(4)?,
            1 => commitments.rates.push((row.text(1)?, row.int(4)?)),
            2 => commitments
                .heading
                .push(crate::instances::heading_shape_from(row, 1)?),
            3 => commitments
                .creating_volumes
                .push((row.text(1)?, row.int(4)?)),
            _ => commitments
                .creating_snapshots
                .push((row.text(1)?, row.int(4)?)),
        }
    }
    commitments.rates.sort();
    Ok(commitments)
}

/// An account whose credit in a currency ran out (see the `depletions` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepletionRow {
    pub account_id: String,
    pub currency: String,
    pub started_at: i64,
    pub delete_after: i64,
    /// `suspended`, `warned` (the deletion notice is out) or `deletion_due`.
    pub stage: String,
}

/// Records that the account's credit in `currency` ran out at `now`; false if it already had.
pub async fn start_depletion(
    tx: &mut Tx,
    (account_id, currency): (&str, &str),
    now: i64,
    delete_after: i64,
) -> Result<bool> {
    let done = tx
        .execute(
            "INSERT INTO depletions (account_id, currency, started_at, delete_after, stage) \
             VALUES ($1, $2, $3, $4, 'suspended') ON CONFLICT (account_id, currency) DO NOTHING",
            &binds![account_id, currency, now, delete_after],
        )
        .await?;
    Ok(done == 1)
}

/// Whether the account's credit in `currency` has run out (and not come back).
pub async fn is_depleted(tx: &mut Tx, account_id: &str, currency: &str) -> Result<bool> {
    Ok(tx
        .fetch_optional(
            "SELECT 1 FROM depletions WHERE account_id = $1 AND currency = $2",
            &binds![account_id, currency],
        )
        .await?
        .is_some())
}

/// Moves a depletion from stage `from` to `to`; false if another run did first.
pub async fn advance_depletion(
    tx: &mut Tx,
    (account_id, currency): (&str, &str),
    from: &str,
    to: &str,
) -> Result<bool> {
    let done = tx
        .execute(
            "UPDATE depletions SET stage = $4 WHERE account_id = $1 AND currency = $2 AND stage = $3",
            &binds![account_id, currency, from, to],
        )
        .await?;
    Ok(done == 1)
}

/// Ends a depletion (credit is back); false if another run did first.
pub async fn end_depletion(tx: &mut Tx, account_id: &str, currency: &str) -> Result<bool> {
    let done = tx
        .execute(
            "DELETE FROM depletions WHERE account_id = $1 AND currency = $2",
            &binds![account_id, currency],
        )
        .await?;
    Ok(done == 1)
}

/// Closes at `at` the account's open periods in `currency` of the given components; returns the
/// resources they billed, as (resource type, id, name).
pub async fn close_components(
    tx: &mut Tx,
    (account_id, currency): (&str, &str),
    components: &[&str],
    at: i64,
) -> Result<Vec<(String, String, String)>> {
    let mut binds: Vec<Bind<'_>> = vec![account_id.into(), currency.into()];
    let mut placeholders = Vec::new();
    for component in components {
        binds.push((*component).into());
        placeholders.push(format!("${}", binds.len()));
    }
    let condition = format!(
        "account_id = $1 AND currency = $2 AND ended_at IS NULL AND component IN ({})",
        placeholders.join(", ")
    );
    let rows = tx
        .fetch_all(
            &format!(
                "SELECT resource_type, resource_id, resource_name FROM billing_periods WHERE {condition} \
                 ORDER BY resource_type, resource_id"
            ),
            &binds,
        )
        .await?;
    let resources = rows
        .iter()
        .map(|r| Ok((r.text(0)?, r.text(1)?, r.text(2)?)))
        .collect::<Result<Vec<_>>>()?;
    binds.push(at.into());
    tx.execute(
        &format!(
            "UPDATE billing_periods SET ended_at = ${} WHERE {condition}",
            binds.len()
        ),
        &binds,
    )
    .await?;
    Ok(resources)
}

/// The resources whose periods of the given components a depletion closed at `at`, as (type, id).
pub async fn closed_at(
    tx: &mut Tx,
    (account_id, currency): (&str, &str),
    components: &[&str],
    at: i64,
) -> Result<Vec<(String, String)>> {
    let mut binds: Vec<Bind<'_>> = vec![account_id.into(), currency.into(), at.into()];
    let mut placeholders = Vec::new();
    for component in components {
        binds.push((*component).into());
        placeholders.push(format!("${}", binds.len()));
    }
    let sql = format!(
        "SELECT DISTINCT resource_type, resource_id FROM billing_periods \
         WHERE account_id = $1 AND currency = $2 AND ended_at = $3 AND component IN ({}) \
         ORDER BY resource_type, resource_id",
        placeholders.join(", ")
    );
    tx.fetch_all(&sql, &binds)
        .await?
        .iter()
        .map(|r| Ok((r.text(0)?, r.text(1)?)))
        .collect()
}

impl Store {
    /// Every account and currency whose credit has run out, oldest first.
    pub async fn depletions(&self) -> Result<Vec<DepletionRow>> {
        self.fetch_all(
            "SELECT account_id, currency, started_at, delete_after, stage FROM depletions \
             ORDER BY started_at, account_id, currency",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(DepletionRow {
                account_id: r.text(0)?,
                currency: r.text(1)?,
                started_at: r.int(2)?,
                delete_after: r.int(3)?,
                stage: r.text(4)?,
            })
        })
        .collect()
    }
}
