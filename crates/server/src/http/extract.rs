//! Extractors whose every rejection is the JSON error envelope with the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use barrack_api::FieldErrors;
use barrack_api::body::{self, BodyError};
use barrack_core::Error;
use barrack_core::accounts::Caller;
use serde::de::DeserializeOwned;
use utoipa::PartialSchema;

use super::context;
use super::error::ApiError;
use crate::app::AppState;

/// A JSON body. No body reads as `{}`, so bodiless actions and optional fields need no ceremony.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + PartialSchema> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let undeclared = undeclared_query(&req);
        let bytes = body_bytes(req, state).await?;
        with_query_errors(undeclared, parse_body(&bytes).map(Body))
    }
}

/// Marks a request whose query an extractor of the operation has read (and checked): the body
/// extractors then leave the query to it.
#[derive(Clone, Copy)]
struct QueryTaken;

/// The query parameters of a request whose operation declares none (no [`Query`] taken before the body),
/// each as an unknown parameter: a `?dry_run=true` on a `DELETE` must not pass silently and act.
fn undeclared_query(req: &Request) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if req.extensions().get::<QueryTaken>().is_some() {
        return errors;
    }
    for (name, value) in form_urlencoded_parse(req.uri().query().unwrap_or("")) {
        if let Err(ApiError(e)) = refuse_nul(&name, &value) {
            for (field, messages) in e.field_errors().cloned().unwrap_or_default() {
                errors.insert(field, messages);
            }
            continue;
        }
        errors
            .entry(name.into_owned())
            .or_insert_with_key(|name| vec![unknown_parameter_message(name)]);
    }
    errors
}

fn unknown_parameter_message(name: &str) -> String {
    format!("Unknown query parameter '{name}'")
}

/// A body's reading with the undeclared query parameters ([`undeclared_query`]) named too: every
/// member and parameter at fault at once.
fn with_query_errors<T>(query: FieldErrors, read: Result<T, ApiError>) -> Result<T, ApiError> {
    if query.is_empty() {
        return read;
    }
    let (message, mut errors) = match read {
        Err(ApiError(Error::Validation { message, errors })) => (message, errors),
        Err(other) => return Err(other),
        Ok(_) => ("Invalid request data".to_string(), FieldErrors::new()),
    };
    for (field, messages) in query {
        errors.entry(field).or_default().extend(messages);
    }
    Err(ApiError(Error::Validation { message, errors }))
}

/// The request's body, or the error envelope when it cannot be read (too large, say).
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let limit = req.extensions().get::<super::error::BodyLimit>().copied();
    Bytes::from_request(req, state).await.map_err(|rejection| {
        let status = rejection.status();
        match limit {
            // Our wording with the limit, not the framework's.
            Some(limit) if status == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError(super::error::body_too_large(limit.0))
            }
            _ => ApiError(super::error::for_status(status, rejection.body_text())),
        }
    })
}

/// A body as [`Body`] reads it ([`body::read`]).
fn parse_body<T: DeserializeOwned + PartialSchema>(bytes: &[u8]) -> Result<T, ApiError> {
    body::read(bytes).map_err(body_error)
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> ApiError {
        body_error(e)
    }
}

/// A refused body as the API's validation error.
fn body_error(e: BodyError) -> ApiError {
    let message = e.summary().to_string();
    let mut errors = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (field, text) in e.fields() {
        errors.entry(field).or_default().push(text);
    }
    ApiError(Error::Validation {
        message,
        errors: errors.into_iter().collect(),
    })
}

/// The body of an operation that takes none ([`body::read_none`]): no body or `{}`; anything else is a
/// 400 naming `body` or each member sent, so the operation never runs on a request that meant something
/// else. Taken after the caller's extractors, so a caller without a key is still told 401 first.
pub struct NoBody;

impl<S: Send + Sync> FromRequest<S> for NoBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let undeclared = undeclared_query(&req);
        let bytes = body_bytes(req, state).await?;
        with_query_errors(
            undeclared,
            body::read_none(&bytes).map(|()| NoBody).map_err(body_error),
        )
    }
}

/// A JSON body whose numbers are amounts of money ([`body::read_amounts`]).
pub struct AmountBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + PartialSchema> FromRequest<S> for AmountBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let undeclared = undeclared_query(&req);
        let bytes = body_bytes(req, state).await?;
        with_query_errors(
            undeclared,
            body::read_amounts(&bytes)
                .map(AmountBody)
                .map_err(body_error),
        )
    }
}

/// A JSON body read straight from its bytes, without [`Body`]'s JSON tree in between; one that does not
/// deserialize so is read as [`Body`] reads it, so what is accepted and every error stay [`Body`]'s. Only
/// for a type with no untyped JSON value: there, `1.0` would stay a float where [`Body`] makes it `1`.
pub struct TypedBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + PartialSchema> FromRequest<S> for TypedBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let undeclared = undeclared_query(&req);
        let bytes = body_bytes(req, state).await?;
        if !undeclared.is_empty() {
            return with_query_errors(undeclared, parse_body(&bytes).map(TypedBody));
        }
        // A body that may hold U+0000 is read the checked way, which refuses it; serde's structs
        // refuse a member given twice themselves.
        if body::opens_object(&bytes) && !body::may_hold_nul(&bytes) {
            let mut de = serde_json::Deserializer::from_slice(&bytes);
            if let Ok(value) = T::deserialize(&mut de)
                && de.end().is_ok()
            {
                return Ok(TypedBody(value));
            }
        }
        parse_body(&bytes).map(TypedBody)
    }
}

/// Query parameters. Their structs refuse a parameter they do not know (400, named), so a typo does not
/// pass silently as no filter; the repeated `label` filters are read apart ([`LabelParams`]).
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        for (name, value) in form_urlencoded_parse(query) {
            refuse_nul(&name, &value)?;
        }
        parts.extensions.insert(QueryTaken);
        // serde stops at the first parameter at fault: it is set aside and the rest read again, so
        // every one is named at once.
        let mut set_aside: Vec<String> = Vec::new();
        let mut errors = FieldErrors::new();
        while set_aside.len() <= PARAMETERS_LOOKED_AT {
            let mut kept = form_urlencoded::Serializer::new(String::new());
            kept.extend_pairs(
                form_urlencoded_parse(query)
                    .filter(|(name, _)| name != "label" && !set_aside.iter().any(|n| n == name)),
            );
            let kept = kept.finish();
            let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(&kept));
            let e = match serde_path_to_error::deserialize(de) {
                Ok(value) if errors.is_empty() => return Ok(Query(value)),
                Ok(_) => break,
                Err(e) => e,
            };
            let path = e.path().to_string();
            let inner = e.inner().to_string();
            let (field, text) = if inner.starts_with("unknown field ") {
                let (field, _) = body::field_of(&path, &inner);
                let text = unknown_parameter_message(&field);
                (field, text)
            } else {
                let given = form_urlencoded_parse(query).find(|(name, _)| *name == path);
                let message = match given {
                    Some((_, value)) => query_value_message(&inner, &value),
                    None => inner,
                };
                body::field_of(&path, &message)
            };
            if errors.contains_key(&field) {
                break;
            }
            errors.insert(field.clone(), vec![text]);
            if !form_urlencoded_parse(&kept).any(|(name, _)| name == field) {
                break;
            }
            set_aside.push(field);
        }
        Err(ApiError(Error::Validation {
            message: "Invalid request data".into(),
            errors,
        }))
    }
}

/// At most this many parameters are set aside one by one to find every one at fault.
const PARAMETERS_LOOKED_AT: usize = 32;

/// A query parameter's value that did not parse, said as a body's member would be: the query's text
/// is parsed by Rust's own parsers, whose messages name no value ("invalid digit found in string").
fn query_value_message(message: &str, value: &str) -> String {
    let negative = value
        .strip_prefix('-')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    if message == "invalid digit found in string" && negative {
        return format!("Must not be negative, not \"{value}\"");
    }
    let wanted = match message {
        // Not a range: the parameter's own (a page is 1 or more, a limit 1 to 100) is checked on a
        // whole number, and said then.
        "invalid digit found in string" | "cannot parse integer from empty string" => {
            "a whole number"
        }
        "number too large to fit in target type" => "a smaller whole number",
        "number too small to fit in target type" => "a larger whole number",
        "invalid float literal" | "cannot parse float from empty string" => "a number",
        "provided string was not `true` or `false`" => "true or false",
        _ => return message.to_string(),
    };
    format!("Must be {wanted}, not \"{value}\"")
}

/// A query the operation does not read and does not check: the OpenAI-compatible paths, whose clients
/// may add parameters of their own (`api-version`), as they may add members to the body.
pub struct AnyQuery;

impl<S: Send + Sync> FromRequestParts<S> for AnyQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.insert(QueryTaken);
        Ok(AnyQuery)
    }
}

/// The query of a list that takes no parameters (what an account holds only a few of, listed whole):
/// any parameter is a 400 naming it, as on every other list.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Every `label` parameter of the query (`?label=team=ml&label=env`), in order: the label filters of a
/// list, which a struct of single parameters cannot hold.
pub struct LabelParams(pub Vec<String>);

impl<S: Send + Sync> FromRequestParts<S> for LabelParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        form_urlencoded_parse(query)
            .filter(|(name, _)| name == "label")
            .map(|(name, value)| {
                refuse_nul(&name, &value)?;
                Ok(value.into_owned())
            })
            .collect::<Result<_, _>>()
            .map(LabelParams)
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// A parameter (of the query or the path) holding U+0000 (`%00`), which no name or id holds and
/// PostgreSQL cannot compare with text, is refused on its name.
fn refuse_nul(name: &str, value: &str) -> Result<(), ApiError> {
    if name.contains('\0') || value.contains('\0') {
        let field = if name.contains('\0') { "query" } else { name };
        return Err(ApiError(Error::field(field, body::NUL_MESSAGE)));
    }
    Ok(())
}

/// The single `{id}` of a path.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError(Error::field("id", r.body_text())))
            .and_then(|p| refuse_nul("id", &p.0).map(|()| PathId(p.0)))
    }
}

/// The two ids of a nested path (`/instances/{id}/security-rules/{rule_id}/`).
pub struct PathIds(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError(Error::field("id", r.body_text())))
            .and_then(|p| {
                refuse_nul("id", &p.0.0)?;
                refuse_nul("id", &p.0.1)?;
                Ok(PathIds(p.0.0, p.0.1))
            })
    }
}

/// Turns a serde message into a field error ([`body::field_of`]).
#[cfg(test)]
fn field_error(path: &str, message: &str) -> Error {
    let (field, text) = body::field_of(path, message);
    Error::Validation {
        message: "Invalid request data".into(),
        errors: [(field, vec![text])].into(),
    }
}

/// The authenticated caller (API key or bearer token); 401 without one.
pub struct Auth(pub Caller);

/// The caller if credentials were sent (bad credentials are still a 401); for the public catalog.
pub struct MaybeAuth(pub Option<Caller>);

/// An operator; 403 for other callers.
pub struct Admin(pub Caller);

/// Sign-up is open on this installation; 403 otherwise, before the body is read (the caller's right to
/// a route comes before what it sent).
pub struct SignUpOpen;

/// A caller the rate limiter already authenticated, so handlers do not look it up twice.
#[derive(Clone)]
pub(crate) struct Resolved(pub Caller);

pub(crate) async fn resolve(parts: &Parts, state: &AppState) -> Result<Option<Caller>, ApiError> {
    if let Some(Resolved(caller)) = parts.extensions.get::<Resolved>() {
        return Ok(Some(caller.clone()));
    }
    let accounts = &state.services.accounts;
    let (api_key, authorization) = credential_headers(parts)?;
    let caller = if let Some(key) = api_key {
        let key = key
            .to_str()
            .map_err(|_| Error::Unauthenticated("Invalid or revoked API key".into()))?;
        accounts.authenticate_key(key.trim()).await?
    } else if let Some(value) = authorization {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                Error::Unauthenticated("Authorization must be 'Bearer <access token>'".into())
            })?;
        let token = token.trim();
        // OpenAI's SDKs send the API key as a bearer token.
        if token.starts_with("sk_") {
            accounts.authenticate_key(token).await?
        } else {
            accounts.authenticate_token(token).await?
        }
    } else {
        return Ok(None);
    };
    context::set_caller(caller.account_id(), caller.tier);
    Ok(Some(caller))
}

/// The request's `X-API-Key` and `Authorization` headers, each sent at most once (400 naming the header
/// otherwise), so that which credential a request acts with is never a guess. With both, the API key is
/// the credential (generated clients that know both schemes may send both).
fn credential_headers(
    parts: &Parts,
) -> Result<(Option<&HeaderValue>, Option<&HeaderValue>), Error> {
    Ok((
        single_header(&parts.headers, "X-API-Key")?,
        single_header(&parts.headers, "Authorization")?,
    ))
}

/// The one value of the header `name`, if sent; 400 naming it when it was sent more than once.
pub(crate) fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h HeaderValue>, Error> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (first, None) => Ok(first),
        _ => Err(Error::field(name, format!("Send the {name} header once"))),
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Boxed: the lookup's future is large, and a handler's future would otherwise hold it and be
        // copied whole each time it moves.
        Box::pin(resolve(parts, state))
            .await?
            .map(Auth)
            .ok_or_else(|| {
                ApiError(Error::Unauthenticated(
                    "Authentication required: send your API key in the X-API-Key header".into(),
                ))
            })
    }
}

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        resolve(parts, state).await.map(MaybeAuth)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Auth(caller) = Auth::from_request_parts(parts, state).await?;
        caller.require_admin()?;
        Ok(Admin(caller))
    }
}

impl FromRequestParts<AppState> for SignUpOpen {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state.services.accounts.require_open_signup()?;
        Ok(SignUpOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(e: Error) -> Vec<(String, Vec<String>)> {
        e.field_errors()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    #[test]
    fn serde_messages_name_the_field() {
        let e = field_error(".", "missing field `name` at line 1 column 2");
        assert_eq!(
            errors(e),
            vec![(
                "name".to_string(),
                vec!["This field is required".to_string()]
            )]
        );
        let e = field_error("volumes[0]", "missing field `size`");
        assert_eq!(errors(e)[0].0, "volumes[0].size");
        let e = field_error(
            "gpu_count",
            "invalid type: string \"x\", expected u32 at line 1 column 20",
        );
        assert_eq!(
            errors(e),
            vec![(
                "gpu_count".to_string(),
                vec!["Must be a whole number, not string \"x\"".to_string()]
            )]
        );
        let e = field_error(
            "surprise",
            "unknown field `surprise`, expected one of `a`, `b`",
        );
        assert_eq!(errors(e)[0].0, "surprise");
        let e = field_error(".", "invalid type: sequence, expected struct X");
        assert_eq!(
            errors(e),
            vec![(
                "body".to_string(),
                vec!["Must be an object, not a list".to_string()]
            )]
        );
        let e = field_error("size", "invalid value: integer `-1`, expected u32");
        assert_eq!(errors(e)[0].1[0], "Must not be negative, not the number -1");
        let e = field_error(
            "messages[0].content",
            "data did not match any variant of untagged enum MessageContent",
        );
        assert!(!errors(e)[0].1[0].contains("MessageContent"));
        let e = field_error(
            "tier",
            "unknown variant `gold`, expected `legacy` or `advanced`",
        );
        assert_eq!(
            errors(e)[0].1[0],
            "Must be legacy or advanced, not \"gold\""
        );
    }
}
