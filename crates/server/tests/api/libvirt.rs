//! The server on the libvirt driver with real guests (built with `--features libvirt`; see
//! `common::libvirt` for what the machine needs): the lifecycle suite the simulator passes, a guest booted
//! from a volume of an image whose attached volume grows while it runs, a host that stops answering, and
//! `barrackd` killed while guests boot.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barrack_api::Tier;
use barrack_client::Client;
use barrack_compute::libvirt::xml::{Metadata, PciAddress, hostdevs};
use barrack_core::config::{Config, DriverKind};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::common::libvirt::{GPU_MODEL, IMAGE, LOCAL_URI, Lab, REGION, lab};
use crate::common::process::{ServerProcess, spawn};
use crate::common::{Db, TestApp, TestDatabase, deploy_id, funded_user_with_key};
use crate::lifecycle::{Guests, Shell, delete, lifecycle, reach, until, volume_in};
use crate::on_both_databases;

on_both_databases!(
    the_lifecycle_on_libvirt,
    a_volume_of_an_image_boots_a_guest_whose_attached_volume_grows_live,
);

/// A server on `lab`'s hosts that looks at booting guests every second.
fn use_libvirt(config: &mut Config, lab: &Lab) {
    config.driver = DriverKind::Libvirt;
    config.libvirt = Some(lab.config.clone());
    config.jobs.poll_interval_ms = 100;
    config.jobs.observe_interval_ms = 1000;
}

fn deploy_request(name: &str, gpus: u32) -> barrack_api::instances::DeployRequest {
    serde_json::from_value(json!({
        "gpu_model": GPU_MODEL, "gpu_count": gpus, "region": REGION, "instance_name": name,
        "image_name": IMAGE, "ssh_key": "k"
    }))
    .unwrap()
}

async fn the_lifecycle_on_libvirt(db: Db) {
    let ports = match db {
        Db::Sqlite => 22800,
        Db::Postgres => 22810,
    };
    let Some(lab) = lab(&format!("lifecycle{db:?}"), ports, LOCAL_URI) else {
        return;
    };
    let app = TestApp::start_in_real_time(db, |config| use_libvirt(config, &lab)).await;
    let started = Instant::now();
    lifecycle(
        &app,
        deploy_request("life", 1),
        Duration::from_secs(240),
        Guests::Real,
    )
    .await;
    eprintln!("the lifecycle on libvirt took {:?}", started.elapsed());
    app.stop().await;
    assert_eq!(lab.domains().len(), 0, "every domain deleted");
    assert_eq!(lab.volumes(), Vec::<String>::new(), "every disk deleted");
}

/// A bootable volume made from the tiny image holds its disk: an instance boots from it and answers on
/// SSH. A volume attached to the running guest grows through its domain and the guest sees the larger
/// disk at once; detached, it grows in the pool. Everything is deleted without leftovers.
async fn a_volume_of_an_image_boots_a_guest_whose_attached_volume_grows_live(db: Db) {
    let ports = match db {
        Db::Sqlite => 22840,
        Db::Postgres => 22850,
    };
    let Some(lab) = lab(&format!("bootvol{db:?}"), ports, LOCAL_URI) else {
        return;
    };
    let limit = Duration::from_secs(240);
    let app = TestApp::start_in_real_time(db, |config| use_libvirt(config, &lab)).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    let key = client
        .create_ssh_key(&barrack_api::ssh_keys::CreateSshKeyRequest {
            name: "k".into(),
            public_key: None,
        })
        .await
        .unwrap()
        .data;
    let shell = Shell::new(key.private_key.as_deref().expect("a generated key"));
    let creator = &client;
    let create = move |body: serde_json::Value| async move {
        creator
            .create_volume(&serde_json::from_value(body).unwrap())
            .await
            .unwrap()
            .data
            .id
    };

    let started = Instant::now();
    let os = create(json!({
        "name": "os", "size": 100, "region": REGION, "volume_type": "NVMe",
        "bootable": true, "image_name": IMAGE
    }))
    .await;
    volume_in(&client, &os, "available", limit).await;
    let mut request = deploy_request("fromvol", 1);
    request.image_name = None;
    request.volume_id = Some(os.clone());
    request.boot_from_volume = true;
    let id = deploy_id(&client, &request).await;
    reach(&client, &id, "ACTIVE", limit).await;
    eprintln!(
        "booted from a volume of the image {:?} after its creation",
        started.elapsed()
    );
    shell
        .expect(&client, &id, "id -un", "ubuntu\n", limit)
        .await;
    let os_volume = volume_in(&client, &os, "in-use", limit).await;
    assert_eq!(
        os_volume.attachment.map(|a| a.instance_id),
        Some(id.clone())
    );

    // 10 GB is 20971520 sectors of 512 bytes; the seed is vdb, so the attached volume is vdc.
    let data = create(json!({
        "name": "data", "size": 10, "region": REGION, "volume_type": "NVMe"
    }))
    .await;
    volume_in(&client, &data, "available", limit).await;
    client
        .attach_volumes(&id, std::slice::from_ref(&data))
        .await
        .unwrap();
    volume_in(&client, &data, "in-use", limit).await;
    shell
        .expect(&client, &id, "cat /sys/block/vdc/size", "20971520\n", limit)
        .await;
    let asked = Instant::now();
    let answer = client.resize_volume(&data, 20).await.unwrap().data;
    assert_eq!(answer.status, "resizing");
    let grown = until("volume not grown", limit, || async {
        let volume = client.volume(&data).await.unwrap().data;
        assert_ne!(volume.status, "error", "{volume:?}");
        (volume.status == "in-use" && volume.size_gb == 20).then_some(volume)
    })
    .await;
    eprintln!("an attached volume grew in {:?}", asked.elapsed());
    assert_eq!(grown.status_reason, None);
    shell
        .expect(&client, &id, "cat /sys/block/vdc/size", "41943040\n", limit)
        .await;

    // Detached, it grows in the pool.
    client
        .detach_volumes(&id, std::slice::from_ref(&data))
        .await
        .unwrap();
    volume_in(&client, &data, "available", limit).await;
    client.resize_volume(&data, 30).await.unwrap();
    let grown = until("detached volume not grown", limit, || async {
        let volume = client.volume(&data).await.unwrap().data;
        assert_ne!(volume.status, "error", "{volume:?}");
        (volume.status == "available" && volume.size_gb == 30).then_some(volume)
    })
    .await;
    assert_eq!(grown.status_reason, None);

    delete(&client, &id, limit).await;
    volume_in(&client, &os, "available", limit).await;
    for volume in [&os, &data] {
        client.delete_volume(volume).await.unwrap();
    }
    until("volumes not deleted", limit, || async {
        (client.volume(&os).await.is_err() && client.volume(&data).await.is_err()).then_some(())
    })
    .await;
    app.stop().await;
    assert_eq!(lab.domains().len(), 0, "every domain deleted");
    assert_eq!(lab.volumes(), Vec::<String>::new(), "every disk deleted");
}

/// Forwards connections from a socket of its own to libvirtd's, until stopped: a host whose URI stops
/// answering.
struct Relay {
    path: PathBuf,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    fn start(path: &Path) -> Relay {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let held = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let forward = tokio::spawn(async move {
                    if let Ok(mut daemon) =
                        tokio::net::UnixStream::connect("/var/run/libvirt/libvirt-sock").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut daemon).await;
                    }
                });
                held.lock().unwrap().push(forward);
            }
        });
        tasks.lock().unwrap().push(accept);
        Relay {
            path: path.to_path_buf(),
            tasks,
        }
    }

    /// Closes every connection and the socket: the host is gone.
    fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_stops_answering_puts_its_instances_in_error() {
    let socket = std::env::temp_dir().join(format!("barrack-relay-{}.sock", std::process::id()));
    let uri = format!("qemu+unix:///system?socket={}", socket.display());
    let Some(mut lab) = lab("lost_host", 22820, &uri) else {
        return;
    };
    lab.config.host_lost_after_secs = 5;
    let relay = Relay::start(&socket);
    let app = TestApp::start_in_real_time(Db::Sqlite, |config| use_libvirt(config, &lab)).await;
    let (client, _) = app.funded_user(Tier::Advanced, "US", "1000").await;
    crate::common::create_key_k(&client).await;
    let id = deploy_id(&client, &deploy_request("doomed", 2)).await;
    reach(&client, &id, "ACTIVE", Duration::from_secs(240)).await;
    let host = |hosts: barrack_api::instances::HostList| {
        hosts.hosts.into_iter().find(|h| h.name == "local").unwrap()
    };
    let before = host(app.admin.admin_hosts().await.unwrap().data);
    assert_eq!((before.gpus, before.gpus_used, before.lost), (8, 2, false));

    relay.stop();
    let lost_at = Instant::now();
    let failed = reach(&client, &id, "ERROR", Duration::from_secs(60))
        .await
        .status_reason
        .unwrap_or_default();
    eprintln!("ERROR {:?} after the host went away", lost_at.elapsed());
    assert!(
        lost_at.elapsed() >= Duration::from_secs(5),
        "not before the grace period"
    );
    assert!(failed.contains("host lost"), "{failed}");
    assert!(host(app.admin.admin_hosts().await.unwrap().data).lost);
    crate::common::assert_derived_state_consistent(app.services().store()).await;
    app.stop().await;
}

/// `barrackd` as a process on `lab`'s hosts, its configuration in the data directory.
fn start_barrackd(database: &TestDatabase, lab: &Lab) -> ServerProcess {
    let dir = &database.dir;
    let config = dir.join("barrack.toml");
    std::fs::write(
        &config,
        format!(
            "driver = \"libvirt\"\n\n[jobs]\npoll_interval_ms = 100\nobserve_interval_ms = 1000\n\n{}",
            lab.toml()
        ),
    )
    .unwrap();
    spawn(
        &dir.join("node"),
        &dir.join("node.log"),
        &[
            ("BARRACK_DATABASE_URL", &database.url),
            (
                "BARRACK_SECRET",
                "libvirt-crash-secret-long-enough-for-hmac",
            ),
            ("BARRACK_RATE_LIMIT_REQUESTS", "0"),
            ("BARRACK_CONFIG", &config.to_string_lossy()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrackd_killed_while_five_guests_boot_ends_with_one_domain_each() {
    let Some(lab) = lab("crash", 22830, LOCAL_URI) else {
        return;
    };
    let database = TestDatabase::create(Db::Sqlite).await;
    let server = start_barrackd(&database, &lab);
    let key = server
        .printed_key
        .clone()
        .expect("the first start prints a key");
    let operator = |server: &ServerProcess| {
        Client::builder(&server.url)
            .api_key(&key)
            .max_retries(0)
            .build()
            .unwrap()
    };
    let (client, _, user_key) =
        funded_user_with_key(&operator(&server), Tier::Advanced, "US", "1000").await;
    crate::common::create_key_k(&client).await;
    let gpus: [usize; 5] = [1, 2, 1, 2, 2];
    let mut ids = Vec::new();
    for (n, count) in gpus.iter().enumerate() {
        let deployed = client
            .deploy(&deploy_request(&format!("crash-{n}"), *count as u32))
            .await
            .unwrap()
            .data;
        ids.push(deployed.instance_id);
    }
    // Killed once every guest is defined and booting, before any is up.
    let started = Instant::now();
    while lab.domains().len() < ids.len() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the domains were not all defined: {:?}",
            lab.domains().keys()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &ids {
        assert_eq!(client.instance(id).await.unwrap().data.status, "CREATING");
    }
    server.kill();

    let server = start_barrackd(&database, &lab);
    let client = Client::builder(&server.url)
        .api_key(&user_key)
        .max_retries(0)
        .build()
        .unwrap();
    for id in &ids {
        reach(&client, id, "ACTIVE", Duration::from_secs(480)).await;
    }
    eprintln!(
        "five guests ACTIVE {:?} after the deploys",
        started.elapsed()
    );

    // Exactly one domain per instance, named after it, and nothing else.
    let domains = lab.domains();
    let expected: Vec<String> = ids.iter().map(|id| format!("{}{id}", lab.prefix)).collect();
    let mut names: Vec<String> = domains.keys().cloned().collect();
    names.sort();
    let mut wanted = expected.clone();
    wanted.sort();
    assert_eq!(names, wanted);
    // Each one's disks, seed and console log, and no other volume.
    let mut disks: Vec<String> = expected
        .iter()
        .flat_map(|domain| {
            ["-console.log", "-root.qcow2", "-seed.iso"].map(|end| format!("{domain}{end}"))
        })
        .collect();
    disks.sort();
    assert_eq!(lab.volumes(), disks);
    // The GPUs each definition holds are as many as the instance has, from the host's list, and
    // nobody else's.
    let configured: Vec<PciAddress> = lab.config.hosts[0].gpus[0]
        .addresses
        .iter()
        .map(|a| PciAddress::parse(a).unwrap())
        .collect();
    let mut held = Vec::new();
    for (id, count) in ids.iter().zip(gpus) {
        let xml = &domains[&format!("{}{id}", lab.prefix)];
        let metadata = Metadata::from_domain_xml(xml).expect("the domain's metadata");
        let mut gpus = metadata.gpus.clone();
        gpus.extend(hostdevs(xml));
        assert_eq!(gpus.len(), count, "{id}: {xml}");
        assert_eq!(
            client.instance(id).await.unwrap().data.specs.gpu_count,
            count as u32
        );
        held.extend(gpus);
    }
    let distinct: std::collections::HashSet<_> = held.iter().collect();
    assert_eq!(distinct.len(), held.len(), "a GPU in two domains: {held:?}");
    assert!(held.iter().all(|gpu| configured.contains(gpu)));
    let hosts = operator(&server).admin_hosts().await.unwrap().data.hosts;
    assert_eq!(hosts[0].gpus_used as usize, held.len());

    for id in &ids {
        client.delete_instance(id).await.unwrap();
    }
    let started = Instant::now();
    while !lab.domains().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    server.stop();
    database.drop_database().await;
}
