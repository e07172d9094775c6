//! Finishing firewall operations: the handler of `firewall` jobs (a firewall's creation) and of
//! `security_rules` jobs (programming an instance's effective rule set through the driver and settling its
//! attachments), and the reconciler that ends the attachments of deleted instances.
//!
//! A `security_rules` job programs the rule set as the database has it when the job runs, so jobs for
//! one instance may run in any order and any number of times. After the driver call it reads the set
//! again in the transaction that settles the attachments, and programs again if it changed meanwhile: the
//! last job to finish always leaves the driver with the latest set.

use std::sync::Arc;

use async_trait::async_trait;
use barrack_compute::{DriverError, PacketRule};
use barrack_store::Tx;
use barrack_store::firewalls::{self, FirewallChange};
use barrack_store::instances::InstanceRow;
use barrack_store::jobs::JobRow;

use crate::catalog::recognize_capacity;
use crate::network::firewalls::{
    AttachmentState, DETACHED, FirewallJob, FirewallState, JOB_KIND, PROGRAM_JOB_KIND,
    enqueue_program, packet_rules, record_event,
};
use crate::platform::jobs::{JobHandler, Outcome};
use crate::platform::lifecycle::InstanceState;
use crate::platform::lifecycle::recorded_power;
use crate::{Context, Error, Result};

const SYSTEM: &str = "system";

pub struct FirewallWorker {
    context: Arc<Context>,
}

/// What becomes of one attachment when an instance's programming ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// The rules were programmed: attachments reach SUCCESS, detached ones end.
    Programmed,
    /// Programming failed: attachments go to ERROR with the reason.
    Failed,
    /// The instance has no machine to program (ERROR): detached ones end, new ones fail.
    NoMachine,
    /// The instance is deleted: every attachment ends.
    Gone,
}

impl FirewallWorker {
    pub fn new(context: Arc<Context>) -> FirewallWorker {
        FirewallWorker { context }
    }

    fn now(&self) -> i64 {
        self.context.clock.now_ms()
    }

    /// CREATING → SUCCESS. A firewall is a rule set of the control plane: there is nothing for the driver
    /// to make until it is attached.
    async fn create(&self, job: &JobRow) -> Outcome {
        if serde_json::from_str::<FirewallJob>(&job.payload).is_err() {
            return Outcome::Fail(format!("unreadable firewall job payload: {}", job.payload));
        }
        for _ in 0..5 {
            let row = match self.context.store.firewall_by_id(&job.resource_id).await {
                Ok(Some(row)) => row,
                Ok(None) => {
                    return Outcome::Fail(format!("firewall {} does not exist", job.resource_id));
                }
                Err(e) => return e.into(),
            };
            if row.status != FirewallState::Creating.as_str() {
                // Deleted (or finished) since: this job is obsolete.
                return Outcome::Done;
            }
            let result: Result<bool> = async {
                let now = self.now();
                let mut tx = self.context.store.begin().await?;
                let change = FirewallChange {
                    status: Some(FirewallState::Success.as_str().into()),
                    status_reason: Some(None),
                    ..Default::default()
                };
                if !firewalls::update(&mut tx, &row.id, row.generation, &change, now).await? {
                    return Ok(false);
                }
                record_event(
                    &mut tx,
                    &row,
                    "status_changed",
                    (
                        Some(FirewallState::Creating.as_str()),
                        Some(FirewallState::Success.as_str()),
                    ),
                    SYSTEM,
                    "create completed",
                    row.generation + 1,
                    now,
                )
                .await?;
                tx.commit().await.map_err(Error::internal)?;
                Ok(true)
            }
            .await;
            match result {
                Ok(true) => return Outcome::Done,
                // Changed under us (a rule added meanwhile): read it again.
                Ok(false) => continue,
                Err(e) => return Outcome::Retry(e.to_string()),
            }
        }
        Outcome::Retry(format!("firewall {} kept changing", job.resource_id))
    }

    /// Programs an instance's effective rule set and settles its attachments.
    async fn program(&self, job: &JobRow) -> Outcome {
        let instance = match self.context.store.instance_by_id(&job.resource_id).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                return Outcome::Fail(format!("instance {} does not exist", job.resource_id));
            }
            Err(e) => return e.into(),
        };
        let settled = match InstanceState::parse(&instance.status) {
            // The machine is not made yet; making it programs its rules.
            Some(InstanceState::Creating) => return Outcome::Done,
            Some(InstanceState::Deleted) => self.settle(&instance, Settle::Gone, None).await,
            _ => match recorded_power(&instance) {
                None => {
                    let reason = format!("instance {} is {}", instance.id, instance.status);
                    self.settle(&instance, Settle::NoMachine, Some(&reason))
                        .await
                }
                Some(power) => {
                    if let Err(e) = recognize_capacity(&self.context).await {
                        return Outcome::Retry(e.to_string());
                    }
                    self.context.driver.recognize(
                        &instance.id,
                        &instance.region,
                        instance.gpu_count as u32,
                        instance.host.as_deref(),
                        power,
                    );
                    return self.apply(job, &instance).await;
                }
            },
        };
        match settled {
            Ok(_) => Outcome::Done,
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    async fn apply(&self, job: &JobRow, instance: &InstanceRow) -> Outcome {
        for _ in 0..5 {
            let rules = match self.effective(&instance.id).await {
                Ok(rules) => rules,
                Err(e) => return Outcome::Retry(e.to_string()),
            };
            let driver = &self.context.driver;
            match driver.apply_security_rules(&instance.id, &rules).await {
                Ok(()) => {}
                Err(DriverError::Transient(message) | DriverError::NoCapacity(message))
                    if job.attempts < job.max_attempts =>
                {
                    return Outcome::Retry(message);
                }
                Err(e) => {
                    // A machine deleted meanwhile has nothing left to program.
                    if let Ok(Some(now)) = self.context.store.instance_by_id(&instance.id).await
                        && now.status == InstanceState::Deleted.as_str()
                    {
                        return match self.settle(&now, Settle::Gone, None).await {
                            Ok(_) => Outcome::Done,
                            Err(e) => Outcome::Retry(e.to_string()),
                        };
                    }
                    let reason = format!("programming security rules failed: {e}");
                    return match self.settle(instance, Settle::Failed, Some(&reason)).await {
                        Ok(_) => Outcome::Fail(reason),
                        Err(e) => Outcome::Retry(e.to_string()),
                    };
                }
            }
            match self.settle_programmed(instance, &rules).await {
                Ok(true) => return Outcome::Done,
                Ok(false) => continue, // the set changed while it was programmed: program it again
                Err(e) => return Outcome::Retry(e.to_string()),
            }
        }
        Outcome::Retry("the rules kept changing while they were programmed".into())
    }

    /// The set the driver is to program now.
    async fn effective(&self, instance_id: &str) -> Result<Vec<PacketRule>> {
        Ok(packet_rules(
            &firewalls::effective_rules(&mut &self.context.store, instance_id).await?,
        ))
    }

    /// Settles the attachments after `applied` was programmed, unless the set differs by now (false: the
    /// caller programs again).
    async fn settle_programmed(
        &self,
        instance: &InstanceRow,
        applied: &[PacketRule],
    ) -> Result<bool> {
        let now = self.now();
        let mut tx = self.context.store.begin().await?;
        let current = packet_rules(&firewalls::effective_rules(&mut tx, &instance.id).await?);
        if current != applied {
            return Ok(false);
        }
        self.settle_in(&mut tx, instance, Settle::Programmed, None, now)
            .await?;
        tx.commit().await.map_err(Error::internal)?;
        Ok(true)
    }

    async fn settle(
        &self,
        instance: &InstanceRow,
        how: Settle,
        reason: Option<&str>,
    ) -> Result<usize> {
        let now = self.now();
        let mut tx = self.context.store.begin().await?;
        let changed = self.settle_in(&mut tx, instance, how, reason, now).await?;
        tx.commit().await.map_err(Error::internal)?;
        Ok(changed)
    }

    /// Moves each attachment of the instance where `how` takes it, with an event on its firewall; returns
    /// how many changed. An attachment changed meanwhile is left to the job that change enqueued.
    async fn settle_in(
        &self,
        tx: &mut Tx,
        instance: &InstanceRow,
        how: Settle,
        reason: Option<&str>,
        now: i64,
    ) -> Result<usize> {
        let mut changed = 0;
        for attachment in firewalls::attachments_of_instance(tx, &instance.id).await? {
            let Some(firewall) = firewalls::get(tx, &attachment.firewall_id).await? else {
                continue;
            };
            let from = AttachmentState::parse(&attachment.status);
            let deleted = firewall.status == FirewallState::Deleted.as_str();
            // None: the attachment ends.
            let to = match (how, from) {
                (Settle::Gone, _) => None,
                // A deleted firewall's rules are not in the set any more.
                (Settle::Programmed | Settle::NoMachine, _) if deleted => None,
                (_, Some(AttachmentState::Detaching)) if how != Settle::Failed => None,
                (Settle::Programmed, Some(AttachmentState::Success)) => continue,
                (Settle::Programmed, _) => Some(AttachmentState::Success),
                (Settle::NoMachine, Some(AttachmentState::Attaching)) => {
                    Some(AttachmentState::Error)
                }
                (Settle::NoMachine, _) => continue,
                (Settle::Failed, _) => Some(AttachmentState::Error),
            };
            let done = match to {
                Some(state) => {
                    firewalls::update_attachment(tx, &attachment, state.as_str(), reason, now)
                        .await?
                }
                None => firewalls::delete_attachment(tx, &attachment).await?,
            };
            if !done {
                continue;
            }
            changed += 1;
            let cause = match (how, to) {
                (Settle::Gone, _) => format!("instance {} was deleted", instance.id),
                (_, None) => format!("detached from {}", instance.id),
                (_, Some(AttachmentState::Success)) => {
                    format!("rules programmed on {}", instance.id)
                }
                (_, _) => format!(
                    "instance {}: {}",
                    instance.id,
                    reason.unwrap_or("programming failed")
                ),
            };
            let sequence = firewalls::bump(tx, &firewall.id, now)
                .await?
                .unwrap_or(firewall.generation);
            record_event(
                tx,
                &firewall,
                "attachment_changed",
                (
                    Some(&attachment.status),
                    Some(to.map(AttachmentState::as_str).unwrap_or(DETACHED)),
                ),
                SYSTEM,
                &cause,
                sequence,
                now,
            )
            .await?;
        }
        Ok(changed)
    }

    /// Ends attachments whose instance was deleted, and failed ones of deleted firewalls (whose instances
    /// are then programmed again without them). Returns how many it ended.
    pub async fn reconcile(&self) -> Result<usize> {
        let mut ended = 0;
        let max_attempts = i64::from(self.context.config.jobs.max_attempts);
        for attachment in self.context.store.ended_attachments().await? {
            let Some(instance) = self
                .context
                .store
                .instance_by_id(&attachment.instance_id)
                .await?
            else {
                continue;
            };
            let now = self.now();
            let mut tx = self.context.store.begin().await?;
            let Some(firewall) = firewalls::get(&mut tx, &attachment.firewall_id).await? else {
                continue;
            };
            if !firewalls::delete_attachment(&mut tx, &attachment).await? {
                continue;
            }
            let gone = instance.status == InstanceState::Deleted.as_str();
            let cause = if gone {
                format!("instance {} was deleted", instance.id)
            } else {
                let cause = format!("firewall {} was deleted", firewall.id);
                enqueue_program(&mut tx, &instance.id, &cause, max_attempts, now).await?;
                cause
            };
            let sequence = firewalls::bump(&mut tx, &firewall.id, now)
                .await?
                .unwrap_or(firewall.generation);
            record_event(
                &mut tx,
                &firewall,
                "attachment_changed",
                (Some(&attachment.status), Some(DETACHED)),
                SYSTEM,
                &cause,
                sequence,
                now,
            )
            .await?;
            tx.commit().await.map_err(Error::internal)?;
            ended += 1;
        }
        Ok(ended)
    }
}

#[async_trait]
impl JobHandler for FirewallWorker {
    async fn run(&self, job: &JobRow) -> Outcome {
        match job.kind.as_str() {
            JOB_KIND => self.create(job).await,
            PROGRAM_JOB_KIND => self.program(job).await,
            other => Outcome::Fail(format!("the firewall worker does not run {other} jobs")),
        }
    }
}
