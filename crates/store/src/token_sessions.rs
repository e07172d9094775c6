//! Session tokens: a row per log-in (a family) and a row per refresh token, stored by the token's id.

use crate::accounts::AccountRow;
use crate::sql::{Columns, prefixed};
use crate::{Db, Result, binds};

#[derive(Debug, Clone, PartialEq)]
pub struct TokenSessionRow {
    pub id: String,
    pub account_id: String,
    pub tier: String,
    pub created_at: i64,
    /// When the newest refresh token of the family expires.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// What became of a refresh token presented for rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// It was unused and is now used: issue its successor.
    Used,
    /// It had been used before: someone holds a copy.
    Reused,
    /// No such token, or it has expired.
    Unknown,
}

const COLUMNS: &str = "s.id, s.account_id, s.tier, s.created_at, s.expires_at, s.revoked_at";
const SESSION_COLUMNS: usize = crate::sql::column_count(COLUMNS);

fn from_row(row: &impl Columns) -> Result<TokenSessionRow> {
    Ok(TokenSessionRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        tier: row.text(2)?,
        created_at: row.int(3)?,
        expires_at: row.int(4)?,
        revoked_at: row.opt_int(5)?,
    })
}

pub async fn insert_session(db: &mut impl Db, session: &TokenSessionRow) -> Result<()> {
    db.execute(
        "INSERT INTO token_sessions (id, account_id, tier, created_at, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &binds![
            &session.id,
            &session.account_id,
            &session.tier,
            session.created_at,
            session.expires_at,
            session.revoked_at,
        ],
    )
    .await?;
    Ok(())
}

/// Records a refresh token of a session, and moves the session's expiry to the token's.
pub async fn insert_refresh_token(
    db: &mut impl Db,
    id: &str,
    session_id: &str,
    created_at: i64,
    expires_at: i64,
) -> Result<()> {
    db.execute(
        "INSERT INTO refresh_tokens (id, session_id, created_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, NULL)",
        &binds![id, session_id, created_at, expires_at],
    )
    .await?;
    db.execute(
        "UPDATE token_sessions SET expires_at = $2 WHERE id = $1",
        &binds![session_id, expires_at],
    )
    .await?;
    Ok(())
}

/// Marks a refresh token used, once: one conditional statement, so of two concurrent uses exactly one
/// wins and the other sees a reuse.
pub async fn use_refresh_token(db: &mut impl Db, id: &str, now: i64) -> Result<Rotation> {
    let done = db
        .execute(
            "UPDATE refresh_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND expires_at > $2",
            &binds![id, now],
        )
        .await?;
    if done == 1 {
        return Ok(Rotation::Used);
    }
    let used = db
        .fetch_optional(
            "SELECT id FROM refresh_tokens WHERE id = $1 AND used_at IS NOT NULL",
            &binds![id],
        )
        .await?;
    Ok(if used.is_some() {
        Rotation::Reused
    } else {
        Rotation::Unknown
    })
}

/// The session if it is not revoked and its account is not disabled, with the account, in one round trip
/// (every request with an access token does this).
pub async fn live_session(
    db: &mut impl Db,
    id: &str,
) -> Result<Option<(TokenSessionRow, AccountRow)>> {
    let sql = format!(
        "SELECT {COLUMNS}, {} FROM token_sessions s JOIN accounts a ON a.id = s.account_id \
         WHERE s.id = $1 AND s.revoked_at IS NULL AND a.disabled_at IS NULL",
        prefixed(crate::accounts::COLUMNS, "a")
    );
    let Some(row) = db.fetch_optional(&sql, &binds![id]).await? else {
        return Ok(None);
    };
    Ok(Some((
        from_row(&row)?,
        crate::accounts::from_row(&row, SESSION_COLUMNS)?,
    )))
}

/// Revokes one session (a family); false when it was not live.
pub async fn revoke_session(db: &mut impl Db, id: &str, now: i64) -> Result<bool> {
    let done = db
        .execute(
            "UPDATE token_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &binds![id, now],
        )
        .await?;
    Ok(done == 1)
}

/// Ends every session of an account: token families and dashboard sign-ins. Returns how many.
pub async fn revoke_account_sessions(db: &mut impl Db, account_id: &str, now: i64) -> Result<u64> {
    let tokens = db
        .execute(
            "UPDATE token_sessions SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL \
             AND expires_at > $3",
            &binds![account_id, now, now],
        )
        .await?;
    let web = db
        .execute(
            "DELETE FROM web_sessions WHERE account_id = $1",
            &binds![account_id],
        )
        .await?;
    Ok(tokens + web)
}

/// Removes refresh tokens and sessions expired at `now` (their tokens no longer verify anyway); returns
/// how many sessions went.
pub async fn delete_expired(db: &mut impl Db, now: i64) -> Result<u64> {
    db.execute(
        "DELETE FROM refresh_tokens WHERE expires_at <= $1 OR session_id IN \
         (SELECT id FROM token_sessions WHERE expires_at <= $1)",
        &binds![now],
    )
    .await?;
    db.execute(
        "DELETE FROM token_sessions WHERE expires_at <= $1",
        &binds![now],
    )
    .await
}
