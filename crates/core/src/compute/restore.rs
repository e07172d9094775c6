//! Restoring a snapshot: a new instance with the snapshot's specs, booted from a copy of its disk. It
//! belongs here, not in storage, because it creates an instance; its route is under `/api/snapshots/`.

use barrack_api::instances::DeployedInstance;
use barrack_api::snapshots::RestoreSnapshotRequest;
use barrack_store::instances::InstanceRow;
use barrack_store::snapshots::{self, SnapshotRow};
use rust_decimal::Decimal;

use crate::accounts::{Caller, actor, missing_profile_fields};
use crate::billing::balance_guard::require_balance;
use crate::billing::commitments::require_commitment;
use crate::catalog::price;
use crate::compute::instances::{
    InstanceService, JobAction, check_instance_name, record_event, vm_name, volume_rate,
};
use crate::platform::countries;
use crate::platform::idempotency;
use crate::platform::ids::{IdKind, new_id};
use crate::platform::lifecycle::InstanceState;
use crate::platform::validate::Validator;
use crate::storage::snapshots::{SnapshotService, SnapshotState, default_restore_name};
use crate::{Error, Result};

impl InstanceService {
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
                    "The snapshot is in {}, a region of the {} tier; your API key or session acts in the {} tier",
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
        let mut row = InstanceRow {
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
            ssh_port: None,
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
            None,
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
        if !self.place_new(&mut tx, &mut row, now).await? {
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
        let deployed = self.deployed(row, model, &[], currency, now);
        idempotency::commit(tx, &deployed).await?;
        self.context.work.notify_one();
        Ok(deployed)
    }
}
