//! The volume, firewall and image pages: resize, clone, attach and detach volumes; firewall rules and
//! attachments; custom images.

use reqwest::StatusCode;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{Browser, account, firewall_from_page, volume_from_page, with_instance};

on_both_databases!(
    volumes_firewalls_and_images_from_their_pages,
    list_filters_the_service_refuses_are_messages_at_their_fields,
);

async fn list_filters_the_service_refuses_are_messages_at_their_fields(db: Db) {
    let app = TestApp::start(db).await;
    let (email, _) = account(&app, false).await;
    let mut b = Browser::signed_in(&app, &email).await;
    let unknown_region = "Unknown region &#39;NOWHERE-9&#39;. Valid values: ";
    let unknown_status = "Unknown status &#39;melting&#39;. Valid values: ";
    for (path, field, message) in [
        ("/volumes?region=NOWHERE-9", "region", unknown_region),
        ("/volumes?status=melting", "status", unknown_status),
        ("/firewalls?region=NOWHERE-9", "region", unknown_region),
        ("/images?region=NOWHERE-9", "region", unknown_region),
        ("/images?status=melting", "status", unknown_status),
        ("/instances?region=NOWHERE-9", "region", unknown_region),
        ("/instances?status=melting", "status", unknown_status),
        (
            "/transactions?type=bogus",
            "type",
            "Unknown transaction type &#39;bogus&#39;. Valid values: deposit, usage, grant",
        ),
    ] {
        let page = b.get(path).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            page.body
        );
        // The list's own page, signed in, with the message where the field is (or above the filters).
        assert!(page.body.contains("Sign out"), "{path}: {}", page.body);
        let at_field = format!(r#"<p class="field-error" id="{field}-error">{message}"#);
        let above = format!(r#"<p class="field-error" role="alert">{field}: {message}"#);
        assert!(
            page.body.contains(&at_field) || page.body.contains(&above),
            "{path}: {}",
            page.body
        );
    }
}

async fn volumes_firewalls_and_images_from_their_pages(db: Db) {
    let app = TestApp::start(db).await;
    let (mut b, instance) = with_instance(&app).await;

    // A volume: grow (only), clone, attach to and detach from the instance.
    let volume = volume_from_page(&app, &mut b, "res-vol").await;
    let path = format!("/volumes/{volume}");
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("res-vol") && page.body.contains("Not attached."));
    // A name already taken, or no region chosen, is a message at its field.
    let volume_form = |name: &'static str, region: &'static str| {
        [
            ("name", name),
            ("size", "20"),
            ("region", region),
            ("volume_type", "NVMe"),
        ]
    };
    let taken = b
        .post("/volumes", &volume_form("res-vol", "FINLAND-1"))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
    assert!(
        taken.body.contains(r#"aria-invalid="true" aria-describedby="name-error""#)
            && taken.body.contains(
                r#"<p class="field-error" id="name-error">A volume named &#39;res-vol&#39; already exists.</p>"#
            ),
        "{}",
        taken.body
    );
    assert!(
        !taken.body.contains(r#"<div class="alert""#),
        "{}",
        taken.body
    );
    let no_region = b.post("/volumes", &volume_form("res-vol-2", "")).await;
    assert_eq!(no_region.status, StatusCode::BAD_REQUEST);
    assert!(
        no_region
            .body
            .contains(r#"<p class="field-error" id="region-error">Choose a region.</p>"#),
        "{}",
        no_region.body
    );
    let taken = b
        .post(&format!("{path}/clone"), &[("name", "res-vol")])
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
    assert!(
        taken.body.contains("id=\"clone-name-error\""),
        "{}",
        taken.body
    );
    // The list filters by region and status; a status the API does not know is its message.
    let listed = b.get("/volumes?region=FINLAND-1&status=available").await;
    assert!(listed.body.contains(">res-vol</a>"));
    let listed = b.get("/volumes?status=in-use").await;
    assert!(!listed.body.contains(">res-vol</a>"));
    let refused = b.get("/volumes?status=melting").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("Unknown status"), "{}", refused.body);
    let shrink = b.post(&format!("{path}/resize"), &[("size", "10")]).await;
    assert_eq!(shrink.status, StatusCode::BAD_REQUEST);
    assert!(shrink.body.contains("id=\"size-error\""), "{}", shrink.body);
    assert!(shrink.body.contains("Volumes only grow"));
    let grown = b.post(&format!("{path}/resize"), &[("size", "40")]).await;
    assert_eq!(grown.status, StatusCode::SEE_OTHER, "{}", grown.body);
    app.settle().await;
    assert!(b.get(&path).await.body.contains("40 GB"));
    let bad_clone = b.post(&format!("{path}/clone"), &[("name", "")]).await;
    assert_eq!(bad_clone.status, StatusCode::BAD_REQUEST);
    assert!(bad_clone.body.contains("id=\"clone-name-error\""));
    let cloned = b
        .post(&format!("{path}/clone"), &[("name", "res-vol-copy")])
        .await;
    assert_eq!(cloned.status, StatusCode::SEE_OTHER, "{}", cloned.body);
    assert_ne!(cloned.location(), path);
    app.settle().await;
    let copy = b.get(cloned.location()).await;
    assert!(copy.body.contains("res-vol-copy") && copy.body.contains(&volume));
    let unknown = b
        .post(&format!("{path}/attach"), &[("instance_id", "no-such")])
        .await;
    assert!(unknown.body.contains("id=\"instance_id-error\""));
    let attached = b
        .post(&format!("{path}/attach"), &[("instance_id", &instance)])
        .await;
    assert_eq!(attached.status, StatusCode::SEE_OTHER, "{}", attached.body);
    app.settle().await;
    assert!(b.get(&path).await.body.contains("Attached to"));
    let detached = b.post(&format!("{path}/detach"), &[]).await;
    assert_eq!(detached.status, StatusCode::SEE_OTHER, "{}", detached.body);
    app.settle().await;
    assert!(b.get(&path).await.body.contains("Not attached."));

    // A firewall: rules added and removed, attached to and detached from the instance.
    let firewall = firewall_from_page(&app, &mut b, "res-fw").await;
    let path = format!("/firewalls/{firewall}");
    let listed = b.get("/firewalls?region=FINLAND-1&page=1").await;
    assert!(listed.body.contains(">res-fw</a>") && listed.body.contains("Page 1 of 1"));
    let taken = b
        .post("/firewalls", &[("name", "res-fw"), ("region", "FINLAND-1")])
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
    assert!(taken.body.contains(r#"id="name-error""#), "{}", taken.body);
    let bad = b
        .post(&format!("{path}/rules"), &[("direction", "sideways")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("id=\"rule-direction-error\""),
        "{}",
        bad.body
    );
    let added = b
        .post(
            &format!("{path}/rules"),
            &[
                ("direction", "ingress"),
                ("protocol", "tcp"),
                ("port_range_min", "443"),
                ("port_range_max", "443"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let unknown = b
        .post(&format!("{path}/attach"), &[("instance_id", "no-such")])
        .await;
    assert!(
        unknown.body.contains("id=\"instance_id-error\""),
        "{}",
        unknown.body
    );
    let attached = b
        .post(&format!("{path}/attach"), &[("instance_id", &instance)])
        .await;
    assert_eq!(attached.status, StatusCode::SEE_OTHER, "{}", attached.body);
    app.settle().await;
    let page = b.get(&path).await;
    assert!(page.body.contains("res-one") && page.body.contains(">SUCCESS<"));
    let detached = b
        .post(&format!("{path}/instances/{instance}/detach"), &[])
        .await;
    assert_eq!(detached.status, StatusCode::SEE_OTHER, "{}", detached.body);
    let marker = format!("{path}/rules/");
    let page = b.get(&path).await;
    let start = page.body.find(&marker).unwrap() + marker.len();
    let rule = page.body[start..start + page.body[start..].find('/').unwrap()].to_string();
    let removed = b.post(&format!("{path}/rules/{rule}/delete"), &[]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    app.settle().await;
    assert!(
        b.get(&path)
            .await
            .body
            .contains("Not attached to any instance.")
    );

    // A custom image from a snapshot of the instance, listed, offered on the deploy page, deleted.
    let snap = b
        .post(
            &format!("/instances/{instance}/snapshot"),
            &[("name", "res-snap")],
        )
        .await;
    assert_eq!(snap.status, StatusCode::SEE_OTHER, "{}", snap.body);
    app.settle().await;
    let images = b.get("/images").await;
    assert_eq!(images.status, StatusCode::OK);
    assert!(images.body.contains("res-snap"));
    let marker = "<option value=\"";
    let start = images.body.find("id=\"snapshot_id\"").unwrap();
    let at = images.body[start..].find(marker).unwrap() + start + marker.len();
    let at = images.body[at..].find(marker).unwrap() + at + marker.len();
    let snapshot = images.body[at..at + images.body[at..].find('"').unwrap()].to_string();
    let bad = b
        .post("/images", &[("snapshot_id", &snapshot), ("name", "")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("id=\"name-error\""), "{}", bad.body);
    let made = b
        .post(
            "/images",
            &[("snapshot_id", &snapshot), ("name", "res-image")],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    app.settle().await;
    let images = b.get("/images?status=SUCCESS").await;
    assert!(images.body.contains("res-image"), "{}", images.body);
    assert!(b.get("/deploy").await.body.contains("Custom images"));
    let marker = "/images/";
    let start = images.body.find("action=\"/images/").unwrap() + "action=\"".len() + marker.len();
    let image = images.body[start..start + images.body[start..].find('/').unwrap()].to_string();
    let deleted = b.post(&format!("/images/{image}/delete"), &[]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    app.stop().await;
}
