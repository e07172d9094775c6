//! The catalog: regions, GPU models, stock, OS images and prices, from the operator's configuration and
//! (for stock) the capacity ledger in the database.
//! Uses `platform` and `accounts`.

use std::collections::BTreeMap;
use std::sync::Arc;

use barrack_api::catalog::{
    AiPriceEntry, AiPricing, Amount, CapacityItem, CapacitySetting, CatalogQuery, GpuPricing,
    GpuSpec, GpuStockConfiguration, GpuStockItem, OsImage, PriceEntry, Prices, PricingData,
    PricingMetadata, PricingRequest, Quote, Region, ResourceType, SnapshotPrice, SnapshotPricing,
    VolumePricing,
};
use barrack_api::{Currency, Tier};
use rust_decimal::Decimal;

use crate::accounts::Caller;
use crate::platform::config::{Config, GpuModelConfig, PriceTable};
use crate::platform::money::{display_amount, display_rate, per_minute_rate};
use crate::platform::validate::Validator;
use crate::{Context, Error, Result};

/// Keeps the GPUs of lost hosts out of stock (`lost` in the capacity ledger) as the compute driver
/// reports them: a deploy is refused 503 rather than accepted for GPUs no live host has. Real hosts
/// come back and give theirs back; a simulated host stays lost until a reset, so for the simulator
/// only a rise is recorded (a replica the loss was not injected into does not undo it). Called by the
/// reconciler's sweep and when a loss is injected; reads first, so an unchanged count writes nothing.
pub async fn follow_lost_hosts(context: &Context) -> Result<()> {
    let lost = match context.driver.lost_gpus().await {
        Ok(lost) => lost,
        Err(e) => {
            tracing::warn!(error = %e, "could not learn which hosts are lost");
            return Ok(());
        }
    };
    let only_more = context.driver.is_simulated();
    let recorded = context.store.capacity().await?;
    for gpus in lost {
        let before = recorded
            .iter()
            .find(|row| row.region == gpus.region && row.gpu_model == gpus.gpu_model)
            .map(|row| row.lost);
        let now = i64::from(gpus.gpus);
        let differs = match before {
            Some(before) if only_more => now > before,
            Some(before) => now != before,
            None => false, // no stock of it to keep out
        };
        if differs
            && context
                .store
                .set_lost_gpus(
                    &gpus.region,
                    &gpus.gpu_model,
                    now,
                    only_more,
                    context.clock.now_ms(),
                )
                .await?
        {
            tracing::warn!(
                region = %gpus.region,
                gpu_model = %gpus.gpu_model,
                lost = now,
                "GPUs on lost hosts kept out of stock"
            );
        }
    }
    Ok(())
}

/// GPU counts an instance can have (at most the model's `max_count`).
pub const GPU_COUNTS: [u32; 4] = barrack_api::rules::GPU_COUNTS;
/// Most GPUs an operator can set as one region's capacity of a model.
pub const MAX_CAPACITY_UNITS: u32 = 1_000_000;
/// GB in a TB, for storage billed per TB-hour.
pub const GB_PER_TB: u32 = 1024;
const HOURS_PER_MONTH: u32 = 730;

/// Tells the compute driver the capacity ledger (see `ComputeDriver::recognize_capacity`): the simulator
/// of this replica then has the hosts operators set, wherever they set them, and what every server
/// shares of the simulation (resets, slow and lost hosts; see `ComputeDriver::recognize_simulation`). Called
/// before placing or acting on instances, and before listing hosts.
pub async fn recognize_capacity(context: &Context) -> Result<()> {
    let view = context.store.driver_view(SLOW_HOST).await?;
    for row in &view.capacity {
        if context.config.offers(&row.region, &row.gpu_model) {
            let total = u32::try_from(row.total).unwrap_or(u32::MAX);
            context
                .driver
                .recognize_capacity(&row.region, &row.gpu_model, total);
        }
    }
    // After the capacity, so that a lost host the capacity adds here is known to be lost.
    if context.driver.is_simulated() {
        context.resets_seen.observe(view.resets);
        let slow: Vec<(String, f64)> = view
            .specs
            .iter()
            .filter_map(|spec| match serde_json::from_str(spec) {
                Ok(barrack_api::simulation::ScenarioSpec::SlowHost { host, factor }) => {
                    Some((host, factor))
                }
                _ => None,
            })
            .collect();
        context
            .driver
            .recognize_simulation(view.resets, &slow, &view.lost_hosts);
    }
    Ok(())
}

/// The scenario kinds the catalogue and the driver follow (see `compute::simulation`).
pub const SLOW_HOST: &str = "slow_host";
pub const REGION_OUTAGE: &str = "region_outage";

/// 503 `REGION_UNAVAILABLE` while a simulated outage covers the region.
pub async fn check_region_up(context: &Context, region: &str) -> Result<()> {
    if context.driver.is_simulated() && context.store.scenario_covers(REGION_OUTAGE, region).await?
    {
        return Err(Error::RegionUnavailable(format!(
            "Region {region} is unavailable (an outage); try again later or use another region"
        )));
    }
    Ok(())
}

#[derive(Clone)]
pub struct CatalogService {
    context: Arc<Context>,
}

impl CatalogService {
    pub fn new(context: Arc<Context>) -> CatalogService {
        CatalogService { context }
    }

    /// Writes the configured capacity into the database where it is not there yet, never more than a
    /// driver with fixed hosts has (as `set_capacity` refuses more).
    pub async fn seed_capacity(&self) -> Result<()> {
        let driver = &self.context.driver;
        let rows: Vec<(String, String, i64)> = self
            .context
            .config
            .capacity
            .iter()
            .flat_map(|c| {
                c.gpus.iter().map(|(model, n)| {
                    let most = driver.capacity_limit(&c.region, model).unwrap_or(u32::MAX);
                    (c.region.clone(), model.clone(), i64::from((*n).min(most)))
                })
            })
            .collect();
        self.context
            .store
            .seed_capacity(&rows, self.context.clock.now_ms())
            .await?;
        Ok(())
    }

    /// Checks `?tier`, `?region`, `?gpu_model` filters against the catalog.
    fn check_filters(&self, query: &CatalogQuery) -> Result<()> {
        crate::platform::validate::catalog_filters(
            &self.context.config,
            query.region.as_deref(),
            query.gpu_model.as_deref(),
        )
    }

    /// Stock without the GPUs of hosts lost just now, before the reconciler's next sweep would see them.
    pub async fn follow_lost_hosts(&self) -> Result<()> {
        follow_lost_hosts(&self.context).await
    }

    /// Operators: every capacity row with what is allocated from it.
    pub async fn capacity(&self) -> Result<Vec<CapacityItem>> {
        Ok(self
            .context
            .store
            .capacity()
            .await?
            .into_iter()
            .map(|row| CapacityItem {
                available: row.free() as u32,
                total: row.total as u32,
                allocated: row.allocated as u32,
                lost: row.lost as u32,
                region: row.region,
                gpu_model: row.gpu_model,
            })
            .collect())
    }

    /// Operators: sets the total units of regions and models (allocations are kept; lowering a total below
    /// what is allocated only stops new allocations).
    pub async fn set_capacity(&self, settings: &[CapacitySetting]) -> Result<Vec<CapacityItem>> {
        let config = &self.context.config;
        let mut v = Validator::new();
        // A row per region and model: a second one would silently win over the first.
        let mut seen = std::collections::HashMap::new();
        for (i, s) in settings.iter().enumerate() {
            if let Some(&first) = seen.get(&(s.region.as_str(), s.gpu_model.as_str())) {
                v.add(
                    &format!("capacity[{i}]"),
                    format!(
                        "{}/{} is set twice (also capacity[{first}]); give each region and model once",
                        s.region, s.gpu_model
                    ),
                );
            } else {
                seen.insert((s.region.as_str(), s.gpu_model.as_str()), i);
            }
            let region = config.region(&s.region);
            let model = config.gpu_model(&s.gpu_model);
            v.check(
                region.is_some(),
                &format!("capacity[{i}].region"),
                format!("Unknown region '{}'", s.region),
            );
            v.check(
                model.is_some(),
                &format!("capacity[{i}].gpu_model"),
                format!("Unknown GPU model '{}'", s.gpu_model),
            );
            if let (Some(region), Some(model)) = (region, model) {
                let field = format!("capacity[{i}].gpu_model");
                if region.tier != model.tier {
                    v.add(
                        &field,
                        format!(
                            "{} ({} tier) cannot hold {} ({} tier)",
                            region.name, region.tier, model.name, model.tier
                        ),
                    );
                } else if !config.offers(&region.name, &model.name) {
                    // Deploys there are refused, so stock there would be a promise nobody can keep.
                    v.add(
                        &field,
                        format!(
                            "{} does not offer {}; it offers {} (regions offer the models of their \
                             [[capacity]] table in the configuration)",
                            region.name,
                            model.name,
                            config.offered_models(&region.name).join(", ")
                        ),
                    );
                } else if let Some(limit) = self
                    .context
                    .driver
                    .capacity_limit(&region.name, &model.name)
                {
                    v.check(
                        s.total <= limit,
                        &format!("capacity[{i}].total"),
                        format!(
                            "The hosts of {} have {limit} {} GPUs (hosts are fixed by the {} \
                             driver's configuration); capacity must be at most {limit}",
                            region.name,
                            model.name,
                            self.context.driver.name()
                        ),
                    );
                }
            }
            v.check(
                s.total <= MAX_CAPACITY_UNITS,
                &format!("capacity[{i}].total"),
                format!("Total must be at most {MAX_CAPACITY_UNITS}"),
            );
        }
        v.finish()?;
        let now = self.context.clock.now_ms();
        for s in settings {
            self.context
                .store
                .set_capacity(&s.region, &s.gpu_model, i64::from(s.total), now)
                .await?;
        }
        recognize_capacity(&self.context).await?;
        self.capacity().await
    }

    pub fn regions(&self, query: &CatalogQuery) -> Result<Vec<Region>> {
        self.check_filters(query)?;
        let config = &self.context.config;
        Ok(config
            .regions
            .iter()
            .filter(|r| query.tier.is_none_or(|t| t == r.tier))
            .filter(|r| query.region.as_ref().is_none_or(|name| *name == r.name))
            // `gpu_model`: the regions that offer it.
            .filter(|r| {
                query
                    .gpu_model
                    .as_ref()
                    .is_none_or(|model| config.offers(&r.name, model))
            })
            .map(|r| Region {
                name: r.name.clone(),
                tier: r.tier,
                description: r.description.clone(),
                location: r.location.clone(),
                gpu_models: config
                    .capacity
                    .iter()
                    .filter(|c| c.region == r.name)
                    .flat_map(|c| c.gpus.keys().cloned())
                    .collect(),
                volume_types: config
                    .volume_types
                    .iter()
                    .filter(|v| v.tier == r.tier)
                    .map(|v| v.name.clone())
                    .collect(),
            })
            .collect())
    }

    pub fn gpu_specs(&self, query: &CatalogQuery) -> Result<Vec<GpuSpec>> {
        self.check_filters(query)?;
        let config = &self.context.config;
        Ok(config
            .gpu_models
            .iter()
            .filter(|m| query.tier.is_none_or(|t| t == m.tier))
            .filter(|m| query.gpu_model.as_ref().is_none_or(|name| *name == m.name))
            // `region`: the models it offers.
            .filter(|m| {
                query
                    .region
                    .as_ref()
                    .is_none_or(|region| config.offers(region, &m.name))
            })
            .map(|m| GpuSpec {
                model: m.name.clone(),
                tier: m.tier,
                memory_gb: m.memory_gb,
                vcpus_per_gpu: m.vcpus_per_gpu,
                ram_gb_per_gpu: m.ram_gb_per_gpu,
                max_count: m.max_count,
                counts: gpu_counts(m),
                prices: prices(&m.prices),
                regions: config
                    .capacity
                    .iter()
                    .filter(|c| c.gpus.contains_key(&m.name))
                    .map(|c| c.region.clone())
                    .collect(),
            })
            .collect())
    }

    /// Free units per region and model: capacity minus what live instances hold.
    pub async fn stocks(&self, query: &CatalogQuery) -> Result<Vec<GpuStockItem>> {
        self.check_filters(query)?;
        let config = &self.context.config;
        let capacity = self.context.store.capacity().await?;
        Ok(capacity
            .into_iter()
            .filter_map(|row| {
                let region = config.region(&row.region)?;
                let model = config.gpu_model(&row.gpu_model)?;
                // A row left for a model the region no longer offers cannot be deployed.
                if !config.offers(&row.region, &row.gpu_model) {
                    return None;
                }
                let wanted = query.tier.is_none_or(|t| t == region.tier)
                    && query.region.as_ref().is_none_or(|r| *r == row.region)
                    && query.gpu_model.as_ref().is_none_or(|m| *m == row.gpu_model);
                wanted.then(|| {
                    let free = row.free() as u32;
                    GpuStockItem {
                        tier: region.tier,
                        total: row.total as u32,
                        available: free,
                        configurations: gpu_counts(model)
                            .into_iter()
                            .map(|n| GpuStockConfiguration {
                                gpu_count: n,
                                available: free >= n,
                                max_instances: free / n,
                            })
                            .collect(),
                        region: row.region,
                        gpu_model: row.gpu_model,
                    }
                })
            })
            .collect())
    }

    pub fn os_images(&self, query: &CatalogQuery) -> Result<Vec<OsImage>> {
        self.check_filters(query)?;
        let config = &self.context.config;
        Ok(config
            .os_images
            .iter()
            .flat_map(|image| image.regions.iter().map(move |region| (image, region)))
            .filter(|(_, region)| query.region.as_ref().is_none_or(|r| r == *region))
            // `gpu_model`: the images of the regions that offer it.
            .filter(|(_, region)| {
                query
                    .gpu_model
                    .as_ref()
                    .is_none_or(|model| config.offers(region, model))
            })
            .filter_map(|(image, region)| {
                let tier = config.region(region)?.tier;
                query.tier.is_none_or(|t| t == tier).then(|| OsImage {
                    name: image.name.clone(),
                    region: region.clone(),
                    tier,
                    description: image.description.clone(),
                })
            })
            .collect())
    }

    /// `GET`/`POST /api/pricing/`: every section in the documented shape; `tier` and `currency` narrow the
    /// entries, and a quote is added when a configuration is fully given.
    pub fn pricing(
        &self,
        request: &PricingRequest,
        caller: Option<&Caller>,
        now_ms: i64,
    ) -> Result<PricingData> {
        let config = &self.context.config;
        let include_ai = included_sections(request.include.as_deref())?;
        let quote = self.quote(request, caller)?;
        let in_tier = |t: Tier| request.tier.is_none_or(|want| want == t);
        let narrow = |table: &PriceTable| -> Prices {
            prices(table)
                .into_iter()
                .filter(|(c, _)| request.currency.is_none_or(|want| want == *c))
                .collect()
        };

        let mut volumes: BTreeMap<Tier, BTreeMap<String, PriceEntry>> = BTreeMap::new();
        for vt in config.volume_types.iter().filter(|v| in_tier(v.tier)) {
            volumes.entry(vt.tier).or_default().insert(
                vt.name.clone(),
                PriceEntry {
                    prices: narrow(&vt.prices),
                    max_count: None,
                    unit: "per TB per hour".into(),
                },
            );
        }
        let snapshots = config
            .snapshots
            .iter()
            .filter(|s| in_tier(s.tier))
            .map(|s| {
                (
                    s.tier,
                    SnapshotPrice {
                        prices: narrow(&s.prices),
                        fixed_size_gb: s.fixed_size_gb,
                        unit: format!("per hour (fixed {}GB)", s.fixed_size_gb),
                    },
                )
            })
            .collect();
        let mut gpus: BTreeMap<Tier, BTreeMap<String, PriceEntry>> = BTreeMap::new();
        for m in config.gpu_models.iter().filter(|m| in_tier(m.tier)) {
            gpus.entry(m.tier).or_default().insert(
                m.name.clone(),
                PriceEntry {
                    prices: narrow(&m.prices),
                    max_count: Some(m.max_count),
                    unit: "per GPU per hour".into(),
                },
            );
        }
        // The published figure is the smallest volume that can boot (an OS disk, a bootable volume);
        // data volumes start lower, as the text says.
        let minimum = config.volumes.minimum_size_gb;
        let bootable = config.volumes.minimum_bootable_size_gb;
        Ok(PricingData {
            volumes: VolumePricing {
                pricing: volumes,
                minimum_size_gb: bootable,
                description: format!(
                    "Block storage pricing by type and tier, per TB ({GB_PER_TB} GB) per hour, accrued per \
                     minute; OS and bootable volumes from {bootable} GB, data volumes from {minimum} GB"
                ),
            },
            snapshots: SnapshotPricing {
                pricing: snapshots,
                description: "Snapshot storage pricing by tier, a fixed hourly rate per snapshot"
                    .into(),
            },
            gpus: GpuPricing {
                pricing: gpus,
                description: "GPU pricing by model and tier".into(),
            },
            ai: include_ai.then(|| AiPricing {
                pricing: config
                    .ai
                    .models
                    .iter()
                    .map(|m| {
                        (
                            m.id.clone(),
                            AiPriceEntry {
                                input: narrow(&m.prices.input),
                                output: narrow(&m.prices.output),
                                context_length: m.context_length,
                                unit: "per million tokens".into(),
                            },
                        )
                    })
                    .collect(),
                description:
                    "AI model pricing per million input and output tokens, charged per call".into(),
            }),
            metadata: PricingMetadata {
                supported_currencies: Currency::ALL.to_vec(),
                supported_tiers: Tier::ALL.to_vec(),
                volume_minimum_size_gb: bootable,
                authenticated_user: caller
                    .map(|c| c.key_name().unwrap_or(&c.account.email).to_string()),
                authentication_type: caller.map(|c| {
                    if c.key_name().is_some() {
                        "api_key"
                    } else {
                        "token"
                    }
                    .to_string()
                }),
                timestamp: now_ms / 1000,
            },
            quote,
        })
    }

    fn quote(&self, request: &PricingRequest, caller: Option<&Caller>) -> Result<Option<Quote>> {
        let config = &self.context.config;
        let mut v = Validator::new();
        let model = request.gpu_model.as_ref().and_then(|name| {
            let found = config.gpu_model(name);
            v.check(
                found.is_some(),
                "gpu_model",
                unknown("GPU model", name, config.gpu_models.iter().map(|m| &m.name)),
            );
            found
        });
        if let (Some(model), Some(tier)) = (model, request.tier) {
            v.check(
                model.tier == tier,
                "gpu_model",
                format!(
                    "{} is offered in the {} tier, not {tier}",
                    model.name, model.tier
                ),
            );
        }
        if let (Some(model), Some(count)) = (model, request.gpu_count) {
            let counts = gpu_counts(model);
            v.check(
                counts.contains(&count),
                "gpu_count",
                format!("GPU count for {} must be one of {counts:?}", model.name),
            );
        } else if let Some(count) = request.gpu_count {
            v.check(
                GPU_COUNTS.contains(&count),
                "gpu_count",
                format!("GPU count must be one of {GPU_COUNTS:?}"),
            );
        }
        let volume_type = request.volume_type.as_ref().and_then(|name| {
            let found = config.volume_type(name);
            v.check(
                found.is_some(),
                "volume_type",
                unknown(
                    "volume type",
                    name,
                    config.volume_types.iter().map(|t| &t.name),
                ),
            );
            found
        });
        if let (Some(vt), Some(tier)) = (volume_type, request.tier) {
            v.check(
                vt.tier == tier,
                "volume_type",
                format!(
                    "{} volumes are offered in the {} tier, not {tier}",
                    vt.name, vt.tier
                ),
            );
        }
        if let Some(size) = request.volume_size_gb {
            let limits = &config.volumes;
            v.check(
                (limits.minimum_size_gb..=limits.maximum_size_gb).contains(&size),
                "volume_size_gb",
                format!(
                    "Volume size must be between {} and {} GB",
                    limits.minimum_size_gb, limits.maximum_size_gb
                ),
            );
        }
        v.finish()?;

        let currency = request
            .currency
            .or_else(|| {
                caller
                    .map(|c| crate::platform::countries::currency_for(c.account.country.as_deref()))
            })
            .unwrap_or(Currency::USD);
        let wants = |kind: ResourceType| request.resource_type.is_none_or(|r| r == kind);
        let (kind, tier, hourly, gpu_model, gpu_count, vtype, size) = match (
            model,
            request.gpu_count,
            volume_type,
            request.volume_size_gb,
        ) {
            (Some(m), Some(n), _, _) if wants(ResourceType::Gpus) => (
                ResourceType::Gpus,
                m.tier,
                price(&m.prices, currency) * Decimal::from(n),
                Some(m.name.clone()),
                Some(n),
                None,
                None,
            ),
            (_, _, Some(t), Some(gb)) if wants(ResourceType::Volumes) => (
                ResourceType::Volumes,
                t.tier,
                storage_hourly(price(&t.prices, currency), gb),
                None,
                None,
                Some(t.name.clone()),
                Some(gb),
            ),
            _ if request.resource_type == Some(ResourceType::Snapshots) => {
                let tier = request
                    .tier
                    .or(caller.map(|c| c.tier))
                    .unwrap_or(Tier::Legacy);
                // A tier without snapshot pricing takes snapshots at no charge, as its quote says.
                let priced = config.snapshots.iter().find(|s| s.tier == tier);
                (
                    ResourceType::Snapshots,
                    tier,
                    priced.map_or(Decimal::ZERO, |s| price(&s.prices, currency)),
                    None,
                    None,
                    None,
                    priced.map(|s| s.fixed_size_gb),
                )
            }
            _ => return Ok(None),
        };
        Ok(Some(Quote {
            resource_type: kind,
            tier,
            currency,
            gpu_model,
            gpu_count,
            volume_type: vtype,
            size_gb: size,
            hourly_rate: Amount(display_rate(hourly)),
            per_minute_rate: Amount(per_minute_rate(hourly)),
            daily_cost: Amount(display_amount(hourly * Decimal::from(24))),
            monthly_cost: Amount(display_amount(hourly * Decimal::from(HOURS_PER_MONTH))),
        }))
    }
}

/// Hourly rate of `size_gb` of storage priced per TB-hour.
pub fn storage_hourly(per_tb_hour: Decimal, size_gb: u32) -> Decimal {
    per_tb_hour * Decimal::from(size_gb) / Decimal::from(GB_PER_TB)
}

pub fn price(table: &PriceTable, currency: Currency) -> Decimal {
    table.get(&currency).map(|d| d.0).unwrap_or_default()
}

/// The exact hourly price of one snapshot in `tier` (zero for a tier without snapshot pricing).
pub fn snapshot_hourly(config: &Config, tier: Tier, currency: Currency) -> Decimal {
    config
        .snapshots
        .iter()
        .find(|s| s.tier == tier)
        .map(|s| price(&s.prices, currency))
        .unwrap_or_default()
}

/// The optional sections a pricing request asks for (`include`, names separated by commas): whether `ai`
/// is among them. An unknown name is a 400 at `include`, so a typo is not silently an answer without it.
fn included_sections(include: Option<&str>) -> Result<bool> {
    let mut ai = false;
    for name in include.unwrap_or_default().split(',').map(str::trim) {
        match name {
            "" => {}
            "ai" => ai = true,
            other => {
                return Err(Error::field(
                    "include",
                    format!("Unknown section '{other}': the optional sections are: ai"),
                ));
            }
        }
    }
    Ok(ai)
}

fn prices(table: &PriceTable) -> Prices {
    table.iter().map(|(c, d)| (*c, Amount(d.0))).collect()
}

pub fn gpu_counts(model: &GpuModelConfig) -> Vec<u32> {
    GPU_COUNTS
        .into_iter()
        .filter(|n| *n <= model.max_count)
        .collect()
}

fn unknown<'a>(what: &str, value: &str, valid: impl Iterator<Item = &'a String>) -> String {
    let valid: Vec<&str> = valid.map(String::as_str).collect();
    format!(
        "Unknown {what} '{value}'. Valid values: {}",
        valid.join(", ")
    )
}
