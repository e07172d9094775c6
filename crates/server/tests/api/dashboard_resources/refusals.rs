//! Every resource form refuses a missing token, and another account's resource is a 404 page.

use barrack_api::Tier;
use barrack_api::firewalls::CreateFirewallRequest;
use barrack_api::instances::DeployRequest;
use barrack_api::snapshots::CreateSnapshotRequest;
use barrack_api::volumes::CreateVolumeRequest;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k, deploy_id};
use crate::on_both_databases;

use super::{Browser, IMAGE, account, firewall_from_page, volume_from_page, with_instance};

on_both_databases!(
    resource_forms_refuse_a_missing_token,
    another_accounts_resources_are_404_pages,
);

async fn resource_forms_refuse_a_missing_token(db: Db) {
    let app = TestApp::start(db).await;
    let (mut b, id) = with_instance(&app).await;
    let volume = volume_from_page(&app, &mut b, "res-token").await;
    let firewall = firewall_from_page(&app, &mut b, "res-token").await;
    let (operator, _) = account(&app, true).await;
    let mut op = Browser::signed_in(&app, &operator).await;
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("/instances/{id}/rules"),
            vec![("direction", "ingress")],
        ),
        (format!("/instances/{id}/rules/r/delete"), vec![]),
        (
            format!("/instances/{id}/volumes/attach"),
            vec![("volume_id", &volume)],
        ),
        (format!("/instances/{id}/volumes/{volume}/detach"), vec![]),
        (
            format!("/instances/{id}/firewalls/attach"),
            vec![("firewall_id", &firewall)],
        ),
        (
            format!("/instances/{id}/firewalls/{firewall}/detach"),
            vec![],
        ),
        (format!("/volumes/{volume}/resize"), vec![("size", "50")]),
        (format!("/volumes/{volume}/clone"), vec![("name", "copy")]),
        (
            format!("/volumes/{volume}/attach"),
            vec![("instance_id", &id)],
        ),
        (format!("/volumes/{volume}/detach"), vec![]),
        (
            format!("/firewalls/{firewall}/rules"),
            vec![("direction", "ingress")],
        ),
        (format!("/firewalls/{firewall}/rules/r/delete"), vec![]),
        (
            format!("/firewalls/{firewall}/attach"),
            vec![("instance_id", &id)],
        ),
        (
            format!("/firewalls/{firewall}/instances/{id}/detach"),
            vec![],
        ),
        ("/images".into(), vec![("name", "x")]),
        ("/images/img/delete".into(), vec![]),
    ];
    let stale = "x".repeat(43);
    for (path, fields) in &forms {
        for token in ["", stale.as_str()] {
            let mut with = vec![("csrf", token)];
            with.extend_from_slice(fields);
            let refused = b.post_raw(path, &with).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
            assert!(refused.is_html());
        }
    }
    for path in [
        "/operator/grants",
        "/operator/capacity",
        "/operator/clock",
        "/operator/faults",
    ] {
        let refused = op.post_raw(path, &[("minutes", "5")]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Nothing changed.
    let page = b.get(&format!("/volumes/{volume}")).await;
    assert!(page.body.contains("20 GB") && page.body.contains("Not attached."));
    assert!(!b.get("/volumes").await.body.contains(">copy</a>"));
    app.stop().await;
}

async fn another_accounts_resources_are_404_pages(db: Db) {
    let app = TestApp::start(db).await;
    let (owner, _) = app.funded_user(Tier::Advanced, "US", "200").await;
    create_key_k(&owner).await;
    let request: DeployRequest = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
        "instance_name": "theirs", "image_name": IMAGE, "ssh_key": "k"
    }))
    .unwrap();
    let instance = deploy_id(&owner, &request).await;
    let volume = owner
        .create_volume(&CreateVolumeRequest {
            name: "their-volume".into(),
            size: 20,
            region: "FINLAND-1".into(),
            volume_type: "NVMe".into(),
            bootable: false,
            image_name: None,
            labels: Default::default(),
        })
        .await
        .unwrap()
        .data
        .id;
    let firewall = owner
        .create_firewall(&CreateFirewallRequest {
            name: "their-firewall".into(),
            description: None,
            region: "FINLAND-1".into(),
            rules: Vec::new(),
            labels: Default::default(),
        })
        .await
        .unwrap()
        .data
        .id;
    app.settle().await;
    let snapshot = owner
        .create_snapshot(&CreateSnapshotRequest {
            instance_id: instance.clone(),
            name: "their-snapshot".into(),
            description: None,
            is_image: true,
            labels: Default::default(),
        })
        .await
        .unwrap()
        .data;
    app.settle().await;
    let image = owner
        .images(&Default::default())
        .await
        .unwrap()
        .data
        .images
        .into_iter()
        .next()
        .expect("an image made with the snapshot")
        .id;

    let (mut b, mine) = with_instance(&app).await;
    for path in [
        format!("/instances/{instance}/usage"),
        format!("/volumes/{volume}"),
        format!("/firewalls/{firewall}"),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.is_html());
        assert!(!page.body.contains("their-"));
    }
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("/instances/{instance}/rules"),
            vec![("direction", "ingress")],
        ),
        (
            format!("/instances/{instance}/volumes/attach"),
            vec![("volume_id", &volume)],
        ),
        (
            format!("/instances/{instance}/firewalls/attach"),
            vec![("firewall_id", &firewall)],
        ),
        (
            format!("/instances/{instance}/firewalls/{firewall}/detach"),
            vec![],
        ),
        // The caller's own instance with another account's firewall.
        (
            format!("/instances/{mine}/firewalls/attach"),
            vec![("firewall_id", &firewall)],
        ),
        (format!("/volumes/{volume}/resize"), vec![("size", "50")]),
        (format!("/volumes/{volume}/clone"), vec![("name", "mine")]),
        (
            format!("/volumes/{volume}/attach"),
            vec![("instance_id", &mine)],
        ),
        (format!("/volumes/{volume}/detach"), vec![]),
        (
            format!("/firewalls/{firewall}/rules"),
            vec![("direction", "ingress")],
        ),
        (
            format!("/firewalls/{firewall}/attach"),
            vec![("instance_id", &mine)],
        ),
        (format!("/images/{image}/delete"), vec![]),
    ];
    for (path, fields) in &posts {
        let page = b.post(path, fields).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
        assert!(page.is_html());
    }
    // Another account's snapshot is not a source of images.
    let refused = b
        .post(
            "/images",
            &[("snapshot_id", &snapshot.id), ("name", "stolen")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(refused.body.contains("id=\"snapshot_id-error\""));
    // Nothing of theirs changed.
    let theirs = owner.volume(&volume).await.unwrap().data;
    assert_eq!((theirs.size_gb, theirs.attachment), (20, None));
    assert_eq!(owner.firewall(&firewall).await.unwrap().data.rule_count, 0);
    assert_eq!(
        owner
            .images(&Default::default())
            .await
            .unwrap()
            .data
            .images
            .len(),
        1
    );
    app.stop().await;
}
