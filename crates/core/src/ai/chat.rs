//! A chat call from admission to settlement.

use std::sync::Arc;

use barrack_api::Currency;
use barrack_api::ai::{
    AssistantMessage, ChatBilling, ChatChoice, ChatCompletionChunk, ChatCompletionsRequest,
    ChatCompletionsResponse, ChatRole, ChatUsage, ChunkChoice, ChunkDelta, MessageContent,
    StopSequences,
};
use barrack_api::ledger::TransactionType;
use barrack_store::ai::{AiHeld, AiHold, AiRequestRow};
use barrack_store::ledger::LedgerEntryRow;
use futures::StreamExt;
use futures::stream::BoxStream;
use rust_decimal::Decimal;

use super::backend::{
    BackendError, BackendEvent, BackendRequest, BackendStream, BackendUsage, ModelBackend,
    ended_early,
};
use super::config::AiModelConfig;
use super::limits::RateStatus;
use super::{AiService, Inner, cost_micros, prices_in, tokenizer};
use crate::accounts::{Caller, Credential};
use crate::platform::countries;
use crate::platform::ids::{IdKind, new_id, transaction_id};
use crate::platform::money::{exact_amount, from_micros};
use crate::platform::validate::Validator;
use crate::{Error, Result};

/// Most stop sequences a call may give.
const MAX_STOP_SEQUENCES: usize = 4;
/// How long the hold of a call never settled (its server stopped mid-call) keeps counting: longer than
/// any call runs.
const HOLD_LAPSES_AFTER_MS: i64 = 3_600_000;

/// A call admitted and started: its reply is read from [`ChatCall::chunks`] or [`AiService::complete`].
pub struct ChatCall {
    /// `chatcmpl-` and the request id.
    pub id: String,
    pub model: String,
    /// Unix seconds.
    pub created: i64,
    /// The caller's standing against the per-minute limits.
    pub rate: RateStatus,
    /// Whether a stream ends with a usage chunk.
    pub include_usage: bool,
    events: BackendStream,
    settlement: Settlement,
}

/// The chunks of a streamed call; an error ends it (what was delivered before is charged).
pub type ChatChunks = BoxStream<'static, Result<ChatCompletionChunk>>;

/// What a call is charged once it ends. Dropped unsettled (the client went away), it settles as
/// `cancelled` in the background, for what was delivered.
struct Settlement {
    pending: Option<Pending>,
}

struct Pending {
    inner: Arc<Inner>,
    account_id: String,
    limiter_key: String,
    request_id: String,
    model: String,
    currency: Currency,
    prices: (Decimal, Decimal),
    input_tokens: u64,
    admitted_tokens: u64,
    /// Its hold on the balance ([`barrack_store::ai::AiHold`]).
    hold_id: String,
    stream: bool,
    delivered: String,
}

/// A settled call.
#[derive(Debug, Clone)]
struct Settled {
    billing: ChatBilling,
    usage: ChatUsage,
}

/// Whose per-minute limits a call counts against: its API key's, or for sessions the account's.
fn limiter_key(caller: &Caller) -> String {
    match &caller.credential {
        Credential::ApiKey { id, .. } => format!("key:{id}"),
        Credential::Token { .. } | Credential::WebSession { .. } => {
            format!("account:{}", caller.account_id())
        }
    }
}

impl AiService {
    /// Where the caller stands against the per-minute limits, admitting nothing (for a refused call).
    pub fn rate_status(&self, caller: &Caller) -> RateStatus {
        self.inner.limiter.status(&limiter_key(caller))
    }

    /// Validates and admits a call, reserves its worst-case cost, starts it at the model's backend and
    /// waits for the backend's first event.
    pub async fn start(
        &self,
        caller: &Caller,
        request: ChatCompletionsRequest,
        request_id: &str,
    ) -> Result<ChatCall> {
        // Boxed, as the settlement is: a handler's future holds a pointer, not these futures, and is
        // cheap to move.
        let admitted = Box::pin(self.admit(caller, request, request_id)).await?;
        let mut events = admitted.backend.stream(admitted.request);
        // The backend's first event is awaited before the stream is answered, so that a backend that
        // cannot be reached, refuses the call or does not answer in time gets the status a whole call
        // gets (502, 504) and costs nothing, instead of a 200 whose only event is the error.
        let first = match events.next().await {
            Some(Ok(event)) => event,
            Some(Err(e)) => return Err(admitted.settlement.fail(e, false).await),
            None => return Err(admitted.settlement.fail(ended_early(), false).await),
        };
        Ok(ChatCall {
            id: admitted.id,
            model: admitted.model,
            created: admitted.created,
            rate: admitted.rate,
            include_usage: admitted.include_usage,
            events: futures::stream::once(async move { Ok(first) })
                .chain(events)
                .boxed(),
            settlement: admitted.settlement,
        })
    }

    /// Validates and admits a call and reserves its worst-case cost; the backend is not called yet.
    async fn admit(
        &self,
        caller: &Caller,
        request: ChatCompletionsRequest,
        request_id: &str,
    ) -> Result<Admitted> {
        let context = &self.inner.context;
        let (model, input_tokens, max_tokens) = validate(&context.config.ai, &request)?;
        let backend = self.backend(&model.id).ok_or_else(|| {
            Error::BadGateway(format!("Model '{}' has no backend running", model.id))
        })?;
        let currency = countries::currency_for(caller.account.country.as_deref());
        let prices = prices_in(model, currency);
        let admitted_tokens = input_tokens + u64::from(max_tokens);
        // A call larger than a whole minute's tokens never fits: a 400 that says what to lower, not a
        // 429 whose retry meets the same refusal every minute.
        let per_minute = u64::from(self.inner.limiter.tokens_per_minute());
        if per_minute > 0 && admitted_tokens > per_minute {
            let (field, lower) = if input_tokens > per_minute {
                ("messages", "shorten the messages")
            } else {
                ("max_tokens", "lower max_tokens")
            };
            return Err(Error::field(
                field,
                format!(
                    "This call may use {admitted_tokens} tokens ({input_tokens} of its messages and up to \
                     {max_tokens} of reply), more than the {per_minute} tokens a minute this key may use: \
                     {lower}"
                ),
            ));
        }
        let limiter_key = limiter_key(caller);
        let rate = self
            .inner
            .limiter
            .admit(&limiter_key, admitted_tokens)
            .map_err(|retry_after_seconds| Error::RateLimited {
                retry_after_seconds,
            })?;
        let worst = cost_micros(prices, input_tokens, u64::from(max_tokens));
        let hold_id = match self.reserve(caller.account_id(), currency, worst).await {
            Ok(id) => id,
            Err(e) => {
                self.inner.limiter.release(&limiter_key, admitted_tokens);
                return Err(e);
            }
        };
        let stream = request.stream.unwrap_or(false);
        let settlement = Settlement {
            pending: Some(Pending {
                inner: self.inner.clone(),
                account_id: caller.account_id().to_string(),
                limiter_key,
                request_id: request_id.to_string(),
                model: model.id.clone(),
                currency,
                prices,
                input_tokens,
                admitted_tokens,
                hold_id,
                stream,
                delivered: String::new(),
            }),
        };
        Ok(Admitted {
            id: format!("chatcmpl-{request_id}"),
            model: model.id.clone(),
            created: context.clock.now_ms().div_euclid(1000),
            rate,
            include_usage: request
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
            backend,
            request: BackendRequest {
                model: model
                    .upstream_model
                    .clone()
                    .unwrap_or_else(|| model.id.clone()),
                messages: request.messages,
                max_tokens,
                temperature: request.temperature,
                top_p: request.top_p,
                stop: request.stop.map(|s| s.to_vec()).unwrap_or_default(),
                seed: request.seed,
                input_tokens,
            },
            settlement,
        })
    }

    /// 402 unless the balance, less what the account's calls in flight may still cost (on every server),
    /// covers `worst`; then holds `worst` until the call settles, under the hold id returned.
    async fn reserve(&self, account_id: &str, currency: Currency, worst: i64) -> Result<String> {
        let context = &self.inner.context;
        let now = context.clock.now_ms();
        let hold = AiHold {
            id: new_id(IdKind::AiRequest),
            account_id: account_id.to_string(),
            currency: currency.as_str().to_string(),
            micros: worst,
            expires_at: now + HOLD_LAPSES_AFTER_MS,
        };
        match context.store.hold_ai_call(&hold, now).await? {
            AiHeld::Held => Ok(hold.id),
            AiHeld::Short { available } => Err(Error::InsufficientBalance(format!(
                "Insufficient balance: {} {currency} available, this call may cost up to {} {currency} (its prompt and max_tokens of reply)",
                // Exact: a call costs fractions of a cent, which cents would show as 0 or 0.01.
                exact_amount(from_micros(available)),
                exact_amount(from_micros(worst)),
            ))),
        }
    }

    /// Runs a call to its end and answers with the whole reply and what it cost. A backend failure is a
    /// 502 (504 on a timeout) and costs nothing.
    pub async fn complete(
        &self,
        caller: &Caller,
        request: ChatCompletionsRequest,
        request_id: &str,
    ) -> Result<(ChatCompletionsResponse, RateStatus)> {
        let mut call = Box::pin(self.admit(caller, request, request_id)).await?;
        // Asked whole, so a backend that can answer whole (an upstream) skips the stream's framing.
        let reply = match call.backend.complete(call.request).await {
            Ok(reply) => reply,
            Err(e) => return Err(call.settlement.fail(e, false).await),
        };
        call.settlement.deliver(&reply.content);
        let settled = call.settlement.settle("completed", reply.usage).await?;
        let (content, finish_reason) = (reply.content, reply.finish_reason);
        Ok((
            ChatCompletionsResponse {
                id: call.id,
                object: "chat.completion".into(),
                created: call.created,
                model: call.model,
                choices: vec![ChatChoice {
                    index: 0,
                    message: AssistantMessage {
                        role: ChatRole::Assistant,
                        content,
                    },
                    finish_reason,
                    logprobs: None,
                }],
                usage: settled.usage,
                system_fingerprint: None,
                billing: Some(settled.billing),
            },
            call.rate,
        ))
    }
}

impl ChatCall {
    /// The reply as `chat.completion.chunk`s: the role, each delta, the finish reason, and the usage when
    /// asked for. A backend failure ends the stream with its error, after charging what was delivered.
    pub fn chunks(self) -> ChatChunks {
        let chunk = Chunker {
            id: self.id,
            model: self.model,
            created: self.created,
        };
        let first = chunk.delta(
            ChunkDelta {
                role: Some(ChatRole::Assistant),
                content: Some(String::new()),
            },
            None,
        );
        let state = State {
            events: self.events,
            settlement: self.settlement,
            chunk,
            include_usage: self.include_usage,
            queue: vec![first],
            finished: false,
        };
        futures::stream::unfold(state, |mut state| async move {
            loop {
                if !state.queue.is_empty() {
                    let item = state.queue.remove(0);
                    return Some((Ok(item), state));
                }
                if state.finished {
                    return None;
                }
                match state.events.next().await {
                    Some(Ok(BackendEvent::Delta(text))) => {
                        state.settlement.deliver(&text);
                        let item = state.chunk.delta(
                            ChunkDelta {
                                role: None,
                                content: Some(text),
                            },
                            None,
                        );
                        return Some((Ok(item), state));
                    }
                    Some(Ok(BackendEvent::Done {
                        finish_reason,
                        usage,
                    })) => {
                        state.finished = true;
                        let settlement =
                            std::mem::replace(&mut state.settlement, Settlement { pending: None });
                        match settlement.settle("completed", usage).await {
                            Ok(settled) => {
                                state.queue.push(
                                    state
                                        .chunk
                                        .delta(ChunkDelta::default(), Some(finish_reason)),
                                );
                                if state.include_usage {
                                    state.queue.push(state.chunk.usage(settled.usage));
                                }
                            }
                            Err(e) => return Some((Err(e), state)),
                        }
                    }
                    Some(Err(e)) => {
                        state.finished = true;
                        let settlement =
                            std::mem::replace(&mut state.settlement, Settlement { pending: None });
                        return Some((Err(settlement.fail(e, true).await), state));
                    }
                    None => {
                        state.finished = true;
                        let settlement =
                            std::mem::replace(&mut state.settlement, Settlement { pending: None });
                        return Some((Err(settlement.fail(ended_early(), true).await), state));
                    }
                }
            }
        })
        .boxed()
    }
}

/// A call admitted, its worst case held, not yet sent to its backend.
struct Admitted {
    id: String,
    model: String,
    created: i64,
    rate: RateStatus,
    include_usage: bool,
    backend: Arc<dyn ModelBackend>,
    request: BackendRequest,
    settlement: Settlement,
}

struct State {
    events: BackendStream,
    settlement: Settlement,
    chunk: Chunker,
    include_usage: bool,
    queue: Vec<ChatCompletionChunk>,
    finished: bool,
}

struct Chunker {
    id: String,
    model: String,
    created: i64,
}

impl Chunker {
    fn delta(&self, delta: ChunkDelta, finish_reason: Option<String>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason,
            }],
            usage: None,
        }
    }

    fn usage(&self, usage: ChatUsage) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![],
            usage: Some(usage),
        }
    }
}

impl Settlement {
    fn deliver(&mut self, text: &str) {
        if let Some(p) = &mut self.pending {
            p.delivered.push_str(text);
        }
    }

    async fn settle(
        mut self,
        status: &'static str,
        usage: Option<BackendUsage>,
    ) -> Result<Settled> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| Error::internal("an AI call was settled twice"))?;
        Box::pin(pending.settle(status, usage)).await
    }

    /// Settles a failed call and returns the error for the client. A stream is charged what it delivered;
    /// a whole reply that never reached the client costs nothing.
    async fn fail(mut self, error: BackendError, charge_delivered: bool) -> Error {
        if let Some(mut pending) = self.pending.take() {
            if !charge_delivered {
                pending.delivered.clear();
            }
            if let Err(e) = Box::pin(pending.settle("failed", None)).await {
                tracing::error!(error = %e, "recording a failed AI call");
            }
        }
        match error {
            BackendError::Unavailable(m) => Error::BadGateway(m),
            BackendError::Timeout(m) => Error::GatewayTimeout(m),
        }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        if let Err(e) = pending.settle("cancelled", None).await {
                            tracing::error!(error = %e, "recording a cancelled AI call");
                        }
                    });
                }
                Err(_) => tracing::error!(
                    request_id = %pending.request_id,
                    "an abandoned AI call could not be recorded outside the runtime"
                ),
            }
        }
    }
}

impl Pending {
    /// Records the call and charges it, then releases its reservation and unused tokens.
    async fn settle(self, status: &'static str, usage: Option<BackendUsage>) -> Result<Settled> {
        // The hold goes in the settlement's transaction; a settlement that failed lets it go on its own.
        let result = self.record(status, usage).await;
        let inner = &self.inner;
        if result.is_err()
            && let Err(e) = inner.context.store.release_ai_hold(&self.hold_id).await
        {
            tracing::warn!(error = %e, hold = %self.hold_id, "an AI call's hold lapses at its expiry instead");
        }
        if let Ok(settled) = &result {
            let used = settled.usage.total_tokens;
            inner
                .limiter
                .release(&self.limiter_key, self.admitted_tokens.saturating_sub(used));
        }
        result
    }

    async fn record(&self, status: &'static str, usage: Option<BackendUsage>) -> Result<Settled> {
        let context = &self.inner.context;
        // A failure that delivered nothing costs nothing, prompt included.
        let (input_tokens, output_tokens) = if status == "failed" && self.delivered.is_empty() {
            (0, 0)
        } else {
            let (input, output) = match usage {
                Some(u) => (u.input_tokens, u.output_tokens),
                None => (self.input_tokens, tokenizer::count(&self.delivered)),
            };
            // Never more than the call was admitted for (its prompt as counted here and max_tokens of
            // reply), whatever its backend reports or sends: that is what the balance was checked to
            // cover, so no call takes a balance below zero.
            let max_output = self.admitted_tokens - self.input_tokens;
            (input.min(self.input_tokens), output.min(max_output))
        };
        let cost = cost_micros(self.prices, input_tokens, output_tokens);
        let now = context.clock.now_ms();
        let charge = (cost > 0).then(|| LedgerEntryRow {
            id: transaction_id(),
            account_id: self.account_id.clone(),
            currency: self.currency.as_str().to_string(),
            kind: TransactionType::Usage.as_str().to_string(),
            amount_micros: -cost,
            balance_after_micros: 0,
            description: format!(
                "AI chat: {} ({input_tokens} input and {output_tokens} output tokens)",
                self.model
            ),
            idempotency_key: Some(format!("ai:{}", self.request_id)),
            created_by: None,
            created_at: now,
        });
        let row = AiRequestRow {
            id: new_id(IdKind::AiRequest),
            account_id: self.account_id.clone(),
            request_id: self.request_id.clone(),
            model: self.model.clone(),
            input_tokens: input_tokens as i64,
            output_tokens: output_tokens as i64,
            cost_micros: cost,
            currency: self.currency.as_str().to_string(),
            status: status.to_string(),
            stream: self.stream,
            ledger_entry_id: None,
            created_at: now,
        };
        // A request id settled before (a replay) answers with what was recorded then.
        let recorded = context
            .store
            .record_ai_request(
                &row,
                charge.as_ref(),
                Some(&self.hold_id),
                transaction_id,
                || new_id(IdKind::AiRequest),
            )
            .await?;
        Ok(Settled {
            billing: ChatBilling {
                ai_transaction_id: recorded.id,
                ledger_transaction_id: recorded.ledger_entry_id,
                cost: from_micros(recorded.cost_micros),
                currency: self.currency,
            },
            usage: ChatUsage {
                prompt_tokens: recorded.input_tokens as u64,
                completion_tokens: recorded.output_tokens as u64,
                total_tokens: (recorded.input_tokens + recorded.output_tokens) as u64,
            },
        })
    }
}

/// Checks a request against the documented rules and the model; returns the model, the prompt's tokens
/// and the most tokens the reply may have.
fn validate<'a>(
    ai: &'a super::config::AiConfig,
    request: &ChatCompletionsRequest,
) -> Result<(&'a AiModelConfig, u64, u32)> {
    let mut v = Validator::new();
    v.check(
        !request.model.trim().is_empty(),
        "model",
        "Model is required",
    );
    v.check(
        !request.messages.is_empty(),
        "messages",
        "At least one message is required",
    );
    for (i, message) in request.messages.iter().enumerate() {
        // The field's name is written only for a message at fault.
        let fault = match &message.content {
            None if message.role != ChatRole::Assistant => Some("Content is required"),
            // A text is text; only parts are joined to know.
            Some(content @ MessageContent::Parts(_)) if content.text().is_none() => {
                Some("Only text content is supported")
            }
            _ => None,
        };
        if let Some(message) = fault {
            v.add(&format!("messages[{i}].content"), message);
        }
    }
    if let Some(n) = request.n {
        v.check(n == 1, "n", "Only one choice (n = 1) is supported");
    }
    if let Some(t) = request.temperature {
        v.check(
            (0.0..=2.0).contains(&t),
            "temperature",
            "Temperature must be between 0 and 2",
        );
    }
    if let Some(p) = request.top_p {
        v.check(
            p > 0.0 && p <= 1.0,
            "top_p",
            "top_p must be greater than 0 and at most 1",
        );
    }
    if let Some(stop) = &request.stop {
        let stop = match stop {
            StopSequences::One(s) => std::slice::from_ref(s),
            StopSequences::Many(v) => v.as_slice(),
        };
        v.check(
            stop.len() <= MAX_STOP_SEQUENCES && stop.iter().all(|s| !s.is_empty()),
            "stop",
            format!("Give at most {MAX_STOP_SEQUENCES} stop sequences, none empty"),
        );
    }
    let (max_field, requested) = match (request.max_completion_tokens, request.max_tokens) {
        (Some(m), _) => ("max_completion_tokens", Some(m)),
        (None, m) => ("max_tokens", m),
    };
    if let Some(m) = requested {
        v.check(m >= 1, max_field, format!("{max_field} must be at least 1"));
    }
    v.finish()?;
    let model = ai
        .model(request.model.trim())
        .ok_or_else(|| Error::NotFound(format!("Model '{}' not found", request.model.trim())))?;
    let input_tokens = tokenizer::count_messages(&request.messages);
    let context = u64::from(model.context_length);
    if input_tokens >= context {
        return Err(Error::field(
            "messages",
            format!(
                "The messages have {input_tokens} tokens; model '{}' has a context of {context} tokens",
                model.id
            ),
        ));
    }
    let room = (context - input_tokens).min(u64::from(model.max_output_tokens)) as u32;
    let max_tokens = match requested {
        None => room,
        Some(m) if m > model.max_output_tokens => {
            return Err(Error::field(
                max_field,
                format!(
                    "{max_field} must be at most {} for model '{}'",
                    model.max_output_tokens, model.id
                ),
            ));
        }
        Some(m) if u64::from(m) + input_tokens > context => {
            return Err(Error::field(
                max_field,
                format!(
                    "The messages ({input_tokens} tokens) and {max_field} ({m}) exceed model '{}''s context of {context} tokens",
                    model.id
                ),
            ));
        }
        Some(m) => m,
    };
    Ok((model, input_tokens, max_tokens))
}
