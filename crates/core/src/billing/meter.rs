//! Per-minute billing: periods opened and closed with every state change, a meter that charges closed
//! minutes to the ledger exactly once, low-balance warnings and depletion (the records are `records`).
//!
//! A period bills one component of one resource (an instance's GPUs, its OS disk, its hibernation, a
//! volume, a snapshot) at a rate fixed when it starts; a later price change does not touch it. Its
//! per-minute rate is the hourly rate / 60 rounded once to the micro-unit, stored with the period
//! (`per_minute_micros`), and a minute costs exactly that: a period's cost is `per-minute rate × minutes`
//! however runs split it, and its record shows the same product. Records show what was charged
//! (`billed_micros`) plus the minutes not charged yet, labelled.
//!
//! The meter never reads a period into the server. It first gives the periods that lack a per-minute
//! rate (from before it was stored) the one their hourly rate makes; one whose rate does not parse keeps
//! none and is never charged. Then it walks the unbilled periods in chunks (on SQLite in rowid order, the
//! order of the table's pages, from the first unbilled one, so that a chunk reads and rewrites each of its
//! pages once; on PostgreSQL in the unbilled index's (account, id) order, the order its locks are taken
//! in), and for each chunk in one transaction: one aggregate sums by account, currency
//! and rate what the chunk's minutes since they were last billed cost (PostgreSQL locks the chunk's rows
//! in that statement; SQLite's write lock holds them already), one update moves `billed_minutes` and
//! `billed_micros` to the same figures and marks the closed periods billed to their end, and one statement
//! adds the sums to what each account owes (`meter_owed`). The update must move exactly the periods
//! summed, or the transaction is dropped and the chunk done again, so a replayed or concurrent run, a
//! state change closing a period meanwhile, or a run after a restart, cannot bill a minute twice, skip
//! one, or owe other than what the periods moved. The run's end charges what is owed: one usage entry
//! per account and currency, in the transaction that takes it off `meter_owed` (whichever run gets there
//! first, a row left by a run that stopped midway included). A chunk so writes a small row per account it
//! touches rather than a ledger entry, which lets chunks be small (what a request waits for behind one on
//! SQLite), and an account sees one entry a run. Between a chunk and its run's end (seconds) the periods
//! show minutes the balance has not been charged for yet.
//!
//! Billing is per whole minute, yet no second goes unbilled: what a closed period leaves short of a whole
//! minute is carried into the next period of the same resource, component and rate (`carried_ms`, counted
//! as already elapsed there), so a resource rebooted every 55 s is billed for its minutes all the same.
//! Only the unfinished minute of a resource's last period at a rate is never charged.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use barrack_api::ledger::TransactionType;
use barrack_api::{Currency, Tier};
use barrack_store::billing::{self, PeriodRow};
use barrack_store::ledger::{self, LedgerEntryRow};
use barrack_store::{Tx, events, instances, volumes};
use rust_decimal::Decimal;
use serde_json::json;

use super::depletion::STORED_COMPONENTS;
use crate::catalog::{price, storage_hourly};
use crate::platform::clock::format_ms;
use crate::platform::config::Config;
use crate::platform::ids::{IdDraws, IdKind, billing_id, new_id, transaction_id};
use crate::platform::lifecycle::{BillingClass, InstanceState};
use crate::platform::money::{from_micros, per_minute_micros};
use crate::{Context, Error, Result};

pub(super) const MINUTE_MS: i64 = 60_000;
/// Periods given their per-minute charge per transaction before a meter run.
const RATE_BATCH: u32 = 5000;
/// Accounts charged per transaction at a meter run's end.
const SETTLE_BATCH: u32 = 500;

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
    let state = InstanceState::parse(&row.status);
    sync_instance_in(tx, config, &row, state, now).await
}

/// [`sync_instance`] for an instance the caller has just moved to `state`, without reading it again:
/// `row` is as it was before that change, which an instance's charges do not depend on but for its state
/// (an `InstanceChange` touches none of its shape, tier, name or currency).
pub async fn sync_instance_in(
    tx: &mut Tx,
    config: &Config,
    row: &instances::InstanceRow,
    state: Option<InstanceState>,
    now: i64,
) -> Result<()> {
    let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
    let charges = instance_charges(config, row, currency, state.map(InstanceState::billing));
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
    let shape = instances::HeadingShape {
        status: row.status.clone(),
        gpu_model: row.gpu_model.clone(),
        gpu_count: row.gpu_count,
        os_volume_type: row.os_volume_type.clone(),
        storage_gb: row.storage_gb,
        boot_volume: row.boot_volume_id.is_some(),
        instances: 1,
    };
    let Some(class) = class else {
        return Vec::new();
    };
    priced_components(config, &shape, currency, class)
        .into_iter()
        .map(|(component, hourly)| Charge {
            component,
            hourly,
            details: match component {
                "os_disk" => json!({"size_gb": row.storage_gb, "volume_type": row.os_volume_type}),
                _ => json!({"gpu_type": row.gpu_model, "gpu_count": row.gpu_count, "tier": row.tier, "vm_name": row.vm_name}),
            }
            .to_string(),
        })
        .collect()
}

/// How much more `row` costs per hour billed as `to` than as `from` (none when less): what a change of
/// its billing class adds to the account's committed burn, where the periods of `from` are counted.
pub fn hourly_increase(
    config: &Config,
    row: &instances::InstanceRow,
    currency: Currency,
    from: BillingClass,
    to: BillingClass,
) -> Decimal {
    let hourly = |class| -> Decimal {
        instance_charges(config, row, currency, Some(class))
            .iter()
            .map(|charge| charge.hourly)
            .sum()
    };
    (hourly(to) - hourly(from)).max(Decimal::ZERO)
}

/// What an instance of one shape heading to a billing class will cost per hour once there: the sum of
/// what [`instance_charges`] bills it for.
pub(super) fn heading_hourly(
    config: &Config,
    shape: &instances::HeadingShape,
    currency: Currency,
    class: BillingClass,
) -> Decimal {
    priced_components(config, shape, currency, class)
        .into_iter()
        .map(|(_, hourly)| hourly)
        .sum()
}

/// The components an instance of `shape` is billed for per hour in `class`, with their prices.
fn priced_components(
    config: &Config,
    shape: &instances::HeadingShape,
    currency: Currency,
    class: BillingClass,
) -> Vec<(&'static str, Decimal)> {
    let mut components = Vec::new();
    match class {
        BillingClass::Full => {
            if let Some(hourly) =
                compute_hourly(config, &shape.gpu_model, shape.gpu_count, currency)
            {
                components.push(("compute", hourly));
            }
            // A boot volume is billed as the volume it is; other OS disks belong to the instance.
            if !shape.boot_volume {
                let disk =
                    os_disk_hourly(config, &shape.os_volume_type, shape.storage_gb, currency);
                components.push(("os_disk", disk));
            }
        }
        BillingClass::Hibernated => components.push((
            "hibernation",
            price(&config.billing.hibernation_prices, currency),
        )),
        _ => {}
    }
    components
}

/// The GPUs' hourly price, or `None` for a GPU model the catalog no longer sells.
fn compute_hourly(
    config: &Config,
    gpu_model: &str,
    gpu_count: i64,
    currency: Currency,
) -> Option<Decimal> {
    config
        .gpu_model(gpu_model)
        .map(|model| price(&model.prices, currency) * Decimal::from(gpu_count))
}

/// The hourly price of an instance's own OS disk.
fn os_disk_hourly(config: &Config, volume_type: &str, size_gb: i64, currency: Currency) -> Decimal {
    let rate = config
        .volume_type(volume_type)
        .map(|t| price(&t.prices, currency))
        .unwrap_or_default();
    storage_hourly(rate, size_gb as u32)
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
    let billing::ResourcePeriods { open, any_closed } =
        billing::resource_periods(tx, resource_id).await?;
    // A period is kept while the resource is billed for the same thing; its rate stays as it started.
    let same = |p: &PeriodRow, c: &Charge| p.component == c.component && p.details == c.details;
    for period in &open {
        if !charges.iter().any(|c| same(period, c)) {
            billing::close(tx, &period.id, now).await?;
        }
    }
    let mut depleted = None;
    let mut opened = Vec::new();
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
        let previous = if any_closed {
            billing::last_closed(
                tx,
                (resource_id, charge.component),
                (currency.as_str(), &hourly_rate),
            )
            .await?
        } else {
            None
        };
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
            per_minute_micros: Some(per_minute_micros(charge.hourly)),
        };
        opened.push(row);
    }
    // Ids are random: the few found taken are drawn again.
    let mut draws = IdDraws::of("billing period");
    loop {
        let taken = billing::insert_all(&mut *tx, &opened).await?;
        if taken.is_empty() {
            return Ok(());
        }
        draws.taken()?;
        opened.retain(|p| taken.contains(&p.id));
        for period in &mut opened {
            period.id = period_id(resource_type);
        }
    }
}

/// `BRK-123456DB`: the documented form of billing ids (the resource's id form, then `B`).
fn period_id(resource_type: &str) -> String {
    let kind = match resource_type {
        "instance" => IdKind::Instance,
        "volume" => IdKind::Volume,
        _ => IdKind::Snapshot,
    };
    billing_id(kind)
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
pub(crate) fn stored_rate(text: &str) -> Result<Decimal> {
    text.parse()
        .map_err(|_| Error::internal(format!("billing period with an unreadable rate '{text}'")))
}

/// The cost of `minutes` at an hourly rate, in micro-units.
pub(super) fn cost_micros(hourly: Decimal, minutes: i64) -> i64 {
    per_minute_micros(hourly).saturating_mul(minutes)
}

/// What one meter run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MeterRun {
    /// The time the run billed up to: every minute closed by then is charged.
    pub billed_until_ms: i64,
    pub periods_billed: u64,
    pub minutes_billed: u64,
    /// What the run saw of each account it read, by account and currency.
    pub accounts: BTreeMap<(String, String), AccountUsage>,
    /// How long it rested between chunks ([`MeterPace::Background`]).
    pub rested: std::time::Duration,
}

/// How a meter run shares the database with requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterPace {
    /// Chunk after chunk: clock moves, tests and the bench, where the run is what is waited for.
    Full,
    /// After each chunk, rests `billing.meter_rest_percent` of the time the chunk took (none by default),
    /// capping the share of a core a run over many periods takes (the server's periodic runs).
    Background,
}

impl MeterRun {
    /// Adds what a later chunk of the same run did.
    fn add_to(self, run: &mut MeterRun) {
        run.periods_billed += self.periods_billed;
        run.minutes_billed += self.minutes_billed;
        for (key, usage) in self.accounts {
            let seen = run.accounts.entry(key).or_default();
            seen.hourly += usage.hourly;
            seen.per_minute_micros += usage.per_minute_micros;
            if usage.balance_micros.is_some() {
                seen.balance_micros = usage.balance_micros;
            }
        }
    }
}

/// An account as one meter run saw it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AccountUsage {
    /// The balance after the run's last charge to it; `None` when the run charged it nothing.
    pub balance_micros: Option<i64>,
    /// What its open periods cost per hour (its burn rate).
    pub hourly: Decimal,
    /// What a minute of its open periods is charged, in micro-units (the sum of their per-minute rates).
    pub per_minute_micros: i64,
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

    /// Charges every closed minute not charged yet, chunk by chunk; safe to run concurrently and
    /// repeatedly. Each chunk is summed, charged and committed in one transaction that holds its periods,
    /// so when this returns every minute up to `now` is billed, by this run or by another.
    pub async fn meter(&self) -> Result<MeterRun> {
        self.meter_paced(MeterPace::Full).await
    }

    /// [`Self::meter`] at `pace`.
    pub async fn meter_paced(&self, pace: MeterPace) -> Result<MeterRun> {
        let size = self.context.config.billing.meter_chunk_periods;
        self.meter_walking(size, billing::WalkOrder::Physical, pace)
            .await
    }

    /// [`Self::meter`] with chunks of `size` periods (tests put chunk boundaries where they want them).
    pub async fn meter_in_chunks(&self, size: u32) -> Result<MeterRun> {
        self.meter_walking(size, billing::WalkOrder::Physical, MeterPace::Full)
            .await
    }

    /// [`Self::meter_in_chunks`] walking the periods in `order` (the bench compares the orders), at `pace`.
    pub async fn meter_walking(
        &self,
        size: u32,
        order: billing::WalkOrder,
        pace: MeterPace,
    ) -> Result<MeterRun> {
        let rest_percent = match pace {
            MeterPace::Full => 0,
            MeterPace::Background => self.context.config.billing.meter_rest_percent,
        };
        let now = self.context.clock.now_ms();
        self.rate_unrated_periods().await?;
        let mut run = MeterRun::default();
        let mut after = {
            let mut tx = self.context.store.begin().await?;
            let start = billing::walk_start(&mut tx, order).await?;
            tx.commit().await.map_err(Error::internal)?;
            start
        };
        loop {
            let chunk_began = std::time::Instant::now();
            let mut attempts = 0;
            let until = loop {
                attempts += 1;
                let mut tx = self.context.store.begin().await?;
                let chunk = billing::Chunk {
                    until: billing::chunk_end(&mut tx, &after, size).await?,
                    after: after.clone(),
                };
                // A period that joined the chunk between its sum and its update (on PostgreSQL, inserted
                // by a concurrent transaction) makes the two disagree: the transaction is dropped, having
                // charged nothing, and the chunk is done again.
                let moved = self.meter_chunk(&mut tx, &chunk, now).await?;
                let Some(charged) = moved else {
                    if attempts == 3 {
                        return Err(Error::internal(
                            "billing periods kept joining a meter chunk",
                        ));
                    }
                    continue;
                };
                tx.commit().await.map_err(Error::internal)?;
                charged.add_to(&mut run);
                break chunk.until;
            };
            match until {
                Some(last) => after = last,
                None => break,
            }
            // Between chunks nothing is held: the rest leaves the database's cores to requests.
            if rest_percent > 0 {
                let rest = chunk_began.elapsed() * rest_percent / 100;
                tokio::time::sleep(rest).await;
                run.rested += rest;
            }
        }
        self.settle(&mut run, now).await?;
        run.billed_until_ms = now;
        Ok(run)
    }

    /// Charges what the chunks moved (this run's, and any left by a run that stopped midway) to the
    /// ledger: one usage entry per account and currency, each taken off `meter_owed` in the transaction
    /// that appends it, so that it is charged once whichever run gets to it.
    async fn settle(&self, run: &mut MeterRun, now: i64) -> Result<()> {
        let mut after = None;
        loop {
            let owing =
                billing::owing(&mut &self.context.store, after.as_ref(), SETTLE_BATCH).await?;
            let Some(last) = owing.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            let mut tx = self.context.store.begin().await?;
            let mut balances = Vec::with_capacity(owing.len());
            for (account, currency) in &owing {
                let Some(owed) = billing::settle_owed(&mut tx, account, currency).await? else {
                    continue; // taken by another run
                };
                if let Some(balance) = charge_usage(&mut tx, &owed, now).await? {
                    balances.push((owed.account_id, owed.currency, balance));
                }
            }
            tx.commit().await.map_err(Error::internal)?;
            for (account, currency, balance) in balances {
                run.accounts
                    .entry((account, currency))
                    .or_default()
                    .balance_micros = Some(balance);
            }
        }
    }

    /// Gives the periods that lack their per-minute charge (inserted before it was stored, or whose rate
    /// changed) the charge their rate makes. One whose rate does not parse keeps none, so it is never
    /// billed as free: it waits, and says why on every run.
    async fn rate_unrated_periods(&self) -> Result<()> {
        let mut after = String::new();
        loop {
            let mut tx = self.context.store.begin().await?;
            let unrated = billing::unrated_periods(&mut tx, &after, RATE_BATCH).await?;
            let Some((last, _)) = unrated.last() else {
                return Ok(());
            };
            after = last.clone();
            let mut rated = Vec::with_capacity(unrated.len());
            for (id, rate) in unrated {
                match stored_rate(&rate) {
                    Ok(hourly) => rated.push((id, rate, per_minute_micros(hourly))),
                    Err(e) => {
                        tracing::error!(period = %id, error = %e, "billing period not charged")
                    }
                }
            }
            billing::rate_periods(&mut tx, &rated).await?;
            tx.commit().await.map_err(Error::internal)?;
        }
    }

    /// Meters a chunk inside its transaction: what its periods owe is summed in the database, they are
    /// moved by one update, and the sums are added to what each account owes per currency. `None`
    /// when the update did not move exactly the periods summed (the caller drops the transaction).
    async fn meter_chunk(
        &self,
        tx: &mut Tx,
        chunk: &billing::Chunk,
        now: i64,
    ) -> Result<Option<MeterRun>> {
        let due = billing::chunk_due(tx, chunk, now).await?;
        let expected: i64 = due.iter().map(|d| d.periods).sum();
        let closed = due.iter().any(|d| d.closed > 0);
        let moved = billing::advance_chunk(tx, chunk, now, closed).await?;
        if moved != expected as u64 {
            tracing::warn!(moved, expected, "meter chunk changed under it; done again");
            return Ok(None);
        }
        let mut run = MeterRun::default();
        // Summed by account and currency, in the order the chunk holds them.
        let mut charged: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
        for d in &due {
            let entry = charged.entry((&d.account_id, &d.currency)).or_default();
            entry.0 += d.micros;
            entry.1 += d.periods;
            run.periods_billed += d.periods as u64;
            run.minutes_billed += d.minutes as u64;
            // The burn rate of the open periods, exact: rates are summed as decimals, never per minute.
            let (hourly, per_minute) = match stored_rate(&d.hourly_rate) {
                Ok(rate) => (
                    rate * Decimal::from(d.open),
                    per_minute_micros(rate).saturating_mul(d.open),
                ),
                Err(e) => {
                    tracing::error!(account = %d.account_id, error = %e, "burn rate not counted");
                    (Decimal::ZERO, 0)
                }
            };
            let usage = run
                .accounts
                .entry((d.account_id.clone(), d.currency.clone()))
                .or_default();
            usage.hourly += hourly;
            usage.per_minute_micros += per_minute;
        }
        let owed: Vec<billing::Owed> = charged
            .into_iter()
            .filter(|(_, (micros, _))| *micros != 0)
            .map(|((account, currency), (micros, periods))| billing::Owed {
                account_id: account.to_string(),
                currency: currency.to_string(),
                micros,
                periods,
            })
            .collect();
        billing::owe(tx, &owed).await?;
        Ok(Some(run))
    }

    /// One meter run, then what the balances of the accounts it charged call for (see [`Self::guard`]).
    pub async fn meter_and_guard(
        &self,
        instances: &dyn Depletion,
        pace: MeterPace,
    ) -> Result<MeterRun> {
        let run = self.meter_paced(pace).await?;
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
            let balance = from_micros(
                self.context
                    .store
                    .balance(account, currency.as_str())
                    .await?,
            );
            if burn > Decimal::ZERO {
                let hours_left = (balance / burn).max(Decimal::ZERO);
                // Every threshold passed, in order: an account that falls below an hour, or to
                // nothing, at once (a large deploy, a long clock move) is told of the day and the hour
                // too, as a consumer of the warnings expects, before its instances hibernate.
                for (threshold, label) in [(Decimal::from(24), "24h"), (Decimal::from(1), "1h")] {
                    if hours_left < threshold {
                        self.warn_once(account, label, balance, currency, hours_left)
                            .await?;
                    }
                }
            }
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
        if events::warned_since_last_credit(&mut &*store, account, &kind).await? {
            return Ok(());
        }
        // Several servers may guard the account at once: the account is held and asked again, so one
        // of them warns.
        let mut tx = store.begin().await?;
        barrack_store::firewalls::lock_account(&mut tx, account).await?;
        if events::warned_since_last_credit(&mut tx, account, &kind).await? {
            return Ok(());
        }
        let now = self.context.clock.now_ms();
        let cause = format!(
            "Low balance: {} {currency} left, about {} hours at the current rate",
            crate::platform::money::display_amount(balance),
            hours.round_dp(1)
        );
        // Recorded as every event is, so the account's webhooks that want it hear of it.
        super::depletion::account_event(&mut tx, account, &kind, &cause, now).await?;
        tx.commit().await.map_err(Error::internal)?;
        Ok(())
    }
}

/// One usage entry charging what an account owes; the balance after it (`None` when nothing was
/// appended).
async fn charge_usage(tx: &mut Tx, owed: &billing::Owed, now: i64) -> Result<Option<i64>> {
    if owed.micros == 0 {
        return Ok(None);
    }
    let periods = owed.periods;
    let entry = LedgerEntryRow {
        id: new_id(IdKind::Transaction),
        account_id: owed.account_id.clone(),
        currency: owed.currency.clone(),
        kind: TransactionType::Usage.as_str().into(),
        amount_micros: -owed.micros,
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
    Ok(ledger::append(tx, &entry, transaction_id)
        .await?
        .map(|appended| appended.balance_after_micros))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::money::per_minute_rate;

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
