//! The instance page: its charts, and its forms for rules, volumes and firewalls.

use barrack_core::clock::Clock;
use reqwest::StatusCode;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{firewall_from_page, volume_from_page, with_instance};

on_both_databases!(the_instance_page_manages_rules_volumes_and_firewalls,);

async fn the_instance_page_manages_rules_volumes_and_firewalls(db: Db) {
    let app = TestApp::start(db).await;
    let (mut b, id) = with_instance(&app).await;
    let path = format!("/instances/{id}");

    // Charts drawn on the server, uptime and cost so far.
    app.clock.advance_ms(5 * 60_000);
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    for part in [
        "Utilisation",
        "<svg class=\"chart\"",
        "CPU use, percent",
        "GPU use, percent",
        "Network traffic",
        "Memory use, percent",
        "Uptime",
        "Cost so far",
        "5 min",
    ] {
        assert!(page.body.contains(part), "{part}: {}", page.body);
    }
    assert!(!page.body.contains(" style="), "no inline styles");
    let usage = b.get(&format!("{path}/usage")).await;
    assert_eq!(usage.status, StatusCode::OK);
    assert!(usage.body.contains("<polyline") || usage.body.contains("<circle"));

    // Security rules: the API's message at the field, then added and removed.
    let bad = b
        .post(
            &format!("{path}/rules"),
            &[
                ("direction", "ingress"),
                ("protocol", "tcp"),
                ("port_range_min", "eighty"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("id=\"rule-min-error\""), "{}", bad.body);
    let bad = b
        .post(
            &format!("{path}/rules"),
            &[
                ("direction", "ingress"),
                ("protocol", "tcp"),
                ("port_range_min", "8080"),
                ("port_range_max", "8081"),
                ("remote_ip_prefix", "not-a-cidr"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("id=\"rule-remote-error\""),
        "{}",
        bad.body
    );
    assert!(
        bad.body.contains("value=\"not-a-cidr\""),
        "kept what was typed"
    );
    let added = b
        .post(
            &format!("{path}/rules"),
            &[
                ("direction", "ingress"),
                ("protocol", "tcp"),
                ("port_range_min", "8080"),
                ("port_range_max", "8081"),
                ("remote_ip_prefix", "203.0.113.0/24"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let page = b.get(&path).await;
    assert!(page.body.contains("8080–8081") && page.body.contains("203.0.113.0/24"));
    let marker = format!("{path}/rules/");
    let start = page.body.find(&marker).unwrap() + marker.len();
    let rule = &page.body[start..start + page.body[start..].find('/').unwrap()];
    let removed = b.post(&format!("{path}/rules/{rule}/delete"), &[]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert!(!b.get(&path).await.body.contains("203.0.113.0/24"));

    // Volumes: attach one of the region, then detach it.
    let volume = volume_from_page(&app, &mut b, "res-data").await;
    let refused = b
        .post(&format!("{path}/volumes/attach"), &[("volume_id", "")])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("Choose a volume"));
    let attached = b
        .post(&format!("{path}/volumes/attach"), &[("volume_id", &volume)])
        .await;
    assert_eq!(attached.status, StatusCode::SEE_OTHER, "{}", attached.body);
    app.settle().await;
    let page = b.get(&path).await;
    assert!(
        page.body
            .contains(&format!("{path}/volumes/{volume}/detach"))
    );
    let detached = b
        .post(&format!("{path}/volumes/{volume}/detach"), &[])
        .await;
    assert_eq!(detached.status, StatusCode::SEE_OTHER, "{}", detached.body);
    app.settle().await;
    assert!(
        !b.get(&path)
            .await
            .body
            .contains(&format!("{path}/volumes/{volume}/detach"))
    );

    // Firewalls: attach one of the region, its rules shown with the instance's, then detach it.
    let firewall = firewall_from_page(&app, &mut b, "res-wall").await;
    let rule = b
        .post(
            &format!("/firewalls/{firewall}/rules"),
            &[
                ("direction", "ingress"),
                ("protocol", "udp"),
                ("port_range_min", "5353"),
                ("port_range_max", "5353"),
            ],
        )
        .await;
    assert_eq!(rule.status, StatusCode::SEE_OTHER, "{}", rule.body);
    let attached = b
        .post(
            &format!("{path}/firewalls/attach"),
            &[("firewall_id", &firewall)],
        )
        .await;
    assert_eq!(attached.status, StatusCode::SEE_OTHER, "{}", attached.body);
    app.settle().await;
    let page = b.get(&path).await;
    assert!(page.body.contains("res-wall") && page.body.contains("5353"));
    let detached = b
        .post(&format!("{path}/firewalls/{firewall}/detach"), &[])
        .await;
    assert_eq!(detached.status, StatusCode::SEE_OTHER, "{}", detached.body);
    app.settle().await;
    assert!(!b.get(&path).await.body.contains("5353"));
    app.stop().await;
}
