//! What deploy asks of volumes: the boot volume and existing volumes it attaches, checked before its
//! transaction; the new volumes it creates; and the writes it makes inside its transaction.

use std::collections::BTreeSet;

use barrack_api::instances::NewVolumeRequest;
use barrack_store::Tx;
use barrack_store::volumes::{self, VolumeChange, VolumeRow};

use super::{
    VolumeJobAction, VolumeService, VolumeState, check_ids, check_type_tier, enqueue_job,
    insert_volume, parse_state, record_event, unknown_value,
};
use crate::accounts::Caller;
use crate::platform::config::Config;
use crate::platform::countries;
use crate::platform::ids::{IdKind, new_id};
use crate::platform::validate::{Validator, check_label};
use crate::{Error, Result};

impl VolumeService {
    /// Deploy with `boot_from_volume`: the caller's bootable, `available` volume `id` in `region`
    /// (404 unknown, 400 `volume_id` not bootable or elsewhere, 409 in use). Reserve it with
    /// [`attach_at_deploy`] in the deploy transaction.
    pub async fn boot_volume_for_deploy(
        &self,
        caller: &Caller,
        id: &str,
        region: &str,
    ) -> Result<VolumeRow> {
        let row = self.owned(caller, id.trim()).await?;
        let mut v = Validator::new();
        v.check(
            row.bootable,
            "volume_id",
            format!("Volume '{}' is not bootable", row.id),
        );
        v.check(
            row.region == region,
            "volume_id",
            format!("Volume '{}' is in {}, not {region}", row.id, row.region),
        );
        v.finish()?;
        check_free_for_deploy(&row)?;
        Ok(row)
    }

    /// Deploy with `existing_volumes`: the caller's `available` volumes in `region`, in the order given
    /// (400 for duplicates or another region, naming `existing_volumes[i]`; 404 unknown; 409 in use).
    /// Reserve each with [`attach_at_deploy`] in the deploy transaction.
    pub async fn existing_volumes_for_deploy(
        &self,
        caller: &Caller,
        ids: &[String],
        region: &str,
    ) -> Result<Vec<VolumeRow>> {
        let ids: Vec<String> = ids.iter().map(|i| i.trim().to_string()).collect();
        if ids.is_empty() {
            return Ok(vec![]);
        }
        check_ids(&ids, "existing_volumes")?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in &ids {
            rows.push(self.owned(caller, id).await?);
        }
        let mut v = Validator::new();
        for (i, row) in rows.iter().enumerate() {
            v.check(
                row.region == region,
                &format!("existing_volumes[{i}]"),
                format!("Volume '{}' is in {}, not {region}", row.id, row.region),
            );
        }
        v.finish()?;
        for row in &rows {
            check_free_for_deploy(row)?;
        }
        Ok(rows)
    }

    /// Deploy with `volumes`: the field checks of new data volumes, added to the deploy's validator under
    /// `volumes[i].name`, `volumes[i].size` and `volumes[i].volume_type` (type of the caller's tier).
    pub fn check_new_volumes(
        &self,
        caller: &Caller,
        v: &mut Validator,
        requests: &[NewVolumeRequest],
    ) {
        let config = self.config();
        let limits = &config.volumes;
        let mut names = BTreeSet::new();
        for (i, request) in requests.iter().enumerate() {
            let field = |f: &str| format!("volumes[{i}].{f}");
            let name = request.name.trim();
            check_label(v, &field("name"), name);
            v.check(
                names.insert(name.to_string()),
                &field("name"),
                format!("The name '{name}' is given to two volumes"),
            );
            v.check(
                (limits.minimum_size_gb..=limits.maximum_size_gb).contains(&request.size),
                &field("size"),
                format!(
                    "Volume size must be between {} and {} GB",
                    limits.minimum_size_gb, limits.maximum_size_gb
                ),
            );
            match config.volume_type(&request.volume_type) {
                None => v.add(
                    &field("volume_type"),
                    unknown_value(
                        "volume type",
                        &request.volume_type,
                        config.volume_types.iter().map(|t| &t.name),
                    ),
                ),
                Some(t) => check_type_tier(v, &field("volume_type"), t, caller.tier),
            }
        }
    }

    /// Deploy with `volumes`: the rows of new data volumes for instance `instance_id`, to write with
    /// [`create_at_deploy`] (checked first with [`VolumeService::check_new_volumes`]).
    pub fn new_volume_rows(
        &self,
        caller: &Caller,
        requests: &[NewVolumeRequest],
        region: &str,
        instance_id: &str,
        now: i64,
    ) -> Vec<VolumeRow> {
        let currency = countries::currency_for(caller.account.country.as_deref());
        requests
            .iter()
            .map(|request| VolumeRow {
                id: new_id(IdKind::Volume),
                account_id: caller.account_id().to_string(),
                name: request.name.trim().to_string(),
                tier: caller.tier.as_str().into(),
                region: region.to_string(),
                volume_type: request.volume_type.clone(),
                size_gb: i64::from(request.size),
                bootable: false,
                image_name: None,
                source_volume_id: None,
                instance_id: Some(instance_id.to_string()),
                status: VolumeState::Creating.as_str().into(),
                status_reason: None,
                currency: currency.as_str().into(),
                generation: 1,
                created_at: now,
                updated_at: now,
                deleted_at: None,
            })
            .collect()
    }
}

/// A volume deploy may take: detached and `available` (409 otherwise).
fn check_free_for_deploy(row: &VolumeRow) -> Result<()> {
    if let Some(instance) = &row.instance_id {
        return Err(Error::conflict(
            "RESOURCE_IN_USE",
            format!("Volume '{}' is attached to instance {instance}", row.id),
        ));
    }
    if row.status != VolumeState::Available.as_str() {
        return Err(Error::conflict(
            "INVALID_STATE",
            format!(
                "Volume '{}' is {}; only an available volume can be used at deploy",
                row.id, row.status
            ),
        ));
    }
    Ok(())
}

/// Deploy: records `volume` (read by a `*_for_deploy` check) as `in-use` by the new instance
/// `instance_id`, with its event, inside the deploy transaction. False when the volume changed since it
/// was read (the caller rolls back and answers 409, or reads again).
pub async fn attach_at_deploy(
    config: &Config,
    tx: &mut Tx,
    volume: &VolumeRow,
    instance_id: &str,
    actor: &str,
    now: i64,
) -> Result<bool> {
    let change = VolumeChange {
        status: Some(VolumeState::InUse.as_str().into()),
        status_reason: Some(None),
        instance_id: Some(Some(instance_id.to_string())),
        ..Default::default()
    };
    if !volumes::update(tx, &volume.id, volume.generation, &change, now).await? {
        return Ok(false);
    }
    record_event(
        config,
        tx,
        volume,
        Some(parse_state(&volume.status)?),
        VolumeState::InUse,
        actor,
        &format!("attached at deploy of {instance_id}"),
        volume.generation + 1,
        now,
    )
    .await?;
    Ok(true)
}

/// Deploy: writes a new data volume (from [`VolumeService::new_volume_rows`]), its event and its create
/// job inside the deploy transaction. The job ends with the volume `in-use` by its instance. A name the
/// account already uses is 409 `DUPLICATE_NAME`; a taken id is replaced (read `row.id` after).
pub async fn create_at_deploy(
    config: &Config,
    tx: &mut Tx,
    row: &mut VolumeRow,
    actor: &str,
    max_attempts: i64,
    now: i64,
) -> Result<()> {
    insert_volume(tx, row).await?;
    let cause = format!(
        "create requested at deploy of {}",
        row.instance_id.as_deref().unwrap_or("an instance")
    );
    record_event(
        config,
        tx,
        row,
        None,
        VolumeState::Creating,
        actor,
        &cause,
        row.generation,
        now,
    )
    .await?;
    enqueue_job(
        tx,
        &row.id,
        VolumeJobAction::Create,
        row.generation,
        None,
        max_attempts,
        now,
    )
    .await
}
