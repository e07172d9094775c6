//! `barrack balance`: prepaid credits, per currency.

use super::{Ctx, Output};
use crate::error::CliError;
use crate::output::{View, money};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_: Args, ctx: &Ctx) -> Result<Output, CliError> {
    let data = ctx.call(ctx.client.balance()).await?.data;
    let mut fields = vec![
        (
            "Balance",
            format!("{} {}", money(data.balance), data.currency),
        ),
        (
            "Minimum to deploy",
            format!("{} {}", money(data.minimum_balance), data.currency),
        ),
    ];
    let others: Vec<String> = data
        .balances
        .iter()
        .filter(|b| b.currency != data.currency)
        .map(|b| format!("{} {}", money(b.balance), b.currency))
        .collect();
    if !others.is_empty() {
        fields.push(("Other currencies", others.join(", ")));
    }
    Ok(Output::new(&data, View::Fields(fields)))
}
