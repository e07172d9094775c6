//! Snapshots and custom images through the binary: snapshot a running instance (with an image), list,
//! show, relationships single and batch, make another image, restore with --wait, delete.

use std::time::{Duration, Instant};

use barrack_api::instances::DeployRequest;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_client::Client;
use serde_json::json;

use crate::common::TestServer;

/// Waits for the background worker to bring the snapshot to `status`.
async fn until_snapshot(api: &Client, id: &str, status: &str) {
    let started = Instant::now();
    loop {
        let now = api.snapshot(id).await.unwrap().data.status;
        if now == status {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "snapshot {id} is {now}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_and_images_through_the_cli() {
    let server = TestServer::start().await;
    server.fund_operator(100).await;
    let cli = server.barrack();
    let api = server.client();

    let key = api
        .create_ssh_key(&CreateSshKeyRequest {
            name: "laptop".into(),
            public_key: None,
        })
        .await
        .unwrap()
        .data
        .key
        .name;
    let request: DeployRequest = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "box",
        "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker", "ssh_key": key
    }))
    .unwrap();
    let instance = api.deploy(&request).await.unwrap().data.instance_id;
    let started = Instant::now();
    while api.instance(&instance).await.unwrap().data.status != "ACTIVE" {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let created = cli
        .run(&[
            "snapshots",
            "create",
            "--instance",
            &instance,
            "--name",
            "nightly",
            "--description",
            "before the upgrade",
            "--image",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(created["status"], "CREATING");
    assert_eq!(created["is_image"], true);
    let snapshot = created["id"].as_str().unwrap().to_string();
    until_snapshot(&api, &snapshot, "SUCCESS").await;
    assert_eq!(
        cli.run(&["snapshots", "list", "-q"]).await.lines(),
        [snapshot.as_str()]
    );
    // An instance is named by its id or its name, as everywhere else.
    for named in [instance.as_str(), "box"] {
        assert_eq!(
            cli.run(&["snapshots", "list", "--instance", named, "-q"])
                .await
                .lines(),
            [snapshot.as_str()],
            "{named}"
        );
    }
    let shown = cli.run(&["snapshots", "show", &snapshot]).await;
    let text = shown.ok();
    assert!(
        text.contains("SUCCESS")
            && text.contains("H100-SXM5-80GB×1")
            && text.contains("before the upgrade")
            && text.contains(&instance),
        "{text}"
    );
    let stopped_name = cli
        .run(&[
            "snapshots",
            "create",
            "--instance",
            "BRK-ZZZZZZD",
            "--name",
            "x",
        ])
        .await;
    assert_eq!(stopped_name.code, 4, "{stopped_name:?}");

    // The image asked for with the snapshot, and its relationship.
    let images = cli.run(&["images", "list", "-q"]).await;
    let first_image = images.lines()[0].to_string();
    let image = cli
        .run(&["images", "show", &first_image, "-o", "json"])
        .await
        .json();
    assert_eq!(
        (image["name"].as_str(), image["status"].as_str()),
        (Some("nightly"), Some("SUCCESS"))
    );
    let related = cli.run(&["images", "relationship", &snapshot, "-q"]).await;
    assert_eq!(related.lines(), [first_image.as_str()]);
    let batch = cli
        .run(&["images", "relationship", &snapshot, "BRK-ZZZZZZS"])
        .await;
    // An id not found fails the command after what was found is printed.
    assert_eq!(batch.code, 4, "{batch:?}");
    assert!(batch.stdout.contains(&first_image), "{batch:?}");
    assert_eq!(batch.stderr, "error: snapshot not found: BRK-ZZZZZZS\n");
    let batch = cli
        .run(&["images", "relationship", &snapshot, "--batch", "-o", "json"])
        .await
        .json();
    assert_eq!(batch["relationships"][0]["image_count"], 1);
    assert_eq!(batch["not_found"], json!([]));

    let golden = cli
        .run(&[
            "images",
            "create",
            "--snapshot",
            &snapshot,
            "--name",
            "golden",
            "-q",
        ])
        .await
        .ok()
        .trim()
        .to_string();
    assert!(
        golden.starts_with("BRK-") && golden.ends_with('I'),
        "{golden}"
    );
    let duplicate = cli
        .run(&[
            "images",
            "create",
            "--snapshot",
            &snapshot,
            "--name",
            "golden",
        ])
        .await;
    assert_eq!(duplicate.code, 5, "{duplicate:?}");

    // Restore into a new instance and wait for it.
    let restored = cli
        .run(&["snapshots", "restore", &snapshot, "--wait", "-o", "json"])
        .await
        .json();
    assert_eq!(restored["status"], "ACTIVE");
    assert_eq!(restored["name"], "nightly-restored");
    assert_eq!(restored["boot_source"], "snapshot");
    assert_ne!(restored["instance_id"], instance.as_str());
    let named = cli
        .run(&["snapshots", "restore", &snapshot, "--name", "second", "-q"])
        .await;
    assert!(named.ok().trim().ends_with('D'), "{named:?}");

    // Delete the snapshot and the images; the restored instance stays.
    let deleted = cli
        .run(&["snapshots", "delete", &snapshot, "-o", "json"])
        .await
        .json();
    assert_eq!(deleted["status"], "DELETING");
    for image in [&first_image, &golden] {
        let gone = cli.run(&["images", "delete", image]).await;
        assert!(gone.ok().contains("deleted"), "{gone:?}");
    }
    assert!(cli.run(&["images", "list", "-q"]).await.lines().is_empty());
    let restored_id = restored["instance_id"].as_str().unwrap();
    assert_eq!(
        api.instance(restored_id).await.unwrap().data.status,
        "ACTIVE"
    );
    server.stop().await;
}
