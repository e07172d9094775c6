//! A file per section of the dashboard. Handlers read the session and the form, call one service, render.

pub mod account;
pub mod ai;
pub mod auth;
pub mod billing;
pub mod deploy;
pub mod deposits;
pub mod firewall;
pub mod firewalls;
pub mod images;
pub mod instance_extras;
pub mod instances;
pub mod operator;
pub mod overview;
pub mod scripts;
pub mod snapshots;
pub mod ssh_keys;
pub mod volume;
pub mod volumes;

use axum::response::{IntoResponse, Redirect, Response};

/// After a form that changed something: back to a page (303, so a reload does not resubmit).
pub fn see(path: &str) -> Response {
    Redirect::to(path).into_response()
}
