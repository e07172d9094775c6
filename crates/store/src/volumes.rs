//! Volumes. Every state change is conditional on the generation the caller read, and bumps it.

use sqlx::{Any, AnyConnection, Executor};

use crate::sql::{Bind, Columns, GenerationUpdate, Listing, RowSet, placeholders};
use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub tier: String,
    pub region: String,
    pub volume_type: String,
    pub size_gb: i64,
    pub bootable: bool,
    pub image_name: Option<String>,
    /// The volume this one was cloned from.
    pub source_volume_id: Option<String>,
    /// The instance the volume is attached to, or being attached to or detached from.
    pub instance_id: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    pub currency: String,
    pub generation: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

pub(crate) const COLUMNS: &str = "id, account_id, name, tier, region, volume_type, size_gb, bootable, image_name, \
     source_volume_id, instance_id, status, status_reason, currency, generation, created_at, updated_at, deleted_at";

/// A volume from a row of `COLUMNS`, in that order.
pub(crate) fn from_row(row: &impl Columns) -> Result<VolumeRow> {
    Ok(VolumeRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        name: row.text(2)?,
        tier: row.text(3)?,
        region: row.text(4)?,
        volume_type: row.text(5)?,
        size_gb: row.int(6)?,
        bootable: row.flag(7)?,
        image_name: row.opt_text(8)?,
        source_volume_id: row.opt_text(9)?,
        instance_id: row.opt_text(10)?,
        status: row.text(11)?,
        status_reason: row.opt_text(12)?,
        currency: row.text(13)?,
        generation: row.int(14)?,
        created_at: row.int(15)?,
        updated_at: row.int(16)?,
        deleted_at: row.opt_int(17)?,
    })
}

/// Inserts a volume; a name the account already uses (among volumes not deleted) is
/// `StoreError::Unique`.
pub async fn insert<'c, E: Executor<'c, Database = Any>>(db: E, v: &VolumeRow) -> Result<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO volumes ({COLUMNS}) VALUES ({})",
        placeholders(1, 18)
    ));
    sqlx::query(sql)
        .bind(&v.id)
        .bind(&v.account_id)
        .bind(&v.name)
        .bind(&v.tier)
        .bind(&v.region)
        .bind(&v.volume_type)
        .bind(v.size_gb)
        .bind(i64::from(v.bootable))
        .bind(&v.image_name)
        .bind(&v.source_volume_id)
        .bind(&v.instance_id)
        .bind(&v.status)
        .bind(&v.status_reason)
        .bind(&v.currency)
        .bind(v.generation)
        .bind(v.created_at)
        .bind(v.updated_at)
        .bind(v.deleted_at)
        .execute(db)
        .await?;
    Ok(())
}

/// Fields a state change sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct VolumeChange {
    pub status: Option<String>,
    pub status_reason: Option<Option<String>>,
    pub size_gb: Option<i64>,
    pub instance_id: Option<Option<String>>,
    pub deleted_at: Option<i64>,
}

/// Applies `change` if the volume is still at `generation`, bumping it; false when someone else changed
/// the volume first (the caller re-reads and decides again).
pub async fn update(
    tx: &mut AnyConnection,
    id: &str,
    generation: i64,
    change: &VolumeChange,
    now: i64,
) -> Result<bool> {
    let mut update = GenerationUpdate::new("volumes", id, generation, now);
    if let Some(status) = &change.status {
        update.set("status", Bind::Text(status.clone()));
    }
    if let Some(reason) = &change.status_reason {
        update.set("status_reason", Bind::OptText(reason.clone()));
    }
    if let Some(size) = change.size_gb {
        update.set("size_gb", Bind::Int(size));
    }
    if let Some(instance) = &change.instance_id {
        update.set("instance_id", Bind::OptText(instance.clone()));
    }
    if let Some(at) = change.deleted_at {
        update.set("deleted_at", Bind::Int(at));
    }
    update.apply(tx).await
}

/// Reads a volume inside a transaction.
pub async fn get(tx: &mut AnyConnection, id: &str) -> Result<Option<VolumeRow>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM volumes WHERE id = $1"));
    let row = sqlx::query(sql).bind(id).fetch_optional(&mut *tx).await?;
    row.as_ref().map(from_row).transpose()
}

/// Volumes recorded against an instance (attached, or being attached or detached), inside a
/// transaction, oldest first.
pub async fn of_instance(tx: &mut AnyConnection, instance_id: &str) -> Result<Vec<VolumeRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM volumes WHERE instance_id = $1 AND status <> 'deleted' ORDER BY created_at, id"
    ));
    let rows = sqlx::query(sql)
        .bind(instance_id)
        .fetch_all(&mut *tx)
        .await?;
    rows.iter().map(from_row).collect()
}

#[derive(Debug, Clone, Default)]
pub struct VolumeFilter {
    pub status: Option<String>,
    pub region: Option<String>,
}

impl Store {
    /// A volume of the account (another account's is `None`, like a missing one).
    pub async fn volume(&self, account_id: &str, id: &str) -> Result<Option<VolumeRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM volumes WHERE id = $1 AND account_id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(id)
            .bind(account_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Any volume, for workers and reconcilers.
    pub async fn volume_by_id(&self, id: &str) -> Result<Option<VolumeRow>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM volumes WHERE id = $1"));
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of the account's volumes, newest first, and how many match. Deleted volumes are hidden
    /// unless the status filter asks for them.
    pub async fn volumes(
        &self,
        account_id: &str,
        filter: &VolumeFilter,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<VolumeRow>, u64)> {
        let mut conditions = vec!["account_id = $1".to_string()];
        if filter.status.is_none() {
            conditions.push("status <> 'deleted'".into());
        }
        let mut binds = vec![Bind::Text(account_id.to_string())];
        let mut push = |condition: &str, value: Bind| {
            binds.push(value);
            conditions.push(condition.replace('?', &format!("${}", binds.len())));
        };
        if let Some(status) = &filter.status {
            push("status = ?", Bind::Text(status.clone()));
        }
        if let Some(region) = &filter.region {
            push("region = ?", Bind::Text(region.clone()));
        }
        let condition = conditions.join(" AND ");
        let listing = Listing {
            table: "volumes",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "created_at DESC, id DESC",
        };
        let (rows, total) = listing.page(self, offset, limit).await?;
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }

    /// Names of the account's volumes not deleted that start with `prefix` (exactly, case included).
    pub async fn volume_names_starting_with(
        &self,
        account_id: &str,
        prefix: &str,
    ) -> Result<Vec<String>> {
        // `LIKE` ignores case on SQLite only; the exact test is `substr`, which both databases share.
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM volumes WHERE account_id = $1 AND status <> 'deleted' \
             AND substr(name, 1, CAST($2 AS INTEGER)) = $3 ORDER BY name",
        )
        .bind(account_id)
        .bind(prefix.chars().count() as i64)
        .bind(prefix)
        .fetch_all(self.pool())
        .await?;
        Ok(names)
    }

    /// Volumes recorded against an instance (attached, or being attached or detached), oldest first.
    pub async fn instance_volumes(&self, instance_id: &str) -> Result<Vec<VolumeRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM volumes WHERE instance_id = $1 AND status <> 'deleted' ORDER BY created_at, id"
        ));
        let rows = sqlx::query(sql)
            .bind(instance_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn volumes_with_status(&self, statuses: &[&str]) -> Result<Vec<VolumeRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM volumes WHERE status IN ({}) ORDER BY id",
            placeholders(1, statuses.len())
        ));
        let mut query = sqlx::query(sql);
        for status in statuses {
            query = query.bind(*status);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// Resting volumes (`in-use` or `error`) still recorded against an instance that is deleted: their
    /// attachment ended with the instance.
    pub async fn volumes_of_deleted_instances(&self) -> Result<Vec<VolumeRow>> {
        let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("v.{c}")).collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM volumes v JOIN instances i ON i.id = v.instance_id \
             WHERE i.status = 'DELETED' AND v.status IN ('in-use', 'error') ORDER BY v.id",
            columns.join(", ")
        ));
        let rows = sqlx::query(sql).fetch_all(self.pool()).await?;
        rows.iter().map(from_row).collect()
    }
}

/// The volumes attached to (or attaching to or detaching from) the instances whose ids `ids` names as
/// placeholders, oldest first.
pub(crate) fn of_instances(ids: &str) -> RowSet {
    RowSet {
        columns: COLUMNS.to_string(),
        inner: format!(
            "SELECT {COLUMNS} FROM volumes WHERE instance_id IN ({ids}) AND status <> 'deleted'"
        ),
        order: "created_at, id",
    }
}
