//! The whole life of an instance on a serving server with the real clock, as a user drives it over HTTP:
//! deploy with a key and a script → ACTIVE → stop → start → reboot → hibernate → restore → security rules
//! → a volume attached and detached → a snapshot restored into a new instance → delete. The same steps run
//! on the simulator (machines take real, short times to boot, so every booting action goes through the
//! driver's readiness) and on libvirt with real guests (`libvirt.rs`), where the suite also SSHes in.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use barrack_api::Tier;
use barrack_api::instances::{DeployRequest, Instance};
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_client::{Client, InstanceActionKind};
use serde_json::json;

use crate::common::{Db, TestApp};
use crate::on_both_databases;

on_both_databases!(the_lifecycle_on_the_simulator);

/// Waits for the instance to reach `status` (failing on ERROR or after `limit`).
pub async fn reach(client: &Client, id: &str, status: &str, limit: Duration) -> Instance {
    let started = Instant::now();
    loop {
        let instance = client.instance(id).await.unwrap().data;
        if instance.status == status {
            return instance;
        }
        assert_ne!(
            instance.status, "ERROR",
            "{id} failed on the way to {status}: {:?}",
            instance.status_reason
        );
        assert!(
            started.elapsed() < limit,
            "{id} is {} after {limit:?}, not {status}",
            instance.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` until it returns `Some`, failing after `limit` with `what`.
pub async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < limit, "{what} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The guests behind the instances: simulated ones have nothing to log in to; real ones are reached over
/// SSH exactly as `barrack instances ssh` does, from the instance view alone (`ip_address`, `ssh_port`).
// Real guests come from the libvirt suite, built with that feature only.
#[cfg_attr(not(feature = "libvirt"), allow(dead_code))]
pub enum Guests {
    Simulated,
    Real,
}

/// SSH into instances with the private key the server generated at deploy.
pub struct Shell {
    key: PathBuf,
}

impl Shell {
    pub fn new(private_key: &str) -> Shell {
        use std::os::unix::fs::PermissionsExt;
        let key = std::env::temp_dir().join(format!(
            "barrack-lifecycle-{}-{}.key",
            std::process::id(),
            barrack_core::clock::system_now_ms()
        ));
        std::fs::write(&key, private_key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        Shell { key }
    }

    /// Runs `command` in the instance as `ubuntu`; its standard output.
    pub async fn run(&self, client: &Client, id: &str, command: &str) -> Result<String, String> {
        let instance = client.instance(id).await.unwrap().data;
        let address = instance.ip_address.expect("an address to SSH to");
        let mut args = vec![
            "-i".to_string(),
            self.key.to_string_lossy().into_owned(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "ConnectTimeout=10".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ];
        if let Some(port) = instance.ssh_port {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        args.push(format!("ubuntu@{address}"));
        args.push(command.to_string());
        tokio::task::spawn_blocking(move || {
            // ssh's own failures (exit 255: the guest is busy and resets the connection) get more tries.
            let mut attempt = 0;
            let output = loop {
                attempt += 1;
                let output = Command::new("ssh")
                    .args(&args)
                    .output()
                    .map_err(|e| e.to_string())?;
                if output.status.code() != Some(255) || attempt == 3 {
                    break output;
                }
                std::thread::sleep(Duration::from_secs(2));
            };
            if output.status.success() {
                Ok(String::from_utf8_lossy(&output.stdout).into_owned())
            } else {
                Err(format!(
                    "ssh exited with {}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ))
            }
        })
        .await
        .unwrap()
    }

    /// Runs `command` until it prints `expected` (a guest finishing its boot, a disk appearing).
    pub async fn expect(
        &self,
        client: &Client,
        id: &str,
        command: &str,
        expected: &str,
        limit: Duration,
    ) {
        let mut last = Err(String::new());
        let started = Instant::now();
        while started.elapsed() < limit {
            last = self.run(client, id, command).await;
            if last.as_deref() == Ok(expected) {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("{id}: {command:?} gave {last:?}, not {expected:?}, for {limit:?}");
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.key);
    }
}

/// Waits for a volume to be `wanted` (failing on `error`).
pub async fn volume_in(
    client: &Client,
    id: &str,
    wanted: &str,
    limit: Duration,
) -> barrack_api::volumes::Volume {
    until(&format!("volume not {wanted}"), limit, || async {
        let volume = client.volume(id).await.unwrap().data;
        assert_ne!(volume.status, "error", "{volume:?}");
        (volume.status == wanted).then_some(volume)
    })
    .await
}

/// Deletes an instance and waits until it is gone.
pub async fn delete(client: &Client, id: &str, limit: Duration) {
    client.delete_instance(id).await.unwrap();
    let started = Instant::now();
    while client.instance(id).await.is_ok() {
        assert!(
            started.elapsed() < limit,
            "{id} still there after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.instance(id).await.unwrap_err().status(), Some(404));
}

/// Drives one instance through every action and checks what it looks like on the way; `request` names
/// an image and region the server's driver can run (the key and script are added here), `limit` how long
/// any step may take.
pub async fn lifecycle(app: &TestApp, mut request: DeployRequest, limit: Duration, guests: Guests) {
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let key = client
        .create_ssh_key(&CreateSshKeyRequest {
            name: "k".into(),
            public_key: None,
        })
        .await
        .unwrap()
        .data;
    let shell = match guests {
        Guests::Simulated => None,
        Guests::Real => Some(Shell::new(
            key.private_key.as_deref().expect("a generated key"),
        )),
    };
    let script = client
        .create_script(
            &serde_json::from_value(json!({
                "name": "marker",
                "script": "#!/bin/sh\necho \"script ran as $(id -un)\" > /home/ubuntu/script.txt\n"
            }))
            .unwrap(),
        )
        .await
        .unwrap()
        .data;
    request.ssh_key = Some("k".into());
    request.script_id = Some(script.id);
    // A data volume made with it, which the machine boots with.
    request.volumes = serde_json::from_value(json!([
        {"name": "scratch", "size": 10, "volume_type": "NVMe"}
    ]))
    .unwrap();
    let deployed = client.deploy(&request).await.unwrap().data;
    let id = deployed.instance_id;
    assert_eq!(deployed.status, "CREATING");
    let active = reach(&client, &id, "ACTIVE", limit).await;
    let scratch = deployed.billing.breakdown.storage.data_volumes[0]
        .volume_id
        .clone();
    let scratch_volume = volume_in(&client, &scratch, "in-use", limit).await;
    assert_eq!(
        scratch_volume.attachment.map(|a| a.instance_id),
        Some(id.clone())
    );
    assert!(active.ip_address.is_some());
    assert_eq!(active.ip_status, "assigned");
    assert!(active.features.startup_script_configured);
    if let Some(shell) = &shell {
        // User-mode networking: SSH is a forwarded port of the host.
        assert!(active.ssh_port.is_some(), "{active:?}");
        let out = shell
            .run(&client, &id, "id -un; cat /home/ubuntu/script.txt")
            .await
            .unwrap();
        assert_eq!(out, "ubuntu\nscript ran as root\n");
        shell
            .expect(&client, &id, "ls /sys/block", "vda\nvdb\nvdc\n", limit)
            .await;
    } else {
        assert_eq!(active.ssh_port, None);
    }

    let steps = [
        (InstanceActionKind::Stop, "STOPPING", "SHUTOFF"),
        (InstanceActionKind::Start, "STARTING", "ACTIVE"),
        (InstanceActionKind::Reboot, "REBOOTING", "ACTIVE"),
        (InstanceActionKind::Hibernate, "HIBERNATING", "HIBERNATED"),
        (InstanceActionKind::Restore, "RESTORING", "ACTIVE"),
    ];
    for (action, transitional, resting) in steps {
        let answer = client.instance_action(&id, action).await.unwrap().data;
        assert_eq!(answer.status, transitional, "{action:?}");
        reach(&client, &id, resting, limit).await;
        if let (Some(shell), "ACTIVE") = (&shell, resting) {
            shell
                .expect(&client, &id, "id -un", "ubuntu\n", limit)
                .await;
        }
    }
    let hibernated_and_back = client.instance(&id).await.unwrap().data;
    assert!(
        hibernated_and_back.ip_address.is_some(),
        "restored with an address"
    );

    // Security rules: added and removed on the running instance.
    let rule = client
        .add_security_rule(
            &id,
            &serde_json::from_value(json!({
                "direction": "ingress", "protocol": "tcp", "ethertype": "IPv4",
                "port_range_min": 8080, "port_range_max": 8080, "remote_ip_prefix": "0.0.0.0/0"
            }))
            .unwrap(),
        )
        .await
        .unwrap()
        .data;
    let rules = client.instance(&id).await.unwrap().data.security_rules;
    assert!(rules.iter().any(|r| r.id == rule.id), "{rules:?}");
    client.remove_security_rule(&id, &rule.id).await.unwrap();
    let rules = client.instance(&id).await.unwrap().data.security_rules;
    assert!(!rules.iter().any(|r| r.id == rule.id), "{rules:?}");

    // A volume hot-plugged and unplugged: the guest sees a fourth disk, then no longer.
    let volume = client
        .create_volume(
            &serde_json::from_value(json!({
                "name": "data", "size": 10, "region": request.region, "volume_type": "NVMe"
            }))
            .unwrap(),
        )
        .await
        .unwrap()
        .data;
    let volume_status = |wanted: &'static str| volume_in(&client, &volume.id, wanted, limit);
    volume_status("available").await;
    client
        .attach_volumes(&id, std::slice::from_ref(&volume.id))
        .await
        .unwrap();
    let attached = volume_status("in-use").await;
    assert_eq!(attached.attachment.map(|a| a.instance_id), Some(id.clone()));
    if let Some(shell) = &shell {
        shell
            .expect(&client, &id, "ls /sys/block", "vda\nvdb\nvdc\nvdd\n", limit)
            .await;
    }
    client
        .detach_volumes(&id, std::slice::from_ref(&volume.id))
        .await
        .unwrap();
    volume_status("available").await;
    if let Some(shell) = &shell {
        shell
            .expect(&client, &id, "ls /sys/block", "vda\nvdb\nvdc\n", limit)
            .await;
    }
    client.delete_volume(&volume.id).await.unwrap();

    // A snapshot of the running instance, restored into a new one that has what was written before it.
    if let Some(shell) = &shell {
        shell
            .run(
                &client,
                &id,
                "echo written-before > /home/ubuntu/before.txt; sync",
            )
            .await
            .unwrap();
    }
    let snapshot = client
        .create_snapshot(
            &serde_json::from_value(json!({"instance_id": id, "name": "before"})).unwrap(),
        )
        .await
        .unwrap()
        .data;
    until("snapshot not SUCCESS", limit, || async {
        let snapshot = client.snapshot(&snapshot.id).await.unwrap().data;
        assert_ne!(snapshot.status, "ERROR", "{snapshot:?}");
        (snapshot.status == "SUCCESS").then_some(())
    })
    .await;
    let restored = client
        .restore_snapshot(&snapshot.id, Some("life-restored"))
        .await
        .unwrap()
        .data
        .instance_id;
    reach(&client, &restored, "ACTIVE", limit).await;
    if let Some(shell) = &shell {
        shell
            .expect(
                &client,
                &restored,
                "cat /home/ubuntu/before.txt",
                "written-before\n",
                limit,
            )
            .await;
    }
    delete(&client, &restored, limit).await;
    client.delete_snapshot(&snapshot.id).await.unwrap();

    delete(&client, &id, limit).await;
    // The volume made with it stays, detached, until deleted.
    volume_in(&client, &scratch, "available", limit).await;
    client.delete_volume(&scratch).await.unwrap();
    until("scratch volume not deleted", limit, || async {
        client.volume(&scratch).await.is_err().then_some(())
    })
    .await;

    // Every change is an event, oldest first.
    let events = client
        .instance_events(&id, &Default::default())
        .await
        .unwrap()
        .data
        .events;
    let reached: Vec<&str> = events
        .iter()
        .filter_map(|e| e.to_status.as_deref())
        .collect();
    assert_eq!(
        reached,
        [
            "CREATING",
            "ACTIVE",
            "STOPPING",
            "SHUTOFF",
            "STARTING",
            "ACTIVE",
            "REBOOTING",
            "ACTIVE",
            "HIBERNATING",
            "HIBERNATED",
            "RESTORING",
            "ACTIVE",
            "DELETING",
            "DELETED"
        ]
    );
    crate::common::assert_derived_state_consistent(app.services().store()).await;
}

async fn the_lifecycle_on_the_simulator(db: Db) {
    let app = TestApp::start_in_real_time(db, |config| {
        let delays = &mut config.simulator.delays;
        delays.create_ms = 300;
        delays.start_ms = 200;
        delays.stop_ms = 100;
        delays.reboot_ms = 200;
        delays.hibernate_ms = 100;
        delays.restore_ms = 300;
        delays.delete_ms = 100;
        config.jobs.poll_interval_ms = 50;
        config.jobs.observe_interval_ms = 50;
    })
    .await;
    let request = serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": "FINLAND-1", "instance_name": "life",
        "image_name": "Ubuntu 24.04 + CUDA 12.8 Open + Docker"
    }))
    .unwrap();
    lifecycle(&app, request, Duration::from_secs(20), Guests::Simulated).await;
    app.stop().await;
}
