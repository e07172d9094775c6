//! Creating, listing and showing firewalls, with every protocol a rule can name.

use barrack_api::Tier;
use barrack_api::firewalls::FirewallQuery;
use barrack_core::clock::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::firewall;

on_both_databases!(create_list_show_and_protocols,);

async fn create_list_show_and_protocols(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Advanced).await;

    let body = json!({"name": "web servers", "description": "HTTPS from anywhere, SSH from the office",
    "region": "FINLAND-1", "rules": [
        {"direction": "ingress", "protocol": "TCP", "port_range_min": 443, "port_range_max": 443},
        {"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
         "remote_ip_prefix": "203.0.113.0/24"},
        {"direction": "ingress", "ethertype": "ipv6", "protocol": "ipv6-icmp", "remote_ip_prefix": "2001:db8::/32"}
    ]});
    let raw = client
        .raw(Method::POST, "/api/firewalls/", Some(&body))
        .await
        .unwrap();
    assert_eq!(raw.status, 201, "{}", raw.text);
    assert_eq!(raw.body["tier"], "advanced");
    let d = &raw.body["data"];
    let id = d["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("BRK-") && id.ends_with('F') && id.len() == 11);
    assert_eq!(d["name"], "web servers");
    assert_eq!(d["description"], "HTTPS from anywhere, SSH from the office");
    assert_eq!(d["region"], "FINLAND-1");
    assert_eq!(d["status"], "CREATING");
    assert_eq!(
        (d["rule_count"].clone(), d["attachment_count"].clone()),
        (json!(3), json!(0))
    );
    assert_eq!(d["rules"][0]["protocol"], "tcp", "normalised");
    assert_eq!(d["rules"][0]["ethertype"], "IPv4", "the default ethertype");
    assert_eq!(d["rules"][0]["source"], id.as_str());
    assert_eq!(d["rules"][2]["ethertype"], "IPv6");
    assert!(d["rules"][1]["id"].as_str().unwrap().ends_with('R'));
    assert_eq!(d["instances"], json!([]));
    assert_eq!(d["created_at"], "2025-01-15T10:30:00Z");

    app.settle().await;
    let shown = client.firewall(&id).await.unwrap().data;
    assert_eq!(shown.status, "SUCCESS");
    assert_eq!(shown.rules.len(), 3);

    // A firewall without rules or description; lists are newest first, filtered by region.
    app.clock.advance_ms(1000);
    let bare = client
        .raw(
            Method::POST,
            "/api/firewalls/",
            Some(&json!({"name": "empty", "region": "FINLAND-2"})),
        )
        .await
        .unwrap();
    assert_eq!(bare.status, 201, "{}", bare.text);
    assert_eq!(bare.body["data"]["description"], "");
    let list = client
        .firewalls(&FirewallQuery::default())
        .await
        .unwrap()
        .data;
    assert_eq!(list.pagination.total, 2);
    assert_eq!(list.firewalls[0].name, "empty");
    assert_eq!(
        (
            list.firewalls[1].rule_count,
            list.firewalls[1].attachment_count
        ),
        (3, 0)
    );
    let finland_2 = FirewallQuery {
        region: Some("FINLAND-2".into()),
        ..Default::default()
    };
    assert_eq!(
        client
            .firewalls(&finland_2)
            .await
            .unwrap()
            .data
            .firewalls
            .len(),
        1
    );
    let page = FirewallQuery {
        limit: Some(1),
        page: Some(2),
        ..Default::default()
    };
    let second = client.firewalls(&page).await.unwrap().data;
    assert_eq!(
        (second.firewalls.len(), second.pagination.total_pages),
        (1, 2)
    );
    assert_eq!(second.firewalls[0].id, id);

    // Names are unique per account.
    let e = client
        .create_firewall(&firewall("empty", "FINLAND-1", vec![]))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("DUPLICATE_NAME")));

    // Protocols, by name, with whether they take ports.
    let protocols = client.firewall_protocols().await.unwrap().data;
    let tcp = protocols
        .protocols
        .iter()
        .find(|p| p.name == "tcp")
        .unwrap();
    assert_eq!((tcp.number, tcp.port_ranges), (6, true));
    let icmp = protocols
        .protocols
        .iter()
        .find(|p| p.name == "icmp")
        .unwrap();
    assert_eq!((icmp.number, icmp.port_ranges), (1, false));
    for name in ["udp", "sctp", "gre", "esp", "ipv6-icmp", "vrrp"] {
        assert!(protocols.protocols.iter().any(|p| p.name == name), "{name}");
    }
    assert_eq!(protocols.ethertypes, ["IPv4", "IPv6"]);

    // Events of the firewall's life.
    let events = client
        .raw(Method::GET, "/api/events/", None)
        .await
        .unwrap()
        .body;
    let firewall_events: Vec<&Value> = events["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource_id"] == id.as_str())
        .collect();
    assert_eq!(firewall_events.len(), 2, "{firewall_events:?}");
    assert_eq!(firewall_events[1]["to_status"], "SUCCESS");
    assert_eq!(firewall_events[1]["resource_type"], "firewall");
    app.stop().await;
}
