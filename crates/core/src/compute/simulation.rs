//! Controls of the simulated data centre. Its clock: real time plus an offset that operators move
//! forward to see in seconds what a month of a setup costs. Resetting the state to that of a first start,
//! for test suites. Scenarios: GPU scarcity and region outages hold stock back in the capacity ledger
//! (so deploys meet the 503 they would meet in a real shortage), a slow host stretches the simulator's
//! delays. All of it is stored, so a restart or another server on the same database follows it.

use std::sync::Arc;

use barrack_api::billing::ClockAdvanced;
use barrack_api::simulation::{Scenario, ScenarioSpec, StateReset};
use barrack_store::simulation::{ScenarioAdded, ScenarioRow, Withhold};
use rust_decimal::Decimal;

use crate::billing::{BillingService, MeterPace, MeterRun};
use crate::catalog::CatalogService;
use crate::compute::instances::InstanceService;
use crate::platform::clock::format_ms;
use crate::platform::ids::{IdKind, new_id};
use crate::{Context, Error, Result};

/// Scenario kinds as stored.
const GPU_SCARCITY: &str = "gpu_scarcity";
use crate::catalog::{REGION_OUTAGE, SLOW_HOST};
/// The most a slow host multiplies its delays by.
pub const MAX_SLOWNESS: f64 = 1000.0;

const MINUTE_MS: i64 = 60_000;
/// At most a year per move.
pub const MAX_MINUTES: u32 = 525_600;

#[derive(Clone)]
pub struct SimulationService {
    context: Arc<Context>,
    billing: BillingService,
    instances: InstanceService,
    catalog: CatalogService,
}

impl SimulationService {
    /// Arms a fault in this server's simulator (`POST /api/admin/faults/`, the operator's page): 404 for
    /// a host it does not have. A lost host is stored, so that every server's simulator, and this one
    /// after a restart, loses it too (see `catalog::recognize_capacity`); its GPUs leave stock at once,
    /// not at the reconciler's next sweep, so a deploy is refused rather than placed on no host.
    pub async fn inject_fault(
        &self,
        simulator: &barrack_compute::sim::SimDriver,
        fault: barrack_compute::sim::Fault,
    ) -> Result<()> {
        let lost_host = match &fault {
            barrack_compute::sim::Fault::LoseHost { host } => Some(host.clone()),
            _ => None,
        };
        simulator
            .inject(fault)
            .map_err(|unknown| Error::not_found("Host", &unknown.0))?;
        if let Some(host) = lost_host {
            self.context
                .store
                .lose_simulated_host(&host, self.context.clock.now_ms())
                .await?;
            self.catalog.follow_lost_hosts().await?;
        }
        Ok(())
    }

    pub fn new(
        context: Arc<Context>,
        billing: BillingService,
        instances: InstanceService,
        catalog: CatalogService,
    ) -> SimulationService {
        SimulationService {
            context,
            billing,
            instances,
            catalog,
        }
    }

    fn require_simulation(&self, what: &str) -> Result<()> {
        if self.context.driver.is_simulated() {
            Ok(())
        } else {
            Err(Error::conflict(
                "CONFLICT",
                format!("{what} only in simulation mode; this server drives real machines"),
            ))
        }
    }

    /// Brings this server's clock up to the stored offset (at start, and before each meter run).
    pub async fn catch_up(&self) -> Result<()> {
        if self.context.driver.is_simulated() {
            let offset = self.context.store.clock_offset().await?;
            self.context.clock.follow_offset(offset);
        }
        Ok(())
    }

    /// `POST /api/admin/clock/advance/`: moves the clock forward, then bills the minutes that passed (and
    /// hibernates what ran out of credit on the way). A long move goes in steps, each followed by a meter
    /// run, that end where an account falls below a day or an hour of credit or runs out at its burn
    /// rate ([`next_step`]), where a lease is to be warned of or ends (which is then done before the next
    /// step) or where a
    /// depletion reaches its deletion notice or the end of its grace period, so that
    /// it bills, warns, hibernates and deletes as the same minutes passing one by one would: an account
    /// is warned at the minute it crosses a threshold and not charged for hours past its last credit,
    /// or an instance past its lease, because the clock jumped over them.
    pub async fn advance(&self, minutes: u32) -> Result<ClockAdvanced> {
        self.require_simulation("The clock moves")?;
        if !(1..=MAX_MINUTES).contains(&minutes) {
            return Err(Error::field(
                "minutes",
                format!("Minutes must be between 1 and {MAX_MINUTES}"),
            ));
        }
        // Concurrent moves take turns: each sizes its steps from its own meter runs.
        let _turn = self.context.store.clock_turn().await?;
        let mut left = i64::from(minutes) * MINUTE_MS;
        let mut periods_billed = 0;
        let mut billed_until;
        // The first step is one minute: its run charges every account with open periods and so tells
        // each one's balance and burn.
        let mut step = MINUTE_MS;
        loop {
            let now = self.context.clock.now_ms();
            if let Some(moment) = self
                .context
                .store
                .next_lease_moment(now, crate::compute::leases::WARNING_MS)
                .await?
            {
                step = step.min(moment - now);
            }
            if let Some(stage) = self.billing.next_depletion_stage(now).await? {
                step = step.min(stage - now);
            }
            if !self.context.clock.advance_ms(step) {
                return Err(Error::conflict(
                    "CONFLICT",
                    "This server's clock follows real time",
                ));
            }
            let offset = self.context.store.add_clock_offset(step).await?;
            self.context.clock.follow_offset(offset);
            let run = self
                .billing
                .meter_and_guard(&self.instances, MeterPace::Full)
                .await?;
            periods_billed += run.periods_billed;
            billed_until = run.billed_until_ms;
            self.instances.act_on_leases_due().await?;
            left -= step;
            if left == 0 {
                break;
            }
            // A lease's end may have left part of a minute.
            let left_minutes = (left + MINUTE_MS - 1) / MINUTE_MS;
            step = (next_step(&run, left_minutes) * MINUTE_MS).min(left);
        }
        self.context.work.notify_one();
        // The time the last run billed up to, not a later reading: a minute may close after the run.
        Ok(ClockAdvanced {
            now: format_ms(billed_until),
            periods_billed,
        })
    }
}

/// How many of the `left` minutes the clock moves before the next meter run: up to the first minute an
/// account the last run charged has less than a day, then less than an hour, of credit at its burn (the
/// guard's warnings), or runs out (depletion), at least one. Each minute the clock moves charges every
/// open period one more minute, so after `m` minutes the balance is `balance - m × per-minute burn`
/// exactly, and the step ends at the very minute the guard acts on, as it would in real time.
fn next_step(run: &MeterRun, left: i64) -> i64 {
    run.accounts
        .values()
        .filter_map(|usage| {
            let balance = usage.balance_micros?;
            let per_minute = usage.per_minute_micros;
            if balance <= 0 || per_minute <= 0 {
                return None;
            }
            let (balance, per_minute) = (Decimal::from(balance), Decimal::from(per_minute));
            // Depletion: the first minute the balance is at or below zero.
            let depleted = (balance / per_minute).ceil();
            // A warning: the first minute the balance is below `hours` of the hourly burn (in
            // micro-units), unless it is below already (then the run just guarded has warned).
            let below = |hours: i64| {
                let threshold = usage.hourly * Decimal::from(hours * 1_000_000);
                (balance >= threshold)
                    .then(|| ((balance - threshold) / per_minute).floor() + Decimal::ONE)
            };
            [below(24), below(1), Some(depleted)]
                .into_iter()
                .flatten()
                .min()
        })
        .min()
        .and_then(|minutes| i64::try_from(minutes).ok())
        .map_or(left, |minutes| minutes.clamp(1, left))
}

/// How often a simulating server reads the shared count of resets.
pub const FOLLOW_RESETS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl SimulationService {
    /// `POST /api/admin/reset/`: the state of a first start, for test suites. Every account but the
    /// operators' goes with everything in the database; the operators' accounts and API keys stay (their
    /// keys keep working), capacity is seeded again from the configuration, scenarios end, and the
    /// simulated machines are forgotten here and, at their next look, on every other server. The clock
    /// keeps its time: it never runs backwards.
    pub async fn reset(&self) -> Result<StateReset> {
        self.require_simulation("The state is reset")?;
        let store = &self.context.store;
        let (resets, operators_kept) = store.reset_state().await?;
        self.context.resets_seen.observe(resets);
        self.catalog.seed_capacity().await?;
        self.context.driver.recognize_simulation(resets, &[], &[]);
        Ok(StateReset {
            operators_kept,
            resets,
        })
    }

    /// Reads the shared count of resets every [`FOLLOW_RESETS_EVERY`] until `stop` turns true, so this
    /// process's in-memory limits start over after a reset made through any server (see
    /// `platform::resets`); and moves this server's clock as soon as another moves the shared one (on
    /// PostgreSQL; on SQLite at the next meter run, [`Self::catch_up`]), so that every replica answers
    /// with the moved time. Only a simulating server follows: only it can be reset or moved.
    pub async fn follow_resets(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if !self.context.driver.is_simulated() {
            return;
        }
        let mut clock_moves = self.context.store.clock_moves();
        let mut clock_announced = true;
        let mut next_read = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_read {
                match self.context.store.simulation_resets().await {
                    Ok(resets) => self.context.resets_seen.observe(resets),
                    Err(e) => tracing::debug!(error = %e, "cannot read the simulation's resets"),
                }
                next_read = tokio::time::Instant::now() + FOLLOW_RESETS_EVERY;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_read) => {}
                moved = clock_moves.changed(), if clock_announced => match moved {
                    Ok(()) => self.context.clock.follow_offset(*clock_moves.borrow_and_update()),
                    // The store is gone: only resets are left to follow.
                    Err(_) => clock_announced = false,
                },
                _ = stop.changed() => return,
            }
        }
    }

    pub async fn scenarios(&self) -> Result<Vec<Scenario>> {
        self.require_simulation("Scenarios apply")?;
        self.context
            .store
            .scenarios()
            .await?
            .iter()
            .map(scenario_view)
            .collect()
    }

    /// `POST /api/admin/scenarios/`: checks the scenario against the catalogue and the data centre, then
    /// stores it with the stock it holds back. Two scenarios never cover the same stock or host (409).
    pub async fn add_scenario(&self, spec: ScenarioSpec) -> Result<Scenario> {
        self.require_simulation("Scenarios apply")?;
        let config = &self.context.config;
        let known_region = |region: &str| {
            if config.region(region).is_some() {
                Ok(())
            } else {
                Err(Error::field("region", format!("Unknown region '{region}'")))
            }
        };
        let (kind, target) = match &spec {
            ScenarioSpec::GpuScarcity {
                region, gpu_model, ..
            } => {
                known_region(region)?;
                if let Some(model) = gpu_model
                    && !config.offers(region, model)
                {
                    return Err(Error::field(
                        "gpu_model",
                        format!("{region} offers no GPU model '{model}'"),
                    ));
                }
                let target = match gpu_model {
                    Some(model) => format!("{region}/{model}"),
                    None => region.clone(),
                };
                (GPU_SCARCITY, target)
            }
            ScenarioSpec::RegionOutage { region } => {
                known_region(region)?;
                (REGION_OUTAGE, region.clone())
            }
            ScenarioSpec::SlowHost { host, factor } => {
                if !(factor.is_finite() && (1.0..=MAX_SLOWNESS).contains(factor)) {
                    return Err(Error::field(
                        "factor",
                        format!("Factor must be between 1 and {MAX_SLOWNESS}"),
                    ));
                }
                let hosts = self.instances.hosts().await?;
                if !hosts.iter().any(|h| &h.name == host) {
                    return Err(Error::not_found("Host", host));
                }
                (SLOW_HOST, host.clone())
            }
        };
        let withhold = withholding(&spec);
        let now = self.context.clock.now_ms();
        let row = ScenarioRow {
            id: new_id(IdKind::Scenario),
            kind: kind.into(),
            target,
            spec: serde_json::to_string(&spec).map_err(Error::internal)?,
            created_at: now,
        };
        // Checked in the transaction that adds it, against every scenario committed before.
        let overlaps_existing = |existing: &ScenarioRow| {
            parse_spec(existing).is_ok_and(|other| overlaps(&withholding(&other), &withhold))
        };
        match self
            .context
            .store
            .add_scenario(&row, &withhold, overlaps_existing, now)
            .await?
        {
            ScenarioAdded::Added => {}
            ScenarioAdded::SameTarget => {
                return Err(Error::conflict(
                    "CONFLICT",
                    format!("A {kind} scenario already covers {}", row.target),
                ));
            }
            ScenarioAdded::Overlaps(existing) => {
                let region = stock_region(&withhold).unwrap_or_default();
                return Err(Error::conflict(
                    "CONFLICT",
                    format!(
                        "Scenario {existing} already holds back stock in {region}; remove it first"
                    ),
                ));
            }
        }
        crate::catalog::recognize_capacity(&self.context).await?;
        self.context.work.notify_one();
        scenario_view(&row)
    }

    /// `DELETE /api/admin/scenarios/{id}/`: ends the scenario and gives back what it held.
    pub async fn remove_scenario(&self, id: &str) -> Result<Scenario> {
        self.require_simulation("Scenarios apply")?;
        let now = self.context.clock.now_ms();
        let removed = self
            .context
            .store
            .remove_scenario(
                id,
                |row| parse_spec(row).map_or(Withhold::Nothing, |spec| withholding(&spec)),
                now,
            )
            .await?
            .ok_or_else(|| Error::not_found("Scenario", id))?;
        crate::catalog::recognize_capacity(&self.context).await?;
        self.context.work.notify_one();
        scenario_view(&removed)
    }
}

fn parse_spec(row: &ScenarioRow) -> Result<ScenarioSpec> {
    serde_json::from_str(&row.spec)
        .map_err(|e| Error::internal(format!("scenario {}: {e}", row.id)))
}

fn scenario_view(row: &ScenarioRow) -> Result<Scenario> {
    Ok(Scenario {
        id: row.id.clone(),
        spec: parse_spec(row)?,
        created_at: format_ms(row.created_at),
    })
}

/// The stock a scenario holds back.
fn withholding(spec: &ScenarioSpec) -> Withhold {
    match spec {
        ScenarioSpec::GpuScarcity {
            region,
            gpu_model,
            available,
        } => Withhold::AllBut {
            region: region.clone(),
            gpu_model: gpu_model.clone(),
            available: i64::from(*available),
        },
        ScenarioSpec::RegionOutage { region } => Withhold::All {
            region: region.clone(),
        },
        ScenarioSpec::SlowHost { .. } => Withhold::Nothing,
    }
}

fn stock_region(withhold: &Withhold) -> Option<&str> {
    match withhold {
        Withhold::Nothing => None,
        Withhold::All { region } | Withhold::AllBut { region, .. } => Some(region),
    }
}

/// Whether two holds cover some stock both: the same region, and a model in common.
fn overlaps(a: &Withhold, b: &Withhold) -> bool {
    let model = |w: &Withhold| match w {
        Withhold::AllBut { gpu_model, .. } => gpu_model.clone(),
        _ => None,
    };
    match (stock_region(a), stock_region(b)) {
        (Some(x), Some(y)) if x == y => match (model(a), model(b)) {
            (Some(m), Some(n)) => m == n,
            _ => true,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::AccountUsage;

    fn run(balance_micros: i64, hourly: &str, per_minute_micros: i64) -> MeterRun {
        let mut run = MeterRun::default();
        run.accounts.insert(
            ("BRK-000001A".into(), "USD".into()),
            AccountUsage {
                balance_micros: Some(balance_micros),
                hourly: hourly.parse().unwrap(),
                per_minute_micros,
            },
        );
        run
    }

    #[test]
    fn a_step_ends_where_a_warning_or_depletion_is_due() {
        // 2.548596875 an hour (an H100 and 100 GB of NVMe), 0.042476 a minute.
        let hourly = "2.548596875";
        // 4.957524 left: below a day already; below an hour (2.548597) after 57 minutes (2.536392 left;
        // after 56, 2.578868).
        assert_eq!(next_step(&run(4_957_524, hourly, 42_476), 180), 57);
        // Below an hour: the step ends where it runs out (the minute that reaches zero or below).
        assert_eq!(next_step(&run(2_536_392, hourly, 42_476), 180), 60);
        assert_eq!(next_step(&run(42_476 * 3, hourly, 42_476), 180), 3);
        // 100 at 1 an hour: the day's warning first, at the minute under 24 are left.
        assert_eq!(
            next_step(&run(100_000_000, "1", 16_667), 100_000),
            (100_000_000 - 24_000_000) / 16_667 + 1
        );
        // Nothing charged, or a balance at zero already: the rest of the move.
        assert_eq!(next_step(&run(0, hourly, 42_476), 180), 180);
        assert_eq!(next_step(&MeterRun::default(), 180), 180);
        // Never less than a minute nor more than what is left.
        assert_eq!(next_step(&run(1, hourly, 42_476), 180), 1);
        assert_eq!(next_step(&run(4_957_524, hourly, 42_476), 30), 30);
    }
}
