//! The catalogue's tables of the configuration: regions, GPU models, capacity, volume types and limits,
//! snapshot pricing and OS images (the cross-references between them are checked by `Config`).

use std::collections::BTreeMap;

use barrack_api::Tier;
use serde::{Deserialize, Serialize};

use super::config::PriceTable;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub name: String,
    pub tier: Tier,
    pub description: String,
    pub location: String,
    /// IPv4 block (CIDR) public addresses come from.
    pub public_ip_pool: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuModelConfig {
    pub name: String,
    pub tier: Tier,
    pub memory_gb: u32,
    pub max_count: u32,
    pub vcpus_per_gpu: u32,
    pub ram_gb_per_gpu: u32,
    pub prices: PriceTable,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityConfig {
    pub region: String,
    pub gpus: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeTypeConfig {
    pub name: String,
    pub tier: Tier,
    pub description: String,
    pub prices: PriceTable,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeLimits {
    pub minimum_size_gb: u32,
    pub minimum_bootable_size_gb: u32,
    pub maximum_size_gb: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPricingConfig {
    pub tier: Tier,
    pub fixed_size_gb: u32,
    pub prices: PriceTable,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsImageConfig {
    pub name: String,
    pub regions: Vec<String>,
    pub description: String,
}
