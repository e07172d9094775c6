//! Webhooks: the account's events sent, signed, to its own endpoints; and the event stream's query.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Pagination;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    /// Where events are POSTed (`http` or `https`).
    pub url: String,
    /// The event types sent (`instance.status_changed`, or `instance.*` for all of a resource type);
    /// empty for every event.
    pub event_types: Vec<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `http://` or `https://`, with a host and no credentials; an HTTPS receiver's certificate is verified
    /// at every attempt.
    pub url: String,
    /// Event types (`instance.status_changed`), or `resource.*` for all of a resource's; a type the
    /// server never records is refused. Absent, `null` or empty: every event.
    #[serde(default, deserialize_with = "crate::rules::null_as_default")]
    pub event_types: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The key of the deliveries' `Barrack-Signature`, shown only in this response.
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeletedWebhook {
    pub id: String,
}

/// One event sent (or being sent) to one webhook, kept in the log for the operator's retention (30 days
/// after the event by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDelivery {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    /// `instance.status_changed`, ...
    pub event_type: String,
    /// `pending` (not sent yet, or to be retried at `next_attempt_at`), `delivered` or `failed` (retries
    /// ran out).
    pub status: String,
    pub attempts: u32,
    /// The HTTP status of the last attempt's answer; null when none came.
    pub response_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    /// The delivery this one replays.
    pub replay_of: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryList {
    pub deliveries: Vec<WebhookDelivery>,
    pub pagination: Pagination,
}

/// `?after=` of the event stream. Other parameters are refused: a stream that ignored a mistyped one
/// would run on unasked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventStreamQuery {
    /// Resume after this event id (as the `Last-Event-ID` header does, which takes precedence); absent: the
    /// stream starts with the events written from now on.
    pub after: Option<String>,
}
