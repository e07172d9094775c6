//! AI chat: models served by pluggable backends, calls charged per token from the credit ledger.
//!
//! A call is admitted (validated, counted with the tokenizer, within the caller's per-minute limits, and
//! its worst case — the prompt and `max_tokens` of reply — reserved against the balance), then streamed
//! from its model's backend, then settled: one `ai_requests` row and one `usage` ledger entry for the
//! tokens actually delivered, keyed by the request id so a call is charged at most once.

pub mod backend;
/// The `[ai]` configuration (kept with the rest of the configuration in `platform`).
pub mod config {
    pub use crate::platform::ai_config::*;
}
mod chat;
pub mod limits;
pub mod sim;
pub mod tokenizer;
mod usage;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use barrack_api::ai::{AiModel, AiModelList, AiModelPrices};
use barrack_api::catalog::Amount;
use barrack_api::{Currency, ai::OpenAiModel, ai::OpenAiModelList};
use rust_decimal::Decimal;

use crate::Context;
use backend::ModelBackend;
use config::{AiModelConfig, ModelBackendKind};
use limits::AiLimiter;

pub use chat::{ChatCall, ChatChunks};

#[derive(Clone)]
pub struct AiService {
    inner: Arc<Inner>,
}

struct Inner {
    context: Arc<Context>,
    backends: RwLock<HashMap<String, Arc<dyn ModelBackend>>>,
    limiter: AiLimiter,
}

impl AiService {
    /// The service with a simulator for every `sim` model; `openai` models get theirs from
    /// [`AiService::register_backend`].
    pub fn new(context: Arc<Context>) -> AiService {
        let ai = &context.config.ai;
        let backends = ai
            .models
            .iter()
            .filter(|m| m.backend == ModelBackendKind::Sim)
            .map(|m| {
                let backend: Arc<dyn ModelBackend> =
                    Arc::new(sim::SimBackend::new(m.first_token_ms, m.tokens_per_second));
                (m.id.clone(), backend)
            })
            .collect();
        let limiter = AiLimiter::new(
            ai.requests_per_minute,
            ai.tokens_per_minute,
            context.resets_seen.clone(),
        );
        AiService {
            inner: Arc::new(Inner {
                context,
                backends: RwLock::new(backends),
                limiter,
            }),
        }
    }

    /// Serves `model` with `backend`.
    pub fn register_backend(&self, model: &str, backend: Arc<dyn ModelBackend>) {
        self.inner
            .backends
            .write()
            .expect("AI backends")
            .insert(model.to_string(), backend);
    }

    fn backend(&self, model: &str) -> Option<Arc<dyn ModelBackend>> {
        self.inner
            .backends
            .read()
            .expect("AI backends")
            .get(model)
            .cloned()
    }

    /// `GET /api/ai/models/`.
    pub fn models(&self) -> AiModelList {
        AiModelList {
            models: self
                .inner
                .context
                .config
                .ai
                .models
                .iter()
                .map(model_view)
                .collect(),
        }
    }

    /// `GET /v1/models`.
    pub fn openai_models(&self) -> OpenAiModelList {
        OpenAiModelList {
            object: "list".into(),
            data: self
                .inner
                .context
                .config
                .ai
                .models
                .iter()
                .map(|m| OpenAiModel {
                    id: m.id.clone(),
                    object: "model".into(),
                    created: 0,
                    owned_by: "barrack".into(),
                })
                .collect(),
        }
    }
}

fn model_view(model: &AiModelConfig) -> AiModel {
    let prices = |table: &crate::platform::config::PriceTable| {
        table
            .iter()
            .map(|(c, p)| (*c, Amount(p.0.normalize())))
            .collect()
    };
    AiModel {
        id: model.id.clone(),
        description: model.description.clone(),
        context_length: model.context_length,
        max_output_tokens: model.max_output_tokens,
        prices: AiModelPrices {
            input: prices(&model.prices.input),
            output: prices(&model.prices.output),
            unit: "per million tokens".into(),
        },
    }
}

/// Prices of a model per million tokens in one currency: (input, output).
fn prices_in(model: &AiModelConfig, currency: Currency) -> (Decimal, Decimal) {
    let get =
        |t: &crate::platform::config::PriceTable| t.get(&currency).map(|p| p.0).unwrap_or_default();
    (get(&model.prices.input), get(&model.prices.output))
}

/// What `input` and `output` tokens cost in micro-units, rounded to the nearest micro-unit (half away
/// from zero).
pub fn cost_micros(prices: (Decimal, Decimal), input: u64, output: u64) -> i64 {
    let cost = (Decimal::from(input) * prices.0 + Decimal::from(output) * prices.1)
        / Decimal::from(1_000_000);
    crate::platform::money::to_micros(
        cost.round_dp_with_strategy(6, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
    )
    .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_tokens_times_price_per_million() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        // 1,000 tokens at 0.10 per million: 0.0001 = 100 micro-units.
        assert_eq!(cost_micros((d("0.10"), d("0.30")), 1000, 0), 100);
        assert_eq!(cost_micros((d("0.10"), d("0.30")), 1000, 2000), 700);
        // 7 tokens at 0.10 per million: 0.7 micro-units rounds to 1.
        assert_eq!(cost_micros((d("0.10"), d("0.30")), 7, 0), 1);
        assert_eq!(cost_micros((d("0.10"), d("0.30")), 4, 0), 0);
    }
}
