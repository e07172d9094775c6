//! Public addresses handed out. Pools are not stored: an address is picked from the region's CIDR block by
//! the caller and taken by one insert, whose primary key keeps it with one instance and whose unique index
//! on `instance_id` keeps an instance with one address. Free addresses have no row, so a pool of any size
//! costs nothing at start.

use crate::sql::Columns;
use crate::{Db, Result, Store, Tx, binds};

impl Store {
    /// (region, addresses handed out) for every region that has handed one out.
    pub async fn public_ip_usage(&self) -> Result<Vec<(String, i64)>> {
        let rows = self
            .fetch_all(
                "SELECT region, COUNT(*) FROM public_ip_assignments GROUP BY region ORDER BY region",
                &[],
            )
            .await?;
        rows.iter().map(|r| Ok((r.text(0)?, r.int(1)?))).collect()
    }

    /// Every (address, instance) pair handed out.
    pub async fn public_ip_assignments(&self) -> Result<Vec<(String, String)>> {
        let rows = self
            .fetch_all(
                "SELECT address, instance_id FROM public_ip_assignments ORDER BY address",
                &[],
            )
            .await?;
        rows.iter().map(|r| Ok((r.text(0)?, r.text(1)?))).collect()
    }
}

/// The address the instance holds, if any.
pub async fn held_by(tx: &mut Tx, instance_id: &str) -> Result<Option<String>> {
    let row = tx
        .fetch_optional(
            "SELECT address FROM public_ip_assignments WHERE instance_id = $1",
            &binds![instance_id],
        )
        .await?;
    row.map(|r| r.text(0)).transpose()
}

/// Takes `address` for the instance; false when the address is someone else's (or the instance already
/// holds one). On PostgreSQL a concurrent taker of the same address waits for the first to end, then
/// finds it taken; takers of different addresses never wait for each other.
pub async fn take(
    tx: &mut Tx,
    region: &str,
    address: &str,
    instance_id: &str,
    now: i64,
) -> Result<bool> {
    let taken = tx
        .execute(TAKE_SQL, &binds![address, region, instance_id, now])
        .await?;
    Ok(taken == 1)
}

/// [`take`]'s statement: the address, region, instance and time as $1 to $4.
pub(crate) const TAKE_SQL: &str = "INSERT INTO public_ip_assignments (address, region, instance_id, \
     updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";

/// Every address of the region handed out (to search a nearly full pool for a free one).
pub async fn taken_in(tx: &mut Tx, region: &str) -> Result<Vec<String>> {
    let rows = tx
        .fetch_all(
            "SELECT address FROM public_ip_assignments WHERE region = $1",
            &binds![region],
        )
        .await?;
    rows.iter().map(|r| r.text(0)).collect()
}

/// Returns the instance's address to the pool (if it has one).
pub async fn release(tx: &mut Tx, instance_id: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM public_ip_assignments WHERE instance_id = $1",
        &binds![instance_id],
    )
    .await?;
    Ok(())
}

/// Hands the address `from` holds (a deploy hold) to `to` (the instance deployed with it).
pub async fn transfer(tx: &mut Tx, from: &str, to: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE public_ip_assignments SET instance_id = $2, updated_at = $3 WHERE instance_id = $1",
        &binds![from, to, now],
    )
    .await?;
    Ok(())
}
