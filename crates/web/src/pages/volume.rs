//! One volume: its facts, and growing, cloning, attaching and detaching it.

use askama::Template;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::instances::InstanceQuery;
use barrack_api::volumes::{CloneVolumeRequest, ResizeVolumeRequest, Volume, VolumeIdsRequest};
use barrack_core::accounts::web_sessions::WebSession;

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{Errors, Nav, badge, money, render, when};

#[derive(Template)]
#[template(path = "volume.html")]
struct VolumePage {
    nav: Nav,
    v: Volume,
    badge: &'static str,
    rate: String,
    created: String,
    /// ACTIVE instances of the volume's region, offered for attaching (the first 100; any id is accepted).
    instances: Vec<(String, String)>,
    size: String,
    clone_name: String,
    instance_id: String,
    errors: Errors,
}

#[derive(Default)]
struct Typed {
    size: String,
    clone_name: String,
    instance_id: String,
}

async fn volume_page(
    state: &crate::WebState,
    session: &WebSession,
    id: &str,
    errors: Errors,
    typed: Typed,
) -> Result<VolumePage, WebError> {
    let caller = &session.caller;
    let v = state.services.volumes.get(caller, id).await?;
    let instances = if v.attachment.is_none() {
        state
            .services
            .instances
            .list(
                caller,
                InstanceQuery {
                    page: Some(1),
                    limit: Some(100),
                    status: Some("ACTIVE".into()),
                    region: Some(v.region.clone()),
                    ..InstanceQuery::default()
                },
                &[],
            )
            .await?
            .instances
            .into_iter()
            .map(|i| (i.instance_id, i.name))
            .collect()
    } else {
        Vec::new()
    };
    Ok(VolumePage {
        nav: Nav::new(session, "volumes"),
        badge: badge(&v.status),
        rate: format!("{}/h", money(v.hourly_rate.0, v.currency)),
        created: when(&v.created_at),
        instances,
        size: if typed.size.is_empty() {
            (v.size_gb + 10).to_string()
        } else {
            typed.size
        },
        clone_name: if typed.clone_name.is_empty() {
            clone_name(&v.name)
        } else {
            typed.clone_name
        },
        instance_id: typed.instance_id,
        v,
        errors,
    })
}

/// A suggested name for a clone, within the 50-character label rule.
fn clone_name(name: &str) -> String {
    let base: String = name.chars().take(44).collect();
    format!("{base}-clone")
}

pub async fn page(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let page = volume_page(&state, &session, &id, Errors::default(), Typed::default()).await?;
    render(StatusCode::OK, &page)
}

/// Back to the volume (or to the clone), or the page again with the API's messages at the fields.
async fn outcome(
    state: &crate::WebState,
    session: &WebSession,
    id: &str,
    result: Result<String, barrack_core::Error>,
    typed: Typed,
) -> Result<Response, WebError> {
    match result {
        Ok(to) => Ok(super::see(&to)),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            // A copy's name already taken is the clone form's.
            let errors = Errors::from_error_at(e, &[("A volume named", "name")])?;
            render(
                status,
                &volume_page(state, session, id, errors, typed).await?,
            )
        }
    }
}

pub async fn resize(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let size = form.get("size").unwrap_or_default();
    let result = match size.parse::<u32>() {
        Ok(size) => state
            .services
            .volumes
            .resize(&session.caller, &id, ResizeVolumeRequest { size })
            .await
            .map(|_| format!("/volumes/{id}")),
        Err(_) => Err(barrack_core::Error::field(
            "size",
            "Size must be a whole number of GB",
        )),
    };
    let typed = Typed {
        size,
        ..Typed::default()
    };
    outcome(&state, &session, &id, result, typed).await
}

pub async fn clone(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let name = form.get("name").unwrap_or_default();
    let result = state
        .services
        .volumes
        .clone_volume(
            &session.caller,
            &id,
            CloneVolumeRequest { name: name.clone() },
        )
        .await
        .map(|v| format!("/volumes/{}", v.id));
    let typed = Typed {
        clone_name: name,
        ..Typed::default()
    };
    outcome(&state, &session, &id, result, typed).await
}

pub async fn attach(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    // The volume first: another account's volume is a 404 page.
    state.services.volumes.get(&session.caller, &id).await?;
    let instance = form.get("instance_id").unwrap_or_default();
    let result = if instance.is_empty() {
        Err(barrack_core::Error::field(
            "instance_id",
            "Choose an instance",
        ))
    } else {
        state
            .services
            .volumes
            .attach(
                &session.caller,
                &instance,
                VolumeIdsRequest {
                    volume_ids: vec![id.clone()],
                },
            )
            .await
            .map(|_| format!("/volumes/{id}"))
    };
    let typed = Typed {
        instance_id: instance,
        ..Typed::default()
    };
    match result {
        // An instance id that is not the caller's is a message at the field, not a 404 of the volume page.
        Err(barrack_core::Error::NotFound(message)) => {
            let errors = Errors::from_error(barrack_core::Error::field("instance_id", message))?;
            let page = volume_page(&state, &session, &id, errors, typed).await?;
            render(StatusCode::NOT_FOUND, &page)
        }
        other => outcome(&state, &session, &id, other, typed).await,
    }
}

pub async fn detach(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let volume = state.services.volumes.get(&session.caller, &id).await?;
    let result = match volume.attachment {
        Some(a) => state
            .services
            .volumes
            .detach(
                &session.caller,
                &a.instance_id,
                VolumeIdsRequest {
                    volume_ids: vec![id.clone()],
                },
            )
            .await
            .map(|_| format!("/volumes/{id}")),
        None => Err(barrack_core::Error::conflict(
            "INVALID_STATE",
            "The volume is not attached",
        )),
    };
    outcome(&state, &session, &id, result, Typed::default()).await
}
