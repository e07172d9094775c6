//! Controls of the simulated data centre [OURS]: resetting the state and scenarios (operators, simulation
//! mode only).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A scenario to apply: `{"kind": "gpu_scarcity", "region": ..., "gpu_model"?: ..., "available": N}`,
/// `{"kind": "region_outage", "region": ...}` or `{"kind": "slow_host", "host": ..., "factor": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScenarioSpec {
    /// Only `available` more GPUs of the model (of each model, without `gpu_model`) in the region, until
    /// removed: stock shows them, deploys beyond them answer 503 `GPU_UNAVAILABLE`.
    GpuScarcity {
        region: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gpu_model: Option<String>,
        available: u32,
    },
    /// The region is down: no stock (deploys and restores answer 503 `GPU_UNAVAILABLE`), and actions on
    /// its instances and volumes answer 503 `REGION_UNAVAILABLE`.
    RegionOutage { region: String },
    /// The host's machines take `factor` times the simulator's delays (boots, stops, snapshots...).
    SlowHost { host: String, factor: f64 },
}

/// A scenario in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Scenario {
    pub id: String,
    #[serde(flatten)]
    pub spec: ScenarioSpec,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScenarioList {
    pub scenarios: Vec<Scenario>,
}

/// Answer of `POST /api/admin/reset/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StateReset {
    /// Operator accounts kept, with their API keys.
    pub operators_kept: u64,
    /// Resets of this installation so far.
    pub resets: i64,
}
