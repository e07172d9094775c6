//! `barrack transactions`: the credit ledger, newest first, with the API's filters.

use barrack_api::Currency;
use barrack_api::ledger::{TransactionQuery, TransactionType};

use super::{Ctx, Output, currency_parser, transaction_type_parser};
use crate::error::CliError;
use crate::output::{Table, money};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only entries of this type
    #[arg(long = "type", value_name = "TYPE", value_parser = transaction_type_parser())]
    kind: Option<TransactionType>,
    /// Only entries in this currency
    #[arg(long, value_parser = currency_parser())]
    currency: Option<Currency>,
    /// From this time, inclusive (ISO-8601 UTC, e.g. 2025-01-01T00:00:00Z)
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Until this time, exclusive (ISO-8601 UTC)
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Page number, from 1
    #[arg(long)]
    page: Option<u32>,
    /// Entries per page, 1 to 100 [default: 20]
    #[arg(long)]
    limit: Option<u32>,
}

pub async fn run(args: Args, ctx: &Ctx) -> Result<Output, CliError> {
    let query = TransactionQuery {
        page: args.page,
        limit: args.limit,
        kind: args.kind,
        currency: args.currency,
        from: args.from,
        to: args.to,
    };
    let data = ctx.call(ctx.client.transactions(&query)).await?.data;
    let mut table = Table::new(
        &[
            "ID",
            "TYPE",
            "AMOUNT",
            "BALANCE AFTER",
            "CREATED",
            "DESCRIPTION",
        ],
        "No transactions.",
    );
    for t in &data.transactions {
        table.row([
            t.id.clone(),
            t.kind.as_str().to_string(),
            format!("{} {}", money(t.amount), t.currency),
            format!("{} {}", money(t.balance_after), t.currency),
            t.created_at.clone(),
            t.description.clone(),
        ]);
    }
    let view = super::paged(table, &data.pagination);
    let ids: Vec<String> = data.transactions.iter().map(|t| t.id.clone()).collect();
    Ok(Output::new(&data, view).ids(ids))
}
