//! Static files compiled into the binary: no build step and nothing fetched at run time.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// htmx 2.0.11, from its npm package (`htmx.org`, `dist/htmx.min.js`, Zero-Clause BSD).
const HTMX: &str = include_str!("../assets/htmx.min.js");
const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");
const AI_JS: &str = include_str!("../assets/ai.js");

pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        "ai.js" => (AI_JS, "text/javascript; charset=utf-8"),
        _ => return crate::not_found_page(&format!("/assets/{file}")),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
