//! Commitments: what raises an account's hourly burn is checked, inside its write transaction, against the
//! balance less the burn already committed, so concurrent requests cannot spend the same credit twice.

use barrack_api::Tier;
use barrack_api::volumes::CreateVolumeRequest;
use reqwest::Method;
use serde_json::json;

use crate::common::{Db, TestApp, create_key_k};
use crate::on_both_databases;

on_both_databases!(
    twenty_parallel_deploys_on_credit_for_three_start_three,
    a_volume_cannot_grow_past_the_balance,
);

/// USD 2.49 an hour for one H100 and 0.029296875 for its 100 GB disk: 8 USD covers three such hours, not four.
async fn twenty_parallel_deploys_on_credit_for_three_start_three(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "8").await;
    create_key_k(&client).await;
    let deploys: Vec<_> = (0..20)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                let body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1",
                    "instance_name": format!("race-{n}"), "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker",
                    "ssh_key": "k", "os_volume": {"size": 100}});
                client
                    .raw(Method::POST, "/api/deploy-server/", Some(&body))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    for deploy in deploys {
        let raw = deploy.await.unwrap();
        match raw.status.as_u16() {
            201 => created += 1,
            402 => {
                assert_eq!(raw.body["code"], "INSUFFICIENT_BALANCE", "{}", raw.text);
                let message = raw.body["message"].as_str().unwrap();
                assert!(message.contains("committed"), "{message}");
            }
            other => panic!("{other}: {}", raw.text),
        }
    }
    assert_eq!(created, 3, "credit for three hours of one instance each");
    app.settle().await;
    let listed = client
        .raw(Method::GET, "/api/instances/", None)
        .await
        .unwrap();
    assert_eq!(
        listed.body["data"]["pagination"]["total"], 3,
        "{}",
        listed.text
    );
    app.stop().await;
}

/// A 100 GB NVMe volume costs 0.03 an hour; 1 PB would cost 300. 50 USD of credit allows the first only.
async fn a_volume_cannot_grow_past_the_balance(db: Db) {
    let app = TestApp::start(db).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "50").await;
    let volume = client
        .create_volume(&CreateVolumeRequest {
            name: "data".into(),
            size: 100,
            region: "FINLAND-1".into(),
            volume_type: "NVMe".into(),
            bootable: false,
            image_name: None,
            labels: Default::default(),
        })
        .await
        .unwrap()
        .data;
    app.settle().await;
    let refused = client
        .resize_volume(&volume.id, 1_000_000)
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(402), Some("INSUFFICIENT_BALANCE")),
        "{refused}"
    );
    // A growth the balance covers is fine.
    client.resize_volume(&volume.id, 200).await.unwrap();
    app.settle().await;
    app.stop().await;
}
