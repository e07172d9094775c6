//! Collects field errors so a request learns about every bad field at once.

use barrack_api::{FieldErrors, PageQuery, PageRequest, rules};

use crate::Error;
use crate::platform::clock::parse_iso;

#[derive(Debug, Default)]
pub struct Validator {
    errors: FieldErrors,
}

impl Validator {
    pub fn new() -> Validator {
        Validator::default()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.errors
            .entry(field.to_string())
            .or_default()
            .push(message.into());
    }

    /// Adds `message` to `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.add(field, message);
        }
    }

    pub fn error_count(&self) -> usize {
        self.errors.values().map(Vec::len).sum()
    }

    pub fn has(&self, field: &str) -> bool {
        self.errors.contains_key(field)
    }

    pub fn finish(self) -> Result<(), Error> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation {
                message: "Invalid request data".into(),
                errors: self.errors,
            })
        }
    }
}

/// A listing's checked page and time range, the times in epoch milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct PageRange {
    pub page: PageRequest,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// Checks a listing's `page`/`limit` and its ISO-8601 `from` and `to`, naming every bad field at once.
pub fn validate_range(
    page: PageQuery,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<PageRange, Error> {
    let mut v = Validator::new();
    let page = match page.validate() {
        Ok(page) => Some(page),
        Err((field, message)) => {
            v.add(field, message);
            None
        }
    };
    let from_ms = check_time(&mut v, "from", from);
    let to_ms = check_time(&mut v, "to", to);
    check_order(&mut v, from_ms, to_ms);
    v.finish()?;
    Ok(PageRange {
        page: page.expect("validated"),
        from_ms,
        to_ms,
    })
}

/// An ISO-8601 time in epoch milliseconds, or an error on `field` when it does not parse.
pub fn check_time(v: &mut Validator, field: &str, text: Option<&str>) -> Option<i64> {
    let parsed = parse_iso(text?);
    v.check(
        parsed.is_some(),
        field,
        "Use an ISO-8601 time such as 2025-01-15T10:30:00Z",
    );
    parsed
}

/// An error on `to` when it comes before `from`: the two swapped, most likely, rather than a range that
/// is meant to hold nothing.
pub fn check_order(v: &mut Validator, from_ms: Option<i64>, to_ms: Option<i64>) {
    if let (Some(from), Some(to)) = (from_ms, to_ms) {
        v.check(to >= from, "to", "To must not be before from");
    }
}

/// A `status` filter naming no state, said with the states there are.
pub fn unknown_status(status: &str, valid: &[&str]) -> String {
    format!(
        "Unknown status '{status}'. Valid values: {}",
        valid.join(", ")
    )
}

/// Letters, digits and the given extra characters only.
pub fn only_chars(value: &str, extra: &[char]) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

/// Length in characters within `min..=max`.
pub fn length_between(value: &str, min: usize, max: usize) -> bool {
    let n = value.chars().count();
    (min..=max).contains(&n)
}

/// Free text (a description, an address line) holds no control characters: they would move the cursor,
/// clear the screen or retitle the window of whoever reads it in a terminal. A description may keep
/// its line breaks and tabs (`lines`).
pub fn check_plain_text(v: &mut Validator, field: &str, value: &str, lines: bool) {
    let control = value
        .chars()
        .find(|&c| c.is_control() && !(lines && matches!(c, '\n' | '\t')));
    if let Some(c) = control {
        v.add(
            field,
            format!(
                "Must not contain control characters such as U+{:04X}{}",
                u32::from(c),
                if lines {
                    " (line breaks and tabs are allowed)"
                } else {
                    ""
                }
            ),
        );
    }
}

/// The name rule of API keys and similar labels (`barrack_api::rules`): 1–50 letters, digits, spaces,
/// `-`, `_`, `.`, not only spaces.
pub fn check_label(v: &mut Validator, field: &str, value: &str) {
    check_label_of(v, field, value, rules::LABEL_MAX_CHARS);
}

/// The label rule with another maximum length.
pub fn check_label_of(v: &mut Validator, field: &str, value: &str, max: usize) {
    // Callers trim names first, so spaces alone arrive empty: said as what was sent.
    if value.trim().is_empty() {
        v.add(field, "Name must not be empty or only spaces");
    } else if !rules::label_length_ok(value, max) {
        v.add(
            field,
            format!("Name must be between 1 and {max} characters"),
        );
    }
    if !rules::label_chars_ok(value) && !value.trim().is_empty() {
        v.add(field, "Name must contain only alphanumeric characters, spaces, hyphens, underscores, and dots");
    }
}
