//! AI chat: models, completions (whole or streamed) and usage.

use barrack_api::ai::{
    AiModelList, ChatCompletionChunk, ChatCompletionsRequest, ChatCompletionsResponse,
    UsageHistory, UsageHistoryQuery, UsageSummary, UsageSummaryQuery,
};
use barrack_api::{Envelope, ErrorResponse};

use crate::{Client, ClientError, Result, with_query};

impl Client {
    pub async fn ai_models(&self) -> Result<Envelope<AiModelList>> {
        self.get("/api/ai/models/").await
    }

    /// A whole reply (`stream` is turned off).
    pub async fn ai_chat(
        &self,
        request: &ChatCompletionsRequest,
    ) -> Result<Envelope<ChatCompletionsResponse>> {
        let request = ChatCompletionsRequest {
            stream: None,
            stream_options: None,
            ..request.clone()
        };
        self.post("/api/ai/chat/", &request).await
    }

    /// A streamed reply: `on_chunk` sees every chunk as it arrives; the last carries the usage.
    pub async fn ai_chat_stream(
        &self,
        request: &ChatCompletionsRequest,
        mut on_chunk: impl FnMut(&ChatCompletionChunk),
    ) -> Result<()> {
        let request = ChatCompletionsRequest {
            stream: Some(true),
            stream_options: Some(barrack_api::ai::StreamOptions {
                include_usage: Some(true),
            }),
            ..request.clone()
        };
        let mut call = self
            .http
            .post(format!("{}/api/ai/chat/", self.base_url))
            .json(&request);
        if let Some(key) = &self.api_key {
            call = call.header("X-API-Key", key);
        } else if let Some(token) = &self.bearer {
            call = call.bearer_auth(token);
        }
        let mut response = call.send().await.map_err(ClientError::Transport)?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let text = response.text().await.map_err(ClientError::Transport)?;
            return Err(api_error(status, &text));
        }
        let mut buffer = Vec::new();
        while let Some(bytes) = response.chunk().await.map_err(ClientError::Transport)? {
            buffer.extend_from_slice(&bytes);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(data) = line.trim().strip_prefix("data:").map(str::trim) else {
                    continue;
                };
                if data == "[DONE]" {
                    return Ok(());
                }
                match serde_json::from_str::<ChatCompletionChunk>(data) {
                    Ok(chunk) => on_chunk(&chunk),
                    Err(_) => return Err(api_error(status, data)),
                }
            }
        }
        Err(ClientError::Decode {
            status,
            message: "the stream ended before [DONE]".into(),
            body: String::new(),
        })
    }

    pub async fn ai_usage_summary(
        &self,
        query: &UsageSummaryQuery,
    ) -> Result<Envelope<UsageSummary>> {
        self.get(&with_query("/api/ai/usage/summary/", query)).await
    }

    pub async fn ai_usage_history(
        &self,
        query: &UsageHistoryQuery,
    ) -> Result<Envelope<UsageHistory>> {
        self.get(&with_query("/api/ai/usage/history/", query)).await
    }
}

/// The error envelope in `text`, as [`ClientError::Api`].
pub(crate) fn api_error(status: u16, text: &str) -> ClientError {
    match serde_json::from_str::<ErrorResponse>(text) {
        Ok(e) => ClientError::Api {
            status,
            code: e.code,
            message: e.message,
            errors: e.errors.unwrap_or_default(),
            request_id: e.request_id,
        },
        Err(_) => ClientError::Decode {
            status,
            message: "not the error envelope".into(),
            body: text.to_string(),
        },
    }
}
