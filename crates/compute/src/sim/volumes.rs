//! Volumes and snapshots: create, resize, attach and detach, delete, and snapshots of an instance's disk.

use crate::DriverError;

use super::machines::{usable, wrong_state};
use super::{Power, State, Volume};

impl State {
    pub(super) fn create_volume(&mut self, id: &str, region: &str, size_gb: u32) {
        self.volumes.entry(id.to_owned()).or_insert_with(|| Volume {
            region: region.to_owned(),
            size_gb,
            attached_to: None,
        });
    }

    pub(super) fn delete_volume(&mut self, id: &str) -> Result<(), DriverError> {
        if let Some(Volume {
            attached_to: Some(instance_id),
            ..
        }) = self.volumes.get(id)
        {
            return Err(DriverError::Permanent(format!(
                "volume {id} is attached to instance {instance_id}"
            )));
        }
        self.volumes.remove(id);
        Ok(())
    }

    pub(super) fn resize_volume(&mut self, id: &str, size_gb: u32) -> Result<(), DriverError> {
        let volume = self
            .volumes
            .get_mut(id)
            .ok_or_else(|| volume_not_found(id))?;
        if size_gb < volume.size_gb {
            return Err(DriverError::Permanent(format!(
                "volume {id} is {} GB and cannot shrink to {size_gb} GB",
                volume.size_gb
            )));
        }
        volume.size_gb = size_gb;
        Ok(())
    }

    pub(super) fn attach_volume(
        &mut self,
        instance_id: &str,
        volume_id: &str,
    ) -> Result<(), DriverError> {
        let volume = self
            .volumes
            .get(volume_id)
            .ok_or_else(|| volume_not_found(volume_id))?;
        match &volume.attached_to {
            Some(attached) if attached == instance_id => return Ok(()),
            Some(other) => {
                return Err(DriverError::Permanent(format!(
                    "volume {volume_id} is attached to instance {other}"
                )));
            }
            None => {}
        }
        let (_, instance) = usable(self, instance_id)?;
        if instance.power != Power::Running {
            return Err(wrong_state(instance_id, instance.power, "given a volume"));
        }
        let region = usize::from(instance.region);
        let volume = self
            .volumes
            .get_mut(volume_id)
            .ok_or_else(|| volume_not_found(volume_id))?;
        if *self.regions[region] != *volume.region {
            return Err(DriverError::Permanent(format!(
                "volume {volume_id} is in {} but instance {instance_id} is in {}",
                volume.region, self.regions[region]
            )));
        }
        volume.attached_to = Some(instance_id.to_owned());
        Ok(())
    }

    /// Leaves a volume attached to another instance alone: this call may be a stale retry.
    pub(super) fn detach_volume(&mut self, instance_id: &str, volume_id: &str) {
        if let Some(volume) = self.volumes.get_mut(volume_id)
            && volume.attached_to.as_deref() == Some(instance_id)
        {
            volume.attached_to = None;
        }
    }

    /// An existing snapshot is enough, even if its instance has gone since: this call may be a retry.
    pub(super) fn create_snapshot(
        &mut self,
        instance_id: &str,
        snapshot_id: &str,
    ) -> Result<(), DriverError> {
        if !self.snapshots.contains(snapshot_id) {
            usable(self, instance_id)?;
            self.snapshots.insert(snapshot_id.to_owned());
        }
        Ok(())
    }
}

pub(super) fn volume_not_found(id: &str) -> DriverError {
    DriverError::Permanent(format!("volume {id} not found"))
}
