//! Firewalls against the simulated data centre in step mode: create, list, rules, attach to and detach
//! from instances, delete; what the driver is asked to program; the documented rules and their status
//! codes. Also: public addresses are never handed to two instances.

use std::collections::BTreeSet;

use barrack_api::PageQuery;
use barrack_api::Tier;
use barrack_api::firewalls::{CreateFirewallRequest, FirewallQuery};
use barrack_api::instances::{DeployRequest, SecurityRuleRequest};
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_client::{Client, ClientError, InstanceActionKind};
use barrack_compute::PacketRule;
use barrack_core::clock::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(
    create_list_show_and_protocols,
    every_validation_rule_names_its_field,
    the_26th_firewall_is_refused,
    the_driver_receives_the_union_of_rules,
    attached_firewalls_are_deleted_only_detached_or_by_force,
    attaching_needs_an_active_instance_of_the_region,
    driver_failures_leave_attachments_in_error,
    other_accounts_firewalls_are_not_found,
    concurrent_toggles_and_deploys_never_share_an_address,
);

const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

/// (status, code, fields at fault) of an error.
fn failure(e: ClientError) -> (u16, String, Vec<String>) {
    (
        e.status().unwrap(),
        e.code().unwrap_or_default().to_string(),
        e.field_errors()
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

fn rule(direction: &str, protocol: Option<&str>, port: Option<u32>) -> SecurityRuleRequest {
    SecurityRuleRequest {
        direction: direction.into(),
        protocol: protocol.map(str::to_string),
        ethertype: None,
        port_range_min: port,
        port_range_max: port,
        remote_ip_prefix: None,
    }
}

fn packet(direction: &str, protocol: Option<&str>, port: Option<u16>) -> PacketRule {
    PacketRule {
        direction: direction.into(),
        ethertype: "IPv4".into(),
        protocol: protocol.map(str::to_string),
        port_range_min: port,
        port_range_max: port,
        remote_ip_prefix: None,
    }
}

fn firewall(name: &str, region: &str, rules: Vec<SecurityRuleRequest>) -> CreateFirewallRequest {
    CreateFirewallRequest {
        name: name.into(),
        description: Some(format!("{name} rules")),
        region: region.into(),
        rules,
        labels: Default::default(),
    }
}

/// A firewall created and settled to SUCCESS; its id.
async fn ready_firewall(app: &TestApp, client: &Client, request: CreateFirewallRequest) -> String {
    let id = client.create_firewall(&request).await.unwrap().data.id;
    app.settle().await;
    assert_eq!(client.firewall(&id).await.unwrap().data.status, "SUCCESS");
    id
}

async fn key_name(client: &Client) -> String {
    let keys = client.ssh_keys().await.unwrap().data.ssh_keys;
    match keys.first() {
        Some(k) => k.name.clone(),
        None => {
            client
                .create_ssh_key(&CreateSshKeyRequest {
                    name: "laptop".into(),
                    public_key: None,
                })
                .await
                .unwrap()
                .data
                .key
                .name
        }
    }
}

fn deploy_request(name: &str, key: &str, region: &str, rules: Value) -> DeployRequest {
    serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": region, "instance_name": name,
        "image_name": IMAGE, "ssh_key": key, "security_rules": rules
    }))
    .unwrap()
}

/// An ACTIVE 1-GPU instance in `region` with `rules` of its own; its id.
async fn active_instance(
    app: &TestApp,
    client: &Client,
    name: &str,
    region: &str,
    rules: Value,
) -> String {
    let key = key_name(client).await;
    let request = deploy_request(name, &key, region, rules);
    let id = client.deploy(&request).await.unwrap().data.instance_id;
    app.settle().await;
    assert_eq!(client.instance(&id).await.unwrap().data.status, "ACTIVE");
    id
}

/// The attachment status of `instance` on the firewall, if attached.
async fn attachment(client: &Client, firewall: &str, instance: &str) -> Option<String> {
    client
        .firewall(firewall)
        .await
        .unwrap()
        .data
        .instances
        .into_iter()
        .find(|a| a.instance_id == instance)
        .map(|a| a.status)
}

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

async fn every_validation_rule_names_its_field(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let create = |body: Value| {
        let client = client.clone();
        async move {
            let raw = client
                .raw(Method::POST, "/api/firewalls/", Some(&body))
                .await
                .unwrap();
            assert_eq!(raw.status, 400, "{body}: {}", raw.text);
            assert_eq!(raw.body["code"], "VALIDATION_ERROR");
            let mut fields: Vec<String> = raw.body["errors"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            fields.sort();
            fields
        }
    };
    let with_rule = |rule: Value| json!({"name": "fw", "region": "FINLAND-1", "rules": [rule]});

    // The firewall's own fields, all at once.
    assert_eq!(
        create(json!({"name": "", "region": "MARS-1", "description": "x".repeat(256)})).await,
        ["description", "name", "region"]
    );
    assert_eq!(
        create(json!({"name": "bad/name", "region": "FINLAND-1"})).await,
        ["name"]
    );
    assert_eq!(
        create(json!({"name": "x".repeat(51), "region": "FINLAND-1"})).await,
        ["name"]
    );
    assert_eq!(
        create(json!({"name": "fw", "region": "CANADA-1"})).await,
        ["region"],
        "a region of the other tier"
    );
    assert_eq!(
        create(json!({"name": "fw", "region": "FINLAND-1", "colour": "red"})).await,
        ["colour"],
        "unknown fields are named"
    );
    // A description of exactly 255 characters is fine.
    let ok = client
        .raw(
            Method::POST,
            "/api/firewalls/",
            Some(&json!({"name": "long", "region": "FINLAND-1", "description": "é".repeat(255)})),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 201, "{}", ok.text);

    // Each rule check, under the rule's index.
    let cases = [
        (json!({"direction": "sideways"}), "rules[0].direction"),
        (
            json!({"direction": "ingress", "ethertype": "IPv5"}),
            "rules[0].ethertype",
        ),
        (
            json!({"direction": "ingress", "protocol": "teleport"}),
            "rules[0].protocol",
        ),
        (
            json!({"direction": "ingress", "protocol": "icmp", "ethertype": "IPv6"}),
            "rules[0].protocol",
        ),
        (
            json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 22}),
            "rules[0].port_range_min",
        ),
        (
            json!({"direction": "ingress", "protocol": "tcp", "port_range_max": 22}),
            "rules[0].port_range_min",
        ),
        (
            json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 0, "port_range_max": 22}),
            "rules[0].port_range_min",
        ),
        (
            json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 1, "port_range_max": 65536}),
            "rules[0].port_range_max",
        ),
        (
            json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}),
            "rules[0].port_range_max",
        ),
        (
            json!({"direction": "ingress", "protocol": "icmp", "port_range_min": 1, "port_range_max": 1}),
            "rules[0].port_range_min",
        ),
        (
            json!({"direction": "ingress", "port_range_min": 1, "port_range_max": 1}),
            "rules[0].port_range_min",
        ),
        (
            json!({"direction": "ingress", "remote_ip_prefix": "10.0.0.5/24"}),
            "rules[0].remote_ip_prefix",
        ),
        (
            json!({"direction": "ingress", "remote_ip_prefix": "10.0.0.0/33"}),
            "rules[0].remote_ip_prefix",
        ),
        (
            json!({"direction": "ingress", "ethertype": "IPv6", "remote_ip_prefix": "2001:db8::/129"}),
            "rules[0].remote_ip_prefix",
        ),
        (
            json!({"direction": "ingress", "remote_ip_prefix": "2001:db8::/32"}),
            "rules[0].remote_ip_prefix",
        ),
        (
            json!({"direction": "ingress", "ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}),
            "rules[0].remote_ip_prefix",
        ),
        (
            json!({"direction": "ingress", "remote_ip_prefix": "not-an-address"}),
            "rules[0].remote_ip_prefix",
        ),
        (json!({"direction": "ingress", "port": 22}), "rules[0].port"),
    ];
    for (rule, field) in cases {
        assert_eq!(create(with_rule(rule.clone())).await, [field], "{rule}");
    }
    // The same rule twice; too many rules.
    let twice = json!({"name": "fw", "region": "FINLAND-1", "rules": [
        {"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
        {"direction": "INGRESS", "protocol": "TCP", "port_range_min": 22, "port_range_max": 22, "ethertype": "ipv4"}
    ]});
    assert_eq!(create(twice).await, ["rules[1]"]);
    let many: Vec<Value> = (1..=51)
        .map(|p| json!({"direction": "ingress", "protocol": "tcp", "port_range_min": p, "port_range_max": p}))
        .collect();
    assert_eq!(
        create(json!({"name": "fw", "region": "FINLAND-1", "rules": many})).await,
        ["rules"]
    );

    // Adding a rule: the same checks, named without a prefix; a duplicate is 409.
    let id = ready_firewall(&app, &client, firewall("fw", "FINLAND-1", vec![])).await;
    let add = |body: Value| {
        let client = client.clone();
        let path = format!("/api/firewalls/{id}/rules/");
        async move { client.raw(Method::POST, &path, Some(&body)).await.unwrap() }
    };
    for (body, field) in [
        (json!({"direction": "up"}), "direction"),
        (
            json!({"direction": "ingress", "remote_ip_prefix": "198.51.100.7/24"}),
            "remote_ip_prefix",
        ),
        (
            json!({"direction": "ingress", "protocol": "udp", "port_range_min": 70000, "port_range_max": 70000}),
            "port_range_max",
        ),
    ] {
        let raw = add(body.clone()).await;
        assert_eq!(raw.status, 400, "{body}: {}", raw.text);
        assert!(raw.body["errors"][field].is_array(), "{body}: {}", raw.text);
    }
    let host_bits =
        add(json!({"direction": "ingress", "remote_ip_prefix": "198.51.100.7/24"})).await;
    assert!(
        host_bits.text.contains("198.51.100.0/24"),
        "the message proposes the network: {}",
        host_bits.text
    );
    let ssh = json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22});
    assert_eq!(add(ssh.clone()).await.status, 201);
    let again = add(ssh).await;
    assert_eq!(
        (again.status.as_u16(), again.body["code"].as_str()),
        (409, Some("DUPLICATE_RULE"))
    );

    // Attach and detach bodies.
    let attach = |body: Value| {
        let client = client.clone();
        let path = format!("/api/firewalls/{id}/attach/");
        async move { client.raw(Method::POST, &path, Some(&body)).await.unwrap() }
    };
    for (body, field) in [
        (json!({"instance_ids": []}), "instance_ids"),
        (
            json!({"instance_ids": ["BRK-AAAAAAD", "BRK-AAAAAAD"]}),
            "instance_ids[1]",
        ),
        (json!({"instance_ids": [""]}), "instance_ids[0]"),
        (json!({}), "instance_ids"),
    ] {
        let raw = attach(body.clone()).await;
        assert_eq!(raw.status, 400, "{body}: {}", raw.text);
        assert!(raw.body["errors"][field].is_array(), "{body}: {}", raw.text);
    }
    let many: Vec<String> = (0..26).map(|i| format!("BRK-{i:06}D")).collect();
    let raw = attach(json!({ "instance_ids": many })).await;
    assert!(
        raw.body["errors"]["instance_ids"].is_array(),
        "{}",
        raw.text
    );
    // An instance of another region is named by its index.
    let elsewhere = active_instance(&app, &client, "elsewhere", "FINLAND-2", json!([])).await;
    let raw = attach(json!({ "instance_ids": [elsewhere] })).await;
    assert_eq!(raw.status, 400, "{}", raw.text);
    assert!(
        raw.body["errors"]["instance_ids[0]"].is_array(),
        "{}",
        raw.text
    );
    // A bad list filter.
    let raw = client
        .raw(Method::GET, "/api/firewalls/?limit=1000", None)
        .await
        .unwrap();
    assert!(raw.body["errors"]["limit"].is_array(), "{}", raw.text);
    app.stop().await;
}

async fn the_26th_firewall_is_refused(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.user(Tier::Legacy).await;
    let mut ids = Vec::new();
    for n in 1..=25 {
        let created = client
            .create_firewall(&firewall(&format!("fw{n}"), "CANADA-1", vec![]))
            .await
            .unwrap();
        ids.push(created.data.id);
    }
    let e = client
        .create_firewall(&firewall("fw26", "CANADA-1", vec![]))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("LIMIT_EXCEEDED")));
    assert!(e.to_string().contains("25"), "{e}");
    // Another account has its own 25.
    let (other, _) = app.user(Tier::Legacy).await;
    other
        .create_firewall(&firewall("fw26", "CANADA-1", vec![]))
        .await
        .unwrap();
    // A deleted firewall makes room, and frees its name.
    client.delete_firewall(&ids[0], false).await.unwrap();
    client
        .create_firewall(&firewall("fw1", "CANADA-1", vec![]))
        .await
        .unwrap();
    let e = client
        .create_firewall(&firewall("fw27", "CANADA-1", vec![]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("LIMIT_EXCEEDED"));
    assert_eq!(
        client
            .firewalls(&FirewallQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        25
    );
    app.stop().await;
}

async fn the_driver_receives_the_union_of_rules(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let own = json!([{"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}]);
    let a = active_instance(&app, &client, "alpha", "FINLAND-1", own).await;
    let b = active_instance(&app, &client, "beta", "FINLAND-1", json!([])).await;
    let ssh = packet("ingress", Some("tcp"), Some(22));
    assert_eq!(
        app.simulator().rules(&a),
        Some(vec![ssh.clone()]),
        "a new machine gets the rules it was deployed with"
    );
    assert_eq!(app.simulator().rules(&b), None, "nothing to program");

    let https = packet("ingress", Some("tcp"), Some(443));
    let dns = packet("egress", Some("udp"), Some(53));
    let web = ready_firewall(
        &app,
        &client,
        firewall(
            "web",
            "FINLAND-1",
            vec![
                rule("ingress", Some("tcp"), Some(443)),
                // The instance's own rule as well: the driver gets it once.
                rule("ingress", Some("tcp"), Some(22)),
            ],
        ),
    )
    .await;
    let resolver = ready_firewall(
        &app,
        &client,
        firewall(
            "dns",
            "FINLAND-1",
            vec![rule("egress", Some("udp"), Some(53))],
        ),
    )
    .await;

    // Attach: ATTACHING, then SUCCESS once the union is programmed.
    let attached = client
        .attach_firewall(&web, &[a.clone(), b.clone()])
        .await
        .unwrap()
        .data;
    assert_eq!(attached.action, "attach");
    assert_eq!(attached.instances.len(), 2);
    assert_eq!(
        (
            attached.instances[0].status.as_str(),
            attached.instances[0].target_status.as_str()
        ),
        ("ATTACHING", "SUCCESS")
    );
    assert_eq!(
        attachment(&client, &web, &a).await.as_deref(),
        Some("ATTACHING")
    );
    app.settle().await;
    assert_eq!(
        attachment(&client, &web, &a).await.as_deref(),
        Some("SUCCESS")
    );
    assert_eq!(
        attachment(&client, &web, &b).await.as_deref(),
        Some("SUCCESS")
    );
    assert_eq!(
        app.simulator().rules(&a),
        Some(vec![ssh.clone(), https.clone()])
    );
    assert_eq!(
        app.simulator().rules(&b),
        Some(vec![https.clone(), ssh.clone()])
    );
    let e = client
        .attach_firewall(&web, std::slice::from_ref(&a))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("INVALID_STATE")));

    // A second firewall applies together with the first (attached later: listed after it).
    app.clock.advance_ms(1000);
    client
        .attach_firewall(&resolver, std::slice::from_ref(&a))
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(
        app.simulator().rules(&a),
        Some(vec![ssh.clone(), https.clone(), dns.clone()])
    );
    // Instance details show the effective rules and where each comes from.
    let shown = client.instance(&a).await.unwrap().data;
    let sources: Vec<(&str, Option<u16>)> = shown
        .security_rules
        .iter()
        .map(|r| (r.source.as_str(), r.port_range_min))
        .collect();
    assert_eq!(
        sources,
        [
            ("instance", Some(22)),
            (web.as_str(), Some(443)),
            (web.as_str(), Some(22)),
            (resolver.as_str(), Some(53)),
        ]
    );
    let listed = client.instance_firewalls(&a).await.unwrap().data;
    let names: Vec<(&str, &str)> = listed
        .firewalls
        .iter()
        .map(|f| (f.name.as_str(), f.status.as_str()))
        .collect();
    assert_eq!(names, [("web", "SUCCESS"), ("dns", "SUCCESS")]);
    assert_eq!(listed.firewalls[1].rules[0].source, resolver);
    let summary = client
        .firewalls(&FirewallQuery::default())
        .await
        .unwrap()
        .data;
    let web_summary = summary.firewalls.iter().find(|f| f.id == web).unwrap();
    assert_eq!(
        (web_summary.rule_count, web_summary.attachment_count),
        (2, 2)
    );

    // A rule added to a firewall reaches every instance it is attached to; removed, it leaves them.
    let http = packet("ingress", Some("tcp"), Some(80));
    let added = client
        .add_firewall_rule(&web, &rule("ingress", Some("tcp"), Some(80)))
        .await
        .unwrap()
        .data;
    assert_eq!(added.source, web);
    app.settle().await;
    assert_eq!(
        app.simulator().rules(&a),
        Some(vec![ssh.clone(), https.clone(), http.clone(), dns.clone()])
    );
    assert_eq!(
        app.simulator().rules(&b),
        Some(vec![https.clone(), ssh.clone(), http.clone()])
    );
    let removed = client
        .remove_firewall_rule(&web, &added.id)
        .await
        .unwrap()
        .data;
    assert_eq!(removed.rule_id, added.id);
    let e = client
        .remove_firewall_rule(&web, &added.id)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    app.settle().await;
    assert_eq!(
        app.simulator().rules(&b),
        Some(vec![https.clone(), ssh.clone()])
    );

    // The instance's own rules are reprogrammed too.
    let ping = client
        .add_security_rule(&b, &rule("ingress", Some("icmp"), None))
        .await
        .unwrap()
        .data;
    app.settle().await;
    let icmp = packet("ingress", Some("icmp"), None);
    assert_eq!(
        app.simulator().rules(&b),
        Some(vec![icmp.clone(), https.clone(), ssh.clone()])
    );
    client.remove_security_rule(&b, &ping.id).await.unwrap();
    app.settle().await;
    assert_eq!(
        app.simulator().rules(&b),
        Some(vec![https.clone(), ssh.clone()])
    );

    // Detach: DETACHING, then gone, and the driver has the union of what is left.
    let detached = client
        .detach_firewall(&web, std::slice::from_ref(&a))
        .await
        .unwrap()
        .data;
    assert_eq!(
        (
            detached.instances[0].status.as_str(),
            detached.instances[0].target_status.as_str()
        ),
        ("DETACHING", "DETACHED")
    );
    app.settle().await;
    assert_eq!(attachment(&client, &web, &a).await, None);
    assert_eq!(
        app.simulator().rules(&a),
        Some(vec![ssh.clone(), dns.clone()])
    );
    let listed = client.instance_firewalls(&a).await.unwrap().data;
    assert_eq!(listed.firewalls.len(), 1);
    let e = client
        .detach_firewall(&web, std::slice::from_ref(&a))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("INVALID_STATE")));

    // Available instances: ACTIVE ones of the region, flagged when attached.
    let available = client
        .firewall_available_instances(&web, &PageQuery::default())
        .await
        .unwrap()
        .data;
    let flags: BTreeSet<(String, bool)> = available
        .instances
        .iter()
        .map(|i| (i.name.clone(), i.attached))
        .collect();
    assert_eq!(
        flags,
        BTreeSet::from([("alpha".to_string(), false), ("beta".to_string(), true)])
    );

    // A restored machine is programmed again; a deleted instance's attachments end.
    client
        .instance_action(&b, InstanceActionKind::Hibernate)
        .await
        .unwrap();
    app.settle().await;
    client
        .instance_action(&b, InstanceActionKind::Restore)
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(
        app.simulator().rules(&b),
        Some(vec![https.clone(), ssh.clone()])
    );
    client.delete_instance(&b).await.unwrap();
    app.settle().await;
    let shown = client.firewall(&web).await.unwrap().data;
    assert!(shown.instances.is_empty(), "{:?}", shown.instances);
    assert_eq!(shown.attachment_count, 0);
    app.stop().await;
}

async fn attached_firewalls_are_deleted_only_detached_or_by_force(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let a = active_instance(&app, &client, "alpha", "FINLAND-1", json!([])).await;
    let b = active_instance(&app, &client, "beta", "FINLAND-1", json!([])).await;
    let web = ready_firewall(
        &app,
        &client,
        firewall(
            "web",
            "FINLAND-1",
            vec![rule("ingress", Some("tcp"), Some(443))],
        ),
    )
    .await;
    client
        .attach_firewall(&web, std::slice::from_ref(&a))
        .await
        .unwrap();
    app.settle().await;

    // Attached: 409 without force.
    let e = client.delete_firewall(&web, false).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("RESOURCE_IN_USE")));
    assert!(e.to_string().contains(&a), "names the instance: {e}");
    let raw = client
        .raw(
            Method::DELETE,
            &format!("/api/firewalls/{web}/?force=false"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 409);
    let raw = client
        .raw(
            Method::DELETE,
            &format!("/api/firewalls/{web}/?force=maybe"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400, "{}", raw.text);
    assert!(raw.body["errors"]["force"].is_array(), "{}", raw.text);

    // Detach, then delete.
    client
        .detach_firewall(&web, std::slice::from_ref(&a))
        .await
        .unwrap();
    let e = client.delete_firewall(&web, false).await.unwrap_err();
    assert_eq!(e.code(), Some("RESOURCE_IN_USE"), "still detaching");
    app.settle().await;
    assert_eq!(app.simulator().rules(&a), Some(vec![]));
    let deleted = client.delete_firewall(&web, false).await.unwrap().data;
    assert_eq!(deleted.status, "DELETED");
    assert!(deleted.detached_instance_ids.is_empty());
    assert_eq!(client.firewall(&web).await.unwrap_err().status(), Some(404));
    assert_eq!(
        client
            .delete_firewall(&web, false)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );

    // With force, it is detached from every instance first.
    let ssh = ready_firewall(
        &app,
        &client,
        firewall(
            "ssh",
            "FINLAND-1",
            vec![rule("ingress", Some("tcp"), Some(22))],
        ),
    )
    .await;
    client
        .attach_firewall(&ssh, &[a.clone(), b.clone()])
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(
        app.simulator().rules(&b),
        Some(vec![packet("ingress", Some("tcp"), Some(22))])
    );
    let deleted = client.delete_firewall(&ssh, true).await.unwrap().data;
    let mut detached = deleted.detached_instance_ids.clone();
    detached.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(detached, expected);
    assert!(
        client
            .instance_firewalls(&a)
            .await
            .unwrap()
            .data
            .firewalls
            .is_empty()
    );
    app.settle().await;
    assert_eq!(app.simulator().rules(&a), Some(vec![]));
    assert_eq!(app.simulator().rules(&b), Some(vec![]));
    assert!(
        client
            .instance(&b)
            .await
            .unwrap()
            .data
            .security_rules
            .is_empty()
    );
    assert_eq!(
        client
            .firewalls(&FirewallQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0
    );
    app.stop().await;
}

async fn attaching_needs_an_active_instance_of_the_region(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let stopped = active_instance(&app, &client, "stopped", "FINLAND-1", json!([])).await;
    let sleeping = active_instance(&app, &client, "sleeping", "FINLAND-1", json!([])).await;
    let running = active_instance(&app, &client, "running", "FINLAND-1", json!([])).await;

    // A firewall still CREATING cannot be attached yet.
    let web = client
        .create_firewall(&firewall("web", "FINLAND-1", vec![]))
        .await
        .unwrap()
        .data
        .id;
    let e = client
        .attach_firewall(&web, std::slice::from_ref(&running))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("INVALID_STATE")));
    assert!(e.to_string().contains("CREATING"), "{e}");
    app.settle().await;

    client
        .instance_action(&stopped, InstanceActionKind::Stop)
        .await
        .unwrap();
    client
        .instance_action(&sleeping, InstanceActionKind::Hibernate)
        .await
        .unwrap();
    app.settle().await;
    for (id, state) in [(&stopped, "SHUTOFF"), (&sleeping, "HIBERNATED")] {
        let e = client
            .attach_firewall(&web, &[running.clone(), id.clone()])
            .await
            .unwrap_err();
        assert_eq!((e.status(), e.code()), (Some(409), Some("INVALID_STATE")));
        assert!(
            e.to_string().contains(state),
            "names the state {state}: {e}"
        );
    }
    // All or none: the ACTIVE one was not attached either.
    assert_eq!(attachment(&client, &web, &running).await, None);
    // A transitional state is refused the same way.
    client
        .instance_action(&stopped, InstanceActionKind::Start)
        .await
        .unwrap();
    let e = client
        .attach_firewall(&web, std::slice::from_ref(&stopped))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("STARTING"), "{e}");
    app.settle().await;
    client
        .attach_firewall(&web, &[stopped.clone(), running.clone()])
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(
        attachment(&client, &web, &stopped).await.as_deref(),
        Some("SUCCESS")
    );

    // Detaching works whatever the instance's state.
    client
        .instance_action(&stopped, InstanceActionKind::Stop)
        .await
        .unwrap();
    app.settle().await;
    client
        .detach_firewall(&web, std::slice::from_ref(&stopped))
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(attachment(&client, &web, &stopped).await, None);

    // Unknown instances are 404.
    let e = client
        .attach_firewall(&web, &["BRK-ZZZZZZD".to_string()])
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    app.stop().await;
}

async fn driver_failures_leave_attachments_in_error(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let a = active_instance(&app, &client, "alpha", "FINLAND-1", json!([])).await;
    let web = ready_firewall(
        &app,
        &client,
        firewall(
            "web",
            "FINLAND-1",
            vec![rule("ingress", Some("tcp"), Some(443))],
        ),
    )
    .await;

    // A permanent failure: ERROR with the reason.
    app.admin
        .admin_inject_fault(&json!({"kind": "fail_nth", "operation": "apply_security_rules", "nth": 1, "permanent": true}))
        .await
        .unwrap();
    client
        .attach_firewall(&web, std::slice::from_ref(&a))
        .await
        .unwrap();
    app.settle().await;
    let shown = client.firewall(&web).await.unwrap().data;
    assert_eq!(shown.instances[0].status, "ERROR");
    assert!(
        shown.instances[0]
            .status_reason
            .as_deref()
            .unwrap()
            .contains("injected failure"),
        "{:?}",
        shown.instances[0].status_reason
    );
    assert_eq!(app.simulator().rules(&a), None);

    // Attaching again retries it.
    client
        .attach_firewall(&web, std::slice::from_ref(&a))
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(
        attachment(&client, &web, &a).await.as_deref(),
        Some("SUCCESS")
    );
    assert_eq!(
        app.simulator().rules(&a),
        Some(vec![packet("ingress", Some("tcp"), Some(443))])
    );

    // A transient failure is retried after its backoff, and succeeds.
    app.admin
        .admin_inject_fault(
            &json!({"kind": "fail_nth", "operation": "apply_security_rules", "nth": 1}),
        )
        .await
        .unwrap();
    client
        .add_firewall_rule(&web, &rule("ingress", Some("tcp"), Some(80)))
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(
        app.simulator().rules(&a).unwrap().len(),
        1,
        "waiting for the retry"
    );
    app.clock.advance_ms(5_000);
    app.settle().await;
    assert_eq!(app.simulator().rules(&a).unwrap().len(), 2);
    assert_eq!(
        attachment(&client, &web, &a).await.as_deref(),
        Some("SUCCESS")
    );

    // A failed detach leaves the attachment in ERROR, from which it can be detached again.
    app.admin
        .admin_inject_fault(&json!({"kind": "fail_nth", "operation": "apply_security_rules", "nth": 1, "permanent": true}))
        .await
        .unwrap();
    client
        .detach_firewall(&web, std::slice::from_ref(&a))
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(
        attachment(&client, &web, &a).await.as_deref(),
        Some("ERROR")
    );
    client
        .detach_firewall(&web, std::slice::from_ref(&a))
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(attachment(&client, &web, &a).await, None);
    assert_eq!(app.simulator().rules(&a), Some(vec![]));
    app.stop().await;
}

async fn other_accounts_firewalls_are_not_found(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let (other, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let mine = active_instance(&app, &client, "mine", "FINLAND-1", json!([])).await;
    let theirs = active_instance(&app, &other, "theirs", "FINLAND-1", json!([])).await;
    let web = ready_firewall(
        &app,
        &client,
        firewall(
            "web",
            "FINLAND-1",
            vec![rule("ingress", Some("tcp"), Some(443))],
        ),
    )
    .await;
    let rule_id = client.firewall(&web).await.unwrap().data.rules[0]
        .id
        .clone();
    client
        .attach_firewall(&web, std::slice::from_ref(&mine))
        .await
        .unwrap();
    app.settle().await;

    let ids = json!({"instance_ids": [theirs]});
    let rule_body = json!({"direction": "ingress"});
    for (method, path, body) in [
        (Method::GET, format!("/api/firewalls/{web}/"), None),
        (
            Method::DELETE,
            format!("/api/firewalls/{web}/?force=true"),
            None,
        ),
        (
            Method::POST,
            format!("/api/firewalls/{web}/rules/"),
            Some(&rule_body),
        ),
        (
            Method::DELETE,
            format!("/api/firewalls/{web}/rules/{rule_id}/"),
            None,
        ),
        (
            Method::POST,
            format!("/api/firewalls/{web}/attach/"),
            Some(&ids),
        ),
        (
            Method::POST,
            format!("/api/firewalls/{web}/detach/"),
            Some(&ids),
        ),
        (
            Method::GET,
            format!("/api/firewalls/{web}/available-instances/"),
            None,
        ),
        (
            Method::GET,
            format!("/api/instances/{mine}/firewalls/"),
            None,
        ),
    ] {
        let raw = other.raw(method.clone(), &path, body).await.unwrap();
        assert_eq!(raw.status, 404, "{method} {path}: {}", raw.text);
        assert_eq!(raw.body["code"], "NOT_FOUND");
    }
    // My firewall does not attach to their instance.
    let e = client
        .attach_firewall(&web, std::slice::from_ref(&theirs))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    // Their lists do not show mine.
    assert_eq!(
        other
            .firewalls(&FirewallQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0
    );
    // And nothing of theirs changed.
    assert_eq!(
        attachment(&client, &web, &mine).await.as_deref(),
        Some("SUCCESS")
    );
    assert_eq!(app.simulator().rules(&theirs), None);
    app.stop().await;
}

async fn concurrent_toggles_and_deploys_never_share_an_address(db: Db) {
    // FINLAND-1 hands out the six usable addresses of a /29 (a block no other region uses).
    let app = TestApp::start_with(db, |config| {
        for region in &mut config.regions {
            if region.name == "FINLAND-1" {
                region.public_ip_pool = "100.64.0.8/29".into();
            }
        }
    })
    .await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let key = key_name(&client).await;

    // Four private instances, then four deploys with public addresses and toggles of the private ones,
    // all at once: eight claims on six addresses.
    let mut private = Vec::new();
    for n in 0..4 {
        let mut request = deploy_request(&format!("private{n}"), &key, "FINLAND-1", json!([]));
        request.public_ip = false;
        private.push(client.deploy(&request).await.unwrap().data.instance_id);
    }
    app.settle().await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..4 {
        let client = client.clone();
        let request = deploy_request(&format!("public{n}"), &key, "FINLAND-1", json!([]));
        tasks.spawn(async move {
            client
                .deploy(&request)
                .await
                .map(|d| d.data.instance_id)
                .map_err(failure)
        });
    }
    for id in &private {
        let client = client.clone();
        let id = id.clone();
        tasks.spawn(async move {
            client
                .toggle_public_ip(&id)
                .await
                .map(|t| t.data.instance_id)
                .map_err(failure)
        });
    }
    let mut granted = 0;
    let mut refused = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(_) => granted += 1,
            Err((503, code, _)) => {
                assert_eq!(code, "PUBLIC_IP_UNAVAILABLE");
                refused += 1;
            }
            Err(other) => panic!("unexpected failure {other:?}"),
        }
    }
    assert_eq!(
        (granted, refused),
        (6, 2),
        "exactly the pool's six addresses"
    );
    app.settle().await;

    // Toggling back and forth while deploying more: the pool never hands an address out twice.
    for round in 0..3 {
        let instances = client
            .instances(&Default::default())
            .await
            .unwrap()
            .data
            .instances;
        let mut tasks = tokio::task::JoinSet::new();
        for instance in instances.iter().filter(|i| i.status == "ACTIVE") {
            let client = client.clone();
            let id = instance.instance_id.clone();
            tasks.spawn(async move {
                client
                    .toggle_public_ip(&id)
                    .await
                    .map(|_| ())
                    .map_err(failure)
            });
        }
        for n in 0..2 {
            let client = client.clone();
            let request = deploy_request(&format!("more{round}-{n}"), &key, "FINLAND-1", json!([]));
            tasks.spawn(async move { client.deploy(&request).await.map(|_| ()).map_err(failure) });
        }
        while let Some(result) = tasks.join_next().await {
            if let Err((status, code, _)) = result.unwrap() {
                assert_eq!((status, code.as_str()), (503, "PUBLIC_IP_UNAVAILABLE"));
            }
        }
        app.settle().await;
        let assignments = app
            .services()
            .store()
            .public_ip_assignments()
            .await
            .unwrap();
        assert!(assignments.len() <= 6);
        crate::common::assert_derived_state_consistent(app.services().store()).await;
        // What instances show agrees with the pool: each public address once, and it is theirs.
        let instances = client
            .instances(&Default::default())
            .await
            .unwrap()
            .data
            .instances;
        let mut shown = BTreeSet::new();
        for i in instances
            .iter()
            .filter(|i| i.public_ip && i.status == "ACTIVE")
        {
            let address = i
                .ip_address
                .clone()
                .expect("an ACTIVE public instance has its address");
            assert!(shown.insert(address.clone()), "{address} shown twice");
            assert!(
                assignments.contains(&(address.clone(), i.instance_id.clone())),
                "{address} of {} is not assigned to it",
                i.instance_id
            );
        }
    }
    app.stop().await;
}
