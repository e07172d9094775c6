//! The `[metrics]` section of the configuration: who may scrape `GET /metrics`.

use serde::{Deserialize, Serialize};

use super::config::REDACTED;

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// When set, scrapers must send `Authorization: Bearer <token>`; when unset `/metrics` is open (keep
    /// it off the public listener then).
    #[serde(default)]
    pub bearer_token: Option<String>,
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}
