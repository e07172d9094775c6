//! Reading a request body: a JSON object, refused with the field at fault where serde_json would take
//! it silently or name no field. A member given twice is refused (serde_json keeps the last, so
//! `{"amount": "1", "amount": "1000"}` would grant 1000), as is a string holding U+0000, which
//! PostgreSQL cannot store in text. Shared by the server's extractors and by the payment webhook, whose
//! body the payment provider reads after checking its signature.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::decimal;
use utoipa::PartialSchema;
use utoipa::openapi::{RefOr, Schema};

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

/// A JSON value read into a [`Value`] with the checks of [`value`]; the first refusal is kept in
/// `refused` (serde's own error carries no field).
struct Checked<'r> {
    path: String,
    refused: &'r RefCell<Option<(String, String)>>,
}

impl Checked<'_> {
    fn refuse<E: de::Error>(&self, field: String, message: &str) -> E {
        let field = if field.is_empty() {
            "body".into()
        } else {
            field
        };
        self.refused
            .borrow_mut()
            .get_or_insert((field, message.into()));
        E::custom(message)
    }

    fn member(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn text<E: de::Error>(&self, text: String) -> Result<Value, E> {
        if text.contains('\0') {
            return Err(self.refuse(self.path.clone(), NUL_MESSAGE));
        }
        Ok(Value::String(text))
    }
}

/// What a text holding U+0000 is refused with.
pub const NUL_MESSAGE: &str = "Must not contain the character U+0000";

impl<'de> DeserializeSeed<'de> for Checked<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.text(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.text(v)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Checked {
            path: format!("{}[{}]", self.path, items.len()),
            refused: self.refused,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        let mut seen = BTreeSet::new();
        while let Some(name) = map.next_key::<String>()? {
            let field = self.member(&name);
            if name.contains('\0') {
                return Err(self.refuse(self.path.clone(), NUL_MESSAGE));
            }
            if !seen.insert(name.clone()) {
                return Err(self.refuse(field, "Given more than once"));
            }
            let value = map.next_value_seed(Checked {
                path: field,
                refused: self.refused,
            })?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
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

/// A serde message at `path` as a field and a message: `missing field `x`` names `x`, others name the
/// path (`body` for the whole).
pub fn field_of(path: &str, message: &str) -> (String, String) {
    let message = strip_position(message);
    let prefix = if path == "." {
        String::new()
    } else {
        format!("{path}.")
    };
    let quoted = |rest: &str| rest.split('`').nth(1).map(str::to_string);
    if let Some(name) = message.strip_prefix("missing field ").and_then(quoted) {
        (format!("{prefix}{name}"), REQUIRED_MESSAGE.to_string())
    } else if let Some(name) = message.strip_prefix("duplicate field ").and_then(quoted) {
        (
            format!("{prefix}{name}"),
            "Given more than once".to_string(),
        )
    } else if let Some(name) = message.strip_prefix("unknown field ").and_then(quoted) {
        // The path already ends at the unknown key.
        let field = if path == "." {
            name.clone()
        } else {
            path.to_string()
        };
        (field, unknown_field_message(&name))
    } else if path == "." {
        ("body".to_string(), message)
    } else {
        (path.to_string(), message)
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

/// serde_json appends " at line 1 column 9"; the field name says more.
pub fn strip_position(message: &str) -> String {
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
    // `unknown variant `GBP`, expected one of `USD`, `EUR`, `INR``
    if let Some((given, expected)) = message
        .strip_prefix("unknown variant ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        let given = given.trim_matches('`');
        // "one of `A`, `B`, `C`", "`A` or `B`" or "`A`"
        let expected = match expected.strip_prefix("one of ") {
            Some(list) => format!("one of {}", list.replace('`', "")),
            None => expected.replace('`', ""),
        };
        return format!("Must be {expected}, not \"{given}\"");
    }
    let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.split_once(", expected "))
    else {
        return message.to_string();
    };
    // A whole number out of the type's range: said without the range, which is not the field's.
    if let Some(n) = found.strip_prefix("integer ")
        && message.starts_with("invalid value: ")
        && ["u8", "u16", "u32", "u64", "usize"].contains(&expected.trim())
    {
        let n = n.trim_matches('`');
        return if n.starts_with('-') {
            format!("Must not be negative, not the number {n}")
        } else {
            format!("Must be a smaller whole number, not the number {n}")
        };
    }
    let wanted = expected
        .split(" or ")
        .map(wanted)
        .collect::<Option<Vec<_>>>();
    match wanted {
        Some(wanted) => format!(
            "Must be {}, not {}",
            wanted.join(" or "),
            found_value(found)
        ),
        None => message.to_string(),
    }
}

/// What serde expected (`u32`, `struct NewVolumeRequest`, `a string`), in JSON's terms.
fn wanted(expected: &str) -> Option<&'static str> {
    Some(match expected.trim() {
        // The type's range is not the field's (a count of GPUs is 1, 2, 4 or 8; a page 1 or more): the
        // field's own bounds are checked on a whole number, and said then.
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number",
        "i8" | "i16" | "i32" | "i64" | "isize" | "integer" | "an integer" => "a whole number",
        "f32" | "f64" | "number" | "a number" => "a number",
        "a boolean" | "bool" | "boolean" => "true or false",
        "a string" | "a borrowed string" | "a char" | "string" | "variant identifier"
        | "a valid string" => "a string",
        "a sequence" | "sequence" | "a list" => "a list",
        "a map" | "map" | "an object" | "object" => "an object",
        other if other.starts_with("struct ") || other.starts_with("a map") => "an object",
        other if other.starts_with("a sequence") || other.starts_with("a tuple") => "a list",
        _ => return None,
    })
}

/// What was sent instead, as serde describes it (`integer `5``, `string "x"`, `null`), in JSON's terms:
/// a string shows itself (`string "x"`), as does a number or `true`; a list or an object is named.
fn found_value(found: &str) -> String {
    let ticked = |rest: &str| rest.trim_matches('`').to_string();
    if let Some(n) = found
        .strip_prefix("integer ")
        .or_else(|| found.strip_prefix("floating point "))
    {
        format!("the number {}", ticked(n))
    } else if let Some(b) = found.strip_prefix("boolean ") {
        ticked(b)
    } else {
        match found {
            "null" | "unit" | "unit value" => "null".to_string(),
            "sequence" => "a list".to_string(),
            "map" => "an object".to_string(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> BodyError {
        value(body.as_bytes()).unwrap_err()
    }

    fn field(field: &str, message: &str) -> BodyError {
        BodyError::Field {
            field: field.into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_member_given_twice_is_refused_where_it_is() {
        let twice = "Given more than once";
        assert_eq!(
            refused(r#"{"amount": "1", "currency": "USD", "amount": "1000"}"#),
            field("amount", twice)
        );
        assert_eq!(
            refused(r#"{"volumes": [{"size": 1}, {"size": 2, "size": 3}]}"#),
            field("volumes[1].size", twice)
        );
        // The same name once escaped is the same member.
        assert_eq!(refused(r#"{"ab": 1, "a\u0062": 2}"#), field("ab", twice));
        assert!(value(br#"{"a": {"x": 1}, "b": {"x": 1}}"#).is_ok());
    }

    #[test]
    fn a_string_holding_nul_is_refused_on_its_member() {
        let nul = "Must not contain the character U+0000";
        assert_eq!(refused(r#"{"note": "a\u0000b"}"#), field("note", nul));
        assert_eq!(
            refused(r#"{"labels": {"team": ["x", "\u0000"]}}"#),
            field("labels.team[1]", nul)
        );
        assert_eq!(refused(r#"{"a\u0000": 1}"#), field("body", nul));
        // An escaped backslash before u0000 is the text \u0000, not the character.
        assert_eq!(value(br#"{"note": "\\u0000"}"#).unwrap()["note"], "\\u0000");
        assert!(may_hold_nul(br#"{"note": "a\u0000b"}"#));
        assert!(!may_hold_nul(br#"{"note": "a\u0001b"}"#));
    }

    #[test]
    fn only_objects_are_bodies() {
        assert_eq!(value(b"").unwrap(), serde_json::json!({}));
        assert_eq!(
            refused(r#"["payment.succeeded", "x"]"#),
            BodyError::NotObject
        );
        assert_eq!(refused("  "), BodyError::NotObject);
        assert!(matches!(refused("{oops"), BodyError::Syntax(_)));
        assert!(matches!(refused("{} {}"), BodyError::Syntax(_)));
    }

    #[test]
    fn an_operation_without_a_body_takes_none_or_an_empty_object() {
        for body in ["", "{}", " { } "] {
            assert_eq!(read_none(body.as_bytes()), Ok(()), "{body:?}");
        }
        assert_eq!(
            read_none(br#"{"dry_run": true}"#),
            Err(BodyError::Fields(vec![(
                "dry_run".into(),
                "Unknown field 'dry_run'".into()
            )]))
        );
        for body in ["not json", "  ", "[]", "null", "\"{}\""] {
            assert_eq!(
                read_none(body.as_bytes()),
                Err(BodyError::NotObject),
                "{body:?}"
            );
        }
        assert!(matches!(read_none(b"{oops"), Err(BodyError::Syntax(_))));
    }

    #[test]
    fn a_member_object_is_refused_as_a_list() {
        let read = |body: &str| read::<crate::ai::ChatCompletionsRequest>(body.as_bytes());
        let chat = r#""model": "m", "messages": [{"role": "user", "content": "hi"}]"#;
        for list in ["[true]", "[]"] {
            assert_eq!(
                read(&format!(r#"{{{chat}, "stream_options": {list}}}"#)).unwrap_err(),
                field("stream_options", "Must be an object, not a list")
            );
        }
        let with = |options: &str| {
            read(&format!(r#"{{{chat}, "stream_options": {options}}}"#))
                .unwrap()
                .stream_options
        };
        assert_eq!(with("null"), None);
        assert_eq!(
            with(r#"{"include_usage": true}"#).and_then(|o| o.include_usage),
            Some(true)
        );
        assert_eq!(
            read(&format!(
                r#"{{{chat}, "stream_options": {{"include_usage": "x"}}}}"#
            ))
            .unwrap_err(),
            field(
                "stream_options.include_usage",
                "Must be true or false, not string \"x\""
            )
        );
    }

    #[test]
    fn typed_reads_name_the_field() {
        #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
        #[allow(dead_code)]
        struct Event {
            event: String,
            count: u32,
        }
        let read = |body: &str| read::<Event>(body.as_bytes()).unwrap_err();
        assert_eq!(
            read("{}"),
            BodyError::Missing(vec!["event".into(), "count".into()])
        );
        assert_eq!(
            read(r#"{"event": "x", "count": "7"}"#),
            field("count", "Must be a whole number, not string \"7\"")
        );
        assert!(super::read::<Event>(br#"{"event": "x", "count": 7.0}"#).is_ok());
        assert_eq!(
            read(r#"{"count": 1}"#),
            field("event", "This field is required")
        );
    }

    #[test]
    fn an_amount_a_float_cannot_hold_is_refused_on_its_member() {
        #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
        #[allow(dead_code)]
        struct Deposit {
            #[serde(with = "crate::decimal")]
            #[schema(value_type = String)]
            amount: rust_decimal::Decimal,
        }
        let read = |body: &str| read_amounts::<Deposit>(body.as_bytes());
        assert!(read(r#"{"amount": 25.50}"#).is_ok());
        let refused = read(r#"{"currency": "USD", "amount": 5.0000000000000000001}"#).unwrap_err();
        assert!(
            matches!(&refused, BodyError::Field { field, message }
                if field == "amount" && message.contains("as a string")),
            "{refused:?}"
        );
        assert_eq!(
            read(r#"[5.0000000000000000001]"#).unwrap_err(),
            BodyError::NotObject
        );
    }

    #[test]
    fn every_missing_member_is_named_at_once() {
        #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
        #[allow(dead_code)]
        struct Deploy {
            region: String,
            gpu_count: u32,
            #[serde(default)]
            labels: Vec<String>,
            name: String,
            note: Option<String>,
        }
        let read = |body: &str| super::read::<Deploy>(body.as_bytes()).unwrap_err();
        assert_eq!(
            read("{}"),
            BodyError::Missing(vec!["region".into(), "gpu_count".into(), "name".into()])
        );
        assert_eq!(
            read(r#"{"gpu_count": 1}"#),
            BodyError::Missing(vec!["region".into(), "name".into()])
        );
        // A value of the wrong kind does not hide the members missing, nor other values of the wrong
        // kind.
        assert_eq!(
            read(r#"{"gpu_count": "x", "note": 5}"#),
            BodyError::Fields(vec![
                (
                    "gpu_count".into(),
                    "Must be a whole number, not string \"x\"".into()
                ),
                ("note".into(), "Must be a string, not the number 5".into()),
                ("region".into(), "This field is required".into()),
                ("name".into(), "This field is required".into()),
            ])
        );
        assert_eq!(
            read(r#"{"gpu_count": -2, "region": "r", "name": "n"}"#),
            field("gpu_count", "Must not be negative, not the number -2")
        );
    }

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
    #[allow(dead_code)]
    enum Tagged {
        Scarcity { region: String, available: u32 },
        Outage { region: String },
    }

    #[test]
    fn a_tagged_enum_names_the_member_at_fault() {
        let read = |body: &str| super::read::<Tagged>(body.as_bytes()).unwrap_err();
        let whole = "Must be a whole number";
        assert_eq!(
            read(r#"{"kind": "scarcity", "region": "r", "available": "2"}"#),
            field("available", &format!("{whole}, not string \"2\""))
        );
        assert_eq!(
            read(r#"{"kind": "scarcity", "region": "r", "available": -2}"#),
            field("available", "Must not be negative, not the number -2")
        );
        assert_eq!(
            read(r#"{"kind": "outage", "region": "r", "zzz": 1}"#),
            field("zzz", "Unknown field 'zzz'")
        );
        let BodyError::Fields(mut both) =
            read(r#"{"kind": "scarcity", "region": 5, "available": "2"}"#)
        else {
            panic!("two members at fault")
        };
        both.sort();
        assert_eq!(
            both,
            vec![
                ("available".into(), format!("{whole}, not string \"2\"")),
                ("region".into(), "Must be a string, not the number 5".into()),
            ]
        );
        assert_eq!(
            read(r#"{"kind": 5}"#),
            field("kind", "Must be a string, not the number 5")
        );
        assert!(super::read::<Tagged>(br#"{"kind": "outage", "region": "r"}"#).is_ok());
    }

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    struct Named {
        tier: crate::Tier,
    }

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
    #[allow(dead_code)]
    enum Injected {
        FailNth { tier: crate::Tier, nth: u32 },
    }

    #[test]
    fn a_named_value_is_a_string_and_nothing_else() {
        let read = |body: &str| super::read::<Named>(body.as_bytes());
        assert_eq!(
            read(r#"{"tier": "advanced"}"#).unwrap().tier,
            crate::Tier::Advanced
        );
        for (body, message) in [
            (
                r#"{"tier": {"advanced": null}}"#,
                "Must be a string, not an object",
            ),
            (
                r#"{"tier": {"legacy": 1}}"#,
                "Must be a string, not an object",
            ),
            (r#"{"tier": 5}"#, "Must be a string, not the number 5"),
            (
                r#"{"tier": "gold"}"#,
                "Must be legacy or advanced, not \"gold\"",
            ),
        ] {
            assert_eq!(read(body).unwrap_err(), field("tier", message), "{body}");
        }
        let read = |body: &str| super::read::<Injected>(body.as_bytes()).unwrap_err();
        assert_eq!(
            read(r#"{"kind": "fail_nth", "tier": "bogus", "nth": 1}"#),
            field("tier", "Must be legacy or advanced, not \"bogus\"")
        );
        assert_eq!(
            read(r#"{"kind": "fail_nth", "tier": {"x": 1}, "nth": 1}"#),
            field("tier", "Must be a string, not an object")
        );
    }

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        volumes: Vec<NestedVolume>,
    }

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct NestedVolume {
        name: String,
        size: u32,
        tier: crate::Tier,
    }

    #[test]
    fn every_member_at_fault_inside_a_member_is_named() {
        let read = |body: &str| super::read::<Nested>(body.as_bytes()).unwrap_err();
        let BodyError::Fields(mut all) =
            read(r#"{"volumes": [{"name": "a", "size": "x", "tier": 1}, {"size": 2, "zzz": 1}]}"#)
        else {
            panic!("several members at fault")
        };
        all.sort();
        assert_eq!(
            all,
            vec![
                (
                    "volumes[0].size".into(),
                    "Must be a whole number, not string \"x\"".into()
                ),
                (
                    "volumes[0].tier".into(),
                    "Must be a string, not the number 1".into()
                ),
                ("volumes[1].name".into(), REQUIRED_MESSAGE.into()),
                ("volumes[1].tier".into(), REQUIRED_MESSAGE.into()),
                ("volumes[1].zzz".into(), "Unknown field 'zzz'".into()),
            ]
        );
    }

    #[test]
    fn values_of_the_wrong_kind_are_said_in_jsons_terms() {
        let plain = |message: &str| field_of("tier", message).1;
        // Not the type's range, which no field has.
        assert_eq!(
            plain("invalid type: floating point `1.5`, expected u32"),
            "Must be a whole number, not the number 1.5"
        );
        assert_eq!(
            plain("invalid value: integer `-1`, expected u32"),
            "Must not be negative, not the number -1"
        );
        assert_eq!(
            plain("invalid value: integer `99999999999`, expected u32"),
            "Must be a smaller whole number, not the number 99999999999"
        );
        assert_eq!(
            plain("invalid type: integer `5`, expected string or map"),
            "Must be a string or an object, not the number 5"
        );
        assert_eq!(
            plain("invalid type: null, expected a string"),
            "Must be a string, not null"
        );
        assert_eq!(
            plain("invalid type: boolean `true`, expected u16"),
            "Must be a whole number, not true"
        );
        assert_eq!(
            plain("invalid type: map, expected a sequence"),
            "Must be a list, not an object"
        );
        assert_eq!(
            field_of(".", "duplicate field `page`"),
            ("page".into(), "Given more than once".into())
        );
    }
}
