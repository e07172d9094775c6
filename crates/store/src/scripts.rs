//! Startup scripts of accounts.

use crate::sql::{Columns, insert_new_sql};
use crate::{Db, Result, Row, Store, binds};

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

fn from_row(row: &Row) -> Result<ScriptRow> {
    Ok(ScriptRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        name: row.text(2)?,
        script: row.text(3)?,
        created_at: row.int(4)?,
        updated_at: row.int(5)?,
    })
}

/// Inserts a script; false, writing nothing, when its id is taken (the caller draws another). A name
/// the account already uses is `StoreError::Unique`.
pub async fn insert(db: &mut impl Db, script: &ScriptRow) -> Result<bool> {
    let sql = insert_new_sql("scripts", COLUMNS);
    let inserted = db
        .execute(
            &sql,
            &binds![
                &script.id,
                &script.account_id,
                &script.name,
                &script.script,
                script.created_at,
                script.updated_at,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// The account's scripts (in a transaction holding the account's lock, the count the quota is checked
/// against).
pub async fn count_for_account(db: &mut impl Db, account_id: &str) -> Result<u64> {
    let row = db
        .fetch_one(
            "SELECT COUNT(*) FROM scripts WHERE account_id = $1",
            &binds![account_id],
        )
        .await?;
    Ok(row.int(0)? as u64)
}

impl Store {
    pub async fn script(&self, account_id: &str, id: &str) -> Result<Option<ScriptRow>> {
        let sql = format!("SELECT {COLUMNS} FROM scripts WHERE id = $1 AND account_id = $2");
        let row = self.fetch_optional(&sql, &binds![id, account_id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of the account's scripts, oldest first, and the total.
    pub async fn scripts(
        &self,
        account_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<ScriptRow>, u64)> {
        let total = self
            .read_int(
                "SELECT COUNT(*) FROM scripts WHERE account_id = $1",
                &binds![account_id],
            )
            .await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM scripts WHERE account_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3"
        );
        let rows = self
            .fetch_all(&sql, &binds![account_id, i64::from(limit), offset as i64])
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
        let done = self
            .execute(
                "UPDATE scripts SET name = $3, script = $4, updated_at = $5 WHERE id = $1 AND account_id = $2",
                &binds![id, account_id, name, script, now],
            )
            .await?;
        Ok(done == 1)
    }

    /// Deletes the account's scripts among `ids`; returns the ids that were deleted.
    pub async fn delete_scripts(&self, account_id: &str, ids: &[String]) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let mut deleted = Vec::new();
        for id in ids {
            let done = tx
                .execute(
                    "DELETE FROM scripts WHERE id = $1 AND account_id = $2",
                    &binds![id, account_id],
                )
                .await?;
            if done == 1 {
                deleted.push(id.clone());
            }
        }
        tx.commit().await?;
        Ok(deleted)
    }
}
