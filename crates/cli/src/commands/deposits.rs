//! `barrack deposits`: buy credits through the server's payment provider.

use barrack_api::Currency;
use barrack_api::deposits::{CreateDepositRequest, Deposit};
use clap::Subcommand;
use rust_decimal::Decimal;

use super::{Ctx, Output, PageArgs, currency_parser};
use crate::error::CliError;
use crate::output::{Table, View, money, or_dash};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open a deposit in your account's currency; pay it at the checkout it shows
    #[command(after_help = "Examples:\n  \
        barrack deposits create --amount 25.00\n  \
        barrack deposits create --amount 1000 --currency INR -o json\n\n\
        Minimums (set by the operator, by default): USD 5, EUR 5, INR 100. INR deposits show 18 % GST on\n\
        top; the credits are the amount.")]
    Create {
        /// Credits to buy, an exact decimal with at most 2 decimal places, e.g. 25.00
        #[arg(long, allow_negative_numbers = true, value_parser = barrack_api::decimal::parse)]
        amount: Decimal,
        /// Your account's currency (it follows your profile country); checked by the API when given
        #[arg(long, value_parser = currency_parser())]
        currency: Option<Currency>,
    },
    /// List your deposits, newest first
    #[command(after_help = "Examples:\n  barrack deposits list\n  barrack deposits list -q")]
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a deposit: what to pay, where, and whether it is completed
    #[command(after_help = "Example:\n  barrack deposits show BRK-A1B2C3P")]
    Show {
        /// The deposit's id (BRK-...P)
        id: String,
    },
    /// Cancel a pending deposit you will not pay; it no longer counts against the 10 pending allowed
    #[command(after_help = "Example:\n  barrack deposits cancel BRK-A1B2C3P")]
    Cancel {
        /// The deposit's id (BRK-...P)
        id: String,
    },
}

pub async fn run(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::Create { amount, currency } => {
            let request = CreateDepositRequest { amount, currency };
            let data = ctx.call(client.create_deposit(&request)).await?.data;
            let notice = format!(
                "Pay {} {} to complete the deposit{}; {} {} in credits arrive when the payment is confirmed.",
                money(data.total_payable),
                data.currency,
                data.checkout_url
                    .as_deref()
                    .map(|url| format!(" at {url}"))
                    .unwrap_or_default(),
                money(data.amount),
                data.currency
            );
            Ok(deposit_output(&data).notice(notice))
        }
        Command::List { page } => {
            let data = ctx.call(client.deposits(&page.query())).await?.data;
            let mut table = Table::new(
                &[
                    "ID", "AMOUNT", "TAX", "TOTAL", "STATUS", "PROVIDER", "CREATED",
                ],
                "No deposits.",
            );
            for d in &data.deposits {
                table.row([
                    d.id.clone(),
                    format!("{} {}", money(d.amount), d.currency),
                    money(d.tax),
                    money(d.total_payable),
                    d.status.as_str().to_string(),
                    d.provider.clone(),
                    d.created_at.clone(),
                ]);
            }
            let view = super::paged(table, &data.pagination);
            let ids: Vec<String> = data.deposits.iter().map(|d| d.id.clone()).collect();
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::Show { id } => {
            let data = ctx.call(client.deposit(&id)).await?.data;
            Ok(deposit_output(&data))
        }
        Command::Cancel { id } => {
            let data = ctx.call(client.cancel_deposit(&id)).await?.data;
            Ok(deposit_output(&data).notice(format!("Deposit {} cancelled.", data.id)))
        }
    }
}

/// A deposit as fields (also used by `barrack admin complete-deposit`).
pub fn deposit_output(d: &Deposit) -> Output {
    let tax = if d.tax_percent.is_zero() {
        money(d.tax)
    } else {
        format!("{} ({}% GST)", money(d.tax), d.tax_percent.normalize())
    };
    let view = View::Fields(vec![
        ("ID", d.id.clone()),
        ("Status", d.status.as_str().to_string()),
        ("Amount", format!("{} {}", money(d.amount), d.currency)),
        ("Tax", tax),
        (
            "Total payable",
            format!("{} {}", money(d.total_payable), d.currency),
        ),
        ("Provider", d.provider.clone()),
        ("Payment reference", d.payment_reference.clone()),
        ("Checkout URL", or_dash(d.checkout_url.as_ref())),
        ("Transaction", or_dash(d.transaction_id.as_ref())),
        ("Created", d.created_at.clone()),
        ("Completed", or_dash(d.completed_at.as_ref())),
    ]);
    Output::new(d, view).ids([d.id.clone()])
}
