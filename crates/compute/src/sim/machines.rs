//! Machines and their transitions: create, power operations, hibernate and restore, delete.

use std::time::Duration;

use tokio::time::Instant;

use crate::{BootDisk, DriverError, InstanceSpec, Placement, PowerState};

use super::table::MachineKey;
use super::{Instance, PRUNE_BOOTING_AT, Power, State};

impl State {
    /// The position of a region's name in `regions`, added when new.
    pub(super) fn region(&mut self, name: &str) -> u16 {
        let at = match self.regions.iter().position(|r| &**r == name) {
            Some(at) => at,
            None => {
                self.regions.push(name.into());
                self.regions.len() - 1
            }
        };
        u16::try_from(at).expect("fewer than 65,536 regions")
    }

    /// What the driver reports of a machine's power, a failure's reason included.
    pub(super) fn power_state(&self, power: Power) -> PowerState {
        match power {
            Power::Running => PowerState::Running,
            Power::Stopped => PowerState::Stopped,
            Power::Hibernated => PowerState::Hibernated,
            Power::HostLost(host) => {
                PowerState::Failed(format!("host {} lost", self.hosts.get(host).spec.name))
            }
            Power::HostUnknown => {
                PowerState::Failed("its host is not part of the simulated data centre".into())
            }
        }
    }

    /// Records that the machine `key` boots until `ready_at`.
    fn boot(&mut self, key: MachineKey, ready_at: Instant) {
        self.booting.insert(key, ready_at);
        if self.booting.len() >= self.prune_booting_at {
            let now = Instant::now();
            self.booting.retain(|_, at| now < *at);
            self.prune_booting_at = PRUNE_BOOTING_AT.max(2 * self.booting.len());
        }
    }

    /// Whether the machine `key`'s last boot has not completed yet.
    pub(super) fn is_booting(&self, key: MachineKey) -> bool {
        self.booting
            .get(&key)
            .is_some_and(|at| Instant::now() < *at)
    }

    /// How long until the machine `key`'s boot completes, while it has not.
    pub(super) fn boot_remaining(&self, key: MachineKey) -> Option<Duration> {
        let left = self
            .booting
            .get(&key)?
            .saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Places and starts the machine, which is up at `ready_at`; asking again returns the placement of
    /// the machine already there.
    pub(super) fn create_instance(
        &mut self,
        spec: &InstanceSpec,
        ready_at: Instant,
    ) -> Result<Placement, DriverError> {
        if self.instances.contains(&spec.id) {
            let (_, instance) = usable(self, &spec.id)?;
            return match instance.host {
                Some(host) => Ok(self.hosts.placement(host)),
                None => Err(DriverError::Permanent(format!(
                    "instance {} is hibernated; restore it instead",
                    spec.id
                ))),
            };
        }
        if let BootDisk::Snapshot { snapshot_id, .. } = &spec.boot
            && !self.snapshots.contains(snapshot_id)
        {
            return Err(DriverError::Permanent(format!(
                "snapshot {snapshot_id} not found"
            )));
        }
        let host = self
            .hosts
            .place(&spec.region, &spec.gpu_model, spec.gpu_count)?;
        let region = self.region(&spec.region);
        let key = self.instances.insert(
            &spec.id,
            Instance {
                region,
                gpu_count: spec.gpu_count,
                power: Power::Running,
                host: Some(host),
                ram_gb: spec.ram_gb,
            },
        );
        self.boot(key, ready_at);
        Ok(self.hosts.placement(host))
    }

    pub(super) fn start_instance(
        &mut self,
        id: &str,
        ready_at: Instant,
    ) -> Result<(), DriverError> {
        let (key, instance) = usable(self, id)?;
        match instance.power {
            Power::Running => Ok(()),
            Power::Stopped => {
                instance.power = Power::Running;
                self.powered_off.remove(&key);
                self.boot(key, ready_at);
                Ok(())
            }
            power => Err(wrong_state(id, power, "started")),
        }
    }

    pub(super) fn stop_instance(&mut self, id: &str) -> Result<(), DriverError> {
        let (_, instance) = usable(self, id)?;
        match instance.power {
            Power::Stopped => Ok(()),
            Power::Running => {
                instance.power = Power::Stopped;
                Ok(())
            }
            power => Err(wrong_state(id, power, "stopped")),
        }
    }

    pub(super) fn reboot_instance(
        &mut self,
        id: &str,
        ready_at: Instant,
    ) -> Result<(), DriverError> {
        let (key, instance) = usable(self, id)?;
        match instance.power {
            Power::Running => {
                self.boot(key, ready_at);
                Ok(())
            }
            // Found powered off: rebooting it boots it.
            Power::Stopped => self.start_instance(id, ready_at),
            power => Err(wrong_state(id, power, "rebooted")),
        }
    }

    pub(super) fn hibernate_instance(&mut self, id: &str) -> Result<(), DriverError> {
        let (key, instance) = usable(self, id)?;
        let freed = instance.host.take().map(|host| (host, instance.gpu_count));
        instance.power = Power::Hibernated;
        self.powered_off.remove(&key);
        if let Some((host, gpus)) = freed {
            self.hosts.release(host, gpus);
        }
        Ok(())
    }

    pub(super) fn restore_instance(
        &mut self,
        spec: &InstanceSpec,
        ready_at: Instant,
    ) -> Result<Placement, DriverError> {
        if let Some(host) = usable(self, &spec.id)?.1.host {
            return Ok(self.hosts.placement(host));
        }
        let host = self
            .hosts
            .place(&spec.region, &spec.gpu_model, spec.gpu_count)?;
        let region = self.region(&spec.region);
        let (key, instance) = usable(self, &spec.id)?;
        instance.region = region;
        instance.gpu_count = spec.gpu_count;
        instance.power = Power::Running;
        instance.host = Some(host);
        instance.ram_gb = spec.ram_gb;
        self.boot(key, ready_at);
        Ok(self.hosts.placement(host))
    }

    /// Frees its GPUs and detaches its volumes; the volumes themselves stay.
    pub(super) fn delete_instance(&mut self, id: &str) {
        let Some((key, instance)) = self.instances.remove(id) else {
            return;
        };
        if let Some(host) = instance.host {
            self.hosts.release(host, instance.gpu_count);
        }
        self.rules.remove(&key);
        self.booting.remove(&key);
        self.powered_off.remove(&key);
        for volume in self.volumes.values_mut() {
            if volume.attached_to.as_deref() == Some(id) {
                volume.attached_to = None;
            }
        }
    }
}

/// The instance `id` and its key, unless it is unknown or failed (then its failure is the error).
pub(super) fn usable<'a>(
    state: &'a mut State,
    id: &str,
) -> Result<(MachineKey, &'a mut Instance), DriverError> {
    let (key, power) = match state.instances.get_key_value(id) {
        Some((key, instance)) => (key, instance.power),
        None => return Err(DriverError::Permanent(format!("instance {id} not found"))),
    };
    if let PowerState::Failed(reason) = state.power_state(power) {
        return Err(DriverError::Permanent(reason));
    }
    let (_, instance) = state
        .instances
        .get_mut(id)
        .expect("the instance was just found");
    Ok((key, instance))
}

pub(super) fn wrong_state(id: &str, power: Power, action: &str) -> DriverError {
    let state = match power {
        Power::Running => "running",
        Power::Stopped => "stopped",
        Power::Hibernated => "hibernated",
        Power::HostLost(_) | Power::HostUnknown => "failed",
    };
    DriverError::Permanent(format!("instance {id} is {state} and cannot be {action}"))
}
