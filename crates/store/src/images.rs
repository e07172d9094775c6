//! Custom images. Every state change is conditional on the generation the caller read, and bumps it.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use crate::sql::{Bind, GenerationUpdate, Listing, placeholders};
use crate::{Result, Store};

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

fn from_row(row: &AnyRow) -> Result<ImageRow> {
    Ok(ImageRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        tier: row.try_get("tier")?,
        region: row.try_get("region")?,
        snapshot_id: row.try_get("snapshot_id")?,
        snapshot_name: row.try_get("snapshot_name")?,
        source_instance_id: row.try_get("source_instance_id")?,
        storage_gb: row.try_get("storage_gb")?,
        os_volume_type: row.try_get("os_volume_type")?,
        operating_system: row.try_get("operating_system")?,
        status: row.try_get("status")?,
        status_reason: row.try_get("status_reason")?,
        generation: row.try_get("generation")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

/// Inserts an image; a name the account already uses (among images not deleted) is
/// `StoreError::Unique`.
pub async fn insert<'c, E: Executor<'c, Database = Any>>(db: E, i: &ImageRow) -> Result<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO images ({COLUMNS}) VALUES ({})",
        placeholders(1, 18)
    ));
    sqlx::query(sql)
        .bind(&i.id)
        .bind(&i.account_id)
        .bind(&i.name)
        .bind(&i.description)
        .bind(&i.tier)
        .bind(&i.region)
        .bind(&i.snapshot_id)
        .bind(&i.snapshot_name)
        .bind(&i.source_instance_id)
        .bind(i.storage_gb)
        .bind(&i.os_volume_type)
        .bind(&i.operating_system)
        .bind(&i.status)
        .bind(&i.status_reason)
        .bind(i.generation)
        .bind(i.created_at)
        .bind(i.updated_at)
        .bind(i.deleted_at)
        .execute(db)
        .await?;
    Ok(())
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
    tx: &mut AnyConnection,
    id: &str,
    generation: i64,
    change: &ImageChange,
    now: i64,
) -> Result<bool> {
    let mut update = GenerationUpdate::new("images", id, generation, now);
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

/// Holds the image at `generation` until the caller's transaction ends, without changing it (see
/// `snapshots::hold`). False when the image changed since it was read.
pub async fn hold(tx: &mut AnyConnection, id: &str, generation: i64) -> Result<bool> {
    let done =
        sqlx::query("UPDATE images SET generation = generation WHERE id = $1 AND generation = $2")
            .bind(id)
            .bind(generation)
            .execute(&mut *tx)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The images of snapshot `snapshot_id` that are not deleted, inside a transaction, oldest first.
pub async fn of_snapshot(tx: &mut AnyConnection, snapshot_id: &str) -> Result<Vec<ImageRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM images WHERE snapshot_id = $1 AND status <> 'DELETED' ORDER BY created_at, id"
    ));
    let rows = sqlx::query(sql)
        .bind(snapshot_id)
        .fetch_all(&mut *tx)
        .await?;
    rows.iter().map(from_row).collect()
}

#[derive(Debug, Clone, Default)]
pub struct ImageFilter {
    pub status: Option<String>,
    pub region: Option<String>,
}

impl Store {
    /// An image of the account (another account's is `None`, like a missing one).
    pub async fn image(&self, account_id: &str, id: &str) -> Result<Option<ImageRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM images WHERE id = $1 AND account_id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(id)
            .bind(account_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The account's image named `name` that is not deleted (names are unique among those).
    pub async fn image_named(&self, account_id: &str, name: &str) -> Result<Option<ImageRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM images WHERE account_id = $1 AND name = $2 AND status <> 'DELETED'"
        ));
        let row = sqlx::query(sql)
            .bind(account_id)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Images not deleted made from any of the snapshots, in one query, oldest first.
    pub async fn images_of_snapshots(&self, snapshot_ids: &[String]) -> Result<Vec<ImageRow>> {
        if snapshot_ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM images WHERE snapshot_id IN ({}) AND status <> 'DELETED' ORDER BY created_at, id",
            placeholders(1, snapshot_ids.len())
        ));
        let mut query = sqlx::query(sql);
        for id in snapshot_ids {
            query = query.bind(id.as_str());
        }
        let rows = query.fetch_all(self.pool()).await?;
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
            table: "images",
            columns: COLUMNS,
            condition: &condition,
            binds: &binds,
            order: "created_at DESC, id DESC",
        };
        let (rows, total) = listing.page(self, offset, limit).await?;
        Ok((rows.iter().map(from_row).collect::<Result<_>>()?, total))
    }
}
