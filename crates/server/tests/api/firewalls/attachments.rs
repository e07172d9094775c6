//! Attaching firewalls to instances and detaching them: only to active instances of the firewall's region;
//! an attached firewall is deleted only detached or by force.

use barrack_api::Tier;
use barrack_api::firewalls::FirewallQuery;
use barrack_client::InstanceActionKind;
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{active_instance, attachment, firewall, packet, ready_firewall, rule};

on_both_databases!(
    attached_firewalls_are_deleted_only_detached_or_by_force,
    attaching_needs_an_active_instance_of_the_region,
);

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
