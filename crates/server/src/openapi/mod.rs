//! The OpenAPI document, generated from the same code that registers the routes, then made precise: the
//! names client generators know from the published docs (`names`), every error an operation can answer
//! (`responses`), and what the validators accept for each request field, catalog values included
//! (`requests`), and links from each created resource to its operations (`links`). The served document (`/api/openapi.json`) is made from the running configuration; the
//! committed `openapi.json` from the default one.

mod links;
mod names;
mod requests;
mod responses;

use barrack_core::config::Config;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::api_router;

pub use names::{RENAMED_SCHEMAS, SEED_NAMED_OPERATIONS};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Barrack API",
        description = "Deploy and manage GPU virtual machines, storage, networking and billing on Barrack.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(barrack_api::ErrorResponse))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as the route annotations describe it, before it is made precise.
fn annotated() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.merge(api_router().into_openapi());
    doc
}

/// The whole document for a server running `config`.
pub fn document_for(config: &Config) -> Value {
    let mut doc = serde_json::to_value(annotated()).expect("the OpenAPI document serializes");
    names::apply(&mut doc);
    responses::apply(&mut doc);
    requests::apply(&mut doc, config);
    links::apply(&mut doc);
    doc
}

/// The document of the default configuration: what `openapi.json` holds.
pub fn document() -> Value {
    document_for(&Config::default())
}

/// A document as pretty JSON with a final newline.
pub fn to_json(doc: &Value) -> String {
    let mut text = serde_json::to_string_pretty(doc).expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

/// The default configuration's document as pretty JSON: the form committed as `openapi.json`.
pub fn document_json() -> String {
    to_json(&document())
}

/// The served document of a server running `config`.
pub fn document_json_for(config: &Config) -> String {
    to_json(&document_for(config))
}

/// The object at `pointer`, which must exist.
fn at<'a>(doc: &'a mut Value, pointer: &str) -> &'a mut serde_json::Map<String, Value> {
    doc.pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("the OpenAPI document has no object at {pointer}"))
}

/// Sets every key of `patch` (an object) on the object at `pointer`.
fn set(doc: &mut Value, pointer: &str, patch: Value) {
    let target = at(doc, pointer);
    for (k, v) in patch.as_object().expect("a patch is an object") {
        target.insert(k.clone(), v.clone());
    }
}

/// A JSON pointer segment: `/` and `~` escaped.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Every operation: (path, method, operation).
fn operations(doc: &mut Value) -> impl Iterator<Item = (String, String, &mut Value)> {
    doc["paths"]
        .as_object_mut()
        .expect("paths")
        .iter_mut()
        .flat_map(|(path, item)| {
            let path = path.clone();
            item.as_object_mut()
                .expect("a path item")
                .iter_mut()
                .filter(|(method, _)| {
                    matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch")
                })
                .map(move |(method, op)| (path.clone(), method.clone(), op))
        })
}
