//! What can go wrong, how it is reported, and the exit code each kind of failure gets, so scripts can tell
//! "fix your input" from "top up your balance" without parsing messages.

use std::fmt;

use barrack_client::ClientError;

/// Exit codes; documented in the top command's `--help` by [`EXIT_CODES_HELP`].
pub mod exit {
    pub const OTHER: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const AUTH: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    pub const CONFLICT: u8 = 5;
    pub const VALIDATION: u8 = 6;
    pub const PAYMENT: u8 = 7;
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  server error, network failure, or any other error
  2  usage error (bad command line or input)
  3  authentication or permission (HTTP 401, 403)
  4  not found (HTTP 404)
  5  conflict (HTTP 409)
  6  validation error (HTTP 400, 413)
  7  insufficient balance or GPU stock (HTTP 402, 503)
A command given several ids prints what it did on stdout, then what failed on stderr, and exits with
the code of the failure (4 for ids not found).";

#[derive(Debug)]
pub enum CliError {
    /// The API call failed; `hint` says what the user can do about it. Boxed: it is large and rare.
    Api {
        error: Box<ClientError>,
        hint: Option<String>,
    },
    /// Input the command line could not express as a rule (exit 2).
    Usage(String),
    /// Something named on the command line does not exist, found out without an API error (exit 4).
    NotFound(String),
    /// Anything else: the config file, the terminal, an unexpected answer.
    Other(String),
}

impl CliError {
    /// A batch's ids that the account has none of (exit 4), e.g. "scripts not found: a, b".
    pub fn ids_not_found(kind: &str, ids: &[String]) -> CliError {
        let kind = if ids.len() == 1 {
            kind.to_string()
        } else {
            format!("{kind}s")
        };
        CliError::NotFound(format!("{kind} not found: {}", ids.join(", ")))
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api { .. } => match self.status() {
                Some(401 | 403) => exit::AUTH,
                Some(404) => exit::NOT_FOUND,
                Some(409) => exit::CONFLICT,
                Some(400 | 413) => exit::VALIDATION,
                Some(402 | 503) => exit::PAYMENT,
                _ => exit::OTHER,
            },
            CliError::Usage(_) => exit::USAGE,
            CliError::NotFound(_) => exit::NOT_FOUND,
            CliError::Other(_) => exit::OTHER,
        }
    }

    /// The HTTP status, when the API answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            CliError::Api { error, .. } => error.status(),
            _ => None,
        }
    }

    /// The same error with a suggestion printed under it.
    pub fn with_hint(self, text: impl Into<String>) -> CliError {
        match self {
            CliError::Api { error, .. } => CliError::Api {
                error,
                hint: Some(text.into()),
            },
            other => other,
        }
    }
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> CliError {
        CliError::Api {
            error: Box::new(error),
            hint: None,
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> CliError {
        CliError::Other(error.to_string())
    }
}

/// The message for stderr: the API's message, then one `  field: message` line per field error.
impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Api { error, hint } => {
                match error.as_ref() {
                    ClientError::Api {
                        status,
                        code,
                        message,
                        errors,
                        request_id,
                    } => {
                        write!(
                            f,
                            "error: {message} ({code}, HTTP {status}, request {request_id})"
                        )?;
                        for (field, messages) in errors {
                            for message in messages {
                                write!(f, "\n  {field}: {message}")?;
                            }
                        }
                    }
                    ClientError::Transport(source) => {
                        // The innermost cause says what happened ("Connection refused"); the layers
                        // above it only repeat that a request failed.
                        let mut cause: &dyn std::error::Error = source;
                        while let Some(inner) = cause.source() {
                            cause = inner;
                        }
                        match source.url() {
                            Some(url) => write!(f, "error: cannot reach {url}: {cause}")?,
                            None => write!(f, "error: cannot reach the API: {cause}")?,
                        }
                    }
                    other => write!(f, "error: {other}")?,
                }
                if let Some(hint) = hint {
                    write!(f, "\nhint: {hint}")?;
                }
                Ok(())
            }
            CliError::Usage(message) | CliError::NotFound(message) | CliError::Other(message) => {
                write!(f, "error: {message}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> CliError {
        CliError::from(ClientError::Api {
            status,
            code: "VALIDATION_ERROR".into(),
            message: "Invalid request data".into(),
            errors: [(
                "gpu_model".to_string(),
                vec!["Unknown GPU model".to_string()],
            )]
            .into(),
            request_id: "abcd1234".into(),
        })
    }

    #[test]
    fn statuses_map_to_documented_exit_codes() {
        let codes: Vec<(u16, u8)> = [400, 401, 402, 403, 404, 409, 413, 429, 500, 503]
            .into_iter()
            .map(|s| (s, api(s).exit_code()))
            .collect();
        assert_eq!(
            codes,
            [
                (400, 6),
                (401, 3),
                (402, 7),
                (403, 3),
                (404, 4),
                (409, 5),
                (413, 6),
                (429, 1),
                (500, 1),
                (503, 7)
            ]
        );
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
    }

    #[test]
    fn report_lists_each_field_error() {
        let text = api(400).with_hint("check the model").to_string();
        assert_eq!(
            text,
            "error: Invalid request data (VALIDATION_ERROR, HTTP 400, request abcd1234)\n  \
             gpu_model: Unknown GPU model\nhint: check the model"
        );
    }
}
