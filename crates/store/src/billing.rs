//! Billing periods, and the meter's conditional advance of them.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use crate::sql::{Bind, Columns, Listing, json_rows, parse_json_rows};
use crate::{Backend, Result, Store, flag};

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
}

const COLUMNS: &str = "id, account_id, resource_type, resource_id, resource_name, component, details, currency, \
     hourly_rate, started_at, ended_at, billed_minutes, billed_micros, fully_billed";

fn from_row(row: &AnyRow) -> Result<PeriodRow> {
    Ok(PeriodRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        resource_type: row.try_get("resource_type")?,
        resource_id: row.try_get("resource_id")?,
        resource_name: row.try_get("resource_name")?,
        component: row.try_get("component")?,
        details: row.try_get("details")?,
        currency: row.try_get("currency")?,
        hourly_rate: row.try_get("hourly_rate")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        billed_minutes: row.try_get("billed_minutes")?,
        billed_micros: row.try_get("billed_micros")?,
        fully_billed: flag(row.try_get("fully_billed")?),
    })
}

pub async fn insert<'c, E: Executor<'c, Database = Any>>(db: E, p: &PeriodRow) -> Result<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO billing_periods ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ));
    sqlx::query(sql)
        .bind(&p.id)
        .bind(&p.account_id)
        .bind(&p.resource_type)
        .bind(&p.resource_id)
        .bind(&p.resource_name)
        .bind(&p.component)
        .bind(&p.details)
        .bind(&p.currency)
        .bind(&p.hourly_rate)
        .bind(p.started_at)
        .bind(p.ended_at)
        .bind(p.billed_minutes)
        .bind(p.billed_micros)
        .bind(i64::from(p.fully_billed))
        .execute(db)
        .await?;
    Ok(())
}

/// The resource's open periods, inside a transaction.
pub async fn open_periods(tx: &mut AnyConnection, resource_id: &str) -> Result<Vec<PeriodRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM billing_periods WHERE resource_id = $1 AND ended_at IS NULL ORDER BY started_at, id"
    ));
    let rows = sqlx::query(sql)
        .bind(resource_id)
        .fetch_all(&mut *tx)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Ends an open period at `at` (its remaining minutes are billed by the next meter tick).
pub async fn close(tx: &mut AnyConnection, id: &str, at: i64) -> Result<bool> {
    let done =
        sqlx::query("UPDATE billing_periods SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// A meter's move of one period's billed minutes from `from_minutes` to `to_minutes`, with its cumulative
/// cost; `fully_billed` once a closed period has nothing left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance {
    pub id: String,
    pub from_minutes: i64,
    pub to_minutes: i64,
    pub billed_micros: i64,
    pub fully_billed: bool,
}

/// Applies the advances, each only if its period still has the billed minutes it was read with; returns
/// how many moved. A batch travels as one JSON parameter: binding thousands of parameters one by one
/// costs more than the update itself. Periods still open and periods billed to their end go in separate
/// statements, because writing `fully_billed` at all makes SQLite rewrite the partial index entry.
pub async fn advance_all(
    tx: &mut AnyConnection,
    backend: Backend,
    advances: &[Advance],
) -> Result<u64> {
    let (finished, open): (Vec<&Advance>, Vec<&Advance>) =
        advances.iter().partition(|a| a.fully_billed);
    let mut moved = 0;
    for (batch, finishing) in [(open, false), (finished, true)] {
        if batch.is_empty() {
            continue;
        }
        let json = serde_json::Value::Array(
            batch
                .iter()
                .map(|a| serde_json::json!([a.id, a.from_minutes, a.to_minutes, a.billed_micros]))
                .collect(),
        )
        .to_string();
        let finish = if finishing { ", fully_billed = 1" } else { "" };
        let sql = match backend {
            Backend::Sqlite => format!(
                "UPDATE billing_periods SET billed_minutes = j.value->>2, billed_micros = j.value->>3{finish} \
                 FROM json_each($1) AS j \
                 WHERE billing_periods.id = j.value->>0 AND billing_periods.billed_minutes = j.value->>1 \
                 AND billing_periods.fully_billed = 0"
            ),
            Backend::Postgres => format!(
                "UPDATE billing_periods SET billed_minutes = (j.value->>2)::BIGINT, \
                 billed_micros = (j.value->>3)::BIGINT{finish} \
                 FROM jsonb_array_elements($1::JSONB) AS j (value) \
                 WHERE billing_periods.id = j.value->>0 AND billing_periods.billed_minutes = (j.value->>1)::BIGINT \
                 AND billing_periods.fully_billed = 0"
            ),
        };
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(json)
            .execute(&mut *tx)
            .await?;
        moved += done.rows_affected();
    }
    Ok(moved)
}

/// What the meter reads of a period with minutes left to bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePeriod {
    pub id: String,
    pub account_id: String,
    pub currency: String,
    pub hourly_rate: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub billed_minutes: i64,
    pub billed_micros: i64,
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
    /// Inside the meter's transaction: the next periods with minutes left to bill after `after`, in
    /// (account, id) order so that a page charges few accounts. They are the transaction's until it ends:
    /// SQLite's write lock is already held, and PostgreSQL locks them, waiting for a meter that holds some
    /// (both lock in the same order) and then reading what it left.
    pub async fn lock_due_periods(
        &self,
        tx: &mut AnyConnection,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<DuePeriod>> {
        let lock = match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE",
        };
        const DUE_COLUMNS: &str = "id, account_id, currency, hourly_rate, started_at, ended_at, billed_minutes, billed_micros";
        let page = format!(
            "SELECT {DUE_COLUMNS} FROM billing_periods WHERE fully_billed = 0 AND (account_id, id) > ($1, $2) \
             ORDER BY account_id, id LIMIT $3 {lock}"
        );
        let sql = json_rows(self.backend(), DUE_COLUMNS, &page, "account_id, id");
        let (account, id) = after.unwrap_or(("", ""));
        let json: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(id)
            .bind(i64::from(limit))
            .fetch_one(&mut *tx)
            .await?;
        parse_json_rows(json.as_deref())?
            .iter()
            .map(|row| {
                Ok(DuePeriod {
                    id: row.text(0)?,
                    account_id: row.text(1)?,
                    currency: row.text(2)?,
                    hourly_rate: row.text(3)?,
                    started_at: row.int(4)?,
                    ended_at: row.opt_int(5)?,
                    billed_minutes: row.int(6)?,
                    billed_micros: row.int(7)?,
                })
            })
            .collect()
    }

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
        };
        let (rows, total) = listing.page(self, offset, limit).await?;
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }

    /// Every period of the account matching `filter` (for summaries over all pages).
    pub async fn all_periods(
        &self,
        account_id: &str,
        filter: &PeriodFilter,
    ) -> Result<Vec<PeriodRow>> {
        let (condition, binds) = period_condition(account_id, filter);
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM billing_periods WHERE {condition} ORDER BY started_at, id"
        ));
        let mut query = sqlx::query(sql);
        for bind in &binds {
            query = bind.apply(query);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(from_row).collect()
    }
}

fn period_condition(account_id: &str, filter: &PeriodFilter) -> (String, Vec<Bind>) {
    let mut conditions = vec!["account_id = $1".to_string()];
    let mut binds = vec![Bind::Text(account_id.to_string())];
    let mut any_of = |column: &str, values: &[String], binds: &mut Vec<Bind>| {
        if values.is_empty() {
            return;
        }
        let mut placeholders = Vec::new();
        for v in values {
            binds.push(Bind::Text(v.clone()));
            placeholders.push(format!("${}", binds.len()));
        }
        conditions.push(format!("{column} IN ({})", placeholders.join(", ")));
    };
    any_of("resource_type", &filter.resource_types, &mut binds);
    any_of("component", &filter.components, &mut binds);
    if let Some(id) = &filter.resource_id {
        binds.push(Bind::Text(id.clone()));
        conditions.push(format!("resource_id = ${}", binds.len()));
    }
    if let Some(to) = filter.to_ms {
        binds.push(Bind::Int(to));
        conditions.push(format!("started_at < ${}", binds.len()));
    }
    if let Some(from) = filter.from_ms {
        binds.push(Bind::Int(from));
        conditions.push(format!("(ended_at IS NULL OR ended_at > ${})", binds.len()));
    }
    (conditions.join(" AND "), binds)
}
