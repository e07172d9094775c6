//! Deposits: credits an account buys through a payment provider, pending until the payment is confirmed.
//!
//! Completing a deposit is a conditional update (`pending` → `completed`) made in the caller's transaction
//! together with its ledger entry, so a deposit credits its account at most once.

use crate::sql::{Columns, insert_sql};
use crate::{Db, Result, Row, Store, Tx, binds};

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
    /// `pending`, `completed` or `cancelled`.
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

fn from_row(row: &Row) -> Result<DepositRow> {
    Ok(DepositRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        currency: row.text(2)?,
        amount_micros: row.int(3)?,
        tax_percent_micros: row.int(4)?,
        tax_micros: row.int(5)?,
        total_micros: row.int(6)?,
        status: row.text(7)?,
        provider: row.text(8)?,
        payment_reference: row.text(9)?,
        checkout_url: row.opt_text(10)?,
        transaction_id: row.opt_text(11)?,
        completed_by: row.opt_text(12)?,
        created_at: row.int(13)?,
        updated_at: row.int(14)?,
        completed_at: row.opt_int(15)?,
    })
}

pub async fn insert(db: &mut impl Db, deposit: &DepositRow) -> Result<()> {
    let sql = insert_sql("deposits", COLUMNS);
    db.execute(
        &sql,
        &binds![
            &deposit.id,
            &deposit.account_id,
            &deposit.currency,
            deposit.amount_micros,
            deposit.tax_percent_micros,
            deposit.tax_micros,
            deposit.total_micros,
            &deposit.status,
            &deposit.provider,
            &deposit.payment_reference,
            &deposit.checkout_url,
            &deposit.transaction_id,
            &deposit.completed_by,
            deposit.created_at,
            deposit.updated_at,
            deposit.completed_at,
        ],
    )
    .await?;
    Ok(())
}

/// Marks a pending deposit completed, inside the caller's transaction. False (changing nothing) when the
/// deposit does not exist or is not pending: only one completion of a deposit can ever succeed.
pub async fn mark_completed(tx: &mut Tx, id: &str, completed_by: &str, now: i64) -> Result<bool> {
    let done = tx
        .execute(
            "UPDATE deposits SET status = 'completed', completed_by = $2, completed_at = $3, updated_at = $3 \
             WHERE id = $1 AND status = 'pending'",
            &binds![id, completed_by, now],
        )
        .await?;
    Ok(done == 1)
}

/// Marks a pending deposit of the account cancelled. False (changing nothing) when the account has no such
/// deposit or it is no longer pending, so a deposit is either completed or cancelled, never both.
pub async fn mark_cancelled(
    db: &mut impl Db,
    account_id: &str,
    id: &str,
    now: i64,
) -> Result<bool> {
    let done = db
        .execute(
            "UPDATE deposits SET status = 'cancelled', updated_at = $3 \
             WHERE id = $1 AND account_id = $2 AND status = 'pending'",
            &binds![id, account_id, now],
        )
        .await?;
    Ok(done == 1)
}

/// Records the ledger entry that credited a completed deposit.
pub async fn set_transaction(tx: &mut Tx, id: &str, transaction_id: &str) -> Result<()> {
    tx.execute(
        "UPDATE deposits SET transaction_id = $2 WHERE id = $1",
        &binds![id, transaction_id],
    )
    .await?;
    Ok(())
}

/// A deposit by id, inside a transaction.
pub async fn get(tx: &mut Tx, id: &str) -> Result<Option<DepositRow>> {
    let sql = format!("SELECT {COLUMNS} FROM deposits WHERE id = $1");
    let row = tx.fetch_optional(&sql, &binds![id]).await?;
    row.as_ref().map(from_row).transpose()
}

/// The account's deposits still pending (in a transaction holding the account's lock, the count the cap is
/// checked against).
pub async fn count_pending(db: &mut impl Db, account_id: &str) -> Result<u64> {
    let row = db
        .fetch_one(
            "SELECT COUNT(*) FROM deposits WHERE account_id = $1 AND status = 'pending'",
            &binds![account_id],
        )
        .await?;
    Ok(row.int(0)? as u64)
}

impl Store {
    /// Any account's deposit (webhooks and operators).
    pub async fn deposit(&self, id: &str) -> Result<Option<DepositRow>> {
        let sql = format!("SELECT {COLUMNS} FROM deposits WHERE id = $1");
        let row = self.fetch_optional(&sql, &binds![id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The account's deposit; `None` for another account's.
    pub async fn account_deposit(&self, account_id: &str, id: &str) -> Result<Option<DepositRow>> {
        let sql = format!("SELECT {COLUMNS} FROM deposits WHERE id = $1 AND account_id = $2");
        let row = self.fetch_optional(&sql, &binds![id, account_id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of the account's deposits, newest first, and the total.
    pub async fn deposits(
        &self,
        account_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<DepositRow>, u64)> {
        let total = self
            .read_int(
                "SELECT COUNT(*) FROM deposits WHERE account_id = $1",
                &binds![account_id],
            )
            .await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM deposits WHERE account_id = $1 ORDER BY created_at DESC, id DESC \
             LIMIT $2 OFFSET $3"
        );
        let rows = self
            .fetch_all(&sql, &binds![account_id, i64::from(limit), offset as i64])
            .await?;
        Ok((
            rows.iter().map(from_row).collect::<Result<_>>()?,
            total as u64,
        ))
    }
}
