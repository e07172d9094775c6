//! Volumes through the binary: create with the proposed name, list, show, resize, clone, types, attach to
//! an instance, detach and delete.

use std::time::{Duration, Instant};

use barrack_api::instances::DeployRequest;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_client::Client;
use serde_json::json;

use crate::common::TestServer;

/// Waits for the background worker to bring the volume to `status`.
async fn until_volume(api: &Client, id: &str, status: &str) {
    let started = Instant::now();
    loop {
        let now = api.volume(id).await.unwrap().data.status;
        if now == status {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "volume {id} is {now}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_through_the_cli() {
    let server = TestServer::start().await;
    server.fund_operator(100).await;
    let cli = server.barrack();
    let api = server.client();

    // Without --name, the volume takes the name the API proposes.
    let created = cli
        .run(&[
            "volumes",
            "create",
            "--size",
            "100",
            "--region",
            "FINLAND-1",
            "--type",
            "NVMe",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(created["name"], "volume1");
    let id = created["id"].as_str().unwrap().to_string();
    until_volume(&api, &id, "available").await;
    assert_eq!(
        cli.run(&["volumes", "list", "-q"]).await.lines(),
        [id.as_str()]
    );
    let shown = cli.run(&["volumes", "show", &id]).await;
    let text = shown.ok();
    assert!(
        text.contains("available") && text.contains("100 GB") && text.contains("0.0293 USD/hour"),
        "{text}"
    );

    let resized = cli.run(&["volumes", "resize", &id, "--size", "200"]).await;
    assert!(resized.ok().contains("resize to 200 GB"), "{resized:?}");
    until_volume(&api, &id, "available").await;
    let shrink = cli.run(&["volumes", "resize", &id, "--size", "50"]).await;
    assert_eq!(shrink.code, 6, "{shrink:?}");
    assert!(shrink.stderr.contains("size:"), "{}", shrink.stderr);

    let copy = cli
        .run(&["volumes", "clone", &id, "--name", "copy", "-q"])
        .await
        .ok()
        .trim()
        .to_string();
    assert!(copy.starts_with("BRK-") && copy.ends_with('V'));
    until_volume(&api, &copy, "available").await;

    let types = cli.run(&["volumes", "types"]).await;
    let text = types.ok();
    assert!(
        text.contains("NVMe") && text.contains("SSD") && text.contains("0.30"),
        "{text}"
    );

    // Attach to a running instance, detach, delete.
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
    cli.run(&["instances", "show", &instance, "--help"]).await;
    let started = Instant::now();
    while api.instance(&instance).await.unwrap().data.status != "ACTIVE" {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let attached = cli
        .run(&[
            "volumes",
            "attach",
            "--instance",
            &instance,
            &id,
            &copy,
            "-q",
        ])
        .await;
    assert_eq!(attached.lines(), [id.as_str(), copy.as_str()]);
    until_volume(&api, &id, "in-use").await;
    let busy = cli.run(&["volumes", "delete", &id]).await;
    assert_ne!(busy.code, 0);
    assert!(busy.stderr.contains("detach"), "{}", busy.stderr);
    let detached = cli
        .run(&["volumes", "detach", "--instance", &instance, &id])
        .await;
    assert!(detached.ok().contains("detach"), "{detached:?}");
    until_volume(&api, &id, "available").await;
    let deleted = cli
        .run(&["volumes", "delete", &id, "-o", "json"])
        .await
        .json();
    assert_eq!(deleted["status"], "deleting");
    server.stop().await;
}
