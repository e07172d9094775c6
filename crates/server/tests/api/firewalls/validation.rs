//! Bad firewalls and rules are refused naming the field at fault; an account holds at most 25 firewalls.

use barrack_api::Tier;
use barrack_api::firewalls::FirewallQuery;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{active_instance, firewall, ready_firewall};

on_both_databases!(
    every_validation_rule_names_its_field,
    the_26th_firewall_is_refused,
);

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
    assert_eq!(
        create(
            json!({"name": "fw", "region": "FINLAND-1", "description": "line1\u{1b}[2J\u{7}evil"})
        )
        .await,
        ["description"],
        "a terminal's escape sequence"
    );
    // A description of exactly 255 characters is fine, and so are its line breaks.
    let ok = client
        .raw(
            Method::POST,
            "/api/firewalls/",
            Some(&json!({"name": "long", "region": "FINLAND-1", "description": format!("{}\n\tend", "é".repeat(250))})),
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
    // The same rule however its protocol is written: by name in any case, or by number.
    for protocol in ["tcp", "TCP", "6"] {
        let mut same = ssh.clone();
        same["protocol"] = json!(protocol);
        let again = add(same).await;
        assert_eq!(
            (again.status.as_u16(), again.body["code"].as_str()),
            (409, Some("DUPLICATE_RULE")),
            "{protocol}"
        );
    }
    // Aliases of one number are one protocol too.
    let icmpv6 = json!({"direction": "ingress", "ethertype": "IPv6", "protocol": "icmpv6"});
    assert_eq!(add(icmpv6).await.status, 201);
    let alias =
        add(json!({"direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp"})).await;
    assert_eq!(alias.status, 409, "{}", alias.text);
    // Within one body as well.
    let created = client
        .raw(
            Method::POST,
            "/api/firewalls/",
            Some(&json!({"name": "twice", "region": "FINLAND-1", "rules": [
                {"direction": "ingress", "protocol": "udp", "port_range_min": 53, "port_range_max": 53},
                {"direction": "ingress", "protocol": "17", "port_range_min": 53, "port_range_max": 53}
            ]})),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 400, "{}", created.text);
    assert!(
        created.body["errors"]["rules[1]"].is_array(),
        "{}",
        created.text
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
    // A description's line breaks may be Windows' (CRLF); a lone carriage return is a control.
    let described = |name: &str, description: &str| json!({"name": name, "region": "FINLAND-1", "description": description});
    let crlf = client
        .raw(
            Method::POST,
            "/api/firewalls/",
            Some(&described("crlf", "line one\r\nline two")),
        )
        .await
        .unwrap();
    assert_eq!(crlf.status, 201, "{}", crlf.text);
    assert_eq!(crlf.body["data"]["description"], "line one\r\nline two");
    // A protocol number is one protocol whatever its spelling: "06" is 6, with ports, shown as "6".
    let rules = format!(
        "/api/firewalls/{}/rules/",
        crlf.body["data"]["id"].as_str().unwrap()
    );
    let add = async |protocol: &str| {
        let body = json!({"direction": "ingress", "protocol": protocol,
                          "port_range_min": 22, "port_range_max": 22});
        client.raw(Method::POST, &rules, Some(&body)).await.unwrap()
    };
    let padded = add("06").await;
    assert_eq!(padded.status, 201, "{}", padded.text);
    assert_eq!(padded.body["data"]["protocol"], "6", "{}", padded.text);
    let again = add("+6").await;
    assert_eq!(
        (again.status, again.body["code"].as_str()),
        (reqwest::StatusCode::CONFLICT, Some("DUPLICATE_RULE")),
        "{}",
        again.text
    );
    let lone = client
        .raw(
            Method::POST,
            "/api/firewalls/",
            Some(&described("lone-cr", "done\rundone")),
        )
        .await
        .unwrap();
    assert_eq!(lone.status, 400, "{}", lone.text);
    assert!(
        lone.body["errors"]["description"].is_array(),
        "{}",
        lone.text
    );
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
