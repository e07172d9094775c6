//! Labels: set at deploy, changed with `PATCH /api/<resources>/{id}/labels/`, shown in views, and
//! filtered on in lists (`?label=key=value`, `?label=key`, ANDed); bad labels are 400 naming the label.

use barrack_api::Tier;
use barrack_api::instances::InstanceQuery;
use barrack_api::labels::LabelsPatch;
use barrack_client::{Client, ClientError, LabelledResource};
use barrack_core::clock::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, TestApp, create_key_k, deploy_id};
use crate::on_both_databases;

on_both_databases!(
    labels_are_set_at_deploy_changed_and_filtered_on,
    bad_labels_and_filters_are_400_on_the_label,
    labels_of_another_account_are_out_of_reach,
    volumes_snapshots_images_and_firewalls_carry_labels,
    a_filtered_list_pages_in_the_order_of_the_unfiltered_one,
);

const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

async fn deploy(client: &Client, name: &str, labels: Value) -> String {
    let request = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
        "instance_name": name, "image_name": IMAGE, "ssh_key": "k", "labels": labels
    }))
    .unwrap();
    deploy_id(client, &request).await
}

/// The names of the instances a filtered list shows, sorted.
async fn names(client: &Client, labels: &[&str]) -> Vec<String> {
    let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    let mut names: Vec<String> = client
        .instances_labelled(&InstanceQuery::default(), &labels)
        .await
        .unwrap()
        .data
        .instances
        .into_iter()
        .map(|i| i.name)
        .collect();
    names.sort();
    names
}

fn patch(labels: Value) -> LabelsPatch {
    serde_json::from_value(json!({ "labels": labels })).unwrap()
}

fn field_errors(error: ClientError) -> (u16, Vec<String>) {
    match error {
        ClientError::Api { status, errors, .. } => (status, errors.into_keys().collect()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn labels_are_set_at_deploy_changed_and_filtered_on(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let a = deploy(&client, "aa", json!({"team": "ml", "env": "prod"})).await;
    deploy(&client, "bb", json!({"team": "ml"})).await;
    deploy(&client, "cc", json!({"team": "web", "env": "dev"})).await;
    deploy(&client, "dd", json!(null)).await;

    let shown = client.instance(&a).await.unwrap().data;
    assert_eq!(shown.labels.get("team").map(String::as_str), Some("ml"));
    assert_eq!(shown.labels.len(), 2);
    let raw = client
        .raw(Method::GET, &format!("/api/instances/{a}/"), None)
        .await
        .unwrap();
    assert_eq!(
        raw.body["data"]["labels"],
        json!({"env": "prod", "team": "ml"})
    );

    assert_eq!(names(&client, &[]).await, ["aa", "bb", "cc", "dd"]);
    assert_eq!(names(&client, &["team=ml"]).await, ["aa", "bb"]);
    assert_eq!(names(&client, &["env"]).await, ["aa", "cc"]);
    assert_eq!(names(&client, &["team=ml", "env"]).await, ["aa"]);
    assert_eq!(
        names(&client, &["team=ml", "env=dev"]).await,
        Vec::<String>::new()
    );
    assert_eq!(names(&client, &["nothing"]).await, Vec::<String>::new());
    // A value is compared whole: `team=m` is not `team=ml`.
    assert_eq!(names(&client, &["team=m"]).await, Vec::<String>::new());
    // The total counts the filtered list, not the account's instances.
    let page = client
        .instances_labelled(&InstanceQuery::default(), &["team=ml".to_string()])
        .await
        .unwrap()
        .data
        .pagination;
    assert_eq!(page.total, 2);

    // A merge patch: set one, remove one, keep the rest.
    let changed = client
        .patch_labels(
            LabelledResource::Instances,
            &a,
            &patch(json!({"env": null, "owner": "ana", "team": "ml"})),
        )
        .await
        .unwrap()
        .data;
    assert_eq!(changed.resource_id, a);
    assert_eq!(
        serde_json::to_value(&changed.labels).unwrap(),
        json!({"owner": "ana", "team": "ml"})
    );
    assert_eq!(names(&client, &["env"]).await, ["cc"]);
    assert_eq!(names(&client, &["owner=ana"]).await, ["aa"]);
    // Removing a label the resource does not carry changes nothing.
    client
        .patch_labels(
            LabelledResource::Instances,
            &a,
            &patch(json!({"gone": null})),
        )
        .await
        .unwrap();
    assert_eq!(client.instance(&a).await.unwrap().data.labels.len(), 2);

    // A deleted instance leaves the filtered lists.
    app.settle().await;
    client.delete_instance(&a).await.unwrap();
    app.settle().await;
    assert_eq!(names(&client, &["team=ml"]).await, ["bb"]);
    let err = client
        .patch_labels(LabelledResource::Instances, &a, &patch(json!({"x": "y"})))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    app.stop().await;
}

async fn bad_labels_and_filters_are_400_on_the_label(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let bad_deploy = |labels: Value| {
        let client = client.clone();
        async move {
            client
                .deploy(
                    &serde_json::from_value(json!({
                        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
                        "instance_name": "bad", "image_name": IMAGE, "ssh_key": "k", "labels": labels
                    }))
                    .unwrap(),
                )
                .await
                .unwrap_err()
        }
    };
    for (labels, field) in [
        (json!({"Team": "ml"}), "labels.Team"),
        (json!({"-team": "ml"}), "labels.-team"),
        (json!({"team-": "ml"}), "labels.team-"),
        (json!({"": "ml"}), "labels."),
        (json!({"t e": "ml"}), "labels.t e"),
        (
            json!({("k".repeat(64)): "v"}),
            &*format!("labels.{}", "k".repeat(64)),
        ),
        (json!({"team": "v".repeat(64)}), "labels.team"),
        (json!({"team": "a\nb"}), "labels.team"),
    ] {
        let (status, fields) = field_errors(bad_deploy(labels.clone()).await);
        assert_eq!(status, 400, "{labels}");
        assert_eq!(fields, [field.to_string()], "{labels}");
    }
    // A value that is not a string is named by the JSON path.
    let raw = client
        .raw(
            Method::POST,
            "/api/deploy-server/",
            Some(&json!({
                "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
                "instance_name": "bad", "image_name": IMAGE, "ssh_key": "k", "labels": {"team": 5}
            })),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400, "{}", raw.text);
    assert!(raw.body["errors"]["labels.team"].is_array(), "{}", raw.text);

    // The edges are accepted: 64 labels, 63-character keys and values, the inner punctuation.
    let mut many = serde_json::Map::new();
    for i in 0..64 {
        many.insert(format!("k{i}"), json!("v"));
    }
    let id = deploy(&client, "edges", Value::Object(many.clone())).await;
    let (status, fields) = field_errors(
        client
            .patch_labels(
                LabelledResource::Instances,
                &id,
                &patch(json!({"one-more": "x"})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((status, fields), (400, vec!["labels".to_string()]));
    many.insert("k64".into(), json!("v"));
    let (status, fields) = field_errors(bad_deploy(Value::Object(many)).await);
    assert_eq!((status, fields), (400, vec!["labels".to_string()]));
    client
        .patch_labels(
            LabelledResource::Instances,
            &id,
            &patch(json!({"k0": null, "k1": null, "example.com/a_b-c": "v".repeat(63), ("k".repeat(63)): ""})),
        )
        .await
        .unwrap();

    // Filters: a bad key is 400 on `label`.
    for filter in ["Team=ml", "=ml", "te%20am", "-x"] {
        let raw = client
            .raw(
                Method::GET,
                &format!("/api/instances/?label={filter}"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(raw.status, 400, "{filter}: {}", raw.text);
        assert!(raw.body["errors"]["label"].is_array(), "{}", raw.text);
    }
    // A value holding a bidirectional control is refused, as in every other free text, and not stored.
    for value in ["a\u{202e}b", "\u{2066}x", "x\u{200f}"] {
        let raw = client
            .raw(
                Method::PATCH,
                &format!("/api/instances/{id}/labels/"),
                Some(&json!({"labels": {"team": value}})),
            )
            .await
            .unwrap();
        assert_eq!(raw.status, 400, "{value:?}: {}", raw.text);
        assert!(
            raw.body["errors"]["labels.team"][0]
                .as_str()
                .is_some_and(|m| m.contains("bidirectional")),
            "{}",
            raw.text
        );
    }
    let shown = client
        .raw(Method::GET, &format!("/api/instances/{id}/"), None)
        .await
        .unwrap();
    assert!(!shown.text.contains('\u{202e}'), "{}", shown.text);
    // Unknown fields of a patch are refused, as everywhere.
    let raw = client
        .raw(
            Method::PATCH,
            &format!("/api/instances/{id}/labels/"),
            Some(&json!({"labels": {}, "extra": 1})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400, "{}", raw.text);
    app.stop().await;
}

async fn labels_of_another_account_are_out_of_reach(db: Db) {
    let app = TestApp::start(db).await;
    let (alice, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let (bob, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&alice).await;
    create_key_k(&bob).await;
    let hers = deploy(&alice, "hers", json!({"team": "ml"})).await;
    deploy(&bob, "his", json!({"team": "ml"})).await;
    assert_eq!(names(&alice, &["team=ml"]).await, ["hers"]);
    assert_eq!(names(&bob, &["team=ml"]).await, ["his"]);
    let err = bob
        .patch_labels(
            LabelledResource::Instances,
            &hers,
            &patch(json!({"team": "x"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(
        alice.instance(&hers).await.unwrap().data.labels["team"],
        "ml"
    );
    app.stop().await;
}

/// Each resource besides instances: labels at create, in its views, in its list's filter, and patched.
async fn volumes_snapshots_images_and_firewalls_carry_labels(db: Db) {
    use barrack_api::firewalls::FirewallQuery;
    use barrack_api::images::ImageQuery;
    use barrack_api::snapshots::SnapshotQuery;
    use barrack_api::volumes::VolumeQuery;

    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let team = json!({"team": "ml"});
    let volume = client
        .create_volume(
            &serde_json::from_value(json!({
                "name": "data", "size": 100, "region": "FINLAND-1", "volume_type": "NVMe", "labels": team
            }))
            .unwrap(),
        )
        .await
        .unwrap()
        .data;
    assert_eq!(volume.labels["team"], "ml", "the create answer shows them");
    client
        .create_volume(
            &serde_json::from_value(json!({
                "name": "other", "size": 100, "region": "FINLAND-1", "volume_type": "NVMe"
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let firewall = client
        .create_firewall(
            &serde_json::from_value(json!({"name": "web", "region": "FINLAND-1", "labels": team}))
                .unwrap(),
        )
        .await
        .unwrap()
        .data;
    assert_eq!(firewall.labels["team"], "ml");
    let instance = deploy(&client, "source", json!(null)).await;
    app.settle().await;
    let snapshot = client
        .create_snapshot(
            &serde_json::from_value(
                json!({"instance_id": instance, "name": "snap", "labels": team}),
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .data;
    assert_eq!(snapshot.labels["team"], "ml");
    app.settle().await;
    let image = client
        .create_image(
            &serde_json::from_value(
                json!({"snapshot_id": snapshot.id, "name": "img", "labels": team}),
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .data;
    assert_eq!(image.labels["team"], "ml");

    let filter = ["team=ml".to_string()];
    let volumes = client
        .volumes_labelled(&VolumeQuery::default(), &filter)
        .await
        .unwrap()
        .data;
    assert_eq!(volumes.volumes.len(), 1);
    assert_eq!(volumes.pagination.total, 1);
    assert_eq!(volumes.volumes[0].labels["team"], "ml");
    assert_eq!(
        client.volume(&volume.id).await.unwrap().data.labels["team"],
        "ml"
    );
    let firewalls = client
        .firewalls_labelled(&FirewallQuery::default(), &filter)
        .await
        .unwrap()
        .data
        .firewalls;
    assert_eq!(firewalls.len(), 1);
    assert_eq!(firewalls[0].labels["team"], "ml");
    assert_eq!(
        client.firewall(&firewall.id).await.unwrap().data.labels["team"],
        "ml"
    );
    let snapshots = client
        .snapshots_labelled(&SnapshotQuery::default(), &filter)
        .await
        .unwrap()
        .data
        .snapshots;
    assert_eq!(snapshots.len(), 1);
    assert_eq!(
        client.snapshot(&snapshot.id).await.unwrap().data.labels["team"],
        "ml"
    );
    let images = client
        .images_labelled(&ImageQuery::default(), &filter)
        .await
        .unwrap()
        .data
        .images;
    assert_eq!(images.len(), 1);
    assert_eq!(
        client.image(&image.id).await.unwrap().data.labels["team"],
        "ml"
    );

    for (resource, id) in [
        (LabelledResource::Volumes, &volume.id),
        (LabelledResource::Snapshots, &snapshot.id),
        (LabelledResource::Images, &image.id),
        (LabelledResource::Firewalls, &firewall.id),
    ] {
        let changed = client
            .patch_labels(resource, id, &patch(json!({"team": null, "env": "dev"})))
            .await
            .unwrap()
            .data;
        assert_eq!(
            serde_json::to_value(&changed.labels).unwrap(),
            json!({"env": "dev"})
        );
        // A label of one resource type does not select another's: an instance id under volumes is 404.
        let err = client
            .patch_labels(resource, &instance, &patch(json!({"x": "y"})))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(404), "{resource:?}");
    }
    assert_eq!(
        client
            .volumes_labelled(&VolumeQuery::default(), &filter)
            .await
            .unwrap()
            .data
            .volumes
            .len(),
        0
    );
    // A bad label at create is 400 on the label, for every resource.
    let raw = client
        .raw(
            Method::POST,
            "/api/firewalls/",
            Some(&json!({"name": "bad", "region": "FINLAND-1", "labels": {"Bad": "x"}})),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400, "{}", raw.text);
    assert!(raw.body["errors"]["labels.Bad"].is_array(), "{}", raw.text);
    app.stop().await;
}

/// The ids of one page of the list, filtered by `labels`.
async fn page_ids(client: &Client, labels: &[&str], page: u32, limit: u32) -> (Vec<String>, u64) {
    let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    let query = InstanceQuery {
        page: Some(page),
        limit: Some(limit),
        ..InstanceQuery::default()
    };
    let list = client
        .instances_labelled(&query, &labels)
        .await
        .unwrap()
        .data;
    (
        list.instances.into_iter().map(|i| i.instance_id).collect(),
        list.pagination.total,
    )
}

/// A list filtered by `key=value` walks the labels in the list's own order (newest first, then by id):
/// its pages are the unfiltered list's labelled instances, page by page, with instances created in the
/// same millisecond, an old instance labelled last, and a deleted instance among them.
async fn a_filtered_list_pages_in_the_order_of_the_unfiltered_one(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    create_key_k(&client).await;
    let (mut labelled, mut plain) = (Vec::new(), Vec::new());
    for n in 0..12 {
        let team = if n % 3 == 0 {
            json!(null)
        } else {
            json!({"team": "ml"})
        };
        let id = deploy(&client, &format!("n{n:02}"), team.clone()).await;
        if team.is_null() {
            plain.push(id);
        } else {
            labelled.push(id);
        }
        // Some share a millisecond, the others do not.
        if n % 2 == 0 {
            app.clock.advance_ms(1_000);
        }
    }
    // The oldest, labelled after the others were deployed: it keeps its place, last.
    app.clock.advance_ms(1_000);
    let late = plain.remove(0);
    client
        .patch_labels(
            LabelledResource::Instances,
            &late,
            &patch(json!({"team": "ml"})),
        )
        .await
        .unwrap();
    labelled.push(late);
    // A deleted instance leaves the filtered list and its count.
    let gone = labelled.remove(1);
    app.settle().await;
    client.delete_instance(&gone).await.unwrap();
    app.settle().await;
    let (all, _) = page_ids(&client, &[], 1, 100).await;
    assert!(!all.contains(&gone), "{gone} deleted");
    let expected: Vec<String> = all.into_iter().filter(|id| labelled.contains(id)).collect();
    assert_eq!(expected.len(), labelled.len());
    for labels in [&["team=ml"][..], &["team"][..], &["team", "team=ml"][..]] {
        let mut walked = Vec::new();
        for page in 1..=4 {
            let (ids, total) = page_ids(&client, labels, page, 3).await;
            assert_eq!(total, expected.len() as u64, "{labels:?}");
            walked.extend(ids);
        }
        assert_eq!(walked, expected, "{labels:?}");
    }
    app.stop().await;
}
