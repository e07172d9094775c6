//! Custom images: made from snapshots, listed (paginated, filtered by region and status), deleted. They are
//! boot sources on the deploy page.

use askama::Template;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::images::{CreateImageRequest, ImageQuery};
use barrack_api::snapshots::SnapshotQuery;
use barrack_core::accounts::web_sessions::WebSession;

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{
    Errors, Nav, badge, filtered_list, next_page, previous_page, query, render, when,
};

const PAGE_SIZE: u32 = 50;

pub struct ImageView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub status: String,
    pub badge: &'static str,
    pub reason: String,
    pub region: String,
    pub os: String,
    pub size_gb: u32,
    pub snapshot_id: String,
    pub snapshot_name: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "images.html")]
struct ImagesPage {
    nav: Nav,
    images: Vec<ImageView>,
    total: u64,
    page: u32,
    total_pages: u32,
    prev: String,
    next: String,
    region: String,
    status: String,
    regions: Vec<String>,
    /// Snapshots images can be made from (SUCCESS, the newest 100).
    snapshots: Vec<(String, String)>,
    snapshot_id: String,
    name: String,
    description: String,
    errors: Errors,
}

struct Filters {
    region: String,
    status: String,
    page: u32,
}

fn filters(raw: Option<String>) -> Filters {
    let q = Form::parse(&raw.unwrap_or_default().into_bytes().into());
    Filters {
        region: q.get("region").unwrap_or_default(),
        status: q.get("status").unwrap_or_default(),
        page: q
            .get("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1u32)
            .max(1),
    }
}

async fn images_page(
    state: &crate::WebState,
    session: &WebSession,
    f: Filters,
    errors: Errors,
) -> Result<ImagesPage, WebError> {
    let caller = &session.caller;
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let list = state
        .services
        .images
        .list(
            caller,
            ImageQuery {
                page: Some(f.page),
                limit: Some(PAGE_SIZE),
                region: some(&f.region),
                status: some(&f.status),
            },
            &[],
        )
        .await?;
    let snapshots = state
        .services
        .snapshots
        .list(
            caller,
            SnapshotQuery {
                page: Some(1),
                limit: Some(100),
                status: Some("SUCCESS".into()),
                ..SnapshotQuery::default()
            },
            &[],
        )
        .await?
        .snapshots
        .into_iter()
        .map(|s| (s.id, format!("{} ({})", s.name, s.region)))
        .collect();
    let p = list.pagination;
    let link = |n: u32| {
        query(&[
            ("region", &f.region),
            ("status", &f.status),
            ("page", &n.to_string()),
        ])
    };
    Ok(ImagesPage {
        nav: Nav::new(session, "images"),
        images: list
            .images
            .into_iter()
            .map(|i| ImageView {
                badge: badge(&i.status),
                reason: i.status_reason.unwrap_or_default(),
                description: i.description.unwrap_or_default(),
                os: i.operating_system.unwrap_or_default(),
                created: when(&i.created_at),
                id: i.id,
                name: i.name,
                status: i.status,
                region: i.region,
                size_gb: i.size_gb,
                snapshot_id: i.snapshot_id,
                snapshot_name: i.snapshot_name,
            })
            .collect(),
        total: p.total,
        page: p.page,
        total_pages: p.total_pages.max(1),
        prev: previous_page(p.page, link),
        next: next_page(p.page, p.total_pages, link),
        regions: state
            .services
            .config()
            .regions
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        region: f.region,
        status: f.status,
        snapshots,
        snapshot_id: String::new(),
        name: String::new(),
        description: String::new(),
        errors,
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
            images_page(&state, &session, filters(asked), Errors::default())
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
    let request = CreateImageRequest {
        snapshot_id: form.get("snapshot_id").unwrap_or_default(),
        name: form.get("name").unwrap_or_default(),
        description: form.get("description"),
        labels: Default::default(),
    };
    match state
        .services
        .images
        .create(&session.caller, request.clone())
        .await
    {
        Ok(_) => Ok(super::see("/images")),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            // A snapshot id that is not the caller's is a message at the field.
            let e = match e {
                barrack_core::Error::NotFound(m) => barrack_core::Error::field("snapshot_id", m),
                other => other,
            };
            let errors = Errors::from_error_at(e, &[("An image named", "name")])?;
            let mut page = images_page(&state, &session, filters(None), errors).await?;
            page.snapshot_id = request.snapshot_id;
            page.name = request.name;
            page.description = request.description.unwrap_or_default();
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
    match state.services.images.delete(&session.caller, &id).await {
        Ok(_) => Ok(super::see("/images")),
        Err(barrack_core::Error::NotFound(m)) => Err(barrack_core::Error::NotFound(m).into()),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let errors = Errors::from_error(e)?;
            render(
                status,
                &images_page(&state, &session, filters(None), errors).await?,
            )
        }
    }
}
