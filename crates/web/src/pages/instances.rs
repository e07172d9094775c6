//! The fleet (a filtered, paginated list with batch operations) and the page of one instance.

use askama::Template;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::PageQuery;
use barrack_api::instances::{Event, Instance, InstanceQuery};
use barrack_api::snapshots::CreateSnapshotRequest;
use barrack_core::accounts::Caller;
use barrack_core::lifecycle::{Action, InstanceState};

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{
    Errors, Nav, badge, filtered_list, money, next_page, ok, previous_page, query, render,
    transitional, when,
};

/// Rows per page of the fleet.
const PAGE_SIZE: u32 = 50;

/// One instance as the pages show it.
pub struct InstanceView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub badge: &'static str,
    pub busy: bool,
    pub reason: String,
    pub region: String,
    pub gpu: String,
    pub cpu_ram: String,
    pub storage_gb: u32,
    pub ip: String,
    pub ip_status: String,
    pub public_ip: bool,
    pub ssh: String,
    pub rate: String,
    pub boot_source: String,
    pub os: String,
    pub created: String,
    pub updated: String,
    pub actions: Vec<(&'static str, &'static str, bool)>,
}

impl InstanceView {
    pub fn of(i: &Instance) -> InstanceView {
        let ip = i.ip_address.clone().unwrap_or_default();
        let os = i.operating_system.clone().unwrap_or_default();
        let user = if os.to_lowercase().contains("ubuntu") {
            "ubuntu"
        } else {
            "root"
        };
        InstanceView {
            id: i.instance_id.clone(),
            name: i.name.clone(),
            status: i.status.clone(),
            badge: badge(&i.status),
            busy: transitional(&i.status),
            reason: i.status_reason.clone().unwrap_or_default(),
            region: i.region.clone(),
            gpu: format!("{} × {}", i.specs.gpu_count, i.specs.gpu_type),
            cpu_ram: format!("{} vCPUs, {} GB RAM", i.specs.vcpus, i.specs.ram_gb),
            storage_gb: i.specs.storage_gb,
            ssh: if ip.is_empty() {
                String::new()
            } else {
                format!("ssh {user}@{ip}")
            },
            ip,
            // Why there is no address, in words: the API's `pending` covers them all.
            ip_status: match (i.public_ip, i.status.as_str()) {
                (false, _) => "none (no public IP)".into(),
                (true, "HIBERNATED" | "HIBERNATING" | "RESTORING") => {
                    "given back while hibernated".into()
                }
                (true, "ERROR" | "DELETING") => "none".into(),
                _ => i.ip_status.clone(),
            },
            public_ip: i.public_ip,
            rate: format!(
                "{}/h",
                money(i.billing.total_hourly_rate.0, i.billing.currency)
            ),
            boot_source: i.boot_source.clone(),
            os,
            created: when(&i.created_at),
            updated: when(&i.updated_at),
            actions: i
                .allowed_actions
                .iter()
                .filter_map(|a| action_button(a))
                .collect(),
        }
    }
}

/// Label and whether it asks for confirmation, of an action the instance allows now.
fn action_button(action: &str) -> Option<(&'static str, &'static str, bool)> {
    Some(match action {
        "start" => ("start", "Start", false),
        "stop" => ("stop", "Stop", true),
        "reboot" => ("reboot", "Reboot", true),
        "hibernate" => ("hibernate", "Hibernate", true),
        "restore" => ("restore", "Restore", false),
        "delete" => ("delete", "Delete", true),
        _ => return None,
    })
}

fn parse_action(name: &str) -> Option<Action> {
    Action::ALL.into_iter().find(|a| a.as_str() == name)
}

#[derive(Template)]
#[template(path = "instances.html")]
struct ListPage {
    nav: Nav,
    rows: String,
    status: String,
    region: String,
    name: String,
    statuses: Vec<&'static str>,
    regions: Vec<String>,
    errors: Errors,
}

#[derive(Template)]
#[template(path = "instance_rows.html")]
struct Rows {
    instances: Vec<InstanceView>,
    any_busy: bool,
    refresh: String,
    page: u32,
    total_pages: u32,
    total: u64,
    prev: String,
    next: String,
}

struct Filters {
    status: String,
    region: String,
    name: String,
    page: u32,
}

fn filters(raw: Option<String>) -> Filters {
    let form = Form::parse(&raw.unwrap_or_default().into_bytes().into());
    Filters {
        status: form.get("status").unwrap_or_default(),
        region: form.get("region").unwrap_or_default(),
        name: form.get("name").unwrap_or_default(),
        page: form
            .get("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
            .max(1),
    }
}

async fn rows_of(
    state: &crate::WebState,
    caller: &Caller,
    f: &Filters,
) -> Result<Rows, barrack_core::Error> {
    let none_if_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let list = state
        .services
        .instances
        .list(
            caller,
            InstanceQuery {
                page: Some(f.page),
                limit: Some(PAGE_SIZE),
                status: none_if_empty(&f.status),
                region: none_if_empty(&f.region),
                gpu_model: None,
                name: none_if_empty(&f.name),
            },
            &[],
        )
        .await?;
    let instances: Vec<InstanceView> = list.instances.iter().map(InstanceView::of).collect();
    let link = |page: u32| {
        query(&[
            ("status", &f.status),
            ("region", &f.region),
            ("name", &f.name),
            ("page", &page.to_string()),
        ])
    };
    let p = list.pagination;
    Ok(Rows {
        any_busy: instances.iter().any(|i| i.busy),
        instances,
        refresh: link(p.page),
        page: p.page,
        total_pages: p.total_pages.max(1),
        total: p.total,
        prev: previous_page(p.page, link),
        next: next_page(p.page, p.total_pages, link),
    })
}

pub async fn list(
    axum::extract::State(state): State,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    filtered_list(
        |filtered| {
            let asked = if filtered { raw.clone() } else { None };
            list_page(&state, &session, filters(asked), Errors::default())
        },
        |view| &mut view.errors,
    )
    .await
}

/// The fleet page, with the messages of a batch form the services refused.
async fn list_page(
    state: &crate::WebState,
    session: &barrack_core::accounts::web_sessions::WebSession,
    f: Filters,
    refused: Errors,
) -> Result<ListPage, WebError> {
    let rows = rows_of(state, &session.caller, &f).await?;
    Ok(ListPage {
        nav: Nav::new(session, "instances"),
        rows: rows.render().map_err(|e| WebError::Render(e.to_string()))?,
        status: f.status,
        region: f.region,
        name: f.name,
        statuses: InstanceState::LISTED.map(InstanceState::as_str).to_vec(),
        regions: state
            .services
            .config()
            .regions
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        errors: refused,
    })
}

/// The rows alone, refreshed by the list while some instance is on its way somewhere.
pub async fn rows(
    axum::extract::State(state): State,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let rows = rows_of(&state, &session.caller, &filters(raw)).await?;
    ok(&rows)
}

#[derive(Template)]
#[template(path = "batch.html")]
struct BatchPage {
    nav: Nav,
    action: String,
    results: Vec<(String, String, bool)>,
}

/// Batch operations of the fleet: hibernate, stop or start the chosen instances, or snapshot them together.
pub async fn batch(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let caller = &session.caller;
    let action = form.get("batch_action").unwrap_or_default();
    let ids = form.all("id");
    // Nothing chosen, or no operation: the list again with the message, and nothing done.
    let known = action == "snapshot" || parse_action(&action).is_some_and(|a| a != Action::Delete);
    let mut missing = Vec::new();
    if ids.is_empty() {
        missing.push("Choose at least one instance");
    }
    if !known {
        missing.push("Choose hibernate, stop, start or snapshot");
    }
    if !missing.is_empty() {
        let errors = Errors {
            general: Some(format!("{}.", missing.join(". "))),
            ..Errors::default()
        };
        let page = list_page(&state, &session, filters(None), errors).await?;
        return render(StatusCode::BAD_REQUEST, &page);
    }
    let mut results = Vec::new();
    let stamp = batch_stamp(state.services.clock().now_ms());
    for id in ids.iter().take(PAGE_SIZE as usize) {
        let outcome = match action.as_str() {
            "snapshot" => match state.services.instances.get(caller, id).await {
                Ok(instance) => state
                    .services
                    .snapshots
                    .create(
                        caller,
                        CreateSnapshotRequest {
                            instance_id: id.clone(),
                            name: batch_snapshot_name(&instance.name, &stamp),
                            description: Some(
                                "Taken with other instances from the dashboard".into(),
                            ),
                            is_image: false,
                            labels: Default::default(),
                        },
                    )
                    .await
                    .map(|s| format!("Snapshot {} {}", s.name, s.status.to_lowercase())),
                Err(e) => Err(e),
            },
            other => match parse_action(other).filter(|a| *a != Action::Delete) {
                Some(a) => state
                    .services
                    .instances
                    .act(caller, id, a)
                    .await
                    .map(|r| format!("{} → {}", r.status, r.target_status)),
                None => Err(barrack_core::Error::field(
                    "batch_action",
                    "Choose hibernate, stop, start or snapshot",
                )),
            },
        };
        results.push(match outcome {
            Ok(message) => (id.clone(), message, true),
            Err(e) => (id.clone(), e.public_message(), false),
        });
    }
    let status = if results.iter().all(|r| r.2) {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    render(
        status,
        &BatchPage {
            nav: Nav::new(&session, "instances"),
            action,
            results,
        },
    )
}

/// What tells one batch's snapshot names from another's: the time in seconds and a random tag, since two
/// batches of the same instance can come in the same second.
fn batch_stamp(now_ms: i64) -> String {
    format!(
        "{}-{}",
        now_ms / 1000,
        barrack_core::ids::random_alphanumeric(4).to_lowercase()
    )
}

/// A snapshot name for a batch: the instance's name and the batch's stamp, within the 50-character label
/// rule.
fn batch_snapshot_name(instance: &str, stamp: &str) -> String {
    let suffix = format!("-{stamp}");
    let keep = 50 - suffix.len();
    let base: String = instance.chars().take(keep).collect();
    format!("{base}{suffix}")
}

#[derive(Template)]
#[template(path = "instance.html")]
struct InstancePage {
    nav: Nav,
    i: InstanceView,
    live: String,
    events: Vec<EventView>,
    breakdown: Vec<(String, String)>,
    snapshot_name: String,
    errors: Errors,
    extras: String,
}

impl InstancePage {
    fn shown_fields(&self) -> &'static str {
        super::instance_extras::SHOWN
    }
}

#[derive(Template)]
#[template(path = "instance_live.html")]
struct Live {
    i: InstanceView,
    csrf: String,
}

pub struct EventView {
    pub when: String,
    pub what: String,
    pub actor: String,
}

fn event_view(e: &Event) -> EventView {
    let what = match (&e.from_status, &e.to_status) {
        (Some(from), Some(to)) => format!("{}: {from} → {to}", e.kind),
        (None, Some(to)) => format!("{}: {to}", e.kind),
        _ => e.kind.clone(),
    };
    EventView {
        when: when(&e.created_at),
        what: if e.cause.is_empty() {
            what
        } else {
            format!("{what} ({})", e.cause)
        },
        actor: e.actor.clone(),
    }
}

async fn instance_page(
    state: &crate::WebState,
    session: &barrack_core::accounts::web_sessions::WebSession,
    id: &str,
    errors: Errors,
    snapshot_name: String,
) -> Result<InstancePage, WebError> {
    let caller = &session.caller;
    let instance = state.services.instances.get(caller, id).await?;
    let events = state
        .services
        .instances
        .events(
            caller,
            Some(id),
            PageQuery {
                page: Some(1),
                limit: Some(20),
            },
        )
        .await?;
    let currency = instance.billing.currency;
    let b = &instance.billing.breakdown;
    let mut breakdown = vec![
        (
            format!("GPUs ({} × {})", b.compute.gpu.count, b.compute.gpu.model),
            money(b.compute.gpu.hourly_rate.0, currency),
        ),
        (
            format!(
                "OS volume ({} GB {})",
                b.storage.os_volume.size_gb, b.storage.os_volume.volume_type
            ),
            money(b.storage.os_volume.hourly_rate.0, currency),
        ),
    ];
    for v in &b.storage.data_volumes {
        breakdown.push((
            format!("Volume {} ({} GB {})", v.name, v.size_gb, v.volume_type),
            money(v.hourly_rate.0, currency),
        ));
    }
    let view = InstanceView::of(&instance);
    let extras =
        super::instance_extras::section(state, session, &instance, &errors, Default::default())
            .await?;
    Ok(InstancePage {
        extras,
        nav: Nav::new(session, "instances"),
        live: Live {
            i: InstanceView::of(&instance),
            csrf: session.csrf_token.clone(),
        }
        .render()
        .map_err(|e| WebError::Render(e.to_string()))?,
        i: view,
        events: events.events.iter().map(event_view).collect(),
        breakdown,
        snapshot_name,
        errors,
    })
}

/// The instance page again with the API's messages, the rule form keeping what was typed.
pub async fn page_with_errors(
    state: &crate::WebState,
    session: &barrack_core::accounts::web_sessions::WebSession,
    id: &str,
    errors: Errors,
    rule: super::instance_extras::RuleValues,
    status: StatusCode,
) -> Result<Response, WebError> {
    let mut page = instance_page(state, session, id, errors, String::new()).await?;
    let instance = state.services.instances.get(&session.caller, id).await?;
    page.extras =
        super::instance_extras::section(state, session, &instance, &page.errors, rule).await?;
    render(status, &page)
}

pub async fn page(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    ok(&instance_page(&state, &session, &id, Errors::default(), String::new()).await?)
}

/// The part of the instance page that changes by itself: status, address and the actions allowed now.
pub async fn live(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let instance = state.services.instances.get(&session.caller, &id).await?;
    ok(&Live {
        i: InstanceView::of(&instance),
        csrf: session.csrf_token.clone(),
    })
}

pub async fn act(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let Some(action) = form.get("action").as_deref().and_then(parse_action) else {
        let errors = Errors::from_error(barrack_core::Error::field("action", "Unknown action"))?;
        let page = instance_page(&state, &session, &id, errors, String::new()).await?;
        return render(StatusCode::BAD_REQUEST, &page);
    };
    match state
        .services
        .instances
        .act(&session.caller, &id, action)
        .await
    {
        Ok(_) if action == Action::Delete => Ok(super::see("/instances")),
        Ok(_) => Ok(super::see(&format!("/instances/{id}"))),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let errors = Errors::from_error(e)?;
            let page = instance_page(&state, &session, &id, errors, String::new()).await?;
            render(status, &page)
        }
    }
}

pub async fn toggle_public_ip(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    match state
        .services
        .instances
        .toggle_public_ip(&session.caller, &id)
        .await
    {
        Ok(_) => Ok(super::see(&format!("/instances/{id}"))),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let errors = Errors::from_error(e)?;
            let page = instance_page(&state, &session, &id, errors, String::new()).await?;
            render(status, &page)
        }
    }
}

pub async fn snapshot(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let name = form.get("name").unwrap_or_default();
    let request = CreateSnapshotRequest {
        instance_id: id.clone(),
        name: name.clone(),
        description: form.get("description"),
        is_image: form.checked("is_image"),
        labels: Default::default(),
    };
    match state
        .services
        .snapshots
        .create(&session.caller, request)
        .await
    {
        Ok(_) => Ok(super::see("/snapshots")),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let errors = Errors::from_error_at(e, &[("A snapshot named", "name")])?;
            let page = instance_page(&state, &session, &id, errors, name).await?;
            render(status, &page)
        }
    }
}
