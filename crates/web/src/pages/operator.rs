//! Operator pages (operator accounts only; anyone else gets the 404 page): accounts and credit grants, GPU
//! capacity and stock, the job queue and its dead letters, and in simulation mode the clock and faults.
//! They call the services the admin API handlers call.

use askama::Template;
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::account::AdminUser;
use barrack_api::catalog::{CapacityItem, CapacitySetting};
use barrack_api::instances::Host;
use barrack_api::{Currency, PageQuery};
use barrack_core::Error;
use barrack_core::accounts::web_sessions::WebSession;
use barrack_core::clock::format_ms;

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{Errors, Nav, money, next_page, page_number, previous_page, query, render, when};

const PAGE_SIZE: u32 = 50;

/// Operator pages do not exist for other accounts.
fn operator(session: &WebSession) -> Result<(), WebError> {
    if session.caller.is_admin() {
        Ok(())
    } else {
        Err(WebError::Domain(Error::NotFound("Not found".into())))
    }
}

/// The query string's fields, and the page its `name` field asks for.
fn query_and_page(raw: &Option<String>, name: &str) -> (u32, Form) {
    let q = Form::parse(&raw.clone().unwrap_or_default().into_bytes().into());
    (page_number(q.get(name).as_deref()), q)
}

fn failed(e: Error) -> (StatusCode, Result<Errors, WebError>) {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Errors::from_error(e))
}

#[derive(Template)]
#[template(path = "operator_users.html")]
struct UsersPage {
    nav: Nav,
    section: &'static str,
    users: Vec<AdminUser>,
    total: u64,
    page: u32,
    total_pages: u32,
    prev: String,
    next: String,
    account: String,
    amount: String,
    currency: String,
    note: String,
    granted: String,
    errors: Errors,
}

async fn users_page(
    state: &crate::WebState,
    session: &WebSession,
    page: u32,
) -> Result<UsersPage, WebError> {
    let request = PageQuery {
        page: Some(page),
        limit: Some(PAGE_SIZE),
    }
    .validate()
    .map_err(|(field, message)| Error::field(field, message))?;
    let (users, p) = state.services.accounts.list_accounts(request).await?;
    let link = |n: u32| query(&[("page", &n.to_string())]);
    Ok(UsersPage {
        nav: Nav::new(session, "operator"),
        section: "users",
        users,
        total: p.total,
        page: p.page,
        total_pages: p.total_pages.max(1),
        prev: previous_page(p.page, link),
        next: next_page(p.page, p.total_pages, link),
        account: String::new(),
        amount: String::new(),
        currency: "USD".into(),
        note: String::new(),
        granted: String::new(),
        errors: Errors::default(),
    })
}

/// Accounts, 50 a page, and the credit grant form (`?account=` fills it in).
pub async fn users(
    axum::extract::State(state): State,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    operator(&session)?;
    let (page, q) = query_and_page(&raw, "page");
    let mut view = users_page(&state, &session, page).await?;
    view.account = q.get("account").unwrap_or_default();
    view.granted = q.get("granted").unwrap_or_default();
    render(StatusCode::OK, &view)
}

pub async fn grant(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    operator(&session)?;
    form.check_csrf(&session)?;
    let account = form.get("account").unwrap_or_default();
    let amount = form.get("amount").unwrap_or_default();
    let currency = form.get("currency").unwrap_or_default();
    let note = form.get("note");
    let services = &state.services;
    let result = async {
        // Read exactly as the API reads an amount: plain digits, no exponent.
        let parsed = super::amount(&amount).map_err(|m| Error::field("amount", m))?;
        let cur = Currency::parse(&currency)
            .ok_or_else(|| Error::field("currency", "Currency must be USD, EUR or INR"))?;
        let target = services
            .accounts
            .account_by_id_or_email(&account)
            .await
            .map_err(|e| match e {
                Error::NotFound(m) => Error::field("account", m),
                other => other,
            })?;
        services
            .ledger
            .grant(
                session.caller.account_id(),
                &target.id,
                parsed,
                cur,
                note.clone(),
            )
            .await
            .map(|t| (target.email, money(t.amount, cur)))
    }
    .await;
    match result {
        Ok((email, granted)) => Ok(super::see(&format!(
            "/operator?{}",
            query(&[("granted", &format!("{granted} to {email}"))])
        ))),
        Err(e) => {
            let (status, errors) = failed(e);
            let mut view = users_page(&state, &session, 1).await?;
            view.errors = errors?;
            view.account = account;
            view.amount = amount;
            view.currency = currency;
            view.note = note.unwrap_or_default();
            render(status, &view)
        }
    }
}

#[derive(Template)]
#[template(path = "operator_capacity.html")]
struct CapacityPage {
    nav: Nav,
    section: &'static str,
    capacity: Vec<CapacityItem>,
    hosts: Vec<Host>,
    hosts_error: String,
    /// The row whose form was refused: (region, model, typed total).
    typed: (String, String, String),
    errors: Errors,
}

async fn capacity_page(
    state: &crate::WebState,
    session: &WebSession,
    errors: Errors,
) -> Result<CapacityPage, WebError> {
    let capacity = state.services.catalog.capacity().await?;
    let (hosts, hosts_error) = match state.services.instances.hosts().await {
        Ok(hosts) => (hosts, String::new()),
        Err(e) => (Vec::new(), e.public_message()),
    };
    Ok(CapacityPage {
        nav: Nav::new(session, "operator"),
        section: "capacity",
        capacity,
        hosts,
        hosts_error,
        typed: Default::default(),
        errors,
    })
}

pub async fn capacity(
    axum::extract::State(state): State,
    Signed(session): Signed,
) -> Result<Response, WebError> {
    operator(&session)?;
    render(
        StatusCode::OK,
        &capacity_page(&state, &session, Errors::default()).await?,
    )
}

pub async fn set_capacity(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    operator(&session)?;
    form.check_csrf(&session)?;
    let region = form.get("region").unwrap_or_default();
    let model = form.get("gpu_model").unwrap_or_default();
    let total = form.get("total").unwrap_or_default();
    let result = match total.parse::<u32>() {
        Ok(n) => state
            .services
            .catalog
            .set_capacity(&[CapacitySetting {
                region: region.clone(),
                gpu_model: model.clone(),
                total: n,
            }])
            .await
            .map(|_| ()),
        Err(_) => Err(Error::field(
            "total",
            "Total must be a whole number of GPUs",
        )),
    };
    match result {
        Ok(()) => Ok(super::see("/operator/capacity")),
        Err(e) => {
            let (status, errors) = failed(e);
            let mut view = capacity_page(&state, &session, errors?).await?;
            view.typed = (region, model, total);
            render(status, &view)
        }
    }
}

pub struct JobView {
    pub id: String,
    pub kind: String,
    pub resource_id: String,
    pub status: String,
    pub badge: &'static str,
    pub attempts: String,
    pub last_error: String,
    pub run_after: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "operator_jobs.html")]
struct JobsPage {
    nav: Nav,
    section: &'static str,
    jobs: Vec<JobView>,
    queued: usize,
    dead: usize,
    shown: String,
    page: u32,
    total_pages: u32,
    prev: String,
    next: String,
}

/// Jobs the operators follow (the oldest 500): the queue (pending, running) or the dead letters.
pub async fn jobs(
    axum::extract::State(state): State,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    operator(&session)?;
    let (page, q) = query_and_page(&raw, "page");
    let shown = match q.get("show").as_deref() {
        Some("dead") => "dead",
        _ => "queue",
    };
    let rows = state
        .services
        .store()
        .jobs_for_operators(500)
        .await
        .map_err(Error::from)?;
    let dead = rows.iter().filter(|j| j.status == "failed").count();
    let queued = rows.len() - dead;
    let chosen: Vec<_> = rows
        .into_iter()
        .filter(|j| (j.status == "failed") == (shown == "dead"))
        .collect();
    let total_pages = (chosen.len() as u32).div_ceil(PAGE_SIZE).max(1);
    let page = page.min(total_pages);
    let link = |n: u32| query(&[("show", shown), ("page", &n.to_string())]);
    let jobs = chosen
        .into_iter()
        .skip(((page - 1) * PAGE_SIZE) as usize)
        .take(PAGE_SIZE as usize)
        .map(|j| JobView {
            badge: match j.status.as_str() {
                "failed" => "bad",
                "running" => "busy",
                _ => "idle",
            },
            attempts: format!("{} of {}", j.attempts, j.max_attempts),
            last_error: j.last_error.unwrap_or_default(),
            run_after: when(&format_ms(j.run_after)),
            created: when(&format_ms(j.created_at)),
            id: j.id,
            kind: j.kind,
            resource_id: j.resource_id,
            status: j.status,
        })
        .collect();
    render(
        StatusCode::OK,
        &JobsPage {
            nav: Nav::new(&session, "operator"),
            section: "jobs",
            jobs,
            queued,
            dead,
            shown: shown.into(),
            page,
            total_pages,
            prev: previous_page(page, link),
            next: next_page(page, total_pages, link),
        },
    )
}

#[derive(Template)]
#[template(path = "operator_simulation.html")]
struct SimulationPage {
    nav: Nav,
    section: &'static str,
    simulated: bool,
    now: String,
    hosts: Vec<String>,
    operations: Vec<&'static str>,
    done: String,
    minutes: String,
    fault: FaultValues,
    errors: Errors,
}

#[derive(Default)]
struct FaultValues {
    kind: String,
    operation: String,
    nth: String,
    count: String,
    permanent: bool,
    host: String,
}

const OPERATIONS: [&str; 16] = [
    "create_instance",
    "start_instance",
    "stop_instance",
    "reboot_instance",
    "hibernate_instance",
    "restore_instance",
    "delete_instance",
    "create_volume",
    "delete_volume",
    "resize_volume",
    "clone_volume",
    "attach_volume",
    "detach_volume",
    "create_snapshot",
    "delete_snapshot",
    "apply_security_rules",
];

async fn simulation_page(
    state: &crate::WebState,
    session: &WebSession,
    errors: Errors,
) -> Result<SimulationPage, WebError> {
    let hosts = match state.services.instances.hosts().await {
        Ok(hosts) => hosts
            .into_iter()
            .filter(|h| !h.lost)
            .map(|h| h.name)
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(SimulationPage {
        nav: Nav::new(session, "operator"),
        section: "simulation",
        simulated: state.simulator.is_some(),
        now: when(&format_ms(state.services.clock().now_ms())),
        hosts,
        operations: OPERATIONS.to_vec(),
        done: String::new(),
        minutes: "60".into(),
        fault: FaultValues {
            nth: "1".into(),
            count: "1".into(),
            ..FaultValues::default()
        },
        errors,
    })
}

pub async fn simulation(
    axum::extract::State(state): State,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    operator(&session)?;
    let (_, q) = query_and_page(&raw, "page");
    let mut view = simulation_page(&state, &session, Errors::default()).await?;
    view.done = q.get("done").unwrap_or_default();
    render(StatusCode::OK, &view)
}

pub async fn advance_clock(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    operator(&session)?;
    form.check_csrf(&session)?;
    let minutes = form.get("minutes").unwrap_or_default();
    let result = match minutes.parse::<u32>() {
        Ok(m) => state.services.simulation.advance(m).await,
        Err(_) => Err(Error::field(
            "minutes",
            "Minutes must be a whole number from 1 to 525600",
        )),
    };
    match result {
        Ok(advanced) => Ok(super::see(&format!(
            "/operator/simulation?{}",
            query(&[(
                "done",
                &format!(
                    "Clock advanced to {}; {} billing periods charged",
                    when(&advanced.now),
                    advanced.periods_billed
                )
            )])
        ))),
        Err(e) => {
            let (status, errors) = failed(e);
            let mut view = simulation_page(&state, &session, errors?).await?;
            view.minutes = minutes;
            render(status, &view)
        }
    }
}

pub async fn inject_fault(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    operator(&session)?;
    form.check_csrf(&session)?;
    let typed = FaultValues {
        kind: form.get("kind").unwrap_or_default(),
        operation: form.get("operation").unwrap_or_default(),
        nth: form.get("nth").unwrap_or_default(),
        count: form.get("count").unwrap_or_default(),
        permanent: form.checked("permanent"),
        host: form.get("host").unwrap_or_default(),
    };
    let result = match (&state.simulator, fault(&typed)) {
        (Some(simulator), Ok((fault, what))) => state
            .services
            .simulation
            .inject_fault(simulator, fault)
            .await
            .map(|()| what)
            .map_err(|e| match e {
                Error::NotFound(message) => Error::field("host", message),
                other => other,
            }),
        (None, _) => Err(Error::conflict(
            "CONFLICT",
            "Faults can be injected only into the simulated data centre",
        )),
        (_, Err(e)) => Err(e),
    };
    match result {
        Ok(what) => Ok(super::see(&format!(
            "/operator/simulation?{}",
            query(&[("done", &format!("Fault injected: {what}"))])
        ))),
        Err(e) => {
            let (status, errors) = failed(e);
            let mut view = simulation_page(&state, &session, errors?).await?;
            view.fault = typed;
            render(status, &view)
        }
    }
}

/// The fault the form describes, and the admin API's body for it.
fn fault(f: &FaultValues) -> Result<(barrack_compute::sim::Fault, String), Error> {
    use barrack_compute::sim::Fault;
    let number = |field: &str, text: &str| {
        text.parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| Error::field(field, "Use a whole number from 1"))
    };
    let operation = || {
        OPERATIONS
            .contains(&f.operation.as_str())
            .then(|| serde_json::Value::String(f.operation.clone()))
            .ok_or_else(|| Error::field("operation", "Choose an operation"))
    };
    let body = match f.kind.as_str() {
        "fail_nth" => serde_json::json!({"kind": "fail_nth", "operation": operation()?,
            "nth": number("nth", &f.nth)?, "permanent": f.permanent}),
        "hang" => serde_json::json!({"kind": "hang", "operation": operation()?,
            "count": number("count", &f.count)?}),
        "lose_host" if f.host.is_empty() => return Err(Error::field("host", "Choose a host")),
        "lose_host" => serde_json::json!({"kind": "lose_host", "host": f.host}),
        _ => return Err(Error::field("kind", "Choose fail_nth, hang or lose_host")),
    };
    let fault: Fault =
        serde_json::from_value(body.clone()).map_err(|e| Error::field("kind", e.to_string()))?;
    Ok((fault, body.to_string()))
}
