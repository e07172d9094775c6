//! Placement: best fit over the hosts, adopted placements, and concurrent creates.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::*;

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
