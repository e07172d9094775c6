//! Model backends: what answers a model's calls. A backend streams a reply as text deltas and ends with
//! why it stopped and, when it knows, the call's token counts, or answers it whole; the chat service does
//! the billing.

use barrack_api::ai::ChatMessage;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

/// A call as a backend sees it: validated, with its limits resolved.
#[derive(Debug, Clone)]
pub struct BackendRequest {
    /// The model's name at the backend.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    /// Most tokens of the reply.
    pub max_tokens: u32,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    /// Tokens of the prompt, as counted by the gateway.
    pub input_tokens: u64,
}

/// Token counts a backend reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackendEvent {
    /// The next piece of the reply.
    Delta(String),
    /// The reply is complete.
    Done {
        /// `stop` or `length`.
        finish_reason: String,
        usage: Option<BackendUsage>,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// The backend could not be reached, refused the call, or broke off (502).
    #[error("{0}")]
    Unavailable(String),
    /// The backend did not answer in time (504).
    #[error("{0}")]
    Timeout(String),
}

pub type BackendStream = BoxStream<'static, Result<BackendEvent, BackendError>>;

/// A reply answered whole.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendReply {
    pub content: String,
    /// `stop` or `length`.
    pub finish_reason: String,
    pub usage: Option<BackendUsage>,
}

/// An engine that answers calls of one or more models.
pub trait ModelBackend: Send + Sync {
    /// Starts a call. The stream yields deltas and ends with `Done`, or with an error; dropping it
    /// abandons the call.
    fn stream(&self, request: BackendRequest) -> BackendStream;

    /// Runs a call to its end and answers with the whole reply. By default the stream, read to its end;
    /// a backend that can answer whole more cheaply does so. Dropping the future abandons the call.
    fn complete(
        &self,
        request: BackendRequest,
    ) -> BoxFuture<'static, Result<BackendReply, BackendError>> {
        read_to_end(self.stream(request)).boxed()
    }
}

/// A call's stream read to its end: the whole reply.
pub async fn read_to_end(mut events: BackendStream) -> Result<BackendReply, BackendError> {
    let mut content = String::new();
    loop {
        match events.next().await {
            Some(Ok(BackendEvent::Delta(text))) => content.push_str(&text),
            Some(Ok(BackendEvent::Done {
                finish_reason,
                usage,
            })) => {
                return Ok(BackendReply {
                    content,
                    finish_reason,
                    usage,
                });
            }
            Some(Err(e)) => return Err(e),
            None => return Err(ended_early()),
        }
    }
}

/// A stream that ended with neither `Done` nor an error.
pub fn ended_early() -> BackendError {
    BackendError::Unavailable("The model backend ended the reply before it was complete".into())
}
