//! GPU capacity per region and model, and the units allocated from it.
//!
//! Allocation is one conditional statement, so concurrent deploys can never take more than there is.

use crate::sql::Columns;
use crate::{Backend, Db, Result, Store, Tx, binds};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityRow {
    pub region: String,
    pub gpu_model: String,
    pub total: i64,
    pub allocated: i64,
    /// Units a simulation scenario (scarcity, an outage) holds back from stock.
    pub withheld: i64,
    /// Units on hosts the compute driver reports lost, out of stock until they are back.
    pub lost: i64,
}

impl CapacityRow {
    /// The row from its region, model, total, allocated, withheld and lost, in that order from `first` on.
    pub(crate) fn from_row(row: &impl Columns, first: usize) -> Result<CapacityRow> {
        Ok(CapacityRow {
            region: row.text(first)?,
            gpu_model: row.text(first + 1)?,
            total: row.int(first + 2)?,
            allocated: row.int(first + 3)?,
            withheld: row.int(first + 4)?,
            lost: row.int(first + 5)?,
        })
    }

    pub fn free(&self) -> i64 {
        (self.total - self.allocated - self.withheld - self.lost).max(0)
    }
}

impl Store {
    pub async fn capacity(&self) -> Result<Vec<CapacityRow>> {
        let rows = self
            .fetch_all(
                "SELECT region, gpu_model, total, allocated, withheld, lost FROM gpu_capacity ORDER BY region, gpu_model",
                &[],
            )
            .await?;
        rows.iter().map(|r| CapacityRow::from_row(r, 0)).collect()
    }

    /// Adds capacity rows that do not exist yet (first start); existing rows are left to the operator.
    pub async fn seed_capacity(&self, rows: &[(String, String, i64)], now: i64) -> Result<()> {
        // One statement, the rows as one JSON parameter: a start waits for no round trip per row.
        let json = serde_json::Value::Array(
            rows.iter()
                .map(|(region, model, total)| serde_json::json!([region, model, total]))
                .collect(),
        )
        .to_string();
        let seeded = match self.backend() {
            Backend::Sqlite => {
                "SELECT j.value->>0, j.value->>1, j.value->>2, 0, $2 FROM json_each($1) AS j WHERE true"
            }
            Backend::Postgres => {
                "SELECT j->>0, j->>1, (j->>2)::BIGINT, 0, $2 FROM jsonb_array_elements($1::JSONB) AS j"
            }
        };
        self.execute(
            &format!(
                "INSERT INTO gpu_capacity (region, gpu_model, total, allocated, updated_at) {seeded} \
                 ON CONFLICT (region, gpu_model) DO NOTHING"
            ),
            &binds![json, now],
        )
        .await?;
        Ok(())
    }

    /// Records the units of a region and model on hosts the driver reports lost; whether that changed
    /// the row. `only_more`: a count below the recorded one is ignored (the simulator's hosts stay lost
    /// until a reset, and a replica that was not told of a loss must not undo it).
    pub async fn set_lost_gpus(
        &self,
        region: &str,
        model: &str,
        lost: i64,
        only_more: bool,
        now: i64,
    ) -> Result<bool> {
        let changed = if only_more { "lost < $3" } else { "lost <> $3" };
        let done = self
            .execute(
                &format!(
                    "UPDATE gpu_capacity SET lost = $3, updated_at = $4 \
                     WHERE region = $1 AND gpu_model = $2 AND {changed}"
                ),
                &binds![region, model, lost, now],
            )
            .await?;
        Ok(done == 1)
    }

    /// Sets the total units of a region and model (operators); allocations are kept.
    pub async fn set_capacity(
        &self,
        region: &str,
        model: &str,
        total: i64,
        now: i64,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO gpu_capacity (region, gpu_model, total, allocated, updated_at) VALUES ($1, $2, $3, 0, $4) \
             ON CONFLICT (region, gpu_model) DO UPDATE SET total = excluded.total, updated_at = excluded.updated_at",
            &binds![region, model, total, now],
        )
        .await?;
        Ok(())
    }
}

/// Takes `count` units if that many are free; false (nothing taken) otherwise.
pub async fn allocate(
    tx: &mut Tx,
    region: &str,
    model: &str,
    count: i64,
    now: i64,
) -> Result<bool> {
    let done = tx
        .execute(ALLOCATE_SQL, &binds![region, model, count, now])
        .await?;
    Ok(done == 1)
}

/// [`allocate`]'s statement: the region, model, count and time as $1 to $4.
pub(crate) const ALLOCATE_SQL: &str = "UPDATE gpu_capacity SET allocated = allocated + $3, \
     updated_at = $4 WHERE region = $1 AND gpu_model = $2 AND total - allocated - withheld - lost >= $3";

/// Gives back `count` units.
pub async fn release(tx: &mut Tx, region: &str, model: &str, count: i64, now: i64) -> Result<bool> {
    let done = tx
        .execute(
            "UPDATE gpu_capacity SET allocated = allocated - $3, updated_at = $4 \
             WHERE region = $1 AND gpu_model = $2 AND allocated >= $3",
            &binds![region, model, count, now],
        )
        .await?;
    Ok(done == 1)
}
