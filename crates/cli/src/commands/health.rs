//! `barrack health`: whether the configured API answers, and which version it runs.

use barrack_api::Envelope;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{Ctx, Output};
use crate::error::CliError;
use crate::output::View;

/// `data` of `GET /api/health/`.
#[derive(Debug, Serialize, Deserialize)]
struct Health {
    status: String,
    version: String,
    /// Whether instances run in the simulated data centre (servers before it was reported: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    simulated: Option<bool>,
}

async fn health(ctx: &Ctx) -> Result<Envelope<Health>, CliError> {
    ctx.call(
        ctx.client
            .request::<_, ()>(Method::GET, "/api/health/", None),
    )
    .await
}

/// Whether the server's instances are simulated, so that no machine answers at their addresses.
pub async fn simulated(ctx: &Ctx) -> Result<bool, CliError> {
    Ok(health(ctx).await?.data.simulated == Some(true))
}

pub async fn run(ctx: &Ctx) -> Result<Output, CliError> {
    let health = health(ctx).await?;
    let text = format!(
        "{} at {} (version {}, status {})",
        health.message, ctx.settings.api_url, health.data.version, health.data.status
    );
    Ok(Output::new(&health.data, View::Text(text)))
}
