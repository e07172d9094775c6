//! What an instance looks like to its owner: details, lists, the hibernated summary, events, the deploy
//! answer, and the billing breakdown they show.

use barrack_api::catalog::Amount;
use barrack_api::instances::{
    BillingBreakdown, ComputeCharge, DataVolumeCharge, DeployedInstance, EventList, Features,
    GpuCharge, HibernatedSummary, Instance, InstanceBilling, InstanceList, InstanceQuery,
    InstanceWaitQuery, Specs, StorageCharge, VolumeCharge,
};
use barrack_api::labels::Lease;
use barrack_api::{Currency, PageQuery, PageRequest, Pagination, Tier};
use barrack_store::instances::{InstanceChildren, InstanceFilter, InstanceRow, RuleRow};
use barrack_store::leases::LeaseRow;
use barrack_store::volumes::VolumeRow;
use rust_decimal::Decimal;

use crate::accounts::Caller;
use crate::catalog::price;
use crate::compute::instances::{InstanceService, parse_state, volume_rate};
use crate::network::{rule_view, valid_rule_of};
use crate::platform::clock::format_ms;
use crate::platform::config::{Config, GpuModelConfig};
use crate::platform::countries;
use crate::platform::events::event_view;
use crate::platform::lifecycle::{BillingClass, InstanceState};
use crate::platform::money::display_rate;
use crate::{Error, Result};

/// Longest and default `timeout` of a wait for a state, seconds.
pub const MAX_WAIT_SECONDS: u32 = 300;
pub const DEFAULT_WAIT_SECONDS: u32 = 60;
/// How often a wait reads the instance.
pub const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

impl InstanceService {
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Instance> {
        let (row, children) = self
            .context
            .store
            .instance_with_children(caller.account_id(), id)
            .await?
            .filter(|(row, _)| row.status != InstanceState::Deleted.as_str())
            .ok_or_else(|| Error::not_found("Instance", id))?;
        Ok(self.views_of(vec![row], children)?.remove(0))
    }

    /// `GET /api/instances/{id}/?wait_for=STATE&timeout=S`: the instance once it is in `wait_for`, has
    /// come to rest elsewhere (ERROR, or a stable state after a transition seen while waiting: the
    /// operation ended otherwise), or the timeout passed. Reads the row every [`WAIT_POLL`]: a primary-key
    /// read, and what every replica sees alike, whichever one's worker moves the instance.
    pub async fn wait_for(
        &self,
        caller: &Caller,
        id: &str,
        query: InstanceWaitQuery,
    ) -> Result<Instance> {
        let Some(wanted) = query.wait_for.as_deref() else {
            if query.timeout.is_some() {
                return Err(Error::field("timeout", "timeout needs wait_for"));
            }
            return self.get(caller, id).await;
        };
        let wanted = InstanceState::parse(wanted)
            .ok_or_else(|| Error::field("wait_for", unknown_status(wanted)))?;
        let seconds = query.timeout.unwrap_or(DEFAULT_WAIT_SECONDS);
        if !(1..=MAX_WAIT_SECONDS).contains(&seconds) {
            return Err(Error::field(
                "timeout",
                format!("timeout must be between 1 and {MAX_WAIT_SECONDS} seconds"),
            ));
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds.into());
        let mut moved = false;
        loop {
            let instance = self.get(caller, id).await?;
            let state = InstanceState::parse(&instance.status);
            let reached = state == Some(wanted)
                || state == Some(InstanceState::Error)
                || (moved && state.is_some_and(InstanceState::is_stable));
            moved |= state.is_some_and(|s| !s.is_stable());
            let now = tokio::time::Instant::now();
            if reached || now >= deadline {
                return Ok(instance);
            }
            tokio::time::sleep(WAIT_POLL.min(deadline - now)).await;
        }
    }

    /// A page of the caller's instances; `labels` are the `?label=` filters, ANDed.
    pub async fn list(
        &self,
        caller: &Caller,
        query: InstanceQuery,
        labels: &[String],
    ) -> Result<InstanceList> {
        let page = page_of(query.page, query.limit)?;
        let labels = crate::platform::labels::selectors(labels)?;
        crate::platform::validate::catalog_filters(
            &self.context.config,
            query.region.as_deref(),
            query.gpu_model.as_deref(),
        )?;
        if let Some(status) = &query.status {
            // The valid values named are those a list accepts: every state but DELETED.
            let state = InstanceState::parse(status).ok_or_else(|| {
                let listed = InstanceState::LISTED.map(InstanceState::as_str);
                Error::field(
                    "status",
                    crate::platform::validate::unknown_status(status, &listed),
                )
            })?;
            // Gone from the API, as a GET of one says (404): a filter on them would always be empty.
            if state == InstanceState::Deleted {
                return Err(Error::field(
                    "status",
                    "Deleted instances are not listed; their events and billing records remain",
                ));
            }
        }
        let filter = InstanceFilter {
            status: query
                .status
                .as_deref()
                .and_then(InstanceState::parse)
                .map(|s| s.as_str().to_string()),
            region: query.region,
            gpu_model: query.gpu_model,
            name_contains: query.name,
            labels,
            include_deleted: false,
        };
        let (rows, total, children) = self
            .context
            .store
            .instance_page(caller.account_id(), &filter, page.offset(), page.limit)
            .await?;
        let instances = self.views_of(rows, children)?;
        Ok(InstanceList {
            instances,
            pagination: Pagination::new(page, total),
        })
    }

    /// `GET /api/instances/hibernated/`.
    pub async fn hibernated(&self, caller: &Caller) -> Result<HibernatedSummary> {
        let filter = InstanceFilter {
            status: Some("HIBERNATED".into()),
            ..Default::default()
        };
        let (rows, total) = self
            .context
            .store
            .instances(caller.account_id(), &filter, 0, 5)
            .await?;
        let currency = countries::currency_for(caller.account.country.as_deref());
        // What their open hibernation periods bill: none while the account's credit is out (depletion
        // closes them), and each at the rate it opened with.
        let mut hourly_cost = Decimal::ZERO;
        for rate in self
            .context
            .store
            .open_rates(caller.account_id(), "hibernation", currency.as_str())
            .await?
        {
            hourly_cost += crate::billing::stored_rate(&rate)?;
        }
        let recent = self.views(rows).await?;
        Ok(HibernatedSummary {
            count: total,
            hourly_cost: Amount(hourly_cost),
            currency,
            recent,
        })
    }

    /// `GET /api/instances/snapshot-eligible/`: ACTIVE instances.
    pub async fn snapshot_eligible(
        &self,
        caller: &Caller,
        page: PageQuery,
    ) -> Result<InstanceList> {
        self.list(
            caller,
            InstanceQuery {
                page: page.page,
                limit: page.limit,
                status: Some("ACTIVE".into()),
                ..Default::default()
            },
            &[],
        )
        .await
    }

    /// Events of one instance, or of the whole account.
    pub async fn events(
        &self,
        caller: &Caller,
        id: Option<&str>,
        page: PageQuery,
    ) -> Result<EventList> {
        if let Some(id) = id {
            self.context
                .store
                .instance(caller.account_id(), id)
                .await?
                .ok_or_else(|| Error::not_found("Instance", id))?;
        }
        let page = page_of(page.page, page.limit)?;
        let (rows, total) = self
            .context
            .store
            .events(caller.account_id(), id, page.offset(), page.limit)
            .await?;
        Ok(EventList {
            events: rows.into_iter().map(event_view).collect(),
            pagination: Pagination::new(page, total),
        })
    }

    /// The documented deploy answer for a new instance and the data volumes it starts with.
    pub(super) fn deployed(
        &self,
        row: InstanceRow,
        model: &GpuModelConfig,
        data: &[VolumeRow],
        currency: Currency,
        now: i64,
    ) -> DeployedInstance {
        let count = row.gpu_count as u32;
        let billing = billing_of(
            self.config(),
            model,
            count,
            (row.storage_gb as u32, &row.os_volume_type),
            data,
            (currency, BillingClass::Full),
        );
        DeployedInstance {
            instance_id: row.id,
            vm_name: row.vm_name,
            region: row.region,
            ip_address: None,
            ip_status: "pending".into(),
            billing,
            specs: specs_of_parts(
                &model.name,
                count,
                row.ram_gb,
                row.vcpus,
                row.storage_gb as u32,
            ),
            status: row.status,
            boot_source: row.boot_source,
            operating_system: row.operating_system,
            features: Features {
                startup_script_configured: row.startup_script.is_some(),
            },
            created_at: format_ms(now),
        }
    }

    /// Views of several instances, their rules, volumes and firewall rules read in one query.
    pub(super) async fn views(&self, rows: Vec<InstanceRow>) -> Result<Vec<Instance>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let children = self.context.store.instance_children(&ids).await?;
        self.views_of(rows, children)
    }

    fn views_of(
        &self,
        rows: Vec<InstanceRow>,
        children: InstanceChildren,
    ) -> Result<Vec<Instance>> {
        let mut rules: std::collections::HashMap<String, Vec<RuleRow>> =
            std::collections::HashMap::new();
        for (instance, rule) in children.rules {
            rules.entry(instance).or_default().push(rule);
        }
        let mut volumes: std::collections::HashMap<String, Vec<VolumeRow>> =
            std::collections::HashMap::new();
        for volume in children.volumes {
            if let Some(instance) = volume.instance_id.clone() {
                volumes.entry(instance).or_default().push(volume);
            }
        }
        // The effective rules: the instance's own, then those of its firewalls (`source` says which).
        let mut firewall_rules =
            crate::network::firewalls::firewall_rules_by_instance(children.firewall_rules);
        let mut labels = children.labels;
        let mut leases = children.leases;
        rows.into_iter()
            .map(|row| {
                let own = rules.remove(&row.id).unwrap_or_default();
                let attached = volumes.remove(&row.id).unwrap_or_default();
                let from_firewalls = firewall_rules.remove(&row.id).unwrap_or_default();
                let instance_labels = labels.remove(&row.id).unwrap_or_default();
                let lease = leases.remove(&row.id).map(|l| lease_view(&l));
                let mut view = self.view_with(row, &own, &attached)?;
                view.security_rules.extend(from_firewalls);
                view.labels = instance_labels;
                view.lease = lease;
                Ok(view)
            })
            .collect()
    }

    pub(super) fn view_with(
        &self,
        row: InstanceRow,
        rules: &[RuleRow],
        volumes: &[VolumeRow],
    ) -> Result<Instance> {
        let config = self.config();
        let currency = Currency::parse(&row.currency).unwrap_or(Currency::USD);
        let data: Vec<VolumeRow> = volumes
            .iter()
            .filter(|v| Some(&v.id) != row.boot_volume_id.as_ref())
            .cloned()
            .collect();
        let state = parse_state(&row.status)?;
        // Hibernated or on its way there: the hibernation rate; otherwise the full price, billed now or
        // once the instance runs (or is SHUTOFF) again.
        let class = match state {
            InstanceState::Hibernated | InstanceState::Hibernating => BillingClass::Hibernated,
            _ => BillingClass::Full,
        };
        let billing = match config.gpu_model(&row.gpu_model) {
            Some(model) => billing_of(
                config,
                model,
                row.gpu_count as u32,
                (row.storage_gb as u32, &row.os_volume_type),
                &data,
                (currency, class),
            ),
            None => {
                return Err(Error::internal(format!(
                    "instance {} has unknown model {}",
                    row.id, row.gpu_model
                )));
            }
        };
        Ok(Instance {
            specs: specs_of_parts(
                &row.gpu_model,
                row.gpu_count as u32,
                row.ram_gb,
                row.vcpus,
                row.storage_gb as u32,
            ),
            security_rules: rules
                .iter()
                .map(|r| rule_view(&r.id, &valid_rule_of(r)))
                .collect(),
            allowed_actions: state
                .allowed_actions()
                .into_iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            ip_status: if row.ip_address.is_some() {
                "assigned"
            } else {
                "pending"
            }
            .into(),
            instance_id: row.id,
            name: row.name,
            vm_name: row.vm_name,
            region: row.region,
            tier: Tier::parse(&row.tier).unwrap_or(Tier::Legacy),
            status: row.status,
            status_reason: row.status_reason,
            ip_address: row.ip_address,
            ssh_port: row.ssh_port.and_then(|port| u16::try_from(port).ok()),
            public_ip: row.public_ip,
            boot_source: row.boot_source,
            operating_system: row.operating_system,
            ssh_key_id: row.ssh_key_id,
            script_id: row.script_id,
            billing,
            features: Features {
                startup_script_configured: row.startup_script.is_some(),
            },
            created_at: format_ms(row.created_at),
            updated_at: format_ms(row.updated_at),
            labels: Default::default(),
            lease: None,
        })
    }
}

pub(crate) fn lease_view(lease: &LeaseRow) -> Lease {
    Lease {
        expires_at: format_ms(lease.expires_at),
        on_expiry: lease.on_expiry.clone(),
    }
}

fn page_of(page: Option<u32>, limit: Option<u32>) -> Result<PageRequest> {
    PageQuery { page, limit }
        .validate()
        .map_err(|(field, message)| Error::field(field, message))
}

/// The hourly billing breakdown of an instance, rounded for display as the docs show it. A hibernated
/// instance's GPUs and OS disk are not billed (its hibernation is, at the hibernation rate, which its
/// total adds to its data volumes).
pub fn billing_of(
    config: &Config,
    model: &GpuModelConfig,
    count: u32,
    (os_size_gb, os_type): (u32, &str),
    data_volumes: &[VolumeRow],
    (currency, class): (Currency, BillingClass),
) -> InstanceBilling {
    let (gpu, os, hibernation) = if class == BillingClass::Hibernated {
        let hibernation = price(&config.billing.hibernation_prices, currency);
        (Decimal::ZERO, Decimal::ZERO, hibernation)
    } else {
        let gpu = price(&model.prices, currency) * Decimal::from(count);
        let os = volume_rate(config, os_type, os_size_gb, currency);
        (gpu, os, Decimal::ZERO)
    };
    let data: Vec<(Decimal, DataVolumeCharge)> = data_volumes
        .iter()
        .map(|v| {
            let rate = volume_rate(config, &v.volume_type, v.size_gb as u32, currency);
            let charge = DataVolumeCharge {
                volume_id: v.id.clone(),
                name: v.name.clone(),
                size_gb: v.size_gb as u32,
                volume_type: v.volume_type.clone(),
                hourly_rate: Amount(display_rate(rate)),
            };
            (rate, charge)
        })
        .collect();
    let data_total: Decimal = data.iter().map(|(rate, _)| *rate).sum();
    InstanceBilling {
        breakdown: BillingBreakdown {
            compute: ComputeCharge {
                gpu: GpuCharge {
                    model: model.name.clone(),
                    count,
                    hourly_rate: Amount(display_rate(gpu)),
                },
            },
            storage: StorageCharge {
                os_volume: VolumeCharge {
                    size_gb: os_size_gb,
                    volume_type: os_type.to_string(),
                    hourly_rate: Amount(display_rate(os)),
                },
                data_volumes: data.into_iter().map(|(_, charge)| charge).collect(),
                data_volumes_total: Amount(display_rate(data_total)),
            },
        },
        total_hourly_rate: Amount(display_rate(gpu + os + hibernation + data_total)),
        currency,
    }
}

fn specs_of_parts(model: &str, count: u32, ram_gb: i64, vcpus: i64, storage_gb: u32) -> Specs {
    Specs {
        gpu_type: model.to_string(),
        gpu_count: count,
        ram_gb: ram_gb as u32,
        vcpus: vcpus as u32,
        storage_gb,
    }
}

/// A status no instance has, said with those it can have.
fn unknown_status(status: &str) -> String {
    crate::platform::validate::unknown_status(
        status,
        &InstanceState::ALL.map(InstanceState::as_str),
    )
}
