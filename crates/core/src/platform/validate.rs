//! Collects field errors so a request learns about every bad field at once.

use barrack_api::{FieldErrors, rules};

use crate::Error;

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

/// The name rule of API keys and similar labels (`barrack_api::rules`): 1–50 letters, digits, spaces,
/// `-`, `_`, `.`, not only spaces.
pub fn check_label(v: &mut Validator, field: &str, value: &str) {
    check_label_of(v, field, value, rules::LABEL_MAX_CHARS);
}

/// The label rule with another maximum length.
pub fn check_label_of(v: &mut Validator, field: &str, value: &str, max: usize) {
    if !rules::label_length_ok(value, max) || value.trim().is_empty() {
        v.add(
            field,
            format!("Name must be between 1 and {max} characters"),
        );
    }
    if !rules::label_chars_ok(value) && !value.trim().is_empty() {
        v.add(field, "Name must contain only alphanumeric characters, spaces, hyphens, underscores, and dots");
    }
}
