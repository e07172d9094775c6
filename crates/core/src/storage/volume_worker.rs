//! Finishing volume operations: the job handler that calls the compute driver and records the outcome,
//! and the reconciler that ends the attachments of deleted instances.

use std::sync::Arc;

use async_trait::async_trait;
use barrack_compute::{DriverError, PowerState, VolumeSource};
use barrack_store::Tx;
use barrack_store::instances;
use barrack_store::jobs::JobRow;
use barrack_store::volumes::{self, VolumeChange, VolumeRow};

use crate::platform::config::Config;
use crate::platform::jobs::{JobHandler, Outcome, complete_in};
use crate::platform::lifecycle::InstanceState;
use crate::storage::volumes::{
    VolumeJob, VolumeJobAction, VolumeState, parse_state, record_event, resting_state,
};
use crate::{Context, Error, Result};

const SYSTEM: &str = "system";

pub struct VolumeWorker {
    context: Arc<Context>,
}

impl VolumeWorker {
    pub fn new(context: Arc<Context>) -> VolumeWorker {
        VolumeWorker { context }
    }

    /// Tells the driver what the database says about a volume (see `ComputeDriver::recognize_volume`);
    /// a volume still being created has nothing to tell.
    fn recognize(&self, row: &VolumeRow) {
        let attached_to = match VolumeState::parse(&row.status) {
            None | Some(VolumeState::Creating | VolumeState::Deleted) => return,
            // Not attached until the attach call makes it so.
            Some(VolumeState::Attaching) => None,
            Some(_) => row.instance_id.as_deref(),
        };
        self.context
            .driver
            .recognize_volume(&row.id, &row.region, row.size_gb as u32, attached_to);
    }

    /// Tells the driver about the instance a volume is attached to or detached from, when it is running.
    async fn recognize_instance(&self, id: &str) -> Result<Option<String>> {
        let Some(instance) = self.context.store.instance_by_id(id).await? else {
            return Ok(None);
        };
        if instance.status == InstanceState::Active.as_str()
            && let Some(host) = &instance.host
        {
            self.context.driver.recognize(
                &instance.id,
                &instance.region,
                instance.gpu_count as u32,
                Some(host),
                PowerState::Running.into(),
            );
        }
        Ok(Some(instance.status))
    }

    async fn call_driver(&self, row: &VolumeRow, job: &VolumeJob) -> Result<(), DriverError> {
        let driver = &self.context.driver;
        let store_error = |e: barrack_store::StoreError| DriverError::Transient(e.to_string());
        self.recognize(row);
        match job.action {
            VolumeJobAction::Create => {
                // A bootable volume holds its image's disk.
                let source = match &row.image_name {
                    Some(image) if row.bootable => VolumeSource::Image {
                        image: image.clone(),
                    },
                    _ => VolumeSource::Empty,
                };
                driver
                    .create_volume(&row.id, &row.region, row.size_gb as u32, &source)
                    .await
            }
            VolumeJobAction::Clone => {
                let source = row.source_volume_id.as_deref().ok_or_else(|| {
                    DriverError::Permanent(format!("volume {} has no source to clone", row.id))
                })?;
                match self
                    .context
                    .store
                    .volume_by_id(source)
                    .await
                    .map_err(store_error)?
                {
                    Some(source) => self.recognize(&source),
                    None => {
                        return Err(DriverError::Permanent(format!(
                            "source volume {source} not found"
                        )));
                    }
                }
                let source = VolumeSource::Volume {
                    volume_id: source.to_string(),
                };
                driver
                    .create_volume(&row.id, &row.region, row.size_gb as u32, &source)
                    .await
            }
            VolumeJobAction::Resize => {
                let size = job.size_gb.ok_or_else(|| {
                    DriverError::Permanent("resize job without a size".to_string())
                })?;
                driver.resize_volume(&row.id, size).await
            }
            VolumeJobAction::Attach | VolumeJobAction::Detach => {
                let instance = row.instance_id.as_deref().ok_or_else(|| {
                    DriverError::Permanent(format!("volume {} has no instance", row.id))
                })?;
                let status = self
                    .recognize_instance(instance)
                    .await
                    .map_err(|e| DriverError::Transient(e.to_string()))?;
                if job.action == VolumeJobAction::Detach {
                    return driver.detach_volume(instance, &row.id).await;
                }
                match status.as_deref() {
                    Some("ACTIVE") => driver.attach_volume(instance, &row.id).await,
                    Some(other) => Err(DriverError::Permanent(format!(
                        "instance {instance} is {other}; volumes attach only to ACTIVE instances"
                    ))),
                    None => Err(DriverError::Permanent(format!(
                        "instance {instance} not found"
                    ))),
                }
            }
            VolumeJobAction::Delete => driver.delete_volume(&row.id).await,
        }
    }

    /// Records a finished operation: the resting state, the new size or attachment, for a clone the
    /// source's return to rest, and the job done; all in one transaction, conditional on the generation
    /// the job was for (`Done` when the volume moved on: the runner marks the job).
    async fn complete(
        &self,
        row: &VolumeRow,
        job: &VolumeJob,
        claimed: &JobRow,
    ) -> Result<Outcome> {
        let now = self.context.clock.now_ms();
        let mut tx = self.context.store.begin().await?;
        let mut change = VolumeChange {
            status_reason: Some(None),
            ..Default::default()
        };
        let to = match job.action {
            VolumeJobAction::Create | VolumeJobAction::Clone => resting_state(row),
            VolumeJobAction::Resize => {
                change.size_gb = job.size_gb.map(i64::from);
                resting_state(row)
            }
            VolumeJobAction::Attach => VolumeState::InUse,
            VolumeJobAction::Detach => {
                change.instance_id = Some(None);
                VolumeState::Available
            }
            VolumeJobAction::Delete => {
                change.deleted_at = Some(now);
                VolumeState::Deleted
            }
        };
        change.status = Some(to.as_str().into());
        if !volumes::update(&mut tx, &row.id, row.generation, &change, now).await? {
            return Ok(Outcome::Done);
        }
        let from = parse_state(&row.status)?;
        let cause = format!("{} completed", job.action.as_str());
        record_event(
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
        if job.action == VolumeJobAction::Clone {
            release_source(&self.context.config, &mut tx, row, "clone completed", now).await?;
        }
        if let (VolumeJobAction::Resize, Some(instance), Some(size)) =
            (job.action, &row.instance_id, change.size_gb)
        {
            // A boot volume is its instance's OS disk: the instance's size (what its snapshots, images
            // and restores copy, and what it shows) grows with it.
            instances::set_boot_volume_size(&mut tx, instance, &row.id, size, now).await?;
        }
        complete_in(&mut tx, claimed, now).await?;
        tx.commit().await.map_err(Error::internal)?;
        Ok(Outcome::Completed)
    }

    /// Puts the volume in `error` with `reason` (and a clone's source back to rest). An attach that
    /// failed attached nothing (the instance was no longer running, or the driver refused): the volume
    /// is left `available`, detached, with the reason, rather than unusable. A resize that failed left
    /// the disk as it was (drivers only grow a disk as their last step): the volume goes back to its
    /// resting state at its old size, still usable and billed for it, with the reason.
    pub async fn fail(
        &self,
        row: &VolumeRow,
        action: VolumeJobAction,
        reason: &str,
    ) -> Result<bool> {
        let now = self.context.clock.now_ms();
        let mut tx = self.context.store.begin().await?;
        let (to, instance_id) = match action {
            VolumeJobAction::Attach => (VolumeState::Available, Some(None)),
            VolumeJobAction::Resize => (resting_state(row), None),
            _ => (VolumeState::Error, None),
        };
        let change = VolumeChange {
            status: Some(to.as_str().into()),
            status_reason: Some(Some(reason.to_string())),
            instance_id,
            ..Default::default()
        };
        if !volumes::update(&mut tx, &row.id, row.generation, &change, now).await? {
            return Ok(false);
        }
        let from = parse_state(&row.status)?;
        record_event(
            &self.context.config,
            &mut tx,
            row,
            Some(from),
            to,
            SYSTEM,
            reason,
            row.generation + 1,
            now,
        )
        .await?;
        if action == VolumeJobAction::Clone {
            release_source(&self.context.config, &mut tx, row, "clone failed", now).await?;
        }
        tx.commit().await.map_err(Error::internal)?;
        Ok(true)
    }

    /// Ends the attachments of instances that were deleted and whose volumes were not released with
    /// them (a deletion recorded before it released them, or one whose volume changed at that moment).
    /// Returns how many volumes it changed.
    pub async fn reconcile(&self) -> Result<usize> {
        let mut changed = 0;
        for row in self.context.store.volumes_of_deleted_instances().await? {
            let now = self.context.clock.now_ms();
            let mut tx = self.context.store.begin().await?;
            if !end_attachment_to_deleted(&self.context.config, &mut tx, &row, now).await? {
                continue;
            }
            tx.commit().await.map_err(Error::internal)?;
            changed += 1;
        }
        Ok(changed)
    }
}

/// Inside the transaction that deletes instance `instance_id`: its `in-use` volumes become
/// `available` (its boot volume too) and its `error` ones lose it, so that no volume shows an
/// attachment to a deleted instance. One changed meanwhile is left to [`VolumeWorker::reconcile`].
pub(crate) async fn release_volumes_of_deleted(
    config: &Config,
    tx: &mut Tx,
    instance_id: &str,
    now: i64,
) -> Result<()> {
    for row in volumes::of_instance(tx, instance_id).await? {
        if matches!(
            parse_state(&row.status)?,
            VolumeState::InUse | VolumeState::Error
        ) {
            end_attachment_to_deleted(config, tx, &row, now).await?;
        }
    }
    Ok(())
}

/// Ends `row`'s attachment to its deleted instance: `in-use` becomes `available`, `error` stays and
/// loses the instance; false when the volume changed since it was read.
async fn end_attachment_to_deleted(
    config: &Config,
    tx: &mut Tx,
    row: &VolumeRow,
    now: i64,
) -> Result<bool> {
    let from = parse_state(&row.status)?;
    let to = match from {
        VolumeState::InUse => VolumeState::Available,
        state => state,
    };
    let change = VolumeChange {
        status: Some(to.as_str().into()),
        instance_id: Some(None),
        ..Default::default()
    };
    if !volumes::update(tx, &row.id, row.generation, &change, now).await? {
        return Ok(false);
    }
    let instance = row.instance_id.as_deref().unwrap_or_default();
    record_event(
        config,
        tx,
        row,
        Some(from),
        to,
        SYSTEM,
        &format!("detached: instance {instance} was deleted"),
        row.generation + 1,
        now,
    )
    .await?;
    Ok(true)
}

/// Puts the source of clone `row` back to rest, if it is still `cloning`.
async fn release_source(
    config: &Config,
    tx: &mut Tx,
    row: &VolumeRow,
    cause: &str,
    now: i64,
) -> Result<()> {
    let Some(source_id) = &row.source_volume_id else {
        return Ok(());
    };
    let Some(source) = volumes::get(tx, source_id).await? else {
        return Ok(());
    };
    if source.status != VolumeState::Cloning.as_str() {
        return Ok(());
    }
    let to = resting_state(&source);
    let change = VolumeChange {
        status: Some(to.as_str().into()),
        ..Default::default()
    };
    if volumes::update(tx, &source.id, source.generation, &change, now).await? {
        record_event(
            config,
            tx,
            &source,
            Some(VolumeState::Cloning),
            to,
            SYSTEM,
            &format!("{cause} ({})", row.id),
            source.generation + 1,
            now,
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl JobHandler for VolumeWorker {
    async fn run(&self, job: &JobRow) -> Outcome {
        let Ok(payload) = serde_json::from_str::<VolumeJob>(&job.payload) else {
            return Outcome::Fail(format!("unreadable volume job payload: {}", job.payload));
        };
        let row = match self.context.store.volume_by_id(&job.resource_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return Outcome::Fail(format!("volume {} does not exist", job.resource_id)),
            Err(e) => return e.into(),
        };
        if row.generation != payload.generation {
            // The volume moved on (failed, or was changed since): this job is obsolete.
            return Outcome::Done;
        }
        let recorded = match self.call_driver(&row, &payload).await {
            Ok(()) => self.complete(&row, &payload, job).await,
            Err(DriverError::Transient(message) | DriverError::NoCapacity(message))
                if job.attempts < job.max_attempts =>
            {
                return Outcome::Retry(message);
            }
            Err(e) => {
                let reason = format!("{} failed: {e}", payload.action.as_str());
                return match self.fail(&row, payload.action, &reason).await {
                    Ok(_) => Outcome::Fail(reason),
                    Err(e) => Outcome::Retry(e.to_string()),
                };
            }
        };
        match recorded {
            Ok(outcome) => outcome,
            Err(Error::Internal(detail)) => Outcome::Retry(detail),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    /// Attempts that all ended without an outcome: the volume fails as on a permanent driver error.
    async fn abandon(&self, job: &JobRow, reason: &str) -> Outcome {
        let Ok(payload) = serde_json::from_str::<VolumeJob>(&job.payload) else {
            return Outcome::Fail(reason.to_string());
        };
        let reason = format!("{} failed: {reason}", payload.action.as_str());
        match self.context.store.volume_by_id(&job.resource_id).await {
            Ok(Some(row)) if row.generation == payload.generation => {
                match self.fail(&row, payload.action, &reason).await {
                    Ok(_) => Outcome::Fail(reason),
                    Err(e) => Outcome::Retry(e.to_string()),
                }
            }
            Ok(_) => Outcome::Fail(reason),
            Err(e) => e.into(),
        }
    }
}
