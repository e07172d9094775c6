//! What a volume looks like to its owner: lists, details, the volume types on offer.

use std::collections::HashMap;

use barrack_api::catalog::Amount;
use barrack_api::volumes::{
    Volume, VolumeAttachment, VolumeList, VolumeQuery, VolumeType, VolumeTypeList,
};
use barrack_api::{Currency, PageQuery, Pagination, Tier};
use barrack_store::instances::InstanceRow;
use barrack_store::volumes::{VolumeFilter, VolumeRow};

use super::{DEFAULT_NAME_PREFIX, VolumeService, VolumeState, hourly_rate, next_volume_name};
use crate::accounts::Caller;
use crate::platform::clock::format_ms;
use crate::platform::labels::{self, Labelled};
use crate::platform::money::display_rate;
use crate::{Error, Result};

impl VolumeService {
    /// `GET /api/volumes/`.
    pub async fn list(
        &self,
        caller: &Caller,
        query: VolumeQuery,
        label_filters: &[String],
    ) -> Result<VolumeList> {
        let page = PageQuery {
            page: query.page,
            limit: query.limit,
        }
        .validate()
        .map_err(|(field, message)| Error::field(field, message))?;
        let status = match &query.status {
            Some(status) => Some(
                VolumeState::parse(status)
                    .ok_or_else(|| {
                        Error::field(
                            "status",
                            crate::platform::validate::unknown_status(
                                status,
                                &VolumeState::ALL.map(VolumeState::as_str),
                            ),
                        )
                    })?
                    .as_str()
                    .to_string(),
            ),
            None => None,
        };
        crate::platform::validate::catalog_filters(
            &self.context.config,
            query.region.as_deref(),
            None,
        )?;
        let filter = VolumeFilter {
            status,
            region: query.region,
            labels: labels::selectors(label_filters)?,
        };
        let store = &self.context.store;
        let (rows, total) = store
            .volumes(caller.account_id(), &filter, page.offset(), page.limit)
            .await?;
        let mut instances = HashMap::new();
        let mut volumes = Vec::with_capacity(rows.len());
        for row in rows {
            volumes.push(self.view(row, &mut instances).await?);
        }
        labels::fill(store, Labelled::Volume, &mut volumes).await?;
        let taken = store
            .volume_names_starting_with(caller.account_id(), DEFAULT_NAME_PREFIX)
            .await?;
        Ok(VolumeList {
            volumes,
            pagination: Pagination::new(page, total),
            next_volume_name: next_volume_name(&taken),
        })
    }

    /// `GET /api/volumes/{id}/`.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Volume> {
        let row = self.owned(caller, id).await?;
        let mut volume = [self.view(row, &mut HashMap::new()).await?];
        labels::fill(&self.context.store, Labelled::Volume, &mut volume).await?;
        let [volume] = volume;
        Ok(volume)
    }

    /// `GET /api/volumes/types/`: every configured type with its tier, prices and size limits.
    pub fn types(&self) -> VolumeTypeList {
        let limits = &self.config().volumes;
        VolumeTypeList {
            volume_types: self
                .config()
                .volume_types
                .iter()
                .map(|t| VolumeType {
                    name: t.name.clone(),
                    tier: t.tier,
                    description: t.description.clone(),
                    prices: t.prices.iter().map(|(c, d)| (*c, Amount(d.0))).collect(),
                    unit: "per TB per hour".into(),
                    minimum_size_gb: limits.minimum_size_gb,
                    minimum_bootable_size_gb: limits.minimum_bootable_size_gb,
                    maximum_size_gb: limits.maximum_size_gb,
                })
                .collect(),
        }
    }

    /// The wire form; `instances` caches the attached instances of a page.
    pub(super) async fn view(
        &self,
        row: VolumeRow,
        instances: &mut HashMap<String, Option<InstanceRow>>,
    ) -> Result<Volume> {
        let attachment = match &row.instance_id {
            Some(id) => {
                if !instances.contains_key(id) {
                    let instance = self.context.store.instance_by_id(id).await?;
                    instances.insert(id.clone(), instance);
                }
                instances[id].as_ref().map(|i| VolumeAttachment {
                    instance_id: i.id.clone(),
                    instance_name: i.name.clone(),
                    instance_status: i.status.clone(),
                    boot_volume: i.boot_volume_id.as_deref() == Some(row.id.as_str()),
                })
            }
            None => None,
        };
        let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
        Ok(Volume {
            hourly_rate: Amount(display_rate(hourly_rate(
                self.config(),
                &row.volume_type,
                row.size_gb as u32,
                currency,
            ))),
            currency,
            tier: Tier::parse(&row.tier).unwrap_or(Tier::Legacy),
            size_gb: row.size_gb as u32,
            attachment,
            id: row.id,
            name: row.name,
            region: row.region,
            volume_type: row.volume_type,
            bootable: row.bootable,
            image_name: row.image_name,
            status: row.status,
            status_reason: row.status_reason,
            source_volume_id: row.source_volume_id,
            created_at: format_ms(row.created_at),
            updated_at: format_ms(row.updated_at),
            labels: Default::default(),
        })
    }
}
