//! Startup scripts of accounts.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub script: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, account_id, name, script, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<ScriptRow> {
    Ok(ScriptRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        script: row.try_get("script")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts a script; a name the account already uses is `StoreError::Unique`.
pub async fn insert<'c, E: Executor<'c, Database = Any>>(db: E, script: &ScriptRow) -> Result<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO scripts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    ));
    sqlx::query(sql)
        .bind(&script.id)
        .bind(&script.account_id)
        .bind(&script.name)
        .bind(&script.script)
        .bind(script.created_at)
        .bind(script.updated_at)
        .execute(db)
        .await?;
    Ok(())
}

impl Store {
    pub async fn script(&self, account_id: &str, id: &str) -> Result<Option<ScriptRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM scripts WHERE id = $1 AND account_id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(id)
            .bind(account_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of the account's scripts, oldest first, and the total.
    pub async fn scripts(
        &self,
        account_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<ScriptRow>, u64)> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scripts WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(self.pool())
            .await?;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM scripts WHERE account_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3"
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

    /// Replaces name and content; false when the account has no such script. A taken name is
    /// `StoreError::Unique`.
    pub async fn update_script(
        &self,
        account_id: &str,
        id: &str,
        name: &str,
        script: &str,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE scripts SET name = $3, script = $4, updated_at = $5 WHERE id = $1 AND account_id = $2",
        )
        .bind(id)
        .bind(account_id)
        .bind(name)
        .bind(script)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the account's scripts among `ids`; returns the ids that were deleted.
    pub async fn delete_scripts(&self, account_id: &str, ids: &[String]) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let mut deleted = Vec::new();
        for id in ids {
            let done = sqlx::query("DELETE FROM scripts WHERE id = $1 AND account_id = $2")
                .bind(id)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 1 {
                deleted.push(id.clone());
            }
        }
        tx.commit().await?;
        Ok(deleted)
    }
}
