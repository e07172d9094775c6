//! Balances and the credit ledger.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{Currency, Pagination};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CurrencyBalance {
    pub currency: Currency,
    #[serde(with = "crate::decimal")]
    #[schema(value_type = f64)]
    pub balance: Decimal,
}

/// `GET /api/balance/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreditBalance {
    /// The account's currency (from its profile country).
    pub currency: Currency,
    /// Balance in the account's currency.
    #[serde(with = "crate::decimal")]
    #[schema(value_type = f64)]
    pub balance: Decimal,
    /// The balance creating a billable resource needs, in the account's currency.
    #[serde(with = "crate::decimal")]
    #[schema(value_type = f64)]
    pub minimum_balance: Decimal,
    /// Every currency the account holds credits in.
    pub balances: Vec<CurrencyBalance>,
}

/// Kinds of ledger entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", rename_all = "lowercase")]
pub enum TransactionType {
    Deposit,
    Usage,
    Grant,
    Refund,
    Adjustment,
}

impl TransactionType {
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionType::Deposit => "deposit",
            TransactionType::Usage => "usage",
            TransactionType::Grant => "grant",
            TransactionType::Refund => "refund",
            TransactionType::Adjustment => "adjustment",
        }
    }

    pub fn parse(s: &str) -> Option<TransactionType> {
        Some(match s {
            "deposit" => TransactionType::Deposit,
            "usage" => TransactionType::Usage,
            "grant" => TransactionType::Grant,
            "refund" => TransactionType::Refund,
            "adjustment" => TransactionType::Adjustment,
            _ => return None,
        })
    }
}

/// One ledger entry. Credits are positive, debits negative.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Transaction {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: TransactionType,
    #[serde(with = "crate::decimal")]
    #[schema(value_type = f64)]
    pub amount: Decimal,
    pub currency: Currency,
    /// The balance in that currency right after this entry.
    #[serde(with = "crate::decimal")]
    #[schema(value_type = f64)]
    pub balance_after: Decimal,
    pub description: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransactionList {
    pub transactions: Vec<Transaction>,
    pub pagination: Pagination,
}

/// Filters of `GET /api/transactions/`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TransactionQuery {
    pub page: Option<u32>,
    pub limit: Option<u32>,
    /// `deposit`, `usage`, `grant`, `refund` or `adjustment`.
    #[serde(rename = "type")]
    #[param(value_type = Option<String>)]
    pub kind: Option<TransactionType>,
    pub currency: Option<Currency>,
    /// ISO-8601 UTC, inclusive.
    pub from: Option<String>,
    /// ISO-8601 UTC, exclusive.
    pub to: Option<String>,
}

crate::string_enum!(TransactionType);
