//! The simulator on its own: placement, transitions, volumes, snapshots, faults and delays.

use std::sync::Arc;

use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

use super::*;
use crate::{BootDisk, Readiness};

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

#[test]
fn adopted_instances_hold_their_gpus_again() {
    let driver = sim(vec![host("a", 8)]);
    driver.adopt("i-1", "R", 4, Some("a"), PowerState::Running);
    driver.adopt("i-1", "R", 4, Some("a"), PowerState::Running);
    driver.adopt("i-2", "R", 2, None, PowerState::Hibernated);
    driver.adopt("i-3", "R", 8, Some("a"), PowerState::Running);
    driver.adopt("i-4", "R", 1, Some("nowhere"), PowerState::Running);
    let running_on_a = Some((PowerState::Running, Some("a".to_string())));
    assert_eq!(driver.instance("i-1"), running_on_a);
    assert_eq!(driver.instance("i-2"), Some((PowerState::Hibernated, None)));
    assert_eq!(
        driver.instance("i-3"),
        running_on_a,
        "recorded placements are honoured"
    );
    assert!(matches!(
        driver.instance("i-4"),
        Some((PowerState::Failed(_), None))
    ));
    assert_eq!(
        driver.hosts()[0].1,
        12,
        "over-full until placements catch up"
    );
}

/// A large installation's machines, adopted at start, then deleted, lost and created among: every one
/// keeps its own state and host, and the hosts' GPUs always add up to the machines on them.
#[tokio::test]
async fn thousands_of_adopted_machines_keep_their_state_through_deletes_and_a_lost_host() {
    let hosts: Vec<SimHost> = (0..1_000).map(|h| host(&format!("h{h}"), 8)).collect();
    let driver = sim(hosts);
    let id = |i: u32| format!("BRK-{i:06}D");
    // Eight one-GPU machines per host; every fifth stopped, every seventh hibernated (no host).
    for i in 0..8_000u32 {
        let (power, host) = match i {
            _ if i % 7 == 0 => (PowerState::Hibernated, None),
            _ if i % 5 == 0 => (PowerState::Stopped, Some(format!("h{}", i / 8))),
            _ => (PowerState::Running, Some(format!("h{}", i / 8))),
        };
        driver.adopt(&id(i), REGION, 1, host.as_deref(), power);
    }
    assert_eq!(driver.machines(), 8_000);
    // Deleting every third moves other records about in the table.
    for i in (0..8_000u32).step_by(3) {
        driver.delete_instance(&id(i)).await.unwrap();
    }
    driver
        .inject(Fault::LoseHost {
            host: "h500".into(),
        })
        .unwrap();
    for i in 0..8_000u32 {
        let expected = match i {
            _ if i % 3 == 0 => None,
            _ if i % 7 == 0 => Some((PowerState::Hibernated, None)),
            _ if i / 8 == 500 => Some((PowerState::Failed("host h500 lost".into()), None)),
            _ if i % 5 == 0 => Some((PowerState::Stopped, Some(format!("h{}", i / 8)))),
            _ => Some((PowerState::Running, Some(format!("h{}", i / 8)))),
        };
        assert_eq!(driver.instance(&id(i)), expected, "{}", id(i));
    }
    let placed = |h: u32| {
        (h * 8..h * 8 + 8)
            .filter(|i| i % 3 != 0 && i % 7 != 0 && h != 500)
            .count() as u32
    };
    for (h, (spec, used, lost)) in driver.hosts().into_iter().enumerate() {
        let h = h as u32;
        assert_eq!((used, lost), (placed(h), h == 500), "{}", spec.name);
    }
    // New machines fill the freed GPUs, never a lost host's, and are found among the adopted ones.
    let free: u32 = (0..1_000)
        .map(|h| if h == 500 { 0 } else { 8 - placed(h) })
        .sum();
    for n in 0..free {
        driver
            .create_instance(&spec(&format!("BRK-N{n:05}D"), 1))
            .await
            .unwrap();
    }
    assert!(
        driver
            .create_instance(&spec("BRK-FULL00D", 1))
            .await
            .is_err()
    );
    assert!(
        driver
            .hosts()
            .iter()
            .all(|(_, used, lost)| *lost || *used == 8)
    );
    assert_eq!(
        driver.instance(&id(1)),
        Some((PowerState::Running, Some("h0".to_string())))
    );
}

#[tokio::test]
async fn places_on_the_best_fitting_host() {
    let mut elsewhere = host("canada", 8);
    elsewhere.region = "CANADA-1".to_owned();
    let mut other_model = host("h200", 1);
    other_model.gpu_model = "H200-141GB".to_owned();
    let driver = sim(vec![
        elsewhere,
        other_model,
        host("a", 8),
        host("b", 4),
        host("c", 8),
    ]);

    assert_eq!(host_of(&driver, "i-1", 2).await, "b");
    // b has 2 free: too few; a and c tie at 8 free, and configuration order breaks the tie.
    assert_eq!(host_of(&driver, "i-2", 4).await, "a");
    assert_eq!(host_of(&driver, "i-3", 3).await, "a");
    assert_eq!(host_of(&driver, "i-4", 1).await, "a");
    assert_eq!(host_of(&driver, "i-5", 8).await, "c");
    assert_eq!(host_of(&driver, "i-6", 2).await, "b");
    assert_eq!(
        driver.create_instance(&spec("i-7", 1)).await,
        Err(DriverError::NoCapacity(
            "1 H100-SXM5-80GB GPUs in FINLAND-1".to_owned()
        ))
    );
    assert_eq!(driver.used_gpus(REGION, MODEL), 20);
    assert_eq!(driver.used_gpus("CANADA-1", MODEL), 0);
    assert_eq!(
        driver.instance("i-6"),
        Some((PowerState::Running, Some("b".to_owned())))
    );
}

/// The placement index against a walk over every host, as placement was first written: through random
/// creates, deletes, hibernations, restores, lost hosts and capacity changes, every machine lands on the
/// host the walk picks (fewest free GPUs that fit, first in order among equals), and every host's GPUs
/// add up to the machines on it.
#[tokio::test]
async fn placements_are_the_best_fit_a_walk_over_every_host_finds() {
    /// A host as the walk sees it: name, GPUs, used, lost.
    type Walked = (String, u32, u32, bool);
    fn walk(hosts: &[Walked], count: u32) -> Option<usize> {
        hosts
            .iter()
            .enumerate()
            .filter(|(_, (_, gpus, used, lost))| !lost && gpus.saturating_sub(*used) >= count)
            .min_by_key(|(_, (_, gpus, used, _))| gpus - used)
            .map(|(index, _)| index)
    }
    fn follow(hosts: &mut Vec<Walked>, total: u32) {
        let wanted = hosts_from_capacity(&[(REGION.to_owned(), MODEL.to_owned(), total)]);
        for host in hosts.iter_mut() {
            host.1 = wanted
                .iter()
                .find(|w| w.name == host.0)
                .map_or(0, |w| w.gpus);
        }
        for w in wanted {
            if !hosts.iter().any(|h| h.0 == w.name) {
                hosts.push((w.name, w.gpus, 0, false));
            }
        }
    }

    let driver = sim(vec![]);
    let mut hosts: Vec<Walked> = Vec::new();
    // Machines: id, GPUs, host (an index into `hosts`; none while hibernated or lost), hibernated.
    let mut machines: Vec<(String, u32, Option<usize>, bool)> = Vec::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |below: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % below
    };
    let mut total = 200;
    driver.recognize_capacity(REGION, MODEL, total);
    follow(&mut hosts, total);
    for step in 0..4_000 {
        match next(100) {
            0..=49 => {
                let count = 1 + next(8) as u32;
                let id = format!("i-{step}");
                let placed = driver.create_instance(&spec(&id, count)).await;
                match walk(&hosts, count) {
                    Some(index) => {
                        assert_eq!(placed.unwrap().host, hosts[index].0, "step {step}");
                        hosts[index].2 += count;
                        machines.push((id, count, Some(index), false));
                    }
                    None => assert!(
                        matches!(placed, Err(DriverError::NoCapacity(_))),
                        "step {step}: {placed:?}"
                    ),
                }
            }
            50..=69 if !machines.is_empty() => {
                let (id, gpus, host, _) =
                    machines.swap_remove(next(machines.len() as u64) as usize);
                driver.delete_instance(&id).await.unwrap();
                if let Some(index) = host {
                    hosts[index].2 -= gpus;
                }
            }
            70..=79 if !machines.is_empty() => {
                let at = next(machines.len() as u64) as usize;
                let (id, gpus, host, hibernated) = machines[at].clone();
                if hibernated {
                    let restored = driver.restore_instance(&spec(&id, gpus)).await;
                    match walk(&hosts, gpus) {
                        Some(index) => {
                            assert_eq!(restored.unwrap().host, hosts[index].0, "step {step}");
                            hosts[index].2 += gpus;
                            machines[at] = (id, gpus, Some(index), false);
                        }
                        None => assert!(restored.is_err(), "step {step}"),
                    }
                } else if let Some(index) = host {
                    driver.hibernate_instance(&id).await.unwrap();
                    hosts[index].2 -= gpus;
                    machines[at] = (id, gpus, None, true);
                }
            }
            80..=82 => {
                let index = next(hosts.len() as u64) as usize;
                if !hosts[index].3 {
                    driver
                        .inject(Fault::LoseHost {
                            host: hosts[index].0.clone(),
                        })
                        .unwrap();
                    hosts[index].2 = 0;
                    hosts[index].3 = true;
                    // Its machines are failed: deleted here, so no later step acts on them.
                    for (id, _, host, _) in &machines {
                        if *host == Some(index) {
                            driver.delete_instance(id).await.unwrap();
                        }
                    }
                    machines.retain(|(_, _, host, _)| *host != Some(index));
                }
            }
            83..=85 => {
                total = 50 + next(400) as u32;
                driver.recognize_capacity(REGION, MODEL, total);
                follow(&mut hosts, total);
            }
            _ => {}
        }
    }
    let expected: Vec<(String, u32, bool)> = hosts
        .iter()
        .filter(|(_, gpus, used, _)| *gpus > 0 || *used > 0)
        .map(|(name, _, used, lost)| (name.clone(), *used, *lost))
        .collect();
    let held: Vec<(String, u32, bool)> = driver
        .hosts()
        .into_iter()
        .map(|(spec, used, lost)| (spec.name, used, lost))
        .collect();
    assert_eq!(held, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_oversubscribe() {
    let capacity = [(REGION.to_owned(), MODEL.to_owned(), 20)];
    let driver = Arc::new(SimDriver::new(SimConfig {
        delays: SimDelays {
            create_ms: 1,
            ..SimDelays::instant()
        },
        hosts: hosts_from_capacity(&capacity),
        faults: vec![],
    }));
    let mut creates = JoinSet::new();
    for n in 0..50 {
        let driver = driver.clone();
        creates.spawn(async move { driver.create_instance(&spec(&format!("i-{n}"), 1)).await });
    }
    let (mut placed, mut refused) = (0, 0);
    for result in creates.join_all().await {
        match result {
            Ok(_) => placed += 1,
            Err(DriverError::NoCapacity(_)) => refused += 1,
            Err(error) => panic!("unexpected {error}"),
        }
    }
    assert_eq!((placed, refused), (20, 30));
    assert_eq!(driver.used_gpus(REGION, MODEL), 20);
    assert!(
        driver
            .hosts()
            .iter()
            .all(|(host, used, _)| *used == host.gpus)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_one_create_place_it_once() {
    let driver = Arc::new(sim(vec![host("a", 8), host("b", 8)]));
    let mut creates = JoinSet::new();
    for _ in 0..10 {
        let driver = driver.clone();
        creates.spawn(async move { driver.create_instance(&spec("i-1", 4)).await.unwrap() });
    }
    let placements = creates.join_all().await;
    assert!(
        placements
            .iter()
            .all(|placement| *placement == placements[0])
    );
    assert_eq!(driver.used_gpus(REGION, MODEL), 4);
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
    assert_eq!(
        driver.reboot_instance("i-1").await,
        Err(DriverError::Permanent(
            "instance i-1 is stopped and cannot be rebooted".to_owned()
        ))
    );
    // A stopped instance keeps its host and GPUs.
    assert_eq!(driver.used_gpus(REGION, MODEL), 1);

    driver.start_instance("i-1").await.unwrap();
    driver.start_instance("i-1").await.unwrap();
    assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Running);

    let not_found = Err(DriverError::Permanent("instance nope not found".to_owned()));
    assert_eq!(driver.start_instance("nope").await, not_found);
    assert_eq!(driver.stop_instance("nope").await, not_found);
    assert_eq!(driver.reboot_instance("nope").await, not_found);
    assert_eq!(driver.hibernate_instance("nope").await, not_found);
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
    driver.reboot_instance("i-1").await.unwrap_err();

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
        .create_volume("v-1", REGION, 100, None)
        .await
        .unwrap();
    driver
        .create_volume("v-1", REGION, 100, None)
        .await
        .unwrap();
    driver
        .create_volume("v-2", REGION, 100, Some("v-1"))
        .await
        .unwrap();
    driver
        .create_volume("v-3", "CANADA-1", 100, None)
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
