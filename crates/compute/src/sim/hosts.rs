//! Hosts and placement: the machines of the data centre, how configured capacity becomes hosts, where an
//! instance's GPUs go, and losing a host.

use serde::{Deserialize, Serialize};

use crate::{DriverError, Placement, PowerState};

use super::{Host, State};

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
    /// Whether the host exists (and is now lost).
    pub(super) fn lose_host(&mut self, name: &str) -> bool {
        let Some(&index) = self.host_index.get(name) else {
            return false;
        };
        self.hosts[index].lost = true;
        self.hosts[index].used = 0;
        for instance in self.instances.values_mut() {
            if instance.host == Some(index) {
                instance.host = None;
                instance.power = PowerState::Failed(format!("host {name} lost"));
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
) -> Result<usize, DriverError> {
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
    Ok(index)
}

pub(super) fn placement(hosts: &[Host], host: usize) -> Placement {
    Placement {
        host: hosts[host].spec.name.clone(),
    }
}
