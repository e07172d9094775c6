//! The event log: every state change of a resource, with when, who and why.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub id: String,
    pub account_id: String,
    pub resource_type: String,
    pub resource_id: String,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub actor: String,
    pub cause: String,
    /// The resource's generation after the change: orders events of one resource exactly.
    pub sequence: i64,
    pub created_at: i64,
}

const COLUMNS: &str = "id, account_id, resource_type, resource_id, kind, from_status, to_status, actor, cause, sequence, created_at";

fn from_row(row: &AnyRow) -> Result<EventRow> {
    Ok(EventRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        resource_type: row.try_get("resource_type")?,
        resource_id: row.try_get("resource_id")?,
        kind: row.try_get("kind")?,
        from_status: row.try_get("from_status")?,
        to_status: row.try_get("to_status")?,
        actor: row.try_get("actor")?,
        cause: row.try_get("cause")?,
        sequence: row.try_get("sequence")?,
        created_at: row.try_get("created_at")?,
    })
}

pub async fn insert<'c, E: Executor<'c, Database = Any>>(db: E, e: &EventRow) -> Result<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO events ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ));
    sqlx::query(sql)
        .bind(&e.id)
        .bind(&e.account_id)
        .bind(&e.resource_type)
        .bind(&e.resource_id)
        .bind(&e.kind)
        .bind(&e.from_status)
        .bind(&e.to_status)
        .bind(&e.actor)
        .bind(&e.cause)
        .bind(e.sequence)
        .bind(e.created_at)
        .execute(db)
        .await?;
    Ok(())
}

impl Store {
    /// Whether the account has an account-level event of `kind` at or after `since`.
    pub async fn has_account_event_since(
        &self,
        account_id: &str,
        kind: &str,
        since: i64,
    ) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE account_id = $1 AND resource_type = 'account' AND kind = $2 AND created_at >= $3",
        )
        .bind(account_id)
        .bind(kind)
        .bind(since)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    /// A page of the account's events (of one resource when `resource_id` is given), oldest first.
    pub async fn events(
        &self,
        account_id: &str,
        resource_id: Option<&str>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<EventRow>, u64)> {
        let (condition, order) = match resource_id {
            Some(_) => (
                "account_id = $1 AND resource_id = $2",
                "sequence, created_at, id",
            ),
            None => ("account_id = $1 AND ($2 = $2)", "created_at, sequence, id"),
        };
        let resource = resource_id.unwrap_or("");
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM events WHERE {condition}"
        )))
        .bind(account_id)
        .bind(resource)
        .fetch_one(self.pool())
        .await?;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM events WHERE {condition} ORDER BY {order} LIMIT $3 OFFSET $4"
        ));
        let rows = sqlx::query(sql)
            .bind(account_id)
            .bind(resource)
            .bind(i64::from(limit))
            .bind(offset as i64)
            .fetch_all(self.pool())
            .await?;
        Ok((
            rows.iter().map(from_row).collect::<Result<_>>()?,
            total as u64,
        ))
    }
}
