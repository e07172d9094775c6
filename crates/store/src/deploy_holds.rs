//! Deploy holds: GPUs and a public address reserved by a preflight for one account's deploy, for a short
//! while. Every change of state is one statement conditional on `state = 'held'`, so a hold is consumed,
//! released or expired exactly once, whichever server gets there first.

use crate::sql::{Columns, insert_sql};
use crate::{Db, Result, Row, Store, binds};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployHoldRow {
    pub id: String,
    pub account_id: String,
    pub region: String,
    pub gpu_model: String,
    pub gpu_count: i64,
    pub public_ip: bool,
    /// The public address assigned under the hold's id, when it asked for one.
    pub address: Option<String>,
    /// `held`, `consumed`, `released` or `expired`.
    pub state: String,
    /// The instance that consumed it.
    pub instance_id: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, account_id, region, gpu_model, gpu_count, public_ip, address, state, instance_id, \
                       expires_at, created_at, updated_at";

fn from_row(row: &Row) -> Result<DeployHoldRow> {
    Ok(DeployHoldRow {
        id: row.text(0)?,
        account_id: row.text(1)?,
        region: row.text(2)?,
        gpu_model: row.text(3)?,
        gpu_count: row.int(4)?,
        public_ip: row.int(5)? == 1,
        address: row.opt_text(6)?,
        state: row.text(7)?,
        instance_id: row.opt_text(8)?,
        expires_at: row.int(9)?,
        created_at: row.int(10)?,
        updated_at: row.int(11)?,
    })
}

/// Writes a new hold (its GPUs and address taken by the caller in the same transaction).
pub async fn insert(db: &mut impl Db, hold: &DeployHoldRow) -> Result<()> {
    let sql = insert_sql("deploy_holds", COLUMNS);
    db.execute(
        &sql,
        &binds![
            &hold.id,
            &hold.account_id,
            &hold.region,
            &hold.gpu_model,
            hold.gpu_count,
            hold.public_ip,
            &hold.address,
            &hold.state,
            &hold.instance_id,
            hold.expires_at,
            hold.created_at,
            hold.updated_at,
        ],
    )
    .await?;
    Ok(())
}

/// The account's holds still holding GPUs (`held`, expired or not: an expired one holds them until its
/// expiry job ends it).
pub async fn held(db: &mut impl Db, account_id: &str) -> Result<Vec<DeployHoldRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM deploy_holds WHERE account_id = $1 AND state = 'held' ORDER BY id"
    );
    db.fetch_all(&sql, &binds![account_id])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Marks the hold consumed by `instance_id`, if it is still held and not yet expired at `now`.
pub async fn consume(db: &mut impl Db, id: &str, instance_id: &str, now: i64) -> Result<bool> {
    let done = db
        .execute(
            "UPDATE deploy_holds SET state = 'consumed', instance_id = $2, updated_at = $3 \
             WHERE id = $1 AND state = 'held' AND expires_at > $3",
            &binds![id, instance_id, now],
        )
        .await?;
    Ok(done == 1)
}

/// Ends a hold that is still held, as `released` (its account let it go) or `expired` (its time ran out
/// by `now`): true for the one caller that ended it, who then gives back what it held.
pub async fn end(db: &mut impl Db, id: &str, state: &str, now: i64) -> Result<bool> {
    let done = db
        .execute(
            "UPDATE deploy_holds SET state = $2, updated_at = $3 \
             WHERE id = $1 AND state = 'held' AND ($2 = 'released' OR expires_at <= $3)",
            &binds![id, state, now],
        )
        .await?;
    Ok(done == 1)
}

impl Store {
    /// The account's hold `id`.
    pub async fn deploy_hold(&self, account_id: &str, id: &str) -> Result<Option<DeployHoldRow>> {
        let sql = format!("SELECT {COLUMNS} FROM deploy_holds WHERE account_id = $1 AND id = $2");
        let row = self.fetch_optional(&sql, &binds![account_id, id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Hold `id`, whoever's it is (the expiry job).
    pub async fn deploy_hold_by_id(&self, id: &str) -> Result<Option<DeployHoldRow>> {
        let sql = format!("SELECT {COLUMNS} FROM deploy_holds WHERE id = $1");
        let row = self.fetch_optional(&sql, &binds![id]).await?;
        row.as_ref().map(from_row).transpose()
    }
}
