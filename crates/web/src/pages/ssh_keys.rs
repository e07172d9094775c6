//! SSH keys: import a public key, or generate a pair whose private key is shown once.

use askama::Template;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::ssh_keys::{CreateSshKeyRequest, SshKey};

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{Errors, Nav, ok, render, when};

#[derive(Template)]
#[template(path = "ssh_keys.html")]
struct KeysPage {
    nav: Nav,
    keys: Vec<(SshKey, String)>,
    name: String,
    public_key: String,
    errors: Errors,
    /// A generated key's name and private key, shown in this answer only.
    generated: Option<(String, String)>,
}

async fn keys_page(
    state: &crate::WebState,
    session: &barrack_core::accounts::web_sessions::WebSession,
) -> Result<KeysPage, WebError> {
    let keys = state
        .services
        .ssh_keys
        .list(&session.caller)
        .await?
        .into_iter()
        .map(|k| {
            let created = when(&k.created_at);
            (k, created)
        })
        .collect();
    Ok(KeysPage {
        nav: Nav::new(session, "ssh-keys"),
        keys,
        name: String::new(),
        public_key: String::new(),
        errors: Errors::default(),
        generated: None,
    })
}

pub async fn list(
    axum::extract::State(state): State,
    Signed(session): Signed,
) -> Result<Response, WebError> {
    ok(&keys_page(&state, &session).await?)
}

pub async fn create(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let name = form.get("name").unwrap_or_default();
    let public_key = if form.get("mode").as_deref() == Some("generate") {
        None
    } else {
        Some(form.get("public_key").unwrap_or_default())
    };
    let request = CreateSshKeyRequest {
        name: name.clone(),
        public_key: public_key.clone(),
    };
    match state
        .services
        .ssh_keys
        .create(&session.caller, request)
        .await
    {
        // An imported key is in the list: redirected there, so a refresh does not post it again. A
        // generated one's private key is shown in this answer only, so it is the answer.
        Ok(created) => match created.private_key {
            None => Ok(super::see("/ssh-keys")),
            Some(private_key) => {
                let mut page = keys_page(&state, &session).await?;
                page.generated = Some((created.key.name.clone(), private_key));
                render(StatusCode::CREATED, &page)
            }
        },
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut page = keys_page(&state, &session).await?;
            page.errors = Errors::from_error_at(e, &[("An SSH key named", "name")])?;
            page.name = name;
            page.public_key = public_key.unwrap_or_default();
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
    state.services.ssh_keys.delete(&session.caller, &id).await?;
    Ok(super::see("/ssh-keys"))
}
