//! API keys. Only a keyed hash of each secret is stored.

use crate::accounts::AccountRow;
use std::sync::LazyLock;

use crate::sql::{Columns, column_count, prefixed};
use crate::{Db, Result, Store, binds};

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
/// Where the account's columns start in a key row joined with its account.
const KEY_COLUMNS: usize = column_count(COLUMNS);

/// A key from a row of `COLUMNS`, in that order.
fn from_row(row: &impl Columns) -> Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        name: row.text(2)?,
        tier: row.text(3)?,
        prefix: row.text(4)?,
        secret_hash: row.text(5)?,
        created_at: row.int(6)?,
        last_used_at: row.opt_int(7)?,
        revoked_at: row.opt_int(8)?,
    })
}

/// Inserts a key; a name already used by a live key of the account is `StoreError::Unique`.
/// The account's live keys, oldest first (in a transaction that holds the account's lock, the count a
/// quota is checked against).
pub async fn live_for_account(db: &mut impl Db, account_id: &str) -> Result<Vec<ApiKeyRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys k WHERE k.account_id = $1 AND k.revoked_at IS NULL \
         ORDER BY k.created_at, k.id"
    );
    let rows = db.fetch_all(&sql, &binds![account_id]).await?;
    rows.iter().map(from_row).collect()
}

/// Inserts a key; false, writing nothing, when its id is taken (the caller draws another). A name the
/// account already uses among its live keys is `StoreError::Unique`.
pub async fn insert(db: &mut impl Db, key: &ApiKeyRow) -> Result<bool> {
    let inserted = db
        .execute(
        "INSERT INTO api_keys (id, account_id, name, tier, prefix, secret_hash, created_at, last_used_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        &binds![
            &key.id,
            &key.account_id,
            &key.name,
            &key.tier,
            &key.prefix,
            &key.secret_hash,
            key.created_at,
            key.last_used_at,
            key.revoked_at,
        ],
    )
    .await?;
    Ok(inserted == 1)
}

/// Revokes every live key of an account; returns how many.
pub async fn revoke_all_for_account(db: &mut impl Db, account_id: &str, now: i64) -> Result<u64> {
    db.execute(
        "UPDATE api_keys SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL",
        &binds![account_id, now],
    )
    .await
}

impl Store {
    /// The live key with this secret hash and its account, in one round trip (every request does this);
    /// from the key cache when it has them (see [`crate::key_cache`]).
    pub async fn live_api_key_by_hash(
        &self,
        secret_hash: &str,
    ) -> Result<Option<(ApiKeyRow, AccountRow)>> {
        // Every request reads this: its SQL is written once.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {COLUMNS}, {} FROM api_keys k JOIN accounts a ON a.id = k.account_id \
                 WHERE k.secret_hash = $1 AND k.revoked_at IS NULL AND a.disabled_at IS NULL",
                prefixed(crate::accounts::COLUMNS, "a")
            )
        });
        if let Some(hit) = self.keys.as_ref().and_then(|c| c.get(secret_hash)) {
            return Ok(Some(hit));
        }
        let stamp = self.keys.as_ref().and_then(|c| c.stamp());
        let Some(row) = self.fetch_optional(&SQL, &binds![secret_hash]).await? else {
            return Ok(None);
        };
        let key = from_row(&row)?;
        let account = crate::accounts::from_row(&row, KEY_COLUMNS)?;
        if let (Some(cache), Some(stamp)) = (&self.keys, stamp) {
            cache.put(secret_hash, &key, &account, stamp);
        }
        Ok(Some((key, account)))
    }

    /// The account's live keys, oldest first.
    pub async fn live_api_keys(&self, account_id: &str) -> Result<Vec<ApiKeyRow>> {
        live_for_account(&mut &*self, account_id).await
    }

    /// Revokes a live key of the account; false when there is none with that id.
    pub async fn revoke_api_key(&self, account_id: &str, key_id: &str, now: i64) -> Result<bool> {
        let done = self
            .execute(
                "UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL",
                &binds![key_id, account_id, now],
            )
            .await?;
        if done == 1 {
            self.auth_changed(account_id).await?;
        }
        Ok(done == 1)
    }

    /// Records use of a key (callers throttle this; it is a write).
    pub async fn touch_api_key(&self, key_id: &str, now: i64) -> Result<()> {
        self.execute(
            "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
            &binds![key_id, now],
        )
        .await?;
        Ok(())
    }
}
