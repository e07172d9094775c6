//! Attaching volumes to and detaching them from a running instance.

use barrack_api::volumes::{VolumeAction, VolumeAttachmentChange, VolumeIdsRequest};
use barrack_store::instances::InstanceRow;
use barrack_store::volumes::VolumeRow;

use super::{VolumeJobAction, VolumeService, VolumeState, changing, check_ids, parse_state};
use crate::accounts::Caller;
use crate::platform::idempotency;
use crate::platform::lifecycle::InstanceState;
use crate::{Error, Result};

impl VolumeService {
    /// `POST /api/instances/{id}/attach-volumes/`: each volume must be `available` and in the instance's
    /// region, and the instance `ACTIVE`. All or none are attached.
    pub async fn attach(
        &self,
        caller: &Caller,
        instance_id: &str,
        request: VolumeIdsRequest,
    ) -> Result<VolumeAttachmentChange> {
        self.change_attachments(caller, instance_id, request, true)
            .await
    }

    /// `POST /api/instances/{id}/detach-volumes/`: each volume must be attached to the instance (`in-use`,
    /// or `error` to retry a failed operation), not its boot volume, and the instance `ACTIVE`.
    pub async fn detach(
        &self,
        caller: &Caller,
        instance_id: &str,
        request: VolumeIdsRequest,
    ) -> Result<VolumeAttachmentChange> {
        self.change_attachments(caller, instance_id, request, false)
            .await
    }

    async fn change_attachments(
        &self,
        caller: &Caller,
        instance_id: &str,
        request: VolumeIdsRequest,
        attach: bool,
    ) -> Result<VolumeAttachmentChange> {
        let ids: Vec<String> = request
            .volume_ids
            .iter()
            .map(|i| i.trim().to_string())
            .collect();
        check_ids(&ids, "volume_ids")?;
        let verb = if attach { "attach" } else { "detach" };
        let store = &self.context.store;
        let instance = store
            .instance(caller.account_id(), instance_id)
            .await?
            .filter(|i| i.status != InstanceState::Deleted.as_str())
            .ok_or_else(|| Error::not_found("Instance", instance_id))?;
        if instance.status != InstanceState::Active.as_str() {
            return Err(Error::conflict(
                "INVALID_STATE",
                format!(
                    "Cannot {verb} volumes {} an instance in state {}; it must be ACTIVE",
                    if attach { "to" } else { "from" },
                    instance.status
                ),
            ));
        }
        'attempt: for _ in 0..5 {
            let mut rows = Vec::with_capacity(ids.len());
            for id in &ids {
                rows.push(self.owned(caller, id).await?);
            }
            let mut states = Vec::with_capacity(rows.len());
            for (i, row) in rows.iter().enumerate() {
                let state = parse_state(&row.status)?;
                if attach {
                    check_attachable(row, state, &instance, &format!("volume_ids[{i}]"))?;
                } else {
                    check_detachable(row, state, &instance)?;
                }
                states.push(state);
            }
            let (through, action) = if attach {
                (VolumeState::Attaching, VolumeJobAction::Attach)
            } else {
                (VolumeState::Detaching, VolumeJobAction::Detach)
            };
            let now = self.now();
            let mut tx = store.begin().await?;
            let mut done = Vec::with_capacity(rows.len());
            for (row, state) in rows.iter().zip(states) {
                let target = attach.then_some(instance.id.as_str());
                if !self
                    .begin_in(
                        &mut tx, caller, row, state, through, action, None, target, now,
                    )
                    .await?
                {
                    continue 'attempt; // dropping `tx` rolls back the ones already changed
                }
                done.push(VolumeAction {
                    volume_id: row.id.clone(),
                    action: verb.into(),
                    status: through.as_str().into(),
                    target_status: if attach {
                        VolumeState::InUse
                    } else {
                        VolumeState::Available
                    }
                    .as_str()
                    .into(),
                    size_gb: None,
                });
            }
            let change = VolumeAttachmentChange {
                instance_id: instance.id,
                action: verb.into(),
                volumes: done,
            };
            idempotency::commit(tx, &change).await?;
            self.context.work.notify_one();
            return Ok(change);
        }
        Err(changing())
    }
}

fn check_attachable(
    row: &VolumeRow,
    state: VolumeState,
    instance: &InstanceRow,
    field: &str,
) -> Result<()> {
    if row.region != instance.region {
        return Err(Error::field(
            field,
            format!(
                "Volume '{}' is in {} but instance {} is in {}",
                row.id, row.region, instance.id, instance.region
            ),
        ));
    }
    match &row.instance_id {
        Some(other) if *other == instance.id => Err(Error::conflict(
            "INVALID_STATE",
            format!(
                "Volume '{}' is already attached to instance {other} (state {state})",
                row.id
            ),
        )),
        Some(other) => Err(Error::conflict(
            "RESOURCE_IN_USE",
            format!("Volume '{}' is attached to instance {other}", row.id),
        )),
        None if state != VolumeState::Available => Err(Error::conflict(
            "INVALID_STATE",
            format!(
                "Cannot attach volume '{}' in state {state}; it must be available",
                row.id
            ),
        )),
        None => Ok(()),
    }
}

fn check_detachable(row: &VolumeRow, state: VolumeState, instance: &InstanceRow) -> Result<()> {
    if row.instance_id.as_deref() != Some(instance.id.as_str()) {
        return Err(Error::conflict(
            "INVALID_STATE",
            format!(
                "Volume '{}' is not attached to instance {}",
                row.id, instance.id
            ),
        ));
    }
    if instance.boot_volume_id.as_deref() == Some(row.id.as_str()) {
        return Err(Error::conflict(
            "RESOURCE_IN_USE",
            format!(
                "Volume '{}' is the boot volume of instance {} and cannot be detached",
                row.id, instance.id
            ),
        ));
    }
    if !matches!(state, VolumeState::InUse | VolumeState::Error) {
        return Err(Error::conflict(
            "INVALID_STATE",
            format!(
                "Cannot detach volume '{}' in state {state}; it must be in-use",
                row.id
            ),
        ));
    }
    Ok(())
}
