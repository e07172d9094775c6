//! Commitments: before anything raises an account's hourly burn (a deploy, a restore, a start, a volume
//! created, grown or cloned, a snapshot), the balance less the burn already committed must cover the first
//! hour of the increase. The check runs inside the write transaction that commits the increase, with the
//! account serialised, so concurrent requests cannot spend the same credit twice.
//!
//! Committed burn is what the account's open billing periods cost per hour, plus what its instances and
//! volumes on their way to a billed state will cost once there (an instance being created, started,
//! restored or rebooted; a volume being created).

use barrack_api::{Currency, Tier};
use barrack_store::Tx;
use barrack_store::admission::CommitmentPrices;
use barrack_store::billing::Commitments;
use rust_decimal::Decimal;

use super::meter::{heading_hourly, stored_rate};
use crate::catalog::{price, snapshot_hourly, storage_hourly};
use crate::platform::lifecycle::{BillingClass, InstanceState};
use crate::platform::money::{display_rate, from_micros, held_amount, needed_amount};
use crate::{Context, Error, Result};

/// The account's committed hourly burn in `currency` and its balance, read in `tx` (the account held),
/// leaving out the instance `written` (see [`require_commitment`]).
pub async fn committed(
    tx: &mut Tx,
    context: &Context,
    account_id: &str,
    currency: Currency,
    written: Option<&str>,
) -> Result<(Decimal, Decimal)> {
    let commitments =
        barrack_store::billing::commitments(tx, account_id, currency.as_str(), written).await?;
    burn_and_balance(context, &commitments, currency)
}

/// The hourly burn `commitments` add up to in `currency`, and the balance.
fn burn_and_balance(
    context: &Context,
    commitments: &Commitments,
    currency: Currency,
) -> Result<(Decimal, Decimal)> {
    let config = &context.config;
    let mut burn = Decimal::ZERO;
    for (rate, periods) in &commitments.rates {
        burn += stored_rate(rate)? * Decimal::from(*periods);
    }
    for shape in &commitments.heading {
        let class = if shape.status == InstanceState::Hibernating.as_str() {
            BillingClass::Hibernated
        } else {
            BillingClass::Full
        };
        burn += heading_hourly(config, shape, currency, class) * Decimal::from(shape.instances);
    }
    for (volume_type, size_gb) in &commitments.creating_volumes {
        let rate = config
            .volume_type(volume_type)
            .map(|t| price(&t.prices, currency))
            .unwrap_or_default();
        burn += storage_hourly(rate, *size_gb as u32);
    }
    for (tier, snapshots) in &commitments.creating_snapshots {
        let rate = Tier::parse(tier)
            .map(|tier| snapshot_hourly(config, tier, currency))
            .unwrap_or_default();
        burn += rate * Decimal::from(*snapshots);
    }
    Ok((burn, from_micros(commitments.balance)))
}

/// 402 `INSUFFICIENT_BALANCE`, with the figures, unless the balance in `currency` holds the configured
/// minimum and covers the committed burn plus `added` (per hour) for an hour. Call inside the transaction
/// that commits the increase, before writing it, or after writing a new instance (and the volumes created
/// with it) named as `written`, whose share of the burn `added` is then.
pub async fn require_commitment(
    tx: &mut Tx,
    context: &Context,
    account_id: &str,
    currency: Currency,
    added: Decimal,
    written: Option<&str>,
) -> Result<()> {
    require_commitment_beside(
        tx,
        context,
        account_id,
        currency,
        Decimal::ZERO,
        added,
        written,
    )
    .await
}

/// [`require_commitment`] with `beside` (per hour) committed besides what the account's rows burn: the
/// hourly price of the deploy holds it has taken, which a new hold must also cover.
pub async fn require_commitment_beside(
    tx: &mut Tx,
    context: &Context,
    account_id: &str,
    currency: Currency,
    beside: Decimal,
    added: Decimal,
    written: Option<&str>,
) -> Result<()> {
    let (burn, balance) = committed(tx, context, account_id, currency, written).await?;
    covers(context, currency, burn + beside, balance, added)
}

/// [`require_commitment`] of commitments read already (in the transaction that commits the increase,
/// the account held), for a new instance written before they were read.
pub fn require_commitments_cover(
    context: &Context,
    commitments: &Commitments,
    currency: Currency,
    added: Decimal,
) -> Result<()> {
    let (burn, balance) = burn_and_balance(context, commitments, currency)?;
    covers(context, currency, burn, balance, added)
}

/// The prices [`burn_and_balance`] gives commitments in `currency`, for the database to price them the
/// same way when it checks a plain deploy's commitment itself (`store::admission::admit_and_commit`):
/// each GPU model's price per GPU-hour, each volume type's per GB-hour (what [`storage_hourly`] charges
/// a GB), the hibernation price, each tier's snapshot price, the minimum balance and the deploy's own
/// first hour, `added`.
pub fn commitment_prices(
    context: &Context,
    currency: Currency,
    added: Decimal,
) -> CommitmentPrices<'_> {
    let config = &context.config;
    CommitmentPrices {
        added: added.to_string(),
        minimum: minimum_balance(context, currency).to_string(),
        gpu_models: config
            .gpu_models
            .iter()
            .map(|m| (m.name.as_str(), price(&m.prices, currency).to_string()))
            .collect(),
        volume_types: config
            .volume_types
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    storage_hourly(price(&t.prices, currency), 1).to_string(),
                )
            })
            .collect(),
        hibernation: price(&config.billing.hibernation_prices, currency).to_string(),
        snapshot_tiers: config
            .snapshots
            .iter()
            .map(|s| (s.tier.as_str(), price(&s.prices, currency).to_string()))
            .collect(),
    }
}

/// The 402 for a deploy the database refused with these figures (see [`commitment_prices`]): the same
/// answer [`require_commitments_cover`] gives.
pub fn refused(
    context: &Context,
    currency: Currency,
    balance_micros: i64,
    burn: &str,
    added: Decimal,
) -> Error {
    let burn = match burn.parse::<Decimal>() {
        Ok(burn) => burn,
        Err(_) => return Error::internal(format!("the database priced a commitment '{burn}'")),
    };
    match covers(context, currency, burn, from_micros(balance_micros), added) {
        Err(e) => e,
        Ok(()) => Error::internal("the database refused a commitment the server would accept"),
    }
}

fn minimum_balance(context: &Context, currency: Currency) -> Decimal {
    context
        .config
        .billing
        .minimum_balance
        .get(&currency)
        .map(|d| d.0)
        .unwrap_or_default()
}

/// 402 unless `balance` holds the minimum and covers `burn` plus `added` for an hour.
fn covers(
    context: &Context,
    currency: Currency,
    burn: Decimal,
    balance: Decimal,
    added: Decimal,
) -> Result<()> {
    let minimum = minimum_balance(context, currency);
    let needed = (burn + added).max(minimum);
    if balance < needed {
        return Err(Error::InsufficientBalance(format!(
            "Insufficient balance: {} {currency} available, {} {currency} per hour already committed and {} {currency} per hour more asked: {} {currency} needed, the larger of the minimum balance, {} {currency}, and an hour of both, {} {currency}",
            held_amount(balance),
            display_rate(burn),
            display_rate(added),
            needed_amount(needed),
            needed_amount(minimum),
            display_rate(burn + added)
        )));
    }
    Ok(())
}
