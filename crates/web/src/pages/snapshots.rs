//! Snapshots as cards, each with the Restore dialog of the snapshot-restore guide: the snapshot's details
//! and the new instance's name (2–30 characters), then "Restore Snapshot".

use askama::Template;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::snapshots::{RestoreSnapshotRequest, Snapshot, SnapshotQuery};

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{Errors, Nav, badge, money, next_page, ok, previous_page, query, render, when};

const PAGE_SIZE: u32 = 30;

pub struct SnapshotView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub badge: &'static str,
    pub reason: String,
    pub size_gb: u32,
    pub instance_id: String,
    pub instance_name: String,
    pub region: String,
    pub created: String,
    pub hardware: String,
    pub disk: String,
    pub rate: String,
    pub restorable: bool,
}

impl SnapshotView {
    fn of(s: &Snapshot) -> SnapshotView {
        let src = &s.source;
        SnapshotView {
            id: s.id.clone(),
            name: s.name.clone(),
            status: s.status.clone(),
            badge: badge(&s.status),
            reason: s.status_reason.clone().unwrap_or_default(),
            size_gb: s.size_gb,
            instance_id: s.instance_id.clone(),
            instance_name: src.instance_name.clone(),
            region: s.region.clone(),
            created: when(&s.created_at),
            hardware: format!(
                "{} vCPUs, {} GB RAM, {} × {}",
                src.vcpus, src.ram_gb, src.gpu_count, src.gpu_model
            ),
            disk: format!("{} GB {}", src.storage_gb, src.os_volume_type),
            rate: format!("{}/h", money(s.hourly_rate.0, s.currency)),
            restorable: s.status == "SUCCESS",
        }
    }
}

#[derive(Template)]
#[template(path = "snapshots.html")]
struct SnapshotsPage {
    nav: Nav,
    snapshots: Vec<SnapshotView>,
    any_busy: bool,
    page: u32,
    total_pages: u32,
    prev: String,
    next: String,
}

#[derive(Template)]
#[template(path = "restore.html")]
struct RestorePage {
    nav: Nav,
    s: SnapshotView,
    instance_name: String,
    errors: Errors,
}

pub async fn list(
    axum::extract::State(state): State,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let q = Form::parse(&raw.unwrap_or_default().into_bytes().into());
    let page: u32 = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let list = state
        .services
        .snapshots
        .list(
            &session.caller,
            SnapshotQuery {
                page: Some(page),
                limit: Some(PAGE_SIZE),
                ..SnapshotQuery::default()
            },
            &[],
        )
        .await?;
    let snapshots: Vec<SnapshotView> = list.snapshots.iter().map(SnapshotView::of).collect();
    let p = list.pagination;
    let link = |n: u32| query(&[("page", &n.to_string())]);
    ok(&SnapshotsPage {
        nav: Nav::new(&session, "snapshots"),
        any_busy: snapshots.iter().any(|s| s.badge == "busy"),
        snapshots,
        page: p.page,
        total_pages: p.total_pages.max(1),
        prev: previous_page(p.page, link),
        next: next_page(p.page, p.total_pages, link),
    })
}

pub async fn restore(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let name = form.get("instance_name").unwrap_or_default();
    let request = RestoreSnapshotRequest {
        instance_name: Some(name.clone()),
    };
    match state
        .services
        .instances
        .restore_from_snapshot(&session.caller, &id, request)
        .await
    {
        Ok(created) => Ok(super::see(&format!("/instances/{}", created.instance_id))),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let errors = Errors::from_error_at(e, &[("An instance named", "instance_name")])?;
            let snapshot = state.services.snapshots.get(&session.caller, &id).await?;
            render(
                status,
                &RestorePage {
                    nav: Nav::new(&session, "snapshots"),
                    s: SnapshotView::of(&snapshot),
                    instance_name: name,
                    errors,
                },
            )
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
        .snapshots
        .delete(&session.caller, &id)
        .await?;
    Ok(super::see("/snapshots"))
}
