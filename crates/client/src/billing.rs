//! Billing records, the aggregate view, and the simulated clock.

use barrack_api::Envelope;
use barrack_api::billing::{
    AdvanceClock, AggregatedBilling, BillingQuery, ClockAdvanced, InstanceBillingResponse,
    SnapshotBillingResponse, VolumeBillingResponse,
};

use crate::{Client, Result, with_query};

impl Client {
    pub async fn instance_billing(&self, query: &BillingQuery) -> Result<InstanceBillingResponse> {
        self.get(&with_query("/api/instances/billing/", query))
            .await
    }

    pub async fn volume_billing(&self, query: &BillingQuery) -> Result<VolumeBillingResponse> {
        self.get(&with_query("/api/volumes/billing/", query)).await
    }

    pub async fn snapshot_billing(&self, query: &BillingQuery) -> Result<SnapshotBillingResponse> {
        self.get(&with_query("/api/snapshots/billing/", query))
            .await
    }

    pub async fn billing(&self, query: &BillingQuery) -> Result<Envelope<AggregatedBilling>> {
        self.get(&with_query("/api/billing/", query)).await
    }

    /// Operators, simulation mode: moves the clock forward and bills the minutes that passed.
    pub async fn admin_advance_clock(&self, minutes: u32) -> Result<Envelope<ClockAdvanced>> {
        self.post("/api/admin/clock/advance/", &AdvanceClock { minutes })
            .await
    }
}
