//! Collects field errors so a request learns about every bad field at once.

use barrack_api::{FieldErrors, PageQuery, PageRequest, rules};

use crate::Error;
use crate::platform::clock::parse_iso;
use crate::platform::config::Config;

/// The most field errors one answer lists: a request naming a bad item 200,000 times learns of the
/// first ones and how many more there were, in an answer of a few kilobytes, not one larger than itself.
pub const MAX_FIELD_ERRORS: usize = 50;

#[derive(Debug, Default)]
pub struct Validator {
    errors: FieldErrors,
    recorded: usize,
    /// Errors found after [`MAX_FIELD_ERRORS`] were recorded: counted, not kept.
    omitted: usize,
}

impl Validator {
    pub fn new() -> Validator {
        Validator::default()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        if self.recorded >= MAX_FIELD_ERRORS {
            self.omitted += 1;
            return;
        }
        self.recorded += 1;
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

    /// Every error found, those past [`MAX_FIELD_ERRORS`] too.
    pub fn error_count(&self) -> usize {
        self.recorded + self.omitted
    }

    pub fn has(&self, field: &str) -> bool {
        self.errors.contains_key(field)
    }

    pub fn finish(self) -> Result<(), Error> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let message = if self.omitted == 0 {
            "Invalid request data".to_string()
        } else {
            format!(
                "Invalid request data: the first {MAX_FIELD_ERRORS} errors are listed, {} more are not",
                self.omitted
            )
        };
        Err(Error::Validation {
            message,
            errors: self.errors,
        })
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

/// A list's `region` and `gpu_model` filters name what the catalog has, exactly as a deploy's body must
/// (names are matched as written: `FINLAND-1`, not `finland-1`): a filter on a typo would read as
/// "you have none". The error names the parameter and lists the valid values.
pub fn check_catalog_filters(
    v: &mut Validator,
    config: &Config,
    region: Option<&str>,
    gpu_model: Option<&str>,
) {
    if let Some(region) = region {
        v.check(
            config.region(region).is_some(),
            "region",
            unknown_value("region", region, config.regions.iter().map(|r| &r.name)),
        );
    }
    if let Some(model) = gpu_model {
        v.check(
            config.gpu_model(model).is_some(),
            "gpu_model",
            unknown_value(
                "GPU model",
                model,
                config.gpu_models.iter().map(|m| &m.name),
            ),
        );
    }
}

/// [`check_catalog_filters`] on its own.
pub fn catalog_filters(
    config: &Config,
    region: Option<&str>,
    gpu_model: Option<&str>,
) -> Result<(), Error> {
    let mut v = Validator::new();
    check_catalog_filters(&mut v, config, region, gpu_model);
    v.finish()
}

/// A name the catalog does not have, said with the names it has.
pub fn unknown_value<'a>(
    what: &str,
    value: &str,
    valid: impl Iterator<Item = &'a String>,
) -> String {
    let valid: Vec<&str> = valid.map(String::as_str).collect();
    format!(
        "Unknown {what} '{value}'. Valid values: {}",
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

/// Unicode's format characters (general category Cf): invisible, and some (U+202E, RIGHT-TO-LEFT
/// OVERRIDE) reorder the text around them, so `a@x.io\u{202e}` would show as another address.
pub fn is_format_char(c: char) -> bool {
    matches!(
        u32::from(c),
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// The format characters that change the direction of text (bidirectional marks, embeddings,
/// overrides and isolates): text holding them can read as something it is not.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        u32::from(c),
        0x61C | 0x200E | 0x200F | 0x202A..=0x202E | 0x2066..=0x2069
    )
}

/// Free text (a description, an address line, a note) holds no control characters: they would move
/// the cursor, clear the screen or retitle the window of whoever reads it in a terminal. A description
/// may keep its line breaks (`\n`, or `\r\n` as Windows and HTML forms write them; a lone `\r` moves
/// the cursor back over the line) and tabs (`lines`). Nor does it hold bidirectional controls, which
/// reorder what is shown (other format characters, such as the joiner of emoji sequences, are kept).
pub fn check_plain_text(v: &mut Validator, field: &str, value: &str, lines: bool) {
    let line_break = |at: usize, c: char| {
        c == '\n' || c == '\t' || (c == '\r' && value[at + 1..].starts_with('\n'))
    };
    let control = value
        .char_indices()
        .find(|&(at, c)| c.is_control() && !(lines && line_break(at, c)))
        .map(|(_, c)| c);
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
    } else if let Some(c) = value.chars().find(|&c| is_bidi_control(c)) {
        v.add(
            field,
            format!(
                "Must not contain bidirectional formatting characters such as U+{:04X}",
                u32::from(c)
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
