//! Finishing snapshot operations: the job handler that calls the compute driver and records the outcome.
//!
//! A snapshot's disk is freed only when nothing needs it any more: not the snapshot (being deleted), not a
//! custom image made from it, not an instance still being created from it. Whichever of them lets go last
//! frees it (the snapshot's `delete` job, or the `release` job an image's deletion enqueues); the driver's
//! delete is idempotent, so two of them freeing it is harmless.

use std::sync::Arc;

use async_trait::async_trait;
use barrack_compute::DriverError;
use barrack_store::jobs::JobRow;
use barrack_store::snapshots::{self, SnapshotChange, SnapshotRow};

use crate::platform::jobs::{JobHandler, Outcome, complete_in};
use crate::platform::lifecycle::recorded_power;
use crate::storage::images::{ImageState, settle_pending};
use crate::storage::snapshots::{
    SnapshotJob, SnapshotJobAction, SnapshotState, parse_state, record_event,
};
use crate::{Context, Error, Result};

const SYSTEM: &str = "system";

/// Why a job cannot go on yet.
enum Blocked {
    Driver(DriverError),
    /// Instances are still being created from the disk.
    InUse(String),
}

impl From<DriverError> for Blocked {
    fn from(e: DriverError) -> Self {
        Blocked::Driver(e)
    }
}

pub struct SnapshotWorker {
    context: Arc<Context>,
}

impl SnapshotWorker {
    pub fn new(context: Arc<Context>) -> SnapshotWorker {
        SnapshotWorker { context }
    }

    /// Tells the driver about the instance a snapshot is taken of, when it is running (see
    /// `ComputeDriver::recognize`).
    async fn recognize_instance(&self, id: &str) -> Result<()> {
        if let Some(instance) = self.context.store.instance_by_id(id).await?
            && let Some(power) = recorded_power(&instance)
        {
            self.context.driver.recognize(
                &instance.id,
                &instance.region,
                instance.gpu_count as u32,
                instance.host.as_deref(),
                power,
            );
        }
        Ok(())
    }

    async fn call_driver(&self, row: &SnapshotRow, job: &SnapshotJob) -> Result<(), Blocked> {
        let transient = |e: Error| DriverError::Transient(e.to_string());
        match job.action {
            SnapshotJobAction::Create => {
                self.recognize_instance(&row.instance_id)
                    .await
                    .map_err(transient)?;
                Ok(self
                    .context
                    .driver
                    .create_snapshot(&row.instance_id, &row.id)
                    .await?)
            }
            SnapshotJobAction::Delete | SnapshotJobAction::Release => {
                if self.disk_needed(row).await.map_err(transient)? {
                    return Ok(());
                }
                let creating = self
                    .context
                    .store
                    .instances_creating_from_snapshot(&row.id)
                    .await
                    .map_err(|e| transient(e.into()))?;
                if !creating.is_empty() {
                    return Err(Blocked::InUse(format!(
                        "instance {} is still being created from the snapshot",
                        creating.join(", ")
                    )));
                }
                Ok(self.context.driver.delete_snapshot(&row.id).await?)
            }
        }
    }

    /// Whether the snapshot's disk must stay: the snapshot still holds it (a `release` job), or a custom
    /// image made from it does.
    async fn disk_needed(&self, row: &SnapshotRow) -> Result<bool> {
        let current = self.context.store.snapshot_by_id(&row.id).await?;
        let snapshot_holds = current
            .as_ref()
            .and_then(|s| SnapshotState::parse(&s.status))
            .is_some_and(SnapshotState::holds_disk);
        if snapshot_holds {
            return Ok(true);
        }
        let images = self
            .context
            .store
            .images_of_snapshots(std::slice::from_ref(&row.id))
            .await?;
        Ok(images
            .iter()
            .any(|i| ImageState::parse(&i.status).is_some_and(ImageState::holds_disk)))
    }

    /// Records a finished operation (a `release` changes nothing): the snapshot's resting state, for a
    /// create the images waiting for it, and the job done; conditional on the generation the job was for
    /// (`Done` when the snapshot moved on, or for a release: the runner marks the job).
    async fn complete(
        &self,
        row: &SnapshotRow,
        job: &SnapshotJob,
        claimed: &JobRow,
    ) -> Result<Outcome> {
        let (to, change) = match job.action {
            SnapshotJobAction::Release => return Ok(Outcome::Done),
            SnapshotJobAction::Create => (SnapshotState::Success, SnapshotChange::default()),
            SnapshotJobAction::Delete => (
                SnapshotState::Deleted,
                SnapshotChange {
                    deleted_at: Some(self.context.clock.now_ms()),
                    ..Default::default()
                },
            ),
        };
        let now = self.context.clock.now_ms();
        let mut tx = self.context.store.begin().await?;
        let change = SnapshotChange {
            status: Some(to.as_str().into()),
            status_reason: Some(None),
            ..change
        };
        if !snapshots::update(&mut tx, &row.id, row.generation, &change, now).await? {
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
        if job.action == SnapshotJobAction::Create {
            settle_pending(
                &mut tx,
                &row.id,
                ImageState::Success,
                None,
                &format!("snapshot {} completed", row.id),
                now,
            )
            .await?;
        }
        complete_in(&mut tx, claimed, now).await?;
        tx.commit().await.map_err(Error::internal)?;
        Ok(Outcome::Completed)
    }

    /// Puts the snapshot in `ERROR` with `reason`, and the images waiting for it too.
    pub async fn fail(&self, row: &SnapshotRow, reason: &str) -> Result<bool> {
        let now = self.context.clock.now_ms();
        let mut tx = self.context.store.begin().await?;
        let change = SnapshotChange {
            status: Some(SnapshotState::Error.as_str().into()),
            status_reason: Some(Some(reason.to_string())),
            ..Default::default()
        };
        if !snapshots::update(&mut tx, &row.id, row.generation, &change, now).await? {
            return Ok(false);
        }
        let from = parse_state(&row.status)?;
        record_event(
            &self.context.config,
            &mut tx,
            row,
            Some(from),
            SnapshotState::Error,
            SYSTEM,
            reason,
            row.generation + 1,
            now,
        )
        .await?;
        settle_pending(
            &mut tx,
            &row.id,
            ImageState::Error,
            Some(&format!("snapshot {} failed: {reason}", row.id)),
            &format!("snapshot {} failed", row.id),
            now,
        )
        .await?;
        tx.commit().await.map_err(Error::internal)?;
        Ok(true)
    }
}

#[async_trait]
impl JobHandler for SnapshotWorker {
    async fn run(&self, job: &JobRow) -> Outcome {
        let Ok(payload) = serde_json::from_str::<SnapshotJob>(&job.payload) else {
            return Outcome::Fail(format!("unreadable snapshot job payload: {}", job.payload));
        };
        let row = match self.context.store.snapshot_by_id(&job.resource_id).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                return Outcome::Fail(format!("snapshot {} does not exist", job.resource_id));
            }
            Err(e) => return e.into(),
        };
        if payload.action != SnapshotJobAction::Release && row.generation != payload.generation {
            // The snapshot moved on (failed, or was changed since): this job is obsolete.
            return Outcome::Done;
        }
        let last_attempt = job.attempts >= job.max_attempts;
        let recorded = match self.call_driver(&row, &payload).await {
            Ok(()) => self.complete(&row, &payload, job).await,
            Err(
                Blocked::Driver(DriverError::Transient(message) | DriverError::NoCapacity(message))
                | Blocked::InUse(message),
            ) if !last_attempt => {
                return Outcome::Retry(message);
            }
            Err(e) => {
                let message = match e {
                    Blocked::Driver(e) => e.to_string(),
                    Blocked::InUse(message) => message,
                };
                let reason = format!("{} failed: {message}", payload.action.as_str());
                if payload.action == SnapshotJobAction::Release {
                    // Nothing to put in ERROR: the snapshot is gone already.
                    return Outcome::Fail(reason);
                }
                return match self.fail(&row, &reason).await {
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

    /// Attempts that all ended without an outcome: the snapshot (and the images waiting for it) fails.
    async fn abandon(&self, job: &JobRow, reason: &str) -> Outcome {
        let Ok(payload) = serde_json::from_str::<SnapshotJob>(&job.payload) else {
            return Outcome::Fail(reason.to_string());
        };
        let reason = format!("{} failed: {reason}", payload.action.as_str());
        if payload.action == SnapshotJobAction::Release {
            return Outcome::Fail(reason);
        }
        match self.context.store.snapshot_by_id(&job.resource_id).await {
            Ok(Some(row)) if row.generation == payload.generation => {
                match self.fail(&row, &reason).await {
                    Ok(_) => Outcome::Fail(reason),
                    Err(e) => Outcome::Retry(e.to_string()),
                }
            }
            Ok(_) => Outcome::Fail(reason),
            Err(e) => e.into(),
        }
    }
}
