//! The public address pool of each region. An address is handed out by one conditional statement and
//! a unique index on `instance_id`, so no address ever belongs to two instances.

use crate::sql::Columns;
use crate::{Backend, Db, Result, Store, Tx, binds};

impl Store {
    /// Adds addresses that are not in the pool yet (first start, or a grown pool).
    pub async fn seed_public_ips(
        &self,
        region: &str,
        addresses: &[String],
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for address in addresses {
            tx.execute(
                "INSERT INTO public_ips (address, region, instance_id, updated_at) VALUES ($1, $2, NULL, $3) \
                 ON CONFLICT (address) DO NOTHING",
                &binds![address, region, now],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// (region, free, assigned) for every region with a pool.
    pub async fn public_ip_usage(&self) -> Result<Vec<(String, i64, i64)>> {
        let rows = self
            .fetch_all(
                "SELECT region, CAST(SUM(CASE WHEN instance_id IS NULL THEN 1 ELSE 0 END) AS BIGINT), \
                 CAST(SUM(CASE WHEN instance_id IS NULL THEN 0 ELSE 1 END) AS BIGINT) \
                 FROM public_ips GROUP BY region ORDER BY region",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.text(0)?, r.int(1)?, r.int(2)?)))
            .collect()
    }

    /// Every (address, instance) pair handed out.
    pub async fn public_ip_assignments(&self) -> Result<Vec<(String, String)>> {
        let rows = self
            .fetch_all(
                "SELECT address, instance_id FROM public_ips WHERE instance_id IS NOT NULL ORDER BY address",
                &[],
            )
            .await?;
        rows.iter().map(|r| Ok((r.text(0)?, r.text(1)?))).collect()
    }
}

/// Hands a free address of `region` to the instance (or returns the one it already has); `None` when the
/// pool is exhausted.
pub async fn assign(
    tx: &mut Tx,
    region: &str,
    instance_id: &str,
    now: i64,
) -> Result<Option<String>> {
    let existing = tx
        .fetch_optional(
            "SELECT address FROM public_ips WHERE instance_id = $1",
            &binds![instance_id],
        )
        .await?;
    if let Some(row) = existing {
        return Ok(Some(row.text(0)?));
    }
    let lock = match tx.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE public_ips SET instance_id = $2, updated_at = $3 WHERE address = \
         (SELECT address FROM public_ips WHERE region = $1 AND instance_id IS NULL ORDER BY address LIMIT 1 {lock}) \
         AND instance_id IS NULL RETURNING address"
    );
    let row = tx
        .fetch_optional(&sql, &binds![region, instance_id, now])
        .await?;
    row.map(|r| r.text(0)).transpose()
}

/// Returns the instance's address to the pool (if it has one).
pub async fn release(tx: &mut Tx, instance_id: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE public_ips SET instance_id = NULL, updated_at = $2 WHERE instance_id = $1",
        &binds![instance_id, now],
    )
    .await?;
    Ok(())
}
