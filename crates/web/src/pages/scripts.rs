//! Startup scripts: the list, an editor to add one, deletion.

use askama::Template;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::PageQuery;
use barrack_api::scripts::{Script, ScriptRequest};
use barrack_core::accounts::web_sessions::WebSession;

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{Errors, Nav, ok, render};

#[derive(Template)]
#[template(path = "scripts.html")]
struct ScriptsPage {
    nav: Nav,
    scripts: Vec<Script>,
    total: u64,
    name: String,
    script: String,
    errors: Errors,
}

async fn scripts_page(
    state: &crate::WebState,
    session: &WebSession,
) -> Result<ScriptsPage, WebError> {
    let list = state
        .services
        .scripts
        .list(
            &session.caller,
            PageQuery {
                page: Some(1),
                limit: Some(100),
            },
        )
        .await?;
    Ok(ScriptsPage {
        nav: Nav::new(session, "scripts"),
        scripts: list.scripts,
        total: list.pagination.total,
        name: String::new(),
        script: "#!/bin/bash\n".into(),
        errors: Errors::default(),
    })
}

pub async fn list(
    axum::extract::State(state): State,
    Signed(session): Signed,
) -> Result<Response, WebError> {
    ok(&scripts_page(&state, &session).await?)
}

pub async fn create(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let request = ScriptRequest {
        name: form.get("name").unwrap_or_default(),
        script: form.raw("script").unwrap_or_default(),
    };
    match state
        .services
        .scripts
        .create(&session.caller, request.clone())
        .await
    {
        Ok(_) => Ok(super::see("/scripts")),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut page = scripts_page(&state, &session).await?;
            page.errors = Errors::from_error(e)?;
            page.name = request.name;
            page.script = request.script;
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
    state.services.scripts.delete(&session.caller, &id).await?;
    Ok(super::see("/scripts"))
}
