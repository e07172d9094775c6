//! The overview: balances, how many instances run or sleep, and what needs attention.

use askama::Template;
use axum::response::Response;
use barrack_api::instances::InstanceQuery;
use barrack_core::accounts::missing_profile_fields;

use crate::State;
use crate::error::WebError;
use crate::session::Signed;
use crate::view::{Nav, money, ok};

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    nav: Nav,
    name: String,
    balances: Vec<String>,
    balance: String,
    minimum: String,
    low_balance: bool,
    /// The profile's missing fields by the profile form's labels; empty when complete.
    missing_profile: String,
    running: u64,
    hibernated: u64,
    total: u64,
    tier: &'static str,
    outlook: super::billing::OutlookView,
}

pub async fn page(
    axum::extract::State(state): State,
    Signed(session): Signed,
) -> Result<Response, WebError> {
    let services = &state.services;
    let caller = &session.caller;
    let balance = services.ledger.balance(caller).await?;
    let count = |status: Option<&str>| {
        let query = InstanceQuery {
            status: status.map(str::to_string),
            limit: Some(1),
            ..InstanceQuery::default()
        };
        services.instances.list(caller, query, &[])
    };
    let running = count(Some("ACTIVE")).await?.pagination.total;
    let hibernated = count(Some("HIBERNATED")).await?.pagination.total;
    let total = count(None).await?.pagination.total;
    let outlook = services.billing.outlook(caller, balance.balance).await?;
    let page = OverviewPage {
        nav: Nav::new(&session, "overview"),
        name: caller.account.name.clone(),
        balances: balance
            .balances
            .iter()
            .map(|b| money(b.balance, b.currency))
            .collect(),
        balance: money(balance.balance, balance.currency),
        minimum: money(balance.minimum_balance, balance.currency),
        low_balance: balance.balance < balance.minimum_balance,
        missing_profile: crate::view::profile_labels(&missing_profile_fields(&caller.account)),
        running,
        hibernated,
        total,
        tier: caller.tier.as_str(),
        outlook: super::billing::OutlookView::new(&outlook),
    };
    ok(&page)
}
