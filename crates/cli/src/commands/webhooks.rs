//! `barrack webhooks`: endpoints the account's events are POSTed to, signed with a secret shown once;
//! what was delivered, and replays.

use barrack_api::webhooks::{CreateWebhookRequest, Webhook, WebhookDeliveryList};
use clap::Subcommand;

use super::{Ctx, Output, PageArgs};
use crate::error::CliError;
use crate::output::{Table, View, or_dash};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List your webhooks
    #[command(after_help = "Examples:\n  barrack webhooks list\n  barrack webhooks list -q")]
    List,
    /// Show one webhook
    #[command(after_help = "Example:\n  barrack webhooks show whk-0123456789abcdef")]
    Show {
        /// The webhook's id (whk-...)
        id: String,
    },
    /// Create a webhook; its signing secret is printed once (alone with -q)
    #[command(after_help = "Examples:\n  \
        barrack webhooks create --url https://hooks.example.com/barrack\n  \
        barrack webhooks create --url https://hooks.example.com/barrack --event-type 'instance.*' \
        --event-type volume.status_changed")]
    Create {
        /// Where events are POSTed (http or https)
        #[arg(long)]
        url: String,
        /// An event type to send (resource.kind, or resource.* for all of a resource); repeat for more;
        /// none: every event
        #[arg(long = "event-type", value_name = "TYPE")]
        event_types: Vec<String>,
    },
    /// Delete a webhook and its delivery log
    #[command(after_help = "Example:\n  barrack webhooks delete whk-0123456789abcdef")]
    Delete {
        /// The webhook's id (whk-...)
        id: String,
    },
    /// The webhook's deliveries, newest first: status, attempts, next attempt, last error
    #[command(after_help = "Examples:\n  \
        barrack webhooks deliveries whk-0123456789abcdef\n  \
        barrack webhooks deliveries whk-0123456789abcdef --limit 100 -o json")]
    Deliveries {
        /// The webhook's id (whk-...)
        id: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Send a delivery's event again, as a new delivery
    #[command(
        after_help = "Example:\n  barrack webhooks replay whk-0123456789abcdef whd-0123456789abcdef"
    )]
    Replay {
        /// The webhook's id (whk-...)
        id: String,
        /// The delivery's id (whd-...)
        delivery_id: String,
    },
}

pub async fn run(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::List => {
            let data = ctx.call(client.webhooks()).await?.data;
            let mut table = Table::new(&["ID", "URL", "EVENT TYPES", "CREATED"], "No webhooks.");
            for w in &data.webhooks {
                table.row([
                    w.id.clone(),
                    w.url.clone(),
                    event_types(w),
                    w.created_at.clone(),
                ]);
            }
            let ids: Vec<String> = data.webhooks.iter().map(|w| w.id.clone()).collect();
            Ok(Output::new(&data, View::Table(table)).ids(ids))
        }
        Command::Show { id } => {
            let data = ctx.call(client.webhook(&id)).await?.data;
            Ok(webhook_output(&data, &data, None))
        }
        Command::Create { url, event_types } => {
            let request = CreateWebhookRequest { url, event_types };
            let data = ctx.call(client.create_webhook(&request)).await?.data;
            Ok(webhook_output(&data, &data.webhook, Some(&data.secret)).notice(
                "Save the secret now: it is not shown again. Verify each delivery's Barrack-Signature with it.",
            ))
        }
        Command::Delete { id } => {
            let data = ctx.call(client.delete_webhook(&id)).await?.data;
            let view = View::Text(format!("Deleted webhook {}", data.id));
            Ok(Output::new(&data, view).ids([data.id.clone()]))
        }
        Command::Deliveries { id, page } => {
            let data = ctx
                .call(client.webhook_deliveries(&id, &page.query()))
                .await?
                .data;
            Ok(deliveries_output(data))
        }
        Command::Replay { id, delivery_id } => {
            let data = ctx
                .call(client.replay_webhook_delivery(&id, &delivery_id))
                .await?
                .data;
            let view = View::Text(format!(
                "Queued delivery {} (a replay of {delivery_id})",
                data.id
            ));
            Ok(Output::new(&data, view).ids([data.id.clone()]))
        }
    }
}

fn event_types(w: &Webhook) -> String {
    if w.event_types.is_empty() {
        "all".into()
    } else {
        w.event_types.join(", ")
    }
}

/// A webhook as fields (with its secret when just created), `data` as its JSON; `-q` prints its id.
fn webhook_output(data: &impl serde::Serialize, w: &Webhook, secret: Option<&str>) -> Output {
    let mut fields = vec![
        ("ID", w.id.clone()),
        ("URL", w.url.clone()),
        ("Event types", event_types(w)),
        ("Created", w.created_at.clone()),
    ];
    // `-q` prints a new webhook's secret, which is shown only this once, rather than its id.
    let quiet = secret.unwrap_or(&w.id).to_string();
    if let Some(secret) = secret {
        fields.push(("Secret", secret.to_string()));
    }
    Output::new(data, View::Fields(fields)).ids([quiet])
}

fn deliveries_output(data: WebhookDeliveryList) -> Output {
    let mut table = Table::new(
        &[
            "ID",
            "EVENT",
            "TYPE",
            "STATUS",
            "ATTEMPTS",
            "HTTP",
            "NEXT ATTEMPT",
            "LAST ERROR",
        ],
        "No deliveries.",
    );
    for d in &data.deliveries {
        table.row([
            d.id.clone(),
            d.event_id.clone(),
            d.event_type.clone(),
            d.status.clone(),
            d.attempts.to_string(),
            or_dash(d.response_status),
            or_dash(d.next_attempt_at.as_ref()),
            or_dash(d.last_error.as_ref()),
        ]);
    }
    let view = super::paged(table, &data.pagination);
    let ids: Vec<String> = data.deliveries.iter().map(|d| d.id.clone()).collect();
    Output::new(&data, view).ids(ids)
}
