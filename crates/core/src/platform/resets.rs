//! The resets of the simulated data centre (`POST /api/admin/reset/`) this process knows of. Counters
//! kept in memory (the API's rate limits, the AI limits) start over when it moves: the replica that
//! resets moves it at once, every other one when it next reads the shared count (each second, see
//! `SimulationService::follow_resets`).

use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Default)]
pub struct ResetsSeen(AtomicI64);

impl ResetsSeen {
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }

    /// Records the count of resets read from the database; it never goes back.
    pub fn observe(&self, resets: i64) {
        self.0.fetch_max(resets, Ordering::AcqRel);
    }
}
