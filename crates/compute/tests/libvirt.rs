//! The libvirt driver against a real libvirtd, booting the tiny guest (images/tiny) with software
//! emulation. Needs libvirtd answering on qemu:///system and the image built
//! (`scripts/setup/libvirt.sh` does both). Without them each test says it skipped, unless
//! BARRACK_TEST_LIBVIRT=1, where it fails. BARRACK_TEST_LIBVIRT_IMAGE names the image directory
//! (default /var/lib/barrack/images/tiny).
#![cfg(feature = "libvirt")]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use barrack_compute::libvirt::testing::{LOCAL_URI, TestLab, unavailable};
use barrack_compute::libvirt::xml::{Metadata, PciAddress, hostdevs};
use barrack_compute::libvirt::{GpuGroup, HostConfig, LibvirtDriver};
use barrack_compute::{
    BootDisk, ComputeDriver, DriverError, InstanceSpec, PacketRule, PowerState, Readiness,
    VolumeSource,
};

// barrackd's allocator: memory libvirt allocates and the driver lets Rust free crashes under it, as it
// would in the server, instead of passing unnoticed under the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// One line for the summary of `scripts/test`, appended to the file `BARRACK_TEST_RECORD` names.
fn record(line: &str) {
    use std::io::Write;
    if let Some(path) = std::env::var_os("BARRACK_TEST_RECORD").filter(|p| !p.is_empty()) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("BARRACK_TEST_RECORD can be appended to");
        file.write_all(format!("{line}\n").as_bytes())
            .expect("record the test's outcome");
    }
}

/// A driver on a lab of its own (domains, volumes, filters and pool torn down on drop), with a deploy key.
struct Lab {
    driver: LibvirtDriver,
    key: PathBuf,
    public_key: String,
    lab: TestLab,
}

impl std::ops::Deref for Lab {
    type Target = TestLab;
    fn deref(&self) -> &TestLab {
        &self.lab
    }
}

/// `None` (after saying so) when the machine cannot run these tests; a panic instead when they must run.
fn lab(test: &str, ports: u16, gpus: Vec<GpuGroup>) -> Option<Lab> {
    if let Some(reason) = unavailable() {
        if std::env::var("BARRACK_TEST_LIBVIRT").as_deref() == Ok("1") {
            panic!("BARRACK_TEST_LIBVIRT=1 but {reason}");
        }
        eprintln!("SKIPPED {test}: {reason}");
        record(&format!("libvirt\tskipped\tlibvirt::{test}\t{reason}"));
        return None;
    }
    record(&format!("libvirt\tran\tlibvirt::{test}\t"));
    let host = HostConfig {
        name: "local".into(),
        uri: LOCAL_URI.into(),
        region: "TEST-1".into(),
        address: None,
        gpus,
    };
    let tag = format!("bt{}{}", std::process::id(), test.replace('_', ""));
    let lab = TestLab::new(&tag, ports, "tiny", host);
    let key = lab.pool_dir.with_extension("key");
    let _ = std::fs::remove_file(&key);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@barrack", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
    let public_key = std::fs::read_to_string(key.with_extension("key.pub")).unwrap();
    Some(Lab {
        driver: LibvirtDriver::new(lab.config.clone()).expect("valid configuration"),
        key,
        public_key: public_key.trim().to_string(),
        lab,
    })
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.key);
        let _ = std::fs::remove_file(self.key.with_extension("key.pub"));
    }
}

impl Lab {
    fn spec(&self, id: &str, boot: BootDisk, script: Option<&str>) -> InstanceSpec {
        InstanceSpec {
            id: id.into(),
            name: format!("test {id}"),
            region: "TEST-1".into(),
            gpu_model: "none".into(),
            gpu_count: 0,
            vcpus: 1,
            ram_gb: 1,
            boot,
            ssh_public_keys: vec![self.public_key.clone()],
            cloud_init: None,
            startup_script: script.map(Into::into),
            volume_ids: vec![],
        }
    }

    fn tiny(size_gb: u32) -> BootDisk {
        BootDisk::Image {
            image: "tiny".into(),
            size_gb,
        }
    }

    async fn wait_ready(&self, id: &str) {
        let started = Instant::now();
        loop {
            match self.driver.observe_readiness(id).await.unwrap() {
                Readiness::Ready => return,
                Readiness::Booting | Readiness::NotRunning => {}
            }
            assert!(
                started.elapsed() < BOOT_TIMEOUT,
                "{id} not ready after {BOOT_TIMEOUT:?}; console:\n{}",
                self.console(id)
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn console(&self, id: &str) -> String {
        std::fs::read_to_string(
            self.pool_dir
                .join(format!("{}{id}-console.log", self.prefix)),
        )
        .unwrap_or_default()
    }

    /// Runs a command in the guest as `ubuntu` over SSH with the deploy key; its standard output.
    async fn ssh(&self, id: &str, command: &str) -> Result<String, String> {
        let endpoint = self
            .driver
            .ssh_endpoint(id)
            .await
            .unwrap()
            .expect("an SSH endpoint");
        let key = self.key.clone();
        let command = command.to_string();
        tokio::task::spawn_blocking(move || {
            // ssh's own failures (exit 255: connection reset while the guest is busy) get two more tries.
            let mut attempt = 0;
            let output = loop {
                attempt += 1;
                let output = Command::new("ssh")
                    .arg("-i")
                    .arg(&key)
                    .args(["-p", &endpoint.port.to_string()])
                    .args([
                        "-o",
                        "StrictHostKeyChecking=no",
                        "-o",
                        "UserKnownHostsFile=/dev/null",
                        "-o",
                        "BatchMode=yes",
                        "-o",
                        "ConnectTimeout=10",
                        "-o",
                        "LogLevel=ERROR",
                    ])
                    .arg(format!("ubuntu@{}", endpoint.host))
                    .arg(&command)
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
                    "ssh {command:?} exited with {}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ))
            }
        })
        .await
        .unwrap()
    }

    /// Deletes the instance and checks nothing of it is left: domain, disks, seed, console log, filter.
    async fn delete_and_check_gone(&self, id: &str) {
        self.driver.delete_instance(id).await.unwrap();
        assert_eq!(
            self.driver.observe_instance(id).await.unwrap().state,
            PowerState::Missing
        );
        assert_eq!(self.driver.domain_xml(id).await.unwrap(), None);
        assert_eq!(
            self.driver.instance_volumes(id).await.unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(self.driver.filter_xml(id).await.unwrap(), None);
        // Deleting what is gone succeeds (a repeated call after a crash).
        self.driver.delete_instance(id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_ssh_stop_start_reboot_and_create_twice() {
    let Some(lab) = lab("lifecycle", 22710, vec![]) else {
        return;
    };
    let spec = lab.spec(
        "i1",
        Lab::tiny(2),
        Some("echo \"script ran as $(id -un)\" > /home/ubuntu/script.txt"),
    );
    let placement = lab.driver.create_instance(&spec).await.unwrap();
    assert_eq!(placement.host, "local");
    // A repeated create (the caller crashed before recording the placement) finds the same domain.
    assert_eq!(lab.driver.create_instance(&spec).await.unwrap(), placement);
    assert_eq!(
        lab.driver.domains().await.unwrap(),
        vec![format!("{}i1", lab.prefix)]
    );
    lab.wait_ready("i1").await;

    let out = lab
        .ssh("i1", "id -un; hostname; cat /home/ubuntu/script.txt")
        .await
        .unwrap();
    assert_eq!(out, "ubuntu\ntest-i1\nscript ran as root\n");
    let observed = lab.driver.observe_instance("i1").await.unwrap();
    assert_eq!(observed.state, PowerState::Running);
    assert_eq!(observed.host.as_deref(), Some("local"));
    let metrics = lab.driver.instance_metrics("i1").await.unwrap().unwrap();
    assert_eq!(metrics.memory_total_bytes, 384 << 20);
    assert!((0.0..=100.0).contains(&metrics.cpu_percent));
    assert!(metrics.disk_read_bytes_per_sec.is_some());

    let stopping = Instant::now();
    lab.driver.stop_instance("i1").await.unwrap();
    eprintln!("ACPI shutdown took {:?}", stopping.elapsed());
    assert!(
        stopping.elapsed() < Duration::from_secs(25),
        "the guest ignored the power button"
    );
    assert_eq!(
        lab.driver.observe_instance("i1").await.unwrap().state,
        PowerState::Stopped
    );
    assert_eq!(
        lab.driver.observe_readiness("i1").await.unwrap(),
        Readiness::NotRunning
    );
    assert_eq!(lab.driver.instance_metrics("i1").await.unwrap(), None);
    // Stopping a stopped instance is a no-op.
    lab.driver.stop_instance("i1").await.unwrap();

    lab.driver.start_instance("i1").await.unwrap();
    lab.wait_ready("i1").await;
    // /tmp is memory only: the marker is gone once the guest has rebooted.
    lab.ssh("i1", "touch /tmp/booted-before").await.unwrap();
    // The startup script runs once per instance, not on every boot.
    assert_eq!(
        lab.ssh("i1", "ls /var/lib/barrack").await.unwrap(),
        "startup-done.i1\n"
    );

    lab.driver.reboot_instance("i1").await.unwrap();
    let started = Instant::now();
    loop {
        if let Ok(out) = lab
            .ssh("i1", "test -e /tmp/booted-before || echo rebooted")
            .await
            && out == "rebooted\n"
        {
            break;
        }
        assert!(
            started.elapsed() < BOOT_TIMEOUT,
            "no reboot seen; console:\n{}",
            lab.console("i1")
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Powered off behind the driver's back (on the host): observed stopped, and a reboot boots it.
    let destroyed = Command::new("virsh")
        .args(["-c", LOCAL_URI, "destroy", &format!("{}i1", lab.prefix)])
        .output()
        .expect("virsh runs");
    assert!(destroyed.status.success(), "{destroyed:?}");
    assert_eq!(
        lab.driver.observe_instance("i1").await.unwrap().state,
        PowerState::Stopped
    );
    lab.driver.reboot_instance("i1").await.unwrap();
    lab.wait_ready("i1").await;
    assert_eq!(lab.ssh("i1", "id -un").await.unwrap(), "ubuntu\n");
    assert_eq!(
        lab.driver.domains().await.unwrap().len(),
        1,
        "one domain all along"
    );
    lab.delete_and_check_gone("i1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hibernate_keeps_memory_and_restore_resumes() {
    // GPUs without passthrough: placement holds them, the guest gets no device (so it can boot here).
    let Some(lab) = lab(
        "hibernate",
        22720,
        vec![GpuGroup {
            model: "L40".into(),
            addresses: gpu_list(0x40, 2),
            passthrough: false,
        }],
    ) else {
        return;
    };
    let mut spec = lab.spec("h1", Lab::tiny(2), None);
    spec.gpu_model = "L40".into();
    spec.gpu_count = 2;
    lab.driver.create_instance(&spec).await.unwrap();
    let held = |xml: &str| Metadata::from_domain_xml(xml).unwrap().gpus.len();
    let definition = lab.driver.domain_xml("h1").await.unwrap().unwrap();
    assert_eq!(hostdevs(&definition), vec![]);
    assert_eq!(held(&definition), 2);
    lab.wait_ready("h1").await;
    // /tmp is memory only: it survives a managed save, not a reboot.
    lab.ssh("h1", "echo in-memory > /tmp/marker").await.unwrap();

    lab.driver.hibernate_instance("h1").await.unwrap();
    let observed = lab.driver.observe_instance("h1").await.unwrap();
    assert_eq!(observed.state, PowerState::Hibernated);
    assert_eq!(observed.host, None);
    // Its GPUs are free for others while it is shelved.
    assert_eq!(
        held(&lab.driver.domain_xml("h1").await.unwrap().unwrap()),
        0
    );
    // Hibernating again is a no-op; starting a hibernated instance is refused (restore places it).
    lab.driver.hibernate_instance("h1").await.unwrap();
    assert!(lab.driver.start_instance("h1").await.is_err());

    assert_eq!(
        lab.driver.restore_instance(&spec).await.unwrap().host,
        "local"
    );
    assert_eq!(
        held(&lab.driver.domain_xml("h1").await.unwrap().unwrap()),
        2
    );
    assert_eq!(
        lab.driver.observe_instance("h1").await.unwrap().state,
        PowerState::Running
    );
    lab.wait_ready("h1").await;
    assert_eq!(
        lab.ssh("h1", "cat /tmp/marker").await.unwrap(),
        "in-memory\n"
    );
    lab.delete_and_check_gone("h1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_a_running_guest_boots_a_new_instance() {
    let Some(lab) = lab("snapshot", 22730, vec![]) else {
        return;
    };
    lab.driver
        .create_instance(&lab.spec("s1", Lab::tiny(2), None))
        .await
        .unwrap();
    lab.wait_ready("s1").await;
    lab.ssh("s1", "echo written-before > /home/ubuntu/before.txt; sync")
        .await
        .unwrap();
    lab.driver.create_snapshot("s1", "snap1").await.unwrap();
    // Repeating the call keeps the snapshot.
    lab.driver.create_snapshot("s1", "snap1").await.unwrap();
    lab.ssh("s1", "echo written-after > /home/ubuntu/after.txt; sync")
        .await
        .unwrap();
    lab.delete_and_check_gone("s1").await;

    let spec = lab.spec(
        "s2",
        BootDisk::Snapshot {
            snapshot_id: "snap1".into(),
            size_gb: 3,
        },
        None,
    );
    lab.driver.create_instance(&spec).await.unwrap();
    lab.wait_ready("s2").await;
    assert_eq!(
        lab.ssh(
            "s2",
            "cat /home/ubuntu/before.txt; ls /home/ubuntu; hostname"
        )
        .await
        .unwrap(),
        "written-before\nbefore.txt\ntest-s2\n"
    );
    lab.delete_and_check_gone("s2").await;
    lab.driver.delete_snapshot("snap1").await.unwrap();
    lab.driver.delete_snapshot("snap1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_hot_plug_and_rules_become_an_nwfilter() {
    let Some(lab) = lab("volumes", 22740, vec![]) else {
        return;
    };
    lab.driver
        .create_instance(&lab.spec("v1", Lab::tiny(2), None))
        .await
        .unwrap();
    lab.driver
        .create_volume("vol1", "TEST-1", 1, &VolumeSource::Empty)
        .await
        .unwrap();
    lab.driver.resize_volume("vol1", 2).await.unwrap();
    assert!(matches!(
        lab.driver.resize_volume("vol1", 1).await,
        Err(DriverError::Permanent(_))
    ));

    let rules = [
        PacketRule {
            direction: "ingress".into(),
            ethertype: "IPv4".into(),
            protocol: Some("tcp".into()),
            port_range_min: Some(22),
            port_range_max: Some(22),
            remote_ip_prefix: Some("0.0.0.0/0".into()),
        },
        PacketRule {
            direction: "egress".into(),
            ethertype: "IPv6".into(),
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
        },
    ];
    lab.driver.apply_security_rules("v1", &rules).await.unwrap();
    let filter = lab.driver.filter_xml("v1").await.unwrap().unwrap();
    assert!(
        filter.contains(&format!("<filter name='{}v1'", lab.prefix)),
        "{filter}"
    );
    assert!(
        filter
            .contains("<tcp srcipaddr='0.0.0.0' srcipmask='0' dstportstart='22' dstportend='22'/>"),
        "{filter}"
    );
    assert!(
        filter.contains("<rule action='accept' direction='out' priority='500'>")
            && filter.contains("<all-ipv6/>"),
        "{filter}"
    );
    // Rules change: the filter is re-programmed.
    lab.driver.apply_security_rules("v1", &[]).await.unwrap();
    let filter = lab.driver.filter_xml("v1").await.unwrap().unwrap();
    assert!(!filter.contains("dstportstart='22'"), "{filter}");

    lab.wait_ready("v1").await;
    lab.driver.attach_volume("v1", "vol1").await.unwrap();
    lab.driver.attach_volume("v1", "vol1").await.unwrap();
    let started = Instant::now();
    loop {
        let disks = lab
            .ssh(
                "v1",
                "cat /sys/block/vdc/serial 2>/dev/null; echo; cat /sys/block/vdc/size 2>/dev/null; true",
            )
            .await
            .unwrap();
        if disks == "vol1\n4194304\n" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the guest does not see the volume: {disks:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(matches!(
        lab.driver.delete_volume("vol1").await,
        Err(DriverError::Permanent(_))
    ));
    lab.driver.detach_volume("v1", "vol1").await.unwrap();
    assert_eq!(lab.ssh("v1", "ls /sys/block").await.unwrap(), "vda\nvdb\n");
    lab.driver.detach_volume("v1", "vol1").await.unwrap();
    lab.driver.delete_volume("vol1").await.unwrap();
    lab.driver.delete_volume("vol1").await.unwrap();
    lab.delete_and_check_gone("v1").await;
}

fn gpu_list(bus: u8, count: u8) -> Vec<String> {
    (0..count)
        .map(|slot| format!("0000:{bus:02x}:{slot:02x}.0"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eight_gpu_domain_carries_eight_distinct_hostdevs() {
    let configured = gpu_list(0x17, 8);
    let Some(lab) = lab(
        "gpus",
        22750,
        vec![GpuGroup {
            model: "H100-SXM5-80GB".into(),
            addresses: configured.clone(),
            passthrough: true,
        }],
    ) else {
        return;
    };
    let mut spec = lab.spec("g8", Lab::tiny(2), None);
    spec.gpu_model = "H100-SXM5-80GB".into();
    spec.gpu_count = 8;
    spec.vcpus = 208;
    spec.ram_gb = 1800;
    let xml = lab.driver.define_only(&spec).await.unwrap();
    let gpus = hostdevs(&xml);
    assert_eq!(gpus.len(), 8, "{xml}");
    let distinct: HashSet<PciAddress> = gpus.iter().copied().collect();
    assert_eq!(distinct.len(), 8);
    let configured: HashSet<PciAddress> = configured
        .iter()
        .map(|a| PciAddress::parse(a).unwrap())
        .collect();
    assert_eq!(distinct, configured);
    // The shape is capped by the configuration (max_vcpus, max_memory_mb).
    assert!(xml.contains("<vcpu placement='static'>1</vcpu>"), "{xml}");
    // Defining again finds the same domain; its GPUs are taken for anyone else.
    assert_eq!(lab.driver.define_only(&spec).await.unwrap(), xml);
    let mut other = lab.spec("g1", Lab::tiny(2), None);
    other.gpu_model = "H100-SXM5-80GB".into();
    other.gpu_count = 1;
    assert!(matches!(
        lab.driver.define_only(&other).await,
        Err(DriverError::NoCapacity(_))
    ));
    // Hibernating a guest with GPUs gives them back (no managed save with passthrough devices)...
    lab.driver.hibernate_instance("g8").await.unwrap();
    let shelved = lab.driver.domain_xml("g8").await.unwrap().unwrap();
    assert_eq!(hostdevs(&shelved), vec![], "{shelved}");
    assert_eq!(
        lab.driver.observe_instance("g8").await.unwrap().state,
        PowerState::Hibernated
    );
    let mut taker = lab.spec("g9", Lab::tiny(2), None);
    taker.gpu_model = "H100-SXM5-80GB".into();
    taker.gpu_count = 8;
    assert_eq!(
        hostdevs(&lab.driver.define_only(&taker).await.unwrap()).len(),
        8
    );
    // ...and restore needs free GPUs on the same host again.
    assert!(matches!(
        lab.driver.restore_instance(&spec).await,
        Err(DriverError::NoCapacity(_))
    ));
    lab.delete_and_check_gone("g9").await;
    // Another model is not on this host at all.
    other.gpu_model = "B200-180GB".into();
    assert!(matches!(
        lab.driver.create_instance(&other).await,
        Err(DriverError::NoCapacity(_))
    ));
    lab.delete_and_check_gone("g8").await;
    other.gpu_model = "H100-SXM5-80GB".into();
    other.gpu_count = 2;
    let xml = lab.driver.define_only(&other).await.unwrap();
    assert_eq!(hostdevs(&xml).len(), 2);
    lab.delete_and_check_gone("g1").await;
}
