//! Volumes. Every state change is conditional on the generation the caller read, and bumps it.

use crate::sql::{
    Columns, GenerationUpdate, Listing, RowSet, insert_new_sql, placeholders, prefixed,
};
use crate::{Bind, Db, Result, Store, Tx, binds};

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

/// Inserts a volume; false, writing nothing, when its id is taken (six random characters, as for
/// instances: the caller draws another). A name the account already uses (among volumes not deleted) is
/// still `StoreError::Unique`.
pub async fn insert(db: &mut impl Db, v: &VolumeRow) -> Result<bool> {
    let sql = insert_new_sql("volumes", COLUMNS);
    let inserted = db
        .execute(
            &sql,
            &binds![
                &v.id,
                &v.account_id,
                &v.name,
                &v.tier,
                &v.region,
                &v.volume_type,
                v.size_gb,
                v.bootable,
                &v.image_name,
                &v.source_volume_id,
                &v.instance_id,
                &v.status,
                &v.status_reason,
                &v.currency,
                v.generation,
                v.created_at,
                v.updated_at,
                v.deleted_at
            ],
        )
        .await?;
    Ok(inserted == 1)
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
    tx: &mut Tx,
    id: &str,
    generation: i64,
    change: &VolumeChange,
    now: i64,
) -> Result<bool> {
    let mut update = GenerationUpdate::new("volumes", id, generation, now);
    if let Some(status) = &change.status {
        update.set("status", status);
    }
    if let Some(reason) = &change.status_reason {
        update.set("status_reason", reason);
    }
    if let Some(size) = change.size_gb {
        update.set("size_gb", size);
    }
    if let Some(instance) = &change.instance_id {
        update.set("instance_id", instance);
    }
    if let Some(at) = change.deleted_at {
        update.set("deleted_at", at);
    }
    update.apply(tx).await
}

/// Reads a volume inside a transaction.
pub async fn get(tx: &mut Tx, id: &str) -> Result<Option<VolumeRow>> {
    let sql = format!("SELECT {COLUMNS} FROM volumes WHERE id = $1");
    let row = tx.fetch_optional(&sql, &binds![id]).await?;
    row.as_ref().map(from_row).transpose()
}

/// Volumes recorded against an instance (attached, or being attached or detached), inside a
/// transaction, oldest first.
pub async fn of_instance(tx: &mut Tx, instance_id: &str) -> Result<Vec<VolumeRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM volumes WHERE instance_id = $1 AND status <> 'deleted' ORDER BY created_at, id"
    );
    let rows = tx.fetch_all(&sql, &binds![instance_id]).await?;
    rows.iter().map(from_row).collect()
}

#[derive(Debug, Clone, Default)]
pub struct VolumeFilter {
    pub status: Option<String>,
    pub region: Option<String>,
    /// Only those carrying every one of these labels.
    pub labels: Vec<crate::labels::LabelSelector>,
}

impl Store {
    /// A volume of the account (another account's is `None`, like a missing one).
    pub async fn volume(&self, account_id: &str, id: &str) -> Result<Option<VolumeRow>> {
        let sql = format!("SELECT {COLUMNS} FROM volumes WHERE id = $1 AND account_id = $2");
        let row = self.fetch_optional(&sql, &binds![id, account_id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Any volume, for workers and reconcilers.
    pub async fn volume_by_id(&self, id: &str) -> Result<Option<VolumeRow>> {
        let sql = format!("SELECT {COLUMNS} FROM volumes WHERE id = $1");
        let row = self.fetch_optional(&sql, &binds![id]).await?;
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
        conditions.extend(crate::labels::conditions(
            &filter.labels,
            "volume",
            "id",
            "$1",
            &mut binds,
        ));
        let condition = conditions.join(" AND ");
        let listing = Listing {
            table: "volumes",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "created_at DESC, id DESC",
            source: None,
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
        let rows = self
            .fetch_all(
                "SELECT name FROM volumes WHERE account_id = $1 AND status <> 'deleted' \
                 AND substr(name, 1, CAST($2 AS INTEGER)) = $3 ORDER BY name",
                &binds![account_id, prefix.chars().count() as i64, prefix],
            )
            .await?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    /// Volumes recorded against an instance (attached, or being attached or detached), oldest first.
    pub async fn instance_volumes(&self, instance_id: &str) -> Result<Vec<VolumeRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM volumes WHERE instance_id = $1 AND status <> 'deleted' ORDER BY created_at, id"
        );
        let rows = self.fetch_all(&sql, &binds![instance_id]).await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn volumes_with_status(&self, statuses: &[&str]) -> Result<Vec<VolumeRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM volumes WHERE status IN ({}) ORDER BY id",
            placeholders(1, statuses.len())
        );
        let binds: Vec<Bind> = statuses.iter().map(|s| Bind::from(*s)).collect();
        let rows = self.fetch_all(&sql, &binds).await?;
        rows.iter().map(from_row).collect()
    }

    /// Resting volumes (`in-use` or `error`) still recorded against an instance that is deleted: their
    /// attachment ended with the instance.
    pub async fn volumes_of_deleted_instances(&self) -> Result<Vec<VolumeRow>> {
        let sql = format!(
            "SELECT {} FROM volumes v JOIN instances i ON i.id = v.instance_id \
             WHERE i.status = 'DELETED' AND v.status IN ('in-use', 'error') ORDER BY v.id",
            prefixed(COLUMNS, "v")
        );
        let rows = self.fetch_all(&sql, &[]).await?;
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

/// The account's volumes in `status` billed in `currency`, inside a transaction.
pub async fn of_account_in(
    tx: &mut Tx,
    account_id: &str,
    currency: &str,
    status: &str,
) -> Result<Vec<VolumeRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM volumes WHERE account_id = $1 AND currency = $2 AND status = $3 ORDER BY id"
    );
    let rows = tx
        .fetch_all(&sql, &binds![account_id, currency, status])
        .await?;
    rows.iter().map(from_row).collect()
}
