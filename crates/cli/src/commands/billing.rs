//! `barrack billing`: what each instance, volume and snapshot has cost, per billing span, and in total.

use barrack_api::billing::BillingQuery;
use clap::Subcommand;

use super::{Ctx, Output};
use crate::error::CliError;
use crate::output::{Table, View};

#[derive(Debug, clap::Args)]
pub struct Range {
    /// Spans running at or after this time (ISO-8601 UTC)
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Spans that started before this time (ISO-8601 UTC)
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Page number, from 1
    #[arg(long)]
    page: Option<u32>,
    /// Records per page, 1 to 100 [default: 20]
    #[arg(long)]
    limit: Option<u32>,
}

impl Range {
    fn query(self) -> BillingQuery {
        BillingQuery {
            page: self.page,
            limit: self.limit,
            from: self.from,
            to: self.to,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Billing records of instances (GPUs; hibernation)
    #[command(
        after_help = "Examples:\n  barrack billing instances\n  barrack billing instances --from 2025-01-01T00:00:00Z -o json"
    )]
    Instances(Range),
    /// Billing records of volumes and instances' OS disks
    #[command(after_help = "Example:\n  barrack billing volumes")]
    Volumes(Range),
    /// Billing records of snapshots
    #[command(after_help = "Example:\n  barrack billing snapshots")]
    Snapshots(Range),
    /// Cost of everything in a time range
    #[command(
        after_help = "Example:\n  barrack billing summary --from 2025-01-01T00:00:00Z --to 2025-02-01T00:00:00Z"
    )]
    Summary(Range),
}

fn records_table() -> Table {
    Table::new(
        &[
            "BILLING ID",
            "RESOURCE",
            "NAME",
            "STATUS",
            "MINUTES",
            "PER MINUTE",
            "COST",
            "STARTED",
        ],
        "No billing records.",
    )
}

pub async fn run(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::Instances(range) => {
            let data = ctx.call(client.instance_billing(&range.query())).await?;
            let mut table = records_table();
            for r in &data.records {
                table.row([
                    r.billing_id.clone(),
                    r.instance_id.clone(),
                    r.vm_name.clone(),
                    r.status.clone(),
                    r.total_duration_minutes.to_string(),
                    r.per_minute_rate.0.to_string(),
                    format!("{} {}", r.total_cost.0, r.currency),
                    r.start_time.clone(),
                ]);
            }
            let view = super::paged(
                table,
                &pagination(data.page, data.limit, data.total, data.total_pages),
            );
            let ids: Vec<String> = data.records.iter().map(|r| r.billing_id.clone()).collect();
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::Volumes(range) => {
            let data = ctx.call(client.volume_billing(&range.query())).await?;
            let mut table = records_table();
            for r in &data.records {
                table.row([
                    r.billing_id.clone(),
                    r.volume_id.clone(),
                    r.volume_name.clone(),
                    r.status.clone(),
                    r.total_duration_minutes.to_string(),
                    r.per_minute_rate.0.to_string(),
                    format!("{} {}", r.total_cost.0, r.currency),
                    r.start_time.clone(),
                ]);
            }
            let view = super::paged(
                table,
                &pagination(data.page, data.limit, data.total, data.total_pages),
            );
            let ids: Vec<String> = data.records.iter().map(|r| r.billing_id.clone()).collect();
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::Snapshots(range) => {
            let data = ctx.call(client.snapshot_billing(&range.query())).await?;
            let mut table = records_table();
            for r in &data.records {
                table.row([
                    r.billing_id.clone(),
                    r.snapshot_id.clone(),
                    r.snapshot_name.clone(),
                    r.status.clone(),
                    r.total_duration_minutes.to_string(),
                    r.per_minute_rate.0.to_string(),
                    format!("{} {}", r.total_cost.0, r.currency),
                    r.start_time.clone(),
                ]);
            }
            let view = super::paged(
                table,
                &pagination(data.page, data.limit, data.total, data.total_pages),
            );
            let ids: Vec<String> = data.records.iter().map(|r| r.billing_id.clone()).collect();
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::Summary(range) => {
            let data = ctx.call(client.billing(&range.query())).await?.data;
            let line = |l: &barrack_api::billing::CostLine| {
                format!("{} {} ({} minutes)", l.cost.0, data.currency, l.minutes)
            };
            let view = View::Fields(vec![
                (
                    "From",
                    data.from.clone().unwrap_or_else(|| "the beginning".into()),
                ),
                ("To", data.to.clone()),
                ("Instances", line(&data.instances)),
                ("Volumes", line(&data.volumes)),
                ("Snapshots", line(&data.snapshots)),
                ("Total", format!("{} {}", data.total_cost.0, data.currency)),
            ]);
            Ok(Output::new(&data, view))
        }
    }
}

/// The paging of a billing answer, which gives it in fields of its own.
fn pagination(page: u32, limit: u32, total: u64, total_pages: u32) -> barrack_api::Pagination {
    barrack_api::Pagination {
        page,
        limit,
        total,
        total_pages,
    }
}
