//! The `[jobs]` section of the configuration: claims, attempts and concurrency of the job runner.

use serde::{Deserialize, Serialize};

use super::config::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    pub lease_seconds: u32,
    pub max_attempts: u32,
    pub poll_interval_ms: u64,
    pub concurrency: u32,
    /// How often a booting machine is looked at; between looks its job holds no worker slot.
    #[serde(default = "default_observe_interval_ms")]
    pub observe_interval_ms: u64,
    /// How long a machine may take to come up after it was started before its instance goes to ERROR.
    #[serde(default = "default_boot_timeout_seconds")]
    pub boot_timeout_seconds: u64,
}

fn default_observe_interval_ms() -> u64 {
    1_000
}

fn default_boot_timeout_seconds() -> u64 {
    900
}

impl JobsConfig {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 || self.lease_seconds == 0 || self.concurrency == 0 {
            return Err(ConfigError::Invalid(
                "jobs.max_attempts, jobs.lease_seconds and jobs.concurrency must be at least 1"
                    .into(),
            ));
        }
        // Zero would have idle workers poll the database without a pause.
        if self.poll_interval_ms == 0 || self.observe_interval_ms == 0 {
            return Err(ConfigError::Invalid(
                "jobs.poll_interval_ms and jobs.observe_interval_ms must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
