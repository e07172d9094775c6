//! serde's messages said as the API says them: the field at fault, in JSON's terms.

use super::{REQUIRED_MESSAGE, unknown_field_message};

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
