//! The simulation clock's offset from real time, shared by every server on the database.

use crate::sql::Columns;
use crate::{Result, Store, binds};

impl Store {
    /// The offset the simulation clock has been moved to (0 if it never moved).
    pub async fn clock_offset(&self) -> Result<i64> {
        let row = self
            .fetch_optional("SELECT offset_ms FROM simulation_clock WHERE id = 1", &[])
            .await?;
        Ok(row.map(|r| r.int(0)).transpose()?.unwrap_or(0))
    }

    /// Moves the offset forward by `ms` in one statement (concurrent moves add up) and returns the new one.
    pub async fn add_clock_offset(&self, ms: i64) -> Result<i64> {
        self.fetch_one(
            "INSERT INTO simulation_clock (id, offset_ms) VALUES (1, $1) ON CONFLICT (id) DO UPDATE \
             SET offset_ms = simulation_clock.offset_ms + excluded.offset_ms RETURNING offset_ms",
            &binds![ms],
        )
        .await?
        .int(0)
    }
}
