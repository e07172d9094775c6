//! Machines and their transitions: create, power operations, hibernate and restore, delete.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use crate::{BootDisk, DriverError, InstanceSpec, Placement, PowerState};

use super::hosts::{place, placement};
use super::{Instance, State};

impl State {
    /// The shared copy of a region's name.
    pub(super) fn region(&mut self, name: &str) -> Arc<str> {
        if let Some(region) = self.regions.iter().find(|r| &***r == name) {
            return region.clone();
        }
        let region: Arc<str> = name.into();
        self.regions.push(region.clone());
        region
    }

    /// Places and starts the machine, which is up at `ready_at`; asking again returns the placement of
    /// the machine already there.
    pub(super) fn create_instance(
        &mut self,
        spec: &InstanceSpec,
        ready_at: Instant,
    ) -> Result<Placement, DriverError> {
        if self.instances.contains_key(spec.id.as_str()) {
            let instance = usable(&mut self.instances, &spec.id)?;
            return match instance.host {
                Some(host) => Ok(placement(&self.hosts, host)),
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
        let host = place(
            &mut self.hosts,
            &spec.region,
            &spec.gpu_model,
            spec.gpu_count,
        )?;
        let region = self.region(&spec.region);
        self.instances.insert(
            spec.id.as_str().into(),
            Instance {
                region,
                gpu_count: spec.gpu_count,
                power: PowerState::Running,
                host: Some(host),
                rules: None,
                ready_at: Some(ready_at),
                ram_gb: spec.ram_gb,
            },
        );
        Ok(placement(&self.hosts, host))
    }

    pub(super) fn start_instance(
        &mut self,
        id: &str,
        ready_at: Instant,
    ) -> Result<(), DriverError> {
        let instance = usable(&mut self.instances, id)?;
        match instance.power {
            PowerState::Running => Ok(()),
            PowerState::Stopped => {
                instance.power = PowerState::Running;
                instance.ready_at = Some(ready_at);
                Ok(())
            }
            _ => Err(wrong_state(id, &instance.power, "started")),
        }
    }

    pub(super) fn stop_instance(&mut self, id: &str) -> Result<(), DriverError> {
        let instance = usable(&mut self.instances, id)?;
        match instance.power {
            PowerState::Stopped => Ok(()),
            PowerState::Running => {
                instance.power = PowerState::Stopped;
                Ok(())
            }
            _ => Err(wrong_state(id, &instance.power, "stopped")),
        }
    }

    pub(super) fn reboot_instance(
        &mut self,
        id: &str,
        ready_at: Instant,
    ) -> Result<(), DriverError> {
        let instance = usable(&mut self.instances, id)?;
        match instance.power {
            PowerState::Running => {
                instance.ready_at = Some(ready_at);
                Ok(())
            }
            _ => Err(wrong_state(id, &instance.power, "rebooted")),
        }
    }

    pub(super) fn hibernate_instance(&mut self, id: &str) -> Result<(), DriverError> {
        let instance = usable(&mut self.instances, id)?;
        if let Some(host) = instance.host.take() {
            self.hosts[host].used -= instance.gpu_count;
        }
        instance.power = PowerState::Hibernated;
        Ok(())
    }

    pub(super) fn restore_instance(
        &mut self,
        spec: &InstanceSpec,
        ready_at: Instant,
    ) -> Result<Placement, DriverError> {
        if let Some(host) = usable(&mut self.instances, &spec.id)?.host {
            return Ok(placement(&self.hosts, host));
        }
        let host = place(
            &mut self.hosts,
            &spec.region,
            &spec.gpu_model,
            spec.gpu_count,
        )?;
        let region = self.region(&spec.region);
        let instance = usable(&mut self.instances, &spec.id)?;
        instance.region = region;
        instance.gpu_count = spec.gpu_count;
        instance.power = PowerState::Running;
        instance.host = Some(host);
        instance.ready_at = Some(ready_at);
        instance.ram_gb = spec.ram_gb;
        Ok(placement(&self.hosts, host))
    }

    /// Frees its GPUs and detaches its volumes; the volumes themselves stay.
    pub(super) fn delete_instance(&mut self, id: &str) {
        let Some(instance) = self.instances.remove(id) else {
            return;
        };
        if let Some(host) = instance.host {
            self.hosts[host].used -= instance.gpu_count;
        }
        for volume in self.volumes.values_mut() {
            if volume.attached_to.as_deref() == Some(id) {
                volume.attached_to = None;
            }
        }
    }
}

/// The instance `id`, unless it is unknown or failed (then its failure is the error).
pub(super) fn usable<'a>(
    instances: &'a mut HashMap<Box<str>, Instance>,
    id: &str,
) -> Result<&'a mut Instance, DriverError> {
    let instance = instances
        .get_mut(id)
        .ok_or_else(|| DriverError::Permanent(format!("instance {id} not found")))?;
    if let PowerState::Failed(reason) = &instance.power {
        return Err(DriverError::Permanent(reason.clone()));
    }
    Ok(instance)
}

pub(super) fn wrong_state(id: &str, power: &PowerState, action: &str) -> DriverError {
    let state = match power {
        PowerState::Running => "running",
        PowerState::Stopped => "stopped",
        PowerState::Hibernated => "hibernated",
        PowerState::Missing => "missing",
        PowerState::Failed(_) => "failed",
    };
    DriverError::Permanent(format!("instance {id} is {state} and cannot be {action}"))
}
