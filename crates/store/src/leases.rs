//! Instance leases: when an instance deletes or hibernates itself. A lease row is removed in the
//! transaction that acts on it, and its warning marked in the one that records the warning, so each
//! happens once whichever server's job gets there.

use crate::sql::{Columns, RowSet};
use crate::{Db, Result, Store, binds};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub instance_id: String,
    pub expires_at: i64,
    /// `delete` or `hibernate`.
    pub on_expiry: String,
    pub warned: bool,
}

const COLUMNS: &str = "instance_id, expires_at, on_expiry, warned";

pub(crate) fn from_row(row: &impl Columns) -> Result<LeaseRow> {
    Ok(LeaseRow {
        instance_id: row.text(0)?,
        expires_at: row.int(1)?,
        on_expiry: row.text(2)?,
        warned: row.flag(3)?,
    })
}

/// Sets the instance's lease, or removes it with `None`. A lease with a new end is not warned yet; one
/// whose end stays keeps its warning.
pub async fn set(db: &mut impl Db, instance_id: &str, lease: Option<(i64, &str)>) -> Result<()> {
    if let Some((expires_at, on_expiry)) = lease {
        db.execute(
            "INSERT INTO instance_leases (instance_id, expires_at, on_expiry, warned) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (instance_id) DO UPDATE SET on_expiry = $3, \
             warned = CASE WHEN instance_leases.expires_at = $2 THEN instance_leases.warned ELSE 0 END, \
             expires_at = $2",
            &binds![instance_id, expires_at, on_expiry],
        )
        .await?;
    } else {
        remove(db, instance_id).await?;
    }
    Ok(())
}

/// Ends the instance's lease; false when it had none (nothing changed).
pub async fn remove(db: &mut impl Db, instance_id: &str) -> Result<bool> {
    let removed = db
        .execute(
            "DELETE FROM instance_leases WHERE instance_id = $1",
            &binds![instance_id],
        )
        .await?;
    Ok(removed > 0)
}

/// The lease inside a transaction.
pub async fn get(db: &mut impl Db, instance_id: &str) -> Result<Option<LeaseRow>> {
    let sql = format!("SELECT {COLUMNS} FROM instance_leases WHERE instance_id = $1");
    db.fetch_optional(&sql, &binds![instance_id])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Marks the lease expiring at `expires_at` warned; false when it was already, or has changed.
pub async fn mark_warned(db: &mut impl Db, instance_id: &str, expires_at: i64) -> Result<bool> {
    Ok(db
        .execute(
            "UPDATE instance_leases SET warned = 1 WHERE instance_id = $1 AND expires_at = $2 AND warned = 0",
            &binds![instance_id, expires_at],
        )
        .await?
        == 1)
}

/// Takes the lease expiring at `expires_at` away; false when another run took it, or it has changed.
pub async fn take(db: &mut impl Db, instance_id: &str, expires_at: i64) -> Result<bool> {
    Ok(db
        .execute(
            "DELETE FROM instance_leases WHERE instance_id = $1 AND expires_at = $2",
            &binds![instance_id, expires_at],
        )
        .await?
        == 1)
}

/// The leases of the instances `ids` (placeholders or a subquery) names, to be read with other sets.
pub(crate) fn of_instances(ids: &str) -> RowSet {
    RowSet {
        columns: COLUMNS.into(),
        inner: format!("SELECT {COLUMNS} FROM instance_leases WHERE instance_id IN ({ids})"),
        order: "instance_id",
    }
}

impl Store {
    pub async fn instance_lease(&self, instance_id: &str) -> Result<Option<LeaseRow>> {
        get(&mut &*self, instance_id).await
    }

    /// The next moment after `now` a lease calls for: its warning (`warning_ms` before its end) if not
    /// given yet, else its end. A clock move stops there, so both happen at their own minute.
    pub async fn next_lease_moment(&self, now: i64, warning_ms: i64) -> Result<Option<i64>> {
        self.fetch_one(
            "SELECT MIN(CASE WHEN warned = 0 AND expires_at - $2 > $1 THEN expires_at - $2 \
             ELSE expires_at END) FROM instance_leases WHERE expires_at > $1",
            &binds![now, warning_ms],
        )
        .await?
        .opt_int(0)
    }

    /// The leases within `warning_ms` of their end by `now`, not ended and not warned yet.
    pub async fn leases_to_warn(&self, now: i64, warning_ms: i64) -> Result<Vec<LeaseRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM instance_leases WHERE warned = 0 AND expires_at > $1 \
             AND expires_at - $2 <= $1 ORDER BY expires_at, instance_id"
        );
        self.fetch_all(&sql, &binds![now, warning_ms])
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// The leases that have ended by `now` and are not acted on yet.
    pub async fn ended_leases(&self, now: i64) -> Result<Vec<LeaseRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM instance_leases WHERE expires_at <= $1 ORDER BY expires_at, instance_id"
        );
        self.fetch_all(&sql, &binds![now])
            .await?
            .iter()
            .map(from_row)
            .collect()
    }
}
