//! One firewall: its rules (add, remove) and the instances it is attached to (attach, detach).

use askama::Template;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use barrack_api::PageQuery;
use barrack_api::firewalls::{Firewall, InstanceIdsRequest};
use barrack_core::accounts::web_sessions::WebSession;

use super::instance_extras::{RuleValues, RuleView, rule_request, rule_view};
use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{Errors, Nav, badge, render, when};

pub struct AttachmentView {
    pub instance_id: String,
    pub name: String,
    pub instance_status: String,
    pub status: String,
    pub badge: &'static str,
    pub reason: String,
    pub since: String,
}

#[derive(Template)]
#[template(path = "firewall.html")]
struct FirewallPage {
    nav: Nav,
    f: Firewall,
    badge: &'static str,
    rules: Vec<RuleView>,
    attachments: Vec<AttachmentView>,
    /// ACTIVE instances of the region not attached yet (the first 100; any id is accepted).
    available: Vec<(String, String)>,
    rule: RuleValues,
    rule_action: String,
    csrf: String,
    instance_id: String,
    errors: Errors,
}

async fn firewall_page(
    state: &crate::WebState,
    session: &WebSession,
    id: &str,
    errors: Errors,
    rule: RuleValues,
    instance_id: String,
) -> Result<FirewallPage, WebError> {
    let caller = &session.caller;
    let f = state.services.firewalls.get(caller, id).await?;
    let available = state
        .services
        .firewalls
        .available_instances(
            caller,
            id,
            PageQuery {
                page: Some(1),
                limit: Some(100),
            },
        )
        .await?
        .instances
        .into_iter()
        .filter(|i| !i.attached)
        .map(|i| (i.instance_id, i.name))
        .collect();
    Ok(FirewallPage {
        nav: Nav::new(session, "firewalls"),
        badge: badge(&f.status),
        rules: f.rules.iter().map(rule_view).collect(),
        attachments: f
            .instances
            .iter()
            .map(|a| AttachmentView {
                instance_id: a.instance_id.clone(),
                name: a.instance_name.clone(),
                instance_status: a.instance_status.clone(),
                status: a.status.clone(),
                badge: badge(&a.status),
                reason: a.status_reason.clone().unwrap_or_default(),
                since: when(&a.attached_at),
            })
            .collect(),
        available,
        rule,
        rule_action: format!("/firewalls/{id}/rules"),
        csrf: session.csrf_token.clone(),
        instance_id,
        f,
        errors,
    })
}

pub async fn page(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let page = firewall_page(
        &state,
        &session,
        &id,
        Errors::default(),
        RuleValues::default(),
        String::new(),
    )
    .await?;
    render(StatusCode::OK, &page)
}

async fn outcome<T>(
    state: &crate::WebState,
    session: &WebSession,
    id: &str,
    result: Result<T, barrack_core::Error>,
    rule: RuleValues,
    instance_id: String,
) -> Result<Response, WebError> {
    match result {
        Ok(_) => Ok(super::see(&format!("/firewalls/{id}"))),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let errors = Errors::from_error(e)?;
            let page = firewall_page(state, session, id, errors, rule, instance_id).await?;
            render(status, &page)
        }
    }
}

pub async fn add_rule(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let result = match rule_request(&form) {
        Ok(request) => {
            state
                .services
                .firewalls
                .add_rule(&session.caller, &id, request)
                .await
        }
        Err(e) => Err(e),
    };
    outcome(
        &state,
        &session,
        &id,
        result,
        RuleValues::of(&form),
        String::new(),
    )
    .await
}

pub async fn remove_rule(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path((id, rule_id)): Path<(String, String)>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let result = state
        .services
        .firewalls
        .remove_rule(&session.caller, &id, &rule_id)
        .await;
    outcome(
        &state,
        &session,
        &id,
        result,
        RuleValues::default(),
        String::new(),
    )
    .await
}

pub async fn attach(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    // The firewall first: another account's firewall is a 404 page.
    state.services.firewalls.get(&session.caller, &id).await?;
    let instance = form.get("instance_id").unwrap_or_default();
    let result = state
        .services
        .firewalls
        .attach(
            &session.caller,
            &id,
            InstanceIdsRequest {
                instance_ids: vec![instance.clone()],
            },
        )
        .await
        .map_err(|e| match e {
            // An instance id that is not the caller's is a message at the field.
            barrack_core::Error::NotFound(message) => {
                barrack_core::Error::field("instance_id", message)
            }
            other => other,
        });
    outcome(
        &state,
        &session,
        &id,
        result,
        RuleValues::default(),
        instance,
    )
    .await
}

pub async fn detach(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Path((id, instance)): Path<(String, String)>,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let result = state
        .services
        .firewalls
        .detach(
            &session.caller,
            &id,
            InstanceIdsRequest {
                instance_ids: vec![instance],
            },
        )
        .await;
    outcome(
        &state,
        &session,
        &id,
        result,
        RuleValues::default(),
        String::new(),
    )
    .await
}
