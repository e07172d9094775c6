//! Webhooks and the event stream through the binary: create (the secret printed once), list, show,
//! deliveries, replay, delete; `events --follow` resuming after an event.

use std::time::{Duration, Instant};

use barrack_api::PageQuery;
use barrack_client::Client;

use crate::common::TestServer;

/// Waits for the background worker's first attempt at the webhook's deliveries; their ids.
async fn attempted_deliveries(api: &Client, webhook: &str) -> Vec<String> {
    let started = Instant::now();
    loop {
        let log = api
            .webhook_deliveries(webhook, &PageQuery::default())
            .await
            .unwrap()
            .data
            .deliveries;
        if !log.is_empty() && log.iter().all(|d| d.attempts >= 1) {
            return log.into_iter().map(|d| d.id).collect();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no attempt yet: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_the_event_stream_through_the_cli() {
    let server =
        TestServer::start_with(|c| c.webhooks.allowed_targets = vec!["127.0.0.1".into()]).await;
    let cli = server.barrack();
    let api = server.client();

    let refused = cli
        .run(&["webhooks", "create", "--url", "http://10.1.2.3/hook"])
        .await;
    assert_eq!(refused.code, 6, "{refused:?}");
    assert!(refused.stderr.contains("url"), "{refused:?}");

    // Port 9 (discard) refuses connections: every attempt fails and is logged.
    let created = cli
        .run(&[
            "webhooks",
            "create",
            "--url",
            "http://127.0.0.1:9/hook",
            "--event-type",
            "firewall.*",
            "-o",
            "json",
        ])
        .await
        .json();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["event_types"], serde_json::json!(["firewall.*"]));
    let shown = cli.run(&["webhooks", "show", &id]).await;
    assert!(shown.ok().contains("firewall.*") && !shown.ok().contains("whsec_"));
    assert_eq!(
        cli.run(&["webhooks", "list", "-q"]).await.lines(),
        [id.as_str()]
    );
    // `-q` prints the secret of a new webhook, shown only this once.
    let quiet = cli
        .run(&[
            "webhooks",
            "create",
            "--url",
            "http://127.0.0.1:9/other",
            "-q",
        ])
        .await;
    let secret = match quiet.lines()[..] {
        [secret] => secret.to_string(),
        _ => panic!("one line expected: {quiet:?}"),
    };
    assert!(secret.starts_with("whsec_"), "{quiet:?}");
    let other = api
        .webhooks()
        .await
        .unwrap()
        .data
        .webhooks
        .into_iter()
        .find(|w| w.url.ends_with("/other"))
        .unwrap()
        .id;
    cli.run(&["webhooks", "delete", &other]).await.ok();

    cli.run(&[
        "firewalls",
        "create",
        "--name",
        "edge",
        "--region",
        "FINLAND-1",
        "--rule",
        "ingress:tcp:22",
    ])
    .await
    .ok();
    let delivered = attempted_deliveries(&api, &id).await;
    let table = cli.run(&["webhooks", "deliveries", &id]).await;
    let table = table.ok();
    assert!(
        table.contains("pending") && table.contains("firewall.created"),
        "{table}"
    );
    assert!(table.contains("cannot reach the receiver"), "{table}");
    let replayed = cli
        .run(&["webhooks", "replay", &id, &delivered[0], "-q"])
        .await;
    let replay_id = replayed.ok().trim().to_string();
    assert!(replay_id.starts_with("whd-") && replay_id != delivered[0]);
    let log = cli
        .run(&["webhooks", "deliveries", &id, "-o", "json"])
        .await
        .json();
    assert!(
        log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["replay_of"] == delivered[0].as_str())
    );

    // `events --follow --after` prints what came after that event, one JSON object a line.
    let events = api.events(&PageQuery::default()).await.unwrap().data.events;
    let created_event = events.iter().find(|e| e.kind == "created").unwrap();
    let followed = cli
        .run(&[
            "events",
            "--follow",
            "--after",
            &created_event.id,
            "--count",
            "1",
            "-o",
            "json",
        ])
        .await;
    let lines = followed.lines();
    assert_eq!(lines.len(), 1, "{followed:?}");
    let next: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(next["resource_id"], created_event.resource_id.as_str());
    assert_eq!(next["kind"], "status_changed");
    let bad = cli
        .run(&["events", "--follow", "--after", "evt-nope", "--count", "1"])
        .await;
    assert_eq!(bad.code, 6, "{bad:?}");

    let deleted = cli.run(&["webhooks", "delete", &id]).await;
    assert!(deleted.ok().contains(&id));
    assert!(
        cli.run(&["webhooks", "list", "-q"])
            .await
            .lines()
            .is_empty()
    );
    assert_eq!(cli.run(&["webhooks", "show", &id]).await.code, 4);
    server.stop().await;
}
