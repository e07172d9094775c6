//! The `[payments]` section of the configuration: the provider taking deposits, its webhook secret, the
//! smallest deposit and GST.

use std::path::PathBuf;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::config::{ConfigDecimal, ConfigError, PriceTable, check_prices, read_secret_file};

/// Deposits and the payment provider that takes them.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    pub provider: PaymentProviderKind,
    /// Key of the HMAC-SHA256 signatures of payment webhooks; without one every webhook is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Smallest deposit, per currency.
    pub minimum_deposit: PriceTable,
    /// GST shown on top of INR deposits, in percent.
    pub gst_percent_inr: ConfigDecimal,
}

/// Webhook secrets stay out of debug output.
impl std::fmt::Debug for PaymentsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentsConfig")
            .field("provider", &self.provider)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("webhook_secret_file", &self.webhook_secret_file)
            .field("minimum_deposit", &self.minimum_deposit)
            .field("gst_percent_inr", &self.gst_percent_inr)
            .finish()
    }
}

impl PaymentsConfig {
    /// The configured webhook secret, if any (`webhook_secret` or `webhook_secret_file`).
    pub fn webhook_secret(&self) -> Result<Option<String>, ConfigError> {
        let secret = match (&self.webhook_secret, &self.webhook_secret_file) {
            (Some(secret), _) => secret.clone(),
            (None, Some(path)) => read_secret_file(path)?,
            (None, None) => return Ok(None),
        };
        if secret.len() < MIN_WEBHOOK_SECRET_LEN {
            return Err(ConfigError::Invalid(format!(
                "payments.webhook_secret must be at least {MIN_WEBHOOK_SECRET_LEN} characters"
            )));
        }
        Ok(Some(secret))
    }
}

/// Shortest webhook secret accepted.
pub(crate) const MIN_WEBHOOK_SECRET_LEN: usize = 16;

/// Which payment provider takes deposits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentProviderKind {
    /// No external payment service: a deposit is completed by a signed webhook or by an operator.
    Manual,
}

impl PaymentsConfig {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        check_prices("payments.minimum_deposit", &self.minimum_deposit)?;
        let gst = self.gst_percent_inr.0;
        if gst.is_sign_negative() || gst > Decimal::ONE_HUNDRED {
            return Err(ConfigError::Invalid(
                "payments.gst_percent_inr must be between 0 and 100".into(),
            ));
        }
        if let Some(secret) = &self.webhook_secret
            && secret.len() < MIN_WEBHOOK_SECRET_LEN
        {
            return Err(ConfigError::Invalid(format!(
                "payments.webhook_secret must be at least {MIN_WEBHOOK_SECRET_LEN} characters"
            )));
        }
        Ok(())
    }
}
