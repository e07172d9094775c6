//! Hosts and placement: the machines of the data centre, how configured capacity becomes hosts, where an
//! instance's GPUs go, and losing a host.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::{DriverError, Placement, PowerState};

use super::{Power, State};

/// One machine: `gpus` GPUs of one model in one region. Names must be unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimHost {
    pub name: String,
    pub region: String,
    pub gpu_model: String,
    pub gpus: u32,
}

/// GPUs in one simulated host, as in a typical 8-GPU server.
const GPUS_PER_HOST: u32 = 8;

/// Hosts for (region, GPU model, total GPUs) capacity: full 8-GPU hosts and one holding the remainder,
/// named like `finland-1-h100-sxm5-80gb-01`.
pub fn hosts_from_capacity(capacity: &[(String, String, u32)]) -> Vec<SimHost> {
    capacity
        .iter()
        .flat_map(|(region, model, total)| {
            let prefix: String = format!("{region}-{model}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            (0..total.div_ceil(GPUS_PER_HOST)).map(move |index| SimHost {
                name: format!("{prefix}-{:02}", index + 1),
                region: region.clone(),
                gpu_model: model.clone(),
                gpus: (total - index * GPUS_PER_HOST).min(GPUS_PER_HOST),
            })
        })
        .collect()
}

/// One host as the simulator keeps it.
pub(super) struct Host {
    pub spec: SimHost,
    /// GPUs reserved by machines on it; above `spec.gpus` when adopted placements over-fill it.
    pub used: u32,
    pub lost: bool,
}

impl Host {
    /// GPUs a new machine may still have here.
    fn free(&self) -> u32 {
        self.spec.gpus.saturating_sub(self.used)
    }
}

/// The hosts, in configuration order (which breaks best-fit ties), with two indexes: by name, and, per
/// region and GPU model, the live hosts by their free GPUs. A placement is then a lookup instead of a
/// walk over every host: a large installation has a hundred thousand of them, and the walk, under the
/// state lock, cost a millisecond per machine created.
#[derive(Default)]
pub(super) struct Hosts {
    hosts: Vec<Host>,
    by_name: HashMap<String, usize>,
    /// (free GPUs, position) of every live host, by region then GPU model.
    by_free: ByFree,
}

impl Hosts {
    pub fn new(specs: Vec<SimHost>) -> Hosts {
        let mut hosts = Hosts::default();
        for spec in specs {
            hosts.push(spec);
        }
        hosts
    }

    /// Adds a host after the others, with nothing on it.
    fn push(&mut self, spec: SimHost) {
        let slot = host_slot(self.hosts.len());
        self.by_name.insert(spec.name.clone(), self.hosts.len());
        self.hosts.push(Host {
            spec,
            used: 0,
            lost: false,
        });
        self.index(slot);
    }

    /// The host at `slot`.
    pub fn get(&self, slot: u32) -> &Host {
        &self.hosts[slot as usize]
    }

    /// The position of the host named `name`.
    pub fn slot_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).map(|&index| host_slot(index))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter()
    }

    /// Changes the host at `slot` with `change`, keeping its place in the free-GPU index.
    fn update(&mut self, slot: u32, change: impl FnOnce(&mut Host)) {
        self.unindex(slot);
        change(&mut self.hosts[slot as usize]);
        self.index(slot);
    }

    fn index(&mut self, slot: u32) {
        let host = &self.hosts[slot as usize];
        if host.lost {
            return;
        }
        let key = (host.free(), slot);
        // Found without building the keys: every placement and release comes here.
        if let Some(set) = free_set(&mut self.by_free, &host.spec) {
            set.insert(key);
            return;
        }
        self.by_free
            .entry(host.spec.region.clone())
            .or_default()
            .entry(host.spec.gpu_model.clone())
            .or_default()
            .insert(key);
    }

    fn unindex(&mut self, slot: u32) {
        let host = &self.hosts[slot as usize];
        if let Some(set) = free_set(&mut self.by_free, &host.spec) {
            set.remove(&(host.free(), slot));
        }
    }

    /// Reserves `count` GPUs on the best-fitting live host: the one with the fewest free GPUs that still
    /// fit (the first in configuration order among equals), which keeps whole hosts free for large
    /// instances.
    pub fn place(&mut self, region: &str, model: &str, count: u32) -> Result<u32, DriverError> {
        let slot = self
            .by_free
            .get(region)
            .and_then(|models| models.get(model))
            .and_then(|set| set.range((count, 0)..).next())
            .map(|&(_, slot)| slot)
            .ok_or_else(|| DriverError::NoCapacity(format!("{count} {model} GPUs in {region}")))?;
        self.reserve(slot, count);
        Ok(slot)
    }

    /// Counts `gpus` more GPUs as used on the host at `slot`.
    pub fn reserve(&mut self, slot: u32, gpus: u32) {
        self.update(slot, |host| host.used += gpus);
    }

    /// Gives back `gpus` GPUs on the host at `slot`.
    pub fn release(&mut self, slot: u32, gpus: u32) {
        self.update(slot, |host| host.used -= gpus);
    }

    /// Marks the host named `name` lost, its GPUs no longer used; its position, if it exists.
    pub fn lose(&mut self, name: &str) -> Option<u32> {
        let slot = self.slot_of(name)?;
        self.update(slot, |host| {
            host.lost = true;
            host.used = 0;
        });
        Some(slot)
    }

    /// Every host live again, with nothing on it.
    pub fn revive_all(&mut self) {
        for slot in 0..self.hosts.len() {
            self.update(host_slot(slot), |host| {
                host.used = 0;
                host.lost = false;
            });
        }
    }

    /// Makes the hosts of a region and model `wanted`: hosts are added, resized, or retired (no GPUs:
    /// instances on them keep running, nothing new is placed there).
    fn follow(&mut self, region: &str, gpu_model: &str, wanted: Vec<SimHost>) {
        let gpus: HashMap<&str, u32> = wanted.iter().map(|s| (s.name.as_str(), s.gpus)).collect();
        for slot in 0..self.hosts.len() {
            let spec = &self.hosts[slot].spec;
            if spec.region == region && spec.gpu_model == gpu_model {
                let size = gpus.get(spec.name.as_str()).copied().unwrap_or(0);
                self.update(host_slot(slot), |host| host.spec.gpus = size);
            }
        }
        for spec in wanted {
            if !self.by_name.contains_key(&spec.name) {
                self.push(spec);
            }
        }
    }

    /// The placement of a machine on the host at `slot`.
    pub fn placement(&self, slot: u32) -> Placement {
        Placement {
            host: self.get(slot).spec.name.clone(),
        }
    }
}

/// (free GPUs, position) of live hosts, by region then GPU model.
type ByFree = HashMap<String, HashMap<String, BTreeSet<(u32, u32)>>>;

/// The free-GPU index of `spec`'s region and model, once it has one.
fn free_set<'a>(by_free: &'a mut ByFree, spec: &SimHost) -> Option<&'a mut BTreeSet<(u32, u32)>> {
    by_free
        .get_mut(&spec.region)
        .and_then(|models| models.get_mut(&spec.gpu_model))
}

impl State {
    /// Makes the hosts of a region and model those [`hosts_from_capacity`] builds for `total` GPUs: hosts
    /// are added, resized, or retired. Hosts keep their names and slots, so placements recorded on any
    /// replica still name them.
    pub(super) fn follow_capacity(&mut self, region: &str, gpu_model: &str, total: u32) {
        // Servers pass the capacity before most operations: unchanged, it costs a lookup, not a walk
        // over every host.
        let key = (region.to_owned(), gpu_model.to_owned());
        if self.followed_capacity.get(&key) == Some(&total) {
            return;
        }
        let wanted = hosts_from_capacity(&[(region.to_owned(), gpu_model.to_owned(), total)]);
        self.hosts.follow(region, gpu_model, wanted);
        self.followed_capacity.insert(key, total);
    }

    /// The power and host of a machine as recorded (`host` by name), its GPUs reserved there. A recorded
    /// placement is a fact about the data centre: it is honoured even when placements made since (by
    /// this process, before it learnt of the machine) leave the host over-full.
    pub(super) fn take_recorded_place(
        &mut self,
        host: Option<&str>,
        power: PowerState,
        gpus: u32,
    ) -> (Power, Option<u32>) {
        let recorded = match power {
            PowerState::Running => Power::Running,
            PowerState::Stopped => Power::Stopped,
            _ => Power::Hibernated,
        };
        match host.map(|name| self.hosts.slot_of(name)) {
            Some(Some(slot)) if !self.hosts.get(slot).lost => {
                self.hosts.reserve(slot, gpus);
                (recorded, Some(slot))
            }
            Some(Some(slot)) => (Power::HostLost(slot), None),
            Some(None) => (Power::HostUnknown, None),
            None => (Power::Hibernated, None),
        }
    }

    /// Whether the host exists (and is now lost).
    pub(super) fn lose_host(&mut self, name: &str) -> bool {
        let Some(slot) = self.hosts.lose(name) else {
            return false;
        };
        for (_, instance) in self.instances.iter_mut() {
            if instance.host == Some(slot) {
                instance.host = None;
                instance.power = Power::HostLost(slot);
            }
        }
        true
    }
}

/// A position in `State::hosts` as machines hold it.
pub(super) fn host_slot(index: usize) -> u32 {
    u32::try_from(index).expect("fewer than 2^32 hosts")
}
