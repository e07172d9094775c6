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
}

pub async fn run(ctx: &Ctx) -> Result<Output, CliError> {
    let health: Envelope<Health> = ctx
        .call(
            ctx.client
                .request::<_, ()>(Method::GET, "/api/health/", None),
        )
        .await?;
    let text = format!(
        "{} at {} (version {}, status {})",
        health.message, ctx.settings.api_url, health.data.version, health.data.status
    );
    Ok(Output::new(&health.data, View::Text(text)))
}
