//! The balance check before anything billable is created: the account must hold at least the minimum
//! balance of its currency and the first hour of the new resource (402 otherwise).

use barrack_api::Currency;
use rust_decimal::Decimal;

use crate::accounts::Caller;
use crate::platform::money::{display_rate, from_micros, held_amount, needed_amount};
use crate::{Context, Error, Result};

/// 402 `INSUFFICIENT_BALANCE` unless the caller's balance in `currency` covers the larger of the configured
/// minimum balance and `first_hour` (the hourly rate of what is about to be created).
pub async fn require_balance(
    context: &Context,
    caller: &Caller,
    currency: Currency,
    first_hour: Decimal,
) -> Result<()> {
    let minimum = context
        .config
        .billing
        .minimum_balance
        .get(&currency)
        .map(|d| d.0)
        .unwrap_or_default();
    let balance = from_micros(
        context
            .store
            .balance(caller.account_id(), currency.as_str())
            .await?,
    );
    let needed = minimum.max(first_hour);
    if balance < needed {
        return Err(Error::InsufficientBalance(format!(
            "Insufficient balance: {} {currency} available, at least {} {currency} needed (the larger of the minimum balance, {} {currency}, and the first hour of this resource, {} {currency})",
            held_amount(balance),
            needed_amount(needed),
            needed_amount(minimum),
            display_rate(first_hour)
        )));
    }
    Ok(())
}
