//! API-key lookups may be cached (on PostgreSQL), but a revoked key or a changed profile is seen at once
//! by the server that made the change and, within moments, by every other server on the database.

use std::time::{Duration, Instant};

use barrack_api::Tier;
use barrack_api::account::ProfileUpdate;
use barrack_client::Client;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(revocation_and_profile_changes_reach_every_replica);

/// How long another replica may take to hear of a change (a notification's trip through the database).
const PROPAGATION: Duration = Duration::from_secs(2);

async fn wait_until_refused(client: &Client) -> Duration {
    let started = Instant::now();
    loop {
        match client.profile().await {
            Err(e) if e.status() == Some(401) => return started.elapsed(),
            Err(e) => panic!("unexpected failure {e}"),
            Ok(_) => {
                assert!(
                    started.elapsed() < PROPAGATION,
                    "the replica still accepts a revoked key"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

async fn revocation_and_profile_changes_reach_every_replica(db: Db) {
    let app = TestApp::start(db).await;
    let other = app.replica().await;
    let (client, _, _) = app.user_with_key(Tier::Advanced).await;
    let created = client
        .create_api_key("second", Tier::Advanced)
        .await
        .unwrap()
        .data;
    let here = client.with_api_key(&created.key);
    let there = Client::builder(format!("http://{}", other.addr))
        .api_key(created.key.clone())
        .max_retries(0)
        .build()
        .unwrap();
    // Both servers have looked the key up (and may hold it in their caches).
    for _ in 0..3 {
        assert_eq!(here.profile().await.unwrap().data.name, "Test User");
        assert_eq!(there.profile().await.unwrap().data.name, "Test User");
    }

    // A profile change made through one server is what the other shows.
    here.update_profile(&ProfileUpdate {
        name: Some(Some("Renamed".into())),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(here.profile().await.unwrap().data.name, "Renamed");
    let started = Instant::now();
    while there.profile().await.unwrap().data.name != "Renamed" {
        assert!(
            started.elapsed() < PROPAGATION,
            "the replica still shows the old profile"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Revoked through one server: refused there at once, and on the other within moments.
    client.delete_api_key(&created.id).await.unwrap();
    let refused = here.profile().await.unwrap_err();
    assert_eq!(refused.status(), Some(401), "refused at once where revoked");
    wait_until_refused(&there).await;
    // And it stays refused.
    for _ in 0..5 {
        assert_eq!(there.profile().await.unwrap_err().status(), Some(401));
        assert_eq!(here.profile().await.unwrap_err().status(), Some(401));
    }
    // The account's other key still works on both.
    assert!(client.profile().await.is_ok());
    other.shutdown().await;
    app.stop().await;
}
