//! Instance leases: an instance deletes or hibernates itself at a time set at deploy or later. A lease is
//! a row and a job of the job engine due ten minutes before the end: the job writes the `lease_expiring`
//! event, waits (on the platform clock) for the end, then writes `lease_expired` and begins the action.
//! Each step is a transaction conditional on the lease row (marked warned, then removed), so it happens
//! once whichever server runs the job, and however often a crash makes it run.

use async_trait::async_trait;
use barrack_api::instances::Instance;
use barrack_api::labels::{InstancePatch, MAX_LEASE_DAYS, MAX_LEASE_MINUTES};
use barrack_store::Tx;
use barrack_store::instances::InstanceRow;
use barrack_store::jobs::JobRow;
use barrack_store::leases::{self, LeaseRow};
use serde::{Deserialize, Serialize};

use crate::accounts::{Caller, actor};
use crate::compute::instances::{InstanceService, parse_state};
use crate::platform::clock::{format_ms, parse_iso};
use crate::platform::events::{self, NewEvent};
use crate::platform::jobs::{JobHandler, NewJob, Outcome, enqueue_at};
use crate::platform::lifecycle::{Action, InstanceState};
use crate::platform::validate::Validator;
use crate::{Error, Result};

pub const JOB_KIND: &str = "lease";
/// How long before the end the `lease_expiring` event is written.
pub const WARNING_MS: i64 = 10 * 60 * 1000;
/// How long a lease ending in a transition (a boot, a stop) waits before it looks again.
const BUSY_RETRY_MS: i64 = 30_000;

/// A lease as asked for: when it ends and what then happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTerms {
    pub expires_at: i64,
    pub on_expiry: Action,
}

/// What a lease job carries: the end of the lease it was written for (a job whose lease has been changed
/// or ended since is obsolete).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct LeaseJob {
    expires_at: i64,
}

fn on_expiry_name(action: Action) -> &'static str {
    match action {
        Action::Hibernate => "hibernate",
        _ => "delete",
    }
}

/// The action a lease on record takes at its end.
fn action_of(lease: &LeaseRow) -> Action {
    if lease.on_expiry == "hibernate" {
        Action::Hibernate
    } else {
        Action::Delete
    }
}

fn parse_on_expiry(v: &mut Validator, value: Option<&str>) -> Action {
    match value {
        None | Some("delete") => Action::Delete,
        Some("hibernate") => Action::Hibernate,
        Some(other) => {
            v.add(
                "on_expiry",
                format!("Unknown on_expiry '{other}'; use delete or hibernate"),
            );
            Action::Delete
        }
    }
}

/// Checks the lease fields of a deploy or a patch (every fault under its field); `None` when neither
/// `ttl_minutes` nor `expires_at` is given.
pub fn check_terms(
    v: &mut Validator,
    now: i64,
    ttl_minutes: Option<i64>,
    expires_at: Option<&str>,
    on_expiry: Option<&str>,
) -> Option<LeaseTerms> {
    let on_expiry = parse_on_expiry(v, on_expiry);
    let end = match (ttl_minutes, expires_at) {
        (Some(_), Some(_)) => {
            v.add("expires_at", "Give ttl_minutes or expires_at, not both");
            return None;
        }
        (Some(ttl), None) => {
            if !(1..=MAX_LEASE_MINUTES).contains(&ttl) {
                v.add(
                    "ttl_minutes",
                    format!(
                        "ttl_minutes must be between 1 and {MAX_LEASE_MINUTES} \
                         ({MAX_LEASE_DAYS} days)"
                    ),
                );
                return None;
            }
            now + ttl * 60_000
        }
        (None, Some(text)) => {
            let Some(at) = parse_iso(text) else {
                v.add(
                    "expires_at",
                    "Use an RFC 3339 time such as 2025-01-15T10:30:00Z",
                );
                return None;
            };
            if at <= now {
                v.add(
                    "expires_at",
                    format!(
                        "expires_at must be in the future (now is {})",
                        format_ms(now)
                    ),
                );
                return None;
            }
            if at - now > MAX_LEASE_MINUTES * 60_000 {
                v.add(
                    "expires_at",
                    format!("expires_at must be within {MAX_LEASE_DAYS} days from now"),
                );
                return None;
            }
            at
        }
        (None, None) => return None,
    };
    Some(LeaseTerms {
        expires_at: end,
        on_expiry,
    })
}

impl InstanceService {
    /// Writes the instance's lease and, unless its end is the one already on record (whose job is
    /// under way), a job for it, in the caller's transaction.
    pub(crate) async fn write_lease(
        &self,
        tx: &mut Tx,
        instance_id: &str,
        terms: &LeaseTerms,
        now: i64,
    ) -> Result<()> {
        let current = leases::get(&mut *tx, instance_id).await?;
        leases::set(
            &mut *tx,
            instance_id,
            Some((terms.expires_at, on_expiry_name(terms.on_expiry))),
        )
        .await?;
        if current.is_some_and(|c| c.expires_at == terms.expires_at) {
            return Ok(());
        }
        let payload = serde_json::to_string(&LeaseJob {
            expires_at: terms.expires_at,
        })
        .map_err(Error::internal)?;
        let job = NewJob {
            kind: JOB_KIND,
            resource_id: instance_id,
            payload,
            max_attempts: i64::from(self.config().jobs.max_attempts),
        };
        let due = (terms.expires_at - WARNING_MS).max(now);
        enqueue_at(tx, job, now, due).await?;
        Ok(())
    }

    /// `PATCH /api/instances/{id}/`: sets, changes or ends the instance's lease.
    pub async fn patch(&self, caller: &Caller, id: &str, patch: InstancePatch) -> Result<Instance> {
        let now = self.now();
        let mut v = Validator::new();
        let terms = check_terms(
            &mut v,
            now,
            patch.ttl_minutes,
            patch.expires_at.as_deref(),
            patch.on_expiry.as_deref(),
        );
        let changes_end = patch.ttl_minutes.is_some() || patch.expires_at.is_some();
        if patch.clear_lease && (changes_end || patch.on_expiry.is_some()) {
            v.add(
                "clear_lease",
                "clear_lease ends the lease: send no other lease field with it",
            );
        }
        if !patch.clear_lease && !changes_end && patch.on_expiry.is_none() {
            v.add(
                "body",
                "Send ttl_minutes, expires_at, on_expiry or clear_lease",
            );
        }
        v.finish()?;
        let row = self.owned(caller, id).await?;
        let state = parse_state(&row.status)?;
        if matches!(state, InstanceState::Deleting | InstanceState::Deleted) {
            return Err(Error::conflict(
                "INVALID_STATE",
                format!("The instance is {state}: its lease can no longer change"),
            ));
        }
        let mut tx = self.context.store.begin().await?;
        let current = leases::get(&mut tx, &row.id).await?;
        let (cause, lease) = if patch.clear_lease {
            ("lease ended", None)
        } else if let Some(mut terms) = terms {
            // A new end without on_expiry keeps what the lease does at its end.
            if patch.on_expiry.is_none()
                && let Some(current) = &current
            {
                terms.on_expiry = action_of(current);
            }
            ("lease set", Some(terms))
        } else {
            // on_expiry alone: the lease's end stays.
            let Some(current) = current else {
                return Err(Error::field(
                    "on_expiry",
                    "The instance has no lease: give ttl_minutes or expires_at with on_expiry",
                ));
            };
            let mut v = Validator::new();
            let on_expiry = parse_on_expiry(&mut v, patch.on_expiry.as_deref());
            (
                "lease changed",
                Some(LeaseTerms {
                    expires_at: current.expires_at,
                    on_expiry,
                }),
            )
        };
        match &lease {
            Some(terms) => self.write_lease(&mut tx, &row.id, terms, now).await?,
            None => {
                if !leases::remove(&mut tx, &row.id).await? {
                    // No lease to end: nothing changed, so no event is recorded.
                    drop(tx);
                    return self.get(caller, id).await;
                }
            }
        }
        let cause = match &lease {
            Some(terms) => format!(
                "{cause}: {} at {}",
                on_expiry_name(terms.on_expiry),
                format_ms(terms.expires_at)
            ),
            None => cause.to_string(),
        };
        record_lease_event(&mut tx, &row, "lease_changed", &actor(caller), &cause, now).await?;
        tx.commit().await?;
        self.context.work.notify_one();
        self.get(caller, id).await
    }

    /// One run of a lease job (see the module's comment).
    async fn run_lease(&self, job: &JobRow) -> Result<Outcome> {
        let payload: LeaseJob = serde_json::from_str(&job.payload).map_err(Error::internal)?;
        let Some(lease) = self.context.store.instance_lease(&job.resource_id).await? else {
            return Ok(Outcome::Done); // ended, or acted on already
        };
        if lease.expires_at != payload.expires_at {
            return Ok(Outcome::Done); // changed since: the new lease has its own job
        }
        let Some(row) = self
            .context
            .store
            .instance_by_id(&lease.instance_id)
            .await?
        else {
            return Ok(Outcome::Done);
        };
        let now = self.now();
        if now < lease.expires_at {
            if now >= lease.expires_at - WARNING_MS && !lease.warned {
                self.warn(&row, &lease, now).await?;
            }
            return Ok(Outcome::Wait {
                after_ms: lease.expires_at - now,
                payload: job.payload.clone(),
            });
        }
        self.expire(&row, &lease, now).await
    }

    /// Warns of every lease within [`WARNING_MS`] of its end and acts at once on every lease that has
    /// ended by now, as their jobs would when they run: a simulated clock moved over a lease's warning or
    /// end stops there and does it before billing further
    /// ([`crate::simulation::SimulationService::advance`]). A lease whose instance is in the middle of
    /// an operation is left to its job.
    pub async fn act_on_leases_due(&self) -> Result<()> {
        let now = self.now();
        for lease in self.context.store.leases_to_warn(now, WARNING_MS).await? {
            if let Some(row) = self
                .context
                .store
                .instance_by_id(&lease.instance_id)
                .await?
            {
                self.warn(&row, &lease, now).await?;
            }
        }
        for lease in self.context.store.ended_leases(now).await? {
            let Some(row) = self
                .context
                .store
                .instance_by_id(&lease.instance_id)
                .await?
            else {
                continue;
            };
            self.expire(&row, &lease, now).await?;
        }
        Ok(())
    }

    async fn warn(&self, row: &InstanceRow, lease: &LeaseRow, now: i64) -> Result<()> {
        let mut tx = self.context.store.begin().await?;
        if !leases::mark_warned(&mut tx, &lease.instance_id, lease.expires_at).await? {
            return Ok(());
        }
        let cause = format!(
            "warning: the lease ends at {}; the instance will then be {}",
            format_ms(lease.expires_at),
            if action_of(lease) == Action::Hibernate {
                "hibernated"
            } else {
                "deleted"
            }
        );
        record_lease_event(&mut tx, row, "lease_expiring", "system", &cause, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn expire(&self, row: &InstanceRow, lease: &LeaseRow, now: i64) -> Result<Outcome> {
        let state = parse_state(&row.status)?;
        let action = action_of(lease);
        if matches!(state, InstanceState::Deleting | InstanceState::Deleted) {
            // Deleted before its lease ended: the lease goes with it.
            leases::set(&mut &self.context.store, &lease.instance_id, None).await?;
            return Ok(Outcome::Done);
        }
        if !state.is_stable() {
            // In the middle of an operation: act once it has come to rest.
            return Ok(Outcome::Wait {
                after_ms: BUSY_RETRY_MS,
                payload: serde_json::to_string(&LeaseJob {
                    expires_at: lease.expires_at,
                })
                .map_err(Error::internal)?,
            });
        }
        let mut tx = self.context.store.begin().await?;
        if !leases::take(&mut tx, &lease.instance_id, lease.expires_at).await? {
            return Ok(Outcome::Done);
        }
        let applies = action.transition(state).is_some();
        let cause = if applies {
            format!("the lease ended at {}", format_ms(lease.expires_at))
        } else {
            format!(
                "the lease ended at {}; nothing to {} in state {state}",
                format_ms(lease.expires_at),
                on_expiry_name(action)
            )
        };
        record_lease_event(&mut tx, row, "lease_expired", "system", &cause, now).await?;
        if applies {
            let cause = format!("{}: the lease ended", on_expiry_name(action));
            if !self
                .begin_for_system(&mut tx, row, action, &cause, now)
                .await?
            {
                // Changed since it was read: look again shortly.
                return Ok(Outcome::Retry("the instance changed; trying again".into()));
            }
        }
        tx.commit().await?;
        self.context.work.notify_one();
        Ok(Outcome::Done)
    }
}

/// A lease event of the instance: it does not change its state, so it orders with the instance's
/// current generation.
async fn record_lease_event(
    tx: &mut Tx,
    row: &InstanceRow,
    kind: &str,
    actor: &str,
    cause: &str,
    now: i64,
) -> Result<()> {
    events::record(
        tx,
        NewEvent {
            account_id: &row.account_id,
            resource_type: "instance",
            resource_id: &row.id,
            kind,
            from: None,
            to: None,
            actor,
            cause,
            sequence: row.generation,
        },
        now,
    )
    .await
}

/// Runs lease jobs.
pub struct LeaseWorker {
    instances: InstanceService,
}

impl LeaseWorker {
    pub fn new(instances: InstanceService) -> LeaseWorker {
        LeaseWorker { instances }
    }
}

#[async_trait]
impl JobHandler for LeaseWorker {
    async fn run(&self, job: &JobRow) -> Outcome {
        match self.instances.run_lease(job).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_too_far_ahead_is_refused_in_days() {
        let now = parse_iso("2026-12-07T00:00:00Z").unwrap();
        let mut v = Validator::new();
        assert!(check_terms(&mut v, now, None, Some("2027-12-09T00:00:00Z"), None).is_none());
        let message = format!("{:?}", v.finish().unwrap_err().field_errors());
        assert!(
            message.contains("expires_at must be within 366 days from now"),
            "{message}"
        );
        let mut v = Validator::new();
        assert!(check_terms(&mut v, now, None, Some("2027-12-07T00:00:00Z"), None).is_some());
        let mut v = Validator::new();
        assert!(check_terms(&mut v, now, Some(MAX_LEASE_MINUTES + 1), None, None).is_none());
        let message = format!("{:?}", v.finish().unwrap_err().field_errors());
        assert!(message.contains("(366 days)"), "{message}");
    }
}
