//! Firewalls: the list with their rules and attachments, creation, deletion.

use askama::Template;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::catalog::CatalogQuery;
use barrack_api::firewalls::{CreateFirewallRequest, FirewallQuery, FirewallSummary};
use barrack_core::accounts::web_sessions::WebSession;

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{Errors, Nav, badge, filtered_list, next_page, previous_page, query, render};

const PAGE_SIZE: u32 = 50;

#[derive(Template)]
#[template(path = "firewalls.html")]
struct FirewallsPage {
    nav: Nav,
    firewalls: Vec<(FirewallSummary, &'static str)>,
    total: u64,
    page: u32,
    total_pages: u32,
    prev: String,
    next: String,
    filter_region: String,
    regions: Vec<String>,
    name: String,
    description: String,
    region: String,
    errors: Errors,
}

async fn firewalls_page(
    state: &crate::WebState,
    session: &WebSession,
    page: u32,
    filter_region: String,
) -> Result<FirewallsPage, WebError> {
    let caller = &session.caller;
    let list = state
        .services
        .firewalls
        .list(
            caller,
            FirewallQuery {
                page: Some(page),
                limit: Some(PAGE_SIZE),
                region: (!filter_region.is_empty()).then(|| filter_region.clone()),
            },
            &[],
        )
        .await?;
    let p = list.pagination;
    let link = |n: u32| query(&[("region", &filter_region), ("page", &n.to_string())]);
    let regions = state.services.catalog.regions(&CatalogQuery {
        tier: Some(caller.tier),
        region: None,
        gpu_model: None,
    })?;
    Ok(FirewallsPage {
        nav: Nav::new(session, "firewalls"),
        total: p.total,
        page: p.page,
        total_pages: p.total_pages.max(1),
        prev: previous_page(p.page, link),
        next: next_page(p.page, p.total_pages, link),
        filter_region: filter_region.clone(),
        firewalls: list
            .firewalls
            .into_iter()
            .map(|f| {
                let b = badge(&f.status);
                (f, b)
            })
            .collect(),
        regions: regions.into_iter().map(|r| r.name).collect(),
        name: String::new(),
        description: String::new(),
        region: String::new(),
        errors: Errors::default(),
    })
}

pub async fn list(
    axum::extract::State(state): State,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let q = Form::parse(&raw.unwrap_or_default().into_bytes().into());
    let page = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1u32)
        .max(1);
    let region = q.get("region").unwrap_or_default();
    filtered_list(
        |filtered| match filtered {
            true => firewalls_page(&state, &session, page, region.clone()),
            false => firewalls_page(&state, &session, 1, String::new()),
        },
        |view| &mut view.errors,
    )
    .await
}

pub async fn create(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let request = CreateFirewallRequest {
        name: form.get("name").unwrap_or_default(),
        description: form.get("description"),
        region: form.get("region").unwrap_or_default(),
        rules: Vec::new(),
        labels: Default::default(),
    };
    match state
        .services
        .firewalls
        .create(&session.caller, request.clone())
        .await
    {
        Ok(_) => Ok(super::see("/firewalls")),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut page = firewalls_page(&state, &session, 1, String::new()).await?;
            page.errors = Errors::from_error_at(e, &[("A firewall named", "name")])?;
            page.errors.regions_offered(&request.region, &page.regions);
            page.name = request.name;
            page.description = request.description.unwrap_or_default();
            page.region = request.region;
            render(status, &page)
        }
    }
}

pub async fn delete(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    state
        .services
        .firewalls
        .delete(&session.caller, &id, false)
        .await?;
    Ok(super::see("/firewalls"))
}
