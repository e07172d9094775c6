//! Snapshots. Every state change is conditional on the generation the caller read, and bumps it.

use crate::sql::{
    Columns, GenerationUpdate, Listing, hold_generation, insert_new_sql, placeholders,
};
use crate::{Bind, Db, Result, Row, Store, Tx, binds};

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

fn from_row(row: &Row) -> Result<SnapshotRow> {
    Ok(SnapshotRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        name: row.text(2)?,
        description: row.opt_text(3)?,
        tier: row.text(4)?,
        region: row.text(5)?,
        instance_id: row.text(6)?,
        instance_name: row.text(7)?,
        gpu_model: row.text(8)?,
        gpu_count: row.int(9)?,
        vcpus: row.int(10)?,
        ram_gb: row.int(11)?,
        storage_gb: row.int(12)?,
        os_volume_type: row.text(13)?,
        operating_system: row.opt_text(14)?,
        size_gb: row.int(15)?,
        is_image: row.flag(16)?,
        status: row.text(17)?,
        status_reason: row.opt_text(18)?,
        currency: row.text(19)?,
        generation: row.int(20)?,
        created_at: row.int(21)?,
        updated_at: row.int(22)?,
        deleted_at: row.opt_int(23)?,
    })
}

/// Inserts a snapshot; false, writing nothing, when its id is taken (six random characters: the caller
/// draws another). A name the account already uses (among snapshots not deleted) is still
/// `StoreError::Unique`.
pub async fn insert(db: &mut impl Db, s: &SnapshotRow) -> Result<bool> {
    let sql = insert_new_sql("snapshots", COLUMNS);
    let inserted = db
        .execute(
            &sql,
            &binds![
                &s.id,
                &s.account_id,
                &s.name,
                &s.description,
                &s.tier,
                &s.region,
                &s.instance_id,
                &s.instance_name,
                &s.gpu_model,
                s.gpu_count,
                s.vcpus,
                s.ram_gb,
                s.storage_gb,
                &s.os_volume_type,
                &s.operating_system,
                s.size_gb,
                s.is_image,
                &s.status,
                &s.status_reason,
                &s.currency,
                s.generation,
                s.created_at,
                s.updated_at,
                s.deleted_at
            ],
        )
        .await?;
    Ok(inserted == 1)
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
    tx: &mut Tx,
    id: &str,
    generation: i64,
    change: &SnapshotChange,
    now: i64,
) -> Result<bool> {
    let mut update = GenerationUpdate::new("snapshots", id, generation, now);
    if let Some(status) = &change.status {
        update.set("status", status);
    }
    if let Some(reason) = &change.status_reason {
        update.set("status_reason", reason);
    }
    if let Some(at) = change.deleted_at {
        update.set("deleted_at", at);
    }
    update.apply(tx).await
}

/// Holds the snapshot at `generation` until the caller's transaction ends, without changing it: a
/// restore or an image made from it commits before any change of the snapshot (its deletion) can, or
/// sees the change and gives up. False when the snapshot changed since it was read.
pub async fn hold(tx: &mut Tx, id: &str, generation: i64) -> Result<bool> {
    hold_generation(tx, "snapshots", id, generation).await
}

/// Holds instance `id` at `generation` the same way while a snapshot of it is written: the snapshot is of
/// the instance as it was read (ACTIVE), or the instance changed first and the caller decides again.
pub async fn hold_instance(tx: &mut Tx, id: &str, generation: i64) -> Result<bool> {
    hold_generation(tx, "instances", id, generation).await
}

/// Reads a snapshot inside a transaction.
pub async fn get(tx: &mut Tx, id: &str) -> Result<Option<SnapshotRow>> {
    let sql = format!("SELECT {COLUMNS} FROM snapshots WHERE id = $1");
    let row = tx.fetch_optional(&sql, &binds![id]).await?;
    row.as_ref().map(from_row).transpose()
}

#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    pub status: Option<String>,
    pub region: Option<String>,
    pub instance_id: Option<String>,
    /// Only those carrying every one of these labels.
    pub labels: Vec<crate::labels::LabelSelector>,
}

impl Store {
    /// A snapshot of the account (another account's is `None`, like a missing one).
    pub async fn snapshot(&self, account_id: &str, id: &str) -> Result<Option<SnapshotRow>> {
        let sql = format!("SELECT {COLUMNS} FROM snapshots WHERE id = $1 AND account_id = $2");
        let row = self.fetch_optional(&sql, &binds![id, account_id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Any snapshot, for workers.
    pub async fn snapshot_by_id(&self, id: &str) -> Result<Option<SnapshotRow>> {
        let sql = format!("SELECT {COLUMNS} FROM snapshots WHERE id = $1");
        let row = self.fetch_optional(&sql, &binds![id]).await?;
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
        let sql = format!(
            "SELECT {COLUMNS} FROM snapshots WHERE account_id = $1 AND id IN ({}) ORDER BY created_at, id",
            placeholders(2, ids.len())
        );
        let mut binds: Vec<Bind> = vec![account_id.into()];
        binds.extend(ids.iter().map(Bind::from));
        let rows = self.fetch_all(&sql, &binds).await?;
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
        let mut binds: Vec<Bind> = vec![account_id.into()];
        let mut push = |condition: &str, value| {
            binds.push(value);
            conditions.push(condition.replace('?', &format!("${}", binds.len())));
        };
        if let Some(status) = &filter.status {
            push("status = ?", status.into());
        }
        if let Some(region) = &filter.region {
            push("region = ?", region.into());
        }
        if let Some(instance) = &filter.instance_id {
            push("instance_id = ?", instance.into());
        }
        conditions.extend(crate::labels::conditions(
            &filter.labels,
            "snapshot",
            "id",
            "$1",
            &mut binds,
        ));
        let condition = conditions.join(" AND ");
        let listing = Listing {
            table: "snapshots",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "created_at DESC, id DESC",
            source: None,
        };
        let (rows, total) = listing.page(self, offset, limit).await?;
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }

    /// Instances still being created (`CREATING`) from the disk of snapshot `id`: restores, and deploys
    /// from images made from it.
    pub async fn instances_creating_from_snapshot(&self, id: &str) -> Result<Vec<String>> {
        let rows = self
            .fetch_all(
                "SELECT id FROM instances WHERE source_snapshot_id = $1 AND status = 'CREATING' ORDER BY id",
                &binds![id],
            )
            .await?;
        rows.iter().map(|r| r.text(0)).collect()
    }
}
