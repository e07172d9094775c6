//! The catalog: regions, GPU models and stock, OS images, pricing (`spec/API.md` §2, §4.1).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{Currency, Tier};

/// An exact amount written as a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[schema(value_type = f64)]
pub struct Amount(#[serde(with = "crate::decimal")] pub Decimal);

/// Price of one unit in every currency.
pub type Prices = BTreeMap<Currency, Amount>;

/// How [`Prices`] is published: its own schema, so that no two maps share the name of the Rust type.
pub struct PricesSchema;

impl utoipa::PartialSchema for PricesSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder};
        ObjectBuilder::new()
            .description(Some("Price in each currency: currency code → amount."))
            .property_names(Some(Currency::schema()))
            .additional_properties(Some(AdditionalProperties::RefOr(Amount::schema())))
            .into()
    }
}

impl ToSchema for PricesSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Prices".into()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Region {
    pub name: String,
    pub tier: Tier,
    pub description: String,
    pub location: String,
    pub gpu_models: Vec<String>,
    pub volume_types: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegionList {
    pub regions: Vec<Region>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CatalogQuery {
    /// Only this tier.
    #[param(value_type = Option<String>)]
    pub tier: Option<Tier>,
    /// Only this region.
    pub region: Option<String>,
    /// Only this GPU model.
    pub gpu_model: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GpuSpec {
    pub model: String,
    pub tier: Tier,
    pub memory_gb: u32,
    pub vcpus_per_gpu: u32,
    pub ram_gb_per_gpu: u32,
    pub max_count: u32,
    /// GPU counts an instance may have.
    pub counts: Vec<u32>,
    /// Per GPU per hour.
    #[schema(value_type = PricesSchema)]
    pub prices: Prices,
    pub regions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GpuSpecList {
    pub gpu_specs: Vec<GpuSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GpuStockConfiguration {
    pub gpu_count: u32,
    /// An instance of this size can be deployed now.
    pub available: bool,
    /// How many instances of this size fit in the free units.
    pub max_instances: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GpuStockItem {
    pub region: String,
    pub tier: Tier,
    pub gpu_model: String,
    pub total: u32,
    pub available: u32,
    pub configurations: Vec<GpuStockConfiguration>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GpuStockList {
    pub stocks: Vec<GpuStockItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OsImage {
    pub name: String,
    pub region: String,
    pub tier: Tier,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OsImageList {
    pub images: Vec<OsImage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", rename_all = "lowercase")]
pub enum ResourceType {
    Gpus,
    Volumes,
    Snapshots,
}

/// Body of `POST /api/pricing/`, and the query of `GET /api/pricing/`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PricingRequest {
    /// Only this tier's entries.
    #[param(value_type = Option<String>)]
    pub tier: Option<Tier>,
    /// Only this currency's prices; also the quote's currency.
    #[param(value_type = Option<String>)]
    pub currency: Option<Currency>,
    /// What to quote when the matching fields are given.
    #[param(value_type = Option<String>)]
    pub resource_type: Option<ResourceType>,
    pub volume_size_gb: Option<u32>,
    #[serde(default, deserialize_with = "crate::rules::blank_as_none")]
    pub volume_type: Option<String>,
    #[serde(default, deserialize_with = "crate::rules::blank_as_none")]
    pub gpu_model: Option<String>,
    pub gpu_count: Option<u32>,
    /// Optional sections to add, separated by commas: `ai` adds `pricing_data.ai` (AI model prices per
    /// million tokens). Without it the answer holds only the documented sections.
    #[serde(default, deserialize_with = "crate::rules::blank_as_none")]
    pub include: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PriceEntry {
    #[schema(value_type = PricesSchema)]
    pub prices: Prices,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u32>,
    pub unit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VolumePricing {
    /// Tier → volume type → prices.
    pub pricing: BTreeMap<Tier, BTreeMap<String, PriceEntry>>,
    /// The smallest volume that can boot (an OS disk, a bootable volume); data volumes start lower
    /// (`GET /api/volumes/types/`).
    pub minimum_size_gb: u32,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotPrice {
    #[schema(value_type = PricesSchema)]
    pub prices: Prices,
    pub fixed_size_gb: u32,
    pub unit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotPricing {
    /// Tier → prices.
    pub pricing: BTreeMap<Tier, SnapshotPrice>,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GpuPricing {
    /// Tier → model → prices.
    pub pricing: BTreeMap<Tier, BTreeMap<String, PriceEntry>>,
    pub description: String,
}

/// Prices of one AI model, per million tokens.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AiPriceEntry {
    #[schema(value_type = PricesSchema)]
    pub input: Prices,
    #[schema(value_type = PricesSchema)]
    pub output: Prices,
    pub context_length: u32,
    pub unit: String,
}

/// AI model prices: only with `include=ai`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AiPricing {
    /// Model → prices.
    pub pricing: BTreeMap<String, AiPriceEntry>,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PricingMetadata {
    pub supported_currencies: Vec<Currency>,
    pub supported_tiers: Vec<Tier>,
    /// As `volumes.minimum_size_gb`.
    pub volume_minimum_size_gb: u32,
    /// The calling key's name, when the request carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_type: Option<String>,
    /// Unix seconds.
    pub timestamp: i64,
}

/// A computed price for one configuration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Quote {
    pub resource_type: ResourceType,
    pub tier: Tier,
    pub currency: Currency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u32>,
    pub hourly_rate: Amount,
    pub per_minute_rate: Amount,
    pub daily_cost: Amount,
    /// 730 hours.
    pub monthly_cost: Amount,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PricingData {
    pub volumes: VolumePricing,
    pub snapshots: SnapshotPricing,
    pub gpus: GpuPricing,
    /// Only when the request's `include` names `ai`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai: Option<AiPricing>,
    pub metadata: PricingMetadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<Quote>,
}

/// The pricing response: flat, with `pricing_data` in place of `data`, as documented.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PricingResponse {
    pub success: bool,
    pub message: String,
    pub pricing_data: PricingData,
    pub request_id: String,
}

/// GPU capacity of one region and model, for operators.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CapacityItem {
    pub region: String,
    pub gpu_model: String,
    pub total: u32,
    pub allocated: u32,
    pub available: u32,
    /// GPUs on hosts the compute driver reports lost: out of `available` until their host is back.
    #[serde(default)]
    pub lost: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CapacityList {
    pub capacity: Vec<CapacityItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacitySetting {
    pub region: String,
    pub gpu_model: String,
    pub total: u32,
}

/// `PUT /api/admin/capacity/`: sets the totals named; others are unchanged.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCapacityRequest {
    pub capacity: Vec<CapacitySetting>,
}

crate::string_enum!(ResourceType);
