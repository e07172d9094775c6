//! Controls of the simulated data centre (operators, simulation mode): reset and scenarios.

use barrack_api::Envelope;
use barrack_api::simulation::{Scenario, ScenarioList, ScenarioSpec, StateReset};
use reqwest::Method;

use crate::{Client, Result};

impl Client {
    /// Back to the state of a first start; the operators' accounts and keys stay.
    pub async fn admin_reset(&self) -> Result<Envelope<StateReset>> {
        self.post("/api/admin/reset/", &serde_json::json!({})).await
    }

    pub async fn admin_scenarios(&self) -> Result<Envelope<ScenarioList>> {
        self.get("/api/admin/scenarios/").await
    }

    pub async fn admin_add_scenario(&self, spec: &ScenarioSpec) -> Result<Envelope<Scenario>> {
        self.post("/api/admin/scenarios/", spec).await
    }

    /// [`Client::admin_add_scenario`] with the body as JSON, as the CLI's `--json` takes it.
    pub async fn admin_add_scenario_json(
        &self,
        spec: &serde_json::Value,
    ) -> Result<Envelope<Scenario>> {
        self.post("/api/admin/scenarios/", spec).await
    }

    pub async fn admin_remove_scenario(&self, id: &str) -> Result<Envelope<Scenario>> {
        self.request::<_, ()>(Method::DELETE, &format!("/api/admin/scenarios/{id}/"), None)
            .await
    }
}
