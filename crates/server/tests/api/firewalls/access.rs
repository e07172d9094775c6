//! Another account's firewalls are not found.

use barrack_api::Tier;
use barrack_api::firewalls::FirewallQuery;
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{active_instance, attachment, firewall, ready_firewall, rule};

on_both_databases!(other_accounts_firewalls_are_not_found,);

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
