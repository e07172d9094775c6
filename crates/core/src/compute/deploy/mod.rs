//! `POST /api/deploy-server/` in three steps, so that checking and writing never interleave:
//! [`fields`] checks the request on its own, [`plan`] resolves and checks everything it names into a
//! [`plan::DeployPlan`], and [`execute`] writes that plan in one transaction.

mod execute;
mod fields;
mod plan;

use barrack_api::instances::{DeployRequest, DeployedInstance};

use crate::Result;
use crate::accounts::Caller;
use crate::compute::instances::InstanceService;

impl InstanceService {
    /// `POST /api/deploy-server/`. Checks in the documented order: fields (400), tier and region (400),
    /// profile (403), balance (402), references (404), then stock (503) inside the transaction.
    pub async fn deploy(
        &self,
        caller: &Caller,
        request: DeployRequest,
    ) -> Result<DeployedInstance> {
        let fields = self.check_fields(caller, &request)?;
        let plan = self.plan(caller, &request, fields).await?;
        self.execute(caller, plan).await
    }
}
