//! Dashboard errors as pages: a missing session sends to the sign-in page, a missing or foreign resource
//! is a 404 page, a refused form token a 403 page; nothing is ever a JSON body or a stack trace.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use axum::http::HeaderMap;
use barrack_core::accounts::web_sessions::WebSessionService;

use crate::session::{SESSION_COOKIE, cookie};
use crate::view::Nav;

#[derive(Debug)]
pub enum WebError {
    /// No live session: sign in.
    SignIn,
    /// No live session on a page: sign in, then come back to it (a path of this site, with its query).
    SignInThen(String),
    /// The form's token is missing, stale or another session's.
    Csrf,
    TooLarge,
    Domain(barrack_core::Error),
    Render(String),
}

impl From<barrack_core::Error> for WebError {
    fn from(e: barrack_core::Error) -> Self {
        match e {
            barrack_core::Error::Unauthenticated(_) => WebError::SignIn,
            other => WebError::Domain(other),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: Nav,
    title: &'a str,
    message: &'a str,
}

/// What an error page says, kept with its response: an error knows no session, so the page is drawn
/// for no one and drawn again with the navigation of a signed-in browser ([`with_navigation`]).
#[derive(Clone)]
struct ErrorContent {
    title: String,
    message: String,
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let mut response = drawn(status, Nav::anonymous(), title, message);
    response.extensions_mut().insert(ErrorContent {
        title: title.to_string(),
        message: message.to_string(),
    });
    response
}

fn drawn(status: StatusCode, nav: Nav, title: &str, message: &str) -> Response {
    let body = ErrorPage {
        nav,
        title,
        message,
    }
    .render()
    .unwrap_or_else(|_| message.to_string());
    let mut response = (status, Html(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error page shown to a signed-in browser keeps the main menu and "Sign out"; other responses, and
/// browsers without a live session, are left as they are.
pub async fn with_navigation(
    sessions: &WebSessionService,
    session_token: Option<&str>,
    response: Response,
) -> Response {
    let (Some(content), Some(token)) = (response.extensions().get::<ErrorContent>(), session_token)
    else {
        return response;
    };
    match sessions.authenticate(token).await {
        Ok(session) => drawn(
            response.status(),
            Nav::new(&session, ""),
            &content.title,
            &content.message,
        ),
        Err(_) => response,
    }
}

/// The session token of a request's cookie, for [`with_navigation`].
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE).map(str::to_string)
}

/// Where to go after signing in, when the sign-in form says: only a path of this site (`/instances/…`,
/// with its query), never another site. Refused: absolute URLs, `//host` and `/\\host` (which browsers
/// read as another host), backslashes anywhere, and control characters or spaces (browsers drop tabs and
/// newlines, so `/\t/host` would become `//host`).
pub fn safe_next(next: &str) -> Option<&str> {
    let safe = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace())
        && next.len() <= 2048;
    safe.then_some(next)
}

/// The page for a known path asked with a method it does not take (`GET /logout`).
pub fn method_not_allowed_page() -> Response {
    page(
        StatusCode::METHOD_NOT_ALLOWED,
        "Not allowed",
        "This address does not take that kind of request. Use the links and forms of the pages.",
    )
}

/// The page for an address holding U+0000 (`%00`), which no id or filter holds.
pub fn nul_in_address_page() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Bad address",
        "Addresses and filters must not contain the character U+0000.",
    )
}

/// The page for a path nothing serves.
pub fn not_found_page(_path: &str) -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing here, or it belongs to another account.",
    )
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::SignInThen(next) => {
                let to = format!(
                    "/login?{}",
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("next", &next)
                        .finish()
                );
                Redirect::to(&to).into_response()
            }
            WebError::SignIn => {
                let mut response = Redirect::to("/login").into_response();
                // htmx follows redirects inside the fragment it refreshes; this sends the whole page.
                response
                    .headers_mut()
                    .insert("hx-redirect", HeaderValue::from_static("/login"));
                response
            }
            WebError::Csrf => page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form is out of date or came from another site. Reload the page and try again.",
            ),
            WebError::TooLarge => page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "The form sent more than the dashboard accepts.",
            ),
            WebError::Render(detail) => {
                tracing::error!(%detail, "page failed to render");
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The page could not be shown. Try again in a moment.",
                )
            }
            WebError::Domain(e) => {
                let status =
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                match &e {
                    barrack_core::Error::NotFound(_) => not_found_page(""),
                    barrack_core::Error::Internal(detail)
                    | barrack_core::Error::Unavailable(detail) => {
                        tracing::error!(%detail, "dashboard request failed");
                        page(
                            status,
                            "Something went wrong",
                            "The request could not be completed. Try again in a moment.",
                        )
                    }
                    _ => page(status, "Not possible", &e.public_message()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_paths_of_this_site_are_returned_to() {
        for good in [
            "/",
            "/instances/BRK-XXXX",
            "/volumes?region=FINLAND-1&page=2",
        ] {
            assert_eq!(safe_next(good), Some(good));
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "/instances\\..\\x",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /x",
            "evil.example",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }
}
