//! Command groups, a module each, and what they share: the connection, argument parsers and prompts.
//!
//! A group is a clap `Subcommand` enum with a `run` function returning an [`Output`]; adding one means a
//! module here, a variant in [`crate::Command`] and its rows in [`crate::OPERATIONS`].

pub mod account;
pub mod admin;
pub mod ai;
pub mod api_keys;
pub mod balance;
pub mod billing;
pub mod catalog;
pub mod completions;
pub mod configure;
pub mod deposits;
pub mod events;
pub mod firewalls;
pub mod health;
pub mod images;
pub mod instances;
pub mod labels;
pub mod login;
pub mod scripts;
mod security_rules;
pub mod snapshots;
pub mod ssh_keys;
pub mod transactions;
pub mod volumes;
pub mod webhooks;

use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};

use std::path::Path;

use barrack_api::ledger::TransactionType;
use barrack_api::{Currency, PageQuery, Tier};
use barrack_client::{Client, ClientError};
use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::config::Settings;
use crate::error::CliError;
pub use crate::output::Output;

/// What API commands run with: the resolved settings and a client built from them.
pub struct Ctx {
    pub settings: Settings,
    pub client: Client,
    /// Whether `--wait` may draw progress on a terminal: not with `-q` or `-o json`, whose output is for
    /// programs.
    pub progress: bool,
}

impl Ctx {
    pub fn new(settings: Settings) -> Result<Ctx, CliError> {
        let mut builder = Client::builder(&settings.api_url);
        if let Some(key) = &settings.api_key {
            builder = builder.api_key(key);
        }
        let client = builder
            .build()
            .map_err(|e| CliError::Other(e.to_string()))?;
        Ok(Ctx {
            settings,
            client,
            progress: true,
        })
    }

    /// Awaits an API call made with the configured key, adding what the user can do about the usual
    /// failures.
    pub async fn call<T>(
        &self,
        request: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, CliError> {
        self.explain(request.await, true)
    }

    /// The same for calls made without the key (sign-up, sign-in), whose 401s are not the key's fault.
    pub async fn call_anonymous<T>(
        &self,
        request: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, CliError> {
        self.explain(request.await, false)
    }

    fn explain<T>(&self, result: Result<T, ClientError>, keyed: bool) -> Result<T, CliError> {
        result.map_err(|error| {
            let hint = match &error {
                ClientError::Api { status: 401, .. } if keyed => Some(self.settings.auth_hint()),
                ClientError::Transport(_) => Some(format!(
                    "is the server running at {}? Set the URL with `barrack configure` or BARRACK_API_URL",
                    self.settings.api_url
                )),
                _ => None,
            };
            CliError::Api {
                error: Box::new(error),
                hint,
            }
        })
    }
}

/// Parses one of a fixed set of API words, so `--help` and completions list them.
fn choice<T: Clone + Send + Sync + 'static>(
    all: &[T],
    name: fn(&T) -> &'static str,
) -> impl TypedValueParser<Value = T> {
    let all = all.to_vec();
    PossibleValuesParser::new(all.iter().map(name).collect::<Vec<_>>()).map(move |text| {
        all.iter()
            .find(|v| name(v) == text)
            .cloned()
            .expect("clap accepted only listed values")
    })
}

pub fn tier_parser() -> impl TypedValueParser<Value = Tier> {
    choice(&Tier::ALL, |t| t.as_str())
}

pub fn currency_parser() -> impl TypedValueParser<Value = Currency> {
    choice(&Currency::ALL, |c| c.as_str())
}

pub fn transaction_type_parser() -> impl TypedValueParser<Value = TransactionType> {
    use TransactionType::*;
    choice(&[Deposit, Usage, Grant, Refund, Adjustment], |t| t.as_str())
}

/// `--page` and `--limit` of list commands.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct PageArgs {
    /// Page number, from 1
    #[arg(long)]
    page: Option<u32>,
    /// Items per page, 1 to 100 [default: 20]
    #[arg(long)]
    limit: Option<u32>,
}

impl PageArgs {
    pub fn query(self) -> PageQuery {
        PageQuery {
            page: self.page,
            limit: self.limit,
        }
    }
}

/// A text file named on the command line; one that cannot be read is bad input (exit 2), not a failure.
pub fn read_input_file(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))
}

/// Asks a question on stderr and reads one line of stdin, so answers can be piped in without a terminal.
/// An empty answer (or end of input) takes `default`.
pub fn ask(question: &str, default: Option<&str>) -> Result<String, CliError> {
    match default {
        Some(d) if !d.is_empty() => eprint!("{question} [{d}]: "),
        _ => eprint!("{question}: "),
    }
    std::io::stderr().flush()?;
    let answer = read_line()?;
    Ok(match answer.trim() {
        "" => default.unwrap_or_default().to_string(),
        text => text.to_string(),
    })
}

/// Reads a secret: without echo on a terminal, else the next line of stdin. Empty means "none given".
pub fn ask_secret(question: &str) -> Result<String, CliError> {
    let answer = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("{question}: "))?
    } else {
        eprint!("{question}: ");
        read_line()?
    };
    Ok(answer.trim_end_matches(['\r', '\n']).to_string())
}

/// A password for the API: secrets never go on the command line, where other users can see them.
pub fn read_password() -> Result<String, CliError> {
    match ask_secret("Password")? {
        p if p.is_empty() => Err(CliError::Usage(
            "a password is required (type it, or pipe it on stdin)".into(),
        )),
        p => Ok(p),
    }
}

fn read_line() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if !std::io::stdin().is_terminal() {
        // Answers read from a pipe are not echoed; end the prompt's line.
        eprintln!();
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// A table of one page, with where the next page is when there is one. An empty page past the end says
/// so, with how many there are, rather than the table's "No instances.", which would be untrue.
pub fn paged(table: crate::output::Table, page: &barrack_api::Pagination) -> crate::output::View {
    use crate::output::View;
    if table.is_empty() && page.total > 0 {
        let pages = match page.total_pages {
            1 => "page 1".to_string(),
            n => format!("pages 1 to {n}"),
        };
        return View::Text(format!(
            "Page {} is past the end: {} in all, on {pages}",
            page.page, page.total
        ));
    }
    if page.page >= page.total_pages {
        return View::Table(table);
    }
    View::Sections(vec![
        View::Table(table),
        View::Text(format!(
            "Page {} of {} ({} in all): see the next with --page {}",
            page.page,
            page.total_pages,
            page.total,
            page.page + 1
        )),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Table;

    fn page(page: u32, total: u64, limit: u32) -> barrack_api::Pagination {
        barrack_api::Pagination {
            page,
            limit,
            total,
            total_pages: total.div_ceil(u64::from(limit)) as u32,
        }
    }

    fn table(rows: usize) -> Table {
        let mut table = Table::new(&["ID"], "No jobs.");
        for i in 0..rows {
            table.row([format!("job-{i}")]);
        }
        table
    }

    #[test]
    fn a_page_past_the_end_says_so_with_how_many_there_are() {
        assert_eq!(
            paged(table(0), &page(2, 1, 20)).to_string(),
            "Page 2 is past the end: 1 in all, on page 1\n"
        );
        assert_eq!(
            paged(table(0), &page(99, 45, 20)).to_string(),
            "Page 99 is past the end: 45 in all, on pages 1 to 3\n"
        );
        // None at all: the table's own words.
        assert_eq!(paged(table(0), &page(1, 0, 20)).to_string(), "No jobs.\n");
        assert_eq!(paged(table(0), &page(3, 0, 20)).to_string(), "No jobs.\n");
        assert_eq!(
            paged(table(1), &page(1, 3, 1)).to_string(),
            "ID\njob-0\n\nPage 1 of 3 (3 in all): see the next with --page 2\n"
        );
        assert_eq!(paged(table(1), &page(3, 3, 1)).to_string(), "ID\njob-0\n");
    }
}
