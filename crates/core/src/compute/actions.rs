//! The lifecycle actions of an instance (start, stop, reboot, hibernate, restore, delete) and hibernation
//! of the instances of an account whose credit ran out: the transitions of `platform::lifecycle`, written
//! with their event and job.

use barrack_api::Currency;
use barrack_api::instances::InstanceAction;
use barrack_store::instances::{self, InstanceChange, InstanceRow};
use barrack_store::{Tx, capacity};

use crate::accounts::{Caller, actor};
use crate::billing::Depletion;
use crate::billing::balance_guard::require_balance;
use crate::billing::commitments::require_commitment;
use crate::billing::hourly_increase;
use crate::compute::instances::{InstanceService, parse_state, record_event_at};
use crate::platform::idempotency;
use crate::platform::lifecycle::{Action, BillingClass};
use crate::{Error, Result};

impl InstanceService {
    /// Start, stop, reboot, hibernate, restore or delete: the instance enters its transitional state now and
    /// a worker finishes the operation.
    pub async fn act(&self, caller: &Caller, id: &str, action: Action) -> Result<InstanceAction> {
        for _ in 0..5 {
            let row = self.owned(caller, id).await?;
            let state = parse_state(&row.status)?;
            let (through, to) = action.begin(state)?;
            let action = action.resolve(state);
            // A restore meets the outage as missing stock (503 GPU_UNAVAILABLE, as documented).
            if action != Action::Restore {
                crate::catalog::check_region_up(&self.context, &row.region).await?;
            }
            let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
            // A restored instance is billed in full again (its GPUs and its OS disk), where the account
            // paid the hibernation price for it.
            let restored =
                |from| hourly_increase(self.config(), &row, currency, from, BillingClass::Full);
            if action == Action::Restore {
                if self.config().gpu_model(&row.gpu_model).is_none() {
                    return Err(Error::internal("instance of an unknown model"));
                }
                let first_hour = restored(BillingClass::Free);
                require_balance(&self.context, caller, currency, first_hour).await?;
            }
            let now = self.now();
            let mut tx = self.context.store.begin().await?;
            if action == Action::Restore {
                // The committed burn counts the hibernation price until the restore ends it.
                let added = restored(BillingClass::Hibernated);
                require_commitment(
                    &mut tx,
                    &self.context,
                    caller.account_id(),
                    currency,
                    added,
                    None,
                )
                .await?;
            }
            let mut change = InstanceChange {
                status: Some(through.as_str().into()),
                status_reason: Some(None),
                ..Default::default()
            };
            if action == Action::Restore {
                // The address before the region's stock, in the order deploys take them.
                if row.public_ip {
                    self.reserve_address(&mut tx, &row.region, &row.id, true)
                        .await?;
                }
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
            let done = InstanceAction {
                instance_id: row.id,
                action: action.as_str().into(),
                status: through.as_str().into(),
                target_status: to.as_str().into(),
            };
            idempotency::commit(tx, &done).await?;
            self.context.work.notify_one();
            return Ok(done);
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
            .account_instances_with_status(account_id, &["ACTIVE", "SHUTOFF"])
            .await?
        {
            if row.currency != currency.as_str() {
                continue;
            }
            let state = parse_state(&row.status)?;
            if Action::Hibernate.transition(state).is_none() {
                continue;
            }
            let mut tx = self.context.store.begin().await?;
            let cause = "hibernated: the account's credit balance reached zero";
            if !self
                .begin_for_system(&mut tx, &row, Action::Hibernate, cause, self.now())
                .await?
            {
                continue; // changed meanwhile; the next meter run looks again
            }
            tx.commit().await.map_err(Error::internal)?;
            hibernated += 1;
        }
        if hibernated > 0 {
            self.context.work.notify_one();
        }
        Ok(hibernated)
    }
}

impl InstanceService {
    /// Begins `action` on the instance for the system (depletion, a lease ending) in the caller's
    /// transaction: its transitional state, event and job. False when the instance changed since `row`
    /// was read or the action does not apply in its state; the caller then reads it again or lets it be.
    pub(crate) async fn begin_for_system(
        &self,
        tx: &mut Tx,
        row: &InstanceRow,
        action: Action,
        cause: &str,
        now: i64,
    ) -> Result<bool> {
        let state = parse_state(&row.status)?;
        let Some((through, _)) = action.transition(state) else {
            return Ok(false);
        };
        let change = InstanceChange {
            status: Some(through.as_str().into()),
            ..Default::default()
        };
        if !instances::update(tx, &row.id, row.generation, &change, now).await? {
            return Ok(false);
        }
        let generation = row.generation + 1;
        record_event_at(
            &self.context.config,
            tx,
            row,
            Some(state),
            through,
            "system",
            cause,
            generation,
            now,
        )
        .await?;
        self.enqueue(tx, &row.id, action.into(), generation, now)
            .await?;
        Ok(true)
    }
}

#[async_trait::async_trait]
impl Depletion for InstanceService {
    async fn hibernate_for_depletion(&self, account_id: &str, currency: Currency) -> Result<usize> {
        InstanceService::hibernate_for_depletion(self, account_id, currency).await
    }
}
