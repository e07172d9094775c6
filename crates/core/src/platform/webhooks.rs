//! Webhook deliveries: an event written for an account is queued, in the transaction that writes it, for
//! each of the account's webhooks that wants it; a job sends it, signed, and retries with backoff for a day.
//!
//! Signature: `Barrack-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}" under the secret>`.
//! A receiver recomputes it over the raw body, compares in constant time, and refuses an old `t`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use barrack_store::Tx;
use barrack_store::events::EventRow;
use barrack_store::jobs::JobRow;
use barrack_store::webhooks::{self, Attempt, DeliveryRow, WebhookRow};
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::Sha256;

use crate::platform::config::WebhooksConfig;
use crate::platform::events::{event_type, event_view};
use crate::platform::ids::random_alphanumeric;
use crate::platform::jobs::{self, JobHandler, NewJob, Outcome};
use crate::{Context, Result};

pub const JOB_KIND: &str = "webhook_delivery";
pub const SIGNATURE_HEADER: &str = "Barrack-Signature";
pub const DELIVERY_HEADER: &str = "Barrack-Delivery";
pub const EVENT_TYPE_HEADER: &str = "Barrack-Event-Type";

/// How long a delivery is retried before it is given up as failed.
pub const RETRY_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// The wait after the first failed attempt; it doubles after each, up to [`MAX_RETRY_DELAY_MS`].
pub const FIRST_RETRY_DELAY_MS: i64 = 30_000;
pub const MAX_RETRY_DELAY_MS: i64 = 3600 * 1000;

/// The wait after `attempts` failed attempts.
pub fn retry_delay_ms(attempts: i64) -> i64 {
    let doublings = (attempts - 1).clamp(0, 20) as u32;
    FIRST_RETRY_DELAY_MS
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY_DELAY_MS)
}

/// Whether a webhook's filter takes events of `event_type`: an empty filter takes all, an entry takes
/// its own type, and `instance.*` every type of instances.
pub fn wants(filter: &[String], event_type: &str) -> bool {
    filter.is_empty()
        || filter.iter().any(|f| match f.strip_suffix(".*") {
            Some(resource) => event_type
                .split_once('.')
                .is_some_and(|(r, _)| r == resource),
            None => f == event_type,
        })
}

/// The event types a webhook's row holds.
pub fn filter_of(row: &WebhookRow) -> Vec<String> {
    serde_json::from_str(&row.event_types).unwrap_or_default()
}

/// The `Barrack-Signature` value of `body` sent at `timestamp` (unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Queues `event` for each of its account's webhooks that wants it, in the transaction writing it.
pub async fn enqueue_deliveries(tx: &mut Tx, event: &EventRow) -> Result<()> {
    let hooks = webhooks::for_account(&mut *tx, &event.account_id).await?;
    if hooks.is_empty() {
        return Ok(());
    }
    let kind = event_type(&event.resource_type, &event.kind);
    let body = serde_json::to_string(&event_view(event.clone())).map_err(crate::Error::internal)?;
    for hook in hooks.iter().filter(|h| wants(&filter_of(h), &kind)) {
        let delivery = DeliveryRow {
            id: new_delivery_id(),
            webhook_id: hook.id.clone(),
            account_id: event.account_id.clone(),
            event_id: event.id.clone(),
            event_type: kind.clone(),
            body: body.clone(),
            status: "pending".into(),
            attempts: 0,
            response_status: None,
            last_error: None,
            next_attempt_at: Some(event.created_at),
            replay_of: None,
            created_at: event.created_at,
            updated_at: event.created_at,
        };
        queue(tx, &delivery).await?;
    }
    Ok(())
}

pub fn new_delivery_id() -> String {
    format!("whd-{}", random_alphanumeric(16))
}

/// Writes a delivery and the job that sends it.
pub async fn queue(tx: &mut Tx, delivery: &DeliveryRow) -> Result<()> {
    webhooks::insert_delivery(&mut *tx, delivery).await?;
    jobs::enqueue(
        tx,
        NewJob {
            kind: JOB_KIND,
            resource_id: &delivery.id,
            payload: String::new(),
            // Attempts at the job, spent only by database errors: failed sends wait (see `DeliveryWorker`).
            max_attempts: 10,
        },
        delivery.created_at,
    )
    .await?;
    Ok(())
}

/// Deliveries deleted per statement while pruning the log, so no statement holds the table for long.
pub const PRUNE_BATCH: u32 = 1_000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Deletes the deliveries older than `[webhooks] delivery_retention_days` on the platform clock, in
/// batches of [`PRUNE_BATCH`]; how many went. Every replica runs it with its meter: deleting is
/// idempotent, so replicas running it together only share the work.
pub async fn prune_deliveries(context: &Context) -> Result<u64> {
    let retention_ms = i64::from(context.config.webhooks.delivery_retention_days) * DAY_MS;
    let before = context.clock.now_ms() - retention_ms;
    let mut pruned = 0;
    loop {
        let batch = context
            .store
            .prune_webhook_deliveries(before, PRUNE_BATCH)
            .await?;
        pruned += batch;
        if batch < u64::from(PRUNE_BATCH) {
            return Ok(pruned);
        }
        tokio::task::yield_now().await;
    }
}

/// Which addresses webhooks may send to.
#[derive(Debug, Clone)]
pub struct TargetPolicy {
    allow_private: bool,
    allowed: Vec<IpNet>,
}

impl TargetPolicy {
    pub fn new(config: &WebhooksConfig) -> TargetPolicy {
        TargetPolicy {
            allow_private: config.allow_private_targets,
            allowed: config
                .allowed_targets
                .iter()
                .filter_map(|t| {
                    let t = t.trim();
                    t.parse::<IpNet>()
                        .ok()
                        .or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from))
                })
                .collect(),
        }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow_private || is_public(ip) || self.allowed.iter().any(|n| n.contains(&ip))
    }
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Addresses reachable on the public internet: not loopback, private, link-local (cloud metadata),
/// shared (carrier-grade NAT), unspecified, multicast, broadcast or reserved. IPv6 is public only in
/// global unicast (2000::/3), and there not in the IETF's special-purpose and documentation blocks or
/// 6to4: every form that embeds an IPv4 address (IPv4-compatible `::a.b.c.d`, translated
/// `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo) could name 127.0.0.1 or the
/// metadata address.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 192 && b == 88 && v4.octets()[2] == 99)
                || (a == 198 && (b == 18 || b == 19)))
        }
        IpAddr::V6(v6) => {
            let [first, second, ..] = v6.segments();
            let global_unicast = (first & 0xe000) == 0x2000;
            let special = match first {
                // IETF protocol assignments (Teredo among them), 2001::/23; documentation, 2001:db8::/32.
                0x2001 => second < 0x0200 || second == 0x0db8,
                // 6to4.
                0x2002 => true,
                // Documentation, 3fff::/20.
                0x3fff => second < 0x1000,
                _ => false,
            };
            global_unicast && !special
        }
    }
}

/// Why a target is refused, in words for the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// A webhook URL checked: `http` or `https`, a host, no credentials. An HTTPS receiver's certificate is
/// verified at each delivery (against the platform's CAs and the operator's bundle).
pub fn parse_target(text: &str) -> std::result::Result<url::Url, Refused> {
    let url = url::Url::parse(text.trim())
        .map_err(|_| Refused("URL must be an absolute http or https URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused("URL must use http or https".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Refused("URL must name a host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused("URL must not carry credentials".into()));
    }
    // Nothing listens on port 0: such a webhook could never be delivered.
    if url.port() == Some(0) {
        return Err(Refused("URL's port must be between 1 and 65535".into()));
    }
    Ok(url)
}

/// The addresses `url` resolves to, all permitted by `policy`: a name resolving to any refused address is
/// refused, so a receiver cannot point its name at the control plane's own network.
pub async fn resolve_target(
    url: &url::Url,
    policy: &TargetPolicy,
) -> std::result::Result<Vec<SocketAddr>, Refused> {
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| Refused(format!("Host '{name}' does not resolve")))?
            .collect(),
        None => return Err(Refused("URL must name a host".into())),
    };
    if addrs.is_empty() {
        return Err(Refused("URL's host has no address".into()));
    }
    if let Some(refused) = addrs.iter().find(|a| !policy.permits(a.ip())) {
        return Err(Refused(format!(
            "URL resolves to {}, a private or reserved address; webhooks are sent to public addresses only",
            refused.ip()
        )));
    }
    Ok(addrs)
}

/// One signed POST of a delivery.
pub struct Post<'a> {
    pub url: &'a url::Url,
    /// The checked address to connect to (the URL's host is not resolved again).
    pub address: SocketAddr,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'a str,
}

/// Sends webhook requests (the server's HTTP client).
#[async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    /// The answer's HTTP status, or why none came.
    async fn post(&self, post: Post<'_>) -> std::result::Result<u16, String>;
}

/// Runs delivery jobs: one attempt each time; a failed attempt waits (clock-driven backoff) without
/// spending the job's attempts, until the retry window has passed.
pub struct DeliveryWorker {
    context: Arc<Context>,
    sender: Arc<dyn WebhookSender>,
    policy: TargetPolicy,
}

impl DeliveryWorker {
    pub fn new(context: Arc<Context>, sender: Arc<dyn WebhookSender>) -> DeliveryWorker {
        let policy = TargetPolicy::new(&context.config.webhooks);
        DeliveryWorker {
            context,
            sender,
            policy,
        }
    }

    /// One attempt: the answer's status, or why there was none.
    async fn attempt(
        &self,
        hook: &WebhookRow,
        delivery: &DeliveryRow,
    ) -> (Option<u16>, std::result::Result<(), String>) {
        let url = match parse_target(&hook.url) {
            Ok(url) => url,
            Err(Refused(why)) => return (None, Err(why)),
        };
        // Resolved again at each attempt: a name that now points at a refused address is not followed.
        let addrs = match resolve_target(&url, &self.policy).await {
            Ok(addrs) => addrs,
            Err(Refused(why)) => return (None, Err(why)),
        };
        // Real time even when the simulation clock was moved: receivers check `t` against their own clock.
        let timestamp = self.context.clock.real_ms().div_euclid(1000);
        let post = Post {
            url: &url,
            address: addrs[0],
            headers: vec![
                ("Content-Type", "application/json".into()),
                (
                    SIGNATURE_HEADER,
                    signature(&hook.secret, timestamp, &delivery.body),
                ),
                (DELIVERY_HEADER, delivery.id.clone()),
                (EVENT_TYPE_HEADER, delivery.event_type.clone()),
            ],
            body: &delivery.body,
        };
        match self.sender.post(post).await {
            Ok(status) if (200..300).contains(&status) => (Some(status), Ok(())),
            Ok(status) => (Some(status), Err(format!("the receiver answered {status}"))),
            Err(why) => (None, Err(why)),
        }
    }
}

#[async_trait]
impl JobHandler for DeliveryWorker {
    async fn run(&self, job: &JobRow) -> Outcome {
        let store = &self.context.store;
        let delivery = match store.webhook_delivery(&job.resource_id).await {
            Ok(Some(d)) if d.status == "pending" => d,
            // Deleted with its webhook, or already settled by an earlier run of this job.
            Ok(_) => return Outcome::Done,
            Err(e) => return e.into(),
        };
        let hook = match store
            .webhook(&delivery.account_id, &delivery.webhook_id)
            .await
        {
            Ok(Some(hook)) => hook,
            Ok(None) => return Outcome::Done,
            Err(e) => return e.into(),
        };
        let (response_status, result) = self.attempt(&hook, &delivery).await;
        let now = self.context.clock.now_ms();
        let attempts = delivery.attempts + 1;
        let delay = retry_delay_ms(attempts);
        let (status, next) = match &result {
            Ok(()) => ("delivered", None),
            Err(_) if now + delay - delivery.created_at > RETRY_WINDOW_MS => ("failed", None),
            Err(_) => ("pending", Some(now + delay)),
        };
        let attempt = Attempt {
            status,
            response_status: response_status.map(i64::from),
            last_error: result.as_ref().err().map(String::as_str),
            next_attempt_at: next,
        };
        if let Err(e) = store
            .record_delivery_attempt(&delivery.id, &attempt, now)
            .await
        {
            return e.into();
        }
        match next {
            Some(at) => Outcome::Wait {
                after_ms: at - now,
                payload: job.payload.clone(),
            },
            None => Outcome::Done,
        }
    }
}

/// The retry schedule is part of the API's promise: doubling from 30 s, an hour at most, for a day.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_thirty_seconds_up_to_an_hour() {
        let delays: Vec<i64> = (1..=9).map(retry_delay_ms).collect();
        assert_eq!(
            delays,
            [30, 60, 120, 240, 480, 960, 1920, 3600, 3600].map(|s| s * 1000)
        );
    }

    #[test]
    fn filters_take_exact_types_and_whole_resource_types() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(wants(&[], "instance.created"));
        assert!(wants(&f(&["instance.*"]), "instance.status_changed"));
        assert!(!wants(&f(&["instance.*"]), "volume.created"));
        assert!(wants(&f(&["volume.created"]), "volume.created"));
        assert!(!wants(&f(&["volume.created"]), "volume.status_changed"));
    }

    #[test]
    fn private_and_reserved_addresses_are_refused_unless_allowed() {
        let closed = TargetPolicy::new(&WebhooksConfig::default());
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            // IPv6 forms that embed 127.0.0.1, 169.254.169.254 or 10.0.0.1.
            "::127.0.0.1",
            "::a9fe:a9fe",
            "::ffff:0:7f00:1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::",
            "2001::1",
            // Special-purpose and documentation blocks.
            "100::1",
            "2001:2::1",
            "2001:db8::1",
            "3fff::1",
            "192.0.0.1",
            "192.88.99.1",
            "198.51.100.1",
        ] {
            assert!(!closed.permits(ip.parse().unwrap()), "{ip} refused");
        }
        for ip in [
            "8.8.8.8",
            "192.0.1.1",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450::1",
        ] {
            assert!(closed.permits(ip.parse().unwrap()), "{ip} permitted");
        }
        let open = TargetPolicy::new(&WebhooksConfig {
            allowed_targets: vec!["127.0.0.1".into(), "10.0.0.0/8".into()],
            ..WebhooksConfig::default()
        });
        assert!(open.permits("127.0.0.1".parse().unwrap()));
        assert!(open.permits("10.9.9.9".parse().unwrap()));
        assert!(!open.permits("192.168.1.1".parse().unwrap()));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature("secret", 1_700_000_000, r#"{"a":1}"#),
            "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }
}
