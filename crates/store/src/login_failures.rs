//! Failed passwords by key (an email, a client address), shared by every server on the database. The
//! rules (how many are free, how long a key is held back) are the log-in throttle's; here are its rows.

use crate::db::{Db, Tx};
use crate::sql::Columns;
use crate::{Result, Store, binds};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailuresRow {
    pub key: String,
    pub failures: i64,
    /// When the last attempt was let through (epoch ms).
    pub last_at: i64,
    /// No attempt is let through before this (epoch ms).
    pub blocked_until: i64,
}

/// The key's row, locked until `tx` ends (on PostgreSQL; a SQLite write transaction holds the whole
/// database), made with nothing counted when there is none yet. Rolled back, it leaves nothing.
pub async fn lock(tx: &mut Tx, key: &str) -> Result<LoginFailuresRow> {
    // The no-op update takes the row's lock and returns it, in one statement on both databases.
    let row = tx
        .fetch_one(
            "INSERT INTO login_failures (key, failures, last_at, blocked_until) VALUES ($1, 0, 0, 0) \
             ON CONFLICT (key) DO UPDATE SET failures = login_failures.failures \
             RETURNING failures, last_at, blocked_until",
            &binds![key],
        )
        .await?;
    Ok(LoginFailuresRow {
        key: key.to_string(),
        failures: row.int(0)?,
        last_at: row.int(1)?,
        blocked_until: row.int(2)?,
    })
}

/// Writes a row [`lock`] returned, changed.
pub async fn set(tx: &mut Tx, row: &LoginFailuresRow) -> Result<()> {
    tx.execute(
        "UPDATE login_failures SET failures = $2, last_at = $3, blocked_until = $4 WHERE key = $1",
        &binds![&row.key, row.failures, row.last_at, row.blocked_until],
    )
    .await?;
    Ok(())
}

impl Store {
    /// Takes back one attempt of the key (its password was right, or never checked): the key is no
    /// longer held back once fewer than `free` failures remain, and otherwise for no longer than before
    /// the attempt, when the hold is still the one it set (`hold`: the hold before it, and the one it
    /// set); a later attempt's longer hold stays.
    pub async fn take_back_login_failure(
        &self,
        key: &str,
        free: i64,
        hold: (i64, i64),
    ) -> Result<()> {
        let (before, set) = hold;
        self.execute(
            "UPDATE login_failures SET failures = failures - 1, \
             blocked_until = CASE WHEN failures - 1 < $2 THEN 0 \
             WHEN blocked_until = $4 THEN $3 ELSE blocked_until END \
             WHERE key = $1 AND failures > 0",
            &binds![key, free, before, set],
        )
        .await?;
        Ok(())
    }

    /// Forgets the key's failures (a log-in succeeded).
    pub async fn clear_login_failures(&self, key: &str) -> Result<()> {
        self.execute("DELETE FROM login_failures WHERE key = $1", &binds![key])
            .await?;
        Ok(())
    }

    /// Removes the keys with no attempt since `before` and no longer held back at `now`; how many.
    pub async fn purge_login_failures(&self, before: i64, now: i64) -> Result<u64> {
        self.execute(
            "DELETE FROM login_failures WHERE last_at < $1 AND blocked_until <= $2",
            &binds![before, now],
        )
        .await
    }
}
