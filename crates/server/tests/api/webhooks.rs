//! Webhooks against a receiver on a local port: deliveries arrive signed as documented (and a forged or
//! altered one fails the receiver's check), a receiver answering 500 sees retries on the backoff
//! schedule, replays resend, private targets are refused at creation and again at delivery, another
//! account's webhooks are not found. HTTPS receivers are verified against the operator's CA bundle, and
//! the delivery log is pruned after its retention.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use barrack_api::webhooks::{CreateWebhookRequest, CreatedWebhook, WebhookDelivery};
use barrack_api::{PageQuery, Tier};
use barrack_client::{Client, ClientError};
use barrack_core::clock::{Clock, format_ms};
use barrack_core::platform::events::EVENT_TYPES;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::common::{Db, START_MS, TestApp, ssh_firewall};
use crate::on_both_databases;

on_both_databases!(
    deliveries_are_signed_retried_and_replayed,
    private_targets_are_refused_at_creation_and_at_delivery,
    other_accounts_webhooks_are_not_found,
    deliveries_give_up_after_a_day,
    https_receivers_are_verified_against_the_operators_ca,
    the_delivery_log_is_pruned_after_its_retention,
    low_balance_warnings_reach_the_accounts_webhooks,
    signatures_carry_real_time_after_the_clock_moved,
);

/// What the receiver was sent: headers and the raw body.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: String,
}

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    /// The status the receiver answers with.
    answer: Arc<AtomicU16>,
}

impl Receiver {
    /// A receiver on a local port answering `answer`; its URL.
    async fn start(answer: u16) -> (Receiver, String) {
        let (receiver, app) = Receiver::router(answer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    /// A receiver over HTTPS with the certificate of `tls`; its URL.
    async fn start_tls(answer: u16, tls: rustls::ServerConfig) -> (Receiver, String) {
        let (receiver, app) = Receiver::router(answer);
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/hook", tcp.local_addr().unwrap());
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
        };
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn router(answer: u16) -> (Receiver, axum::Router) {
        let receiver = Receiver::default();
        receiver.answer.store(answer, Ordering::SeqCst);
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |State(r): State<Receiver>, headers: HeaderMap, body: Bytes| async move {
                        r.received.lock().unwrap().push(Received {
                            headers,
                            body: String::from_utf8(body.to_vec()).unwrap(),
                        });
                        StatusCode::from_u16(r.answer.load(Ordering::SeqCst)).unwrap()
                    },
                ),
            )
            .with_state(receiver.clone());
        (receiver, app)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// TLS connections on a local port: a client that gives up during the handshake (it does not trust the
/// certificate) is no connection.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A private CA made for the test (its certificate as PEM) and the TLS set-up of a receiver on 127.0.0.1
/// whose certificate it signed.
fn private_ca() -> (String, rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Receivers' private CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        barrack_server::webhook_sender::crypto_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone(), ca.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    (ca.pem(), tls)
}

/// The receiver's check, as docs/api-design.md tells receivers to do it: split the header into `t` and
/// `v1`, compute HMAC-SHA256 of `"{t}.{body}"` under the secret, compare in constant time, refuse an old
/// `t`. Returns the timestamp when the delivery is genuine.
fn verify(secret: &str, header: &str, body: &str, now_s: i64) -> Option<i64> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (t, v1) = (t?, v1?);
    if (now_s - t).abs() > 300 {
        return None;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&v1).ok().map(|()| t)
}

fn hook(url: &str, types: &[&str]) -> CreateWebhookRequest {
    CreateWebhookRequest {
        url: url.into(),
        event_types: types.iter().map(|t| t.to_string()).collect(),
    }
}

async fn deliveries(client: &Client, id: &str) -> Vec<WebhookDelivery> {
    client
        .webhook_deliveries(id, &PageQuery::default())
        .await
        .unwrap()
        .data
        .deliveries
}

/// (status, fields at fault) of an error.
fn failure(e: ClientError) -> (u16, Vec<String>) {
    (
        e.status().unwrap(),
        e.field_errors()
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

/// A server that may send to 127.0.0.1 (as an operator allows a private network), an account, a receiver
/// answering `answer`, and the account's webhook to it for `types`.
struct Setup {
    app: TestApp,
    client: Client,
    receiver: Receiver,
    url: String,
    hook: CreatedWebhook,
}

async fn setup(db: Db, answer: u16, types: &[&str]) -> Setup {
    let app = TestApp::start_with(db, |c| {
        c.webhooks.allowed_targets = vec!["127.0.0.1".into()];
    })
    .await;
    let (client, _) = app.user(Tier::Advanced).await;
    let (receiver, url) = Receiver::start(answer).await;
    let hook = client
        .create_webhook(&hook(&url, types))
        .await
        .unwrap()
        .data;
    Setup {
        app,
        client,
        receiver,
        url,
        hook,
    }
}

/// Receivers refuse a `t` far from their own clock, so a delivery is signed with real time even after
/// the simulation clock was moved ahead.
async fn signatures_carry_real_time_after_the_clock_moved(db: Db) {
    let app = TestApp::start_in_real_time(db, |c| {
        c.webhooks.allowed_targets = vec!["127.0.0.1".into()];
    })
    .await;
    let (client, _) = app.user(Tier::Advanced).await;
    let (receiver, url) = Receiver::start(200).await;
    let created = client
        .create_webhook(&hook(&url, &["firewall.created"]))
        .await
        .unwrap()
        .data;
    app.admin.admin_advance_clock(600).await.unwrap();
    client
        .create_firewall(&ssh_firewall("moved"))
        .await
        .unwrap();
    let received = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            if let Some(r) = receiver.received().pop() {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the delivery arrives");
    let real_s = barrack_core::clock::system_now_ms() / 1000;
    let header = received.headers["barrack-signature"].to_str().unwrap();
    let t = verify(&created.secret, header, &received.body, real_s)
        .expect("the receiver's check against its own clock passes");
    assert!((real_s - t).abs() <= 5, "t={t}, real time {real_s}");
    app.stop().await;
}

async fn deliveries_are_signed_retried_and_replayed(db: Db) {
    let Setup {
        app,
        client,
        receiver,
        hook: created,
        ..
    } = setup(db, 500, &["firewall.created"]).await;
    let secret = created.secret.clone();
    assert!(secret.starts_with("whsec_") && secret.len() > 30);
    let id = created.webhook.id.clone();
    assert_eq!(created.webhook.event_types, ["firewall.created"]);
    let shown = client.webhook(&id).await.unwrap();
    assert!(
        !serde_json::to_string(&shown).unwrap().contains(&secret),
        "the secret is shown once"
    );

    let firewall_id = client
        .create_firewall(&ssh_firewall("edge"))
        .await
        .unwrap()
        .data
        .id;
    // Settling runs the delivery (500) and takes the firewall to SUCCESS, an event the filter leaves out.
    app.settle().await;
    assert_eq!(receiver.received().len(), 1);
    let log = deliveries(&client, &id).await;
    assert_eq!(log.len(), 1, "only firewall.created is delivered: {log:?}");
    let first = &log[0];
    assert_eq!(
        (first.status.as_str(), first.attempts, first.response_status),
        ("pending", 1, Some(500))
    );
    assert_eq!(first.event_type, "firewall.created");
    assert_eq!(
        first.next_attempt_at.as_deref(),
        Some(format_ms(START_MS + 30_000).as_str())
    );
    assert!(first.last_error.as_deref().unwrap().contains("500"));

    // Nothing is due before the backoff has passed.
    app.clock.advance_ms(29_000);
    app.settle().await;
    assert_eq!(receiver.received().len(), 1);
    app.clock.advance_ms(1_000);
    app.settle().await;
    assert_eq!(
        receiver.received().len(),
        2,
        "the second attempt after 30 s"
    );
    let second = &deliveries(&client, &id).await[0];
    assert_eq!((second.attempts, second.status.as_str()), (2, "pending"));
    assert_eq!(
        second.next_attempt_at.as_deref(),
        Some(format_ms(START_MS + 30_000 + 60_000).as_str()),
        "then after 60 s"
    );

    receiver.answer.store(204, Ordering::SeqCst);
    app.clock.advance_ms(60_000);
    app.settle().await;
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    let done = &deliveries(&client, &id).await[0];
    assert_eq!(
        (
            done.status.as_str(),
            done.attempts,
            done.response_status,
            done.next_attempt_at.as_deref()
        ),
        ("delivered", 3, Some(204), None)
    );

    // Every attempt is signed and verifies under the secret; the body is the event.
    let mut sent_at = Vec::new();
    for r in &received {
        let header = r.headers["barrack-signature"].to_str().unwrap();
        let now_s = app.clock.now_ms() / 1000;
        sent_at.push(verify(&secret, header, &r.body, now_s).expect("a genuine delivery verifies"));
        assert_eq!(r.headers["barrack-delivery"], done.id.as_str());
        assert_eq!(r.headers["barrack-event-type"], "firewall.created");
        assert_eq!(r.headers["content-type"], "application/json");
        let event: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(event["id"], done.event_id.as_str());
        assert_eq!(event["resource_id"], firewall_id.as_str());
        assert_eq!(event["kind"], "created");
    }
    assert_eq!(
        sent_at,
        [START_MS / 1000, START_MS / 1000 + 30, START_MS / 1000 + 90],
        "t is the time of each attempt"
    );
    // A forged delivery fails the check: another secret, an altered body, a replayed old signature.
    let genuine = &received[2];
    let header = genuine.headers["barrack-signature"].to_str().unwrap();
    let now_s = START_MS / 1000 + 90;
    assert!(verify("whsec_wrong", header, &genuine.body, now_s).is_none());
    let altered = genuine.body.replace("created", "deleted");
    assert_ne!(altered, genuine.body);
    assert!(verify(&secret, header, &altered, now_s).is_none());
    assert!(verify(&secret, header, &genuine.body, now_s + 3600).is_none());

    // A replay is a new delivery of the same event, signed anew.
    let replay = client
        .replay_webhook_delivery(&id, &done.id)
        .await
        .unwrap()
        .data;
    assert_ne!(replay.id, done.id);
    assert_eq!(replay.replay_of.as_deref(), Some(done.id.as_str()));
    assert_eq!((replay.status.as_str(), replay.attempts), ("pending", 0));
    app.settle().await;
    let received = receiver.received();
    assert_eq!(received.len(), 4);
    let again = &received[3];
    assert_eq!(again.body, genuine.body);
    assert_eq!(again.headers["barrack-delivery"], replay.id.as_str());
    let header = again.headers["barrack-signature"].to_str().unwrap();
    assert!(verify(&secret, header, &again.body, now_s).is_some());
    let log = deliveries(&client, &id).await;
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].id.as_str(), log[0].status.as_str()),
        (replay.id.as_str(), "delivered")
    );

    let missing = client
        .replay_webhook_delivery(&id, "whd-nope")
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404));

    client.delete_webhook(&id).await.unwrap();
    assert_eq!(client.webhook(&id).await.unwrap_err().status(), Some(404));
    client
        .create_firewall(&ssh_firewall("after"))
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(
        receiver.received().len(),
        4,
        "a deleted webhook gets nothing"
    );
    app.stop().await;
}

async fn private_targets_are_refused_at_creation_and_at_delivery(db: Db) {
    // Allowed when it was created (the receiver on 127.0.0.1).
    let Setup {
        mut app,
        client,
        receiver,
        hook: created,
        ..
    } = setup(db, 200, &[]).await;
    let id = created.webhook.id;
    for url in [
        "http://10.0.0.1/hook",
        "http://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/hook",
        "http://[fd00::1]/hook",
        "http://0.0.0.0/hook",
        "https://10.0.0.1/hook",
        "ftp://example.com/",
        "not a url",
        "http://user:pw@127.0.0.1/hook",
        "http://127.0.0.1:0/hook",
    ] {
        let e = client.create_webhook(&hook(url, &[])).await.unwrap_err();
        assert_eq!(failure(e), (400, vec!["url".to_string()]), "{url}");
    }
    for types in [
        &["instance"][..],
        &["Instance.created"],
        &["instance.created", "*"],
        // Well formed, but never recorded: a typo would otherwise subscribe to nothing, silently.
        &["instance.stopped"],
        &["instance.created", "volume.deleted"],
        &["server.*"],
    ] {
        let e = client
            .create_webhook(&hook("http://127.0.0.1:9/hook", types))
            .await
            .unwrap_err();
        assert_eq!(
            failure(e),
            (400, vec!["event_types".to_string()]),
            "{types:?}"
        );
    }
    let e = client
        .create_webhook(&hook("http://127.0.0.1:9/hook", &["instance.stopped"]))
        .await
        .unwrap_err();
    let said = &e.field_errors().unwrap()["event_types"][0];
    assert!(
        said.contains("'instance.stopped'") && said.contains("instance.status_changed"),
        "the message lists the types: {said}"
    );
    assert_eq!(client.webhooks().await.unwrap().data.webhooks.len(), 1);
    // Every type the log holds, and every resource's `.*`, is taken.
    let mut every: Vec<String> = EVENT_TYPES.iter().map(|t| t.to_string()).collect();
    every.extend(
        [
            "instance.*",
            "volume.*",
            "snapshot.*",
            "image.*",
            "firewall.*",
            "account.*",
        ]
        .map(String::from),
    );
    let all = client
        .create_webhook(&CreateWebhookRequest {
            url: "http://127.0.0.1:9/hook".into(),
            event_types: every.clone(),
        })
        .await
        .unwrap()
        .data;
    assert_eq!(all.webhook.event_types, every);
    client.delete_webhook(&all.webhook.id).await.unwrap();

    // By the time of delivery the operator no longer allows it (as when a name starts resolving to a
    // private address): the delivery is refused, and nothing is sent.
    app.restart_with(|_| {}).await;
    client.create_firewall(&ssh_firewall("edge")).await.unwrap();
    app.settle().await;
    assert!(receiver.received().is_empty());
    let log = deliveries(&client, &id).await;
    assert!(!log.is_empty());
    for d in &log {
        assert_eq!(
            (d.status.as_str(), d.attempts, d.response_status),
            ("pending", 1, None)
        );
        assert!(
            d.last_error.as_deref().unwrap().contains("private"),
            "{:?}",
            d.last_error
        );
    }
    app.stop().await;
}

async fn other_accounts_webhooks_are_not_found(db: Db) {
    let Setup {
        app,
        client,
        url,
        hook: created,
        ..
    } = setup(db, 200, &[]).await;
    let id = created.webhook.id;
    let (other, _) = app.user(Tier::Advanced).await;
    client.create_firewall(&ssh_firewall("edge")).await.unwrap();
    app.settle().await;
    let delivery = deliveries(&client, &id).await[0].id.clone();

    assert!(other.webhooks().await.unwrap().data.webhooks.is_empty());
    let status = |r: Result<(), ClientError>| r.unwrap_err().status();
    assert_eq!(status(other.webhook(&id).await.map(drop)), Some(404));
    assert_eq!(
        status(
            other
                .webhook_deliveries(&id, &PageQuery::default())
                .await
                .map(drop)
        ),
        Some(404)
    );
    assert_eq!(
        status(
            other
                .replay_webhook_delivery(&id, &delivery)
                .await
                .map(drop)
        ),
        Some(404)
    );
    assert_eq!(status(other.delete_webhook(&id).await.map(drop)), Some(404));
    // Nor can the other account's own webhook replay this account's delivery.
    let theirs = other
        .create_webhook(&hook(&url, &[]))
        .await
        .unwrap()
        .data
        .webhook
        .id;
    assert_eq!(
        status(
            other
                .replay_webhook_delivery(&theirs, &delivery)
                .await
                .map(drop)
        ),
        Some(404)
    );
    assert!(client.webhook(&id).await.is_ok(), "still there");
    app.stop().await;
}

async fn deliveries_give_up_after_a_day(db: Db) {
    let Setup {
        app,
        client,
        receiver,
        hook,
        ..
    } = setup(db, 503, &["firewall.created"]).await;
    let id = hook.webhook.id;
    client.create_firewall(&ssh_firewall("edge")).await.unwrap();
    app.settle().await;
    // Follow the schedule: each attempt when it is due, until the day is over.
    let mut attempts = 1;
    loop {
        let d = deliveries(&client, &id).await.remove(0);
        assert_eq!(d.attempts, attempts);
        let Some(next) = d.next_attempt_at else {
            assert_eq!(d.status, "failed");
            break;
        };
        let due = barrack_core::clock::parse_iso(&next).unwrap();
        assert!(
            due - START_MS <= 24 * 3600 * 1000,
            "no attempt is planned past a day"
        );
        app.clock.advance_ms(due - app.clock.now_ms());
        app.settle().await;
        attempts += 1;
    }
    // Doubling from 30 s up to an hour: 8 attempts in the first 64 minutes, then hourly.
    assert!(
        (25..=35).contains(&attempts),
        "{attempts} attempts in a day"
    );
    assert_eq!(receiver.received().len() as u32, attempts);
    app.stop().await;
}

async fn https_receivers_are_verified_against_the_operators_ca(db: Db) {
    let mut app = TestApp::start_with(db, |c| {
        c.webhooks.allowed_targets = vec!["127.0.0.1".into()];
    })
    .await;
    let (client, _) = app.user(Tier::Advanced).await;
    let (ca_pem, tls) = private_ca();
    let (receiver, url) = Receiver::start_tls(200, tls).await;
    let created = client
        .create_webhook(&hook(&url, &["firewall.created"]))
        .await
        .unwrap()
        .data;
    let id = created.webhook.id.clone();
    assert_eq!(created.webhook.url, url);

    // The receiver's CA is not trusted yet: the attempt fails on its certificate, logged and retried.
    client.create_firewall(&ssh_firewall("edge")).await.unwrap();
    app.settle().await;
    assert!(receiver.received().is_empty());
    let log = deliveries(&client, &id).await;
    assert_eq!(log.len(), 1);
    let first = &log[0];
    assert_eq!(
        (first.status.as_str(), first.attempts, first.response_status),
        ("pending", 1, None)
    );
    let error = first.last_error.as_deref().unwrap();
    assert!(
        error.contains("certificate") && error.contains("UnknownIssuer"),
        "{error}"
    );
    assert_eq!(
        first.next_attempt_at.as_deref(),
        Some(format_ms(START_MS + 30_000).as_str())
    );

    // The operator trusts the CA: the retry arrives, signed, over TLS.
    let bundle = app.database.dir.join("receivers-ca.pem");
    std::fs::write(&bundle, &ca_pem).unwrap();
    app.restart_with(|c| {
        c.webhooks.allowed_targets = vec!["127.0.0.1".into()];
        c.webhooks.ca_bundle_file = Some(bundle.clone());
    })
    .await;
    app.clock.advance_ms(30_000);
    app.settle().await;
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let done = &deliveries(&client, &id).await[0];
    assert_eq!(
        (done.status.as_str(), done.attempts, done.response_status),
        ("delivered", 2, Some(200))
    );
    let header = received[0].headers["barrack-signature"].to_str().unwrap();
    let now_s = app.clock.now_ms() / 1000;
    assert!(verify(&created.secret, header, &received[0].body, now_s).is_some());
    assert_eq!(received[0].headers["barrack-delivery"], done.id.as_str());

    // Trusting a private CA does not trust every certificate: another CA's receiver still fails.
    let (_, stranger_tls) = private_ca();
    let (stranger, stranger_url) = Receiver::start_tls(200, stranger_tls).await;
    let other = client
        .create_webhook(&hook(&stranger_url, &["firewall.created"]))
        .await
        .unwrap()
        .data;
    client
        .create_firewall(&ssh_firewall("second"))
        .await
        .unwrap();
    app.settle().await;
    assert!(stranger.received().is_empty());
    let failed = &deliveries(&client, &other.webhook.id).await[0];
    assert_eq!((failed.status.as_str(), failed.attempts), ("pending", 1));
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap()
            .contains("certificate"),
        "{failed:?}"
    );
    assert_eq!(
        receiver.received().len(),
        2,
        "the trusted one got its event"
    );
    app.stop().await;
}

async fn the_delivery_log_is_pruned_after_its_retention(db: Db) {
    let Setup {
        app,
        client,
        receiver,
        hook: created,
        ..
    } = setup(db, 200, &["firewall.created"]).await;
    let id = created.webhook.id;
    let day_ms = 24 * 3600 * 1000;
    // Two delivered on the first day; one failing for good (its receiver answers 500 for a day).
    client.create_firewall(&ssh_firewall("one")).await.unwrap();
    client.create_firewall(&ssh_firewall("two")).await.unwrap();
    app.settle().await;
    let old: Vec<String> = deliveries(&client, &id)
        .await
        .iter()
        .map(|d| d.id.clone())
        .collect();
    assert_eq!(old.len(), 2);
    receiver.answer.store(500, Ordering::SeqCst);
    client
        .create_firewall(&ssh_firewall("three"))
        .await
        .unwrap();
    app.settle().await;
    for _ in 0..30 {
        app.clock.advance_ms(3600 * 1000);
        app.settle().await;
    }
    let log = deliveries(&client, &id).await;
    assert_eq!(log.len(), 3);
    assert!(log.iter().any(|d| d.status == "failed"), "{log:?}");

    // 29 days on, a new delivery; the first day's are still within the 30 days.
    receiver.answer.store(200, Ordering::SeqCst);
    app.clock.advance_ms(28 * day_ms);
    client
        .create_firewall(&ssh_firewall("recent"))
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(deliveries(&client, &id).await.len(), 4);

    // Past 30 days the first day's deliveries go, delivered or failed; the recent one stays.
    app.clock.advance_ms(2 * day_ms);
    app.settle().await;
    let log = deliveries(&client, &id).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(!old.contains(&log[0].id));
    assert_eq!(log[0].status, "delivered");
    app.stop().await;
}

/// The meter's low-balance warnings are events like any other: a webhook that wants them is sent them.
async fn low_balance_warnings_reach_the_accounts_webhooks(db: Db) {
    let app = TestApp::start_with(db, |c| {
        c.webhooks.allowed_targets = vec!["127.0.0.1".into()];
    })
    .await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "10").await;
    let (receiver, url) = Receiver::start(200).await;
    let id = client
        .create_webhook(&hook(
            &url,
            &["account.low_balance_24h", "account.low_balance_1h"],
        ))
        .await
        .unwrap()
        .data
        .webhook
        .id;
    crate::billing::deploy(&client, "thrifty", 1).await;
    app.settle().await;
    // USD 2.52 an hour against USD 10: under a day's credit at the first run, under an hour's later.
    app.clock.advance_ms(60 * 60_000);
    app.settle().await;
    app.clock.advance_ms(150 * 60_000);
    app.settle().await;
    let types: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| {
            r.headers["barrack-event-type"]
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        types,
        ["account.low_balance_24h", "account.low_balance_1h"],
        "each warning is sent once"
    );
    let sent: serde_json::Value = serde_json::from_str(&receiver.received()[0].body).unwrap();
    assert_eq!(sent["kind"], "low_balance_24h");
    assert!(
        sent["cause"].as_str().unwrap().starts_with("Low balance: "),
        "{sent}"
    );
    let log = deliveries(&client, &id).await;
    assert!(log.iter().all(|d| d.status == "delivered"), "{log:?}");
    app.stop().await;
}
