//! Who may create volumes (tier, profile, balance), and another account's volumes are not found.

use barrack_api::account::ProfileUpdate;
use barrack_api::volumes::VolumeQuery;
use barrack_api::{Currency, Tier};

use crate::common::{Db, TestApp};
use crate::on_both_databases;

use super::{active_instance, available_volume, failure, volume};

on_both_databases!(
    tier_profile_and_balance_checks,
    other_accounts_volumes_are_not_found,
);

async fn tier_profile_and_balance_checks(db: Db) {
    let app = TestApp::start(db).await;
    let (client, account) = app.user(Tier::Advanced).await;

    // 400: a type or region of the other tier, each named.
    let e = client
        .create_volume(&volume("v", 100, "FINLAND-1", "SSD"))
        .await
        .unwrap_err();
    assert_eq!(
        failure(e),
        (400, "VALIDATION_ERROR".into(), vec!["volume_type".into()])
    );
    let e = client
        .create_volume(&volume("v", 100, "CANADA-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(
        failure(e),
        (400, "VALIDATION_ERROR".into(), vec!["region".into()])
    );

    // 403: the billing profile is incomplete.
    let e = client
        .create_volume(&volume("v", 100, "FINLAND-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some("PROFILE_INCOMPLETE"))
    );

    // 402: no credits, then less than the minimum balance, then less than the first hour.
    client
        .update_profile(&ProfileUpdate {
            address_line: Some(Some("1 Main St".into())),
            postal_code: Some(Some("10001".into())),
            country: Some(Some("US".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = client
        .create_volume(&volume("v", 100, "FINLAND-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(402), Some("INSUFFICIENT_BALANCE"))
    );
    app.grant(&account, "0.50", Currency::USD).await;
    let e = client
        .create_volume(&volume("v", 100, "FINLAND-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(402));
    app.grant(&account, "9.50", Currency::USD).await;
    // A 1 PB NVMe volume costs 307.20 USD an hour.
    let e = client
        .create_volume(&volume("v", 1_048_576, "FINLAND-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(402));
    assert!(e.to_string().contains("307.2"), "{e}");
    let id = available_volume(&app, &client, volume("v", 100, "FINLAND-1", "NVMe")).await;

    // Cloning creates a volume too, with the same checks.
    let (legacy, _) = app.funded_user(Tier::Legacy, "IN", "1000").await;
    let ssd = available_volume(&app, &legacy, volume("ssd", 10, "CANADA-1", "SSD")).await;
    assert_eq!(
        legacy.volume(&ssd).await.unwrap().data.currency,
        Currency::INR
    );
    let e = legacy
        .create_volume(&volume("nvme", 10, "CANADA-1", "NVMe"))
        .await
        .unwrap_err();
    assert_eq!(failure(e).2, ["volume_type"]);
    client
        .replace_profile(&ProfileUpdate {
            name: Some(Some("Test User".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = client.clone_volume(&id, "copy").await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some("PROFILE_INCOMPLETE"))
    );
    app.stop().await;
}

async fn other_accounts_volumes_are_not_found(db: Db) {
    let app = TestApp::start(db).await;
    let (owner, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let (other, _) = app.funded_user(Tier::Advanced, "US", "100").await;
    let instance = active_instance(&app, &owner, "mine", "FINLAND-1").await;
    let id = available_volume(&app, &owner, volume("mine", 10, "FINLAND-1", "HDD")).await;
    let theirs = available_volume(&app, &other, volume("theirs", 10, "FINLAND-1", "HDD")).await;

    let mut errors = vec![
        other.volume(&id).await.unwrap_err(),
        other.delete_volume(&id).await.unwrap_err(),
        other.resize_volume(&id, 20).await.unwrap_err(),
        other.clone_volume(&id, "stolen").await.unwrap_err(),
        // Their key on my instance, my volume on their instance, their volume on my instance.
        other
            .attach_volumes(&instance, std::slice::from_ref(&theirs))
            .await
            .unwrap_err(),
        other
            .detach_volumes(&instance, std::slice::from_ref(&id))
            .await
            .unwrap_err(),
        owner
            .attach_volumes(&instance, std::slice::from_ref(&theirs))
            .await
            .unwrap_err(),
    ];
    errors.push(owner.volume(&theirs).await.unwrap_err());
    for e in errors {
        assert_eq!(
            (e.status(), e.code()),
            (Some(404), Some("NOT_FOUND")),
            "{e}"
        );
    }
    assert!(
        other
            .volumes(&VolumeQuery::default())
            .await
            .unwrap()
            .data
            .volumes
            .iter()
            .all(|v| v.id == theirs)
    );
    // Each account has its own names.
    available_volume(&app, &other, volume("mine", 10, "FINLAND-1", "HDD")).await;
    app.stop().await;
}
