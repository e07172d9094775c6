//! The `[webhooks]` section of the configuration: where accounts' webhooks may send, the CAs HTTPS receivers
//! are verified against besides the platform's, and how long the delivery log is kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::config::ConfigError;

/// Webhook targets on private, loopback, link-local and other non-public addresses are refused (at
/// creation and, against DNS rebinding, at each delivery) unless allowed here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Allow every non-public address (a private installation whose receivers are on its own network).
    #[serde(default)]
    pub allow_private_targets: bool,
    /// Addresses or CIDR blocks allowed although not public (`["10.20.0.0/16"]`).
    #[serde(default)]
    pub allowed_targets: Vec<String>,
    /// A PEM file of CA certificates trusted for HTTPS receivers besides the platform's (receivers with
    /// certificates of a private CA).
    #[serde(default)]
    pub ca_bundle_file: Option<PathBuf>,
    /// Days a delivery stays in the delivery log; older ones are deleted.
    #[serde(default = "default_delivery_retention_days")]
    pub delivery_retention_days: u32,
}

fn default_delivery_retention_days() -> u32 {
    30
}

impl Default for WebhooksConfig {
    fn default() -> WebhooksConfig {
        WebhooksConfig {
            allow_private_targets: false,
            allowed_targets: Vec::new(),
            ca_bundle_file: None,
            delivery_retention_days: default_delivery_retention_days(),
        }
    }
}

impl WebhooksConfig {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        for target in &self.allowed_targets {
            if target.trim().parse::<ipnet::IpNet>().is_err()
                && target.trim().parse::<std::net::IpAddr>().is_err()
            {
                return Err(ConfigError::Invalid(format!(
                    "webhooks.allowed_targets: '{target}' is not an address or CIDR block"
                )));
            }
        }
        // Deliveries are retried for a day: a log kept shorter would lose deliveries still pending.
        if self.delivery_retention_days == 0 {
            return Err(ConfigError::Invalid(
                "webhooks.delivery_retention_days must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
