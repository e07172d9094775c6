//! `POST /api/deploy-server/` in three steps, so that checking and writing never interleave:
//! [`fields`] checks the request on its own, [`plan`] resolves and checks everything it names into a
//! [`plan::DeployPlan`], and [`execute`] writes that plan in one transaction.
//!
//! A preflight (`POST /api/deploy-server/preflight/`) goes through the same three steps and drops the
//! transaction instead of committing it, so it answers exactly what the deploy would and leaves nothing
//! behind; with `hold: true` it then reserves the GPUs and the address ([`holds`]).

mod execute;
mod fields;
pub mod holds;
mod plan;

use barrack_api::instances::{DeployRequest, DeployedInstance, Preflight};

use crate::Result;
use crate::accounts::Caller;
use crate::compute::instances::InstanceService;
use fields::Purpose;

impl InstanceService {
    /// `POST /api/deploy-server/`. Checks in the documented order: fields (400), a hold named (404, 409,
    /// 400), tier and region (400), profile (403), balance (402), references (404), then, inside the
    /// transaction, the name (409), the committed balance (402; first when the deploy takes over a hold,
    /// an image or volumes), the address (503) and stock (503).
    pub async fn deploy(
        &self,
        caller: &Caller,
        request: DeployRequest,
    ) -> Result<DeployedInstance> {
        let fields = self.check_fields(caller, &request, Purpose::Deploy)?;
        let plan = self.plan(caller, &request, fields).await?;
        // The response is stored with the instance, so a retried deploy replays it instead of deploying again.
        let deployed = self.execute_and_commit(caller, plan).await?;
        self.context.work.notify_one();
        Ok(deployed)
    }

    /// `POST /api/deploy-server/preflight/`: the deploy's checks, in its order and with its errors, and
    /// its price, without creating anything; with `hold: true`, then a hold on its GPUs and address.
    pub async fn preflight(&self, caller: &Caller, request: DeployRequest) -> Result<Preflight> {
        let fields = self.check_fields(caller, &request, Purpose::Preflight)?;
        let plan = self.plan(caller, &request, fields).await?;
        let held = plan.hold.is_some();
        // Exact, where the answer's price is rounded for display.
        let first_hour = plan.first_hour;
        let new_volumes: Vec<String> = plan.new_volumes.iter().map(|v| v.id.clone()).collect();
        let (tx, deployed) = self.execute(caller, plan).await?;
        // Rolled back: the deploy's own writes were its last checks.
        drop(tx);
        let mut breakdown = deployed.billing.breakdown;
        for volume in &mut breakdown.storage.data_volumes {
            if new_volumes.contains(&volume.volume_id) {
                volume.volume_id.clear(); // not created: no id
            }
        }
        let checks = [
            "fields",
            "hold",
            "tier_and_region",
            "profile",
            "balance",
            "references",
            "placement",
        ]
        .into_iter()
        .filter(|check| held || *check != "hold")
        .map(String::from)
        .collect();
        let preflight = Preflight {
            checks,
            price_per_hour: deployed.billing.total_hourly_rate,
            currency: deployed.billing.currency,
            breakdown,
            hold: None,
        };
        if request.hold {
            return self.hold(caller, &request, preflight, first_hour).await;
        }
        Ok(preflight)
    }
}
