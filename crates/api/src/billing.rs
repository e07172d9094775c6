//! Billing records (flat, as documented) and the aggregate view.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::catalog::Amount;
use crate::{Currency, Tier};

/// `?page&limit&from&to` of the billing lists.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BillingQuery {
    pub page: Option<u32>,
    pub limit: Option<u32>,
    /// ISO-8601 UTC: only spans running at or after this time.
    pub from: Option<String>,
    /// ISO-8601 UTC: only spans that started before this time.
    pub to: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceBillingRecord {
    pub billing_id: String,
    pub instance_id: String,
    pub vm_name: String,
    pub gpu_type: String,
    pub gpu_count: u32,
    pub tier: Tier,
    pub start_time: String,
    pub end_time: Option<String>,
    pub total_duration_minutes: u64,
    pub per_minute_rate: Amount,
    pub total_cost: Amount,
    pub currency: Currency,
    /// `active`, `completed` or `hibernated`.
    pub status: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct BillingSummary {
    pub totalMinutes: u64,
    pub activeCount: u64,
    pub completedCount: u64,
    pub hibernatedCount: u64,
    pub averageUsage: Amount,
    pub totalCost: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totalSizeGB: Option<u64>,
}

/// `GET /api/instances/billing/`: flat, as documented.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceBillingResponse {
    pub success: bool,
    pub records: Vec<InstanceBillingRecord>,
    pub summary: BillingSummary,
    pub total: u64,
    pub page: u32,
    pub limit: u32,
    pub total_pages: u32,
    pub currency: Currency,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VolumeBillingRecord {
    pub billing_id: String,
    pub volume_id: String,
    pub volume_name: String,
    pub size_gb: u32,
    pub volume_type: String,
    pub start_time: String,
    pub end_time: Option<String>,
    pub total_duration_minutes: u64,
    pub per_minute_rate: Amount,
    pub total_cost: Amount,
    pub currency: Currency,
    pub status: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VolumeBillingResponse {
    pub success: bool,
    pub records: Vec<VolumeBillingRecord>,
    pub summary: BillingSummary,
    pub total: u64,
    pub page: u32,
    pub limit: u32,
    pub total_pages: u32,
    pub currency: Currency,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotBillingRecord {
    pub billing_id: String,
    pub snapshot_id: String,
    pub snapshot_name: String,
    pub size_gb: u32,
    pub start_time: String,
    pub end_time: Option<String>,
    pub total_duration_minutes: u64,
    pub per_minute_rate: Amount,
    pub total_cost: Amount,
    pub currency: Currency,
    pub status: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotBillingResponse {
    pub success: bool,
    pub records: Vec<SnapshotBillingRecord>,
    pub summary: BillingSummary,
    pub total: u64,
    pub page: u32,
    pub limit: u32,
    pub total_pages: u32,
    pub currency: Currency,
}

/// Cost of one kind of resource in a time range.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CostLine {
    pub minutes: u64,
    pub cost: Amount,
    pub records: u64,
}

/// `GET /api/billing/`: every resource's cost in a time range.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AggregatedBilling {
    pub from: Option<String>,
    pub to: String,
    pub currency: Currency,
    pub instances: CostLine,
    pub volumes: CostLine,
    pub snapshots: CostLine,
    pub total_cost: Amount,
}

/// `POST /api/admin/clock/advance/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceClock {
    /// Minutes to move the simulated clock forward (1 to 525600).
    pub minutes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClockAdvanced {
    pub now: String,
    /// Billing periods charged by the meter runs that followed, summed over them (a long move goes in
    /// steps that end where an account's credit runs out, each followed by a run).
    pub periods_billed: u64,
}
