//! AI chat: requests and answers in OpenAI's chat-completions shape (what its SDKs send and read), the
//! model catalog with prices per million tokens, and usage.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::catalog::{Prices, PricesSchema};
use crate::{Currency, Pagination};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", rename_all = "lowercase")]
pub enum ChatRole {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

/// One part of a message's content; only text parts are understood.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContentPart {
    /// `text`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A message's content: a string, or a list of text parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// The text, parts joined; `None` when a part is not text.
    pub fn text(&self) -> Option<String> {
        match self {
            MessageContent::Text(t) => Some(t.clone()),
            MessageContent::Parts(parts) => parts
                .iter()
                .map(|p| (p.kind == "text").then(|| p.text.clone()).flatten())
                .collect::<Option<Vec<_>>>()
                .map(|texts| texts.concat()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatMessage {
    pub role: ChatRole,
    /// May be null only on assistant messages.
    #[serde(default)]
    pub content: Option<MessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Where a reply must stop: one sequence or up to four.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StopSequences {
    One(String),
    Many(Vec<String>),
}

impl StopSequences {
    /// `"stop": ""` is an optional field left empty: absent, as the API's rule for `""` says.
    fn blank_as_none<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<StopSequences>, D::Error> {
        Ok(match Option::<StopSequences>::deserialize(d)? {
            Some(StopSequences::One(s)) if s.is_empty() => None,
            other => other,
        })
    }

    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StopSequences::One(s) => vec![s.clone()],
            StopSequences::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// Send a last chunk with the call's usage (and no choices).
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// `POST /api/ai/chat/` and `POST /v1/chat/completions`: OpenAI's chat-completions request. Fields not
/// listed are ignored, as OpenAI-compatible servers do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionsRequest {
    /// A model id of `GET /api/ai/models/`.
    pub model: String,
    /// The conversation so far, at least one message.
    pub messages: Vec<ChatMessage>,
    /// Most tokens the reply may have (default: what the context leaves, up to the model's limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The newer name of `max_tokens`; wins when both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Greater than 0, at most 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Choices to generate: only 1 is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Answer as server-sent events (`data: {chunk}` ... `data: [DONE]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::body::optional_object"
    )]
    pub stream_options: Option<StreamOptions>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "StopSequences::blank_as_none"
    )]
    pub stop: Option<StopSequences>,
    /// Makes a reply reproducible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssistantMessage {
    /// `assistant`.
    pub role: ChatRole,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    /// `stop` (natural end or a stop sequence) or `length` (`max_tokens` reached).
    pub finish_reason: String,
    /// Always null: log probabilities are not returned.
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<serde_json::Value>,
}

/// Tokens of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// What a call cost (Barrack's addition; absent on `/v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatBilling {
    /// The `AITransaction` of the call.
    pub ai_transaction_id: String,
    /// The ledger entry that charged it; absent when it cost nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_transaction_id: Option<String>,
    #[serde(with = "crate::decimal")]
    #[schema(value_type = f64)]
    pub cost: Decimal,
    pub currency: Currency,
}

/// OpenAI's chat-completion object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionsResponse {
    /// `chatcmpl-` and the request id.
    pub id: String,
    /// `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: ChatUsage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<ChatBilling>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChunkDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<ChatRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: ChunkDelta,
    pub finish_reason: Option<String>,
}

/// One server-sent event of a streamed call (`chat.completion.chunk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// Only on the last chunk, when `stream_options.include_usage` asked for it.
    #[serde(default)]
    pub usage: Option<ChatUsage>,
}

/// Prices of a model per million tokens, in each currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AiModelPrices {
    #[schema(value_type = PricesSchema)]
    pub input: Prices,
    #[schema(value_type = PricesSchema)]
    pub output: Prices,
    /// `per million tokens`.
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AiModel {
    pub id: String,
    pub description: String,
    /// Most tokens of prompt and reply together.
    pub context_length: u32,
    /// Most tokens of one reply.
    pub max_output_tokens: u32,
    pub prices: AiModelPrices,
}

/// `GET /api/ai/models/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AiModelList {
    pub models: Vec<AiModel>,
}

/// `GET /v1/models`: OpenAI's list of models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OpenAiModelList {
    /// `list`.
    pub object: String,
    pub data: Vec<OpenAiModel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OpenAiModel {
    pub id: String,
    /// `model`.
    pub object: String,
    pub created: i64,
    pub owned_by: String,
}

/// `GET /api/ai/usage/summary/`: ISO-8601 times, `to` excluded.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageSummaryQuery {
    /// Start of the range (ISO-8601, included; default: 30 days before `to`).
    pub from: Option<String>,
    /// End of the range (ISO-8601, excluded; default: now).
    pub to: Option<String>,
}

/// `GET /api/ai/usage/history/`: ISO-8601 times, `to` excluded, and the page.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageHistoryQuery {
    /// Calls from this time on (ISO-8601, included).
    pub from: Option<String>,
    /// Calls before this time (ISO-8601, excluded).
    pub to: Option<String>,
    /// 1-based page (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    pub limit: Option<u32>,
}

/// Totals of one model (or of all of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelUsage {
    /// The model; absent on the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    #[serde(with = "crate::decimal")]
    #[schema(value_type = f64)]
    pub cost: Decimal,
}

/// `GET /api/ai/usage/summary/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageSummary {
    pub from: String,
    pub to: String,
    /// The account's currency; calls are charged in it.
    pub currency: Currency,
    pub models: Vec<ModelUsage>,
    pub total: ModelUsage,
}

/// One AI call as charged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AiTransaction {
    /// `BRK-XXXXXXQ`.
    pub id: String,
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    #[serde(with = "crate::decimal")]
    #[schema(value_type = f64)]
    pub cost: Decimal,
    pub currency: Currency,
    /// `completed`, `cancelled` (the client stopped reading a stream) or `failed` (the model backend did);
    /// only delivered tokens are charged.
    pub status: String,
    /// The request id of the call.
    pub request_id: String,
    pub stream: bool,
    /// The ledger entry that charged it; absent when it cost nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_transaction_id: Option<String>,
    pub created_at: String,
}

/// `GET /api/ai/usage/history/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageHistory {
    pub transactions: Vec<AiTransaction>,
    pub pagination: Pagination,
}

crate::string_enum!(ChatRole);
