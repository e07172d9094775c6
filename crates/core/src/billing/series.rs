//! What an account spends over time, for the dashboard: the cost of each day (or any equal steps) of a
//! range, and the outlook — what its resources cost per hour now, how long the balance lasts at that rate,
//! and what this month has cost so far.
//!
//! A minute counts where it closes (billing is per closed minute), so the steps of a range add up to the
//! minutes the range closed, at each period's exact per-minute rate.

use barrack_api::Currency;
use barrack_store::billing::{PeriodFilter, PeriodRow};
use rust_decimal::Decimal;

use super::meter::{BillingService, cost_micros, hourly, minutes_until};
use crate::accounts::Caller;
use crate::platform::clock::{format_ms, parse_iso};
use crate::platform::countries;
use crate::platform::money::from_micros;
use crate::{Error, Result};

/// Most steps one series may have.
pub const MAX_STEPS: usize = 366;

/// The cost of each step of a range, in the account's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostSeries {
    pub currency: Currency,
    /// Unix milliseconds where each step starts; a step lasts `step_ms`.
    pub starts: Vec<i64>,
    pub step_ms: i64,
    /// Cost of the minutes that closed in each step.
    pub costs: Vec<Decimal>,
}

impl CostSeries {
    pub fn total(&self) -> Decimal {
        self.costs.iter().copied().sum()
    }
}

/// What an account's resources cost now and how long its balance lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlook {
    pub currency: Currency,
    /// What its open billing periods cost per hour.
    pub burn_per_hour: Decimal,
    /// Hours the balance lasts at that rate; `None` when nothing is billed.
    pub hours_left: Option<Decimal>,
    /// Start of the current calendar month (UTC, simulated clock), ISO-8601.
    pub month_start: String,
    /// What the account's resources cost this month so far.
    pub month_cost: Decimal,
}

impl BillingService {
    /// The cost of `steps` consecutive steps of `step_ms` from `from_ms` (steps in the future cost
    /// nothing yet), over every kind of resource, in the account's currency.
    pub async fn cost_series(
        &self,
        caller: &Caller,
        from_ms: i64,
        step_ms: i64,
        steps: usize,
    ) -> Result<CostSeries> {
        if step_ms <= 0 || steps == 0 || steps > MAX_STEPS {
            return Err(Error::field(
                "steps",
                format!("A series has 1 to {MAX_STEPS} steps of a positive length"),
            ));
        }
        let currency = countries::currency_for(caller.account.country.as_deref());
        let now = self.context.clock.now_ms();
        let to = from_ms + step_ms * steps as i64;
        let filter = PeriodFilter {
            from_ms: Some(from_ms),
            to_ms: Some(to.min(now)),
            ..Default::default()
        };
        let periods = self
            .context
            .store
            .all_periods(caller.account_id(), &filter)
            .await?;
        series(&periods, currency, now, from_ms, step_ms, steps)
    }

    /// The account's burn per hour, how long its balance lasts at it, and this month's cost so far.
    pub async fn outlook(&self, caller: &Caller, balance: Decimal) -> Result<Outlook> {
        let currency = countries::currency_for(caller.account.country.as_deref());
        let now = self.context.clock.now_ms();
        let month_start = month_start(now);
        // One read: every period open now also overlaps the month.
        let filter = PeriodFilter {
            from_ms: Some(month_start),
            ..Default::default()
        };
        let periods = self
            .context
            .store
            .all_periods(caller.account_id(), &filter)
            .await?;
        let mut burn = Decimal::ZERO;
        for period in periods
            .iter()
            .filter(|p| p.ended_at.is_none() && p.currency == currency.as_str())
        {
            burn += hourly(period)?;
        }
        let hours_left =
            (burn > Decimal::ZERO).then(|| (balance.max(Decimal::ZERO) / burn).round_dp(1));
        let month = series(
            &periods,
            currency,
            now,
            month_start,
            (now - month_start).max(1),
            1,
        )?;
        Ok(Outlook {
            currency,
            burn_per_hour: burn,
            hours_left,
            month_start: format_ms(month_start),
            month_cost: month.total(),
        })
    }
}

/// The cost of each step of `periods` in `currency`, as of `now`.
fn series(
    periods: &[PeriodRow],
    currency: Currency,
    now: i64,
    from_ms: i64,
    step_ms: i64,
    steps: usize,
) -> Result<CostSeries> {
    let mut micros = vec![0i64; steps];
    for period in periods.iter().filter(|p| p.currency == currency.as_str()) {
        let rate = hourly(period)?;
        let mut closed_before = minutes_until(period, from_ms);
        for (i, cost) in micros.iter_mut().enumerate() {
            let end = (from_ms + step_ms * (i as i64 + 1)).min(now);
            let closed = minutes_until(period, end);
            if closed > closed_before {
                *cost += cost_micros(rate, closed - closed_before);
                closed_before = closed;
            }
        }
    }
    Ok(CostSeries {
        currency,
        starts: (0..steps).map(|i| from_ms + step_ms * i as i64).collect(),
        step_ms,
        costs: micros.into_iter().map(from_micros).collect(),
    })
}

/// Midnight UTC of the first day of `now_ms`'s month.
pub fn month_start(now_ms: i64) -> i64 {
    let text = format_ms(now_ms);
    text.get(0..7)
        .and_then(|month| parse_iso(&format!("{month}-01T00:00:00Z")))
        .unwrap_or(now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_starts_at_midnight_of_its_first_day() {
        let now = parse_iso("2026-12-04T17:30:12Z").unwrap();
        assert_eq!(format_ms(month_start(now)), "2026-12-01T00:00:00Z");
    }
}
