//! Deploy, step two: every reference resolved and every check that reads made, in the documented order —
//! the hold named (404, 409, 400 for a body it does not match), the custom image, tier and region (400),
//! profile (403), balance (402), then the SSH key, the script and the volumes
//! (404) — giving the [`DeployPlan`] that step three writes. Nothing is written here.

use barrack_api::instances::DeployRequest;
use barrack_api::{Currency, Tier};
use barrack_store::deploy_holds::DeployHoldRow;
use barrack_store::images::ImageRow;
use barrack_store::instances::InstanceRow;
use barrack_store::scripts::ScriptRow;
use barrack_store::ssh_keys::SshKeyRow;
use barrack_store::volumes::VolumeRow;
use rust_decimal::Decimal;

use super::fields::{CheckedFields, unknown_value};
use crate::accounts::{Caller, missing_profile_fields};
use crate::billing::balance_guard::require_balance;
use crate::catalog::price;
use crate::compute::instances::{InstanceService, vm_name, volume_rate};
use crate::network::ValidRule;
use crate::platform::config::{Config, GpuModelConfig, RegionConfig};
use crate::platform::countries;
use crate::platform::ids::{IdKind, new_id};
use crate::platform::lifecycle::InstanceState;
use crate::platform::validate::Validator;
use crate::{Error, Result};

/// A deploy with everything it needs decided: what [`InstanceService::execute`] writes, and only that.
#[derive(Clone)]
pub(super) struct DeployPlan<'c> {
    pub model: &'c GpuModelConfig,
    /// The new instance, CREATING, with its id, specs, boot source and copies of its SSH key and script.
    pub instance: InstanceRow,
    /// The caller's custom image it boots from, held while the plan is written.
    pub custom_image: Option<ImageRow>,
    /// Its own security rules.
    pub rules: Vec<ValidRule>,
    /// The caller's volume it boots from.
    pub boot_volume: Option<VolumeRow>,
    /// The caller's data volumes it attaches.
    pub existing_volumes: Vec<VolumeRow>,
    /// The data volumes created with it, attached to it.
    pub new_volumes: Vec<VolumeRow>,
    pub currency: Currency,
    /// The first hour of what the deploy creates, which the balance was checked to cover.
    pub first_hour: Decimal,
    /// The caller's hold whose GPUs and address the deploy takes over.
    pub hold: Option<DeployHoldRow>,
    pub now: i64,
    pub labels: barrack_api::labels::Labels,
    pub lease: Option<crate::compute::leases::LeaseTerms>,
}

impl DeployPlan<'_> {
    /// Whether the deploy takes over rows that other requests change while they hold the account (a
    /// hold, an image, volumes), rather than writing only rows of its own.
    pub fn takes_over(&self) -> bool {
        self.hold.is_some()
            || self.custom_image.is_some()
            || self.boot_volume.is_some()
            || !self.existing_volumes.is_empty()
    }
}

impl InstanceService {
    /// Resolves and checks what the fields name, in the order of the module's comment.
    pub(super) async fn plan<'c>(
        &'c self,
        caller: &Caller,
        request: &DeployRequest,
        fields: CheckedFields<'c>,
    ) -> Result<DeployPlan<'c>> {
        let config = self.config();
        let CheckedFields {
            model,
            os_size,
            rules,
            lease,
        } = fields;
        let hold = match &request.hold_id {
            Some(id) => Some(self.hold_for(caller, request, id).await?),
            None => None,
        };
        // An image_name that is no OS image names one of the caller's custom images.
        let custom_image = match request.image_name.as_deref().map(str::trim) {
            Some(name) if !config.os_images.iter().any(|i| i.name == name) => {
                self.images().for_deploy(caller, name).await?
            }
            _ => None,
        };
        let region = check_tier_and_region(config, caller, request, model, &custom_image)?;
        if let Some(image) = &custom_image {
            crate::storage::images::check_bootable(image)?;
        }
        // A custom image's disk is copied whole: the OS volume is at least its size, of its type.
        let os_size = match (&custom_image, &request.os_volume) {
            (Some(image), None) => image.storage_gb as u32,
            _ => os_size,
        };

        let missing = missing_profile_fields(&caller.account);
        if !missing.is_empty() {
            return Err(Error::ProfileIncomplete(missing));
        }

        // Balance: at least the minimum and the first hour of what this deploy creates.
        let currency = countries::currency_for(caller.account.country.as_deref());
        let (os_type, first_hour) = quote(
            config,
            caller,
            request,
            model,
            &custom_image,
            os_size,
            currency,
        )?;
        require_balance(&self.context, caller, currency, first_hour).await?;

        let references = self.references(caller, request, &region.name).await?;
        let now = self.now();
        let row = instance_row(
            caller,
            request,
            model,
            region,
            &custom_image,
            (os_size, os_type),
            &references,
            currency,
            now,
        );
        let new_volumes =
            self.volumes()
                .new_volume_rows(caller, &request.volumes, &region.name, &row.id, now);
        Ok(DeployPlan {
            model,
            instance: row,
            custom_image,
            rules,
            boot_volume: references.boot_volume,
            existing_volumes: references.existing,
            new_volumes,
            currency,
            first_hour,
            hold,
            now,
            labels: request.labels.clone(),
            lease,
        })
    }
}

/// 400 unless the region exists, is of the caller's tier and offers the model, the image (an OS image or
/// the caller's custom image) is available there, and the model is of the caller's tier.
/// What a deploy hears of a region the platform does not have.
pub(super) fn unknown_region(config: &Config, region: &str) -> String {
    unknown_value("region", region, config.regions.iter().map(|r| &r.name))
}

fn check_tier_and_region<'c>(
    config: &'c Config,
    caller: &Caller,
    request: &DeployRequest,
    model: &GpuModelConfig,
    custom_image: &Option<ImageRow>,
) -> Result<&'c RegionConfig> {
    let mut v = Validator::new();
    let region = config.region(&request.region);
    match region {
        None => v.add("region", unknown_region(config, &request.region)),
        Some(r) if r.tier != caller.tier => v.add(
            "region",
            format!(
                "{} is in the {} tier; your API key or session acts in the {} tier",
                r.name, r.tier, caller.tier
            ),
        ),
        Some(r) => {
            let offered = config
                .capacity
                .iter()
                .any(|c| c.region == r.name && c.gpus.contains_key(&model.name));
            v.check(
                offered,
                "gpu_model",
                format!("{} is not offered in {}", model.name, r.name),
            );
            match (&request.image_name, custom_image) {
                (Some(image), Some(custom)) => {
                    v.check(
                        custom.region == r.name,
                        "image_name",
                        format!(
                            "Image '{image}' is in {}; a custom image boots instances in its own region only",
                            custom.region
                        ),
                    );
                    if let Some(os) = &request.os_volume {
                        v.check(
                            i64::from(os.size) >= custom.storage_gb,
                            "os_volume.size",
                            format!(
                                "Image '{image}' needs an OS volume of at least {} GB",
                                custom.storage_gb
                            ),
                        );
                    }
                }
                (Some(image), None) => {
                    let available = config
                        .os_images
                        .iter()
                        .any(|i| &i.name == image && i.regions.contains(&r.name));
                    let offered: Vec<&str> = config
                        .os_images
                        .iter()
                        .filter(|i| i.regions.contains(&r.name))
                        .map(|i| i.name.as_str())
                        .collect();
                    v.check(
                        available,
                        "image_name",
                        format!(
                            "Image '{image}' is not available in {}; its images are: {} (or a custom \
                             image of yours in {})",
                            r.name,
                            offered.join(", "),
                            r.name
                        ),
                    );
                }
                (None, _) => {}
            }
        }
    }
    v.check(
        model.tier == caller.tier,
        "gpu_model",
        format!(
            "{} is in the {} tier; your API key or session acts in the {} tier",
            model.name, model.tier, caller.tier
        ),
    );
    v.finish()?;
    Ok(region.expect("validated"))
}

/// The OS volume's type, and the first hour of what the deploy creates: the GPUs, the OS disk unless it is
/// an existing volume, and the new data volumes.
fn quote(
    config: &Config,
    caller: &Caller,
    request: &DeployRequest,
    model: &GpuModelConfig,
    custom_image: &Option<ImageRow>,
    os_size: u32,
    currency: Currency,
) -> Result<(String, Decimal)> {
    let os_type = match custom_image {
        Some(image)
            if config
                .volume_type(&image.os_volume_type)
                .is_some_and(|t| t.tier == caller.tier) =>
        {
            image.os_volume_type.clone()
        }
        _ => default_volume_type(config, caller.tier)?,
    };
    let data_volumes: Decimal = request
        .volumes
        .iter()
        .map(|v| volume_rate(config, &v.volume_type, v.size, currency))
        .sum();
    let gpus = price(&model.prices, currency) * Decimal::from(request.gpu_count);
    let os_disk = if request.boot_from_volume {
        Decimal::ZERO // an existing volume, billed already
    } else {
        volume_rate(config, &os_type, os_size, currency)
    };
    Ok((os_type, gpus + os_disk + data_volumes))
}

/// What the request names besides the image, each the caller's (404 otherwise).
struct References {
    ssh_key: Option<SshKeyRow>,
    script: Option<ScriptRow>,
    boot_volume: Option<VolumeRow>,
    existing: Vec<VolumeRow>,
}

impl InstanceService {
    /// The SSH key, the script, the boot volume and the existing data volumes (in `region`).
    async fn references(
        &self,
        caller: &Caller,
        request: &DeployRequest,
        region: &str,
    ) -> Result<References> {
        let ssh_key = match &request.ssh_key {
            Some(key) => Some(
                self.context
                    .store
                    .ssh_key(caller.account_id(), key.trim())
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("SSH key '{key}' not found")))?,
            ),
            None => None,
        };
        let script = match &request.script_id {
            Some(id) => Some(
                self.context
                    .store
                    .script(caller.account_id(), id.trim())
                    .await?
                    .ok_or_else(|| Error::not_found("Script", id))?,
            ),
            None => None,
        };
        let volumes = self.volumes();
        let boot_volume = match (&request.volume_id, request.boot_from_volume) {
            (Some(id), true) => Some(volumes.boot_volume_for_deploy(caller, id, region).await?),
            _ => None,
        };
        let existing = if request.existing_volumes.is_empty() {
            vec![]
        } else {
            volumes
                .existing_volumes_for_deploy(caller, &request.existing_volumes, region)
                .await?
        };
        Ok(References {
            ssh_key,
            script,
            boot_volume,
            existing,
        })
    }
}

/// The new instance, CREATING: its specs from the model, its disk from the boot volume or the OS volume,
/// and copies of the SSH key and the script.
#[allow(clippy::too_many_arguments)]
fn instance_row(
    caller: &Caller,
    request: &DeployRequest,
    model: &GpuModelConfig,
    region: &RegionConfig,
    custom_image: &Option<ImageRow>,
    (os_size, os_type): (u32, String),
    references: &References,
    currency: Currency,
    now: i64,
) -> InstanceRow {
    let References {
        ssh_key,
        script,
        boot_volume,
        ..
    } = references;
    InstanceRow {
        id: new_id(IdKind::Instance),
        account_id: caller.account_id().to_string(),
        name: request.instance_name.trim().to_string(),
        vm_name: vm_name(&model.name),
        tier: caller.tier.as_str().to_string(),
        region: region.name.clone(),
        gpu_model: model.name.clone(),
        gpu_count: i64::from(request.gpu_count),
        vcpus: i64::from(model.vcpus_per_gpu * request.gpu_count),
        ram_gb: i64::from(model.ram_gb_per_gpu * request.gpu_count),
        storage_gb: boot_volume
            .as_ref()
            .map(|b| b.size_gb)
            .unwrap_or(i64::from(os_size)),
        os_volume_type: boot_volume
            .as_ref()
            .map(|b| b.volume_type.clone())
            .unwrap_or(os_type),
        boot_source: if boot_volume.is_some() {
            "volume"
        } else {
            "image"
        }
        .into(),
        operating_system: match (boot_volume, custom_image) {
            (Some(b), _) => b.image_name.clone(),
            (None, Some(image)) => Some(image.name.clone()),
            (None, None) => request.image_name.clone(),
        },
        boot_volume_id: boot_volume.as_ref().map(|b| b.id.clone()),
        // A custom image boots from a copy of its snapshot's disk.
        source_snapshot_id: custom_image.as_ref().map(|i| i.snapshot_id.clone()),
        ssh_key_id: ssh_key.as_ref().map(|k| k.id.clone()),
        ssh_public_key: ssh_key.as_ref().map(|k| k.public_key.clone()),
        script_id: script.as_ref().map(|s| s.id.clone()),
        // A copy: editing or deleting the script later does not change this instance.
        startup_script: script.as_ref().map(|s| s.script.clone()),
        cloud_init: request.cloud_init.clone(),
        public_ip: request.public_ip,
        ip_address: None,
        status: InstanceState::Creating.as_str().into(),
        status_reason: None,
        host: None,
        ssh_port: None,
        gpus_allocated: i64::from(request.gpu_count),
        currency: currency.as_str().into(),
        generation: 1,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    }
}

/// The tier's OS volume type: the first volume type the configuration lists for it.
fn default_volume_type(config: &Config, tier: Tier) -> Result<String> {
    config
        .volume_types
        .iter()
        .find(|v| v.tier == tier)
        .map(|v| v.name.clone())
        .ok_or_else(|| Error::internal(format!("no volume type configured for the {tier} tier")))
}
