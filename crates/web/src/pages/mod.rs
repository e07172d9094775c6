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

/// An amount field read exactly as the API reads an amount (`barrack_api::decimal::parse`): digits,
/// optionally a point and more digits; no exponent, sign or spaces, so `1e3` is refused rather than
/// granted or charged as 1000. A blank field is required, as the API's missing member is.
pub fn amount(text: &str) -> Result<rust_decimal::Decimal, String> {
    if text.trim().is_empty() {
        return Err(barrack_api::body::REQUIRED_MESSAGE.to_string());
    }
    barrack_api::decimal::parse(text)
}
