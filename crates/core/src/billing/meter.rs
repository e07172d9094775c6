//! Per-minute billing: periods opened and closed with every state change, a meter that charges closed
//! minutes to the ledger exactly once, low-balance warnings and depletion, and the billing records.
//!
//! A period bills one component of one resource (an instance's GPUs, its OS disk, its hibernation, a
//! volume, a snapshot) at a rate fixed when it starts; a later price change does not touch it. Its
//! per-minute rate is the hourly rate / 60 rounded once to the micro-unit, and a minute costs exactly that:
//! a period's cost is `per-minute rate × minutes` however ticks split it, and its record shows the same
//! product. The meter moves `billed_minutes` with a conditional update in the same transaction as the
//! ledger entry: a replayed or concurrent tick, or one after a restart, cannot bill a minute twice or skip
//! one. Records show what was charged (`billed_micros`) plus the minutes not charged yet, labelled.
//!
//! Billing is per whole minute, yet no second goes unbilled: what a closed period leaves short of a whole
//! minute is carried into the next period of the same resource, component and rate (`carried_ms`, counted
//! as already elapsed there), so a resource rebooted every 55 s is billed for its minutes all the same.
//! Only the unfinished minute of a resource's last period at a rate is never charged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use barrack_api::billing::{
    AggregatedBilling, BillingQuery, BillingSummary, CostLine, InstanceBillingRecord,
    InstanceBillingResponse, SnapshotBillingRecord, SnapshotBillingResponse, VolumeBillingRecord,
    VolumeBillingResponse,
};
use barrack_api::catalog::Amount;
use barrack_api::ledger::TransactionType;
use barrack_api::{Currency, PageQuery, Pagination, Tier};
use barrack_store::billing::{self, DuePeriod, PeriodFilter, PeriodRow};
use barrack_store::ledger::{self, LedgerEntryRow};
use barrack_store::{Tx, instances, volumes};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::json;

use super::depletion::STORED_COMPONENTS;
use crate::accounts::Caller;
use crate::catalog::{price, storage_hourly};
use crate::platform::clock::{format_ms, parse_iso};
use crate::platform::config::Config;
use crate::platform::countries;
use crate::platform::ids::{IdKind, new_id, random_alphanumeric, transaction_id};
use crate::platform::lifecycle::{BillingClass, InstanceState};
use crate::platform::money::{MICROS_PER_UNIT, from_micros};
use crate::platform::validate::Validator;
use crate::{Context, Error, Result};

pub(super) const MINUTE_MS: i64 = 60_000;
/// Periods charged per transaction by the meter.
const METER_BATCH: u32 = 5000;

/// What a resource should be billed for now.
pub(super) struct Charge {
    component: &'static str,
    pub(super) hourly: Decimal,
    /// JSON, compared as text with the open period's.
    details: String,
}

/// Opens and closes the periods of an instance to match its state, inside the transaction that changed
/// it (call after the change is written).
pub async fn sync_instance(
    tx: &mut Tx,
    config: &Config,
    instance_id: &str,
    now: i64,
) -> Result<()> {
    let Some(row) = instances::get(tx, instance_id).await? else {
        return Ok(());
    };
    let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
    let class = InstanceState::parse(&row.status).map(InstanceState::billing);
    let charges = instance_charges(config, &row, currency, class);
    sync(
        tx,
        ("instance", &row.id, &row.name, &row.account_id),
        currency,
        charges,
        now,
    )
    .await
}

/// What an instance is billed for per hour in a billing class.
pub(super) fn instance_charges(
    config: &Config,
    row: &instances::InstanceRow,
    currency: Currency,
    class: Option<BillingClass>,
) -> Vec<Charge> {
    let mut charges = Vec::new();
    match class {
        Some(BillingClass::Full) => {
            if let Some(model) = config.gpu_model(&row.gpu_model) {
                charges.push(Charge {
                    component: "compute",
                    hourly: price(&model.prices, currency) * Decimal::from(row.gpu_count),
                    details: json!({"gpu_type": row.gpu_model, "gpu_count": row.gpu_count, "tier": row.tier, "vm_name": row.vm_name}).to_string(),
                });
            }
            // A boot volume is billed as the volume it is; other OS disks belong to the instance.
            if row.boot_volume_id.is_none() {
                let rate = config.volume_type(&row.os_volume_type).map(|t| price(&t.prices, currency)).unwrap_or_default();
                charges.push(Charge {
                    component: "os_disk",
                    hourly: storage_hourly(rate, row.storage_gb as u32),
                    details: json!({"size_gb": row.storage_gb, "volume_type": row.os_volume_type}).to_string(),
                });
            }
        }
        Some(BillingClass::Hibernated) => charges.push(Charge {
            component: "hibernation",
            hourly: price(&config.billing.hibernation_prices, currency),
            details: json!({"gpu_type": row.gpu_model, "gpu_count": row.gpu_count, "tier": row.tier, "vm_name": row.vm_name}).to_string(),
        }),
        _ => {}
    }
    charges
}

/// The same for a volume: billed per TB-hour while it exists and is usable.
pub async fn sync_volume(tx: &mut Tx, config: &Config, volume_id: &str, now: i64) -> Result<()> {
    let Some(row) = volumes::get(tx, volume_id).await? else {
        return Ok(());
    };
    let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
    let billable = matches!(
        row.status.as_str(),
        "available" | "attaching" | "in-use" | "detaching" | "resizing" | "cloning"
    );
    let mut charges = Vec::new();
    if billable {
        let rate = config
            .volume_type(&row.volume_type)
            .map(|t| price(&t.prices, currency))
            .unwrap_or_default();
        charges.push(Charge {
            component: "storage",
            hourly: storage_hourly(rate, row.size_gb as u32),
            details: json!({"size_gb": row.size_gb, "volume_type": row.volume_type}).to_string(),
        });
    }
    sync(
        tx,
        ("volume", &row.id, &row.name, &row.account_id),
        currency,
        charges,
        now,
    )
    .await
}

/// The same for a snapshot: a fixed hourly rate for its tier while it exists (`billable`).
pub async fn sync_snapshot(
    tx: &mut Tx,
    config: &Config,
    (snapshot_id, name, account_id): (&str, &str, &str),
    (tier, currency): (Tier, Currency),
    billable: bool,
    now: i64,
) -> Result<()> {
    let mut charges = Vec::new();
    if billable && let Some(pricing) = config.snapshots.iter().find(|s| s.tier == tier) {
        charges.push(Charge {
            component: "snapshot",
            hourly: price(&pricing.prices, currency),
            details: json!({"size_gb": pricing.fixed_size_gb}).to_string(),
        });
    }
    sync(
        tx,
        ("snapshot", snapshot_id, name, account_id),
        currency,
        charges,
        now,
    )
    .await
}

async fn sync(
    tx: &mut Tx,
    (resource_type, resource_id, name, account_id): (&str, &str, &str, &str),
    currency: Currency,
    charges: Vec<Charge>,
    now: i64,
) -> Result<()> {
    let open = billing::open_periods(tx, resource_id).await?;
    // A period is kept while the resource is billed for the same thing; its rate stays as it started.
    let same = |p: &PeriodRow, c: &Charge| p.component == c.component && p.details == c.details;
    for period in &open {
        if !charges.iter().any(|c| same(period, c)) {
            billing::close(tx, &period.id, now).await?;
        }
    }
    let mut depleted = None;
    for charge in charges.iter().filter(|c| !open.iter().any(|p| same(p, c))) {
        // Stored data is not charged while the account's credit in the currency is out.
        if STORED_COMPONENTS.contains(&charge.component) {
            let out = match depleted {
                Some(out) => out,
                None => {
                    *depleted.insert(billing::is_depleted(tx, account_id, currency.as_str()).await?)
                }
            };
            if out {
                continue;
            }
        }
        let hourly_rate = charge.hourly.normalize().to_string();
        let previous = billing::last_closed(
            tx,
            (resource_id, charge.component),
            (currency.as_str(), &hourly_rate),
        )
        .await?;
        let carried_ms = previous.map_or(0, |(started_at, ended_at, carried_ms)| {
            (ended_at - started_at + carried_ms).max(0) % MINUTE_MS
        });
        let row = PeriodRow {
            id: period_id(resource_type),
            account_id: account_id.to_string(),
            resource_type: resource_type.to_string(),
            resource_id: resource_id.to_string(),
            resource_name: name.to_string(),
            component: charge.component.to_string(),
            details: charge.details.clone(),
            currency: currency.as_str().to_string(),
            hourly_rate,
            started_at: now,
            ended_at: None,
            billed_minutes: 0,
            billed_micros: 0,
            fully_billed: false,
            carried_ms,
        };
        billing::insert(&mut *tx, &row).await?;
    }
    Ok(())
}

/// `BRK-123456DB`: the documented form of billing ids (resource letter, then `B`).
fn period_id(resource_type: &str) -> String {
    let letter = match resource_type {
        "instance" => 'D',
        "volume" => 'V',
        _ => 'S',
    };
    format!("BRK-{}{letter}B", random_alphanumeric(6).to_uppercase())
}

/// Minutes of a period up to `now` (whole minutes only: billing is per closed minute), its carry included.
pub(super) fn minutes_until(period: &PeriodRow, now: i64) -> i64 {
    whole_minutes(period.started_at - period.carried_ms, period.ended_at, now)
}

/// Whole minutes from `counted_from` (a period's start less what it carries) to its end or `now`.
fn whole_minutes(counted_from: i64, ended_at: Option<i64>, now: i64) -> i64 {
    let end = ended_at.map_or(now, |e| e.min(now));
    ((end - counted_from) / MINUTE_MS).max(0)
}

pub(super) fn hourly(period: &PeriodRow) -> Result<Decimal> {
    stored_rate(&period.hourly_rate)
}

/// A stored hourly rate, where a rate that does not parse is an error rather than free.
pub(super) fn stored_rate(text: &str) -> Result<Decimal> {
    text.parse()
        .map_err(|_| Error::internal(format!("billing period with an unreadable rate '{text}'")))
}

/// The per-minute rate of an hourly one, in micro-units: hourly / 60, rounded half away from zero. A
/// minute is charged exactly this, so `per_minute_rate × minutes = total_cost` holds in every record.
fn per_minute_micros(hourly: Decimal) -> i64 {
    let micros = (hourly * Decimal::from(MICROS_PER_UNIT) / Decimal::from(60))
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(micros).unwrap_or(i64::MAX)
}

/// The per-minute rate as shown in billing records (the exact rate charged).
fn per_minute_rate(hourly: Decimal) -> Decimal {
    from_micros(per_minute_micros(hourly))
}

/// The cost of `minutes` at an hourly rate, in micro-units.
pub(super) fn cost_micros(hourly: Decimal, minutes: i64) -> i64 {
    per_minute_micros(hourly).saturating_mul(minutes)
}

/// What a record shows of a period at `now`: its minutes and cost so far, and of those what the meter has
/// not charged yet (minutes, micro-units).
struct Reading {
    minutes: i64,
    per_minute: Decimal,
    total_micros: i64,
    open_minutes: i64,
    open_micros: i64,
}

fn read_period(period: &PeriodRow, now: i64) -> Result<Reading> {
    let hourly = hourly(period)?;
    let minutes = minutes_until(period, now).max(period.billed_minutes);
    let open_minutes = minutes - period.billed_minutes;
    let open_micros = cost_micros(hourly, open_minutes);
    Ok(Reading {
        minutes,
        per_minute: per_minute_rate(hourly),
        total_micros: period.billed_micros + open_micros,
        open_minutes,
        open_micros,
    })
}

/// A record's description: what it bills, then the part not charged yet when there is one.
fn describe(base: String, reading: &Reading, currency: &str) -> String {
    if reading.open_minutes == 0 {
        return base;
    }
    format!(
        "{base}; not yet charged: {} minute{}, {} {currency}",
        reading.open_minutes,
        if reading.open_minutes == 1 { "" } else { "s" },
        from_micros(reading.open_micros)
    )
}

/// What one meter run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MeterRun {
    pub periods_billed: u64,
    pub minutes_billed: u64,
    /// What the run saw of each account it read, by account and currency.
    pub accounts: BTreeMap<(String, String), AccountUsage>,
}

/// An account as one meter run saw it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AccountUsage {
    /// The balance after the run's last charge to it; `None` when the run charged it nothing.
    pub balance_micros: Option<i64>,
    /// What its open periods cost per hour (its burn rate).
    pub hourly: Decimal,
}

#[derive(Clone)]
pub struct BillingService {
    pub(super) context: Arc<Context>,
}

/// What billing asks of the instances when an account's credit runs out. `compute` implements it, so
/// billing stops machines without depending on the domain that runs them.
#[async_trait]
pub trait Depletion: Send + Sync {
    /// Hibernates the account's running and stopped instances billed in `currency` (credit in another
    /// currency pays for the others); returns how many were started on their way.
    async fn hibernate_for_depletion(&self, account_id: &str, currency: Currency) -> Result<usize>;
}

impl BillingService {
    pub fn new(context: Arc<Context>) -> BillingService {
        BillingService { context }
    }

    /// Charges every closed minute not charged yet, in batches; safe to run concurrently and repeatedly.
    /// Each batch is read, charged and committed in one transaction that holds its periods, so when this
    /// returns every minute up to `now` is billed, by this run or by another.
    pub async fn meter(&self) -> Result<MeterRun> {
        let now = self.context.clock.now_ms();
        let mut run = MeterRun::default();
        let mut after: Option<(String, String)> = None;
        loop {
            let mut tx = self.context.store.begin().await?;
            let batch = self
                .context
                .store
                .lock_due_periods(
                    &mut tx,
                    after.as_ref().map(|(a, i)| (a.as_str(), i.as_str())),
                    METER_BATCH,
                )
                .await?;
            let Some(last) = batch.last() else { break };
            after = Some((last.account_id.clone(), last.id.clone()));
            self.meter_batch(&mut tx, &batch, now, &mut run).await?;
            tx.commit().await.map_err(Error::internal)?;
        }
        Ok(run)
    }

    /// Charges a batch inside its transaction: the periods' new billed minutes and one usage entry per
    /// account.
    async fn meter_batch(
        &self,
        tx: &mut Tx,
        batch: &[DuePeriod],
        now: i64,
        run: &mut MeterRun,
    ) -> Result<()> {
        let mut advances = Vec::new();
        let mut charged: HashMap<(&str, &str), (i64, u64)> = HashMap::new();
        for period in batch {
            // A rate that does not parse is never billed as free: the period waits, and says why.
            let hourly = match stored_rate(&period.hourly_rate) {
                Ok(rate) => rate,
                Err(e) => {
                    tracing::error!(period = %period.id, error = %e, "billing period not charged");
                    continue;
                }
            };
            let closed = period.ended_at.is_some_and(|end| end <= now);
            if !closed {
                run.accounts
                    .entry((period.account_id.clone(), period.currency.clone()))
                    .or_default()
                    .hourly += hourly;
            }
            let minutes =
                whole_minutes(period.started_at - period.carried_ms, period.ended_at, now)
                    .max(period.billed_minutes);
            if minutes == period.billed_minutes && !closed {
                continue;
            }
            // What was charged stays as it was; only the new minutes are added.
            let billed_micros =
                period.billed_micros + cost_micros(hourly, minutes - period.billed_minutes);
            let entry = charged
                .entry((&period.account_id, &period.currency))
                .or_default();
            entry.0 += billed_micros - period.billed_micros;
            entry.1 += 1;
            run.periods_billed += 1;
            run.minutes_billed += (minutes - period.billed_minutes) as u64;
            advances.push(billing::Advance {
                id: period.id.clone(),
                from_minutes: period.billed_minutes,
                to_minutes: minutes,
                billed_micros,
                fully_billed: closed,
            });
        }
        // The periods are this transaction's, so every advance applies; anything else is a bug, and the
        // transaction is dropped rather than charge what did not move.
        let moved = billing::advance_all(tx, &advances).await?;
        if moved != advances.len() as u64 {
            return Err(Error::internal(format!(
                "meter moved {moved} of {} billing periods",
                advances.len()
            )));
        }
        for ((account, currency), (micros, periods)) in charged {
            if micros == 0 {
                continue;
            }
            let entry = LedgerEntryRow {
                id: new_id(IdKind::Transaction),
                account_id: account.to_string(),
                currency: currency.to_string(),
                kind: TransactionType::Usage.as_str().into(),
                amount_micros: -micros,
                balance_after_micros: 0,
                description: format!(
                    "Usage of {periods} billing period{} up to {}",
                    if periods == 1 { "" } else { "s" },
                    format_ms(now - now.rem_euclid(MINUTE_MS))
                ),
                idempotency_key: None,
                created_by: Some("meter".into()),
                created_at: now,
            };
            if let Some(appended) = ledger::append(tx, &entry, transaction_id).await? {
                run.accounts
                    .entry((account.to_string(), currency.to_string()))
                    .or_default()
                    .balance_micros = Some(appended.balance_after_micros);
            }
        }
        Ok(())
    }

    /// One meter run, then what the balances of the accounts it charged call for (see [`Self::guard`]).
    pub async fn meter_and_guard(&self, instances: &dyn Depletion) -> Result<MeterRun> {
        let run = self.meter().await?;
        self.guard(&run, instances).await?;
        Ok(run)
    }

    /// A warning event when an account has less than a day, then less than an hour, of credit left at its
    /// current rate (once per threshold until it is topped up); when its balance reaches zero, hibernation
    /// of its instances and no more charges for what it stores (see `depletion`); then the review of
    /// the depletions under way.
    pub async fn guard(&self, run: &MeterRun, instances: &dyn Depletion) -> Result<()> {
        for ((account, currency), usage) in &run.accounts {
            let (Some(balance), Some(currency)) = (usage.balance_micros, Currency::parse(currency))
            else {
                continue; // not charged by this run
            };
            let (balance, burn) = (from_micros(balance), usage.hourly);
            let low = balance <= Decimal::ZERO
                || (burn > Decimal::ZERO && balance / burn < Decimal::from(24));
            if !low {
                continue;
            }
            // Decide on the balance as it is now: credits may have arrived since the charge.
            let balance = self
                .context
                .store
                .balances(account)
                .await?
                .into_iter()
                .find(|(c, _)| c == currency.as_str())
                .map(|(_, m)| from_micros(m))
                .unwrap_or_default();
            if balance <= Decimal::ZERO {
                self.suspend_storage(account, currency).await?;
                let n = instances.hibernate_for_depletion(account, currency).await?;
                if n > 0 {
                    tracing::warn!(
                        account,
                        hibernated = n,
                        "credit exhausted; instances hibernated"
                    );
                }
                continue;
            }
            if burn > Decimal::ZERO {
                let hours_left = balance / burn;
                for (threshold, label) in [(Decimal::from(1), "1h"), (Decimal::from(24), "24h")] {
                    if hours_left < threshold {
                        self.warn_once(account, label, balance, currency, hours_left)
                            .await?;
                        break;
                    }
                }
            }
        }
        self.review_depletions().await
    }

    async fn warn_once(
        &self,
        account: &str,
        label: &str,
        balance: Decimal,
        currency: Currency,
        hours: Decimal,
    ) -> Result<()> {
        let store = &self.context.store;
        let kind = format!("low_balance_{label}");
        let since = store.last_credit_at(account).await?.unwrap_or(0);
        if store.has_account_event_since(account, &kind, since).await? {
            return Ok(());
        }
        let now = self.context.clock.now_ms();
        let event = barrack_store::events::EventRow {
            id: format!("evt-{}", random_alphanumeric(16)),
            account_id: account.to_string(),
            resource_type: "account".into(),
            resource_id: account.to_string(),
            kind,
            from_status: None,
            to_status: None,
            actor: "system".into(),
            cause: format!(
                "Low balance: {} {currency} left, about {} hours at the current rate",
                crate::platform::money::display_amount(balance),
                hours.round_dp(1)
            ),
            sequence: 0,
            created_at: now,
        };
        barrack_store::events::insert(&mut &*store, &event).await?;
        Ok(())
    }

    /// `GET /api/instances/billing/`.
    pub async fn instance_records(
        &self,
        caller: &Caller,
        query: BillingQuery,
    ) -> Result<InstanceBillingResponse> {
        let (page, filter, currency) =
            self.list_args(caller, &query, "instance", &["compute", "hibernation"])?;
        let (rows, total, summary) = self.page_of(caller, &filter, page, false).await?;
        let now = self.context.clock.now_ms();
        let records = rows
            .iter()
            .map(|p| {
                let details: serde_json::Value =
                    serde_json::from_str(&p.details).unwrap_or_default();
                let reading = read_period(p, now)?;
                let minutes = reading.minutes;
                let gpu_type = details["gpu_type"].as_str().unwrap_or_default().to_string();
                let gpu_count = details["gpu_count"].as_u64().unwrap_or_default() as u32;
                let base = if p.component == "hibernation" {
                    format!(
                        "Hibernation billing - {minutes} minutes ({})",
                        p.resource_name
                    )
                } else {
                    format!(
                        "Deployment billing - {minutes} minutes for {gpu_type} x{gpu_count} ({})",
                        p.resource_name
                    )
                };
                Ok(InstanceBillingRecord {
                    billing_id: p.id.clone(),
                    instance_id: p.resource_id.clone(),
                    // The instance's name, as the documented example shows (not the hypervisor's).
                    vm_name: p.resource_name.clone(),
                    gpu_type,
                    gpu_count,
                    tier: details["tier"]
                        .as_str()
                        .and_then(Tier::parse)
                        .unwrap_or(Tier::Legacy),
                    start_time: format_ms(p.started_at),
                    end_time: p.ended_at.map(format_ms),
                    total_duration_minutes: minutes as u64,
                    per_minute_rate: Amount(reading.per_minute),
                    total_cost: Amount(from_micros(reading.total_micros)),
                    currency: Currency::parse(&p.currency).unwrap_or(currency),
                    status: status_of(p).into(),
                    description: describe(base, &reading, &p.currency),
                })
            })
            .collect::<Result<_>>()?;
        let pagination = Pagination::new(page, total);
        Ok(InstanceBillingResponse {
            success: true,
            records,
            summary,
            total,
            page: pagination.page,
            limit: pagination.limit,
            total_pages: pagination.total_pages,
            currency,
        })
    }

    /// `GET /api/volumes/billing/`: volumes, and instances' own OS disks.
    pub async fn volume_records(
        &self,
        caller: &Caller,
        query: BillingQuery,
    ) -> Result<VolumeBillingResponse> {
        let (page, mut filter, currency) =
            self.list_args(caller, &query, "volume", &["storage", "os_disk"])?;
        filter.resource_types.push("instance".into());
        let (rows, total, summary) = self.page_of(caller, &filter, page, true).await?;
        let now = self.context.clock.now_ms();
        let records = rows
            .iter()
            .map(|p| {
                let details: serde_json::Value = serde_json::from_str(&p.details).unwrap_or_default();
                let reading = read_period(p, now)?;
                let minutes = reading.minutes;
                let size_gb = details["size_gb"].as_u64().unwrap_or_default() as u32;
                let volume_type = details["volume_type"].as_str().unwrap_or_default().to_string();
                let name = if p.component == "os_disk" { format!("{} (OS disk)", p.resource_name) } else { p.resource_name.clone() };
                Ok(VolumeBillingRecord {
                    billing_id: p.id.clone(),
                    volume_id: p.resource_id.clone(),
                    description: describe(
                        format!("Storage billing - {minutes} minutes for {size_gb} GB {volume_type} ({name})"),
                        &reading,
                        &p.currency,
                    ),
                    volume_name: name,
                    size_gb,
                    volume_type,
                    start_time: format_ms(p.started_at),
                    end_time: p.ended_at.map(format_ms),
                    total_duration_minutes: minutes as u64,
                    per_minute_rate: Amount(reading.per_minute),
                    total_cost: Amount(from_micros(reading.total_micros)),
                    currency: Currency::parse(&p.currency).unwrap_or(currency),
                    status: status_of(p).into(),
                })
            })
            .collect::<Result<_>>()?;
        let pagination = Pagination::new(page, total);
        Ok(VolumeBillingResponse {
            success: true,
            records,
            summary,
            total,
            page: pagination.page,
            limit: pagination.limit,
            total_pages: pagination.total_pages,
            currency,
        })
    }

    /// `GET /api/snapshots/billing/`.
    pub async fn snapshot_records(
        &self,
        caller: &Caller,
        query: BillingQuery,
    ) -> Result<SnapshotBillingResponse> {
        let (page, filter, currency) = self.list_args(caller, &query, "snapshot", &["snapshot"])?;
        let (rows, total, summary) = self.page_of(caller, &filter, page, true).await?;
        let now = self.context.clock.now_ms();
        let records = rows
            .iter()
            .map(|p| {
                let details: serde_json::Value =
                    serde_json::from_str(&p.details).unwrap_or_default();
                let reading = read_period(p, now)?;
                let minutes = reading.minutes;
                Ok(SnapshotBillingRecord {
                    billing_id: p.id.clone(),
                    snapshot_id: p.resource_id.clone(),
                    snapshot_name: p.resource_name.clone(),
                    size_gb: details["size_gb"].as_u64().unwrap_or_default() as u32,
                    start_time: format_ms(p.started_at),
                    end_time: p.ended_at.map(format_ms),
                    total_duration_minutes: minutes as u64,
                    per_minute_rate: Amount(reading.per_minute),
                    total_cost: Amount(from_micros(reading.total_micros)),
                    currency: Currency::parse(&p.currency).unwrap_or(currency),
                    status: status_of(p).into(),
                    description: describe(
                        format!("Snapshot billing - {minutes} minutes ({})", p.resource_name),
                        &reading,
                        &p.currency,
                    ),
                })
            })
            .collect::<Result<_>>()?;
        let pagination = Pagination::new(page, total);
        Ok(SnapshotBillingResponse {
            success: true,
            records,
            summary,
            total,
            page: pagination.page,
            limit: pagination.limit,
            total_pages: pagination.total_pages,
            currency,
        })
    }

    /// `GET /api/billing/`: cost per kind of resource within [from, to) (to defaults to now).
    pub async fn aggregate(
        &self,
        caller: &Caller,
        query: BillingQuery,
    ) -> Result<AggregatedBilling> {
        let (_, filter, currency) = self.list_args(caller, &query, "instance", &[])?;
        let now = self.context.clock.now_ms();
        let from = filter.from_ms;
        let to = filter.to_ms.unwrap_or(now).min(now);
        let all = PeriodFilter {
            from_ms: from,
            to_ms: Some(to),
            ..Default::default()
        };
        let periods = self
            .context
            .store
            .all_periods(caller.account_id(), &all)
            .await?;
        let mut lines: HashMap<&str, (u64, i64, u64)> = HashMap::new();
        for p in &periods {
            // Minutes of the period inside the range, on the period's own minute grid.
            let start = from.map_or(0, |f| {
                ((f - (p.started_at - p.carried_ms)).max(0) + MINUTE_MS - 1) / MINUTE_MS
            });
            let end = minutes_until(p, to);
            if end <= start {
                continue;
            }
            let kind = match (p.resource_type.as_str(), p.component.as_str()) {
                ("instance", "os_disk") | ("volume", _) => "volumes",
                ("instance", _) => "instances",
                _ => "snapshots",
            };
            let cost = cost_micros(hourly(p)?, end - start);
            let line = lines.entry(kind).or_default();
            line.0 += (end - start) as u64;
            line.1 += cost;
            line.2 += 1;
        }
        let line = |kind: &str| {
            let (minutes, micros, records) = lines.get(kind).copied().unwrap_or_default();
            CostLine {
                minutes,
                cost: Amount(from_micros(micros)),
                records,
            }
        };
        let total: i64 = lines.values().map(|l| l.1).sum();
        Ok(AggregatedBilling {
            from: from.map(format_ms),
            to: format_ms(to),
            currency,
            instances: line("instances"),
            volumes: line("volumes"),
            snapshots: line("snapshots"),
            total_cost: Amount(from_micros(total)),
        })
    }

    fn list_args(
        &self,
        caller: &Caller,
        query: &BillingQuery,
        resource_type: &str,
        components: &[&str],
    ) -> Result<(barrack_api::PageRequest, PeriodFilter, Currency)> {
        let mut v = Validator::new();
        let page = match (PageQuery {
            page: query.page,
            limit: query.limit,
        })
        .validate()
        {
            Ok(p) => Some(p),
            Err((field, message)) => {
                v.add(field, message);
                None
            }
        };
        let mut time = |field: &str, text: &Option<String>| {
            text.as_deref().and_then(|t| {
                let parsed = parse_iso(t);
                v.check(
                    parsed.is_some(),
                    field,
                    "Use an ISO-8601 time such as 2025-01-15T10:30:00Z",
                );
                parsed
            })
        };
        let from_ms = time("from", &query.from);
        let to_ms = time("to", &query.to);
        v.finish()?;
        let filter = PeriodFilter {
            resource_types: vec![resource_type.to_string()],
            components: components.iter().map(|c| c.to_string()).collect(),
            from_ms,
            to_ms,
            resource_id: None,
        };
        Ok((
            page.expect("validated"),
            filter,
            countries::currency_for(caller.account.country.as_deref()),
        ))
    }

    async fn page_of(
        &self,
        caller: &Caller,
        filter: &PeriodFilter,
        page: barrack_api::PageRequest,
        with_size: bool,
    ) -> Result<(Vec<PeriodRow>, u64, BillingSummary)> {
        let (rows, total) = self
            .context
            .store
            .periods(caller.account_id(), filter, page.offset(), page.limit)
            .await?;
        let all = self
            .context
            .store
            .all_periods(caller.account_id(), filter)
            .await?;
        let now = self.context.clock.now_ms();
        let readings = all
            .iter()
            .map(|p| read_period(p, now))
            .collect::<Result<Vec<_>>>()?;
        let minutes: i64 = readings.iter().map(|r| r.minutes).sum();
        let cost: i64 = readings.iter().map(|r| r.total_micros).sum();
        let count = |status: &str| all.iter().filter(|p| status_of(p) == status).count() as u64;
        let size: u64 = all
            .iter()
            .filter(|p| p.ended_at.is_none())
            .filter_map(|p| {
                serde_json::from_str::<serde_json::Value>(&p.details).ok()?["size_gb"].as_u64()
            })
            .sum();
        let average = if all.is_empty() {
            Decimal::ZERO
        } else {
            (Decimal::from(minutes) / Decimal::from(all.len() as u64)).round_dp(2)
        };
        let summary = BillingSummary {
            totalMinutes: minutes as u64,
            activeCount: count("active"),
            completedCount: count("completed"),
            hibernatedCount: count("hibernated"),
            averageUsage: Amount(average.normalize()),
            totalCost: Amount(crate::platform::money::display_amount(from_micros(cost))),
            totalSizeGB: with_size.then_some(size),
        };
        Ok((rows, total, summary))
    }
}

fn status_of(period: &PeriodRow) -> &'static str {
    match (period.ended_at, period.component.as_str()) {
        (Some(_), _) => "completed",
        (None, "hibernation") => "hibernated",
        (None, _) => "active",
    }
}

/// What one resource has cost so far and, when its compute is running, since when (the dashboard's
/// instance page: cost so far and uptime).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceCost {
    pub total: Decimal,
    pub currency: Option<Currency>,
    /// Start of the open `compute` period: the resource has been running since then.
    pub running_since_ms: Option<i64>,
}

impl BillingService {
    /// Every billing period of one of the caller's resources, read like the billing records are (the
    /// minutes of open periods count up to now).
    pub async fn resource_cost(&self, caller: &Caller, resource_id: &str) -> Result<ResourceCost> {
        let filter = PeriodFilter {
            resource_id: Some(resource_id.to_string()),
            ..Default::default()
        };
        let periods = self
            .context
            .store
            .all_periods(caller.account_id(), &filter)
            .await?;
        let now = self.context.clock.now_ms();
        let mut micros = 0i64;
        for p in &periods {
            micros += read_period(p, now)?.total_micros;
        }
        Ok(ResourceCost {
            total: from_micros(micros),
            currency: periods.first().and_then(|p| Currency::parse(&p.currency)),
            running_since_ms: periods
                .iter()
                .filter(|p| p.component == "compute" && p.ended_at.is_none())
                .map(|p| p.started_at)
                .max(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn the_documented_example_costs_1195_2_over_7200_minutes() {
        let hourly = d("9.96");
        assert_eq!(from_micros(cost_micros(hourly, 7200)), d("1195.2"));
        assert_eq!(per_minute_rate(hourly), d("0.166"));
    }

    #[test]
    fn a_record_is_its_per_minute_rate_times_its_minutes() {
        // 100 GB of NVMe: 0.029296875 per hour, 0.00048828125 per minute, charged 0.000488.
        let hourly = storage_hourly(d("0.30"), 100);
        assert_eq!(per_minute_rate(hourly), d("0.000488"));
        let mut billed = 0;
        for minute in 1..=7200 {
            billed += cost_micros(hourly, 1);
            assert_eq!(billed, cost_micros(hourly, minute));
        }
        assert_eq!(from_micros(billed), per_minute_rate(hourly) * d("7200"));
        assert_eq!(from_micros(billed), d("3.5136"));
        // EUR 2.69 an hour: 0.044833 a minute.
        assert_eq!(per_minute_rate(d("2.69")), d("0.044833"));
    }

    #[test]
    fn a_stored_rate_that_does_not_parse_is_an_error() {
        assert!(stored_rate("0.5").is_ok());
        assert!(stored_rate("abc").is_err());
        assert!(stored_rate("").is_err());
    }
}
