use barrack_api::FieldErrors;

/// What can go wrong calling the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with its error envelope.
    #[error("{message} ({code}, HTTP {status}, request {request_id}){}", field_list(.errors))]
    Api {
        status: u16,
        code: String,
        message: String,
        errors: FieldErrors,
        request_id: String,
    },
    /// The server could not be reached, or the connection failed.
    #[error("cannot reach the API: {0}")]
    Transport(#[source] reqwest::Error),
    /// The answer was not what the API documents.
    #[error("unexpected answer (HTTP {status}): {message}")]
    Decode {
        status: u16,
        message: String,
        body: String,
    },
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Decode { status, .. } => Some(*status),
            ClientError::Transport(_) => None,
        }
    }

    /// The API's error code (`VALIDATION_ERROR`, `NOT_FOUND`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn field_errors(&self) -> Option<&FieldErrors> {
        match self {
            ClientError::Api { errors, .. } if !errors.is_empty() => Some(errors),
            _ => None,
        }
    }
}

fn field_list(errors: &FieldErrors) -> String {
    errors
        .iter()
        .map(|(field, messages)| format!("\n  {field}: {}", messages.join("; ")))
        .collect()
}
