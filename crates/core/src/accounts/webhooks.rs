//! Webhooks of an account: create (the signing secret shown once), list, get, delete, the delivery log
//! and replays. Deliveries themselves are queued and sent by `platform::webhooks`.

use std::sync::Arc;

use barrack_api::webhooks::{
    CreateWebhookRequest, CreatedWebhook, Webhook, WebhookDelivery, WebhookDeliveryList,
};
use barrack_api::{PageQuery, Pagination};
use barrack_store::webhooks::{self, DeliveryRow, WebhookRow};

use crate::accounts::Caller;
use crate::platform::clock::format_ms;
use crate::platform::events::{EVENT_TYPES, known_event_type};
use crate::platform::ids::random_alphanumeric;
use crate::platform::validate::Validator;
use crate::platform::webhooks::{
    Refused, TargetPolicy, new_delivery_id, parse_target, queue, resolve_target,
};
use crate::{Context, Error, Result};

/// Webhooks one account may hold.
pub const MAX_WEBHOOKS: u64 = 20;
/// Event types one webhook may filter on.
pub const MAX_EVENT_TYPES: usize = 50;
pub const MAX_URL_CHARS: usize = 2048;

#[derive(Clone)]
pub struct WebhookService {
    context: Arc<Context>,
}

impl WebhookService {
    pub fn new(context: Arc<Context>) -> WebhookService {
        WebhookService { context }
    }

    pub async fn create(
        &self,
        caller: &Caller,
        request: CreateWebhookRequest,
    ) -> Result<CreatedWebhook> {
        let mut v = Validator::new();
        let url = request.url.trim().to_string();
        if url.chars().count() > MAX_URL_CHARS {
            v.add(
                "url",
                format!("URL must be at most {MAX_URL_CHARS} characters"),
            );
        } else {
            let policy = TargetPolicy::new(&self.context.config.webhooks);
            let checked = match parse_target(&url) {
                Ok(parsed) => resolve_target(&parsed, &policy).await.map(|_| ()),
                Err(refused) => Err(refused),
            };
            if let Err(Refused(why)) = checked {
                v.add("url", why);
            }
        }
        let mut event_types: Vec<String> = Vec::new();
        for t in &request.event_types {
            let t = t.trim();
            if !valid_event_type(t) {
                v.add(
                    "event_types",
                    format!(
                        "'{t}' is not an event type: write resource.kind (instance.status_changed) \
                         or resource.* (instance.*)"
                    ),
                );
            } else if !known_event_type(t) {
                v.add(
                    "event_types",
                    format!(
                        "'{t}' is not an event type; the types are {} (or resource.* for all of a \
                         resource's)",
                        EVENT_TYPES.join(", ")
                    ),
                );
            } else if !event_types.iter().any(|e| e == t) {
                event_types.push(t.to_string());
            }
        }
        if event_types.len() > MAX_EVENT_TYPES {
            v.add(
                "event_types",
                format!("At most {MAX_EVENT_TYPES} event types"),
            );
        }
        v.finish()?;
        let secret = format!("whsec_{}", random_alphanumeric(32));
        let row = WebhookRow {
            id: format!("whk-{}", random_alphanumeric(16)),
            account_id: caller.account_id().to_string(),
            url,
            event_types: serde_json::to_string(&event_types).map_err(Error::internal)?,
            secret: secret.clone(),
            created_at: self.context.clock.now_ms(),
        };
        let mut tx = self.context.store.begin().await?;
        // Counted under the account's lock, so concurrent creations cannot pass the limit together.
        barrack_store::firewalls::lock_account(&mut tx, caller.account_id()).await?;
        if webhooks::count_for_account(&mut tx, caller.account_id()).await? >= MAX_WEBHOOKS {
            return Err(Error::conflict(
                "LIMIT_EXCEEDED",
                format!("An account may hold at most {MAX_WEBHOOKS} webhooks"),
            ));
        }
        webhooks::insert(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(CreatedWebhook {
            webhook: view(row),
            secret,
        })
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<Webhook>> {
        let rows = self.context.store.webhooks(caller.account_id()).await?;
        Ok(rows.into_iter().map(view).collect())
    }

    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Webhook> {
        self.row(caller, id).await.map(view)
    }

    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<()> {
        if self
            .context
            .store
            .delete_webhook(caller.account_id(), id)
            .await?
        {
            Ok(())
        } else {
            Err(Error::not_found("Webhook", id))
        }
    }

    /// The webhook's deliveries, newest first.
    pub async fn deliveries(
        &self,
        caller: &Caller,
        id: &str,
        page: PageQuery,
    ) -> Result<WebhookDeliveryList> {
        self.row(caller, id).await?;
        let page = page
            .validate()
            .map_err(|(field, message)| Error::field(field, message))?;
        let (rows, total) = self
            .context
            .store
            .webhook_deliveries(id, page.offset(), page.limit)
            .await?;
        Ok(WebhookDeliveryList {
            deliveries: rows.into_iter().map(delivery_view).collect(),
            pagination: Pagination::new(page, total),
        })
    }

    /// Sends a delivery's event again, as a new delivery (signed anew when sent).
    pub async fn replay(
        &self,
        caller: &Caller,
        id: &str,
        delivery_id: &str,
    ) -> Result<WebhookDelivery> {
        self.row(caller, id).await?;
        let original = self
            .context
            .store
            .webhook_delivery(delivery_id)
            .await?
            .filter(|d| d.webhook_id == id && d.account_id == caller.account_id())
            .ok_or_else(|| Error::not_found("Delivery", delivery_id))?;
        let now = self.context.clock.now_ms();
        let replay = DeliveryRow {
            id: new_delivery_id(),
            status: "pending".into(),
            attempts: 0,
            response_status: None,
            last_error: None,
            next_attempt_at: Some(now),
            replay_of: Some(original.id.clone()),
            created_at: now,
            updated_at: now,
            ..original
        };
        let mut tx = self.context.store.begin().await?;
        queue(&mut tx, &replay).await?;
        tx.commit().await?;
        self.context.work.notify_one();
        Ok(delivery_view(replay))
    }

    async fn row(&self, caller: &Caller, id: &str) -> Result<WebhookRow> {
        self.context
            .store
            .webhook(caller.account_id(), id)
            .await?
            .ok_or_else(|| Error::not_found("Webhook", id))
    }
}

/// `resource.kind` or `resource.*`, in lowercase letters and underscores.
fn valid_event_type(t: &str) -> bool {
    let word = |w: &str| {
        !w.is_empty()
            && w.len() <= 40
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    match t.split_once('.') {
        Some((resource, kind)) => word(resource) && (kind == "*" || word(kind)),
        None => false,
    }
}

fn view(row: WebhookRow) -> Webhook {
    Webhook {
        event_types: crate::platform::webhooks::filter_of(&row),
        id: row.id,
        url: row.url,
        created_at: format_ms(row.created_at),
    }
}

fn delivery_view(row: DeliveryRow) -> WebhookDelivery {
    WebhookDelivery {
        id: row.id,
        webhook_id: row.webhook_id,
        event_id: row.event_id,
        event_type: row.event_type,
        status: row.status,
        attempts: row.attempts as u32,
        response_status: row.response_status.map(|s| s as u16),
        last_error: row.last_error,
        next_attempt_at: row.next_attempt_at.map(format_ms),
        replay_of: row.replay_of,
        created_at: format_ms(row.created_at),
        updated_at: format_ms(row.updated_at),
    }
}
