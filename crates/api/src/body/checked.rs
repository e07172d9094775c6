//! The checked reading of a body's JSON: every member's path known, so a member given twice or a
//! string holding U+0000 is refused where it is.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON value read into a [`Value`] with the checks of [`value`]; the first refusal is kept in
/// `refused` (serde's own error carries no field).
pub(super) struct Checked<'r> {
    pub(super) path: String,
    pub(super) refused: &'r RefCell<Option<(String, String)>>,
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
