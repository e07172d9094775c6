//! SSH public keys of accounts.

use crate::sql::{Columns, insert_new_sql};
use crate::{Db, Result, Row, Store, binds};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
    pub algorithm: String,
    pub bits: i64,
    pub created_at: i64,
}

const COLUMNS: &str = "id, account_id, name, public_key, fingerprint, algorithm, bits, created_at";

fn from_row(row: &Row) -> Result<SshKeyRow> {
    Ok(SshKeyRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        name: row.text(2)?,
        public_key: row.text(3)?,
        fingerprint: row.text(4)?,
        algorithm: row.text(5)?,
        bits: row.int(6)?,
        created_at: row.int(7)?,
    })
}

/// Inserts a key; false, writing nothing, when its id is taken (the caller draws another). A name the
/// account already uses is `StoreError::Unique`.
pub async fn insert(db: &mut impl Db, key: &SshKeyRow) -> Result<bool> {
    let sql = insert_new_sql("ssh_keys", COLUMNS);
    let inserted = db
        .execute(
            &sql,
            &binds![
                &key.id,
                &key.account_id,
                &key.name,
                &key.public_key,
                &key.fingerprint,
                &key.algorithm,
                key.bits,
                key.created_at,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// The account's keys (in a transaction holding the account's lock, the count the quota is checked against).
pub async fn count_for_account(db: &mut impl Db, account_id: &str) -> Result<u64> {
    let row = db
        .fetch_one(
            "SELECT COUNT(*) FROM ssh_keys WHERE account_id = $1",
            &binds![account_id],
        )
        .await?;
    Ok(row.int(0)? as u64)
}

/// The name of the account's key with `fingerprint`, if it has one (in a transaction holding the
/// account's lock, so that two imports of one key cannot both pass).
pub async fn name_with_fingerprint(
    db: &mut impl Db,
    account_id: &str,
    fingerprint: &str,
) -> Result<Option<String>> {
    let row = db
        .fetch_optional(
            "SELECT name FROM ssh_keys WHERE account_id = $1 AND fingerprint = $2 ORDER BY id LIMIT 1",
            &binds![account_id, fingerprint],
        )
        .await?;
    row.map(|row| row.text(0)).transpose()
}

impl Store {
    pub async fn ssh_keys(&self, account_id: &str) -> Result<Vec<SshKeyRow>> {
        let sql =
            format!("SELECT {COLUMNS} FROM ssh_keys WHERE account_id = $1 ORDER BY created_at, id");
        let rows = self.fetch_all(&sql, &binds![account_id]).await?;
        rows.iter().map(from_row).collect()
    }

    /// The account's key with this id or name.
    pub async fn ssh_key(&self, account_id: &str, id_or_name: &str) -> Result<Option<SshKeyRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM ssh_keys WHERE account_id = $1 AND (id = $2 OR name = $2) ORDER BY id LIMIT 1"
        );
        let row = self
            .fetch_optional(&sql, &binds![account_id, id_or_name])
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Deletes the key unless a live instance uses it: `Ok(None)` when there is no such key,
    /// `Ok(Some(false))` when it is in use.
    pub async fn delete_ssh_key(&self, account_id: &str, id: &str) -> Result<Option<bool>> {
        let mut tx = self.begin().await?;
        let exists = tx
            .fetch_optional(
                "SELECT id FROM ssh_keys WHERE id = $1 AND account_id = $2",
                &binds![id, account_id],
            )
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let in_use = tx
            .fetch_one(
                "SELECT COUNT(*) FROM instances WHERE ssh_key_id = $1 AND status NOT IN ('DELETED')",
                &binds![id],
            )
            .await?
            .int(0)?;
        if in_use > 0 {
            return Ok(Some(false));
        }
        tx.execute("DELETE FROM ssh_keys WHERE id = $1", &binds![id])
            .await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    pub async fn count_ssh_keys(&self, account_id: &str) -> Result<u64> {
        let n = self
            .read_int(
                "SELECT COUNT(*) FROM ssh_keys WHERE account_id = $1",
                &binds![account_id],
            )
            .await?;
        Ok(n as u64)
    }
}
