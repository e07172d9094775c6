//! The session cookie, the signed-in extractor, and the CSRF token of forms shown before signing in.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use barrack_core::accounts::web_sessions::WebSession;

use crate::WebState;
use crate::error::WebError;

/// The cookie that holds a session's token.
pub const SESSION_COOKIE: &str = "barrack_session";
/// The cookie that pairs with the hidden token of the sign-in and sign-up forms (double submit).
pub const FORM_COOKIE: &str = "barrack_form";

/// The value of a cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure when the request came over HTTPS
/// (directly or through a proxy that says so). `max_age` 0 removes the cookie.
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: u64) -> String {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A signed-in request; without a live session the page answers with the sign-in page.
pub struct Signed(pub WebSession);

impl FromRequestParts<Arc<WebState>> for Signed {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<WebState>,
    ) -> Result<Self, Self::Rejection> {
        // A page opened without a session is where the browser goes back to after signing in; forms and
        // the parts htmx refreshes are not pages to return to.
        let sign_in = || {
            let page = parts.method == axum::http::Method::GET
                && !parts.headers.contains_key("hx-request")
                && parts.uri.path() != "/";
            match parts.uri.path_and_query().map(|p| p.as_str()) {
                Some(next) if page && crate::error::safe_next(next).is_some() => {
                    WebError::SignInThen(next.to_string())
                }
                _ => WebError::SignIn,
            }
        };
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(sign_in)?;
        match state.sessions.authenticate(token).await {
            Ok(session) => Ok(Signed(session)),
            Err(barrack_core::Error::Unauthenticated(_)) => Err(sign_in()),
            Err(e) => Err(WebError::Domain(e)),
        }
    }
}
