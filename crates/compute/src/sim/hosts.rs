//! Hosts and placement: the machines of the data centre, how configured capacity becomes hosts, where an
//! instance's GPUs go, and losing a host.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{DriverError, Placement};

use super::{Host, Power, State};

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

impl State {
    /// Makes the hosts of a region and model those [`hosts_from_capacity`] builds for `total` GPUs: hosts
    /// are added, resized, or retired (no GPUs: instances on them keep running, nothing new is placed).
    /// Hosts keep their names and slots, so placements recorded on any replica still name them.
    pub(super) fn follow_capacity(&mut self, region: &str, gpu_model: &str, total: u32) {
        // Servers pass the capacity before most operations: unchanged, it costs a lookup, not a walk
        // over every host.
        let key = (region.to_owned(), gpu_model.to_owned());
        if self.followed_capacity.get(&key) == Some(&total) {
            return;
        }
        let wanted = hosts_from_capacity(&[(region.to_owned(), gpu_model.to_owned(), total)]);
        let gpus: HashMap<&str, u32> = wanted.iter().map(|s| (s.name.as_str(), s.gpus)).collect();
        for host in &mut self.hosts {
            if host.spec.region == region && host.spec.gpu_model == gpu_model {
                host.spec.gpus = gpus.get(host.spec.name.as_str()).copied().unwrap_or(0);
            }
        }
        for spec in wanted {
            if !self.host_index.contains_key(&spec.name) {
                self.host_index.insert(spec.name.clone(), self.hosts.len());
                self.hosts.push(Host {
                    spec,
                    used: 0,
                    lost: false,
                });
            }
        }
        self.followed_capacity.insert(key, total);
    }

    /// Whether the host exists (and is now lost).
    pub(super) fn lose_host(&mut self, name: &str) -> bool {
        let Some(&index) = self.host_index.get(name) else {
            return false;
        };
        self.hosts[index].lost = true;
        self.hosts[index].used = 0;
        let slot = host_slot(index);
        for (_, instance) in self.instances.iter_mut() {
            if instance.host == Some(slot) {
                instance.host = None;
                instance.power = Power::HostLost(slot);
            }
        }
        true
    }
}

/// Reserves `count` GPUs on the best-fitting live host: the one with the fewest free GPUs that still fit,
/// which keeps whole hosts free for large instances.
pub(super) fn place(
    hosts: &mut [Host],
    region: &str,
    model: &str,
    count: u32,
) -> Result<u32, DriverError> {
    let index = hosts
        .iter()
        .enumerate()
        .filter(|(_, host)| {
            !host.lost && host.spec.region == region && host.spec.gpu_model == model
        })
        .map(|(index, host)| (index, host.spec.gpus.saturating_sub(host.used)))
        .filter(|&(_, free)| free >= count)
        .min_by_key(|&(_, free)| free)
        .map(|(index, _)| index)
        .ok_or_else(|| DriverError::NoCapacity(format!("{count} {model} GPUs in {region}")))?;
    hosts[index].used += count;
    Ok(host_slot(index))
}

pub(super) fn placement(hosts: &[Host], host: u32) -> Placement {
    Placement {
        host: hosts[host as usize].spec.name.clone(),
    }
}

/// A position in `State::hosts` as machines hold it.
pub(super) fn host_slot(index: usize) -> u32 {
    u32::try_from(index).expect("fewer than 2^32 hosts")
}
