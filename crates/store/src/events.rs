//! The event log: every state change of a resource, with when, who and why.

use crate::sql::Columns;
use crate::{Backend, Db, Result, Row, Store, binds};

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

/// Writes an event at the end of its account's stream (see [`StreamCursor`]); whether its account has a
/// webhook (to fan the event out to), told by the same statement so that an account without one, the
/// usual case, costs no second round trip.
pub async fn insert(db: &mut impl Db, e: &EventRow) -> Result<bool> {
    // SQLite has one writer at a time, so the next number is taken in commit order; on PostgreSQL the
    // writing transaction's id goes with the sequence number, and readers order by both.
    let place = match db.backend() {
        Backend::Sqlite => "0, (SELECT COALESCE(MAX(stream_position), 0) + 1 FROM events)",
        Backend::Postgres => {
            "CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT), nextval('event_stream_sequence')"
        }
    };
    let sql = format!(
        "INSERT INTO events ({COLUMNS}, stream_xid, stream_position) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, {place}) \
         RETURNING CAST(CASE WHEN EXISTS (SELECT 1 FROM webhooks WHERE account_id = $2) THEN 1 ELSE 0 END AS BIGINT)"
    );
    let row = db
        .fetch_one(
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
    Ok(row.int(0)? == 1)
}

/// Whether the account has an account-level event of `kind` (a warning) since it was last credited
/// (deposit, grant, refund), or at all when it never was.
pub async fn warned_since_last_credit(
    db: &mut impl Db,
    account_id: &str,
    kind: &str,
) -> Result<bool> {
    let row = db
        .fetch_one(
            "SELECT COUNT(*) FROM events WHERE account_id = $1 AND resource_type = 'account' AND kind = $2 \
             AND created_at >= COALESCE((SELECT MAX(created_at) FROM ledger_entries \
             WHERE account_id = $1 AND amount_micros > 0), 0)",
            &binds![account_id, kind],
        )
        .await?;
    Ok(row.int(0)? > 0)
}

/// A place in an account's event stream: the events after it are those of later transactions, or of the
/// same transaction with a later position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamCursor {
    pub xid: i64,
    pub position: i64,
}

/// Below this transaction id every writer has finished: on PostgreSQL the oldest transaction still running
/// when the statement's snapshot was taken, so an event of an older one can no longer appear. SQLite
/// commits one writer at a time, so all it shows is final.
fn settled_below(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "9223372036854775807",
        Backend::Postgres => {
            "CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT)"
        }
    }
}

impl Store {
    /// Where a stream that starts now begins: after every event already settled, before any that may
    /// still commit (on PostgreSQL, those of transactions still running; the stream may then begin with
    /// a few events committed just before).
    pub async fn stream_start(&self) -> Result<StreamCursor> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT 0, COALESCE(MAX(stream_position), 0) FROM events".to_string()
            }
            Backend::Postgres => format!("SELECT {}, 0", settled_below(Backend::Postgres)),
        };
        let row = self.fetch_one(&sql, &[]).await?;
        Ok(StreamCursor {
            xid: row.int(0)?,
            position: row.int(1)?,
        })
    }

    /// The stream place of the account's event `event_id`; `None` when the account has no such event.
    pub async fn stream_cursor_of(
        &self,
        account_id: &str,
        event_id: &str,
    ) -> Result<Option<StreamCursor>> {
        let row = self
            .fetch_optional(
                "SELECT stream_xid, stream_position FROM events WHERE id = $1 AND account_id = $2",
                &binds![event_id, account_id],
            )
            .await?;
        row.map(|r| {
            Ok(StreamCursor {
                xid: r.int(0)?,
                position: r.int(1)?,
            })
        })
        .transpose()
    }

    /// Up to `limit` of the account's settled events after `after`, in stream order, each with its place.
    pub async fn stream_events_after(
        &self,
        account_id: &str,
        after: StreamCursor,
        limit: u32,
    ) -> Result<Vec<(EventRow, StreamCursor)>> {
        let sql = format!(
            "SELECT {COLUMNS}, stream_xid, stream_position FROM events WHERE account_id = $1 \
             AND (stream_xid > $2 OR (stream_xid = $2 AND stream_position > $3)) AND stream_xid < {} \
             ORDER BY stream_xid, stream_position LIMIT $4",
            settled_below(self.backend())
        );
        let rows = self
            .fetch_all(
                &sql,
                &binds![account_id, after.xid, after.position, i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    from_row(r)?,
                    StreamCursor {
                        xid: r.int(11)?,
                        position: r.int(12)?,
                    },
                ))
            })
            .collect()
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
