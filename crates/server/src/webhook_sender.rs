//! Webhook deliveries over HTTP: each POST goes to the address the delivery checked, never to one the
//! name resolves to afterwards, and redirects are not followed (they could lead anywhere).

use std::time::Duration;

use async_trait::async_trait;
use barrack_core::platform::webhooks::{Post, WebhookSender};

/// How long a receiver has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct HttpWebhookSender;

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn post(&self, post: Post<'_>) -> Result<u16, String> {
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .user_agent(concat!("Barrack-Webhooks/", env!("CARGO_PKG_VERSION")));
        if let Some(url::Host::Domain(name)) = post.url.host() {
            client = client.resolve(name, post.address);
        }
        let client = client.build().map_err(|e| e.to_string())?;
        let mut request = client.post(post.url.as_str()).body(post.body.to_string());
        for (name, value) in post.headers {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(answer) => Ok(answer.status().as_u16()),
            Err(e) if e.is_timeout() => Err(format!("no answer within {} s", TIMEOUT.as_secs())),
            Err(e) => Err(format!("cannot reach the receiver: {e}")),
        }
    }
}
