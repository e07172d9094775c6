//! Depletion of what an account stores. When its balance in a currency reaches zero, its instances billed
//! in it hibernate (compute's work, through [`Depletion`](super::Depletion)), and what holds its data
//! stops being charged: the open `storage`, `snapshot` and `hibernation` periods in that currency close and
//! none opens while the credit is out, so the debt stops at what the meter had charged. The data is kept
//! for `billing.storage_grace_hours`, with an account event when the charges stop and another a day
//! before the end; then the depletion is marked for deletion, with an event naming what is due. Credits
//! bringing the balance to the minimum balance end the depletion: the periods of what still exists open
//! again and an event says so. One row per account and currency in `depletions` holds the state; the meter
//! reviews it on every run, so it needs no job of its own.

use barrack_api::Currency;
use barrack_store::{Tx, billing, snapshots};
use rust_decimal::Decimal;

use super::meter::{BillingService, sync_instance, sync_snapshot, sync_volume};
use crate::platform::clock::format_ms;
use crate::platform::events::{self, NewEvent};
use crate::platform::money::from_micros;
use crate::{Error, Result};

/// The components that hold data rather than run: they stop being charged when credit runs out.
pub const STORED_COMPONENTS: [&str; 3] = ["storage", "snapshot", "hibernation"];

const HOUR_MS: i64 = 3_600_000;
/// The deletion notice goes out this long before the grace period ends.
const NOTICE_MS: i64 = 24 * HOUR_MS;

impl BillingService {
    /// The account's balance in `currency` reached zero: stops charging what it stores, once per
    /// depletion, with an event that says until when the data is kept.
    pub(super) async fn suspend_storage(&self, account: &str, currency: Currency) -> Result<()> {
        let now = self.context.clock.now_ms();
        let grace_ms = self.context.config.billing.storage_grace_hours as i64 * HOUR_MS;
        let key = (account, currency.as_str());
        let mut tx = self.context.store.begin().await?;
        if !billing::start_depletion(&mut tx, key, now, now + grace_ms).await? {
            return Ok(());
        }
        let mut held = billing::close_components(&mut tx, key, &STORED_COMPONENTS, now).await?;
        // The instances this depletion hibernates next (or found hibernating) keep their disks too.
        let hibernating = ["ACTIVE", "SHUTOFF", "HIBERNATING", "HIBERNATED"];
        for row in
            barrack_store::instances::of_account_in(&mut tx, key.0, key.1, &hibernating).await?
        {
            held.push(("instance".into(), row.id, row.name));
        }
        held.sort();
        held.dedup_by(|a, b| (&a.0, &a.1) == (&b.0, &b.1));
        let cause = format!(
            "Credit in {currency} ran out: {} kept without charge until {}, then marked for deletion unless credits of at least the minimum balance are added",
            described(&held),
            format_ms(now + grace_ms)
        );
        account_event(&mut tx, account, "storage_suspended", &cause, now).await?;
        tx.commit().await.map_err(Error::internal)?;
        tracing::warn!(account, %currency, "credit exhausted; storage charges suspended");
        Ok(())
    }

    /// The first time after `now` at which a depletion reaches its next stage (the deletion notice, then
    /// the end of the grace period), so that a long clock move stops there and records each stage at
    /// its own time rather than all at once at the move's end.
    pub async fn next_depletion_stage(&self, now: i64) -> Result<Option<i64>> {
        let depletions = self.context.store.depletions().await?;
        Ok(depletions
            .iter()
            .filter_map(|depletion| {
                let notice = depletion.delete_after - NOTICE_MS;
                match depletion.stage.as_str() {
                    "suspended" if notice > now => Some(notice),
                    "suspended" | "warned" => Some(depletion.delete_after),
                    _ => None,
                }
            })
            .filter(|at| *at > now)
            .min())
    }

    /// Every run: ends the depletions whose credit came back, sends the deletion notice a day before the
    /// grace period ends, and marks for deletion what is past it.
    pub(super) async fn review_depletions(&self) -> Result<()> {
        let store = &self.context.store;
        for depletion in store.depletions().await? {
            let Some(currency) = Currency::parse(&depletion.currency) else {
                continue;
            };
            let balance = from_micros(
                store
                    .balance(&depletion.account_id, currency.as_str())
                    .await?,
            );
            let minimum = self
                .context
                .config
                .billing
                .minimum_balance
                .get(&currency)
                .map(|d| d.0)
                .unwrap_or_default();
            let now = self.context.clock.now_ms();
            if balance > Decimal::ZERO && balance >= minimum {
                self.resume_storage(&depletion, currency, now).await?;
            } else if now >= depletion.delete_after {
                self.mark_for_deletion(&depletion, currency, now).await?;
            } else if now >= depletion.delete_after - NOTICE_MS && depletion.stage == "suspended" {
                let key = (depletion.account_id.as_str(), currency.as_str());
                let mut tx = store.begin().await?;
                if billing::advance_depletion(&mut tx, key, "suspended", "warned").await? {
                    let cause = format!(
                        "Credit in {currency} is still out: stored data is marked for deletion at {} unless credits of at least the minimum balance are added",
                        format_ms(depletion.delete_after)
                    );
                    account_event(&mut tx, key.0, "storage_deletion_notice", &cause, now).await?;
                }
                tx.commit().await.map_err(Error::internal)?;
            }
        }
        Ok(())
    }

    async fn mark_for_deletion(
        &self,
        depletion: &billing::DepletionRow,
        currency: Currency,
        now: i64,
    ) -> Result<()> {
        if depletion.stage == "deletion_due" {
            return Ok(());
        }
        let key = (depletion.account_id.as_str(), currency.as_str());
        let mut tx = self.context.store.begin().await?;
        if billing::advance_depletion(&mut tx, key, &depletion.stage, "deletion_due").await? {
            let held = held_resources(&mut tx, depletion).await?;
            let ids: Vec<String> = held
                .into_iter()
                .map(|(kind, id)| format!("{kind} {id}"))
                .collect();
            let cause = format!(
                "Credit in {currency} has been out since {}: stored data marked for deletion ({})",
                format_ms(depletion.started_at),
                if ids.is_empty() {
                    "nothing held".to_string()
                } else {
                    ids.join(", ")
                }
            );
            account_event(&mut tx, key.0, "storage_deletion_due", &cause, now).await?;
        }
        tx.commit().await.map_err(Error::internal)?;
        Ok(())
    }

    /// Credit is back: the periods of what the account still stores in `currency` open again.
    async fn resume_storage(
        &self,
        depletion: &billing::DepletionRow,
        currency: Currency,
        now: i64,
    ) -> Result<()> {
        let config = &self.context.config;
        let key = (depletion.account_id.as_str(), currency.as_str());
        let mut tx = self.context.store.begin().await?;
        if !billing::end_depletion(&mut tx, key.0, key.1).await? {
            return Ok(());
        }
        let resources = held_resources(&mut tx, depletion).await?;
        for (kind, id) in &resources {
            match kind.as_str() {
                "instance" => sync_instance(&mut tx, config, id, now).await?,
                "volume" => sync_volume(&mut tx, config, id, now).await?,
                _ => resync_snapshot(&mut tx, config, id, now).await?,
            }
        }
        let cause = format!(
            "Credit in {currency} is back: storage charges resume for {} resource{}",
            resources.len(),
            if resources.len() == 1 { "" } else { "s" }
        );
        account_event(&mut tx, key.0, "storage_resumed", &cause, now).await?;
        tx.commit().await.map_err(Error::internal)?;
        Ok(())
    }
}

/// What a depletion holds without charge, as (resource type, id): what it stopped charging, and the
/// instances that finished hibernating after the credit ran out (they never had a period to close) or
/// are still on their way there.
async fn held_resources(
    tx: &mut Tx,
    depletion: &billing::DepletionRow,
) -> Result<Vec<(String, String)>> {
    let key = (depletion.account_id.as_str(), depletion.currency.as_str());
    let mut resources =
        billing::closed_at(tx, key, &STORED_COMPONENTS, depletion.started_at).await?;
    for row in
        barrack_store::instances::of_account_in(tx, key.0, key.1, &["HIBERNATING", "HIBERNATED"])
            .await?
    {
        resources.push(("instance".into(), row.id));
    }
    resources.sort();
    resources.dedup();
    Ok(resources)
}

/// A snapshot's periods as its state says (billed while `SUCCESS`, as `storage::snapshots` bills it).
async fn resync_snapshot(
    tx: &mut Tx,
    config: &crate::platform::config::Config,
    id: &str,
    now: i64,
) -> Result<()> {
    let Some(row) = snapshots::get(tx, id).await? else {
        return Ok(());
    };
    let tier = barrack_api::Tier::parse(&row.tier).unwrap_or(barrack_api::Tier::Legacy);
    let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
    let billable = row.status == "SUCCESS" && row.deleted_at.is_none();
    sync_snapshot(
        tx,
        config,
        (&row.id, &row.name, &row.account_id),
        (tier, currency),
        billable,
        now,
    )
    .await
}

/// "2 volumes, 1 snapshot" for an event's cause.
fn described(held: &[(String, String, String)]) -> String {
    let count = |kind: &str| held.iter().filter(|(k, _, _)| k == kind).count();
    let parts: Vec<String> = [
        ("volume", "volume"),
        ("snapshot", "snapshot"),
        ("instance", "hibernated instance"),
    ]
    .iter()
    .filter(|(kind, _)| count(kind) > 0)
    .map(|(kind, label)| {
        let n = count(kind);
        format!("{n} {label}{}", if n == 1 { "" } else { "s" })
    })
    .collect();
    if parts.is_empty() {
        "stored data".into()
    } else {
        parts.join(", ")
    }
}

pub(super) async fn account_event(
    tx: &mut Tx,
    account: &str,
    kind: &str,
    cause: &str,
    now: i64,
) -> Result<()> {
    events::record(
        tx,
        NewEvent {
            account_id: account,
            resource_type: "account",
            resource_id: account,
            kind,
            from: None,
            to: None,
            actor: "system",
            cause,
            sequence: 0,
        },
        now,
    )
    .await
}
