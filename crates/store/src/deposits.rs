//! Deposits: credits an account buys through a payment provider, pending until the payment is confirmed.
//!
//! Completing a deposit is a conditional update (`pending` → `completed`) made in the caller's transaction
//! together with its ledger entry, so a deposit credits its account at most once.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositRow {
    pub id: String,
    pub account_id: String,
    pub currency: String,
    /// What the account is credited.
    pub amount_micros: i64,
    /// Tax rate in percent (18 for GST), in micro-units, fixed when the deposit is opened.
    pub tax_percent_micros: i64,
    pub tax_micros: i64,
    /// What the payer pays: amount plus tax.
    pub total_micros: i64,
    /// `pending` or `completed`.
    pub status: String,
    /// The payment provider's name (`manual`).
    pub provider: String,
    /// What the provider knows the payment by.
    pub payment_reference: String,
    pub checkout_url: Option<String>,
    /// The `deposit` ledger entry, once completed.
    pub transaction_id: Option<String>,
    /// `webhook` or `operator:<account id>`.
    pub completed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

const COLUMNS: &str = "id, account_id, currency, amount_micros, tax_percent_micros, tax_micros, total_micros, \
                       status, provider, payment_reference, checkout_url, transaction_id, completed_by, \
                       created_at, updated_at, completed_at";

fn from_row(row: &AnyRow) -> Result<DepositRow> {
    Ok(DepositRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        currency: row.try_get("currency")?,
        amount_micros: row.try_get("amount_micros")?,
        tax_percent_micros: row.try_get("tax_percent_micros")?,
        tax_micros: row.try_get("tax_micros")?,
        total_micros: row.try_get("total_micros")?,
        status: row.try_get("status")?,
        provider: row.try_get("provider")?,
        payment_reference: row.try_get("payment_reference")?,
        checkout_url: row.try_get("checkout_url")?,
        transaction_id: row.try_get("transaction_id")?,
        completed_by: row.try_get("completed_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

pub async fn insert<'c, E: Executor<'c, Database = Any>>(
    db: E,
    deposit: &DepositRow,
) -> Result<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO deposits ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16)"
    ));
    sqlx::query(sql)
        .bind(&deposit.id)
        .bind(&deposit.account_id)
        .bind(&deposit.currency)
        .bind(deposit.amount_micros)
        .bind(deposit.tax_percent_micros)
        .bind(deposit.tax_micros)
        .bind(deposit.total_micros)
        .bind(&deposit.status)
        .bind(&deposit.provider)
        .bind(&deposit.payment_reference)
        .bind(&deposit.checkout_url)
        .bind(&deposit.transaction_id)
        .bind(&deposit.completed_by)
        .bind(deposit.created_at)
        .bind(deposit.updated_at)
        .bind(deposit.completed_at)
        .execute(db)
        .await?;
    Ok(())
}

/// Marks a pending deposit completed, inside the caller's transaction. False (changing nothing) when the
/// deposit does not exist or is not pending: only one completion of a deposit can ever succeed.
pub async fn mark_completed(
    tx: &mut AnyConnection,
    id: &str,
    completed_by: &str,
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE deposits SET status = 'completed', completed_by = $2, completed_at = $3, updated_at = $3 \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(completed_by)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the ledger entry that credited a completed deposit.
pub async fn set_transaction(tx: &mut AnyConnection, id: &str, transaction_id: &str) -> Result<()> {
    sqlx::query("UPDATE deposits SET transaction_id = $2 WHERE id = $1")
        .bind(id)
        .bind(transaction_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A deposit by id, inside a transaction.
pub async fn get(tx: &mut AnyConnection, id: &str) -> Result<Option<DepositRow>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM deposits WHERE id = $1"));
    let row = sqlx::query(sql).bind(id).fetch_optional(&mut *tx).await?;
    row.as_ref().map(from_row).transpose()
}

impl Store {
    /// Any account's deposit (webhooks and operators).
    pub async fn deposit(&self, id: &str) -> Result<Option<DepositRow>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM deposits WHERE id = $1"));
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The account's deposit; `None` for another account's.
    pub async fn account_deposit(&self, account_id: &str, id: &str) -> Result<Option<DepositRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deposits WHERE id = $1 AND account_id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(id)
            .bind(account_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of the account's deposits, newest first, and the total.
    pub async fn deposits(
        &self,
        account_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<DepositRow>, u64)> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deposits WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(self.pool())
            .await?;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deposits WHERE account_id = $1 ORDER BY created_at DESC, id DESC \
             LIMIT $2 OFFSET $3"
        ));
        let rows = sqlx::query(sql)
            .bind(account_id)
            .bind(i64::from(limit))
            .bind(offset as i64)
            .fetch_all(self.pool())
            .await?;
        Ok((
            rows.iter().map(from_row).collect::<Result<_>>()?,
            total as u64,
        ))
    }
}
