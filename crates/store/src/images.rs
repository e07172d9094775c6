//! Custom images. Every state change is conditional on the generation the caller read, and bumps it.

use crate::sql::{
    Columns, GenerationUpdate, Listing, hold_generation, insert_new_sql, placeholders,
};
use crate::{Bind, Db, Result, Row, Store, Tx, binds};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub description: Option<String>,
    pub tier: String,
    pub region: String,
    /// The snapshot whose disk the image boots; the image keeps it after the snapshot is deleted.
    pub snapshot_id: String,
    pub snapshot_name: String,
    pub source_instance_id: String,
    pub storage_gb: i64,
    pub os_volume_type: String,
    pub operating_system: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    pub generation: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

const COLUMNS: &str = "id, account_id, name, description, tier, region, snapshot_id, snapshot_name, \
     source_instance_id, storage_gb, os_volume_type, operating_system, status, status_reason, generation, \
     created_at, updated_at, deleted_at";

fn from_row(row: &Row) -> Result<ImageRow> {
    Ok(ImageRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        name: row.text(2)?,
        description: row.opt_text(3)?,
        tier: row.text(4)?,
        region: row.text(5)?,
        snapshot_id: row.text(6)?,
        snapshot_name: row.text(7)?,
        source_instance_id: row.text(8)?,
        storage_gb: row.int(9)?,
        os_volume_type: row.text(10)?,
        operating_system: row.opt_text(11)?,
        status: row.text(12)?,
        status_reason: row.opt_text(13)?,
        generation: row.int(14)?,
        created_at: row.int(15)?,
        updated_at: row.int(16)?,
        deleted_at: row.opt_int(17)?,
    })
}

/// Inserts an image; false, writing nothing, when its id is taken (six random characters: the caller
/// draws another). A name the account already uses (among images not deleted) is still
/// `StoreError::Unique`.
pub async fn insert(db: &mut impl Db, i: &ImageRow) -> Result<bool> {
    let sql = insert_new_sql("images", COLUMNS);
    let inserted = db
        .execute(
            &sql,
            &binds![
                &i.id,
                &i.account_id,
                &i.name,
                &i.description,
                &i.tier,
                &i.region,
                &i.snapshot_id,
                &i.snapshot_name,
                &i.source_instance_id,
                i.storage_gb,
                &i.os_volume_type,
                &i.operating_system,
                &i.status,
                &i.status_reason,
                i.generation,
                i.created_at,
                i.updated_at,
                i.deleted_at
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// Fields a state change sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ImageChange {
    pub status: Option<String>,
    pub status_reason: Option<Option<String>>,
    pub deleted_at: Option<i64>,
}

/// Applies `change` if the image is still at `generation`, bumping it; false when someone else changed
/// the image first.
pub async fn update(
    tx: &mut Tx,
    id: &str,
    generation: i64,
    change: &ImageChange,
    now: i64,
) -> Result<bool> {
    let mut update = GenerationUpdate::new("images", id, generation, now);
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

/// Holds the image at `generation` until the caller's transaction ends, without changing it (see
/// `snapshots::hold`). False when the image changed since it was read.
pub async fn hold(tx: &mut Tx, id: &str, generation: i64) -> Result<bool> {
    hold_generation(tx, "images", id, generation).await
}

/// The images of snapshot `snapshot_id` that are not deleted, inside a transaction, oldest first.
pub async fn of_snapshot(tx: &mut Tx, snapshot_id: &str) -> Result<Vec<ImageRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM images WHERE snapshot_id = $1 AND status <> 'DELETED' ORDER BY created_at, id"
    );
    let rows = tx.fetch_all(&sql, &binds![snapshot_id]).await?;
    rows.iter().map(from_row).collect()
}

#[derive(Debug, Clone, Default)]
pub struct ImageFilter {
    pub status: Option<String>,
    pub region: Option<String>,
    /// Only those carrying every one of these labels.
    pub labels: Vec<crate::labels::LabelSelector>,
}

/// The account's images not deleted (in a transaction holding the account's lock, the count the quota is
/// checked against).
pub async fn count_live(db: &mut impl Db, account_id: &str) -> Result<u64> {
    let row = db
        .fetch_one(
            "SELECT COUNT(*) FROM images WHERE account_id = $1 AND status <> 'DELETED'",
            &binds![account_id],
        )
        .await?;
    Ok(row.int(0)? as u64)
}

impl Store {
    /// An image of the account (another account's is `None`, like a missing one).
    pub async fn image(&self, account_id: &str, id: &str) -> Result<Option<ImageRow>> {
        let sql = format!("SELECT {COLUMNS} FROM images WHERE id = $1 AND account_id = $2");
        let row = self.fetch_optional(&sql, &binds![id, account_id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The account's image named `name` that is not deleted (names are unique among those).
    pub async fn image_named(&self, account_id: &str, name: &str) -> Result<Option<ImageRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM images WHERE account_id = $1 AND name = $2 AND status <> 'DELETED'"
        );
        let row = self.fetch_optional(&sql, &binds![account_id, name]).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Images not deleted made from any of the snapshots, in one query, oldest first.
    pub async fn images_of_snapshots(&self, snapshot_ids: &[String]) -> Result<Vec<ImageRow>> {
        if snapshot_ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM images WHERE snapshot_id IN ({}) AND status <> 'DELETED' ORDER BY created_at, id",
            placeholders(1, snapshot_ids.len())
        );
        let binds: Vec<Bind> = snapshot_ids.iter().map(Bind::from).collect();
        let rows = self.fetch_all(&sql, &binds).await?;
        rows.iter().map(from_row).collect()
    }

    /// A page of the account's images, newest first, and how many match. Deleted images are hidden
    /// unless the status filter asks for them.
    pub async fn images(
        &self,
        account_id: &str,
        filter: &ImageFilter,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<ImageRow>, u64)> {
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
        conditions.extend(crate::labels::conditions(
            &filter.labels,
            "image",
            "id",
            "$1",
            &mut binds,
        ));
        let condition = conditions.join(" AND ");
        let listing = Listing {
            table: "images",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "created_at DESC, id DESC",
            source: None,
        };
        let (rows, total) = listing.page(self, offset, limit).await?;
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }
}
