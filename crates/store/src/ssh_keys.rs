//! SSH public keys of accounts.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::{Result, Store};

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

fn from_row(row: &AnyRow) -> Result<SshKeyRow> {
    Ok(SshKeyRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        public_key: row.try_get("public_key")?,
        fingerprint: row.try_get("fingerprint")?,
        algorithm: row.try_get("algorithm")?,
        bits: row.try_get("bits")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts a key; a name the account already uses is `StoreError::Unique`.
pub async fn insert<'c, E: Executor<'c, Database = Any>>(db: E, key: &SshKeyRow) -> Result<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO ssh_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ));
    sqlx::query(sql)
        .bind(&key.id)
        .bind(&key.account_id)
        .bind(&key.name)
        .bind(&key.public_key)
        .bind(&key.fingerprint)
        .bind(&key.algorithm)
        .bind(key.bits)
        .bind(key.created_at)
        .execute(db)
        .await?;
    Ok(())
}

impl Store {
    pub async fn ssh_keys(&self, account_id: &str) -> Result<Vec<SshKeyRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ssh_keys WHERE account_id = $1 ORDER BY created_at, id"
        ));
        let rows = sqlx::query(sql)
            .bind(account_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// The account's key with this id or name.
    pub async fn ssh_key(&self, account_id: &str, id_or_name: &str) -> Result<Option<SshKeyRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ssh_keys WHERE account_id = $1 AND (id = $2 OR name = $2) ORDER BY id LIMIT 1"
        ));
        let row = sqlx::query(sql)
            .bind(account_id)
            .bind(id_or_name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Deletes the key unless a live instance uses it: `Ok(None)` when there is no such key,
    /// `Ok(Some(false))` when it is in use.
    pub async fn delete_ssh_key(&self, account_id: &str, id: &str) -> Result<Option<bool>> {
        let mut tx = self.begin().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM ssh_keys WHERE id = $1 AND account_id = $2")
                .bind(id)
                .bind(account_id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let in_use: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM instances WHERE ssh_key_id = $1 AND status NOT IN ('DELETED')",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if in_use > 0 {
            return Ok(Some(false));
        }
        sqlx::query("DELETE FROM ssh_keys WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    pub async fn count_ssh_keys(&self, account_id: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ssh_keys WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(self.pool())
            .await?;
        Ok(n as u64)
    }
}
