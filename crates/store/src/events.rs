//! The event log: every state change of a resource, with when, who and why.

use crate::sql::{Columns, insert_sql};
use crate::{Db, Result, Row, Store, binds};

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

fn from_row(row: &Row) -> Result<EventRow> {
    Ok(EventRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        resource_type: row.text(2)?,
        resource_id: row.text(3)?,
        kind: row.text(4)?,
        from_status: row.opt_text(5)?,
        to_status: row.opt_text(6)?,
        actor: row.text(7)?,
        cause: row.text(8)?,
        sequence: row.int(9)?,
        created_at: row.int(10)?,
    })
}

pub async fn insert(db: &mut impl Db, e: &EventRow) -> Result<()> {
    let sql = insert_sql("events", COLUMNS);
    db.execute(
        &sql,
        &binds![
            &e.id,
            &e.account_id,
            &e.resource_type,
            &e.resource_id,
            &e.kind,
            &e.from_status,
            &e.to_status,
            &e.actor,
            &e.cause,
            e.sequence,
            e.created_at,
        ],
    )
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
        let n = self
            .read_int(
                "SELECT COUNT(*) FROM events WHERE account_id = $1 AND resource_type = 'account' AND kind = $2 \
                 AND created_at >= $3",
                &binds![account_id, kind, since],
            )
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
        let total = self
            .read_int(
                &format!("SELECT COUNT(*) FROM events WHERE {condition}"),
                &binds![account_id, resource],
            )
            .await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE {condition} ORDER BY {order} LIMIT $3 OFFSET $4"
        );
        let rows = self
            .fetch_all(
                &sql,
                &binds![account_id, resource, i64::from(limit), offset as i64],
            )
            .await?;
        Ok((
            rows.iter().map(from_row).collect::<Result<_>>()?,
            total as u64,
        ))
    }
}
