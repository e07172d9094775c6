//! The `[rate_limit]` section of the configuration: requests per window per client, and the proxies whose
//! `X-Forwarded-For` names the client.

use serde::{Deserialize, Serialize};

use super::config::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub requests: u32,
    pub window_seconds: u32,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client; from anyone else the
    /// header is ignored and the connection's address is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// An address or a CIDR block (`10.0.0.0/8`, `::1`): the network address and the prefix length.
pub fn parse_ip_net(text: &str) -> Option<(std::net::IpAddr, u8)> {
    let (address, prefix) = match text.trim().split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
        None => (text.trim(), None),
    };
    let address: std::net::IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some((address, prefix))
}

impl RateLimitConfig {
    pub(crate) fn check_proxies(&self) -> Result<(), ConfigError> {
        for proxy in &self.trusted_proxies {
            if parse_ip_net(proxy).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "rate_limit.trusted_proxies: '{proxy}' is not an address or CIDR block"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn check_window(&self) -> Result<(), ConfigError> {
        if self.requests > 0 && self.window_seconds == 0 {
            return Err(ConfigError::Invalid(
                "rate_limit.window_seconds must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
