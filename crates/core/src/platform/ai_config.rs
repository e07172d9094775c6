//! The `[ai]` section of the configuration: limits, and the models served with their backend and prices per
//! million tokens (the `ai` domain reads it as `ai::config`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::config::{ConfigError, PriceTable, check_prices, read_secret_file};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiConfig {
    /// Calls per minute per API key (or session); 0: no limit.
    pub requests_per_minute: u32,
    /// Tokens (prompt and most the reply may have) per minute per API key (or session); 0: no limit.
    pub tokens_per_minute: u32,
    /// How long an upstream may take: for a streamed call, to answer and then to send each next part; for a
    /// call asked whole, to send the whole reply (its generation included).
    pub upstream_timeout_seconds: u64,
    pub models: Vec<AiModelConfig>,
}

/// Which engine answers a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelBackendKind {
    /// The built-in simulator: seeded replies, real token counts, timed streams.
    Sim,
    /// Any OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI, a hosted API).
    Openai,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiModelConfig {
    pub id: String,
    pub description: String,
    pub backend: ModelBackendKind,
    /// Most tokens of prompt and reply together.
    pub context_length: u32,
    /// Most tokens of one reply.
    pub max_output_tokens: u32,
    pub prices: AiPriceConfig,
    /// `sim`: milliseconds before the first token.
    #[serde(default)]
    pub first_token_ms: u64,
    /// `sim`: tokens streamed per second; 0 sends them at once.
    #[serde(default)]
    pub tokens_per_second: u32,
    /// `openai`: the upstream's base URL, up to and including `/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// `openai`: a file holding the upstream's API key (sent as `Authorization: Bearer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// `openai`: the model's name upstream, when it is not `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
}

/// An upstream URL may carry credentials (`https://user:key@host/v1`): debug output shows it without them.
impl std::fmt::Debug for AiModelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let AiModelConfig {
            id,
            description,
            backend,
            context_length,
            max_output_tokens,
            prices,
            first_token_ms,
            tokens_per_second,
            base_url,
            api_key_file,
            upstream_model,
        } = self;
        f.debug_struct("AiModelConfig")
            .field("id", id)
            .field("description", description)
            .field("backend", backend)
            .field("context_length", context_length)
            .field("max_output_tokens", max_output_tokens)
            .field("prices", prices)
            .field("first_token_ms", first_token_ms)
            .field("tokens_per_second", tokens_per_second)
            .field(
                "base_url",
                &base_url.as_deref().map(barrack_store::redact_url),
            )
            .field("api_key_file", api_key_file)
            .field("upstream_model", upstream_model)
            .finish()
    }
}

/// Prices per million tokens, in every currency.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiPriceConfig {
    pub input: PriceTable,
    pub output: PriceTable,
}

impl AiConfig {
    pub fn model(&self, id: &str) -> Option<&AiModelConfig> {
        self.models.iter().find(|m| m.id == id)
    }

    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.upstream_timeout_seconds == 0 {
            return invalid("ai.upstream_timeout_seconds must be at least 1".into());
        }
        let mut ids = BTreeSet::new();
        for model in &self.models {
            let what = format!("AI model '{}'", model.id);
            if model.id.trim().is_empty() {
                return invalid("an AI model has an empty id".into());
            }
            if !ids.insert(&model.id) {
                return invalid(format!("{what} is listed twice"));
            }
            if model.context_length == 0
                || model.max_output_tokens == 0
                || model.max_output_tokens >= model.context_length
            {
                return invalid(format!(
                    "{what}: context_length and max_output_tokens must be at least 1, and max_output_tokens below context_length"
                ));
            }
            check_prices(&format!("{what} input"), &model.prices.input)?;
            check_prices(&format!("{what} output"), &model.prices.output)?;
            match model.backend {
                ModelBackendKind::Openai => {
                    let Some(url) = &model.base_url else {
                        return invalid(format!("{what}: the openai backend needs base_url"));
                    };
                    if !url.starts_with("http://") && !url.starts_with("https://") {
                        return invalid(format!("{what}: base_url must be an http(s) URL"));
                    }
                }
                ModelBackendKind::Sim => {
                    if model.base_url.is_some() || model.api_key_file.is_some() {
                        return invalid(format!(
                            "{what}: base_url and api_key_file belong to the openai backend"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl AiModelConfig {
    /// The upstream's API key, read from `api_key_file`.
    pub fn api_key(&self) -> Result<Option<String>, ConfigError> {
        match &self.api_key_file {
            Some(path) => read_secret_file(path).map(Some),
            None => Ok(None),
        }
    }
}
