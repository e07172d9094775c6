//! Finishing instance operations: the job handler that calls the compute driver and records the outcome,
//! and the reconciler that notices instances the driver lost.

use std::sync::Arc;

use async_trait::async_trait;
use barrack_compute::{BootDisk, DriverError, InstanceSpec, Placement, PowerState, Readiness};
use barrack_store::instances::{self, InstanceChange, InstanceRow, MachineRow, MachineSweep};
use barrack_store::jobs::JobRow;
use barrack_store::{Tx, capacity, public_ips};

use crate::catalog::recognize_capacity;
use crate::compute::instances::{
    InstanceJob, InstanceService, JobAction, instance_address, parse_state, record_event_at,
};
use crate::platform::jobs::{JobHandler, Outcome, complete_in};
use crate::platform::lifecycle::{InstanceState, power_on_record};
use crate::{Context, Error, Result};

const SYSTEM: &str = "system";

/// How many times as long as each page of the reconciler's sweep took it rests before the next.
const SWEEP_REST: u32 = 4;

pub struct InstanceWorker {
    context: Arc<Context>,
}

impl InstanceWorker {
    pub fn new(context: Arc<Context>) -> InstanceWorker {
        InstanceWorker { context }
    }

    fn spec(row: &InstanceRow) -> InstanceSpec {
        InstanceSpec {
            id: row.id.clone(),
            name: row.name.clone(),
            region: row.region.clone(),
            gpu_model: row.gpu_model.clone(),
            gpu_count: row.gpu_count as u32,
            vcpus: row.vcpus as u32,
            ram_gb: row.ram_gb as u32,
            boot: match (&row.boot_volume_id, &row.source_snapshot_id) {
                (Some(volume_id), _) => BootDisk::Volume {
                    volume_id: volume_id.clone(),
                },
                // Restored from a snapshot, or booted from a custom image: a copy of the snapshot's disk.
                (None, Some(snapshot_id)) => BootDisk::Snapshot {
                    snapshot_id: snapshot_id.clone(),
                    size_gb: row.storage_gb as u32,
                },
                (None, None) => BootDisk::Image {
                    image: row.operating_system.clone().unwrap_or_default(),
                    size_gb: row.storage_gb as u32,
                },
            },
            ssh_public_keys: row.ssh_public_key.iter().cloned().collect(),
            cloud_init: row.cloud_init.clone(),
            startup_script: row.startup_script.clone(),
            volume_ids: vec![],
        }
    }

    /// The data volumes a new machine boots with: those its deploy attached (existing ones, and new
    /// ones once made). A real machine cannot boot with a disk that does not exist yet, so its creation
    /// waits (is retried) while one of them is still being made; the simulator attaches nothing.
    async fn data_volumes_at_boot(&self, row: &InstanceRow) -> Result<Vec<String>, DriverError> {
        // Not a read on every simulated creation (the provisioning path) for a list it ignores.
        if self.context.driver.is_simulated() {
            return Ok(Vec::new());
        }
        let volumes = self
            .context
            .store
            .instance_volumes(&row.id)
            .await
            .map_err(|e| DriverError::Transient(e.to_string()))?;
        let data = volumes
            .into_iter()
            .filter(|v| row.boot_volume_id.as_deref() != Some(v.id.as_str()));
        let mut ids = Vec::new();
        for volume in data {
            match volume.status.as_str() {
                "in-use" => ids.push(volume.id),
                "creating" => {
                    return Err(DriverError::Transient(format!(
                        "volume {} is still being made",
                        volume.id
                    )));
                }
                _ => {}
            }
        }
        Ok(ids)
    }

    /// Tells the driver what the database says about the instance (see `ComputeDriver::recognize`).
    fn recognize(&self, row: &InstanceRow) {
        self.recognize_machine(
            &row.id,
            &row.status,
            &row.region,
            row.gpu_count,
            row.host.as_deref(),
        );
    }

    fn recognize_machine(
        &self,
        id: &str,
        status: &str,
        region: &str,
        gpu_count: i64,
        host: Option<&str>,
    ) {
        if let Some(power) = power_on_record(status, host.is_some()) {
            self.context
                .driver
                .recognize(id, region, gpu_count as u32, host, power);
        }
    }

    async fn call_driver(
        &self,
        row: &InstanceRow,
        action: JobAction,
    ) -> Result<Option<Placement>, DriverError> {
        recognize_capacity(&self.context)
            .await
            .map_err(|e| DriverError::Transient(e.to_string()))?;
        self.recognize(row);
        let driver = &self.context.driver;
        match action {
            JobAction::Create => {
                if let Some(snapshot_id) = &row.source_snapshot_id {
                    crate::storage::snapshots::recognize_disk(&self.context, snapshot_id)
                        .await
                        .map_err(|e| DriverError::Transient(e.to_string()))?;
                }
                let mut spec = Self::spec(row);
                spec.volume_ids = self.data_volumes_at_boot(row).await?;
                self.place(row, || driver.create_instance(&spec))
                    .await
                    .map(Some)
            }
            JobAction::Restore => {
                let spec = Self::spec(row);
                self.place(row, || driver.restore_instance(&spec))
                    .await
                    .map(Some)
            }
            JobAction::Start => driver.start_instance(&row.id).await.map(|_| None),
            JobAction::Stop => driver.stop_instance(&row.id).await.map(|_| None),
            JobAction::Reboot => driver.reboot_instance(&row.id).await.map(|_| None),
            JobAction::Hibernate => driver.hibernate_instance(&row.id).await.map(|_| None),
            JobAction::Delete => driver.delete_instance(&row.id).await.map(|_| None),
        }
    }

    /// A placement (`placing` asks the driver), tried again once when it found no room and machines of
    /// instances gone elsewhere were dropped ([`Self::forget_dead_machines`]).
    async fn place<F, P>(&self, row: &InstanceRow, placing: F) -> Result<Placement, DriverError>
    where
        F: Fn() -> P,
        P: std::future::Future<Output = Result<Placement, DriverError>>,
    {
        match placing().await {
            Err(DriverError::NoCapacity(_)) if self.forget_dead_machines(row).await? => {
                placing().await
            }
            other => other,
        }
    }

    /// A placement found no room: the machines this process holds on the model's hosts in the region for
    /// instances the database no longer has live (deleted or failed through another replica, whose
    /// machines live in that replica's memory) are dropped. Whether any was, so that placing again may
    /// succeed.
    async fn forget_dead_machines(&self, row: &InstanceRow) -> Result<bool, DriverError> {
        let driver = &self.context.driver;
        let placed = driver.placed_machines(&row.region, &row.gpu_model);
        if placed.is_empty() {
            return Ok(false);
        }
        let live = self
            .context
            .store
            .live_instance_ids(&placed)
            .await
            .map_err(|e| DriverError::Transient(e.to_string()))?;
        let dead: Vec<String> = placed.into_iter().filter(|id| !live.contains(id)).collect();
        if dead.is_empty() {
            return Ok(false);
        }
        tracing::info!(
            region = %row.region,
            gpu_model = %row.gpu_model,
            machines = dead.len(),
            "machines of instances gone elsewhere dropped"
        );
        driver.forget(&dead);
        Ok(true)
    }

    /// Records a finished operation: the stable state, placement and address, and what is given back,
    /// and marks its job done in the same transaction. False when the instance changed meanwhile.
    async fn complete(
        &self,
        job: &JobRow,
        row: &InstanceRow,
        action: JobAction,
        placement: Option<Placement>,
    ) -> Result<bool> {
        // Guests reached through a forwarded port (user-mode networking) have no address of their own:
        // the forwarding host and port are where clients connect.
        let forwarded = if matches!(action, JobAction::Create | JobAction::Restore) {
            self.context
                .driver
                .ssh_endpoint(&row.id)
                .await
                .map_err(|e| Error::internal(e.to_string()))?
                .filter(|endpoint| endpoint.port != 22)
        } else {
            None
        };
        let now = self.context.clock.now_ms();
        let mut tx = self.context.store.begin().await?;
        let mut change = InstanceChange::default();
        let to = match action {
            JobAction::Create | JobAction::Restore => {
                change.host = Some(placement.map(|p| p.host));
                match forwarded {
                    Some(endpoint) => {
                        change.ip_address = Some(Some(endpoint.host));
                        change.ssh_port = Some(Some(i64::from(endpoint.port)));
                    }
                    None => {
                        let address =
                            instance_address(&mut tx, &self.context.config, row, now).await?;
                        change.ip_address = Some(address);
                        change.ssh_port = Some(None);
                    }
                }
                InstanceState::Active
            }
            JobAction::Start | JobAction::Reboot => InstanceState::Active,
            JobAction::Stop => InstanceState::Shutoff,
            JobAction::Hibernate => {
                release(&mut tx, row, &mut change, now).await?;
                InstanceState::Hibernated
            }
            JobAction::Delete => {
                release(&mut tx, row, &mut change, now).await?;
                change.deleted_at = Some(now);
                InstanceState::Deleted
            }
        };
        change.status = Some(to.as_str().into());
        if !instances::update(&mut tx, &row.id, row.generation, &change, now).await? {
            return Ok(false);
        }
        if action == JobAction::Delete {
            crate::storage::volume_worker::release_volumes_of_deleted(
                &self.context.config,
                &mut tx,
                &row.id,
                now,
            )
            .await?;
        }
        if matches!(action, JobAction::Create | JobAction::Restore) {
            // A new machine: program its security rules (its own and its firewalls').
            let attempts = i64::from(self.context.config.jobs.max_attempts);
            crate::network::firewalls::program_new_machine(&mut tx, &row.id, attempts, now).await?;
        }
        let from = parse_state(&row.status)?;
        let cause = format!("{} completed", action_name(action));
        record_event_at(
            &self.context.config,
            &mut tx,
            row,
            Some(from),
            to,
            SYSTEM,
            &cause,
            row.generation + 1,
            now,
        )
        .await?;
        complete_in(&mut tx, job, now).await?;
        tx.commit().await.map_err(Error::internal)?;
        if matches!(
            action,
            JobAction::Create | JobAction::Start | JobAction::Reboot | JobAction::Restore
        ) && let Err(e) = self.hibernate_if_depleted(row).await
        {
            // The operation is recorded; the meter's next run hibernates it instead.
            tracing::warn!(instance = %row.id, error = %e, "depletion check after an operation failed");
        }
        Ok(true)
    }

    /// An instance new or back in a billed state on an account whose credit ran out while it was on its way
    /// (the depletion hibernated the rest, and passed over it in its transition) hibernates at once,
    /// instead of running until the next charged minute shows the account empty.
    async fn hibernate_if_depleted(&self, row: &InstanceRow) -> Result<()> {
        let Some(currency) = barrack_api::Currency::parse(&row.currency) else {
            return Ok(());
        };
        let balance = self
            .context
            .store
            .balance(&row.account_id, currency.as_str())
            .await?;
        if balance <= 0 {
            InstanceService::new(self.context.clone())
                .hibernate_for_depletion(&row.account_id, currency)
                .await?;
        }
        Ok(())
    }

    /// Puts the instance in ERROR with `reason`, giving back its GPUs and address.
    pub async fn fail(&self, row: &InstanceRow, reason: &str) -> Result<bool> {
        let now = self.context.clock.now_ms();
        let mut tx = self.context.store.begin().await?;
        let mut change = InstanceChange {
            status: Some(InstanceState::Error.as_str().into()),
            status_reason: Some(Some(reason.to_string())),
            ..Default::default()
        };
        release(&mut tx, row, &mut change, now).await?;
        if !instances::update(&mut tx, &row.id, row.generation, &change, now).await? {
            return Ok(false);
        }
        let from = parse_state(&row.status)?;
        record_event_at(
            &self.context.config,
            &mut tx,
            row,
            Some(from),
            InstanceState::Error,
            SYSTEM,
            reason,
            row.generation + 1,
            now,
        )
        .await?;
        tx.commit().await.map_err(Error::internal)?;
        Ok(true)
    }

    /// Tells the driver about every instance on record, before any work runs: after a restart the
    /// simulator learns of the machines that kept running, before new placements could collide with them.
    /// Reads only what the driver is told ([`MachineRow`]), so a million instances take seconds.
    pub async fn recognize_all(&self) -> Result<()> {
        let live = [
            "ACTIVE",
            "STARTING",
            "STOPPING",
            "SHUTOFF",
            "REBOOTING",
            "HIBERNATING",
            "HIBERNATED",
            "RESTORING",
            "DELETING",
        ];
        recognize_capacity(&self.context).await?;
        let mut sweep = MachineSweep::new(&live);
        while let Some(page) = sweep.next(&self.context.store).await? {
            for row in &page {
                self.recognize_machine(
                    &row.id,
                    &row.status,
                    &row.region,
                    row.gpu_count,
                    row.host.as_deref(),
                );
                // As in the reconciler's sweep: the thread is given back every so many rows.
                tokio::task::coop::consume_budget().await;
            }
        }
        Ok(())
    }

    /// Compares what the driver sees with what the database says for resting instances: moves the ones
    /// the driver lost (host failure, vanished VM) to ERROR, and running ones found powered off to
    /// SHUTOFF. Returns how many it changed.
    pub async fn reconcile(&self) -> Result<usize> {
        let mut changed = 0;
        recognize_capacity(&self.context).await?;
        crate::catalog::follow_lost_hosts(&self.context).await?;
        let mut sweep = MachineSweep::new(&["ACTIVE", "SHUTOFF"]);
        loop {
            let began = tokio::time::Instant::now();
            let Some(page) = sweep.next(&self.context.store).await? else {
                break;
            };
            for row in page {
                changed += usize::from(self.reconcile_one(&row).await?);
                // A driver that answers at once (the simulator) never yields: on PostgreSQL, where the
                // sweep shares the runtime that answers requests, a page would hold one of its threads
                // for milliseconds; this gives the thread back every so many rows.
                tokio::task::coop::consume_budget().await;
            }
            // Rests four times as long as the page took before reading the next, so a sweep over a
            // million instances takes at most a fifth of the time from the requests served meanwhile
            // (where a lost machine is then seen later); one of up to a page never rests.
            if !sweep.is_done() {
                tokio::time::sleep(began.elapsed() * SWEEP_REST).await;
            }
        }
        Ok(changed)
    }

    /// Moves one resting instance to ERROR when its machine is failed or gone, and an `ACTIVE` one to
    /// `SHUTOFF` when its machine is found powered off; whether it did. Only such an instance is read
    /// whole.
    async fn reconcile_one(&self, machine: &MachineRow) -> Result<bool> {
        self.recognize_machine(
            &machine.id,
            &machine.status,
            &machine.region,
            machine.gpu_count,
            machine.host.as_deref(),
        );
        let observed = match self.context.driver.observe_instance(&machine.id).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(instance = %machine.id, error = %e, "could not observe instance");
                return Ok(false);
            }
        };
        let reason = match observed.state {
            PowerState::Failed(reason) => reason,
            PowerState::Missing => "the instance is gone from its host".to_string(),
            PowerState::Stopped if machine.status == InstanceState::Active.as_str() => {
                return self.found_powered_off(machine).await;
            }
            _ => return Ok(false),
        };
        // The row as it is now: the swept page may be older than a change made since, which the
        // generation check in `fail` then refuses.
        let Some(row) = self.context.store.instance_by_id(&machine.id).await? else {
            return Ok(false);
        };
        if row.status != machine.status {
            return Ok(false);
        }
        let failed = self.fail(&row, &reason).await?;
        if failed {
            tracing::warn!(instance = %row.id, %reason, "instance lost; marked ERROR");
        }
        Ok(failed)
    }
}

impl InstanceWorker {
    /// An `ACTIVE` instance whose machine stopped without being asked to (shut down from inside the
    /// guest, or by someone on its host) moves to `SHUTOFF`, as a stop would take it: it keeps its host,
    /// GPUs and address, its billing follows the new state, and a start brings it back. Conditional on
    /// the generation read before a second look at the machine: every operation of the platform that
    /// stops a machine changes the instance first, so a stop under way is never taken for one.
    async fn found_powered_off(&self, machine: &MachineRow) -> Result<bool> {
        let Some(row) = self.context.store.instance_by_id(&machine.id).await? else {
            return Ok(false);
        };
        if row.status != InstanceState::Active.as_str() {
            return Ok(false);
        }
        match self.context.driver.observe_instance(&row.id).await {
            Ok(observed) if observed.state == PowerState::Stopped => {}
            _ => return Ok(false),
        }
        let reason = "found powered off: the machine stopped without a stop through the platform \
                      (shut down from inside, or on its host)";
        let now = self.context.clock.now_ms();
        let mut tx = self.context.store.begin().await?;
        let change = InstanceChange {
            status: Some(InstanceState::Shutoff.as_str().into()),
            status_reason: Some(Some(reason.to_string())),
            ..Default::default()
        };
        if !instances::update(&mut tx, &row.id, row.generation, &change, now).await? {
            return Ok(false);
        }
        record_event_at(
            &self.context.config,
            &mut tx,
            &row,
            Some(InstanceState::Active),
            InstanceState::Shutoff,
            SYSTEM,
            reason,
            row.generation + 1,
            now,
        )
        .await?;
        tx.commit().await.map_err(Error::internal)?;
        tracing::warn!(instance = %row.id, "instance found powered off; marked SHUTOFF");
        Ok(true)
    }
}

/// Gives back GPUs and the public address an instance holds, and clears its placement.
async fn release(
    tx: &mut Tx,
    row: &InstanceRow,
    change: &mut InstanceChange,
    now: i64,
) -> Result<()> {
    if row.gpus_allocated > 0 {
        capacity::release(tx, &row.region, &row.gpu_model, row.gpus_allocated, now).await?;
    }
    public_ips::release(tx, &row.id).await?;
    change.gpus_allocated = Some(0);
    change.host = Some(None);
    change.ip_address = Some(None);
    change.ssh_port = Some(None);
    Ok(())
}

fn action_name(action: JobAction) -> &'static str {
    match action {
        JobAction::Create => "create",
        JobAction::Start => "start",
        JobAction::Stop => "stop",
        JobAction::Reboot => "reboot",
        JobAction::Hibernate => "hibernate",
        JobAction::Restore => "restore",
        JobAction::Delete => "delete",
    }
}

/// Whether the action leaves a machine booting when the driver call returns: its job then watches it
/// come up, without holding a worker slot in between.
fn boots(action: JobAction) -> bool {
    matches!(
        action,
        JobAction::Create | JobAction::Start | JobAction::Reboot | JobAction::Restore
    )
}

/// The reason an instance fails with, after the driver gave up or retries ran out.
fn failure(action: JobAction, error: &DriverError) -> String {
    let detail = match error {
        DriverError::Transient(message) | DriverError::Permanent(message) => message.clone(),
        DriverError::NoCapacity(_) => error.to_string(),
    };
    format!("{} failed: {detail}", action_name(action))
}

/// How a look at a machine the driver already started came out.
enum Look {
    /// Up: finish the action (with the host it runs on, for placements).
    Ready(Option<Placement>),
    Booting,
    /// Not running and not failed (the driver lost track of it: another server's simulator, or a
    /// restart): ask the driver again; every call is idempotent.
    Resubmit,
    Failed(String),
}

impl InstanceWorker {
    async fn look(&self, row: &InstanceRow, action: JobAction) -> Result<Look, DriverError> {
        let driver = &self.context.driver;
        match driver.observe_readiness(&row.id).await? {
            Readiness::Booting => Ok(Look::Booting),
            Readiness::Ready => {
                if matches!(action, JobAction::Create | JobAction::Restore) {
                    let observed = driver.observe_instance(&row.id).await?;
                    Ok(Look::Ready(observed.host.map(|host| Placement { host })))
                } else {
                    Ok(Look::Ready(None))
                }
            }
            Readiness::NotRunning => match driver.observe_instance(&row.id).await?.state {
                PowerState::Failed(reason) => Ok(Look::Failed(reason)),
                _ => Ok(Look::Resubmit),
            },
        }
    }

    /// Records the outcome of a driver error: retried while attempts remain, else the instance fails.
    async fn driver_failed(
        &self,
        job: &JobRow,
        row: &InstanceRow,
        action: JobAction,
        error: DriverError,
    ) -> Outcome {
        match error {
            // No room on any host although the stock ledger had some: the scheduler may catch up, so retry.
            DriverError::Transient(message) | DriverError::NoCapacity(message)
                if job.attempts < job.max_attempts =>
            {
                Outcome::Retry(message)
            }
            error => self.give_up(row, failure(action, &error)).await,
        }
    }

    async fn give_up(&self, row: &InstanceRow, reason: String) -> Outcome {
        match self.fail(row, &reason).await {
            Ok(_) => Outcome::Fail(reason),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    /// Comes back to a booting machine when the driver expects it up, or else after the observation
    /// interval; gives up once it has had its boot timeout.
    async fn wait_for_boot(&self, row: &InstanceRow, payload: InstanceJob) -> Outcome {
        let jobs = &self.context.config.jobs;
        let interval = jobs.observe_interval_ms.max(1);
        let timeout_ms = jobs.boot_timeout_seconds.saturating_mul(1000);
        let looks = (timeout_ms / interval).max(1);
        if u64::from(payload.observations) > looks {
            let reason = format!(
                "{} failed: the machine did not come up within {} s",
                action_name(payload.action),
                jobs.boot_timeout_seconds
            );
            return self.give_up(row, reason).await;
        }
        let wait_ms = match self.context.driver.boot_remaining(&row.id) {
            Some(left) => (left.as_millis() as u64).clamp(1, timeout_ms.max(1)),
            None => interval,
        };
        // A wait is counted in intervals, so that the timeout holds however long each wait is.
        let payload = InstanceJob {
            observations: payload
                .observations
                .saturating_add(u32::try_from(wait_ms / interval).unwrap_or(u32::MAX).max(1)),
            ..payload
        };
        match serde_json::to_string(&payload) {
            Ok(payload) => Outcome::Wait {
                after_ms: wait_ms as i64,
                payload,
            },
            Err(e) => Outcome::Fail(e.to_string()),
        }
    }

    /// Finishes the action and records how that went.
    async fn finish(
        &self,
        job: &JobRow,
        row: &InstanceRow,
        action: JobAction,
        placement: Option<Placement>,
    ) -> Outcome {
        match self.complete(job, row, action, placement).await {
            Ok(true) => Outcome::Completed,
            // The instance moved on meanwhile: nothing of this job is left to do.
            Ok(false) => Outcome::Done,
            Err(Error::Internal(detail)) => Outcome::Retry(detail),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

#[async_trait]
impl JobHandler for InstanceWorker {
    async fn run(&self, job: &JobRow) -> Outcome {
        let Ok(payload) = serde_json::from_str::<InstanceJob>(&job.payload) else {
            return Outcome::Fail(format!("unreadable instance job payload: {}", job.payload));
        };
        let row = match self.context.store.instance_by_id(&job.resource_id).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                return Outcome::Fail(format!("instance {} does not exist", job.resource_id));
            }
            Err(e) => return e.into(),
        };
        if row.generation != payload.generation {
            // The instance moved on (failed, or was changed by an operator): this job is obsolete.
            return Outcome::Done;
        }
        let action = payload.action;
        if boots(action) && payload.observations > 0 {
            // The driver accepted the action on an earlier run: is the machine up yet?
            if let Err(e) = recognize_capacity(&self.context).await {
                return Outcome::Retry(e.to_string());
            }
            self.recognize(&row);
            match self.look(&row, action).await {
                Ok(Look::Ready(placement)) => {
                    return self.finish(job, &row, action, placement).await;
                }
                Ok(Look::Booting) => return self.wait_for_boot(&row, payload).await,
                Ok(Look::Failed(reason)) => {
                    return self
                        .give_up(&row, format!("{} failed: {reason}", action_name(action)))
                        .await;
                }
                Ok(Look::Resubmit) => {}
                Err(e) => return self.driver_failed(job, &row, action, e).await,
            }
        }
        let placement = match self.call_driver(&row, action).await {
            Ok(placement) => placement,
            Err(e) => return self.driver_failed(job, &row, action, e).await,
        };
        if !boots(action) {
            return self.finish(job, &row, action, placement).await;
        }
        // Accepted: finish now if the machine is up already, else come back without holding the slot.
        match self.context.driver.observe_readiness(&row.id).await {
            Ok(Readiness::Ready) => self.finish(job, &row, action, placement).await,
            Ok(_) => self.wait_for_boot(&row, payload).await,
            Err(e) => self.driver_failed(job, &row, action, e).await,
        }
    }

    /// Attempts that all ended without an outcome: the instance fails (`ERROR`), as on a permanent
    /// driver error.
    async fn abandon(&self, job: &JobRow, reason: &str) -> Outcome {
        let Ok(payload) = serde_json::from_str::<InstanceJob>(&job.payload) else {
            return Outcome::Fail(reason.to_string());
        };
        let reason = format!("{} failed: {reason}", action_name(payload.action));
        match self.context.store.instance_by_id(&job.resource_id).await {
            Ok(Some(row)) if row.generation == payload.generation => {
                self.give_up(&row, reason).await
            }
            Ok(_) => Outcome::Fail(reason),
            Err(e) => e.into(),
        }
    }
}
