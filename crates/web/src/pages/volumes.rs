//! Volumes: the account's volumes, a form to create one, deletion.

use askama::Template;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::catalog::CatalogQuery;
use barrack_api::volumes::{CreateVolumeRequest, VolumeQuery};
use barrack_core::accounts::web_sessions::WebSession;

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{
    Errors, Nav, badge, filtered_list, money, next_page, previous_page, query, render,
};

const PAGE_SIZE: u32 = 50;

pub struct VolumeView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub badge: &'static str,
    pub region: String,
    pub kind: String,
    pub size_gb: u32,
    pub attached_to: String,
    pub rate: String,
}

#[derive(Template)]
#[template(path = "volumes.html")]
struct VolumesPage {
    nav: Nav,
    volumes: Vec<VolumeView>,
    page: u32,
    total_pages: u32,
    prev: String,
    next: String,
    regions: Vec<String>,
    types: Vec<String>,
    /// The list's filters.
    filter_region: String,
    filter_status: String,
    statuses: Vec<&'static str>,
    name: String,
    size: String,
    region: String,
    volume_type: String,
    errors: Errors,
}

/// Volume states the list filters by.
const STATUSES: [&str; 9] = [
    "creating",
    "available",
    "in-use",
    "attaching",
    "detaching",
    "resizing",
    "cloning",
    "deleting",
    "error",
];

async fn volumes_page(
    state: &crate::WebState,
    session: &WebSession,
    page: u32,
    filter_region: String,
    filter_status: String,
) -> Result<VolumesPage, WebError> {
    let caller = &session.caller;
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let list = state
        .services
        .volumes
        .list(
            caller,
            VolumeQuery {
                page: Some(page),
                limit: Some(PAGE_SIZE),
                region: some(&filter_region),
                status: some(&filter_status),
            },
            &[],
        )
        .await?;
    let regions = state.services.catalog.regions(&CatalogQuery {
        tier: Some(caller.tier),
        region: None,
        gpu_model: None,
    })?;
    let mut types: Vec<String> = regions
        .iter()
        .flat_map(|r| r.volume_types.iter().cloned())
        .collect();
    types.sort();
    types.dedup();
    let p = list.pagination;
    let link = |n: u32| {
        query(&[
            ("region", &filter_region),
            ("status", &filter_status),
            ("page", &n.to_string()),
        ])
    };
    Ok(VolumesPage {
        nav: Nav::new(session, "volumes"),
        volumes: list
            .volumes
            .iter()
            .map(|v| VolumeView {
                id: v.id.clone(),
                name: v.name.clone(),
                status: v.status.clone(),
                badge: badge(&v.status),
                region: v.region.clone(),
                kind: format!(
                    "{}{}",
                    v.volume_type,
                    if v.bootable { ", bootable" } else { "" }
                ),
                size_gb: v.size_gb,
                attached_to: v
                    .attachment
                    .as_ref()
                    .map(|a| a.instance_id.clone())
                    .unwrap_or_default(),
                rate: format!("{}/h", money(v.hourly_rate.0, v.currency)),
            })
            .collect(),
        page: p.page,
        total_pages: p.total_pages.max(1),
        prev: previous_page(p.page, link),
        next: next_page(p.page, p.total_pages, link),
        regions: regions.into_iter().map(|r| r.name).collect(),
        types,
        filter_region: filter_region.clone(),
        filter_status: filter_status.clone(),
        statuses: STATUSES.to_vec(),
        name: String::new(),
        size: "10".into(),
        region: String::new(),
        volume_type: String::new(),
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
    let status = q.get("status").unwrap_or_default();
    filtered_list(
        |filtered| {
            let (region, status) = match filtered {
                true => (region.clone(), status.clone()),
                false => (String::new(), String::new()),
            };
            volumes_page(
                &state,
                &session,
                if filtered { page } else { 1 },
                region,
                status,
            )
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
    let name = form.get("name").unwrap_or_default();
    let size_text = form.get("size").unwrap_or_default();
    let region = form.get("region").unwrap_or_default();
    let volume_type = form.get("volume_type").unwrap_or_default();
    let result = match size_text.parse::<u32>() {
        Ok(size) => {
            state
                .services
                .volumes
                .create(
                    &session.caller,
                    CreateVolumeRequest {
                        name: name.clone(),
                        size,
                        region: region.clone(),
                        volume_type: volume_type.clone(),
                        bootable: false,
                        image_name: None,
                        labels: Default::default(),
                    },
                )
                .await
        }
        Err(_) => Err(barrack_core::Error::field(
            "size",
            "Size must be a whole number of GB",
        )),
    };
    match result {
        Ok(_) => Ok(super::see("/volumes")),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut page = volumes_page(&state, &session, 1, String::new(), String::new()).await?;
            page.errors = Errors::from_error_at(e, &[("A volume named", "name")])?;
            page.errors.regions_offered(&region, &page.regions);
            page.name = name;
            page.size = size_text;
            page.region = region;
            page.volume_type = volume_type;
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
    state.services.volumes.delete(&session.caller, &id).await?;
    Ok(super::see("/volumes"))
}
