//! Instances: deploy, details, lifecycle actions, events (`spec/API.md` §3, §4).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::catalog::Amount;
use crate::rules::{blank_as_none, null_as_default, null_as_true};
use crate::{Currency, Pagination, Tier};

/// A security rule as sent at deploy or added to an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityRuleRequest {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `tcp`, `udp`, `icmp`, another IP protocol name or number; absent means any protocol.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub protocol: Option<String>,
    /// `IPv4` (default) or `IPv6`.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub ethertype: Option<String>,
    #[serde(default)]
    pub port_range_min: Option<u32>,
    #[serde(default)]
    pub port_range_max: Option<u32>,
    /// CIDR such as `203.0.113.0/24`; absent means anywhere.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub remote_ip_prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecurityRule {
    pub id: String,
    pub direction: String,
    pub protocol: Option<String>,
    pub ethertype: String,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    pub remote_ip_prefix: Option<String>,
    /// `instance` for the instance's own rules, or the id of the firewall it comes from.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OsVolumeRequest {
    pub size: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVolumeRequest {
    pub name: String,
    pub size: u32,
    pub volume_type: String,
}

/// `POST /api/deploy-server/`, every documented field.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    pub gpu_model: String,
    pub gpu_count: u32,
    pub region: String,
    pub instance_name: String,
    /// OS image or custom image name (image boot).
    #[serde(
        default,
        deserialize_with = "blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_name: Option<String>,
    /// Bootable volume id: the boot disk when `boot_from_volume` is true, and not used otherwise.
    #[serde(
        default,
        deserialize_with = "blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub volume_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub boot_from_volume: bool,
    /// Name or id of one of the caller's SSH keys (image boot).
    #[serde(
        default,
        deserialize_with = "blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub ssh_key: Option<String>,
    #[serde(default = "yes", deserialize_with = "null_as_true")]
    pub public_ip: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub security_rules: Vec<SecurityRuleRequest>,
    /// At most 16384 bytes (413 beyond).
    #[serde(
        default,
        deserialize_with = "blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_init: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_volume: Option<OsVolumeRequest>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub existing_volumes: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub volumes: Vec<NewVolumeRequest>,
    #[serde(
        default,
        deserialize_with = "blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub script_id: Option<String>,
    /// Labels of the new instance (see `PATCH /api/instances/{id}/labels/`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub labels: crate::labels::Labels,
    /// A lease: delete or hibernate the instance this many minutes after deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_minutes: Option<i64>,
    /// A lease ending at this time (RFC 3339); not with `ttl_minutes`.
    #[serde(
        default,
        deserialize_with = "blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<String>,
    /// What the lease does when it ends: `delete` (default) or `hibernate`.
    #[serde(
        default,
        deserialize_with = "blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub on_expiry: Option<String>,
    /// Ours: a hold that `POST /api/deploy-server/preflight/` returned; the deploy takes its GPUs and
    /// address, so it cannot fail for stock. Its region, GPU model and count must be the request's.
    #[serde(
        default,
        deserialize_with = "blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub hold_id: Option<String>,
    /// Ours, preflight only: once every check passed, reserve the GPUs and the public address for
    /// 60 seconds under a `hold_id`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub hold: bool,
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `POST /api/deploy-server/preflight/` (ours): every check a deploy of the same body makes passed, in
/// this order, and what the deploy would cost; nothing was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Preflight {
    /// `fields`, `hold` (when the body names a `hold_id`), `tier_and_region`, `profile`, `balance`,
    /// `references`, `placement` (the deploy's transaction, rolled back).
    pub checks: Vec<String>,
    /// The first hour of what the deploy creates (GPUs, OS disk, new volumes), in `currency`: exact.
    pub price_per_hour: Amount,
    pub currency: Currency,
    pub breakdown: BillingBreakdown,
    /// With `hold: true`: the GPUs and the address now reserved for the account's deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<DeployHold>,
}

/// GPUs and a public address reserved for one account's deploy until `expires_at` (ours).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployHold {
    pub hold_id: String,
    /// `held`, `consumed` (by `instance_id`), `released` or `expired`.
    pub status: String,
    pub region: String,
    pub gpu_model: String,
    pub gpu_count: u32,
    /// The public address reserved, when the body asked for one.
    pub ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GpuCharge {
    pub model: String,
    pub count: u32,
    pub hourly_rate: Amount,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComputeCharge {
    pub gpu: GpuCharge,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VolumeCharge {
    pub size_gb: u32,
    #[serde(rename = "type")]
    pub volume_type: String,
    pub hourly_rate: Amount,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DataVolumeCharge {
    pub volume_id: String,
    pub name: String,
    pub size_gb: u32,
    #[serde(rename = "type")]
    pub volume_type: String,
    pub hourly_rate: Amount,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StorageCharge {
    pub os_volume: VolumeCharge,
    pub data_volumes: Vec<DataVolumeCharge>,
    pub data_volumes_total: Amount,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BillingBreakdown {
    pub compute: ComputeCharge,
    pub storage: StorageCharge,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceBilling {
    pub breakdown: BillingBreakdown,
    pub total_hourly_rate: Amount,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Specs {
    pub gpu_type: String,
    pub gpu_count: u32,
    pub ram_gb: u32,
    pub vcpus: u32,
    pub storage_gb: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Features {
    pub startup_script_configured: bool,
}

/// The 201 body's `data` of a deploy, exactly as documented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeployedInstance {
    pub instance_id: String,
    pub vm_name: String,
    pub region: String,
    pub ip_address: Option<String>,
    /// `pending` until an address is assigned, then `assigned`.
    pub ip_status: String,
    pub billing: InstanceBilling,
    pub specs: Specs,
    pub status: String,
    /// `image`, `volume` or `snapshot`.
    pub boot_source: String,
    pub operating_system: Option<String>,
    pub features: Features,
    pub created_at: String,
}

/// An instance as listed and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Instance {
    pub instance_id: String,
    pub name: String,
    pub vm_name: String,
    pub region: String,
    pub tier: Tier,
    pub status: String,
    /// Why the instance is in ERROR, or why it was last changed by the system.
    pub status_reason: Option<String>,
    pub ip_address: Option<String>,
    /// Where SSH is forwarded to a host port (user-mode networking on a single machine): `ssh -p
    /// ssh_port ubuntu@ip_address`. Absent when SSH is on port 22 of `ip_address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_port: Option<u16>,
    pub ip_status: String,
    pub public_ip: bool,
    pub boot_source: String,
    pub operating_system: Option<String>,
    pub ssh_key_id: Option<String>,
    pub script_id: Option<String>,
    pub specs: Specs,
    pub billing: InstanceBilling,
    pub features: Features,
    pub security_rules: Vec<SecurityRule>,
    /// Actions the instance accepts in its current state.
    pub allowed_actions: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub labels: crate::labels::Labels,
    /// When the instance deletes or hibernates itself; null without a lease.
    #[serde(default)]
    pub lease: Option<crate::labels::Lease>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceList {
    pub instances: Vec<Instance>,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InstanceQuery {
    pub page: Option<u32>,
    pub limit: Option<u32>,
    /// Only instances in this state (e.g. `ACTIVE`).
    pub status: Option<String>,
    pub region: Option<String>,
    pub gpu_model: Option<String>,
    /// Substring of the name, case-insensitive.
    pub name: Option<String>,
}

/// `GET /api/instances/{id}/?wait_for=ACTIVE&timeout=60`: answer once the instance reaches a state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InstanceWaitQuery {
    /// Answer as soon as the instance is in this state (`ACTIVE`, `SHUTOFF`, `HIBERNATED`, ...), or comes
    /// to rest in another one (ERROR, or a stable state after a transition seen while waiting).
    #[param(
        pattern = "^(CREATING|ACTIVE|STARTING|STOPPING|SHUTOFF|REBOOTING|HIBERNATING|HIBERNATED|RESTORING|DELETING|DELETED|ERROR)$"
    )]
    pub wait_for: Option<String>,
    /// Longest wait in seconds, 1 to 300 (default 60); at the timeout the answer shows the current state.
    /// Only with `wait_for` (a 400 on `timeout` otherwise).
    #[param(minimum = 1, maximum = 300)]
    pub timeout: Option<u32>,
}

/// Answer of a lifecycle action: the instance in its transitional state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceAction {
    pub instance_id: String,
    pub action: String,
    pub status: String,
    /// The state the instance will rest in once the operation finishes.
    pub target_status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: String,
    pub resource_type: String,
    pub resource_id: String,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    /// `user:<account id>`, `operator:<account id>` or `system`.
    pub actor: String,
    pub cause: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    pub events: Vec<Event>,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HibernatedSummary {
    pub count: u64,
    /// What the hibernated instances cost per hour together.
    pub hourly_cost: Amount,
    pub currency: Currency,
    /// The most recently hibernated, newest first.
    pub recent: Vec<Instance>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TogglePublicIp {
    pub instance_id: String,
    pub public_ip: bool,
    pub ip_address: Option<String>,
    pub ip_status: String,
}

/// `remove-security-rule` answers flat, as documented.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RemoveSecurityRuleResponse {
    pub success: bool,
    pub message: String,
    pub instance_id: String,
    pub rule_id: String,
    pub tier: Option<Tier>,
    pub request_id: String,
}

/// A durable operation, for operators.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub resource_id: String,
    /// `pending`, `running`, `done` or `failed` (dead-lettered).
    pub status: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_error: Option<String>,
    pub run_after: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<Job>,
    pub pagination: Pagination,
}

/// `GET /api/admin/jobs/?status=failed&page=1&limit=20`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    pub page: Option<u32>,
    pub limit: Option<u32>,
    /// Only jobs in this state: `pending`, `running` or `failed` (dead-lettered). Finished jobs are not
    /// listed.
    #[param(pattern = "^(pending|running|failed)$")]
    pub status: Option<String>,
}

/// A machine of the data centre, for operators (`GET /api/admin/hosts/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Host {
    pub name: String,
    pub region: String,
    /// The GPU model the host offers, when it offers one model.
    pub gpu_model: Option<String>,
    pub gpus: u32,
    pub gpus_used: u32,
    pub gpus_free: u32,
    /// Gone (a lost simulated host) or unreachable: its instances go to ERROR.
    pub lost: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HostList {
    pub hosts: Vec<Host>,
}

/// Utilisation of a running instance over the driver's last sampling interval
/// (`GET /api/instances/{id}/metrics/`). Rates are per second; a figure the driver does not measure is
/// null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceMetrics {
    pub instance_id: String,
    pub sampled_at: String,
    /// Of all the instance's vCPUs together: 100 means every vCPU busy.
    pub cpu_percent: f64,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: Option<u64>,
    pub network_rx_bytes_per_sec: Option<f64>,
    pub network_tx_bytes_per_sec: Option<f64>,
    pub disk_read_bytes_per_sec: Option<f64>,
    pub disk_write_bytes_per_sec: Option<f64>,
    pub gpu_percent: Option<f64>,
}

/// Answer of `POST /api/admin/faults/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FaultInjected {
    pub fault: serde_json::Value,
}
