//! The billing records: each period as charged so far plus what the meter has not charged yet, their
//! summaries, the cost per kind of resource over a range, and one resource's cost so far.

use std::collections::HashMap;

use barrack_api::billing::{
    AggregatedBilling, BillingQuery, BillingSummary, CostLine, InstanceBillingRecord,
    InstanceBillingResponse, SnapshotBillingRecord, SnapshotBillingResponse, VolumeBillingRecord,
    VolumeBillingResponse,
};
use barrack_api::catalog::Amount;
use barrack_api::{Currency, PageQuery, Pagination, Tier};
use barrack_store::billing::{PeriodFilter, PeriodRow};
use rust_decimal::Decimal;

use super::meter::{BillingService, cost_micros, hourly, minutes_until};
use crate::accounts::Caller;
use crate::platform::clock::format_ms;
use crate::platform::countries;
use crate::platform::money::{from_micros, per_minute_rate};
use crate::platform::validate::validate_range;
use crate::{Error, Result};

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

impl BillingService {
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

    /// `GET /api/billing/`: cost per kind of resource of the minutes that ended within (from, to] (to
    /// defaults to now): each charged minute counts in exactly one of adjacent ranges.
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
            // A minute falls in the range that holds its end, the moment the meter can charge it: the
            // minutes the period had completed by `to` less those it had by `from`. Adjacent ranges so
            // share no minute and leave none out, and a range from before to now sums what was charged.
            let start = from.map_or(0, |f| minutes_until(p, f));
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
        let page = PageQuery::new(query.page, query.limit);
        let range = validate_range(page, query.from.as_deref(), query.to.as_deref())?;
        // Nothing has been billed after now: a range that starts later would read open periods as if
        // they had run through it.
        let now = self.context.clock.now_ms();
        if range.from_ms.is_some_and(|from| from > now) {
            return Err(Error::field(
                "from",
                format!("From must not be in the future (now is {})", format_ms(now)),
            ));
        }
        let filter = PeriodFilter {
            resource_types: vec![resource_type.to_string()],
            components: components.iter().map(|c| c.to_string()).collect(),
            from_ms: range.from_ms,
            to_ms: range.to_ms,
            resource_id: None,
        };
        Ok((
            range.page,
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
            // Exact, like the records it adds up: a sum rounded to cents would not be theirs.
            totalCost: Amount(crate::platform::money::exact_amount(from_micros(cost))),
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
