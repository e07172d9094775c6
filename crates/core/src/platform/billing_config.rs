//! The `[billing]` section of the configuration: minimum balances, hibernation prices, the meter's pace and
//! the grace given to stored data.

use serde::{Deserialize, Serialize};

use super::config::{ConfigError, PriceTable, check_prices};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    pub minimum_balance: PriceTable,
    pub hibernation_prices: PriceTable,
    /// Seconds of real time between meter runs (each run bills every minute closed since the last).
    pub meter_interval_seconds: u64,
    /// Billing periods the meter charges per transaction.
    #[serde(default = "default_meter_chunk_periods")]
    pub meter_chunk_periods: u32,
    /// Percent of each chunk's time the server's periodic meter runs rest after it, capping their share
    /// of the database's cores (0, the default: chunk after chunk).
    #[serde(default = "default_meter_rest_percent")]
    pub meter_rest_percent: u32,
    /// Hours an account's stored data (volumes, snapshots, hibernated instances) is kept without charge
    /// after its credit runs out, before it is marked for deletion.
    #[serde(default = "default_storage_grace_hours")]
    pub storage_grace_hours: u64,
}

fn default_meter_rest_percent() -> u32 {
    0
}

fn default_storage_grace_hours() -> u64 {
    336
}

fn default_meter_chunk_periods() -> u32 {
    10_000
}

impl BillingConfig {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.storage_grace_hours < 24 {
            return Err(ConfigError::Invalid(
                "billing.storage_grace_hours must be at least 24 (a day's notice)".into(),
            ));
        }
        if self.meter_interval_seconds == 0 {
            return Err(ConfigError::Invalid(
                "billing.meter_interval_seconds must be at least 1".into(),
            ));
        }
        if self.meter_rest_percent > 10_000 {
            return Err(ConfigError::Invalid(
                "billing.meter_rest_percent must be at most 10000 (a run a hundred times its work)"
                    .into(),
            ));
        }
        if self.meter_chunk_periods == 0 {
            return Err(ConfigError::Invalid(
                "billing.meter_chunk_periods must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_prices(&self) -> Result<(), ConfigError> {
        check_prices("billing.minimum_balance", &self.minimum_balance)?;
        check_prices("billing.hibernation_prices", &self.hibernation_prices)
    }
}
