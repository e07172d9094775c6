//! Instances: the service and what its parts share, public addresses and security rules. Deploy is in
//! `deploy/`, restoring a snapshot in `restore`, lifecycle actions in `actions`, what an instance looks
//! like in `views`.
//!
//! An API call validates, then writes the instance's new (transitional) state, its event and the job that
//! carries the change out, in one transaction; workers (`instance_worker`) finish it through the driver.

use std::sync::Arc;

use crate::platform::events::{self, NewEvent};
use barrack_api::Currency;
use barrack_api::instances::{SecurityRule, SecurityRuleRequest, TogglePublicIp};
use barrack_store::deploy_holds::DeployHoldRow;
use barrack_store::instances::{self, InstanceChange, InstanceRow};
use barrack_store::{Tx, capacity, public_ips};
use rand::Rng;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::accounts::{Caller, actor};
use crate::network::{ValidRule, assign_address, rule_view, valid_rule_of, validate_rule};
use crate::platform::config::{Config, GpuModelConfig};
use crate::platform::idempotency;
use crate::platform::ids::{IdDraws, IdKind, name_taken_as_conflict, new_id};
use crate::platform::jobs::{NewJob, enqueue};
use crate::platform::lifecycle::{Action, BillingClass, InstanceState};
use crate::platform::validate::{Validator, length_between, only_chars};
use crate::storage::images::ImageService;
use crate::storage::volumes::VolumeService;
use crate::{Context, Error, Result};
use barrack_api::rules;

/// Largest `cloud_init` document accepted, in bytes.
pub const MAX_CLOUD_INIT_BYTES: usize = rules::SCRIPT_MAX_BYTES;
/// Rules one instance may carry of its own.
pub const MAX_RULES_PER_INSTANCE: usize = 50;
/// Data volumes one deploy may create and attach, new and existing together.
pub const MAX_VOLUMES_PER_DEPLOY: usize = 16;
pub const JOB_KIND: &str = "instance";

/// What an instance job carries: the action, and the generation the instance had once it was requested
/// (a job whose instance has moved on since is obsolete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceJob {
    pub action: JobAction,
    pub generation: i64,
    /// For actions that boot a machine: how many times the job has found it still booting since the
    /// driver accepted the action (0: not submitted yet, or submitted by a run that did not finish).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observations: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
    pub(super) context: Arc<Context>,
}

impl InstanceService {
    pub fn new(context: Arc<Context>) -> InstanceService {
        InstanceService { context }
    }

    pub(super) fn config(&self) -> &Config {
        &self.context.config
    }

    pub(super) fn volumes(&self) -> VolumeService {
        VolumeService::new(self.context.clone())
    }

    pub(super) fn images(&self) -> ImageService {
        ImageService::new(self.context.clone())
    }

    pub(super) fn now(&self) -> i64 {
        self.context.clock.now_ms()
    }

    /// Writes a new instance and takes its public address and its GPUs, in that order, in the caller's
    /// transaction: false when its region lacks the GPUs (drop the transaction, then answer 503 with
    /// [`InstanceService::stock_message`]); the rest as [`InstanceService::write_new`].
    pub(super) async fn place_new(
        &self,
        tx: &mut Tx,
        row: &mut InstanceRow,
        now: i64,
    ) -> Result<bool> {
        self.write_new(tx, row, None, now).await?;
        self.take_address(tx, row, false).await?;
        self.allocate_gpus(tx, row, now).await
    }

    /// Takes the new instance's GPUs from its region's stock: false when there are not enough.
    pub(super) async fn allocate_gpus(
        &self,
        tx: &mut Tx,
        row: &InstanceRow,
        now: i64,
    ) -> Result<bool> {
        Ok(capacity::allocate(tx, &row.region, &row.gpu_model, row.gpu_count, now).await?)
    }

    /// Writes a new instance (taking over its hold), in the caller's transaction; its address
    /// ([`Self::take_address`]) and GPUs are the caller's to take. 409 on a name the account uses or a
    /// hold no longer held. An id already taken (see [`instances::insert`]) is replaced by a fresh one,
    /// so read `row.id` after.
    pub(super) async fn write_new(
        &self,
        tx: &mut Tx,
        row: &mut InstanceRow,
        hold: Option<&DeployHoldRow>,
        now: i64,
    ) -> Result<()> {
        let mut draws = IdDraws::of("instance");
        while !name_taken_as_conflict(
            instances::insert(&mut *tx, row).await,
            "An instance",
            &row.name,
        )? {
            draws.taken()?;
            row.id = new_id(IdKind::Instance);
        }
        if let Some(hold) = hold {
            crate::compute::deploy::holds::consume(tx, hold, &row.id, now).await?;
        }
        Ok(())
    }

    /// Takes the new instance's public address, when it asked for one: the one its hold passed on
    /// (`held`; only such an address can be its already) or a free one (503 without). Transactions take
    /// an address after the account's lock and before the region's stock, so none waits for another
    /// holding them the other way round.
    pub(super) async fn take_address(
        &self,
        tx: &mut Tx,
        row: &InstanceRow,
        held: bool,
    ) -> Result<()> {
        if row.public_ip {
            self.reserve_address(tx, &row.region, &row.id, held).await?;
        }
        Ok(())
    }

    /// Where the model has `count` GPUs free, for the 503 message.
    pub(super) async fn stock_message(
        &self,
        region: &str,
        model: &GpuModelConfig,
        count: u32,
    ) -> Result<String> {
        let capacity = self.context.store.capacity().await?;
        let elsewhere: Vec<String> = capacity
            .iter()
            .filter(|c| c.gpu_model == model.name && c.free() >= i64::from(count))
            .filter(|c| self.config().offers(&c.region, &c.gpu_model))
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

    /// Takes a public address of `region` for `holder` (an instance or a deploy hold), or finds the one
    /// it holds (unless `may_hold` says it cannot hold one); 503 when the pool is empty.
    pub(super) async fn reserve_address(
        &self,
        tx: &mut Tx,
        region: &str,
        holder: &str,
        may_hold: bool,
    ) -> Result<String> {
        assign_address(tx, self.config(), (region, holder), may_hold, self.now())
            .await?
            .ok_or_else(|| {
                Error::PublicIpUnavailable(format!(
                    "No public IP address is free in {region}; deploy with public_ip: false or try another region"
                ))
            })
    }

    pub(super) async fn enqueue(
        &self,
        tx: &mut Tx,
        id: &str,
        action: JobAction,
        generation: i64,
        now: i64,
    ) -> Result<()> {
        let payload = serde_json::to_string(&InstanceJob {
            action,
            generation,
            observations: 0,
        })
        .map_err(Error::internal)?;
        let job = NewJob {
            kind: JOB_KIND,
            resource_id: id,
            payload,
            max_attempts: i64::from(self.config().jobs.max_attempts),
        };
        enqueue(tx, job, now).await?;
        Ok(())
    }

    pub(super) async fn owned(&self, caller: &Caller, id: &str) -> Result<InstanceRow> {
        self.context
            .store
            .instance(caller.account_id(), id)
            .await?
            .filter(|i| i.status != InstanceState::Deleted.as_str())
            .ok_or_else(|| Error::not_found("Instance", id))
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
            let address = if let (Some(_), Some(forwarding)) = (row.ssh_port, &row.ip_address) {
                // Reached through a port its host forwards: the guest has no address of its own to
                // give or take, the host's stays.
                forwarding.clone()
            } else if enable {
                self.reserve_address(&mut tx, &row.region, &row.id, true)
                    .await?
            } else {
                public_ips::release(&mut tx, &row.id).await?;
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
            let toggled = TogglePublicIp {
                instance_id: row.id,
                public_ip: enable,
                ip_status: if address.is_some() {
                    "assigned"
                } else {
                    "pending"
                }
                .into(),
                ip_address: address,
            };
            // A toggle retried after a lost answer must not toggle back: the answer commits with it.
            idempotency::commit(tx, &toggled).await?;
            return Ok(toggled);
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
        // Checked and added under the account's lock: concurrent additions cannot pass the limit together.
        let mut tx = self.context.store.begin().await?;
        barrack_store::firewalls::lock_account(&mut tx, caller.account_id()).await?;
        let existing = barrack_store::instances::rules_of(&mut tx, &row.id).await?;
        if existing.iter().any(|r| valid_rule_of(r).same_as(&rule)) {
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
        let rule_id = insert_rule(&mut tx, &row.id, &rule, now).await?;
        let cause = format!("rule {rule_id} added");
        let attempts = i64::from(self.config().jobs.max_attempts);
        crate::network::firewalls::enqueue_program(&mut tx, &row.id, &cause, attempts, now).await?;
        let added = rule_view(&rule_id, &rule);
        idempotency::commit(tx, &added).await?;
        self.context.work.notify_one();
        Ok(added)
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

/// Hourly rate of a volume of `volume_type`, exact.
pub(super) fn volume_rate(
    config: &Config,
    volume_type: &str,
    size_gb: u32,
    currency: Currency,
) -> Decimal {
    crate::storage::volumes::hourly_rate(config, volume_type, size_gb, currency)
}

/// `barrack-h100s-x7k`: a short host-style name from the model, with a random tail.
pub(super) fn vm_name(model: &str) -> String {
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
    config: &Config,
    row: &InstanceRow,
    now: i64,
) -> Result<Option<String>> {
    if row.public_ip {
        Ok(assign_address(tx, config, (&row.region, &row.id), true, now).await?)
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

pub(super) async fn insert_rule(
    tx: &mut Tx,
    instance_id: &str,
    rule: &ValidRule,
    now: i64,
) -> Result<String> {
    let mut id = new_id(IdKind::Rule);
    let mut draws = IdDraws::of("rule");
    while !barrack_store::instances::insert_rule(
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
    .await?
    {
        draws.taken()?;
        id = new_id(IdKind::Rule);
    }
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
    let from = from.map(InstanceState::as_str);
    let event = NewEvent {
        account_id: &row.account_id,
        resource_type: "instance",
        resource_id: &row.id,
        kind: events::change_kind(from),
        from,
        to: Some(to.as_str()),
        actor,
        cause,
        sequence,
    };
    events::record(tx, event, now).await?;
    // A new instance in a state billed nothing has no periods to open or close.
    if from.is_none() && to.billing() == BillingClass::Free {
        return Ok(());
    }
    // Billing follows every state change, in the same transaction.
    crate::billing::sync_instance_in(tx, config, row, Some(to), now).await
}
