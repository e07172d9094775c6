//! What a command prints: a table or fields for people, the API's JSON for programs, or ids for shell loops.

use std::fmt;
use std::io::{self, Write};

use clap::ValueEnum;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::error::CliError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned tables and fields
    Table,
    /// The API's JSON, pretty-printed
    Json,
}

/// The human form of a result.
#[derive(Debug)]
pub enum View {
    Table(Table),
    /// `label  value` lines.
    Fields(Vec<(&'static str, String)>),
    /// Sections printed one after another, separated by a blank line.
    Sections(Vec<View>),
    Text(String),
}

/// A command's result in every form it can be printed in.
#[derive(Debug)]
pub struct Output {
    /// Exactly what the API returned as `data` (or the flat body), for `-o json`; `None` for output that
    /// is not API data (a completion script) and prints the same in every format.
    json: Option<String>,
    view: View,
    /// What `-q` prints, a line each: identifiers, or the secret a script needs when the answer holds
    /// one shown only once (`api-keys create`); `None` when the result has none, and `-q` prints the
    /// human form.
    ids: Option<Vec<String>>,
    /// A remark for people (to stderr), such as "this secret is shown once".
    notice: Option<String>,
    /// What failed of a command that did part of its work (a bulk delete with ids not found): reported
    /// on stderr after the output, and the exit code is its code.
    failure: Option<CliError>,
}

impl Output {
    /// `data` is serialized with the same wire types the server used, so `-o json` is the API's JSON
    /// field for field and in the same order.
    pub fn new<T: Serialize>(data: &T, view: View) -> Output {
        Output {
            json: Some(serde_json::to_string_pretty(data).expect("wire types serialize")),
            view,
            ids: None,
            notice: None,
            failure: None,
        }
    }

    /// Text printed as it is, whatever the format.
    pub fn text(text: String) -> Output {
        Output {
            json: None,
            view: View::Text(text),
            ids: None,
            notice: None,
            failure: None,
        }
    }

    /// For commands that printed as they went (`--follow`): nothing more to print.
    pub fn nothing() -> Output {
        Output {
            json: None,
            view: View::Sections(Vec::new()),
            ids: None,
            notice: None,
            failure: None,
        }
    }

    pub fn ids(mut self, ids: impl IntoIterator<Item = impl Into<String>>) -> Output {
        self.ids = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    pub fn notice(mut self, text: impl Into<String>) -> Output {
        self.notice = Some(text.into());
        self
    }

    /// The output of what succeeded, with what failed: the command prints the output, then reports
    /// `error` and exits with its code.
    pub fn failure(mut self, error: CliError) -> Output {
        self.failure = Some(error);
        self
    }

    /// What failed, once the output is printed.
    pub fn into_failure(self) -> Option<CliError> {
        self.failure
    }

    /// The human form, as `print` writes it without `-o json` or `-q`.
    #[cfg(test)]
    pub fn human(&self) -> String {
        self.view.to_string()
    }

    pub fn print(&self, format: Format, quiet: bool) -> io::Result<()> {
        let mut out = io::stdout().lock();
        match (&self.json, &self.ids) {
            (Some(json), _) if format == Format::Json => writeln!(out, "{json}")?,
            (_, Some(ids)) if quiet => {
                for id in ids {
                    writeln!(out, "{id}")?;
                }
            }
            _ => {
                write!(out, "{}", self.view)?;
                if let Some(notice) = &self.notice {
                    eprintln!("{notice}");
                }
            }
        }
        out.flush()
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            View::Table(table) => table.fmt(f),
            View::Fields(fields) => {
                let width = fields.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
                for (label, value) in fields {
                    let value = printable(value, false);
                    writeln!(f, "{}", format!("{label:width$}  {value}").trim_end())?;
                }
                Ok(())
            }
            View::Sections(sections) => {
                for (i, section) in sections.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    section.fmt(f)?;
                }
                Ok(())
            }
            View::Text(text) if text.ends_with('\n') => f.write_str(&printable(text, true)),
            View::Text(text) => writeln!(f, "{}", printable(text, true)),
        }
    }
}

/// Columns aligned on the widest cell, two spaces apart.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    /// Printed instead of an empty table (`No API keys.`).
    empty: &'static str,
}

impl Table {
    pub fn new(headers: &[&'static str], empty: &'static str) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
            empty,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        let row: Vec<String> = cells
            .into_iter()
            .map(|cell| printable(&cell, false).into_owned())
            .collect();
        debug_assert_eq!(row.len(), self.headers.len(), "one cell per column");
        self.rows.push(row);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rows.is_empty() {
            return writeln!(f, "{}", self.empty);
        }
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let headers = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.extend(std::iter::repeat_n(
                    ' ',
                    width.saturating_sub(cell.chars().count()),
                ));
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Text from the server as a terminal should show it: control characters (an escape sequence in a
/// description would clear the screen or retitle the window) are written escaped, `\u{1b}`; line
/// breaks and tabs too, except in `lines` of text printed whole, where they are the text's own.
pub fn printable(text: &str, lines: bool) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| c.is_control() && !(lines && matches!(c, '\n' | '\t'));
    if !text.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    std::borrow::Cow::Owned(shown)
}

/// A money amount with at least two decimals (`25.00`), keeping any finer digits the API sent.
pub fn money(amount: Decimal) -> String {
    let mut amount = amount.normalize();
    if amount.scale() < 2 {
        amount.rescale(2);
    }
    amount.to_string()
}

/// An optional value, `-` when absent.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

pub fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_trims_line_ends() {
        let mut table = Table::new(&["NAME", "TIER", "LOCATION"], "No regions.");
        table.row(["CANADA-1".into(), "legacy".into(), "Canada".into()]);
        table.row(["FINLAND-10".into(), "advanced".into(), String::new()]);
        assert_eq!(
            table.to_string(),
            "NAME        TIER      LOCATION\n\
             CANADA-1    legacy    Canada\n\
             FINLAND-10  advanced\n"
        );
        assert_eq!(
            Table::new(&["ID"], "No API keys.").to_string(),
            "No API keys.\n"
        );
    }

    #[test]
    fn fields_align_labels() {
        let view = View::Fields(vec![
            ("Balance", "25.00 USD".into()),
            ("Minimum", "1.00".into()),
        ]);
        assert_eq!(view.to_string(), "Balance  25.00 USD\nMinimum  1.00\n");
    }

    #[test]
    fn control_characters_from_the_server_are_shown_escaped() {
        let mut table = Table::new(&["NAME", "DESCRIPTION"], "No firewalls.");
        table.row([
            "fw".to_string(),
            "line1\u{1b}[2J\u{7}evil\nnext".to_string(),
        ]);
        let fields = View::Fields(vec![("Description", "a\u{1b}]0;title\u{7}\tb".into())]);
        let text = View::Text("#!/bin/sh\n\techo \u{1b}[31mred\r\n".into());
        let shown = format!("{}{fields}{text}", View::Table(table));
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
            "{shown}"
        );
        assert!(
            shown.contains("line1\\u{1b}[2J\\u{7}evil\\nnext"),
            "{shown}"
        );
        assert!(shown.contains("a\\u{1b}]0;title\\u{7}\\tb"), "{shown}");
        // A script keeps its lines and indentation; only the escape and the carriage return are escaped.
        assert!(
            shown.ends_with("#!/bin/sh\n\techo \\u{1b}[31mred\\r\n"),
            "{shown}"
        );
    }

    #[test]
    fn money_shows_cents() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(money(d("25")), "25.00");
        assert_eq!(money(d("0.5")), "0.50");
        assert_eq!(money(d("9.9893")), "9.9893");
        assert_eq!(money(d("-3.100")), "-3.10");
    }
}
