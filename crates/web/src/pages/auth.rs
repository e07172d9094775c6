//! Sign-up, sign-in and sign-out.

use std::net::{IpAddr, Ipv4Addr};

use askama::Template;
use axum::Extension;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use barrack_api::Tier;
use barrack_api::account::RegisterRequest;
use barrack_core::accounts::login_throttle::ClientIp;

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::{FORM_COOKIE, SESSION_COOKIE, Signed, cookie, set_cookie};
use crate::view::{Errors, Nav, render};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Nav,
    form_token: String,
    email: String,
    tier: String,
    errors: Errors,
    signed_up: bool,
    /// The page to go back to after signing in (a path of this site), or empty.
    next: String,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    nav: Nav,
    form_token: String,
    email: String,
    name: String,
    errors: Errors,
}

/// The pre-session form token: the one in the browser's cookie when this installation minted it, or a new
/// one set with the page.
fn form_token(state: &crate::WebState, headers: &HeaderMap) -> (String, Option<String>) {
    match cookie(headers, FORM_COOKIE) {
        Some(t) if state.sessions.form_token_is_ours(t) => (t.to_string(), None),
        _ => {
            let token = state.sessions.new_form_token();
            let set = set_cookie(headers, FORM_COOKIE, &token, 3600);
            (token, Some(set))
        }
    }
}

fn with_cookie(mut response: Response, set: Option<String>) -> Response {
    if let Some(value) = set.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The sign-in and sign-up forms carry the token of the browser's form cookie (there is no session yet),
/// one this installation minted.
fn check_form_token(
    state: &crate::WebState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(), WebError> {
    match (cookie(headers, FORM_COOKIE), form.get("csrf")) {
        (Some(expected), Some(sent)) if state.sessions.form_token_matches(expected, &sent) => {
            Ok(())
        }
        _ => Err(WebError::Csrf),
    }
}

/// The `next` field or parameter when it is a path of this site; empty otherwise.
fn next_of(form: &Form) -> String {
    form.get("next")
        .and_then(|next| crate::error::safe_next(&next).map(str::to_string))
        .unwrap_or_default()
}

pub async fn login_form(
    axum::extract::State(state): State,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, WebError> {
    let (token, set) = form_token(&state, &headers);
    // After a sign-up (redirected here): its email, and the word that it worked.
    let q = Form::parse(&raw.unwrap_or_default().into_bytes().into());
    let page = LoginPage {
        nav: Nav::anonymous(),
        form_token: token,
        email: q.get("email").unwrap_or_default(),
        tier: "legacy".into(),
        errors: Errors::default(),
        signed_up: q.get("signed_up").is_some(),
        next: next_of(&q),
    };
    Ok(with_cookie(render(StatusCode::OK, &page)?, set))
}

pub async fn login(
    axum::extract::State(state): State,
    address: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let address = address.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.0.0);
    check_form_token(&state, &headers, &form)?;
    let email = form.get("email").unwrap_or_default();
    let password = form.raw("password").unwrap_or_default();
    let tier_text = form.get("tier").unwrap_or_else(|| "legacy".into());
    let mut errors = Errors::default();
    let mut status = StatusCode::UNAUTHORIZED;
    let tier = Tier::parse(&tier_text);
    if tier.is_none() {
        // A form that cannot be sent as it is, not credentials refused.
        status = StatusCode::BAD_REQUEST;
        errors.fields.insert(
            "tier".into(),
            vec!["Choose the legacy or the advanced tier".into()],
        );
    }
    if let Some(tier) = tier {
        match state
            .sessions
            .sign_in(&email, &password, tier, address)
            .await
        {
            Ok(opened) => {
                let ttl = state.services.config().tokens.refresh_ttl_seconds;
                let next = next_of(&form);
                let mut response = super::see(if next.is_empty() { "/" } else { &next });
                let value = set_cookie(&headers, SESSION_COOKIE, &opened.token, ttl);
                response.headers_mut().append(
                    header::SET_COOKIE,
                    HeaderValue::from_str(&value).map_err(|e| WebError::Render(e.to_string()))?,
                );
                return Ok(response);
            }
            Err(barrack_core::Error::Unauthenticated(message)) => errors.general = Some(message),
            Err(barrack_core::Error::RateLimited {
                retry_after_seconds,
            }) => {
                errors.general = Some(format!(
                    "Too many failed sign-ins; try again in {retry_after_seconds} seconds"
                ));
                status = StatusCode::TOO_MANY_REQUESTS;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let page = LoginPage {
        nav: Nav::anonymous(),
        form_token: form.get("csrf").unwrap_or_default(),
        email,
        tier: tier_text,
        errors,
        signed_up: false,
        next: next_of(&form),
    };
    render(status, &page)
}

pub async fn signup_form(
    axum::extract::State(state): State,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (token, set) = form_token(&state, &headers);
    let page = SignupPage {
        nav: Nav::anonymous(),
        form_token: token,
        email: String::new(),
        name: String::new(),
        errors: Errors::default(),
    };
    Ok(with_cookie(render(StatusCode::OK, &page)?, set))
}

pub async fn signup(
    axum::extract::State(state): State,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    check_form_token(&state, &headers, &form)?;
    let request = RegisterRequest {
        email: form.get("email").unwrap_or_default(),
        password: form.raw("password").unwrap_or_default(),
        name: form.get("name").unwrap_or_default(),
    };
    let email = request.email.clone();
    match state.services.accounts.register(request.clone()).await {
        // Redirected, so that a refresh does not post the sign-up again.
        Ok(_) => Ok(super::see(&format!(
            "/login?{}",
            crate::view::query(&[("signed_up", "1"), ("email", &email)])
        ))),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let page = SignupPage {
                nav: Nav::anonymous(),
                form_token: form.get("csrf").unwrap_or_default(),
                email,
                name: request.name,
                errors: Errors::from_error(e)?,
            };
            render(status, &page)
        }
    }
}

pub async fn logout(
    axum::extract::State(state): State,
    headers: HeaderMap,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        state.sessions.sign_out(token).await?;
    }
    let mut response = super::see("/login");
    let value = set_cookie(&headers, SESSION_COOKIE, "", 0);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response.into_response())
}
