//! The `openai` model backend: calls are passed to any OpenAI-compatible server (vLLM, llama.cpp's
//! server, Ollama, TGI, another Barrack). A streamed call goes up as a stream, with the timeout on the
//! answer and on each next part; a call asked whole goes up whole (no per-token framing on either side),
//! with the timeout on the whole reply. Usage is the upstream's (`usage`, with
//! `stream_options.include_usage` for streams); when it sends none the gateway counts the delivered text
//! with its tokenizer.

use std::collections::VecDeque;
use std::time::Duration;

use barrack_api::ai::ChatMessage;
use barrack_core::ai::backend::{
    BackendError, BackendEvent, BackendReply, BackendRequest, BackendStream, BackendUsage,
    ModelBackend, read_to_end,
};
use barrack_core::ai::config::AiModelConfig;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

pub struct OpenAiBackend {
    client: reqwest::Client,
    /// Parsed once: every call is sent to it.
    url: reqwest::Url,
    api_key: Option<String>,
    timeout: Duration,
}

impl OpenAiBackend {
    pub fn new(model: &AiModelConfig, timeout: Duration) -> anyhow::Result<OpenAiBackend> {
        let base = model
            .base_url
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("AI model '{}' has no base_url", model.id))?;
        crate::webhook_sender::install_crypto_provider();
        Ok(OpenAiBackend {
            // Redirects are not followed: an API call answered with a 3xx is not answered (a 502), and
            // the upstream's key is never sent on to another address.
            client: reqwest::Client::builder()
                .connect_timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            url: reqwest::Url::parse(&format!("{}/chat/completions", base.trim_end_matches('/')))
                .map_err(|e| anyhow::anyhow!("base_url is not a valid URL: {e}"))?,
            api_key: model.api_key()?,
            timeout,
        })
    }
}

enum Phase {
    Request(BoxStream<'static, Result<reqwest::Response, BackendError>>),
    Body(BoxStream<'static, reqwest::Result<axum::body::Bytes>>),
    Ended,
}

struct Reader {
    phase: Phase,
    timeout: Duration,
    buffer: Vec<u8>,
    queue: VecDeque<Result<BackendEvent, BackendError>>,
    finish_reason: Option<String>,
    usage: Option<BackendUsage>,
}

/// The call as the upstream is asked it: streamed with the usage at the end, or whole. Written straight
/// from the request, with no JSON tree in between.
#[derive(serde::Serialize)]
struct UpstreamRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    max_tokens: u32,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
}

#[derive(serde::Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl OpenAiBackend {
    fn call(&self, request: &BackendRequest, stream: bool) -> reqwest::RequestBuilder {
        let body = serde_json::to_vec(&UpstreamRequest {
            model: &request.model,
            messages: &request.messages,
            max_tokens: request.max_tokens,
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
            temperature: request.temperature,
            top_p: request.top_p,
            stop: &request.stop,
            seed: request.seed,
        })
        .unwrap_or_default();
        let mut call = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        call
    }
}

impl ModelBackend for OpenAiBackend {
    fn stream(&self, request: BackendRequest) -> BackendStream {
        let call = self.call(&request, true);
        let send = futures::stream::once(async move { call.send().await.map_err(transport) });
        read_stream(Phase::Request(send.boxed()), self.timeout)
    }

    fn complete(
        &self,
        request: BackendRequest,
    ) -> BoxFuture<'static, Result<BackendReply, BackendError>> {
        let call = self.call(&request, false);
        let timeout = self.timeout;
        async move {
            // The timeout covers the whole reply: the upstream sends nothing until it has generated it.
            match tokio::time::timeout(timeout, whole_reply(call, timeout)).await {
                Ok(result) => result,
                Err(_) => Err(timed_out()),
            }
        }
        .boxed()
    }
}

/// A call asked whole, read to its end. An upstream that streams anyway (`text/event-stream`) is read as
/// a stream.
async fn whole_reply(
    call: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<BackendReply, BackendError> {
    let response = call.send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(BackendError::Unavailable(format!(
            "The upstream answered {status}: {}",
            upstream_message(&text)
        )));
    }
    let streamed = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if streamed {
        return read_to_end(read_stream(
            Phase::Body(response.bytes_stream().boxed()),
            timeout,
        ))
        .await;
    }
    let body = response.bytes().await.map_err(transport)?;
    if let Ok(reply) = serde_json::from_slice::<Completion>(&body)
        && reply.error.is_none()
    {
        let choice = reply.choices.into_iter().next().ok_or_else(|| {
            BackendError::Unavailable("The upstream answered with no choice".into())
        })?;
        return Ok(BackendReply {
            content: choice.message.content.unwrap_or_default(),
            finish_reason: choice.finish_reason.unwrap_or_else(|| "stop".into()),
            usage: reply.usage.map(|u| BackendUsage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
            }),
        });
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v.get("error").is_some() => Err(BackendError::Unavailable(format!(
            "The upstream failed: {}",
            error_message(&v["error"])
        ))),
        _ => Err(BackendError::Unavailable(
            "The upstream answered with a reply that is not a chat completion".into(),
        )),
    }
}

/// The events of an upstream's stream, from `phase` on.
fn read_stream(phase: Phase, timeout: Duration) -> BackendStream {
    let reader = Reader {
        phase,
        timeout,
        buffer: Vec::new(),
        queue: VecDeque::new(),
        finish_reason: None,
        usage: None,
    };
    futures::stream::unfold(reader, |mut r| async move {
        loop {
            if let Some(event) = r.queue.pop_front() {
                if event.is_err() {
                    r.phase = Phase::Ended;
                    r.queue.clear();
                }
                return Some((event, r));
            }
            match &mut r.phase {
                Phase::Ended => return None,
                Phase::Request(send) => {
                    let answer = tokio::time::timeout(r.timeout, send.next()).await;
                    let response = match answer {
                        Err(_) => Err(timed_out()),
                        Ok(None) => Err(BackendError::Unavailable(
                            "The upstream did not answer".into(),
                        )),
                        Ok(Some(result)) => result,
                    };
                    match response {
                        Ok(response) if response.status().is_success() => {
                            r.phase = Phase::Body(response.bytes_stream().boxed());
                        }
                        Ok(response) => {
                            let status = response.status();
                            let text = response.text().await.unwrap_or_default();
                            r.queue.push_back(Err(BackendError::Unavailable(format!(
                                "The upstream answered {status}: {}",
                                upstream_message(&text)
                            ))));
                        }
                        Err(e) => r.queue.push_back(Err(e)),
                    }
                }
                Phase::Body(body) => {
                    match tokio::time::timeout(r.timeout, body.next()).await {
                        Err(_) => r.queue.push_back(Err(timed_out())),
                        Ok(Some(Err(e))) => r.queue.push_back(Err(transport(e))),
                        Ok(Some(Ok(bytes))) => {
                            r.buffer.extend_from_slice(&bytes);
                            r.parse_lines();
                        }
                        Ok(None) => {
                            // The body ended without `data: [DONE]`.
                            r.queue.push_back(Err(BackendError::Unavailable(
                                "The upstream closed the stream before the reply was complete"
                                    .into(),
                            )));
                        }
                    }
                }
            }
        }
    })
    .boxed()
}

impl Reader {
    /// Turns every complete `data:` line of the buffer into events. The lines are read in place and the
    /// buffer is shifted once, after the last complete one.
    fn parse_lines(&mut self) {
        let mut start = 0;
        while let Some(length) = self.buffer[start..].iter().position(|b| *b == b'\n') {
            let end = start + length;
            let line = std::mem::take(&mut self.buffer);
            let done = self.parse_line(&line[start..end]);
            self.buffer = line;
            start = end + 1;
            if done {
                break;
            }
        }
        self.buffer.drain(..start);
    }

    /// One line of the stream; true when it ends the stream.
    fn parse_line(&mut self, line: &[u8]) -> bool {
        // Checked as UTF-8 the fast way; only a line that is not gets its bad bytes replaced.
        let line = match std::str::from_utf8(line) {
            Ok(line) => std::borrow::Cow::Borrowed(line),
            Err(_) => String::from_utf8_lossy(line),
        };
        let Some(data) = line.trim().strip_prefix("data:") else {
            return false;
        };
        let data = data.trim();
        if data == "[DONE]" {
            self.queue.push_back(Ok(BackendEvent::Done {
                finish_reason: self.finish_reason.take().unwrap_or_else(|| "stop".into()),
                usage: self.usage,
            }));
            self.phase = Phase::Ended;
            return true;
        }
        // A chunk comes with every token, so the parts the gateway reads are parsed typed; one that does
        // not parse so (an `error`, a field of another type) is read as any JSON.
        if let Ok(part) = serde_json::from_str::<Part>(data)
            && part.error.is_none()
        {
            if let Some(choice) = part.choices.first() {
                if let Some(text) = &choice.delta.content
                    && !text.is_empty()
                {
                    self.queue.push_back(Ok(BackendEvent::Delta(text.clone())));
                }
                if let Some(reason) = &choice.finish_reason {
                    self.finish_reason = Some(reason.clone());
                }
            }
            if let Some(usage) = part.usage {
                self.usage = Some(BackendUsage {
                    input_tokens: usage.prompt_tokens,
                    output_tokens: usage.completion_tokens,
                });
            }
            return false;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            self.queue.push_back(Err(BackendError::Unavailable(
                "The upstream sent a part that is not JSON".into(),
            )));
            return true;
        };
        if let Some(error) = chunk.get("error") {
            self.queue.push_back(Err(BackendError::Unavailable(format!(
                "The upstream failed: {}",
                error_message(error)
            ))));
            return true;
        }
        if let Some(choice) = chunk["choices"].get(0) {
            if let Some(text) = choice["delta"]["content"].as_str()
                && !text.is_empty()
            {
                self.queue
                    .push_back(Ok(BackendEvent::Delta(text.to_string())));
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish_reason = Some(reason.to_string());
            }
        }
        if let (Some(input), Some(output)) = (
            chunk["usage"]["prompt_tokens"].as_u64(),
            chunk["usage"]["completion_tokens"].as_u64(),
        ) {
            self.usage = Some(BackendUsage {
                input_tokens: input,
                output_tokens: output,
            });
        }
        false
    }
}

/// A `chat.completion.chunk` as the gateway reads it; other fields are skipped.
#[derive(serde::Deserialize)]
struct Part {
    #[serde(default)]
    choices: Vec<PartChoice>,
    #[serde(default)]
    usage: Option<PartUsage>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct PartChoice {
    #[serde(default)]
    delta: PartDelta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct PartDelta {
    #[serde(default)]
    content: Option<String>,
}

/// A `chat.completion` as the gateway reads it; other fields are skipped.
#[derive(serde::Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<CompletionChoice>,
    #[serde(default)]
    usage: Option<PartUsage>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct CompletionChoice {
    message: CompletionMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(serde::Deserialize)]
struct CompletionMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(serde::Deserialize)]
struct PartUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

fn timed_out() -> BackendError {
    BackendError::Timeout("The upstream did not answer in time".into())
}

fn transport(e: reqwest::Error) -> BackendError {
    if e.is_timeout() {
        timed_out()
    } else {
        BackendError::Unavailable("The upstream could not be reached or broke off".into())
    }
}

/// The message of an upstream's error body: OpenAI's `{"error": {"message"}}`, Barrack's `{"message"}`,
/// or the start of the text.
fn upstream_message(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v.get("error").is_some() => error_message(&v["error"]),
        Ok(v) if v["message"].is_string() => v["message"].as_str().unwrap_or("").to_string(),
        _ => text.chars().take(200).collect(),
    }
}

fn error_message(error: &Value) -> String {
    error["message"]
        .as_str()
        .or(error.as_str())
        .unwrap_or("unknown error")
        .to_string()
}
