//! Handlers, a file per resource group. Each parses, calls one service, renders.

pub mod account;
pub mod admin;
pub mod ai;
pub mod api_keys;
pub mod billing;
pub mod catalog;
pub mod deposits;
pub mod event_stream;
pub mod firewalls;
pub mod health;
pub mod images;
pub mod instances;
pub mod labels;
pub mod ledger;
pub mod openai;
pub mod scripts;
pub mod simulation;
pub mod snapshots;
pub mod ssh_keys;
pub mod volumes;
pub mod webhooks;

use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

/// Every API route, registered with its OpenAPI description.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(catalog::router())
        .merge(account::router())
        .merge(api_keys::router())
        .merge(ledger::router())
        .merge(deposits::router())
        .merge(admin::router())
        .merge(simulation::router())
        .merge(instances::router())
        .merge(billing::router())
        .merge(ssh_keys::router())
        .merge(scripts::router())
        .merge(volumes::router())
        .merge(firewalls::router())
        .merge(snapshots::router())
        .merge(images::router())
        .merge(ai::router())
        .merge(event_stream::router())
        .merge(webhooks::router())
}
