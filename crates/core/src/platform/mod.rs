//! What every domain uses and no domain owns: configuration, the clock, ids, money, field validation, the
//! error type, the job runner, the event log and its webhook deliveries, countries, and the instance lifecycle (the states and transitions that
//! billing rates, storage attachments and firewall programming all read). Uses no other domain.

pub mod ai_config;
pub mod billing_config;
pub mod catalog_config;
pub mod clock;
pub mod config;
mod config_env;
pub mod countries;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod ids;
pub mod jobs;
pub mod jobs_config;
pub mod labels;
pub mod lifecycle;
pub mod metrics_config;
pub mod money;
pub mod payments_config;
pub mod rate_limit_config;
pub mod resets;
pub mod validate;
pub mod webhooks;
pub mod webhooks_config;
