//! The simulated data centre's clock: real time plus an offset that operators move forward to see in
//! seconds what a month of a setup costs. The offset is stored, so a restart or another server on the
//! same database keeps the time it was moved to.

use std::sync::Arc;

use barrack_api::billing::ClockAdvanced;

use crate::billing::BillingService;
use crate::compute::instances::InstanceService;
use crate::platform::clock::format_ms;
use crate::{Context, Error, Result};

const MINUTE_MS: i64 = 60_000;
/// At most a year per move.
pub const MAX_MINUTES: u32 = 525_600;

#[derive(Clone)]
pub struct SimulationService {
    context: Arc<Context>,
    billing: BillingService,
    instances: InstanceService,
}

impl SimulationService {
    pub fn new(
        context: Arc<Context>,
        billing: BillingService,
        instances: InstanceService,
    ) -> SimulationService {
        SimulationService {
            context,
            billing,
            instances,
        }
    }

    /// Brings this server's clock up to the stored offset (at start, and before each meter run).
    pub async fn catch_up(&self) -> Result<()> {
        if self.context.driver.is_simulated() {
            let offset = self.context.store.clock_offset().await?;
            self.context.clock.follow_offset(offset);
        }
        Ok(())
    }

    /// `POST /api/admin/clock/advance/`: moves the clock forward, then bills the minutes that passed (and
    /// hibernates what ran out of credit on the way).
    pub async fn advance(&self, minutes: u32) -> Result<ClockAdvanced> {
        if !self.context.driver.is_simulated() {
            return Err(Error::conflict(
                "CONFLICT",
                "The clock moves only in simulation mode",
            ));
        }
        if !(1..=MAX_MINUTES).contains(&minutes) {
            return Err(Error::field(
                "minutes",
                format!("Minutes must be between 1 and {MAX_MINUTES}"),
            ));
        }
        let ms = i64::from(minutes) * MINUTE_MS;
        if !self.context.clock.advance_ms(ms) {
            return Err(Error::conflict(
                "CONFLICT",
                "This server's clock follows real time",
            ));
        }
        let offset = self.context.store.add_clock_offset(ms).await?;
        self.context.clock.follow_offset(offset);
        let now = self.context.clock.now_ms();
        let run = self.billing.meter_and_guard(&self.instances).await?;
        self.context.work.notify_one();
        Ok(ClockAdvanced {
            now: format_ms(now),
            periods_billed: run.periods_billed,
        })
    }
}
