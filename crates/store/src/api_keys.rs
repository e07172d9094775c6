//! API keys. Only a keyed hash of each secret is stored.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::accounts::AccountRow;
use crate::sql::{Bind, Columns, SqlOnce, json_row};
use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub tier: String,
    pub prefix: String,
    pub secret_hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "k.id, k.account_id, k.name, k.tier, k.prefix, k.secret_hash, k.created_at, k.last_used_at, \
                       k.revoked_at";

fn from_row(row: &AnyRow) -> Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        tier: row.try_get("tier")?,
        prefix: row.try_get("prefix")?,
        secret_hash: row.try_get("secret_hash")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Inserts a key; a name already used by a live key of the account is `StoreError::Unique`.
pub async fn insert<'c, E: Executor<'c, Database = Any>>(db: E, key: &ApiKeyRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, account_id, name, tier, prefix, secret_hash, created_at, last_used_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&key.id)
    .bind(&key.account_id)
    .bind(&key.name)
    .bind(&key.tier)
    .bind(&key.prefix)
    .bind(&key.secret_hash)
    .bind(key.created_at)
    .bind(key.last_used_at)
    .bind(key.revoked_at)
    .execute(db)
    .await?;
    Ok(())
}

impl Store {
    /// The live key with this secret hash and its account, in one round trip (every request does this).
    pub async fn live_api_key_by_hash(
        &self,
        secret_hash: &str,
    ) -> Result<Option<(ApiKeyRow, AccountRow)>> {
        // Read as JSON: one value to copy out of SQLite rather than 21 on every authenticated request.
        const JOINED: &str = "id, account_id, name, tier, prefix, secret_hash, created_at, last_used_at, revoked_at, \
             email, password_hash, account_name, phone, address_line, city, state, postal_code, country, is_admin, \
             account_created_at, account_updated_at";
        static SQL: SqlOnce = SqlOnce::new();
        let sql = SQL.get(self.backend(), |backend| {
            let inner = format!(
                "SELECT {COLUMNS}, a.email, a.password_hash, a.name AS account_name, a.phone, a.address_line, \
                 a.city, a.state, a.postal_code, a.country, a.is_admin, a.created_at AS account_created_at, \
                 a.updated_at AS account_updated_at \
                 FROM api_keys k JOIN accounts a ON a.id = k.account_id \
                 WHERE k.secret_hash = $1 AND k.revoked_at IS NULL"
            );
            json_row(backend, JOINED, &inner)
        });
        let row = self
            .read_row(sql, &[Bind::Text(secret_hash.into())])
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let key = ApiKeyRow {
            id: row.text(0)?,
            account_id: row.text(1)?,
            name: row.text(2)?,
            tier: row.text(3)?,
            prefix: row.text(4)?,
            secret_hash: row.text(5)?,
            created_at: row.int(6)?,
            last_used_at: row.opt_int(7)?,
            revoked_at: row.opt_int(8)?,
        };
        let account = AccountRow {
            id: key.account_id.clone(),
            email: row.text(9)?,
            password_hash: row.text(10)?,
            name: row.text(11)?,
            phone: row.opt_text(12)?,
            address_line: row.opt_text(13)?,
            city: row.opt_text(14)?,
            state: row.opt_text(15)?,
            postal_code: row.opt_text(16)?,
            country: row.opt_text(17)?,
            is_admin: row.flag(18)?,
            created_at: row.int(19)?,
            updated_at: row.int(20)?,
        };
        Ok(Some((key, account)))
    }

    /// The account's live keys, oldest first.
    pub async fn live_api_keys(&self, account_id: &str) -> Result<Vec<ApiKeyRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys k WHERE k.account_id = $1 AND k.revoked_at IS NULL \
             ORDER BY k.created_at, k.id"
        ));
        let rows = sqlx::query(sql)
            .bind(account_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Revokes a live key of the account; false when there is none with that id.
    pub async fn revoke_api_key(&self, account_id: &str, key_id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL",
        )
        .bind(key_id)
        .bind(account_id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records use of a key (callers throttle this; it is a write).
    pub async fn touch_api_key(&self, key_id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(key_id)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
