//! Webhooks, and the account's event stream.

use std::time::Duration;

use barrack_api::instances::Event;
use barrack_api::webhooks::{
    CreateWebhookRequest, CreatedWebhook, DeletedWebhook, Webhook, WebhookDelivery,
    WebhookDeliveryList, WebhookList,
};
use barrack_api::{Envelope, PageQuery};
use reqwest::Method;

use crate::ai::api_error;
use crate::{Client, ClientError, Result, with_query};

impl Client {
    pub async fn webhooks(&self) -> Result<Envelope<WebhookList>> {
        self.get("/api/webhooks/").await
    }

    pub async fn create_webhook(
        &self,
        request: &CreateWebhookRequest,
    ) -> Result<Envelope<CreatedWebhook>> {
        self.post("/api/webhooks/", request).await
    }

    pub async fn webhook(&self, id: &str) -> Result<Envelope<Webhook>> {
        self.get(&format!("/api/webhooks/{id}/")).await
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<Envelope<DeletedWebhook>> {
        self.request::<_, ()>(Method::DELETE, &format!("/api/webhooks/{id}/"), None)
            .await
    }

    pub async fn webhook_deliveries(
        &self,
        id: &str,
        page: &PageQuery,
    ) -> Result<Envelope<WebhookDeliveryList>> {
        self.get(&with_query(
            &format!("/api/webhooks/{id}/deliveries/"),
            page,
        ))
        .await
    }

    pub async fn replay_webhook_delivery(
        &self,
        id: &str,
        delivery_id: &str,
    ) -> Result<Envelope<WebhookDelivery>> {
        self.request::<_, ()>(
            Method::POST,
            &format!("/api/webhooks/{id}/deliveries/{delivery_id}/replay/"),
            None,
        )
        .await
    }

    /// The account's events as they happen, after event `after` (`Last-Event-ID`), or from now on.
    /// The stream has no overall timeout; reconnect with the last event's id when it ends.
    pub async fn event_stream(&self, after: Option<&str>) -> Result<EventStream> {
        // Without the client's request timeout, which would cut a quiet stream.
        crate::install_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ClientError::Transport)?;
        let mut call = http
            .get(format!("{}/api/events/stream/", self.base_url))
            .header("Accept", "text/event-stream");
        if let Some(after) = after {
            call = call.header("Last-Event-ID", after);
        }
        if let Some(key) = &self.api_key {
            call = call.header("X-API-Key", key);
        } else if let Some(token) = &self.bearer {
            call = call.bearer_auth(token);
        }
        let response = call.send().await.map_err(ClientError::Transport)?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let text = response.text().await.map_err(ClientError::Transport)?;
            return Err(api_error(status, &text));
        }
        Ok(EventStream {
            response,
            buffer: Vec::new(),
            data: String::new(),
            last_event_id: after.map(str::to_string),
        })
    }
}

/// An open event stream.
pub struct EventStream {
    response: reqwest::Response,
    /// Bytes not yet read as lines.
    buffer: Vec<u8>,
    /// The `data:` of the message being read; kept here so a `next` given up half-way loses nothing.
    data: String,
    last_event_id: Option<String>,
}

impl EventStream {
    /// The next event; `None` when the server ended the stream (reconnect after
    /// [`EventStream::last_event_id`]). Cancel-safe: dropping the future loses no event.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        loop {
            while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    if self.data.is_empty() {
                        continue;
                    }
                    let data = std::mem::take(&mut self.data);
                    let event: Event =
                        serde_json::from_str(&data).map_err(|e| ClientError::Decode {
                            status: 200,
                            message: e.to_string(),
                            body: data.clone(),
                        })?;
                    self.last_event_id = Some(event.id.clone());
                    return Ok(Some(event));
                }
                // Comments (keep-alives) start with ':'; `id:` repeats the event's own id.
                if let Some(value) = line.strip_prefix("data:") {
                    if !self.data.is_empty() {
                        self.data.push('\n');
                    }
                    self.data.push_str(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            match self
                .response
                .chunk()
                .await
                .map_err(ClientError::Transport)?
            {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }

    /// The id of the last event received (or the one the stream resumed after).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }
}
