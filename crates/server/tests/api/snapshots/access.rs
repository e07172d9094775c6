//! Who may take snapshots and make images (profile, balance, tier), and another account's snapshots and
//! images are not found.

use barrack_api::account::ProfileUpdate;
use barrack_api::images::ImageQuery;
use barrack_api::snapshots::SnapshotQuery;
use barrack_api::{Currency, Tier};
use serde_json::json;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{
    active_instance, deploy_body, failure, image_request, snapshot_request, successful_snapshot,
};

on_both_databases!(
    profile_balance_and_tier_checks,
    other_accounts_snapshots_and_images_are_not_found,
);

const LEGACY_IMAGE: &str = "Ubuntu Server 22.04 LTS R550 CUDA 12.4";

async fn profile_balance_and_tier_checks(db: Db) {
    let app = TestApp::start(db).await;

    // 403 and 402 come before the instance is looked at, as at deploy.
    let (bare, account) = app.user(Tier::Advanced).await;
    let e = bare
        .create_snapshot(&snapshot_request("BRK-ZZZZZZD", "s", false))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some("PROFILE_INCOMPLETE"))
    );
    bare.update_profile(&ProfileUpdate {
        address_line: Some(Some("1 Main St".into())),
        postal_code: Some(Some("10001".into())),
        country: Some(Some("US".into())),
        ..Default::default()
    })
    .await
    .unwrap();
    let e = bare
        .create_snapshot(&snapshot_request("BRK-ZZZZZZD", "s", false))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(402), Some("INSUFFICIENT_BALANCE"))
    );
    app.grant(&account, "0.50", Currency::USD).await;
    let e = bare
        .create_snapshot(&snapshot_request("BRK-ZZZZZZD", "s", false))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(402), "below the minimum balance");

    // Legacy snapshots are priced: 10 INR an hour for 100 GB.
    let (legacy, _) = app.funded_user(Tier::Legacy, "IN", "1000").await;
    let instance = deploy_body(
        &legacy,
        json!({
            "gpu_model": "RTX-A6000", "gpu_count": 1, "region": "CANADA-1", "instance_name": "box",
            "image_name": LEGACY_IMAGE
        }),
    )
    .await
    .unwrap();
    app.settle().await;
    let snapshot = successful_snapshot(&app, &legacy, &instance, "box snapshot").await;
    let shown = legacy.snapshot(&snapshot).await.unwrap().data;
    assert_eq!(
        (shown.currency, shown.size_gb, shown.tier),
        (Currency::INR, 100, Tier::Legacy)
    );
    assert_eq!(shown.hourly_rate.0, rust_decimal::Decimal::from(10));

    // Restoring checks the profile and the balance too (an account moved to the US has USD 0; the API
    // refuses that move for an account with credits, so it is made in the database).
    let legacy_account = legacy.profile().await.unwrap().data.id;
    app.set_country_in_database(&legacy_account, "US").await;
    let e = legacy.restore_snapshot(&snapshot, None).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(402), Some("INSUFFICIENT_BALANCE"))
    );
    let e = legacy
        .create_snapshot(&snapshot_request(&instance, "again", false))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(402));
    app.set_country_in_database(&legacy_account, "IN").await;
    legacy
        .replace_profile(&ProfileUpdate {
            name: Some(Some("Test User".into())),
            country: Some(Some("IN".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = legacy.restore_snapshot(&snapshot, None).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some("PROFILE_INCOMPLETE"))
    );
    let e = legacy
        .create_image(&image_request(&snapshot, "no profile needed"))
        .await;
    assert!(e.is_ok(), "images cost nothing of their own: {e:?}");

    // A key of the other tier acts in its own tier only.
    let advanced = legacy.with_api_key(
        app.admin
            .admin_create_api_key(
                &legacy.profile().await.unwrap().data.id,
                "adv",
                Tier::Advanced,
            )
            .await
            .unwrap()
            .data
            .key
            .key,
    );
    let e = advanced
        .create_image(&image_request(&snapshot, "other tier"))
        .await
        .unwrap_err();
    assert_eq!(
        failure(e),
        (400, "VALIDATION_ERROR".into(), vec!["snapshot_id".into()])
    );
    app.stop().await;
}

async fn other_accounts_snapshots_and_images_are_not_found(db: Db) {
    let app = TestApp::start(db).await;
    let (owner, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let (other, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let instance = active_instance(&app, &owner, "mine", "FINLAND-1", 1, 100).await;
    let snapshot = successful_snapshot(&app, &owner, &instance, "mine").await;
    let image = owner
        .create_image(&image_request(&snapshot, "mine"))
        .await
        .unwrap()
        .data;

    let errors = vec![
        other.snapshot(&snapshot).await.unwrap_err(),
        other.delete_snapshot(&snapshot).await.unwrap_err(),
        other
            .restore_snapshot(&snapshot, Some("stolen"))
            .await
            .unwrap_err(),
        other
            .snapshot_image_relationship(&snapshot)
            .await
            .unwrap_err(),
        other
            .create_snapshot(&snapshot_request(&instance, "stolen", false))
            .await
            .unwrap_err(),
        other
            .create_image(&image_request(&snapshot, "stolen"))
            .await
            .unwrap_err(),
        other.image(&image.id).await.unwrap_err(),
        other.delete_image(&image.id).await.unwrap_err(),
    ];
    for e in errors {
        assert_eq!(
            (e.status(), e.code()),
            (Some(404), Some("NOT_FOUND")),
            "{e}"
        );
    }
    let batch = other
        .snapshot_image_relationships(std::slice::from_ref(&snapshot))
        .await
        .unwrap()
        .data;
    assert_eq!(
        (batch.relationships.len(), batch.not_found),
        (0, vec![snapshot.clone()])
    );
    assert_eq!(
        other
            .snapshots(&SnapshotQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0
    );
    assert_eq!(
        other
            .images(&ImageQuery::default())
            .await
            .unwrap()
            .data
            .pagination
            .total,
        0
    );
    // Another account's image does not boot: by name or id it is unknown to the caller.
    for name in [image.name.as_str(), image.id.as_str()] {
        let e = deploy_body(
            &other,
            json!({
                "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "x1",
                "image_name": name
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(failure(e).2, ["image_name"]);
    }
    // Names are per account.
    let theirs = active_instance(&app, &other, "theirs", "FINLAND-1", 1, 100).await;
    let their_snapshot = successful_snapshot(&app, &other, &theirs, "mine").await;
    other
        .create_image(&image_request(&their_snapshot, "mine"))
        .await
        .unwrap();
    assert_eq!(
        owner.image(&image.id).await.unwrap().data.snapshot_id,
        snapshot
    );
    app.stop().await;
}
