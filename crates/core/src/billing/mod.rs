//! Money an account holds and spends: billing periods and the meter that charges them (`meter`), the ledger
//! and balances, the balance guard of new resources, deposits and the payment providers behind them. Uses
//! `platform`, `accounts` and `catalog`; it reaches instances only through [`Depletion`], which `compute`
//! implements.

pub mod balance_guard;
pub mod commitments;
mod depletion;
pub mod deposits;
pub mod ledger;
mod meter;
pub mod payments;
mod records;
pub mod series;

pub use meter::*;
pub use records::ResourceCost;
