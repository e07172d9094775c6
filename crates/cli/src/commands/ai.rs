//! `barrack ai`: hosted chat models, a chat call (whole or streamed), and what calls used and cost.

use std::io::{IsTerminal, Read, Write};

use barrack_api::ai::{
    ChatCompletionsRequest, ChatMessage, ChatRole, MessageContent, UsageHistoryQuery,
    UsageSummaryQuery,
};
use clap::Subcommand;

use super::{Ctx, Output};
use crate::error::CliError;
use crate::output::{Format, Table, View, money};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the models, their context and prices per million tokens
    #[command(after_help = "Example:\n  barrack ai models")]
    Models,
    /// Ask a model; the prompt is the argument, or stdin when there is none
    #[command(
        after_help = "Examples:\n  barrack ai chat --model barrack-sim-small 'What is NVLink?'\n  \
        echo 'Summarise this' | barrack ai chat --model barrack-sim-small --stream"
    )]
    Chat {
        /// A model id of `barrack ai models`
        #[arg(long)]
        model: String,
        /// Print the reply as it is generated
        #[arg(long)]
        stream: bool,
        /// A system message that comes before the prompt
        #[arg(long)]
        system: Option<String>,
        /// Most tokens of the reply
        #[arg(long)]
        max_tokens: Option<u32>,
        /// 0 to 2: higher gives more varied replies
        #[arg(long)]
        temperature: Option<f64>,
        /// The prompt (read from stdin when absent)
        prompt: Option<String>,
    },
    /// Requests, tokens and cost per model (or, with --history, each call)
    #[command(
        after_help = "Examples:\n  barrack ai usage\n  barrack ai usage --from 2025-01-01T00:00:00Z\n  barrack ai usage --history --limit 50"
    )]
    Usage {
        /// List the calls one by one, newest first
        #[arg(long)]
        history: bool,
        /// From this time, inclusive (ISO-8601 UTC) [default: 30 days ago]
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Until this time, exclusive (ISO-8601 UTC) [default: now]
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// With --history: page number, from 1
        #[arg(long, requires = "history")]
        page: Option<u32>,
        /// With --history: calls per page, 1 to 100 [default: 20]
        #[arg(long, requires = "history")]
        limit: Option<u32>,
    },
}

pub async fn run(command: Command, ctx: &Ctx, format: Format) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::Models => {
            let data = ctx.call(client.ai_models()).await?.data;
            let mut table = Table::new(
                &[
                    "ID",
                    "CONTEXT",
                    "MAX OUTPUT",
                    "INPUT / 1M",
                    "OUTPUT / 1M",
                    "DESCRIPTION",
                ],
                "No models.",
            );
            for m in &data.models {
                let prices = |p: &barrack_api::catalog::Prices| {
                    p.iter()
                        .map(|(c, a)| format!("{} {c}", money(a.0)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                table.row([
                    m.id.clone(),
                    m.context_length.to_string(),
                    m.max_output_tokens.to_string(),
                    prices(&m.prices.input),
                    prices(&m.prices.output),
                    m.description.clone(),
                ]);
            }
            let ids: Vec<String> = data.models.iter().map(|m| m.id.clone()).collect();
            Ok(Output::new(&data, View::Table(table)).ids(ids))
        }
        Command::Chat {
            model,
            stream,
            system,
            max_tokens,
            temperature,
            prompt,
        } => {
            let prompt = non_empty(match prompt {
                Some(p) => p,
                None => read_stdin()?,
            })?;
            let mut messages = Vec::new();
            if let Some(system) = system {
                messages.push(message(ChatRole::System, system));
            }
            messages.push(message(ChatRole::User, prompt));
            let request = ChatCompletionsRequest {
                model,
                messages,
                max_tokens,
                temperature,
                ..Default::default()
            };
            if stream {
                // The reply as it comes; with `-o json`, each chunk as the API sent it, one per line.
                // A reader that went away (`| head`) ends the printing, not the call.
                let mut stdout = std::io::stdout();
                let mut usage = None;
                ctx.call(client.ai_chat_stream(&request, |chunk| {
                    let shown = match format {
                        Format::Json => Some(std::borrow::Cow::Owned(format!(
                            "{}\n",
                            serde_json::to_string(&chunk).expect("chunks serialize")
                        ))),
                        Format::Table => chunk
                            .choices
                            .first()
                            .and_then(|c| c.delta.content.as_deref())
                            .map(|text| crate::output::printable(text, true)),
                    };
                    if let Some(text) = shown {
                        let _ = stdout.write_all(text.as_bytes());
                        let _ = stdout.flush();
                    }
                    if chunk.usage.is_some() {
                        usage = chunk.usage;
                    }
                }))
                .await?;
                let usage = usage.unwrap_or_default();
                if format == Format::Table {
                    let _ = writeln!(stdout);
                    eprintln!(
                        "{} input and {} output tokens",
                        usage.prompt_tokens, usage.completion_tokens
                    );
                }
                return Ok(Output::nothing());
            }
            let data = ctx.call(client.ai_chat(&request)).await?.data;
            let content = data
                .choices
                .first()
                .map(|c| c.message.content.clone())
                .unwrap_or_default();
            if let Some(billing) = &data.billing {
                eprintln!(
                    "{} input and {} output tokens, {} {}",
                    data.usage.prompt_tokens,
                    data.usage.completion_tokens,
                    billing.cost,
                    billing.currency
                );
            }
            Ok(Output::new(&data, View::Text(content)))
        }
        Command::Usage {
            history,
            from,
            to,
            page,
            limit,
        } => {
            if history {
                let query = UsageHistoryQuery {
                    from,
                    to,
                    page,
                    limit,
                };
                let data = ctx.call(client.ai_usage_history(&query)).await?.data;
                let mut table = Table::new(
                    &[
                        "ID", "MODEL", "INPUT", "OUTPUT", "COST", "STATUS", "CREATED",
                    ],
                    "No AI calls.",
                );
                for t in &data.transactions {
                    table.row([
                        t.id.clone(),
                        t.model.clone(),
                        t.input_tokens.to_string(),
                        t.output_tokens.to_string(),
                        format!("{} {}", t.cost, t.currency),
                        t.status.clone(),
                        t.created_at.clone(),
                    ]);
                }
                let view = super::paged(table, &data.pagination);
                let ids: Vec<String> = data.transactions.iter().map(|t| t.id.clone()).collect();
                return Ok(Output::new(&data, view).ids(ids));
            }
            let query = UsageSummaryQuery { from, to };
            let data = ctx.call(client.ai_usage_summary(&query)).await?.data;
            let mut table = Table::new(
                &["MODEL", "REQUESTS", "INPUT", "OUTPUT", "COST"],
                "No AI calls.",
            );
            for m in data.models.iter().chain([&data.total]) {
                table.row([
                    m.model.clone().unwrap_or_else(|| "total".into()),
                    m.requests.to_string(),
                    m.input_tokens.to_string(),
                    m.output_tokens.to_string(),
                    format!("{} {}", m.cost, data.currency),
                ]);
            }
            Ok(Output::new(&data, View::Table(table)))
        }
    }
}

fn message(role: ChatRole, text: String) -> ChatMessage {
    ChatMessage {
        role,
        content: Some(MessageContent::Text(text)),
        name: None,
    }
}

fn read_stdin() -> Result<String, CliError> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(CliError::Usage(
            "give a prompt, or pipe one in on stdin".into(),
        ));
    }
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| CliError::Usage(format!("cannot read stdin: {e}")))?;
    Ok(text)
}

/// A prompt with something to answer: an empty one (argument or stdin) is refused before it is sent
/// and charged.
fn non_empty(prompt: String) -> Result<String, CliError> {
    if prompt.trim().is_empty() {
        return Err(CliError::Usage("the prompt is empty".into()));
    }
    Ok(prompt)
}
