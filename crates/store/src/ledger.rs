//! The credit ledger: append-only entries in micro-units, and per-currency balances moved in the same
//! transaction, so a balance always equals the sum of its entries.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::sql::{Bind, Listing};
use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntryRow {
    pub id: String,
    pub account_id: String,
    pub currency: String,
    pub kind: String,
    pub amount_micros: i64,
    pub balance_after_micros: i64,
    pub description: String,
    /// A key that makes an entry happen at most once (e.g. one per resource and billed minute).
    pub idempotency_key: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct LedgerFilter {
    pub kind: Option<String>,
    pub currency: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

const COLUMNS: &str = "id, account_id, currency, kind, amount_micros, balance_after_micros, description, \
                       idempotency_key, created_by, created_at";

fn from_row(row: &AnyRow) -> Result<LedgerEntryRow> {
    Ok(LedgerEntryRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        currency: row.try_get("currency")?,
        kind: row.try_get("kind")?,
        amount_micros: row.try_get("amount_micros")?,
        balance_after_micros: row.try_get("balance_after_micros")?,
        description: row.try_get("description")?,
        idempotency_key: row.try_get("idempotency_key")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Appends `entry` (its `balance_after_micros` is computed here) and moves the balance, inside the caller's
/// transaction. Returns `None`, changing nothing, when the idempotency key was used before.
pub async fn append(
    tx: &mut AnyConnection,
    entry: &LedgerEntryRow,
) -> Result<Option<LedgerEntryRow>> {
    let inserted = sqlx::query(
        "INSERT INTO ledger_entries (id, account_id, currency, kind, amount_micros, balance_after_micros, \
         description, idempotency_key, created_by, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&entry.id)
    .bind(&entry.account_id)
    .bind(&entry.currency)
    .bind(&entry.kind)
    .bind(entry.amount_micros)
    .bind(&entry.description)
    .bind(&entry.idempotency_key)
    .bind(&entry.created_by)
    .bind(entry.created_at)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(None);
    }
    let balance: i64 = sqlx::query_scalar(
        "INSERT INTO balances (account_id, currency, amount_micros, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (account_id, currency) DO UPDATE \
         SET amount_micros = balances.amount_micros + excluded.amount_micros, updated_at = excluded.updated_at \
         RETURNING amount_micros",
    )
    .bind(&entry.account_id)
    .bind(&entry.currency)
    .bind(entry.amount_micros)
    .bind(entry.created_at)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE ledger_entries SET balance_after_micros = $2 WHERE id = $1")
        .bind(&entry.id)
        .bind(balance)
        .execute(&mut *tx)
        .await?;
    Ok(Some(LedgerEntryRow {
        balance_after_micros: balance,
        ..entry.clone()
    }))
}

impl Store {
    /// When the account was last credited (deposit, grant, refund), if ever.
    pub async fn last_credit_at(&self, account_id: &str) -> Result<Option<i64>> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(created_at) FROM ledger_entries WHERE account_id = $1 AND amount_micros > 0",
        )
        .bind(account_id)
        .fetch_one(self.pool())
        .await?;
        Ok(at)
    }

    /// Balances of every currency the account has held, in micro-units.
    pub async fn balances(&self, account_id: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT currency, amount_micros FROM balances WHERE account_id = $1 ORDER BY currency",
        )
        .bind(account_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Sum of the account's entries in one currency: what its balance must equal.
    pub async fn ledger_sum(&self, account_id: &str, currency: &str) -> Result<i64> {
        let sum: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM ledger_entries \
             WHERE account_id = $1 AND currency = $2",
        )
        .bind(account_id)
        .bind(currency)
        .fetch_one(self.pool())
        .await?;
        Ok(sum)
    }

    /// A page of the account's entries, newest first, and the number matching the filter.
    pub async fn ledger_entries(
        &self,
        account_id: &str,
        filter: &LedgerFilter,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<LedgerEntryRow>, u64)> {
        let mut conditions = vec!["account_id = $1".to_string()];
        let mut binds: Vec<Bind> = vec![Bind::Text(account_id.to_string())];
        let mut push = |column: &str, op: &str, value: Bind| {
            binds.push(value);
            conditions.push(format!("{column} {op} ${}", binds.len()));
        };
        if let Some(kind) = &filter.kind {
            push("kind", "=", Bind::Text(kind.clone()));
        }
        if let Some(currency) = &filter.currency {
            push("currency", "=", Bind::Text(currency.clone()));
        }
        if let Some(from) = filter.from_ms {
            push("created_at", ">=", Bind::Int(from));
        }
        if let Some(to) = filter.to_ms {
            push("created_at", "<", Bind::Int(to));
        }
        let condition = conditions.join(" AND ");

        let listing = Listing {
            table: "ledger_entries",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "created_at DESC, id DESC",
        };
        let (rows, total) = listing.page(self, offset, limit).await?;
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }
}
