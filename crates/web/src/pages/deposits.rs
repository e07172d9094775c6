//! Deposits: open one (the deposit service's rules: amount, minimum, currency from the profile country,
//! complete profile, pending limit), then follow it on its checkout page, which is where the deposit's
//! `checkout_url` leads when the installation takes payments without an external service.

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::PageQuery;
use barrack_api::deposits::{CreateDepositRequest, Deposit, DepositStatus};
use barrack_core::accounts::web_sessions::WebSession;
use serde::Deserialize;

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{
    Errors, Nav, money, next_page, ok, page_number, previous_page, query, render, when,
};

const PER_PAGE: u32 = 20;

pub struct DepositView {
    pub id: String,
    pub amount: String,
    pub tax_percent: String,
    pub tax: String,
    pub total: String,
    pub status: &'static str,
    pub badge: &'static str,
    pub pending: bool,
    pub provider: String,
    pub reference: String,
    pub created: String,
    pub completed: String,
    pub transaction_id: String,
}

impl DepositView {
    fn new(d: &Deposit) -> DepositView {
        DepositView {
            id: d.id.clone(),
            amount: money(d.amount, d.currency),
            tax_percent: d.tax_percent.normalize().to_string(),
            tax: money(d.tax, d.currency),
            total: money(d.total_payable, d.currency),
            status: d.status.as_str(),
            badge: match d.status {
                DepositStatus::Pending => "busy",
                DepositStatus::Completed => "ok",
                DepositStatus::Cancelled => "idle",
            },
            pending: d.status == DepositStatus::Pending,
            provider: d.provider.clone(),
            reference: d.payment_reference.clone(),
            created: when(&d.created_at),
            completed: d.completed_at.as_deref().map(when).unwrap_or_default(),
            transaction_id: d.transaction_id.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "deposits.html")]
struct DepositsPage {
    nav: Nav,
    balance: String,
    currency: &'static str,
    minimum: String,
    tax_percent: String,
    amount: String,
    errors: Errors,
    deposits: Vec<DepositView>,
    page: u32,
    total_pages: u32,
    prev: String,
    next: String,
}

#[derive(Deserialize, Default)]
pub struct ListParams {
    page: Option<String>,
}

async fn deposits_page(
    state: &crate::WebState,
    session: &WebSession,
    page: u32,
) -> Result<DepositsPage, WebError> {
    let services = &state.services;
    let caller = &session.caller;
    let balance = services.ledger.balance(caller).await?;
    let currency = balance.currency;
    let list = services
        .deposits
        .list(
            caller,
            PageQuery {
                page: Some(page),
                limit: Some(PER_PAGE),
            },
        )
        .await?;
    let p = list.pagination;
    let total_pages = p.total_pages.max(1);
    let link = |n: u32| query(&[("page", &n.to_string())]);
    Ok(DepositsPage {
        nav: Nav::new(session, "billing"),
        balance: money(balance.balance, currency),
        currency: currency.as_str(),
        minimum: money(services.deposits.minimum(currency), currency),
        tax_percent: services
            .deposits
            .tax_percent(currency)
            .normalize()
            .to_string(),
        amount: String::new(),
        errors: Errors::default(),
        deposits: list.deposits.iter().map(DepositView::new).collect(),
        page: p.page,
        total_pages,
        prev: previous_page(p.page, link),
        next: next_page(p.page, total_pages, link),
    })
}

/// `/deposits`: the form and the account's deposits.
pub async fn list(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Query(params): Query<ListParams>,
) -> Result<Response, WebError> {
    let page = page_number(params.page.as_deref());
    ok(&deposits_page(&state, &session, page).await?)
}

/// Opens a deposit and sends the browser to its checkout.
pub async fn create(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let typed = form.get("amount").unwrap_or_default();
    // Read exactly as the API reads an amount: plain digits, no exponent.
    let amount = match super::amount(&typed) {
        Ok(amount) => amount,
        Err(message) => {
            let mut errors = Errors::default();
            errors.fields.insert("amount".into(), vec![message]);
            return refuse(&state, &session, typed, errors, StatusCode::BAD_REQUEST).await;
        }
    };
    match state
        .services
        .deposits
        .create(
            &session.caller,
            CreateDepositRequest {
                amount,
                currency: None,
            },
        )
        .await
    {
        Ok(deposit) => {
            // Where the provider said the payer pays; the dashboard's own page when it names none.
            let to = deposit
                .checkout_url
                .clone()
                .unwrap_or_else(|| format!("/deposits/{}", deposit.id));
            Ok(super::see(&to))
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            refuse(&state, &session, typed, Errors::from_error(e)?, status).await
        }
    }
}

/// The form again, with what was typed and the messages at the field.
async fn refuse(
    state: &crate::WebState,
    session: &WebSession,
    typed: String,
    errors: Errors,
    status: StatusCode,
) -> Result<Response, WebError> {
    let mut page = deposits_page(state, session, 1).await?;
    page.errors = errors;
    page.amount = typed;
    render(status, &page)
}

#[derive(Template)]
#[template(path = "deposit.html")]
struct DepositPage {
    nav: Nav,
    d: DepositView,
    manual: bool,
}

#[derive(Template)]
#[template(path = "deposit_status.html")]
struct DepositStatusPart {
    d: DepositView,
}

/// `/deposits/{id}`: the checkout of a deposit, following it until it completes.
pub async fn page(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let deposit = state.services.deposits.get(&session.caller, &id).await?;
    ok(&DepositPage {
        nav: Nav::new(&session, "billing"),
        manual: deposit.provider == "manual",
        d: DepositView::new(&deposit),
    })
}

/// The status part of the checkout page, refreshed while the deposit is pending.
pub async fn status(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let deposit = state.services.deposits.get(&session.caller, &id).await?;
    ok(&DepositStatusPart {
        d: DepositView::new(&deposit),
    })
}
