//! `barrack events`: what happened to the account's resources, and who or what caused it.

use barrack_api::instances::EventList;

use super::{Ctx, Output, PageArgs};
use crate::error::CliError;
use crate::output::{Table, or_dash};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    page: PageArgs,
}

pub async fn run(args: Args, ctx: &Ctx) -> Result<Output, CliError> {
    let data = ctx.call(ctx.client.events(&args.page.query())).await?.data;
    Ok(events_output(data))
}

/// A page of events as a table; `-q` prints their ids. Shared with `barrack instances events`.
pub fn events_output(data: EventList) -> Output {
    let mut table = Table::new(
        &["TIME", "RESOURCE", "KIND", "FROM", "TO", "ACTOR", "CAUSE"],
        "No events.",
    );
    for e in &data.events {
        table.row([
            e.created_at.clone(),
            e.resource_id.clone(),
            e.kind.clone(),
            or_dash(e.from_status.as_ref()),
            or_dash(e.to_status.as_ref()),
            e.actor.clone(),
            e.cause.clone(),
        ]);
    }
    let view = super::paged(table, &data.pagination);
    let ids: Vec<String> = data.events.iter().map(|e| e.id.clone()).collect();
    Output::new(&data, view).ids(ids)
}
