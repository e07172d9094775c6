//! Extractors whose every rejection is the JSON error envelope with the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use barrack_core::Error;
use barrack_core::accounts::Caller;
use serde::de::DeserializeOwned;

use super::context;
use super::error::ApiError;
use crate::app::AppState;

/// A JSON body. No body reads as `{}`, so bodiless actions and optional fields need no ceremony.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        parse_body(&bytes).map(Body)
    }
}

/// The request's body, or the error envelope when it cannot be read (too large, say).
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        let status = rejection.status();
        ApiError(super::error::for_status(status, rejection.body_text()))
    })
}

/// Whether a body starts as a JSON object does.
fn opens_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// A body as [`Body`] reads it.
fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // No body at all is `{}`; white space alone is not JSON.
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    // Every body of this API is an object; serde would also take an array as a struct's fields in order.
    if !opens_object(bytes) {
        return Err(ApiError(Error::Validation {
            message: "Request body must be a JSON object".into(),
            errors: [(
                "body".to_string(),
                vec!["Expected a JSON object".to_string()],
            )]
            .into(),
        }));
    }
    let mut json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError(Error::Validation {
            message: "Request body is not valid JSON".into(),
            errors: [("body".to_string(), vec![strip_position(&e.to_string())])].into(),
        })
    })?;
    integral_floats_as_integers(&mut json);
    serde_path_to_error::deserialize(json)
        .map_err(|e| ApiError(field_error(&e.path().to_string(), &e.inner().to_string())))
}

/// A JSON body whose numbers are amounts of money: as [`Body`], but a number with more significant digits
/// than a float holds is refused on its field ([`refuse_inexact_numbers`]) instead of being read as the
/// nearest float. Other bodies keep floats as JSON clients compute them (an AI call's `temperature` of
/// `0.30000000000000004`, say).
pub struct AmountBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AmountBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if opens_object(&bytes) {
            refuse_inexact_numbers(&bytes)?;
        }
        parse_body(&bytes).map(AmountBody)
    }
}

/// A JSON body read straight from its bytes, without [`Body`]'s JSON tree in between; one that does not
/// deserialize so is read as [`Body`] reads it, so what is accepted and every error stay [`Body`]'s. Only
/// for a type with no untyped JSON value: there, `1.0` would stay a float where [`Body`] makes it `1`.
pub struct TypedBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for TypedBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if opens_object(&bytes) {
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

/// The significant digits a number written with a fraction or an exponent keeps: such a number is read as
/// a binary float, exact to 15 digits.
const EXACT_DIGITS: usize = 15;

/// Refuses a body with a number written with a fraction or an exponent and more significant digits than
/// a float holds: `5.0000000000000000001` would be read as `5`, silently (an amount, say). The error names
/// the member the number is the value of; such a number can be sent as a string where a field takes one.
fn refuse_inexact_numbers(bytes: &[u8]) -> Result<(), ApiError> {
    let mut member = (0, 0);
    let mut last_string = (0, 0);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                i = start;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                last_string = (start, i.min(bytes.len()));
                i += 1;
            }
            b':' => {
                member = last_string;
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                if significant_digits(&bytes[start..i]) > EXACT_DIGITS {
                    let name = String::from_utf8_lossy(&bytes[member.0..member.1]);
                    let field = if name.is_empty() {
                        "body".into()
                    } else {
                        name.into_owned()
                    };
                    return Err(ApiError(Error::field(
                        &field,
                        format!(
                            "A number with a fraction or an exponent is read exactly to \
                             {EXACT_DIGITS} significant digits; this one has more"
                        ),
                    )));
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// The significant digits of a number written with a fraction or an exponent; 0 for an integer, which
/// serde reads exactly or refuses.
fn significant_digits(number: &[u8]) -> usize {
    if !number.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return 0;
    }
    let mantissa = number
        .split(|b| matches!(b, b'e' | b'E'))
        .next()
        .unwrap_or_default();
    let digits: Vec<u8> = mantissa
        .iter()
        .copied()
        .filter(u8::is_ascii_digit)
        .collect();
    let first = digits.iter().position(|&d| d != b'0');
    let last = digits.iter().rposition(|&d| d != b'0');
    match (first, last) {
        (Some(first), Some(last)) => last - first + 1,
        _ => 0,
    }
}

/// JSON has one number type: `88.0` is the integer 88 to JSON Schema and to clients, so a whole number
/// written with a fraction reads as the integer for integer fields.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                *n = serde_json::Number::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// Query parameters. Their structs refuse a parameter they do not know (400, named), so a typo does not
/// pass silently as no filter; the repeated `label` filters are read apart ([`LabelParams`]).
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let mut others = form_urlencoded::Serializer::new(String::new());
        others.extend_pairs(form_urlencoded_parse(query).filter(|(name, _)| name != "label"));
        let others = others.finish();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(&others));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| ApiError(field_error(&e.path().to_string(), &e.inner().to_string())))
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
        Ok(LabelParams(
            form_urlencoded_parse(query)
                .filter(|(name, _)| name == "label")
                .map(|(_, value)| value.into_owned())
                .collect(),
        ))
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// The single `{id}` of a path.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| PathId(p.0))
            .map_err(|r| ApiError(Error::field("id", r.body_text())))
    }
}

/// The two ids of a nested path (`/instances/{id}/security-rules/{rule_id}/`).
pub struct PathIds(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map(|p| PathIds(p.0.0, p.0.1))
            .map_err(|r| ApiError(Error::field("id", r.body_text())))
    }
}

/// Turns a serde message into a field error: `missing field `x`` names `x`, others name the path.
fn field_error(path: &str, message: &str) -> Error {
    let message = strip_position(message);
    let prefix = if path == "." {
        String::new()
    } else {
        format!("{path}.")
    };
    let quoted = |rest: &str| rest.split('`').nth(1).map(str::to_string);
    let (field, text) = if let Some(name) = message.strip_prefix("missing field ").and_then(quoted)
    {
        (
            format!("{prefix}{name}"),
            "This field is required".to_string(),
        )
    } else if let Some(name) = message.strip_prefix("unknown field ").and_then(quoted) {
        // The path already ends at the unknown key.
        let field = if path == "." {
            name.clone()
        } else {
            path.to_string()
        };
        (field, format!("Unknown field '{name}'"))
    } else if path == "." {
        ("body".to_string(), message)
    } else {
        (path.to_string(), message)
    };
    Error::Validation {
        message: "Invalid request data".into(),
        errors: [(field, vec![text])].into(),
    }
}

/// serde_json appends " at line 1 column 9"; the field name says more.
fn strip_position(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    plain(message)
}

/// serde's message for a value of the wrong kind, said in JSON's terms instead of the Rust type it
/// was read into (`expected u32`, `expected struct NewVolumeRequest`); other messages as they are.
fn plain(message: &str) -> String {
    if message.starts_with("data did not match any variant of untagged enum") {
        return "This value has none of the forms this field takes".to_string();
    }
    let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.split_once(", expected "))
    else {
        return message.to_string();
    };
    let wanted = match expected {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" => "a whole number of 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" | "bool" => "true or false",
        "a string" | "a borrowed string" | "a char" => "a string",
        "a sequence" => "a list",
        "a map" => "an object",
        other if other.starts_with("struct ") || other.starts_with("a map") => "an object",
        other if other.starts_with("a sequence") || other.starts_with("a tuple") => "a list",
        _ => return message.to_string(),
    };
    format!("Must be {wanted}, not {found}")
}

/// The authenticated caller (API key or bearer token); 401 without one.
pub struct Auth(pub Caller);

/// The caller if credentials were sent (bad credentials are still a 401); for the public catalog.
pub struct MaybeAuth(pub Option<Caller>);

/// An operator; 403 for other callers.
pub struct Admin(pub Caller);

/// A caller the rate limiter already authenticated, so handlers do not look it up twice.
#[derive(Clone)]
pub(crate) struct Resolved(pub Caller);

pub(crate) async fn resolve(parts: &Parts, state: &AppState) -> Result<Option<Caller>, ApiError> {
    if let Some(Resolved(caller)) = parts.extensions.get::<Resolved>() {
        return Ok(Some(caller.clone()));
    }
    let accounts = &state.services.accounts;
    let caller = if let Some(key) = parts.headers.get("x-api-key") {
        let key = key
            .to_str()
            .map_err(|_| Error::Unauthenticated("Invalid or revoked API key".into()))?;
        accounts.authenticate_key(key.trim()).await?
    } else if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
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
    fn numbers_a_float_cannot_hold_are_refused_with_their_member() {
        let refused = |body: &str| refuse_inexact_numbers(body.as_bytes()).map_err(|e| errors(e.0));
        for exact in [
            r#"{"amount": 25.50, "n": 123456789012345678901234}"#,
            r#"{"amount": 1.000000000000000000000, "tiny": 0.000000000000001}"#,
            r#"{"amount": 123456789.012345, "e": 2.5e300, "s": "1.00000000000000000001"}"#,
            r#"{"a\":": [0.1, -0.0000123456789012345]}"#,
        ] {
            assert_eq!(refused(exact), Ok(()), "{exact}");
        }
        let e = refused(r#"{"currency": "USD", "amount": 5.0000000000000000001}"#).unwrap_err();
        assert_eq!(e[0].0, "amount");
        let e = refused(r#"{"volumes": [{"size": 1.2345678901234567e2}]}"#).unwrap_err();
        assert_eq!(e[0].0, "size");
        let e = refused(r#"{"x": "a:b", "y": [1, 3.14159265358979323]}"#).unwrap_err();
        assert_eq!(e[0].0, "y");
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
                vec!["Must be a whole number from 0 to 4294967295, not string \"x\"".to_string()]
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
                vec!["Must be an object, not sequence".to_string()]
            )]
        );
        let e = field_error("size", "invalid value: integer `-1`, expected u32");
        assert_eq!(
            errors(e)[0].1[0],
            "Must be a whole number from 0 to 4294967295, not integer `-1`"
        );
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
            "unknown variant `gold`, expected `legacy` or `advanced`"
        );
    }
}
