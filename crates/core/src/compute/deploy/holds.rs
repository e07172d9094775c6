//! Deploy holds: once a preflight passed, its GPUs and public address reserved for [`HOLD_MS`] under a
//! hold id, for a deploy of the same account that names it. A held hold counts in the capacity ledger
//! like an instance's GPUs and holds its address under its own id, so stock shows it to everyone and a
//! restart keeps it. It ends once, whichever comes first: a deploy takes it over ([`consume`]), its
//! account releases it, or its expiry job gives back what it held when the clock passes `expires_at`.

use async_trait::async_trait;
use barrack_api::instances::{DeployHold, DeployRequest, Preflight};
use barrack_store::deploy_holds::{self, DeployHoldRow};
use barrack_store::jobs::JobRow;
use barrack_store::{Tx, capacity, firewalls, public_ips};
use rust_decimal::Decimal;

use crate::accounts::Caller;
use crate::billing::commitments::require_commitment_beside;
use crate::catalog::price;
use crate::compute::instances::InstanceService;
use crate::platform::clock::format_ms;
use crate::platform::idempotency;
use crate::platform::ids::random_alphanumeric;
use crate::platform::jobs::{JobHandler, NewJob, Outcome, enqueue_at};
use crate::platform::validate::Validator;
use crate::{Error, Result};

/// How long a hold lasts.
pub const HOLD_MS: i64 = 60_000;
/// The job that ends a hold at its expiry.
pub const JOB_KIND: &str = "deploy_hold";

const HELD: &str = "held";

impl InstanceService {
    /// The caller's hold `id` for a deploy of `request`: 404 when it is not the caller's, 409 once it
    /// has ended, 400 naming each field the request asks differently from what the hold reserved.
    pub(super) async fn hold_for(
        &self,
        caller: &Caller,
        request: &DeployRequest,
        id: &str,
    ) -> Result<DeployHoldRow> {
        let hold = self.owned_hold(caller, id).await?;
        if hold.state != HELD || hold.expires_at <= self.now() {
            return Err(ended(&hold));
        }
        let mut v = Validator::new();
        let mut differs = |field: &str, held: String, asked: String| {
            v.check(
                held == asked,
                field,
                format!(
                    "Hold {} reserved {field} {held}; this request asks for {asked}",
                    hold.id
                ),
            );
        };
        differs("region", hold.region.clone(), request.region.clone());
        differs(
            "gpu_model",
            hold.gpu_model.clone(),
            request.gpu_model.clone(),
        );
        differs(
            "gpu_count",
            hold.gpu_count.to_string(),
            request.gpu_count.to_string(),
        );
        differs(
            "public_ip",
            hold.public_ip.to_string(),
            request.public_ip.to_string(),
        );
        v.finish()?;
        Ok(hold)
    }

    /// Reserves what the `preflight` of `request` just found free: its GPUs and, when it asks for one, a
    /// public address, until [`HOLD_MS`] from now. 503 as the deploy when another request took them
    /// meanwhile.
    pub(super) async fn hold(
        &self,
        caller: &Caller,
        request: &DeployRequest,
        mut preflight: Preflight,
        first_hour: Decimal,
    ) -> Result<Preflight> {
        let model = self
            .config()
            .gpu_model(&request.gpu_model)
            .ok_or_else(|| Error::internal("a checked request names a known model"))?;
        let now = self.now();
        let mut hold = DeployHoldRow {
            id: format!("hold-{}", random_alphanumeric(20)),
            account_id: caller.account_id().to_string(),
            region: request.region.clone(),
            gpu_model: model.name.clone(),
            gpu_count: i64::from(request.gpu_count),
            public_ip: request.public_ip,
            address: None,
            state: HELD.into(),
            instance_id: None,
            expires_at: now + HOLD_MS,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.context.store.begin().await?;
        // The balance again, as the deploy checks it, with the account's other holds counted as the
        // instances they would deploy (their GPUs' hourly price): holds cost nothing while held, so
        // without them an account could reserve stock it cannot pay for, a minute at a time. The
        // account's lock comes first (as in the deploy), so that holds made at once count each other;
        // then the address and the capacity row, in the order deploys take them.
        firewalls::lock_account(&mut tx, caller.account_id()).await?;
        let held: Decimal = deploy_holds::held(&mut tx, caller.account_id())
            .await?
            .iter()
            .filter_map(|h| {
                self.config()
                    .gpu_model(&h.gpu_model)
                    .map(|m| (m, h.gpu_count))
            })
            .map(|(m, count)| price(&m.prices, preflight.currency) * Decimal::from(count))
            .sum();
        require_commitment_beside(
            &mut tx,
            &self.context,
            caller.account_id(),
            preflight.currency,
            held,
            first_hour,
            None,
        )
        .await?;
        if hold.public_ip {
            hold.address = Some(
                self.reserve_address(&mut tx, &hold.region, &hold.id, true)
                    .await?,
            );
        }
        if !capacity::allocate(&mut tx, &hold.region, &hold.gpu_model, hold.gpu_count, now).await? {
            drop(tx);
            return Err(Error::GpuUnavailable(
                self.stock_message(&hold.region, model, request.gpu_count)
                    .await?,
            ));
        }
        deploy_holds::insert(&mut tx, &hold).await?;
        let job = NewJob {
            kind: JOB_KIND,
            resource_id: &hold.id,
            payload: "{}".into(),
            max_attempts: i64::from(self.config().jobs.max_attempts),
        };
        enqueue_at(&mut tx, job, now, hold.expires_at).await?;
        preflight.hold = Some(view(hold));
        // Stored with the hold, so a retried request gets this hold instead of a second one.
        idempotency::commit(tx, &preflight).await?;
        self.context.work.notify_one();
        Ok(preflight)
    }

    /// `DELETE /api/deploy-server/holds/{id}/`: gives back what the caller's hold reserved, before it
    /// expires; 409 once it has ended.
    pub async fn release_hold(&self, caller: &Caller, id: &str) -> Result<DeployHold> {
        let mut hold = self.owned_hold(caller, id).await?;
        let now = self.now();
        let mut tx = self.context.store.begin().await?;
        if !deploy_holds::end(&mut tx, &hold.id, "released", now).await? {
            drop(tx);
            let hold = self.owned_hold(caller, id).await?;
            return Err(ended(&hold));
        }
        give_back(&mut tx, &hold, now).await?;
        tx.commit().await.map_err(Error::internal)?;
        hold.state = "released".into();
        Ok(view(hold))
    }

    async fn owned_hold(&self, caller: &Caller, id: &str) -> Result<DeployHoldRow> {
        self.context
            .store
            .deploy_hold(caller.account_id(), id.trim())
            .await?
            .ok_or_else(|| Error::not_found("Hold", id))
    }
}

/// Hands the hold's GPUs and address to the instance `instance_id` being written in `tx`: 409 when the
/// hold ended since it was read (a concurrent deploy took it, or it expired).
pub(crate) async fn consume(
    tx: &mut Tx,
    hold: &DeployHoldRow,
    instance_id: &str,
    now: i64,
) -> Result<()> {
    if !deploy_holds::consume(tx, &hold.id, instance_id, now).await? {
        return Err(Error::conflict(
            "HOLD_ENDED",
            format!(
                "Hold {} was used or expired meanwhile; preflight again",
                hold.id
            ),
        ));
    }
    public_ips::transfer(tx, &hold.id, instance_id, now).await?;
    Ok(())
}

/// Returns the hold's GPUs and address, in the transaction that ended it.
async fn give_back(tx: &mut Tx, hold: &DeployHoldRow, now: i64) -> Result<()> {
    capacity::release(tx, &hold.region, &hold.gpu_model, hold.gpu_count, now).await?;
    public_ips::release(tx, &hold.id).await?;
    Ok(())
}

/// 409 for a hold that is no longer held, saying how it ended.
fn ended(hold: &DeployHoldRow) -> Error {
    let how = match hold.state.as_str() {
        "consumed" => format!(
            "was used by instance {}",
            hold.instance_id.as_deref().unwrap_or("?")
        ),
        "released" => "was released".to_string(),
        _ => format!("expired at {}", format_ms(hold.expires_at)),
    };
    Error::conflict(
        "HOLD_ENDED",
        format!("Hold {} {how}; preflight again", hold.id),
    )
}

fn view(hold: DeployHoldRow) -> DeployHold {
    DeployHold {
        hold_id: hold.id,
        status: hold.state,
        region: hold.region,
        gpu_model: hold.gpu_model,
        gpu_count: hold.gpu_count as u32,
        ip_address: hold.address,
        instance_id: hold.instance_id,
        expires_at: format_ms(hold.expires_at),
    }
}

/// The job that ends a hold at its expiry, on the platform clock: the one server whose conditional
/// update ends it gives back what it held; a hold used or released before has nothing left to give.
pub struct HoldExpiry {
    context: std::sync::Arc<crate::Context>,
}

impl HoldExpiry {
    pub fn new(context: std::sync::Arc<crate::Context>) -> HoldExpiry {
        HoldExpiry { context }
    }

    async fn expire(&self, job: &JobRow) -> Result<Outcome> {
        let store = &self.context.store;
        let Some(hold) = store.deploy_hold_by_id(&job.resource_id).await? else {
            return Ok(Outcome::Done);
        };
        let now = self.context.clock.now_ms();
        if hold.state != HELD {
            return Ok(Outcome::Done);
        }
        if hold.expires_at > now {
            // Claimed early by a server whose clock is behind the one that wrote it.
            return Ok(Outcome::Wait {
                after_ms: hold.expires_at - now,
                payload: job.payload.clone(),
            });
        }
        let mut tx = store.begin().await?;
        if deploy_holds::end(&mut tx, &hold.id, "expired", now).await? {
            give_back(&mut tx, &hold, now).await?;
            tx.commit().await?;
            tracing::debug!(hold = %hold.id, "hold expired");
        }
        Ok(Outcome::Done)
    }
}

#[async_trait]
impl JobHandler for HoldExpiry {
    async fn run(&self, job: &JobRow) -> Outcome {
        match self.expire(job).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}
