//! What the driver is asked to program (the union of an instance's rules and its firewalls'), and
//! attachments left in error when it fails.

use std::collections::BTreeSet;

use barrack_api::PageQuery;
use barrack_api::Tier;
use barrack_api::firewalls::FirewallQuery;
use barrack_client::InstanceActionKind;
use barrack_core::clock::Clock;
use serde_json::json;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{active_instance, attachment, firewall, packet, ready_firewall, rule};

on_both_databases!(
    the_driver_receives_the_union_of_rules,
    driver_failures_leave_attachments_in_error,
);

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
