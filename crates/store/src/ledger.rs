//! The credit ledger: append-only entries in micro-units, and per-currency balances moved in the same
//! transaction, so a balance always equals the sum of its entries.

use crate::sql::{Columns, Listing};
use crate::{Bind, Db, Result, Row, Store, Tx, binds};

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

fn from_row(row: &Row) -> Result<LedgerEntryRow> {
    Ok(LedgerEntryRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        currency: row.text(2)?,
        kind: row.text(3)?,
        amount_micros: row.int(4)?,
        balance_after_micros: row.int(5)?,
        description: row.text(6)?,
        idempotency_key: row.opt_text(7)?,
        created_by: row.opt_text(8)?,
        created_at: row.int(9)?,
    })
}

/// Appends `entry` (its `balance_after_micros` is computed here) and moves the balance, inside the caller's
/// transaction. Returns `None`, having changed nothing, when the idempotency key was used before.
///
/// The balance is moved first, so the entry is written once with the balance after it, not inserted and
/// then updated. A key used before is looked for first; on PostgreSQL two writers of one new key both get
/// past that look, then wait on the balance row's lock in turn: the second finds the key used when its
/// entry does not go in, and moves the balance back.
///
/// Entry ids have 6 random characters like every id, and the ledger holds many entries, so an id can be
/// taken already: the entry then gets another from `fresh_id` (the returned row has the id it was stored
/// under).
pub async fn append(
    tx: &mut Tx,
    entry: &LedgerEntryRow,
    fresh_id: fn() -> String,
) -> Result<Option<LedgerEntryRow>> {
    if let Some(key) = &entry.idempotency_key
        && key_used(tx, key).await?
    {
        return Ok(None);
    }
    append_unchecked(tx, entry, fresh_id).await
}

/// [`append`] without looking for the key first: for a caller whose transaction already holds a row that
/// only a new key can go with (an AI call's, unique by request id), so the key is new but for a race the
/// entry's insert still catches.
pub(crate) async fn append_unchecked(
    tx: &mut Tx,
    entry: &LedgerEntryRow,
    fresh_id: fn() -> String,
) -> Result<Option<LedgerEntryRow>> {
    let mut entry = entry.clone();
    entry.balance_after_micros = tx
        .fetch_one(
            "INSERT INTO balances (account_id, currency, amount_micros, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id, currency) DO UPDATE \
             SET amount_micros = balances.amount_micros + excluded.amount_micros, updated_at = excluded.updated_at \
             RETURNING amount_micros",
            &binds![
                &entry.account_id,
                &entry.currency,
                entry.amount_micros,
                entry.created_at
            ],
        )
        .await?
        .int(0)?;
    let mut attempts = 0;
    loop {
        // No conflict target: a used idempotency key and a taken id both insert nothing, without aborting
        // the transaction on PostgreSQL.
        let inserted = tx
            .execute(
                "INSERT INTO ledger_entries (id, account_id, currency, kind, amount_micros, balance_after_micros, \
                 description, idempotency_key, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                &binds![
                    &entry.id,
                    &entry.account_id,
                    &entry.currency,
                    &entry.kind,
                    entry.amount_micros,
                    entry.balance_after_micros,
                    &entry.description,
                    &entry.idempotency_key,
                    &entry.created_by,
                    entry.created_at,
                ],
            )
            .await?;
        if inserted == 1 {
            return Ok(Some(entry));
        }
        if let Some(key) = &entry.idempotency_key
            && key_used(tx, key).await?
        {
            tx.execute(
                "UPDATE balances SET amount_micros = amount_micros - $3 WHERE account_id = $1 AND currency = $2",
                &binds![&entry.account_id, &entry.currency, entry.amount_micros],
            )
            .await?;
            return Ok(None);
        }
        attempts += 1;
        if attempts >= 16 {
            return Err(crate::StoreError::Unique(format!(
                "ledger entry id {} (no free id after {attempts} attempts)",
                entry.id
            )));
        }
        entry.id = fresh_id();
    }
}

async fn key_used(tx: &mut Tx, key: &str) -> Result<bool> {
    let used = tx
        .fetch_optional(
            "SELECT id FROM ledger_entries WHERE idempotency_key = $1",
            &binds![key],
        )
        .await?;
    Ok(used.is_some())
}

impl Store {
    /// Whether the account has money in `currency`: it has held a balance in it (credits, or usage
    /// charged), opened a deposit in it, or been billed in it.
    pub async fn currency_in_use(&self, account_id: &str, currency: &str) -> Result<bool> {
        let used = self
            .read_int(
                "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM balances WHERE account_id = $1 AND currency = $2 LIMIT 1) AS b) \
                 + (SELECT COUNT(*) FROM (SELECT 1 FROM deposits WHERE account_id = $1 AND currency = $2 LIMIT 1) AS d) \
                 + (SELECT COUNT(*) FROM (SELECT 1 FROM billing_periods WHERE account_id = $1 AND currency = $2 LIMIT 1) AS p)",
                &binds![account_id, currency],
            )
            .await?;
        Ok(used > 0)
    }

    /// Balances of every currency the account has held, in micro-units.
    pub async fn balances(&self, account_id: &str) -> Result<Vec<(String, i64)>> {
        let rows = self
            .fetch_all(
                "SELECT currency, amount_micros FROM balances WHERE account_id = $1 ORDER BY currency",
                &binds![account_id],
            )
            .await?;
        rows.iter().map(|r| Ok((r.text(0)?, r.int(1)?))).collect()
    }

    /// The account's balance in one currency, in micro-units: 0 when it never held that currency.
    pub async fn balance(&self, account_id: &str, currency: &str) -> Result<i64> {
        let row = self
            .fetch_optional(
                "SELECT amount_micros FROM balances WHERE account_id = $1 AND currency = $2",
                &binds![account_id, currency],
            )
            .await?;
        Ok(row.map(|r| r.int(0)).transpose()?.unwrap_or(0))
    }

    /// Sum of the account's entries in one currency: what its balance must equal.
    pub async fn ledger_sum(&self, account_id: &str, currency: &str) -> Result<i64> {
        self.read_int(
            "SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM ledger_entries \
             WHERE account_id = $1 AND currency = $2",
            &binds![account_id, currency],
        )
        .await
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
        let mut binds: Vec<Bind> = vec![account_id.into()];
        let mut push = |column: &str, op: &str, value| {
            binds.push(value);
            conditions.push(format!("{column} {op} ${}", binds.len()));
        };
        if let Some(kind) = &filter.kind {
            push("kind", "=", kind.into());
        }
        if let Some(currency) = &filter.currency {
            push("currency", "=", currency.into());
        }
        if let Some(from) = filter.from_ms {
            push("created_at", ">=", from.into());
        }
        if let Some(to) = filter.to_ms {
            push("created_at", "<", to.into());
        }
        let condition = conditions.join(" AND ");

        let listing = Listing {
            table: "ledger_entries",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "created_at DESC, id DESC",
            source: None,
        };
        let (rows, total) = listing.page(self, offset, limit).await?;
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }
}
