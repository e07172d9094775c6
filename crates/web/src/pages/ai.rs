//! AI chat and AI usage. A message goes to the same chat service as `POST /api/ai/chat/` (its checks,
//! limits and billing). Without scripts the form answers with the whole page and the reply; with them
//! (`assets/ai.js`) the reply streams in as server-sent events from `/ai/chat/stream`. The conversation so
//! far travels with the form as hidden fields, so nothing of it is stored beyond the call's usage record.

use std::convert::Infallible;

use askama::Template;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use barrack_api::ai::{
    ChatCompletionsRequest, ChatMessage, ChatRole, MessageContent, UsageHistoryQuery,
    UsageSummaryQuery,
};
use barrack_core::accounts::web_sessions::WebSession;
use barrack_core::clock::{format_ms, parse_iso};
use futures::StreamExt;
use serde::Deserialize;

use crate::State;
use crate::error::WebError;
use crate::form::Form;
use crate::session::Signed;
use crate::view::{Errors, Nav, money, next_page, page_number, previous_page, query, render, when};

const HISTORY_PER_PAGE: u32 = 20;
/// Messages of the conversation kept with the form (the oldest are dropped first).
const MAX_TURNS: usize = 20;

pub struct ModelView {
    pub id: String,
    pub chosen: bool,
    pub prices: String,
}

pub struct TurnView {
    /// `user` or `assistant`.
    pub role: &'static str,
    pub text: String,
    /// What the hidden field carries: the role's letter and the text.
    pub field: String,
}

pub struct UsageRow {
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: String,
}

pub struct CallView {
    pub when: String,
    pub id: String,
    pub model: String,
    pub tokens: String,
    pub cost: String,
    pub status: String,
    pub stream: bool,
}

#[derive(Template)]
#[template(path = "ai.html")]
struct AiPage {
    nav: Nav,
    models: Vec<ModelView>,
    max_tokens: String,
    prompt: String,
    turns: Vec<TurnView>,
    /// What the last reply cost, when the page answers a message.
    billed: String,
    errors: Errors,
    summary: Vec<UsageRow>,
    summary_total: UsageRow,
    summary_from: String,
    summary_to: String,
    /// The days chosen in the range form, as typed.
    range: Range,
    calls: Vec<CallView>,
    page: u32,
    total_pages: u32,
    prev: String,
    next: String,
}

#[derive(Deserialize, Default)]
pub struct Params {
    page: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The usage range the page shows: whole days, `to` included; empty for the last 30 days.
#[derive(Default, Clone)]
pub struct Range {
    pub from: String,
    pub to: String,
}

const DAY_MS: i64 = 86_400_000;

impl Range {
    fn of(params: &Params) -> Range {
        let day = |d: &Option<String>| d.as_deref().unwrap_or_default().trim().to_string();
        Range {
            from: day(&params.from),
            to: day(&params.to),
        }
    }

    /// The range as the usage queries take it (ISO-8601, `to` excluded), or the messages at its fields.
    fn bounds(&self, errors: &mut Errors) -> (Option<String>, Option<String>) {
        let mut start = |field: &str, text: &str| {
            if text.is_empty() {
                return None;
            }
            let ms = parse_iso(&format!("{text}T00:00:00Z"));
            if ms.is_none() {
                errors
                    .fields
                    .insert(field.into(), vec!["Choose a day such as 2026-12-01".into()]);
            }
            ms
        };
        let from = start("from", &self.from);
        // The last day counts whole: the range ends where the next day starts.
        let to = start("to", &self.to).map(|ms| ms + DAY_MS);
        if let (Some(f), Some(t)) = (from, to)
            && t <= f
        {
            errors.fields.insert(
                "to".into(),
                vec!["Choose a day on or after the first".into()],
            );
            return (None, None);
        }
        (from.map(format_ms), to.map(format_ms))
    }
}

/// The conversation carried by the form: `history` fields, each `u:` or `a:` and the text.
fn turns_of(form: &Form) -> Vec<TurnView> {
    let mut turns: Vec<TurnView> = form
        .0
        .iter()
        .filter(|(k, _)| k == "history")
        .filter_map(|(_, v)| {
            let v = v.replace("\r\n", "\n");
            let (role, text) = match v.split_once(':') {
                Some(("u", text)) => ("user", text),
                Some(("a", text)) => ("assistant", text),
                _ => return None,
            };
            Some(turn(role, text))
        })
        .collect();
    if turns.len() > MAX_TURNS {
        turns.drain(..turns.len() - MAX_TURNS);
    }
    turns
}

fn turn(role: &'static str, text: &str) -> TurnView {
    TurnView {
        role,
        text: text.to_string(),
        field: format!("{}:{text}", if role == "user" { 'u' } else { 'a' }),
    }
}

async fn ai_page(
    state: &crate::WebState,
    session: &WebSession,
    page: u32,
    chosen: Option<&str>,
    range: Range,
) -> Result<AiPage, WebError> {
    let services = &state.services;
    let caller = &session.caller;
    let currency = barrack_core::countries::currency_for(caller.account.country.as_deref());
    let catalog = services.ai.models();
    let first = catalog.models.first().map(|m| m.id.clone());
    let chosen = chosen.map(str::to_string).or(first);
    let models = catalog
        .models
        .iter()
        .map(|m| {
            let price = |p: &barrack_api::catalog::Prices| {
                p.get(&currency)
                    .map(|a| money(a.0, currency))
                    .unwrap_or_else(|| "-".into())
            };
            ModelView {
                id: m.id.clone(),
                chosen: chosen.as_deref() == Some(m.id.as_str()),
                prices: format!(
                    "{} in, {} out per million tokens; context {} tokens",
                    price(&m.prices.input),
                    price(&m.prices.output),
                    m.context_length
                ),
            }
        })
        .collect();
    let mut errors = Errors::default();
    let (from, to) = range.bounds(&mut errors);
    let summary = services
        .ai
        .usage_summary(
            caller,
            UsageSummaryQuery {
                from: from.clone(),
                to: to.clone(),
            },
        )
        .await?;
    let row = |m: &barrack_api::ai::ModelUsage| UsageRow {
        model: m.model.clone().unwrap_or_else(|| "All models".into()),
        requests: m.requests,
        input_tokens: m.input_tokens,
        output_tokens: m.output_tokens,
        cost: money(m.cost, summary.currency),
    };
    let history = services
        .ai
        .usage_history(
            caller,
            UsageHistoryQuery {
                from,
                to,
                page: Some(page),
                limit: Some(HISTORY_PER_PAGE),
            },
        )
        .await?;
    let p = history.pagination;
    let total_pages = p.total_pages.max(1);
    let link = |n: u32| {
        query(&[
            ("from", &range.from),
            ("to", &range.to),
            ("page", &n.to_string()),
        ])
    };
    Ok(AiPage {
        nav: Nav::new(session, "ai"),
        models,
        max_tokens: String::new(),
        prompt: String::new(),
        turns: Vec::new(),
        billed: String::new(),
        summary: summary.models.iter().map(row).collect(),
        summary_total: row(&summary.total),
        summary_from: when(&summary.from),
        // `to` is excluded: the range's last moment is a millisecond before it.
        summary_to: parse_iso(&summary.to)
            .map(|ms| when(&format_ms(ms - 1)))
            .unwrap_or_default(),
        calls: history
            .transactions
            .iter()
            .map(|t| CallView {
                when: when(&t.created_at),
                id: t.id.clone(),
                model: t.model.clone(),
                tokens: format!("{} in, {} out", t.input_tokens, t.output_tokens),
                cost: money(t.cost, t.currency),
                status: t.status.clone(),
                stream: t.stream,
            })
            .collect(),
        page: p.page,
        total_pages,
        prev: previous_page(p.page, link),
        next: next_page(p.page, total_pages, link),
        errors,
        range,
    })
}

/// `/ai`: the chat form, the usage of the last 30 days and the calls one by one.
pub async fn page(
    axum::extract::State(state): State,
    Signed(session): Signed,
    Query(params): Query<Params>,
) -> Result<Response, WebError> {
    let page = page_number(params.page.as_deref());
    let shown = ai_page(&state, &session, page, None, Range::of(&params)).await?;
    // A range refused at its fields is a 400, as every refused filter is (the usage shown is the last 30
    // days', with the message at the field).
    let status = if shown.errors.has("from") || shown.errors.has("to") {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(status, &shown)
}

/// What a submitted message asks for, or the messages at the fields.
fn chat_request(form: &Form, stream: bool) -> Result<ChatCompletionsRequest, Errors> {
    let mut errors = Errors::default();
    let prompt = form.raw("prompt").unwrap_or_default();
    if prompt.trim().is_empty() {
        errors
            .fields
            .insert("prompt".into(), vec!["Write a message".into()]);
    }
    let max_tokens = match form.get("max_tokens") {
        None => None,
        Some(text) => match text.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.fields.insert(
                    "max_tokens".into(),
                    vec!["Enter a whole number of tokens, such as 256".into()],
                );
                None
            }
        },
    };
    if !errors.fields.is_empty() {
        return Err(errors);
    }
    let message = |role: ChatRole, text: &str| ChatMessage {
        role,
        content: Some(MessageContent::Text(text.to_string())),
        name: None,
    };
    let mut messages: Vec<ChatMessage> = turns_of(form)
        .iter()
        .map(|t| {
            let role = if t.role == "user" {
                ChatRole::User
            } else {
                ChatRole::Assistant
            };
            message(role, &t.text)
        })
        .collect();
    messages.push(message(ChatRole::User, &prompt));
    Ok(ChatCompletionsRequest {
        model: form.get("model").unwrap_or_default(),
        messages,
        max_tokens,
        stream: Some(stream),
        ..ChatCompletionsRequest::default()
    })
}

/// The service's field names as the form's: the messages are the prompt.
fn at_form_fields(mut errors: Errors) -> Errors {
    let fields = std::mem::take(&mut errors.fields);
    for (field, messages) in fields {
        let name = if field == "messages" || field.starts_with("messages[") {
            "prompt".to_string()
        } else if field == "max_completion_tokens" {
            "max_tokens".to_string()
        } else {
            field
        };
        errors.fields.entry(name).or_default().extend(messages);
    }
    errors
}

/// The page again with what was sent and the messages at the fields.
async fn refused(
    state: &crate::WebState,
    session: &WebSession,
    form: &Form,
    errors: Errors,
    status: StatusCode,
) -> Result<Response, WebError> {
    let mut page = ai_page(
        state,
        session,
        1,
        form.get("model").as_deref(),
        Range::default(),
    )
    .await?;
    page.prompt = form.raw("prompt").unwrap_or_default();
    page.max_tokens = form.get("max_tokens").unwrap_or_default();
    page.turns = turns_of(form);
    page.errors = errors;
    render(status, &page)
}

/// Sorts a chat error into messages at the form's fields, or an error page.
fn chat_errors(e: barrack_core::Error) -> Result<(Errors, StatusCode), WebError> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let errors = match e {
        // A model that does not exist is the form's model field at fault.
        barrack_core::Error::NotFound(ref message) if message.starts_with("Model ") => {
            Errors::from_error_at(e, &[("Model ", "model")])?
        }
        barrack_core::Error::NotFound(_) | barrack_core::Error::RateLimited { .. } => Errors {
            general: Some(e.public_message()),
            ..Errors::default()
        },
        barrack_core::Error::BadGateway(_) | barrack_core::Error::GatewayTimeout(_) => Errors {
            general: Some(format!("{} Nothing was charged.", e.public_message())),
            ..Errors::default()
        },
        other => at_form_fields(Errors::from_error(other)?),
    };
    Ok((errors, status))
}

/// `POST /ai/chat`: the whole reply at once (the page without scripts).
pub async fn chat(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let request = match chat_request(&form, false) {
        Ok(request) => request,
        Err(errors) => {
            return refused(&state, &session, &form, errors, StatusCode::BAD_REQUEST).await;
        }
    };
    let request_id = barrack_core::ids::request_id();
    match state
        .services
        .ai
        .complete(&session.caller, request, &request_id)
        .await
    {
        Ok((reply, _)) => {
            let mut page = ai_page(
                &state,
                &session,
                1,
                form.get("model").as_deref(),
                Range::default(),
            )
            .await?;
            let mut turns = turns_of(&form);
            turns.push(turn("user", &form.raw("prompt").unwrap_or_default()));
            let text = reply
                .choices
                .first()
                .map(|c| c.message.content.clone())
                .unwrap_or_default();
            turns.push(turn("assistant", &text));
            page.turns = turns;
            page.max_tokens = form.get("max_tokens").unwrap_or_default();
            if let Some(billing) = &reply.billing {
                page.billed = billed_text(
                    reply.usage.prompt_tokens,
                    reply.usage.completion_tokens,
                    &money(billing.cost, billing.currency),
                );
            }
            render(StatusCode::OK, &page)
        }
        Err(e) => {
            let (errors, status) = chat_errors(e)?;
            refused(&state, &session, &form, errors, status).await
        }
    }
}

fn billed_text(input: u64, output: u64, cost: &str) -> String {
    format!("{input} tokens in, {output} out: {cost}")
}

/// `POST /ai/chat/stream`: the reply as server-sent events for `assets/ai.js` — `delta` events with the
/// text (JSON strings), then `done` with what the call cost, or `failed` with a message. A message the
/// service refuses before the call starts answers with the page and the messages at the fields instead,
/// which the script shows in place of the form.
pub async fn chat_stream(
    axum::extract::State(state): State,
    Signed(session): Signed,
    form: Form,
) -> Result<Response, WebError> {
    form.check_csrf(&session)?;
    let request = match chat_request(&form, true) {
        Ok(request) => request,
        Err(errors) => {
            return refused(&state, &session, &form, errors, StatusCode::BAD_REQUEST).await;
        }
    };
    let request_id = barrack_core::ids::request_id();
    let call = match state
        .services
        .ai
        .start(&session.caller, request, &request_id)
        .await
    {
        Ok(call) => call,
        Err(e) => {
            let (errors, status) = chat_errors(e)?;
            return refused(&state, &session, &form, errors, status).await;
        }
    };
    let ai = state.services.ai.clone();
    let caller = session.caller.clone();
    let events = futures::stream::unfold((call.chunks(), false), move |(mut chunks, ended)| {
        let ai = ai.clone();
        let caller = caller.clone();
        let request_id = request_id.clone();
        async move {
            if ended {
                return None;
            }
            let event = match chunks.next().await {
                Some(Ok(chunk)) => {
                    let text: String = chunk
                        .choices
                        .iter()
                        .filter_map(|c| c.delta.content.clone())
                        .collect();
                    let event = Event::default()
                        .event("delta")
                        .data(serde_json::to_string(&text).unwrap_or_default());
                    return Some((Ok::<_, Infallible>(event), (chunks, false)));
                }
                // The call is settled when its stream ends: its record holds what it cost.
                None => Event::default()
                    .event("done")
                    .data(settled(&ai, &caller, &request_id).await),
                Some(Err(e)) => Event::default()
                    .event("failed")
                    .data(serde_json::json!({ "message": e.public_message() }).to_string()),
            };
            Some((Ok(event), (chunks, true)))
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `{"billed": "..."}`: what the call of `request_id` cost, from its usage record.
async fn settled(
    ai: &barrack_core::ai::AiService,
    caller: &barrack_core::accounts::Caller,
    request_id: &str,
) -> String {
    let recent = ai
        .usage_history(
            caller,
            UsageHistoryQuery {
                page: Some(1),
                limit: Some(10),
                ..UsageHistoryQuery::default()
            },
        )
        .await;
    let billed = recent
        .ok()
        .and_then(|h| {
            h.transactions
                .into_iter()
                .find(|t| t.request_id == request_id)
        })
        .map(|t| billed_text(t.input_tokens, t.output_tokens, &money(t.cost, t.currency)))
        .unwrap_or_default();
    serde_json::json!({ "billed": billed }).to_string()
}
