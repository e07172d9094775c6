//! The simulator on its own: placement, transitions, volumes, snapshots, faults and delays.

use std::sync::Arc;

use std::time::Duration;
use tokio::time::{Instant, timeout};

use super::*;
use crate::{BootDisk, Readiness};

mod placement;

const REGION: &str = "FINLAND-1";
const MODEL: &str = "H100-SXM5-80GB";

fn host(name: &str, gpus: u32) -> SimHost {
    SimHost {
        name: name.to_owned(),
        region: REGION.to_owned(),
        gpu_model: MODEL.to_owned(),
        gpus,
    }
}

fn spec(id: &str, gpu_count: u32) -> InstanceSpec {
    InstanceSpec {
        id: id.to_owned(),
        name: id.to_owned(),
        region: REGION.to_owned(),
        gpu_model: MODEL.to_owned(),
        gpu_count,
        vcpus: 44 * gpu_count,
        ram_gb: 185 * gpu_count,
        boot: BootDisk::Image {
            image: "Ubuntu 24.04 + CUDA 12.8 Open + Docker".to_owned(),
            size_gb: 100,
        },
        ssh_public_keys: vec![],
        cloud_init: None,
        startup_script: None,
        volume_ids: vec![],
    }
}

fn sim(hosts: Vec<SimHost>) -> SimDriver {
    SimDriver::new(SimConfig {
        delays: SimDelays::instant(),
        hosts,
        faults: vec![],
    })
}

fn rule(port: u16) -> PacketRule {
    PacketRule {
        direction: "ingress".to_owned(),
        ethertype: "IPv4".to_owned(),
        protocol: Some("tcp".to_owned()),
        port_range_min: Some(port),
        port_range_max: Some(port),
        remote_ip_prefix: Some("0.0.0.0/0".to_owned()),
    }
}

async fn host_of(driver: &SimDriver, id: &str, gpus: u32) -> String {
    driver.create_instance(&spec(id, gpus)).await.unwrap().host
}

#[tokio::test]
async fn create_and_delete_are_idempotent() {
    let driver = sim(vec![host("a", 8), host("b", 8)]);
    let first = driver.create_instance(&spec("i-1", 4)).await.unwrap();
    let again = driver.create_instance(&spec("i-1", 4)).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(driver.used_gpus(REGION, MODEL), 4);

    driver.delete_instance("i-1").await.unwrap();
    driver.delete_instance("i-1").await.unwrap();
    driver.delete_instance("never-existed").await.unwrap();
    assert_eq!(driver.used_gpus(REGION, MODEL), 0);
    assert_eq!(
        driver.observe_instance("i-1").await.unwrap(),
        Observation {
            state: PowerState::Missing,
            host: None
        }
    );
    assert_eq!(driver.calls(Operation::CreateInstance), 2);
    assert_eq!(driver.calls(Operation::DeleteInstance), 3);
}

#[tokio::test]
async fn hibernation_frees_gpus_and_restore_needs_them_back() {
    let driver = sim(vec![host("a", 8)]);
    driver.create_instance(&spec("i-1", 8)).await.unwrap();
    driver.stop_instance("i-1").await.unwrap();
    driver.hibernate_instance("i-1").await.unwrap();
    driver.hibernate_instance("i-1").await.unwrap();
    assert_eq!(driver.used_gpus(REGION, MODEL), 0);
    assert_eq!(
        driver.observe_instance("i-1").await.unwrap(),
        Observation {
            state: PowerState::Hibernated,
            host: None
        }
    );
    assert!(matches!(
        driver.start_instance("i-1").await,
        Err(DriverError::Permanent(_))
    ));
    assert!(matches!(
        driver.create_instance(&spec("i-1", 8)).await,
        Err(DriverError::Permanent(_))
    ));

    driver.create_instance(&spec("i-2", 8)).await.unwrap();
    assert!(matches!(
        driver.restore_instance(&spec("i-1", 8)).await,
        Err(DriverError::NoCapacity(_))
    ));
    assert_eq!(driver.instance("i-1"), Some((PowerState::Hibernated, None)));

    driver.delete_instance("i-2").await.unwrap();
    let restored = driver.restore_instance(&spec("i-1", 8)).await.unwrap();
    assert_eq!(restored.host, "a");
    assert_eq!(
        driver.restore_instance(&spec("i-1", 8)).await.unwrap(),
        restored
    );
    assert_eq!(
        driver.instance("i-1"),
        Some((PowerState::Running, Some("a".to_owned())))
    );
    assert_eq!(driver.used_gpus(REGION, MODEL), 8);
    assert_eq!(
        driver.restore_instance(&spec("unknown", 1)).await,
        Err(DriverError::Permanent(
            "instance unknown not found".to_owned()
        ))
    );
}

#[tokio::test]
async fn power_operations_follow_the_state() {
    let driver = sim(vec![host("a", 8)]);
    driver.create_instance(&spec("i-1", 1)).await.unwrap();
    driver.reboot_instance("i-1").await.unwrap();
    driver.start_instance("i-1").await.unwrap();

    driver.stop_instance("i-1").await.unwrap();
    driver.stop_instance("i-1").await.unwrap();
    assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Stopped);
    // A stopped instance keeps its host and GPUs.
    assert_eq!(driver.used_gpus(REGION, MODEL), 1);
    // Rebooting a stopped machine boots it.
    driver.reboot_instance("i-1").await.unwrap();
    assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Running);
    driver.stop_instance("i-1").await.unwrap();

    driver.start_instance("i-1").await.unwrap();
    driver.start_instance("i-1").await.unwrap();
    assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Running);

    let not_found = Err(DriverError::Permanent("instance nope not found".to_owned()));
    assert_eq!(driver.start_instance("nope").await, not_found);
    assert_eq!(driver.stop_instance("nope").await, not_found);
    assert_eq!(driver.reboot_instance("nope").await, not_found);
    assert_eq!(driver.hibernate_instance("nope").await, not_found);
}

/// A machine that powers off by itself is seen stopped, and stays so when told the record says it runs
/// (the record is behind it, not it behind the record); a reboot or a start boots it.
#[tokio::test]
async fn a_machine_powered_off_behind_the_record_stays_off_until_started() {
    let driver = sim(vec![host("a", 8)]);
    driver.create_instance(&spec("i-1", 1)).await.unwrap();
    let running = RecordedPower {
        now: PowerState::Running,
        next: None,
    };
    assert!(driver.power_off("i-1"));
    assert!(!driver.power_off("i-1"), "already off");
    assert!(!driver.power_off("nope"));
    driver.recognize("i-1", REGION, 1, Some("a"), running.clone());
    assert_eq!(
        driver.observe_instance("i-1").await.unwrap().state,
        PowerState::Stopped
    );
    assert_eq!(driver.used_gpus(REGION, MODEL), 1, "it keeps its GPUs");
    driver.reboot_instance("i-1").await.unwrap();
    assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Running);

    // Started again, it follows the record as any machine does: a stop this process did not see
    // (another server's) is behind a record that says it runs.
    driver.stop_instance("i-1").await.unwrap();
    driver.recognize("i-1", REGION, 1, Some("a"), running);
    assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Running);
}

#[tokio::test]
async fn fail_nth_fails_one_call_counted_from_injection() {
    let driver = sim(vec![host("a", 8)]);
    driver.create_instance(&spec("i-0", 1)).await.unwrap();
    driver
        .inject(Fault::FailNth {
            operation: Operation::CreateInstance,
            nth: 2,
            permanent: false,
        })
        .unwrap();

    driver.create_instance(&spec("i-1", 1)).await.unwrap();
    assert_eq!(
        driver.create_instance(&spec("i-2", 1)).await,
        Err(DriverError::Transient(
            "injected failure of create_instance (the simulator's call #3 of create_instance)"
                .to_owned()
        ))
    );
    assert_eq!(driver.instance("i-2"), None);
    driver.create_instance(&spec("i-2", 1)).await.unwrap();
    assert_eq!(driver.calls(Operation::CreateInstance), 4);

    driver
        .inject(Fault::FailNth {
            operation: Operation::StopInstance,
            nth: 1,
            permanent: true,
        })
        .unwrap();
    assert!(matches!(
        driver.stop_instance("i-1").await,
        Err(DriverError::Permanent(_))
    ));
    assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Running);
    driver.stop_instance("i-1").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn hang_never_returns_and_is_spent_after_count_calls() {
    let driver = sim(vec![host("a", 8)]);
    driver.create_instance(&spec("i-1", 1)).await.unwrap();
    driver.stop_instance("i-1").await.unwrap();
    driver
        .inject(Fault::Hang {
            operation: Operation::StartInstance,
            count: 2,
        })
        .unwrap();

    for _ in 0..2 {
        let call = timeout(Duration::from_secs(3600), driver.start_instance("i-1")).await;
        assert!(call.is_err(), "a hanging call returned");
    }
    // The abandoned calls changed nothing, and other operations were never affected.
    assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Stopped);
    driver.stop_instance("i-1").await.unwrap();

    driver.start_instance("i-1").await.unwrap();
    assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Running);
    assert_eq!(driver.calls(Operation::StartInstance), 3);
}

#[tokio::test]
async fn a_lost_host_fails_its_instances_and_takes_no_more() {
    let driver = SimDriver::new(SimConfig {
        delays: SimDelays::instant(),
        hosts: vec![host("a", 4), host("b", 8), host("c", 8)],
        faults: vec![Fault::LoseHost {
            host: "c".to_owned(),
        }],
    });
    assert_eq!(host_of(&driver, "i-1", 4).await, "a");
    assert_eq!(host_of(&driver, "i-2", 2).await, "b");
    driver.create_instance(&spec("i-3", 2)).await.unwrap();
    driver.create_instance(&spec("i-3", 2)).await.unwrap();
    driver
        .inject(Fault::LoseHost {
            host: "b".to_owned(),
        })
        .unwrap();

    assert_eq!(
        driver.inject(Fault::LoseHost {
            host: "nowhere".to_owned(),
        }),
        Err(UnknownHost("nowhere".to_owned()))
    );

    let lost = PowerState::Failed("host b lost".to_owned());
    assert_eq!(driver.instance("i-2"), Some((lost.clone(), None)));
    assert_eq!(
        driver.observe_instance("i-3").await.unwrap(),
        Observation {
            state: lost,
            host: None
        }
    );
    assert_eq!(
        driver.instance("i-1"),
        Some((PowerState::Running, Some("a".to_owned())))
    );
    let failure = Err(DriverError::Permanent("host b lost".to_owned()));
    assert_eq!(driver.start_instance("i-2").await, failure);
    assert_eq!(
        driver.create_instance(&spec("i-2", 2)).await.map(|_| ()),
        failure
    );
    assert_eq!(driver.apply_security_rules("i-2", &[]).await, failure);

    let hosts: Vec<_> = driver
        .hosts()
        .into_iter()
        .map(|(host, used, lost)| (host.name, used, lost))
        .collect();
    assert_eq!(
        hosts,
        [
            ("a".to_owned(), 4, false),
            ("b".to_owned(), 0, true),
            ("c".to_owned(), 0, true)
        ]
    );
    assert!(matches!(
        driver.create_instance(&spec("i-4", 1)).await,
        Err(DriverError::NoCapacity(_))
    ));
    driver.delete_instance("i-2").await.unwrap();
    assert_eq!(driver.instance("i-2"), None);
}

#[tokio::test(start_paused = true)]
async fn operations_take_their_delay() {
    let driver = Arc::new(SimDriver::new(SimConfig {
        hosts: vec![host("a", 8)],
        ..SimConfig::default()
    }));
    // A machine is placed and started at once, then boots for the create delay.
    let started = Instant::now();
    driver.create_instance(&spec("i-1", 1)).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Running);
    assert_eq!(
        driver.observe_readiness("i-1").await.unwrap(),
        Readiness::Booting
    );
    tokio::time::sleep(Duration::from_millis(1499)).await;
    assert_eq!(
        driver.observe_readiness("i-1").await.unwrap(),
        Readiness::Booting
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(
        driver.observe_readiness("i-1").await.unwrap(),
        Readiness::Ready
    );
    // Asking again for the machine does not boot it again.
    driver.create_instance(&spec("i-1", 1)).await.unwrap();
    assert_eq!(
        driver.observe_readiness("i-1").await.unwrap(),
        Readiness::Ready
    );
    driver.reboot_instance("i-1").await.unwrap();
    assert_eq!(
        driver.observe_readiness("i-1").await.unwrap(),
        Readiness::Booting
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let started = Instant::now();
    driver.stop_instance("i-1").await.unwrap();
    assert_eq!(
        driver.observe_readiness("i-1").await.unwrap(),
        Readiness::NotRunning
    );
    driver.apply_security_rules("i-1", &[]).await.unwrap();
    driver.observe_instance("i-1").await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(910));
}

#[tokio::test]
async fn volumes_attach_to_one_running_instance() {
    let driver = sim(vec![host("a", 8)]);
    driver.create_instance(&spec("i-1", 1)).await.unwrap();
    driver.create_instance(&spec("i-2", 1)).await.unwrap();
    driver
        .create_volume("v-1", REGION, 100, &VolumeSource::Empty)
        .await
        .unwrap();
    driver
        .create_volume("v-1", REGION, 100, &VolumeSource::Empty)
        .await
        .unwrap();
    driver
        .create_volume(
            "v-2",
            REGION,
            100,
            &VolumeSource::Volume {
                volume_id: "v-1".into(),
            },
        )
        .await
        .unwrap();
    driver
        .create_volume(
            "v-3",
            "CANADA-1",
            100,
            &VolumeSource::Image {
                image: "Ubuntu 24.04".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(driver.calls(Operation::CreateVolume), 3);
    assert_eq!(driver.calls(Operation::CloneVolume), 1);

    driver.resize_volume("v-1", 200).await.unwrap();
    driver.resize_volume("v-1", 200).await.unwrap();
    assert!(matches!(
        driver.resize_volume("v-1", 150).await,
        Err(DriverError::Permanent(_))
    ));
    assert!(matches!(
        driver.resize_volume("v-9", 150).await,
        Err(DriverError::Permanent(_))
    ));

    driver.attach_volume("i-1", "v-1").await.unwrap();
    driver.attach_volume("i-1", "v-1").await.unwrap();
    assert_eq!(
        driver.volume_attachment("v-1"),
        Some(Some("i-1".to_owned()))
    );
    assert_eq!(
        driver.attach_volume("i-2", "v-1").await,
        Err(DriverError::Permanent(
            "volume v-1 is attached to instance i-1".to_owned()
        ))
    );
    assert!(matches!(
        driver.attach_volume("i-1", "v-3").await,
        Err(DriverError::Permanent(_))
    ));
    assert!(matches!(
        driver.attach_volume("i-9", "v-2").await,
        Err(DriverError::Permanent(_))
    ));
    assert!(matches!(
        driver.attach_volume("i-1", "v-9").await,
        Err(DriverError::Permanent(_))
    ));
    driver.stop_instance("i-2").await.unwrap();
    assert!(matches!(
        driver.attach_volume("i-2", "v-2").await,
        Err(DriverError::Permanent(_))
    ));
    assert!(matches!(
        driver.delete_volume("v-1").await,
        Err(DriverError::Permanent(_))
    ));

    // Detaching from an instance it is not attached to is a stale retry, not a detach.
    driver.detach_volume("i-2", "v-1").await.unwrap();
    assert_eq!(
        driver.volume_attachment("v-1"),
        Some(Some("i-1".to_owned()))
    );
    driver.detach_volume("i-1", "v-1").await.unwrap();
    driver.detach_volume("i-1", "v-1").await.unwrap();
    assert_eq!(driver.volume_attachment("v-1"), Some(None));
    driver.delete_volume("v-1").await.unwrap();
    driver.delete_volume("v-1").await.unwrap();
    assert_eq!(driver.volume_attachment("v-1"), None);

    driver.attach_volume("i-1", "v-2").await.unwrap();
    driver.delete_instance("i-1").await.unwrap();
    assert_eq!(driver.volume_attachment("v-2"), Some(None));
}

#[tokio::test]
async fn snapshots_need_their_instance_once() {
    let driver = sim(vec![host("a", 8)]);
    assert_eq!(
        driver.create_snapshot("i-1", "s-1").await,
        Err(DriverError::Permanent("instance i-1 not found".to_owned()))
    );
    driver.create_instance(&spec("i-1", 1)).await.unwrap();
    driver.create_snapshot("i-1", "s-1").await.unwrap();
    driver.delete_instance("i-1").await.unwrap();
    driver.create_snapshot("i-1", "s-1").await.unwrap();
    driver.delete_snapshot("s-1").await.unwrap();
    driver.delete_snapshot("s-1").await.unwrap();
    assert!(driver.create_snapshot("i-1", "s-1").await.is_err());
}

#[tokio::test]
async fn instances_boot_from_snapshots_the_simulator_has() {
    let driver = sim(vec![host("a", 8)]);
    let from_snapshot = |id: &str| InstanceSpec {
        boot: BootDisk::Snapshot {
            snapshot_id: "s-1".to_owned(),
            size_gb: 100,
        },
        ..spec(id, 1)
    };
    assert_eq!(
        driver.create_instance(&from_snapshot("i-2")).await,
        Err(DriverError::Permanent("snapshot s-1 not found".to_owned()))
    );
    assert_eq!(driver.used_gpus(REGION, MODEL), 0, "nothing was placed");
    driver.create_instance(&spec("i-1", 1)).await.unwrap();
    driver.create_snapshot("i-1", "s-1").await.unwrap();
    driver.create_instance(&from_snapshot("i-2")).await.unwrap();

    // A restarted simulator learns of the snapshots on record; deleting one leaves what was made from it.
    let restarted = sim(vec![host("a", 8)]);
    assert!(!restarted.has_snapshot("s-1"));
    restarted.recognize_snapshot("s-1");
    assert!(restarted.has_snapshot("s-1"));
    restarted
        .create_instance(&from_snapshot("i-3"))
        .await
        .unwrap();
    restarted.delete_snapshot("s-1").await.unwrap();
    assert!(!restarted.has_snapshot("s-1"));
    assert_eq!(
        restarted.instance("i-3").map(|(power, _)| power),
        Some(PowerState::Running)
    );
}

#[tokio::test]
async fn security_rules_replace_the_previous_set() {
    let driver = sim(vec![host("a", 8)]);
    assert!(matches!(
        driver.apply_security_rules("i-1", &[rule(22)]).await,
        Err(DriverError::Permanent(_))
    ));
    driver.create_instance(&spec("i-1", 1)).await.unwrap();
    assert_eq!(driver.rules("i-1"), None);
    driver
        .apply_security_rules("i-1", &[rule(22), rule(443)])
        .await
        .unwrap();
    driver
        .apply_security_rules("i-1", &[rule(8080)])
        .await
        .unwrap();
    assert_eq!(driver.rules("i-1"), Some(vec![rule(8080)]));
}

#[test]
fn capacity_splits_into_hosts_of_eight() {
    let capacity = [
        ("FINLAND-1".to_owned(), "H100-SXM5-80GB".to_owned(), 20),
        ("CANADA-1".to_owned(), "RTX A6000".to_owned(), 16),
        ("CANADA-1".to_owned(), "L40".to_owned(), 0),
    ];
    let hosts: Vec<_> = hosts_from_capacity(&capacity)
        .into_iter()
        .map(|host| (host.name, host.gpus))
        .collect();
    assert_eq!(
        hosts,
        [
            ("finland-1-h100-sxm5-80gb-01".to_owned(), 8),
            ("finland-1-h100-sxm5-80gb-02".to_owned(), 8),
            ("finland-1-h100-sxm5-80gb-03".to_owned(), 4),
            ("canada-1-rtx-a6000-01".to_owned(), 8),
            ("canada-1-rtx-a6000-02".to_owned(), 8),
        ]
    );
    assert_eq!(hosts_from_capacity(&capacity)[0].region, "FINLAND-1");
    assert_eq!(
        hosts_from_capacity(&capacity)[0].gpu_model,
        "H100-SXM5-80GB"
    );
}

#[test]
fn faults_and_config_read_from_json() {
    let fault: Fault =
        serde_json::from_str(r#"{"kind":"fail_nth","operation":"create_instance","nth":2}"#)
            .unwrap();
    assert_eq!(
        fault,
        Fault::FailNth {
            operation: Operation::CreateInstance,
            nth: 2,
            permanent: false
        }
    );
    let hang: Fault =
        serde_json::from_str(r#"{"kind":"hang","operation":"stop_instance"}"#).unwrap();
    assert_eq!(
        hang,
        Fault::Hang {
            operation: Operation::StopInstance,
            count: 1
        }
    );
    for fault in [
        fault,
        hang,
        Fault::LoseHost {
            host: "a".to_owned(),
        },
    ] {
        let json = serde_json::to_string(&fault).unwrap();
        assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), fault);
    }
    assert!(serde_json::from_str::<Fault>(r#"{"kind":"lose_host","host":"a","nth":1}"#).is_err());

    let config: SimConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(config.delays, SimDelays::default());
    assert!(config.hosts.is_empty() && config.faults.is_empty());
    let config: SimConfig = serde_json::from_str(r#"{"delays":{"create_ms":5}}"#).unwrap();
    assert_eq!(config.delays.create_ms, 5);
    assert_eq!(config.delays.start_ms, SimDelays::default().start_ms);
    assert!(serde_json::from_str::<SimConfig>(r#"{"delay":{}}"#).is_err());
}

#[test]
fn is_named_as_a_simulator() {
    let driver = sim(vec![]);
    assert_eq!(driver.name(), "sim");
    assert!(driver.is_simulated());
}
