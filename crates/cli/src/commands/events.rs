//! `barrack events`: what happened to the account's resources, and who or what caused it; `--follow`
//! prints events as they happen.

use std::io::Write;
use std::time::Duration;

use barrack_api::instances::{Event, EventList};

use super::{Ctx, Output, PageArgs};
use crate::error::CliError;
use crate::output::{Format, Table, or_dash};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    page: PageArgs,
    /// Print events as they happen (one line each; with -o json one JSON object per line) until interrupted
    #[arg(long, short = 'f', conflicts_with_all = ["page", "limit"])]
    follow: bool,
    /// With --follow: start after this event id instead of now (the events since then come first)
    #[arg(long, value_name = "EVENT_ID", requires = "follow")]
    after: Option<String>,
    /// With --follow: stop after this many events
    #[arg(long, value_name = "N", requires = "follow")]
    count: Option<u64>,
}

pub async fn run(args: Args, ctx: &Ctx, format: Format, quiet: bool) -> Result<Output, CliError> {
    if args.follow {
        return follow(ctx, args.after, args.count, format, quiet).await;
    }
    let data = ctx.call(ctx.client.events(&args.page.query())).await?.data;
    Ok(events_output(data))
}

/// Follows the event stream, reconnecting after the last event seen when the server ends it (a restart).
async fn follow(
    ctx: &Ctx,
    mut after: Option<String>,
    count: Option<u64>,
    format: Format,
    quiet: bool,
) -> Result<Output, CliError> {
    let mut printed = 0;
    let mut out = std::io::stdout();
    while count.is_none_or(|c| printed < c) {
        let mut stream = ctx.call(ctx.client.event_stream(after.as_deref())).await?;
        while count.is_none_or(|c| printed < c) {
            let event = match stream.next().await {
                Ok(Some(event)) => event,
                Ok(None) | Err(_) => break,
            };
            let line = match (format, quiet) {
                (_, true) => event.id.clone(),
                (Format::Json, _) => serde_json::to_string(&event).expect("events serialize"),
                (Format::Table, _) => {
                    crate::output::printable(&event_line(&event), false).into_owned()
                }
            };
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                // The reader went away (`| head`).
                return Ok(Output::nothing());
            }
            printed += 1;
        }
        after = stream.last_event_id().map(str::to_string);
        if count.is_none_or(|c| printed < c) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(Output::nothing())
}

fn event_line(e: &Event) -> String {
    format!(
        "{}  {}  {}  {} -> {}  {}  {}",
        e.created_at,
        e.resource_id,
        e.kind,
        or_dash(e.from_status.as_ref()),
        or_dash(e.to_status.as_ref()),
        e.actor,
        e.cause
    )
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
