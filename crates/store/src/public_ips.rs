//! The public address pool of each region. An address is handed out by one conditional statement and
//! a unique index on `instance_id`, so no address ever belongs to two instances.

use sqlx::{AnyConnection, Row};

use crate::{Backend, Result, Store};

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
            sqlx::query(
                "INSERT INTO public_ips (address, region, instance_id, updated_at) VALUES ($1, $2, NULL, $3) \
                 ON CONFLICT (address) DO NOTHING",
            )
            .bind(address)
            .bind(region)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// (region, free, assigned) for every region with a pool.
    pub async fn public_ip_usage(&self) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT region, CAST(SUM(CASE WHEN instance_id IS NULL THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN instance_id IS NULL THEN 0 ELSE 1 END) AS BIGINT) \
             FROM public_ips GROUP BY region ORDER BY region",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Every (address, instance) pair handed out.
    pub async fn public_ip_assignments(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT address, instance_id FROM public_ips WHERE instance_id IS NOT NULL ORDER BY address")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

/// Hands a free address of `region` to the instance (or returns the one it already has); `None` when the
/// pool is exhausted.
pub async fn assign(
    tx: &mut AnyConnection,
    backend: Backend,
    region: &str,
    instance_id: &str,
    now: i64,
) -> Result<Option<String>> {
    let existing: Option<String> =
        sqlx::query_scalar("SELECT address FROM public_ips WHERE instance_id = $1")
            .bind(instance_id)
            .fetch_optional(&mut *tx)
            .await?;
    if existing.is_some() {
        return Ok(existing);
    }
    let lock = match backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE public_ips SET instance_id = $2, updated_at = $3 WHERE address = \
         (SELECT address FROM public_ips WHERE region = $1 AND instance_id IS NULL ORDER BY address LIMIT 1 {lock}) \
         AND instance_id IS NULL RETURNING address"
    ));
    let address: Option<String> = sqlx::query_scalar(sql)
        .bind(region)
        .bind(instance_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(address)
}

/// Returns the instance's address to the pool (if it has one).
pub async fn release(tx: &mut AnyConnection, instance_id: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE public_ips SET instance_id = NULL, updated_at = $2 WHERE instance_id = $1")
        .bind(instance_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
