//! Reading a request body: a JSON object, refused with the field at fault where serde_json would take
//! it silently or name no field. A member given twice is refused (serde_json keeps the last, so
//! `{"amount": "1", "amount": "1000"}` would grant 1000), as is a string holding U+0000, which
//! PostgreSQL cannot store in text. Shared by the server's extractors and by the payment webhook, whose
//! body the payment provider reads after checking its signature.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::decimal;
use utoipa::PartialSchema;
use utoipa::openapi::{RefOr, Schema};

mod checked;
mod wording;

use checked::Checked;
pub use checked::NUL_MESSAGE;
pub use wording::{field_of, strip_position};

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not a JSON object (an array, a string, white space alone).
    NotObject,
    /// Not JSON.
    Syntax(String),
    /// A member at fault: its path (`volumes[0].size`, `body` for the whole) and what is wrong.
    Field { field: String, message: String },
    /// Required members missing, more than one.
    Missing(Vec<String>),
    /// Several members at fault, each with what is wrong with it, in the body's order.
    Fields(Vec<(String, String)>),
}

impl BodyError {
    /// The error's headline, as the API's envelope says it.
    pub fn summary(&self) -> &'static str {
        match self {
            BodyError::NotObject => "Request body must be a JSON object",
            BodyError::Syntax(_) => "Request body is not valid JSON",
            BodyError::Field { .. } | BodyError::Missing(_) | BodyError::Fields(_) => {
                "Invalid request data"
            }
        }
    }

    /// Each field at fault with what is wrong with it (`body` for the whole).
    pub fn fields(self) -> Vec<(String, String)> {
        match self {
            BodyError::NotObject => vec![("body".into(), "Expected a JSON object".into())],
            BodyError::Syntax(message) => vec![("body".into(), message)],
            BodyError::Field { field, message } => vec![(field, message)],
            BodyError::Missing(fields) => fields
                .into_iter()
                .map(|field| (field, REQUIRED_MESSAGE.to_string()))
                .collect(),
            BodyError::Fields(fields) => fields,
        }
    }
}

/// What a missing required member is refused with.
pub const REQUIRED_MESSAGE: &str = "This field is required";

/// Reads a body as `T`: no body at all is `{}`; anything else must be a JSON object, with no member
/// twice and no U+0000 in a string. A whole number written with a fraction (`4.0`) reads as the
/// integer, as JSON has one number type. Errors name the field ([`field_of`]); when required members
/// are missing, every one of them at once ([`BodyError::Missing`]).
pub fn read<T: DeserializeOwned + PartialSchema>(bytes: &[u8]) -> Result<T, BodyError> {
    let mut json = value(bytes)?;
    integral_floats_as_integers(&mut json);
    decode(&json, missing_members::<T>)
}

/// `json` read as `T`, refused as [`read`] refuses a body: for a type without a schema (whose missing
/// members cannot be listed beyond the first serde names).
pub fn from_value<T: DeserializeOwned>(json: &Value) -> Result<T, BodyError> {
    decode(json, |_| Vec::new())
}

/// At most this many members are looked at one by one to find every one at fault: a body is a form's
/// worth of members, and each look is a read of the body.
const MEMBERS_LOOKED_AT: usize = 64;

/// `json` as `T`; when it is refused, every member at fault at once. serde stops at the first value of
/// the wrong kind: the member at fault is set aside and the rest read again, until what is left reads
/// or lacks only required members, which are then named too (`required` lists those `T`'s schema
/// requires that a body lacks).
fn decode<T: DeserializeOwned>(
    json: &Value,
    required: impl Fn(&Value) -> Vec<String>,
) -> Result<T, BodyError> {
    let first = match attempt::<T>(json) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let mut faults: Vec<(String, String)> = Vec::new();
    let mut rest = json.clone();
    let mut error = Some(first);
    for _ in 0..=MEMBERS_LOOKED_AT {
        let Some((path, message)) = error.take() else {
            break;
        };
        if path == "." && message.starts_with("missing field ") {
            // What is left lacks only required members: those the body lacks are at fault (not those
            // set aside for a value of the wrong kind).
            let sent = |name: &String| json.get(name).is_some();
            let mut missing: Vec<String> =
                required(&rest).into_iter().filter(|n| !sent(n)).collect();
            let (named, _) = field_of(&path, &message);
            if !sent(&named) && !missing.contains(&named) {
                missing.insert(0, named);
            }
            if faults.is_empty() && missing.len() > 1 {
                return Err(BodyError::Missing(missing));
            }
            faults.extend(
                missing
                    .into_iter()
                    .map(|name| (name, REQUIRED_MESSAGE.to_string())),
            );
            break;
        }
        let (path, message) = if path == "." {
            locate::<T>(&rest, &message).unwrap_or((path, message))
        } else {
            (path, message)
        };
        let whole = path == "." && !message.starts_with("unknown field ");
        let (field, text) = field_of(&path, &message);
        faults.push((field.clone(), text));
        // A member inside a member (`volumes[0].size`) is set aside alone, so its siblings are read too.
        if !whole
            && field != top_member(&field)
            && faults.len() < NESTED_LOOKED_AT
            && let Some((read, next)) = set_aside_within::<T>(&rest, &field, &message)
        {
            rest = read;
            error = next;
            continue;
        }
        // Set the member aside and read the others again.
        let set_aside = !whole
            && rest
                .as_object_mut()
                .is_some_and(|members| members.remove(top_member(&field)).is_some());
        if !set_aside {
            break;
        }
        error = attempt::<T>(&rest).err();
    }
    if faults.len() == 1 {
        let (field, message) = faults.remove(0);
        return Err(BodyError::Field { field, message });
    }
    Err(BodyError::Fields(faults))
}

/// At most this many members at fault inside others are set aside alone (each costs a few reads); then
/// the member holding one is set aside whole.
const NESTED_LOOKED_AT: usize = 16;

/// `json` with the member at `field` inside another (`volumes[0].size`) set aside, and how it then reads:
/// an unknown member is removed; a member of the wrong kind, or a required one missing, is given a
/// value of some kind that reads, so that serde goes on to the next member at fault. `None` when no
/// such value reads (then the whole top member is set aside).
fn set_aside_within<T: DeserializeOwned>(
    json: &Value,
    field: &str,
    message: &str,
) -> Option<(Value, Option<(String, String)>)> {
    let (parent, name) = field.rsplit_once('.')?;
    let moved_on = |candidate: Value| {
        let next = attempt::<T>(&candidate).err();
        let stuck = next
            .as_ref()
            .is_some_and(|(path, why)| field_of(path, why).0 == field);
        (!stuck).then_some((candidate, next))
    };
    if message.starts_with("unknown field ") {
        let mut candidate = json.clone();
        member_at(&mut candidate, parent)?
            .as_object_mut()?
            .remove(name)?;
        return moved_on(candidate);
    }
    let stand_ins = [
        Value::from(""),
        Value::from(1),
        Value::from(false),
        Value::Array(Vec::new()),
        Value::Object(Map::new()),
    ];
    let with = |stand_in: Value| {
        let mut candidate = json.clone();
        member_at(&mut candidate, parent)?
            .as_object_mut()?
            .insert(name.to_string(), stand_in);
        Some(candidate)
    };
    stand_ins
        .into_iter()
        .find_map(|stand_in| moved_on(with(stand_in)?))
        .or_else(|| {
            // A name of a set (`"tier"`): the first name serde says it expects.
            let candidate = with(Value::from(""))?;
            let (_, why) = attempt::<T>(&candidate).err()?;
            let (_, expected) = why.split_once(", expected ")?;
            let first = expected.split('`').nth(1)?;
            moved_on(with(Value::from(first))?)
        })
}

/// The value at a path of serde's (`volumes[0]`, `a.b[2].c`).
fn member_at<'a>(json: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut at = json;
    for part in path.split('.') {
        let (name, indexes) = part.split_once('[').map_or((part, ""), |(n, i)| (n, i));
        if !name.is_empty() {
            at = at.get_mut(name)?;
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            at = at.get_mut(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(at)
}

/// One read of `json` as `T`: the path serde stopped at and its message.
fn attempt<T: DeserializeOwned>(json: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(json)
        .map_err(|e| (e.path().to_string(), e.inner().to_string()))
}

/// The member a field's path starts with: `volumes` of `volumes[0].size`.
fn top_member(field: &str) -> &str {
    let end = field.find(['.', '[']).unwrap_or(field.len());
    &field[..end]
}

/// The member of `json` that a refusal serde made without a path (`message`) is about, with its path
/// and message. A type read through a buffer, as an enum tagged by a member (`{"kind": ...}`) is, loses
/// the path: each member is read alone (with the member serde asks for first, the tag) until one is
/// refused by itself.
fn locate<T: DeserializeOwned>(json: &Value, message: &str) -> Option<(String, String)> {
    let members = json.as_object()?;
    if message.starts_with("unknown field ") || members.len() > MEMBERS_LOOKED_AT {
        // serde names an unknown member itself.
        return None;
    }
    let refused_alone = |with: &[(&String, &Value)]| -> Option<(String, String)> {
        let alone: Map<String, Value> = with
            .iter()
            .map(|(name, value)| ((*name).clone(), (*value).clone()))
            .collect();
        attempt::<T>(&Value::Object(alone)).err()
    };
    // A value of the wrong kind is described (`integer `5``): the member holding it, if only one does.
    let found = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.split_once(", expected "))
        .map(|(found, _)| found);
    let holding: Vec<_> = members
        .iter()
        .filter(|(_, value)| found.is_some_and(|found| described(value) == found))
        .collect();
    if let [(name, _)] = holding[..] {
        return Some(((*name).clone(), message.to_string()));
    }
    let candidates = if holding.is_empty() {
        members.iter().collect()
    } else {
        holding
    };
    // What serde asks for first of an empty object: an enum tagged by a member asks for its tag.
    let asked_first = match attempt::<T>(&Value::Object(Map::new())) {
        Err((path, asked)) if path == "." && asked.starts_with("missing field ") => {
            Some(field_of(&path, &asked).0)
        }
        _ => None,
    };
    for (name, value) in candidates {
        let mut refusal = refused_alone(&[(name, value)]);
        // A member read alone lacks the tag: read it with the tag, so a refusal is its own (and not
        // another member's, which the tag alone would not be refused for).
        if let Some((path, asked)) = &refusal
            && path == "."
            && let (tag, _) = field_of(path, asked)
            && asked.starts_with("missing field ")
            && asked_first.as_ref() == Some(&tag)
            && tag != *name
            && let Some((tag, tag_value)) = members.get_key_value(&tag)
        {
            refusal = refused_alone(&[(tag, tag_value), (name, value)]);
        }
        match refusal {
            Some((path, why)) if !(path == "." && why.starts_with("missing field ")) => {
                let path = if path == "." && !why.starts_with("unknown field ") {
                    name.clone()
                } else {
                    path
                };
                return Some((path, why));
            }
            _ => {}
        }
    }
    None
}

/// A JSON value as serde describes one it did not expect (`serde::de::Unexpected`).
fn described(value: &Value) -> String {
    match value {
        Value::Null => "unit value".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) => de::Unexpected::Float(f).to_string(),
            None => n.to_string(),
        },
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(s) => de::Unexpected::Str(s).to_string(),
        Value::Array(_) => "sequence".into(),
        Value::Object(_) => "map".into(),
    }
}

/// Reads the body of an operation that takes none: no body at all, or an object with no members (`{}`,
/// which clients send for an action). Anything else is refused as [`read`] refuses it, and each member
/// of an object is an unknown field, so `{"dry_run": true}` is never taken for a reset that is not one.
pub fn read_none(bytes: &[u8]) -> Result<(), BodyError> {
    match value(bytes)? {
        Value::Object(members) if members.is_empty() => Ok(()),
        Value::Object(members) => Err(BodyError::Fields(
            members
                .keys()
                .map(|name| (name.clone(), unknown_field_message(name)))
                .collect(),
        )),
        _ => Err(BodyError::NotObject),
    }
}

/// What a member the body does not take is refused with.
pub fn unknown_field_message(name: &str) -> String {
    format!("Unknown field '{name}'")
}

/// [`read`], for a body whose numbers are amounts of money: a number a float cannot hold exactly
/// ([`decimal::inexact_number`]) is refused on its member instead of being read as the nearest float.
/// Other bodies keep floats as JSON clients compute them (an AI call's `temperature` of
/// `0.30000000000000004`, say).
pub fn read_amounts<T: DeserializeOwned + PartialSchema>(bytes: &[u8]) -> Result<T, BodyError> {
    if opens_object(bytes)
        && let Some(member) = decimal::inexact_number(bytes)
    {
        return Err(BodyError::Field {
            field: if member.is_empty() {
                "body".into()
            } else {
                member
            },
            message: decimal::inexact_number_message(),
        });
    }
    read(bytes)
}

/// The members `T`'s schema requires that `json` does not have, in the schema's order.
fn missing_members<T: PartialSchema>(json: &Value) -> Vec<String> {
    let (RefOr::T(Schema::Object(object)), Some(members)) = (T::schema(), json.as_object()) else {
        return Vec::new();
    };
    object
        .required
        .into_iter()
        .filter(|name| !members.contains_key(name))
        .collect()
}

/// The body's JSON, checked as [`read`] checks it.
pub fn value(bytes: &[u8]) -> Result<Value, BodyError> {
    // No body at all is `{}`; white space alone is not JSON.
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    // Every body of this API is an object; serde would also take an array as a struct's fields in order.
    if !opens_object(bytes) {
        return Err(BodyError::NotObject);
    }
    let refused = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Checked {
        path: String::new(),
        refused: &refused,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    match (parsed, refused.into_inner()) {
        (_, Some((field, message))) => Err(BodyError::Field { field, message }),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(BodyError::Syntax(strip_position(&e.to_string()))),
    }
}

/// Whether a body's text may hold U+0000 (`\u0000`): such a body is read the checked way only.
pub fn may_hold_nul(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|w| w == b"\\u0000")
}

/// Whether a body starts as a JSON object does.
pub fn opens_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// JSON has one number type: `88.0` is the integer 88 to JSON Schema and to clients, so a whole number
/// written with a fraction reads as the integer for integer fields.
fn integral_floats_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                *n = serde_json::Number::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// For a member that is an object of optional members: serde's derive also reads a struct from a list
/// of its members in order, so `[true]` would pass for `{"include_usage": true}`. Absent or `null` is
/// `None`; anything but an object is refused on the member.
pub fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: de::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct Optional<T>(std::marker::PhantomData<T>);
    struct Object<T>(std::marker::PhantomData<T>);
    impl<'de, T: serde::Deserialize<'de>> Visitor<'de> for Object<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }
    impl<'de, T: serde::Deserialize<'de>> Visitor<'de> for Optional<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map")
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            d.deserialize_map(Object(std::marker::PhantomData))
                .map(Some)
        }
    }
    deserializer.deserialize_option(Optional(std::marker::PhantomData))
}

#[cfg(test)]
mod tests;
