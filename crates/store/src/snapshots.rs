//! Snapshots. Every state change is conditional on the generation the caller read, and bumps it.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use crate::sql::{Bind, GenerationUpdate, Listing, placeholders};
use crate::{Result, Store, flag};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub description: Option<String>,
    pub tier: String,
    pub region: String,
    /// The instance the snapshot was taken of, and its configuration then.
    pub instance_id: String,
    pub instance_name: String,
    pub gpu_model: String,
    pub gpu_count: i64,
    pub vcpus: i64,
    pub ram_gb: i64,
    pub storage_gb: i64,
    pub os_volume_type: String,
    pub operating_system: Option<String>,
    /// The size the snapshot is billed for (the tier's fixed size).
    pub size_gb: i64,
    /// Whether an image was asked for with the snapshot.
    pub is_image: bool,
    pub status: String,
    pub status_reason: Option<String>,
    pub currency: String,
    pub generation: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

const COLUMNS: &str = "id, account_id, name, description, tier, region, instance_id, instance_name, gpu_model, \
     gpu_count, vcpus, ram_gb, storage_gb, os_volume_type, operating_system, size_gb, is_image, status, \
     status_reason, currency, generation, created_at, updated_at, deleted_at";

fn from_row(row: &AnyRow) -> Result<SnapshotRow> {
    Ok(SnapshotRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        tier: row.try_get("tier")?,
        region: row.try_get("region")?,
        instance_id: row.try_get("instance_id")?,
        instance_name: row.try_get("instance_name")?,
        gpu_model: row.try_get("gpu_model")?,
        gpu_count: row.try_get("gpu_count")?,
        vcpus: row.try_get("vcpus")?,
        ram_gb: row.try_get("ram_gb")?,
        storage_gb: row.try_get("storage_gb")?,
        os_volume_type: row.try_get("os_volume_type")?,
        operating_system: row.try_get("operating_system")?,
        size_gb: row.try_get("size_gb")?,
        is_image: flag(row.try_get("is_image")?),
        status: row.try_get("status")?,
        status_reason: row.try_get("status_reason")?,
        currency: row.try_get("currency")?,
        generation: row.try_get("generation")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

/// Inserts a snapshot; a name the account already uses (among snapshots not deleted) is
/// `StoreError::Unique`.
pub async fn insert<'c, E: Executor<'c, Database = Any>>(db: E, s: &SnapshotRow) -> Result<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO snapshots ({COLUMNS}) VALUES ({})",
        placeholders(1, 24)
    ));
    sqlx::query(sql)
        .bind(&s.id)
        .bind(&s.account_id)
        .bind(&s.name)
        .bind(&s.description)
        .bind(&s.tier)
        .bind(&s.region)
        .bind(&s.instance_id)
        .bind(&s.instance_name)
        .bind(&s.gpu_model)
        .bind(s.gpu_count)
        .bind(s.vcpus)
        .bind(s.ram_gb)
        .bind(s.storage_gb)
        .bind(&s.os_volume_type)
        .bind(&s.operating_system)
        .bind(s.size_gb)
        .bind(i64::from(s.is_image))
        .bind(&s.status)
        .bind(&s.status_reason)
        .bind(&s.currency)
        .bind(s.generation)
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(s.deleted_at)
        .execute(db)
        .await?;
    Ok(())
}

/// Fields a state change sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SnapshotChange {
    pub status: Option<String>,
    pub status_reason: Option<Option<String>>,
    pub deleted_at: Option<i64>,
}

/// Applies `change` if the snapshot is still at `generation`, bumping it; false when someone else changed
/// the snapshot first (the caller re-reads and decides again).
pub async fn update(
    tx: &mut AnyConnection,
    id: &str,
    generation: i64,
    change: &SnapshotChange,
    now: i64,
) -> Result<bool> {
    let mut update = GenerationUpdate::new("snapshots", id, generation, now);
    if let Some(status) = &change.status {
        update.set("status", Bind::Text(status.clone()));
    }
    if let Some(reason) = &change.status_reason {
        update.set("status_reason", Bind::OptText(reason.clone()));
    }
    if let Some(at) = change.deleted_at {
        update.set("deleted_at", Bind::Int(at));
    }
    update.apply(tx).await
}

/// Holds the snapshot at `generation` until the caller's transaction ends, without changing it: a
/// restore or an image made from it commits before any change of the snapshot (its deletion) can, or
/// sees the change and gives up. False when the snapshot changed since it was read.
pub async fn hold(tx: &mut AnyConnection, id: &str, generation: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE snapshots SET generation = generation WHERE id = $1 AND generation = $2",
    )
    .bind(id)
    .bind(generation)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Holds instance `id` at `generation` the same way while a snapshot of it is written: the snapshot is of
/// the instance as it was read (ACTIVE), or the instance changed first and the caller decides again.
pub async fn hold_instance(tx: &mut AnyConnection, id: &str, generation: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE instances SET generation = generation WHERE id = $1 AND generation = $2",
    )
    .bind(id)
    .bind(generation)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Reads a snapshot inside a transaction.
pub async fn get(tx: &mut AnyConnection, id: &str) -> Result<Option<SnapshotRow>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM snapshots WHERE id = $1"));
    let row = sqlx::query(sql).bind(id).fetch_optional(&mut *tx).await?;
    row.as_ref().map(from_row).transpose()
}

#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    pub status: Option<String>,
    pub region: Option<String>,
    pub instance_id: Option<String>,
}

impl Store {
    /// A snapshot of the account (another account's is `None`, like a missing one).
    pub async fn snapshot(&self, account_id: &str, id: &str) -> Result<Option<SnapshotRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM snapshots WHERE id = $1 AND account_id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(id)
            .bind(account_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Any snapshot, for workers.
    pub async fn snapshot_by_id(&self, id: &str) -> Result<Option<SnapshotRow>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM snapshots WHERE id = $1"));
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Snapshots of the account among `ids`, deleted ones included (one query).
    pub async fn snapshots_by_ids(
        &self,
        account_id: &str,
        ids: &[String],
    ) -> Result<Vec<SnapshotRow>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM snapshots WHERE account_id = $1 AND id IN ({}) ORDER BY created_at, id",
            placeholders(2, ids.len())
        ));
        let mut query = sqlx::query(sql).bind(account_id);
        for id in ids {
            query = query.bind(id.as_str());
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// A page of the account's snapshots, newest first, and how many match. Deleted snapshots are hidden
    /// unless the status filter asks for them.
    pub async fn snapshots(
        &self,
        account_id: &str,
        filter: &SnapshotFilter,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<SnapshotRow>, u64)> {
        let mut conditions = vec!["account_id = $1".to_string()];
        if filter.status.is_none() {
            conditions.push("status <> 'DELETED'".into());
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
        if let Some(instance) = &filter.instance_id {
            push("instance_id = ?", Bind::Text(instance.clone()));
        }
        let condition = conditions.join(" AND ");
        let listing = Listing {
            table: "snapshots",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "created_at DESC, id DESC",
        };
        let (rows, total) = listing.page(self, offset, limit).await?;
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }

    /// Instances still being created (`CREATING`) from the disk of snapshot `id`: restores, and deploys
    /// from images made from it.
    pub async fn instances_creating_from_snapshot(&self, id: &str) -> Result<Vec<String>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM instances WHERE source_snapshot_id = $1 AND status = 'CREATING' ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(ids)
    }
}
