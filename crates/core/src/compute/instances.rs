//! Instances: deploy, lifecycle actions, details, security rules, events.
//!
//! An API call validates, then writes the instance's new (transitional) state, its event and the job that
//! carries the change out, in one transaction; workers (`instance_worker`) finish it through the driver.

use std::sync::Arc;

use barrack_api::catalog::Amount;
use barrack_api::instances::{
    BillingBreakdown, ComputeCharge, DataVolumeCharge, DeployRequest, DeployedInstance, Event,
    EventList, Features, GpuCharge, HibernatedSummary, Instance, InstanceAction, InstanceBilling,
    InstanceList, InstanceQuery, SecurityRule, SecurityRuleRequest, Specs, StorageCharge,
    TogglePublicIp, VolumeCharge,
};
use barrack_api::snapshots::RestoreSnapshotRequest;
use barrack_api::{Currency, PageQuery, PageRequest, Pagination, Tier};
use barrack_store::events::{self, EventRow};
use barrack_store::images::{self, ImageRow};
use barrack_store::instances::{self, InstanceChange, InstanceFilter, InstanceRow, RuleRow};
use barrack_store::snapshots::{self, SnapshotRow};
use barrack_store::volumes::VolumeRow;
use barrack_store::{StoreError, Tx, capacity, public_ips};
use rand::Rng;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::accounts::{Caller, actor, missing_profile_fields};
use crate::billing::Depletion;
use crate::billing::balance_guard::require_balance;
use crate::billing::commitments::require_commitment;
use crate::catalog::{gpu_counts, price};
use crate::network::{ValidRule, rule_view, valid_rule_of, validate_rule};
use crate::platform::clock::format_ms;
use crate::platform::config::{Config, GpuModelConfig};
use crate::platform::countries;
use crate::platform::ids::{IdKind, new_id};
use crate::platform::jobs::{NewJob, enqueue};
use crate::platform::lifecycle::{Action, BillingClass, InstanceState};
use crate::platform::money::display_rate;
use crate::platform::validate::{Validator, length_between, only_chars};
use crate::storage::images::ImageService;
use crate::storage::snapshots::{SnapshotService, SnapshotState, default_restore_name};
use crate::storage::volumes::VolumeService;
use crate::{Context, Error, Result};
use barrack_api::rules;

/// Largest `cloud_init` document accepted, in bytes.
pub const MAX_CLOUD_INIT_BYTES: usize = rules::SCRIPT_MAX_BYTES;
/// Rules one instance may carry of its own.
pub const MAX_RULES_PER_INSTANCE: usize = 50;
pub const JOB_KIND: &str = "instance";

/// What an instance job carries: the action, and the generation the instance had once it was requested
/// (a job whose instance has moved on since is obsolete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceJob {
    pub action: JobAction,
    pub generation: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobAction {
    Create,
    Start,
    Stop,
    Reboot,
    Hibernate,
    Restore,
    Delete,
}

impl From<Action> for JobAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Start => JobAction::Start,
            Action::Stop => JobAction::Stop,
            Action::Reboot => JobAction::Reboot,
            Action::Hibernate => JobAction::Hibernate,
            Action::Restore => JobAction::Restore,
            Action::Delete => JobAction::Delete,
        }
    }
}

#[derive(Clone)]
pub struct InstanceService {
    context: Arc<Context>,
}

impl InstanceService {
    pub fn new(context: Arc<Context>) -> InstanceService {
        InstanceService { context }
    }

    fn config(&self) -> &Config {
        &self.context.config
    }

    fn volumes(&self) -> VolumeService {
        VolumeService::new(self.context.clone())
    }

    fn images(&self) -> ImageService {
        ImageService::new(self.context.clone())
    }

    fn now(&self) -> i64 {
        self.context.clock.now_ms()
    }

    /// `POST /api/deploy-server/`. Checks in the documented order: fields (400), tier and region (400),
    /// profile (403), balance (402), references (404), then stock (503) inside the transaction.
    pub async fn deploy(
        &self,
        caller: &Caller,
        request: DeployRequest,
    ) -> Result<DeployedInstance> {
        let config = self.config();
        if request
            .cloud_init
            .as_ref()
            .is_some_and(|c| c.len() > MAX_CLOUD_INIT_BYTES)
        {
            return Err(Error::PayloadTooLarge(format!(
                "cloud_init must be {MAX_CLOUD_INIT_BYTES} bytes or less"
            )));
        }

        // Fields.
        let mut v = Validator::new();
        check_instance_name(&mut v, "instance_name", &request.instance_name);
        let model = config.gpu_model(&request.gpu_model);
        match model {
            None => v.add(
                "gpu_model",
                unknown_value(
                    "GPU model",
                    &request.gpu_model,
                    config.gpu_models.iter().map(|m| &m.name),
                ),
            ),
            Some(m) => {
                let counts = gpu_counts(m);
                v.check(
                    counts.contains(&request.gpu_count),
                    "gpu_count",
                    format!("GPU count for {} must be one of {counts:?}", m.name),
                );
            }
        }
        if request.boot_from_volume {
            v.check(
                request.volume_id.is_some(),
                "volume_id",
                "volume_id is required when boot_from_volume is true",
            );
            v.check(
                request.image_name.is_none(),
                "image_name",
                "Boot from an image or from a volume, not both",
            );
        } else {
            v.check(
                request.image_name.as_deref().is_some_and(|i| !i.trim().is_empty()),
                "image_name",
                "image_name is required (or boot from a volume with volume_id and boot_from_volume: true)",
            );
            v.check(
                request
                    .ssh_key
                    .as_deref()
                    .is_some_and(|k| !k.trim().is_empty()),
                "ssh_key",
                "ssh_key is required to boot from an image",
            );
        }
        let limits = &config.volumes;
        let os_size = request
            .os_volume
            .as_ref()
            .map(|o| o.size)
            .unwrap_or(limits.minimum_bootable_size_gb);
        v.check(
            (limits.minimum_bootable_size_gb..=limits.maximum_size_gb).contains(&os_size),
            "os_volume.size",
            format!(
                "OS volume size must be between {} and {} GB",
                limits.minimum_bootable_size_gb, limits.maximum_size_gb
            ),
        );
        v.check(
            request.security_rules.len() <= MAX_RULES_PER_INSTANCE,
            "security_rules",
            format!("At most {MAX_RULES_PER_INSTANCE} rules per instance"),
        );
        let rules: Vec<ValidRule> = request
            .security_rules
            .iter()
            .enumerate()
            .filter_map(|(i, rule)| validate_rule(&mut v, &format!("security_rules[{i}]."), rule))
            .collect();
        for (i, rule) in rules.iter().enumerate() {
            v.check(
                !rules[..i].contains(rule),
                &format!("security_rules[{i}]"),
                "Duplicate rule",
            );
        }
        if request.boot_from_volume {
            v.check(
                request.os_volume.is_none(),
                "os_volume",
                "The boot volume is the OS disk: os_volume applies to image boot only",
            );
        }
        self.volumes()
            .check_new_volumes(caller, &mut v, &request.volumes);
        v.finish()?;
        let model = model.expect("validated");

        // An image_name that is no OS image names one of the caller's custom images.
        let custom_image = match request.image_name.as_deref().map(str::trim) {
            Some(name) if !config.os_images.iter().any(|i| i.name == name) => {
                self.images().for_deploy(caller, name).await?
            }
            _ => None,
        };

        // Tier and region.
        let mut v = Validator::new();
        let region = config.region(&request.region);
        match region {
            None => v.add(
                "region",
                unknown_value(
                    "region",
                    &request.region,
                    config.regions.iter().map(|r| &r.name),
                ),
            ),
            Some(r) if r.tier != caller.tier => v.add(
                "region",
                format!(
                    "{} is in the {} tier; this API key acts in the {} tier",
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
                match (&request.image_name, &custom_image) {
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
                        v.check(
                            available,
                            "image_name",
                            format!("Image '{image}' is not available in {}", r.name),
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
                "{} is in the {} tier; this API key acts in the {} tier",
                model.name, model.tier, caller.tier
            ),
        );
        v.finish()?;
        let region = region.expect("validated");
        if let Some(image) = &custom_image {
            crate::storage::images::check_bootable(image)?;
        }
        // A custom image's disk is copied whole: the OS volume is at least its size, of its type.
        let os_size = match (&custom_image, &request.os_volume) {
            (Some(image), None) => image.storage_gb as u32,
            _ => os_size,
        };

        // Profile.
        let missing = missing_profile_fields(&caller.account);
        if !missing.is_empty() {
            return Err(Error::ProfileIncomplete(missing));
        }

        // Balance: at least the minimum and the first hour of what this deploy creates.
        let currency = countries::currency_for(caller.account.country.as_deref());
        let os_type = match &custom_image {
            Some(image)
                if config
                    .volume_type(&image.os_volume_type)
                    .is_some_and(|t| t.tier == caller.tier) =>
            {
                image.os_volume_type.clone()
            }
            _ => default_volume_type(config, caller.tier)?,
        };
        let new_volumes: Decimal = request
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
        require_balance(
            &self.context,
            caller,
            currency,
            gpus + os_disk + new_volumes,
        )
        .await?;

        // References.
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
            (Some(id), true) => Some(
                volumes
                    .boot_volume_for_deploy(caller, id, &region.name)
                    .await?,
            ),
            _ => None,
        };
        let existing = if request.existing_volumes.is_empty() {
            vec![]
        } else {
            volumes
                .existing_volumes_for_deploy(caller, &request.existing_volumes, &region.name)
                .await?
        };

        // Stock, address and the instance, in one transaction.
        let now = self.now();
        let row = InstanceRow {
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
            operating_system: match (&boot_volume, &custom_image) {
                (Some(b), _) => b.image_name.clone(),
                (None, Some(image)) => Some(image.name.clone()),
                (None, None) => request.image_name.clone(),
            },
            boot_volume_id: boot_volume.as_ref().map(|b| b.id.clone()),
            // A custom image boots from a copy of its snapshot's disk.
            source_snapshot_id: custom_image.as_ref().map(|i| i.snapshot_id.clone()),
            ssh_key_id: ssh_key.as_ref().map(|k| k.id.clone()),
            ssh_public_key: ssh_key.map(|k| k.public_key),
            script_id: script.as_ref().map(|s| s.id.clone()),
            // A copy: editing or deleting the script later does not change this instance.
            startup_script: script.map(|s| s.script),
            cloud_init: request.cloud_init.clone(),
            public_ip: request.public_ip,
            ip_address: None,
            status: InstanceState::Creating.as_str().into(),
            status_reason: None,
            host: None,
            gpus_allocated: i64::from(request.gpu_count),
            currency: currency.as_str().into(),
            generation: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let mut tx = self.context.store.begin().await?;
        require_commitment(
            &mut tx,
            &self.context,
            caller.account_id(),
            currency,
            gpus + os_disk + new_volumes,
        )
        .await?;
        if let Some(image) = &custom_image {
            hold_image(&mut tx, image).await?;
        }
        if !self.place_new(&mut tx, &row, now).await? {
            drop(tx);
            return Err(Error::GpuUnavailable(
                self.stock_message(&row.region, model, request.gpu_count)
                    .await?,
            ));
        }
        for rule in &rules {
            insert_rule(&mut tx, &row.id, rule, now).await?;
        }
        let who = actor(caller);
        for volume in boot_volume.iter().chain(existing.iter()) {
            if !crate::storage::volumes::attach_at_deploy(
                &self.context.config,
                &mut tx,
                volume,
                &row.id,
                &who,
                now,
            )
            .await?
            {
                return Err(Error::conflict(
                    "CONFLICT",
                    format!("Volume {} changed while deploying; try again", volume.id),
                ));
            }
        }
        let created = volumes.new_volume_rows(caller, &request.volumes, &region.name, &row.id, now);
        let max_attempts = i64::from(self.config().jobs.max_attempts);
        for volume in &created {
            crate::storage::volumes::create_at_deploy(
                &self.context.config,
                &mut tx,
                volume,
                &who,
                max_attempts,
                now,
            )
            .await?;
        }
        record_event(
            &self.context.config,
            &mut tx,
            &row,
            None,
            InstanceState::Creating,
            &actor(caller),
            "deploy requested",
            now,
        )
        .await?;
        self.enqueue(&mut tx, &row.id, JobAction::Create, row.generation, now)
            .await?;
        tx.commit().await.map_err(Error::internal)?;
        self.context.work.notify_one();

        let data: Vec<VolumeRow> = existing.into_iter().chain(created).collect();
        Ok(self.deployed(row, model, &data, currency, now))
    }

    /// `POST /api/snapshots/{id}/restore/`: a new instance with the snapshot's specs and disk, through the
    /// checks of deploy (see [`Self::restore_snapshot`]).
    pub async fn restore_from_snapshot(
        &self,
        caller: &Caller,
        snapshot_id: &str,
        request: RestoreSnapshotRequest,
    ) -> Result<DeployedInstance> {
        let snapshot = SnapshotService::new(self.context.clone())
            .owned(caller, snapshot_id)
            .await?;
        let name = match request.instance_name {
            Some(name) => name.trim().to_string(),
            None => default_restore_name(&snapshot.name),
        };
        self.restore_snapshot(caller, &snapshot, &name).await
    }

    /// `POST /api/snapshots/{id}/restore/`: a new instance with `snapshot`'s specs, booted from a copy of
    /// its disk (`boot_source: snapshot`), through deploy's checks: the name (400), the snapshot's state
    /// (409 `INVALID_STATE`), tier and region (400), profile (403), balance (402: the minimum and the
    /// first hour of the GPUs and the OS disk), then stock (503), an address (503) and the name's
    /// uniqueness (409) inside the transaction that creates it. Billing starts when it is ACTIVE.
    pub async fn restore_snapshot(
        &self,
        caller: &Caller,
        snapshot: &SnapshotRow,
        instance_name: &str,
    ) -> Result<DeployedInstance> {
        let config = self.config();
        let mut v = Validator::new();
        check_instance_name(&mut v, "instance_name", instance_name);
        v.finish()?;
        if snapshot.status != SnapshotState::Success.as_str() {
            return Err(Error::conflict(
                "INVALID_STATE",
                format!(
                    "Cannot restore a snapshot in state {}; it must be SUCCESS",
                    snapshot.status
                ),
            ));
        }

        // Tier and region: the snapshot's, of the caller's tier, still offering its GPUs.
        let mut v = Validator::new();
        let model = config.gpu_model(&snapshot.gpu_model);
        match config.region(&snapshot.region) {
            None => v.add(
                "region",
                format!("The snapshot's region {} is not offered any more", snapshot.region),
            ),
            Some(r) if r.tier != caller.tier => v.add(
                "region",
                format!(
                    "The snapshot is in {}, a region of the {} tier; this API key acts in the {} tier",
                    r.name, r.tier, caller.tier
                ),
            ),
            Some(r) => {
                let offered = model.is_some()
                    && config
                        .capacity
                        .iter()
                        .any(|c| c.region == r.name && c.gpus.contains_key(&snapshot.gpu_model));
                v.check(
                    offered,
                    "gpu_model",
                    format!("{} is not offered in {} any more", snapshot.gpu_model, r.name),
                );
            }
        }
        v.finish()?;
        let model = model.ok_or_else(|| Error::internal("validated model"))?;

        // Profile and balance.
        let missing = missing_profile_fields(&caller.account);
        if !missing.is_empty() {
            return Err(Error::ProfileIncomplete(missing));
        }
        let currency = countries::currency_for(caller.account.country.as_deref());
        let gpus = price(&model.prices, currency) * Decimal::from(snapshot.gpu_count);
        let os_disk = volume_rate(
            config,
            &snapshot.os_volume_type,
            snapshot.storage_gb as u32,
            currency,
        );
        require_balance(&self.context, caller, currency, gpus + os_disk).await?;

        let now = self.now();
        let row = InstanceRow {
            id: new_id(IdKind::Instance),
            account_id: caller.account_id().to_string(),
            name: instance_name.trim().to_string(),
            vm_name: vm_name(&model.name),
            tier: caller.tier.as_str().to_string(),
            region: snapshot.region.clone(),
            gpu_model: model.name.clone(),
            gpu_count: snapshot.gpu_count,
            vcpus: snapshot.vcpus,
            ram_gb: snapshot.ram_gb,
            storage_gb: snapshot.storage_gb,
            os_volume_type: snapshot.os_volume_type.clone(),
            boot_source: "snapshot".into(),
            operating_system: snapshot.operating_system.clone(),
            boot_volume_id: None,
            source_snapshot_id: Some(snapshot.id.clone()),
            ssh_key_id: None,
            ssh_public_key: None,
            script_id: None,
            startup_script: None,
            cloud_init: None,
            public_ip: true,
            ip_address: None,
            status: InstanceState::Creating.as_str().into(),
            status_reason: None,
            host: None,
            gpus_allocated: snapshot.gpu_count,
            currency: currency.as_str().into(),
            generation: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let mut tx = self.context.store.begin().await?;
        require_commitment(
            &mut tx,
            &self.context,
            caller.account_id(),
            currency,
            gpus + os_disk,
        )
        .await?;
        // The snapshot cannot be deleted before the instance that copies its disk is written.
        if !snapshots::hold(&mut tx, &snapshot.id, snapshot.generation).await? {
            return Err(Error::conflict(
                "CONFLICT",
                format!(
                    "Snapshot {} changed while restoring; try again",
                    snapshot.id
                ),
            ));
        }
        if !self.place_new(&mut tx, &row, now).await? {
            drop(tx);
            return Err(Error::GpuUnavailable(
                self.stock_message(&row.region, model, row.gpu_count as u32)
                    .await?,
            ));
        }
        let who = actor(caller);
        record_event(
            config,
            &mut tx,
            &row,
            None,
            InstanceState::Creating,
            &who,
            &format!("restore of snapshot {} requested", snapshot.id),
            now,
        )
        .await?;
        crate::storage::snapshots::record_event(
            config,
            &mut tx,
            snapshot,
            Some(SnapshotState::Success),
            SnapshotState::Success,
            &who,
            &format!("restore into instance {} requested", row.id),
            snapshot.generation,
            now,
        )
        .await?;
        self.enqueue(&mut tx, &row.id, JobAction::Create, row.generation, now)
            .await?;
        tx.commit().await.map_err(Error::internal)?;
        self.context.work.notify_one();
        Ok(self.deployed(row, model, &[], currency, now))
    }

    /// Takes the GPUs and the public address of a new instance and writes it, in the caller's
    /// transaction: false when its region lacks the GPUs (drop the transaction, then answer 503 with
    /// [`InstanceService::stock_message`]); 503 without a free address; 409 on a name the account uses.
    async fn place_new(&self, tx: &mut Tx, row: &InstanceRow, now: i64) -> Result<bool> {
        if !capacity::allocate(tx, &row.region, &row.gpu_model, row.gpu_count, now).await? {
            return Ok(false);
        }
        if row.public_ip {
            self.reserve_address(tx, row).await?;
        }
        match instances::insert(&mut *tx, row).await {
            Ok(()) => Ok(true),
            Err(StoreError::Unique(_)) => Err(Error::conflict(
                "DUPLICATE_NAME",
                format!("An instance named '{}' already exists", row.name),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The documented deploy answer for a new instance and the data volumes it starts with.
    fn deployed(
        &self,
        row: InstanceRow,
        model: &GpuModelConfig,
        data: &[VolumeRow],
        currency: Currency,
        now: i64,
    ) -> DeployedInstance {
        let count = row.gpu_count as u32;
        let billing = billing_of(
            self.config(),
            model,
            count,
            (row.storage_gb as u32, &row.os_volume_type),
            data,
            currency,
        );
        DeployedInstance {
            instance_id: row.id,
            vm_name: row.vm_name,
            region: row.region,
            ip_address: None,
            ip_status: "pending".into(),
            billing,
            specs: specs_of_parts(
                &model.name,
                count,
                row.ram_gb,
                row.vcpus,
                row.storage_gb as u32,
            ),
            status: row.status,
            boot_source: row.boot_source,
            operating_system: row.operating_system,
            features: Features {
                startup_script_configured: row.startup_script.is_some(),
            },
            created_at: format_ms(now),
        }
    }

    /// Where the model has `count` GPUs free, for the 503 message.
    async fn stock_message(
        &self,
        region: &str,
        model: &GpuModelConfig,
        count: u32,
    ) -> Result<String> {
        let capacity = self.context.store.capacity().await?;
        let elsewhere: Vec<String> = capacity
            .iter()
            .filter(|c| c.gpu_model == model.name && c.free() >= i64::from(count))
            .map(|c| format!("{} ({} free)", c.region, c.free()))
            .collect();
        let free_here = capacity
            .iter()
            .find(|c| c.region == region && c.gpu_model == model.name)
            .map(|c| c.free())
            .unwrap_or(0);
        let mut message = format!(
            "Not enough {} GPUs in {region}: {count} requested, {free_here} free.",
            model.name
        );
        if elsewhere.is_empty() {
            message.push_str(" No region has that many free right now.");
        } else {
            message.push_str(&format!(" Available in: {}.", elsewhere.join(", ")));
        }
        Ok(message)
    }

    /// Takes a public address for the instance (or finds the one it holds); 503 when the pool is empty.
    async fn reserve_address(&self, tx: &mut Tx, row: &InstanceRow) -> Result<String> {
        public_ips::assign(tx, &row.region, &row.id, self.now()).await?.ok_or_else(|| {
            Error::PublicIpUnavailable(format!(
                "No public IP address is free in {}; deploy with public_ip: false or try another region",
                row.region
            ))
        })
    }

    async fn enqueue(
        &self,
        tx: &mut Tx,
        id: &str,
        action: JobAction,
        generation: i64,
        now: i64,
    ) -> Result<()> {
        let payload =
            serde_json::to_string(&InstanceJob { action, generation }).map_err(Error::internal)?;
        let job = NewJob {
            kind: JOB_KIND,
            resource_id: id,
            payload,
            max_attempts: i64::from(self.config().jobs.max_attempts),
        };
        enqueue(tx, job, now).await?;
        Ok(())
    }

    async fn owned(&self, caller: &Caller, id: &str) -> Result<InstanceRow> {
        self.context
            .store
            .instance(caller.account_id(), id)
            .await?
            .filter(|i| i.status != InstanceState::Deleted.as_str())
            .ok_or_else(|| Error::not_found("Instance", id))
    }

    /// Start, stop, reboot, hibernate, restore or delete: the instance enters its transitional state now and
    /// a worker finishes the operation.
    pub async fn act(&self, caller: &Caller, id: &str, action: Action) -> Result<InstanceAction> {
        for _ in 0..5 {
            let row = self.owned(caller, id).await?;
            let state = parse_state(&row.status)?;
            let (through, to) = action.begin(state)?;
            let action = action.resolve(state);
            if action == Action::Restore {
                let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
                let model = self
                    .config()
                    .gpu_model(&row.gpu_model)
                    .ok_or_else(|| Error::internal("instance of an unknown model"))?;
                // The first hour of the GPUs again; the disks were kept, and billed, while hibernated.
                let gpus = price(&model.prices, currency) * Decimal::from(row.gpu_count);
                require_balance(&self.context, caller, currency, gpus).await?;
            }
            let now = self.now();
            let mut tx = self.context.store.begin().await?;
            if action == Action::Restore {
                let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
                let gpus = self
                    .config()
                    .gpu_model(&row.gpu_model)
                    .map(|m| price(&m.prices, currency) * Decimal::from(row.gpu_count))
                    .unwrap_or_default();
                require_commitment(&mut tx, &self.context, caller.account_id(), currency, gpus)
                    .await?;
            }
            let mut change = InstanceChange {
                status: Some(through.as_str().into()),
                status_reason: Some(None),
                ..Default::default()
            };
            if action == Action::Restore {
                if !capacity::allocate(&mut tx, &row.region, &row.gpu_model, row.gpu_count, now)
                    .await?
                {
                    drop(tx);
                    let model = self
                        .config()
                        .gpu_model(&row.gpu_model)
                        .ok_or_else(|| Error::internal("unknown model"))?;
                    return Err(Error::GpuUnavailable(
                        self.stock_message(&row.region, model, row.gpu_count as u32)
                            .await?,
                    ));
                }
                change.gpus_allocated = Some(row.gpu_count);
                if row.public_ip {
                    self.reserve_address(&mut tx, &row).await?;
                }
            }
            if !instances::update(&mut tx, &row.id, row.generation, &change, now).await? {
                continue; // changed under us: read again and decide again
            }
            let generation = row.generation + 1;
            let cause = format!("{action} requested");
            record_event_at(
                &self.context.config,
                &mut tx,
                &row,
                Some(state),
                through,
                &actor(caller),
                &cause,
                generation,
                now,
            )
            .await?;
            self.enqueue(&mut tx, &row.id, action.into(), generation, now)
                .await?;
            tx.commit().await.map_err(Error::internal)?;
            self.context.work.notify_one();
            return Ok(InstanceAction {
                instance_id: row.id,
                action: action.as_str().into(),
                status: through.as_str().into(),
                target_status: to.as_str().into(),
            });
        }
        Err(Error::conflict(
            "CONFLICT",
            "The instance is changing; try again",
        ))
    }

    /// Hibernates every ACTIVE and SHUTOFF instance of an account billed in the currency whose credit ran
    /// out (their disks are kept); returns how many were started on their way.
    pub async fn hibernate_for_depletion(
        &self,
        account_id: &str,
        currency: Currency,
    ) -> Result<usize> {
        let mut hibernated = 0;
        for row in self
            .context
            .store
            .instances_with_status(&["ACTIVE", "SHUTOFF"])
            .await?
        {
            if row.account_id != account_id || row.currency != currency.as_str() {
                continue;
            }
            let state = parse_state(&row.status)?;
            let (through, _) = Action::Hibernate.begin(state)?;
            let now = self.now();
            let mut tx = self.context.store.begin().await?;
            let change = InstanceChange {
                status: Some(through.as_str().into()),
                ..Default::default()
            };
            if !instances::update(&mut tx, &row.id, row.generation, &change, now).await? {
                continue; // changed meanwhile; the next meter run looks again
            }
            let generation = row.generation + 1;
            let cause = "hibernated: the account's credit balance reached zero";
            record_event_at(
                &self.context.config,
                &mut tx,
                &row,
                Some(state),
                through,
                "system",
                cause,
                generation,
                now,
            )
            .await?;
            self.enqueue(&mut tx, &row.id, JobAction::Hibernate, generation, now)
                .await?;
            tx.commit().await.map_err(Error::internal)?;
            hibernated += 1;
        }
        if hibernated > 0 {
            self.context.work.notify_one();
        }
        Ok(hibernated)
    }

    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Instance> {
        let row = self.owned(caller, id).await?;
        self.view(row).await
    }

    pub async fn list(&self, caller: &Caller, query: InstanceQuery) -> Result<InstanceList> {
        let page = page_of(query.page, query.limit)?;
        if let Some(status) = &query.status {
            InstanceState::parse(status)
                .ok_or_else(|| Error::field("status", format!("Unknown status '{status}'")))?;
        }
        let filter = InstanceFilter {
            status: query
                .status
                .as_deref()
                .and_then(InstanceState::parse)
                .map(|s| s.as_str().to_string()),
            region: query.region,
            gpu_model: query.gpu_model,
            name_contains: query.name,
            include_deleted: false,
        };
        let (rows, total) = self
            .context
            .store
            .instances(caller.account_id(), &filter, page.offset(), page.limit)
            .await?;
        let instances = self.views(rows).await?;
        Ok(InstanceList {
            instances,
            pagination: Pagination::new(page, total),
        })
    }

    /// `GET /api/instances/hibernated/`.
    pub async fn hibernated(&self, caller: &Caller) -> Result<HibernatedSummary> {
        let filter = InstanceFilter {
            status: Some("HIBERNATED".into()),
            ..Default::default()
        };
        let (rows, total) = self
            .context
            .store
            .instances(caller.account_id(), &filter, 0, 5)
            .await?;
        let currency = countries::currency_for(caller.account.country.as_deref());
        let rate = price(&self.config().billing.hibernation_prices, currency);
        let recent = self.views(rows).await?;
        Ok(HibernatedSummary {
            count: total,
            hourly_cost: Amount(rate * Decimal::from(total)),
            currency,
            recent,
        })
    }

    /// `GET /api/instances/snapshot-eligible/`: ACTIVE instances.
    pub async fn snapshot_eligible(
        &self,
        caller: &Caller,
        page: PageQuery,
    ) -> Result<InstanceList> {
        self.list(
            caller,
            InstanceQuery {
                page: page.page,
                limit: page.limit,
                status: Some("ACTIVE".into()),
                ..Default::default()
            },
        )
        .await
    }

    /// `POST /api/instances/{id}/toggle-public-ip/`: ACTIVE or SHUTOFF instances only.
    pub async fn toggle_public_ip(&self, caller: &Caller, id: &str) -> Result<TogglePublicIp> {
        for _ in 0..5 {
            let row = self.owned(caller, id).await?;
            let state = parse_state(&row.status)?;
            if !matches!(state, InstanceState::Active | InstanceState::Shutoff) {
                return Err(Error::conflict(
                    "INVALID_STATE",
                    format!(
                        "Cannot toggle the public IP of an instance in state {state}; it must be ACTIVE or SHUTOFF"
                    ),
                ));
            }
            let now = self.now();
            let mut tx = self.context.store.begin().await?;
            let enable = !row.public_ip;
            let address = if enable {
                self.reserve_address(&mut tx, &row).await?
            } else {
                public_ips::release(&mut tx, &row.id, now).await?;
                private_address(&row.id)
            };
            let address = Some(address);
            let change = InstanceChange {
                public_ip: Some(enable),
                ip_address: Some(address.clone()),
                ..Default::default()
            };
            if !instances::update(&mut tx, &row.id, row.generation, &change, now).await? {
                continue;
            }
            let cause = if enable {
                "public IP enabled"
            } else {
                "public IP disabled"
            };
            record_event_at(
                &self.context.config,
                &mut tx,
                &row,
                Some(state),
                state,
                &actor(caller),
                cause,
                row.generation + 1,
                now,
            )
            .await?;
            tx.commit().await.map_err(Error::internal)?;
            return Ok(TogglePublicIp {
                instance_id: row.id,
                public_ip: enable,
                ip_status: if address.is_some() {
                    "assigned"
                } else {
                    "pending"
                }
                .into(),
                ip_address: address,
            });
        }
        Err(Error::conflict(
            "CONFLICT",
            "The instance is changing; try again",
        ))
    }

    /// `POST /api/instances/{id}/security-rules/`.
    pub async fn add_rule(
        &self,
        caller: &Caller,
        id: &str,
        request: SecurityRuleRequest,
    ) -> Result<SecurityRule> {
        let row = self.owned(caller, id).await?;
        let mut v = Validator::new();
        let rule = validate_rule(&mut v, "", &request);
        v.finish()?;
        let rule = rule.expect("validated");
        let existing = self.context.store.instance_rules(&row.id).await?;
        if existing.iter().any(|r| valid_rule_of(r) == rule) {
            return Err(Error::conflict(
                "DUPLICATE_RULE",
                "The instance already has this rule",
            ));
        }
        if existing.len() >= MAX_RULES_PER_INSTANCE {
            return Err(Error::conflict(
                "LIMIT_EXCEEDED",
                format!("At most {MAX_RULES_PER_INSTANCE} rules per instance"),
            ));
        }
        let now = self.now();
        let mut tx = self.context.store.begin().await?;
        let rule_id = insert_rule(&mut tx, &row.id, &rule, now).await?;
        let cause = format!("rule {rule_id} added");
        let attempts = i64::from(self.config().jobs.max_attempts);
        crate::network::firewalls::enqueue_program(&mut tx, &row.id, &cause, attempts, now).await?;
        tx.commit().await.map_err(Error::internal)?;
        self.context.work.notify_one();
        Ok(rule_view(&rule_id, &rule))
    }

    /// `DELETE /api/instances/{id}/security-rules/{rule_id}/`.
    pub async fn remove_rule(&self, caller: &Caller, id: &str, rule_id: &str) -> Result<()> {
        let row = self.owned(caller, id).await?;
        let now = self.now();
        let mut tx = self.context.store.begin().await?;
        if !instances::delete_rule(&mut tx, &row.id, rule_id).await? {
            return Err(Error::not_found("Security rule", rule_id));
        }
        let cause = format!("rule {rule_id} removed");
        let attempts = i64::from(self.config().jobs.max_attempts);
        crate::network::firewalls::enqueue_program(&mut tx, &row.id, &cause, attempts, now).await?;
        tx.commit().await.map_err(Error::internal)?;
        self.context.work.notify_one();
        Ok(())
    }

    /// Events of one instance, or of the whole account.
    pub async fn events(
        &self,
        caller: &Caller,
        id: Option<&str>,
        page: PageQuery,
    ) -> Result<EventList> {
        if let Some(id) = id {
            self.context
                .store
                .instance(caller.account_id(), id)
                .await?
                .ok_or_else(|| Error::not_found("Instance", id))?;
        }
        let page = page_of(page.page, page.limit)?;
        let (rows, total) = self
            .context
            .store
            .events(caller.account_id(), id, page.offset(), page.limit)
            .await?;
        Ok(EventList {
            events: rows.into_iter().map(event_view).collect(),
            pagination: Pagination::new(page, total),
        })
    }

    async fn view(&self, row: InstanceRow) -> Result<Instance> {
        Ok(self.views(vec![row]).await?.remove(0))
    }

    /// Views of several instances, their rules, volumes and firewall rules read in one query.
    async fn views(&self, rows: Vec<InstanceRow>) -> Result<Vec<Instance>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let children = self.context.store.instance_children(&ids).await?;
        let mut rules: std::collections::HashMap<String, Vec<RuleRow>> =
            std::collections::HashMap::new();
        for (instance, rule) in children.rules {
            rules.entry(instance).or_default().push(rule);
        }
        let mut volumes: std::collections::HashMap<String, Vec<VolumeRow>> =
            std::collections::HashMap::new();
        for volume in children.volumes {
            if let Some(instance) = volume.instance_id.clone() {
                volumes.entry(instance).or_default().push(volume);
            }
        }
        // The effective rules: the instance's own, then those of its firewalls (`source` says which).
        let mut firewall_rules =
            crate::network::firewalls::firewall_rules_by_instance(children.firewall_rules);
        rows.into_iter()
            .map(|row| {
                let own = rules.remove(&row.id).unwrap_or_default();
                let attached = volumes.remove(&row.id).unwrap_or_default();
                let from_firewalls = firewall_rules.remove(&row.id).unwrap_or_default();
                let mut view = self.view_with(row, &own, &attached)?;
                view.security_rules.extend(from_firewalls);
                Ok(view)
            })
            .collect()
    }

    fn view_with(
        &self,
        row: InstanceRow,
        rules: &[RuleRow],
        volumes: &[VolumeRow],
    ) -> Result<Instance> {
        let config = self.config();
        let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
        let data: Vec<VolumeRow> = volumes
            .iter()
            .filter(|v| Some(&v.id) != row.boot_volume_id.as_ref())
            .cloned()
            .collect();
        let billing = match config.gpu_model(&row.gpu_model) {
            Some(model) => billing_of(
                config,
                model,
                row.gpu_count as u32,
                (row.storage_gb as u32, &row.os_volume_type),
                &data,
                currency,
            ),
            None => {
                return Err(Error::internal(format!(
                    "instance {} has unknown model {}",
                    row.id, row.gpu_model
                )));
            }
        };
        let state = parse_state(&row.status)?;
        Ok(Instance {
            specs: specs_of_parts(
                &row.gpu_model,
                row.gpu_count as u32,
                row.ram_gb,
                row.vcpus,
                row.storage_gb as u32,
            ),
            security_rules: rules
                .iter()
                .map(|r| rule_view(&r.id, &valid_rule_of(r)))
                .collect(),
            allowed_actions: state
                .allowed_actions()
                .into_iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            ip_status: if row.ip_address.is_some() {
                "assigned"
            } else {
                "pending"
            }
            .into(),
            instance_id: row.id,
            name: row.name,
            vm_name: row.vm_name,
            region: row.region,
            tier: Tier::parse(&row.tier).unwrap_or(Tier::Legacy),
            status: row.status,
            status_reason: row.status_reason,
            ip_address: row.ip_address,
            public_ip: row.public_ip,
            boot_source: row.boot_source,
            operating_system: row.operating_system,
            ssh_key_id: row.ssh_key_id,
            script_id: row.script_id,
            billing,
            features: Features {
                startup_script_configured: row.startup_script.is_some(),
            },
            created_at: format_ms(row.created_at),
            updated_at: format_ms(row.updated_at),
        })
    }
}

fn page_of(page: Option<u32>, limit: Option<u32>) -> Result<PageRequest> {
    PageQuery { page, limit }
        .validate()
        .map_err(|(field, message)| Error::field(field, message))
}

pub(crate) fn parse_state(status: &str) -> Result<InstanceState> {
    InstanceState::parse(status)
        .ok_or_else(|| Error::internal(format!("unknown instance status {status}")))
}

/// Instance names: 2–30 letters, digits, `-`, `_`, `.` (`barrack_api::rules`).
pub fn check_instance_name(v: &mut Validator, field: &str, name: &str) {
    v.check(
        length_between(
            name,
            rules::INSTANCE_NAME_MIN_CHARS,
            rules::INSTANCE_NAME_MAX_CHARS,
        ),
        field,
        format!(
            "Instance name must be between {} and {} characters",
            rules::INSTANCE_NAME_MIN_CHARS,
            rules::INSTANCE_NAME_MAX_CHARS
        ),
    );
    v.check(
        only_chars(name, rules::INSTANCE_NAME_EXTRA_CHARS),
        field,
        "Instance name must contain only letters, digits, hyphens, underscores, and dots",
    );
}

fn unknown_value<'a>(what: &str, value: &str, valid: impl Iterator<Item = &'a String>) -> String {
    let valid: Vec<&str> = valid.map(String::as_str).collect();
    format!(
        "Unknown {what} '{value}'. Valid values: {}",
        valid.join(", ")
    )
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

/// The hourly billing breakdown of an instance, rounded for display as the docs show it.
pub fn billing_of(
    config: &Config,
    model: &GpuModelConfig,
    count: u32,
    (os_size_gb, os_type): (u32, &str),
    data_volumes: &[VolumeRow],
    currency: Currency,
) -> InstanceBilling {
    let gpu = price(&model.prices, currency) * Decimal::from(count);
    let os = volume_rate(config, os_type, os_size_gb, currency);
    let data: Vec<(Decimal, DataVolumeCharge)> = data_volumes
        .iter()
        .map(|v| {
            let rate = volume_rate(config, &v.volume_type, v.size_gb as u32, currency);
            let charge = DataVolumeCharge {
                volume_id: v.id.clone(),
                name: v.name.clone(),
                size_gb: v.size_gb as u32,
                volume_type: v.volume_type.clone(),
                hourly_rate: Amount(display_rate(rate)),
            };
            (rate, charge)
        })
        .collect();
    let data_total: Decimal = data.iter().map(|(rate, _)| *rate).sum();
    InstanceBilling {
        breakdown: BillingBreakdown {
            compute: ComputeCharge {
                gpu: GpuCharge {
                    model: model.name.clone(),
                    count,
                    hourly_rate: Amount(display_rate(gpu)),
                },
            },
            storage: StorageCharge {
                os_volume: VolumeCharge {
                    size_gb: os_size_gb,
                    volume_type: os_type.to_string(),
                    hourly_rate: Amount(display_rate(os)),
                },
                data_volumes: data.into_iter().map(|(_, charge)| charge).collect(),
                data_volumes_total: Amount(display_rate(data_total)),
            },
        },
        total_hourly_rate: Amount(display_rate(gpu + os + data_total)),
        currency,
    }
}

/// Hourly rate of a volume of `volume_type`, exact.
fn volume_rate(config: &Config, volume_type: &str, size_gb: u32, currency: Currency) -> Decimal {
    crate::storage::volumes::hourly_rate(config, volume_type, size_gb, currency)
}

fn specs_of_parts(model: &str, count: u32, ram_gb: i64, vcpus: i64, storage_gb: u32) -> Specs {
    Specs {
        gpu_type: model.to_string(),
        gpu_count: count,
        ram_gb: ram_gb as u32,
        vcpus: vcpus as u32,
        storage_gb,
    }
}

/// `barrack-h100s-x7k`: a short host-style name from the model, with a random tail.
fn vm_name(model: &str) -> String {
    let mut parts = model.split('-').map(str::to_lowercase);
    let mut slug = parts.next().unwrap_or_default();
    if let Some(c) = parts.next().and_then(|p| p.chars().next()) {
        slug.push(c);
    }
    let mut rng = rand::thread_rng();
    let tail: String = (0..3)
        .map(|_| (b'a' + rng.gen_range(0..26)) as char)
        .collect();
    format!("barrack-{slug}-{tail}")
}

/// The address an instance shows once placed: its public one (taken from the pool at deploy or restore)
/// or its private one.
pub(crate) async fn instance_address(
    tx: &mut Tx,
    row: &InstanceRow,
    now: i64,
) -> Result<Option<String>> {
    if row.public_ip {
        Ok(public_ips::assign(tx, &row.region, &row.id, now).await?)
    } else {
        Ok(Some(private_address(&row.id)))
    }
}

/// The instance's address on its private network, stable for its id.
pub fn private_address(id: &str) -> String {
    let hash = id.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    format!(
        "10.{}.{}.{}",
        (hash >> 16) & 0xff,
        (hash >> 8) & 0xff,
        (hash & 0xff).clamp(2, 254)
    )
}

/// Holds a custom image a deploy boots from until the deploy's transaction ends (409 when it changed
/// since it was read, e.g. deleted).
async fn hold_image(tx: &mut Tx, image: &ImageRow) -> Result<()> {
    if images::hold(tx, &image.id, image.generation).await? {
        return Ok(());
    }
    Err(Error::conflict(
        "CONFLICT",
        format!("Image '{}' changed while deploying; try again", image.name),
    ))
}

async fn insert_rule(tx: &mut Tx, instance_id: &str, rule: &ValidRule, now: i64) -> Result<String> {
    let id = new_id(IdKind::Rule);
    barrack_store::instances::insert_rule(
        tx,
        &id,
        instance_id,
        (&rule.direction, &rule.ethertype, rule.protocol.as_deref()),
        (
            rule.port_range_min.map(i64::from),
            rule.port_range_max.map(i64::from),
        ),
        rule.remote_ip_prefix.as_deref(),
        now,
    )
    .await?;
    Ok(id)
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_event(
    config: &Config,
    tx: &mut Tx,
    row: &InstanceRow,
    from: Option<InstanceState>,
    to: InstanceState,
    actor: &str,
    cause: &str,
    now: i64,
) -> Result<()> {
    record_event_at(config, tx, row, from, to, actor, cause, row.generation, now).await
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_event_at(
    config: &Config,
    tx: &mut Tx,
    row: &InstanceRow,
    from: Option<InstanceState>,
    to: InstanceState,
    actor: &str,
    cause: &str,
    sequence: i64,
    now: i64,
) -> Result<()> {
    let event = EventRow {
        id: format!("evt-{}", crate::platform::ids::random_alphanumeric(16)),
        account_id: row.account_id.clone(),
        resource_type: "instance".into(),
        resource_id: row.id.clone(),
        kind: if from.is_none() {
            "created"
        } else {
            "status_changed"
        }
        .into(),
        from_status: from.map(|s| s.as_str().to_string()),
        to_status: Some(to.as_str().to_string()),
        actor: actor.to_string(),
        cause: cause.to_string(),
        sequence,
        created_at: now,
    };
    events::insert(&mut *tx, &event).await?;
    // A new instance in a state billed nothing has no periods to open or close.
    if from.is_none() && to.billing() == BillingClass::Free {
        return Ok(());
    }
    // Billing follows every state change, in the same transaction.
    crate::billing::sync_instance(tx, config, &row.id, now).await
}

fn event_view(row: EventRow) -> Event {
    Event {
        id: row.id,
        resource_type: row.resource_type,
        resource_id: row.resource_id,
        kind: row.kind,
        from_status: row.from_status,
        to_status: row.to_status,
        actor: row.actor,
        cause: row.cause,
        created_at: format_ms(row.created_at),
    }
}

#[async_trait::async_trait]
impl Depletion for InstanceService {
    async fn hibernate_for_depletion(&self, account_id: &str, currency: Currency) -> Result<usize> {
        InstanceService::hibernate_for_depletion(self, account_id, currency).await
    }
}
