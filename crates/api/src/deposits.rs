//! Deposits: buying credits through a payment provider.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Currency, Pagination};

/// `POST /api/deposits/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDepositRequest {
    /// Credits to buy, an exact decimal with at most 2 decimal places, as a string (`"25.00"`) or a number.
    /// At least the configured minimum of the currency (by default USD 5, EUR 5, INR 100).
    #[serde(with = "crate::decimal::text")]
    #[schema(value_type = String, example = "25.00")]
    pub amount: Decimal,
    /// Optional; when given it must be the account's currency (which follows the profile country).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", rename_all = "lowercase")]
pub enum DepositStatus {
    /// Waiting for the payment.
    Pending,
    /// Paid, and the account credited.
    Completed,
    /// Cancelled by the account before it was paid; a payment confirmed afterwards credits nothing.
    Cancelled,
}

impl DepositStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DepositStatus::Pending => "pending",
            DepositStatus::Completed => "completed",
            DepositStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<DepositStatus> {
        match s {
            "pending" => Some(DepositStatus::Pending),
            "completed" => Some(DepositStatus::Completed),
            "cancelled" => Some(DepositStatus::Cancelled),
            _ => None,
        }
    }
}

/// A deposit: what the account is credited, the tax shown on top (18 % GST for INR), what the payer pays,
/// and how to pay it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deposit {
    /// `BRK-XXXXXXP`.
    pub id: String,
    /// Credits the account receives when the deposit completes.
    #[serde(with = "crate::decimal")]
    #[schema(value_type = f64)]
    pub amount: Decimal,
    /// Tax rate in percent (18 for INR's GST, 0 otherwise).
    #[serde(with = "crate::decimal")]
    #[schema(value_type = f64)]
    pub tax_percent: Decimal,
    /// Tax on the amount; paid, not credited.
    #[serde(with = "crate::decimal")]
    #[schema(value_type = f64)]
    pub tax: Decimal,
    /// What the payer pays: amount plus tax.
    #[serde(with = "crate::decimal")]
    #[schema(value_type = f64)]
    pub total_payable: Decimal,
    pub currency: Currency,
    pub status: DepositStatus,
    /// The payment provider handling the payment (`manual`).
    pub provider: String,
    /// What the provider knows the payment by (the deposit id, for the manual provider).
    pub payment_reference: String,
    /// Where the payer completes the payment, when the provider has a checkout page (`null` for the manual
    /// provider: payment is arranged by the operator and confirmed by webhook or by an operator).
    pub checkout_url: Option<String>,
    /// The `deposit` ledger entry that credited the account, once completed.
    pub transaction_id: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DepositList {
    pub deposits: Vec<Deposit>,
    pub pagination: Pagination,
}

/// The event a payment provider posts to `POST /api/deposits/webhook/` (the `manual` provider's format),
/// signed in the `X-Barrack-Signature` header: `sha256=` and the hex HMAC-SHA256 of the raw body under the
/// configured `payments.webhook_secret`. Fields other than these are ignored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DepositWebhookEvent {
    /// `payment.succeeded`.
    #[schema(example = "payment.succeeded")]
    pub event: String,
    pub deposit_id: String,
    /// The deposit's `amount`, as a string (`"25.00"`) or a number.
    #[serde(with = "crate::decimal::text")]
    #[schema(value_type = String, example = "25.00")]
    pub amount: Decimal,
    /// The deposit's currency.
    pub currency: Currency,
}

/// The event type of a successful payment.
pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";

/// The header that carries a webhook's signature.
pub const SIGNATURE_HEADER: &str = "X-Barrack-Signature";

crate::string_enum!(DepositStatus);
