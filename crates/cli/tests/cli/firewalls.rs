//! Firewalls through the binary: create with rules, list, show, protocols, add and remove rules, attach
//! to an instance (by the instance's name in `instances firewalls`), available instances, detach, delete.

use std::time::{Duration, Instant};

use barrack_api::instances::DeployRequest;
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_client::Client;
use serde_json::json;

use crate::common::TestServer;

/// Waits for the background worker to bring the firewall's attachment to `instance` to `status` (`None`:
/// detached).
async fn until_attachment(api: &Client, firewall: &str, instance: &str, status: Option<&str>) {
    let started = Instant::now();
    loop {
        let now = api
            .firewall(firewall)
            .await
            .unwrap()
            .data
            .instances
            .into_iter()
            .find(|a| a.instance_id == instance)
            .map(|a| a.status);
        if now.as_deref() == status {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "attachment of {firewall} to {instance} is {now:?}, not {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewalls_through_the_cli() {
    let server = TestServer::start().await;
    server.fund_operator(100).await;
    let cli = server.barrack();
    let api = server.client();

    let created = cli
        .run(&[
            "firewalls",
            "create",
            "--name",
            "web",
            "--region",
            "FINLAND-1",
            "--description",
            "HTTPS and SSH",
            "--rule",
            "ingress:tcp:443",
            "--rule",
            "ingress:tcp:22:203.0.113.0/24",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(created["rule_count"], 2);
    assert_eq!(created["rules"][1]["remote_ip_prefix"], "203.0.113.0/24");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        cli.run(&["firewalls", "list", "-q"]).await.lines(),
        [id.as_str()]
    );
    let bad = cli
        .run(&[
            "firewalls",
            "create",
            "--name",
            "bad",
            "--region",
            "FINLAND-1",
            "--rule",
            "ingress:tcp:22:10.0.0.5/24",
        ])
        .await;
    assert_eq!(bad.code, 6, "{bad:?}");
    assert!(
        bad.stderr.contains("rules[0].remote_ip_prefix"),
        "{}",
        bad.stderr
    );

    let protocols = cli.run(&["firewalls", "protocols"]).await;
    let text = protocols.ok();
    assert!(text.contains("tcp") && text.contains("ipv6-icmp"), "{text}");

    let added = cli
        .run(&[
            "firewalls",
            "rules",
            "add",
            &id,
            "--direction",
            "ingress",
            "--protocol",
            "udp",
            "--port-min",
            "53",
            "--port-max",
            "53",
            "-q",
        ])
        .await
        .ok()
        .trim()
        .to_string();
    assert!(added.starts_with("BRK-") && added.ends_with('R'), "{added}");
    let removed = cli
        .run(&["firewalls", "rules", "remove", &id, &added])
        .await;
    assert!(removed.ok().contains("Removed rule"), "{removed:?}");

    // Attach to a running instance.
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
    let available = cli.run(&["firewalls", "available-instances", &id]).await;
    assert!(available.ok().contains("box"), "{available:?}");
    let attached = cli
        .run(&["firewalls", "attach", &id, &instance, "-q"])
        .await;
    assert_eq!(attached.lines(), [instance.as_str()]);
    until_attachment(&api, &id, &instance, Some("SUCCESS")).await;
    let shown = cli.run(&["firewalls", "show", &id]).await;
    let text = shown.ok();
    assert!(
        text.contains("SUCCESS") && text.contains("443") && text.contains("box"),
        "{text}"
    );
    let on_instance = cli.run(&["instances", "firewalls", "box"]).await;
    let text = on_instance.ok();
    assert!(
        text.contains("web") && text.contains("203.0.113.0/24"),
        "{text}"
    );
    let rules = cli.run(&["instances", "show", "box"]).await;
    assert!(
        rules.ok().contains(&id),
        "rules show their firewall: {rules:?}"
    );

    // Attached: deleting needs --force (or a detach first).
    let busy = cli.run(&["firewalls", "delete", &id]).await;
    assert_eq!(busy.code, 5, "{busy:?}");
    // The CLI user is told the flag, not the API's parameter (force=true) alone.
    assert!(
        busy.stderr.contains(&format!(
            "hint: detach it with `barrack firewalls detach {id} INSTANCE...`"
        )) && busy
            .stderr
            .contains(&format!("`barrack firewalls delete {id} --force`")),
        "{}",
        busy.stderr
    );
    let detached = cli.run(&["firewalls", "detach", &id, &instance]).await;
    assert!(detached.ok().contains("detach"), "{detached:?}");
    until_attachment(&api, &id, &instance, None).await;
    cli.run(&["firewalls", "attach", &id, &instance]).await.ok();
    until_attachment(&api, &id, &instance, Some("SUCCESS")).await;
    let deleted = cli
        .run(&["firewalls", "delete", &id, "--force", "-o", "json"])
        .await
        .json();
    assert_eq!(deleted["status"], "DELETED");
    assert_eq!(deleted["detached_instance_ids"], json!([instance]));
    assert_eq!(cli.run(&["firewalls", "list", "-q"]).await.lines().len(), 0);
    server.stop().await;
}
