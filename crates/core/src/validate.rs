//! Collects field errors so a request learns about every bad field at once.

use barrack_api::FieldErrors;

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

/// The name rule of API keys and similar labels: 1–50 letters, digits, spaces, `-`, `_`, `.`.
pub fn check_label(v: &mut Validator, field: &str, value: &str) {
    if !length_between(value.trim(), 1, 50) {
        v.add(field, "Name must be between 1 and 50 characters");
    }
    if !only_chars(value, &[' ', '-', '_', '.']) {
        v.add(field, "Name must contain only alphanumeric characters, spaces, hyphens, underscores, and dots");
    }
}
