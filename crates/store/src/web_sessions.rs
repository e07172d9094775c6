//! Dashboard sessions: a row per signed-in browser. Only a keyed hash of the cookie's token is stored.

use std::sync::LazyLock;

use crate::accounts::AccountRow;
use crate::sql::{Columns, column_count, prefixed};
use crate::{Result, Store, binds};

#[derive(Debug, Clone, PartialEq)]
pub struct WebSessionRow {
    /// Keyed hash of the cookie's token.
    pub id: String,
    pub account_id: String,
    pub tier: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

const COLUMNS: &str = "s.id, s.account_id, s.tier, s.csrf_token, s.created_at, s.expires_at";
/// Where the account's columns start in a session row joined with its account.
const SESSION_COLUMNS: usize = column_count(COLUMNS);

fn from_row(row: &impl Columns) -> Result<WebSessionRow> {
    Ok(WebSessionRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        tier: row.text(2)?,
        csrf_token: row.text(3)?,
        created_at: row.int(4)?,
        expires_at: row.int(5)?,
    })
}

impl Store {
    pub async fn insert_web_session(&self, session: &WebSessionRow) -> Result<()> {
        self.execute(
            "INSERT INTO web_sessions (id, account_id, tier, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &binds![
                &session.id,
                &session.account_id,
                &session.tier,
                &session.csrf_token,
                session.created_at,
                session.expires_at,
            ],
        )
        .await?;
        Ok(())
    }

    /// The session with this id that has not expired at `now`, and its account, in one round trip (every
    /// dashboard request does this).
    pub async fn live_web_session(
        &self,
        id: &str,
        now: i64,
    ) -> Result<Option<(WebSessionRow, AccountRow)>> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {COLUMNS}, {} FROM web_sessions s JOIN accounts a ON a.id = s.account_id \
                 WHERE s.id = $1 AND s.expires_at > $2 AND a.disabled_at IS NULL",
                prefixed(crate::accounts::COLUMNS, "a")
            )
        });
        let Some(row) = self.fetch_optional(&SQL, &binds![id, now]).await? else {
            return Ok(None);
        };
        let session = from_row(&row)?;
        let account = crate::accounts::from_row(&row, SESSION_COLUMNS)?;
        Ok(Some((session, account)))
    }

    /// Ends a session; false when there was none with this id.
    pub async fn delete_web_session(&self, id: &str) -> Result<bool> {
        let done = self
            .execute("DELETE FROM web_sessions WHERE id = $1", &binds![id])
            .await?;
        Ok(done == 1)
    }

    /// Removes sessions expired at `now`; returns how many.
    pub async fn delete_expired_web_sessions(&self, now: i64) -> Result<u64> {
        self.execute(
            "DELETE FROM web_sessions WHERE expires_at <= $1",
            &binds![now],
        )
        .await
    }
}
