//! Attaching firewalls to instances and detaching them, and which instances a firewall can take.

use std::collections::HashMap;

use barrack_api::firewalls::{
    AvailableInstance, AvailableInstanceList, FirewallAttachmentAction, FirewallAttachmentChange,
    InstanceFirewall, InstanceFirewallList, InstanceIdsRequest,
};
use barrack_api::instances::SecurityRule;
use barrack_api::{PageQuery, Pagination};
use barrack_store::firewalls::{self, AttachmentRow};
use barrack_store::instances::{InstanceFilter, InstanceRow};

use super::{
    AttachmentState, DETACHED, FirewallService, FirewallState, changing, check_ids,
    enqueue_program, firewall_rule_view, record_event,
};
use crate::accounts::{Caller, actor};
use crate::network::valid_rule_of;
use crate::platform::clock::format_ms;
use crate::platform::idempotency;
use crate::platform::lifecycle::InstanceState;
use crate::platform::validate::Validator;
use crate::{Error, Result};

impl FirewallService {
    /// `POST /api/firewalls/{id}/attach/`: the firewall must be `SUCCESS`, each instance the caller's,
    /// in the firewall's region (400 on `instance_ids[i]`) and `ACTIVE` (409 `INVALID_STATE` naming its
    /// state). All are attached or none. An attachment in `ERROR` is attached again.
    pub async fn attach(
        &self,
        caller: &Caller,
        id: &str,
        request: InstanceIdsRequest,
    ) -> Result<FirewallAttachmentChange> {
        let ids = check_ids(&request.instance_ids)?;
        'attempt: for _ in 0..5 {
            let row = self.owned(caller, id).await?;
            if row.status != FirewallState::Success.as_str() {
                return Err(Error::conflict(
                    "INVALID_STATE",
                    format!(
                        "Cannot attach firewall '{}' in state {}; it must be SUCCESS",
                        row.id, row.status
                    ),
                ));
            }
            let instances = self.instances(caller, &ids).await?;
            let mut v = Validator::new();
            for (i, instance) in instances.iter().enumerate() {
                v.check(
                    instance.region == row.region,
                    &format!("instance_ids[{i}]"),
                    format!(
                        "Instance {} is in {} but firewall {} is in {}",
                        instance.id, instance.region, row.id, row.region
                    ),
                );
            }
            v.finish()?;
            for instance in &instances {
                if instance.status != InstanceState::Active.as_str() {
                    return Err(Error::conflict(
                        "INVALID_STATE",
                        format!(
                            "Cannot attach a firewall to instance {} in state {}; it must be ACTIVE",
                            instance.id, instance.status
                        ),
                    ));
                }
            }
            let now = self.now();
            let mut tx = self.store().begin().await?;
            if !firewalls::update(&mut tx, &row.id, row.generation, &Default::default(), now)
                .await?
            {
                continue;
            }
            let existing: HashMap<String, AttachmentRow> =
                firewalls::attachments_of_firewall(&mut tx, &row.id)
                    .await?
                    .into_iter()
                    .map(|a| (a.instance_id.clone(), a))
                    .collect();
            let mut done = Vec::with_capacity(instances.len());
            for instance in &instances {
                match existing.get(&instance.id) {
                    None => {
                        let attachment = AttachmentRow {
                            firewall_id: row.id.clone(),
                            instance_id: instance.id.clone(),
                            account_id: row.account_id.clone(),
                            status: AttachmentState::Attaching.as_str().into(),
                            status_reason: None,
                            generation: 1,
                            created_at: now,
                            updated_at: now,
                        };
                        firewalls::insert_attachment(&mut tx, &attachment).await?;
                    }
                    Some(a) if a.status == AttachmentState::Error.as_str() => {
                        let attaching = AttachmentState::Attaching.as_str();
                        if !firewalls::update_attachment(&mut tx, a, attaching, None, now).await? {
                            continue 'attempt;
                        }
                    }
                    Some(a) => {
                        return Err(Error::conflict(
                            "INVALID_STATE",
                            format!(
                                "Firewall '{}' is already attached to instance {} (attachment {})",
                                row.id, instance.id, a.status
                            ),
                        ));
                    }
                }
                let cause = format!("firewall {} attached", row.id);
                enqueue_program(&mut tx, &instance.id, &cause, self.max_attempts(), now).await?;
                done.push(FirewallAttachmentAction {
                    instance_id: instance.id.clone(),
                    status: AttachmentState::Attaching.as_str().into(),
                    target_status: AttachmentState::Success.as_str().into(),
                });
            }
            record_event(
                &mut tx,
                &row,
                "attachment_changed",
                (None, Some(AttachmentState::Attaching.as_str())),
                &actor(caller),
                &format!("attach to {} requested", ids.join(", ")),
                row.generation + 1,
                now,
            )
            .await?;
            let change = FirewallAttachmentChange {
                firewall_id: row.id,
                action: "attach".into(),
                instances: done,
            };
            idempotency::commit(tx, &change).await?;
            self.context.work.notify_one();
            return Ok(change);
        }
        Err(changing())
    }

    /// `POST /api/firewalls/{id}/detach/`: each instance must have the firewall attached (`SUCCESS`, or
    /// `ERROR` to give up on a failed attachment), in any state of its own. All are detached or none.
    pub async fn detach(
        &self,
        caller: &Caller,
        id: &str,
        request: InstanceIdsRequest,
    ) -> Result<FirewallAttachmentChange> {
        let ids = check_ids(&request.instance_ids)?;
        'attempt: for _ in 0..5 {
            let row = self.owned(caller, id).await?;
            let instances = self.instances(caller, &ids).await?;
            let now = self.now();
            let mut tx = self.store().begin().await?;
            if !firewalls::update(&mut tx, &row.id, row.generation, &Default::default(), now)
                .await?
            {
                continue;
            }
            let existing: HashMap<String, AttachmentRow> =
                firewalls::attachments_of_firewall(&mut tx, &row.id)
                    .await?
                    .into_iter()
                    .map(|a| (a.instance_id.clone(), a))
                    .collect();
            let mut done = Vec::with_capacity(instances.len());
            for instance in &instances {
                let Some(attachment) = existing.get(&instance.id) else {
                    return Err(Error::conflict(
                        "INVALID_STATE",
                        format!(
                            "Firewall '{}' is not attached to instance {}",
                            row.id, instance.id
                        ),
                    ));
                };
                let state = AttachmentState::parse(&attachment.status);
                if !matches!(
                    state,
                    Some(AttachmentState::Success | AttachmentState::Error)
                ) {
                    return Err(Error::conflict(
                        "INVALID_STATE",
                        format!(
                            "Cannot detach firewall '{}' from instance {} while the attachment is {}; it must be SUCCESS or ERROR",
                            row.id, instance.id, attachment.status
                        ),
                    ));
                }
                let detaching = AttachmentState::Detaching.as_str();
                if !firewalls::update_attachment(&mut tx, attachment, detaching, None, now).await? {
                    continue 'attempt;
                }
                let cause = format!("firewall {} detached", row.id);
                enqueue_program(&mut tx, &instance.id, &cause, self.max_attempts(), now).await?;
                done.push(FirewallAttachmentAction {
                    instance_id: instance.id.clone(),
                    status: detaching.into(),
                    target_status: DETACHED.into(),
                });
            }
            record_event(
                &mut tx,
                &row,
                "attachment_changed",
                (None, Some(AttachmentState::Detaching.as_str())),
                &actor(caller),
                &format!("detach from {} requested", ids.join(", ")),
                row.generation + 1,
                now,
            )
            .await?;
            let change = FirewallAttachmentChange {
                firewall_id: row.id,
                action: "detach".into(),
                instances: done,
            };
            idempotency::commit(tx, &change).await?;
            self.context.work.notify_one();
            return Ok(change);
        }
        Err(changing())
    }

    /// `GET /api/firewalls/{id}/available-instances/`: the caller's ACTIVE instances in the firewall's
    /// region, flagged when the firewall is attached to them already.
    pub async fn available_instances(
        &self,
        caller: &Caller,
        id: &str,
        page: PageQuery,
    ) -> Result<AvailableInstanceList> {
        let row = self.owned(caller, id).await?;
        let page = page
            .validate()
            .map_err(|(field, message)| Error::field(field, message))?;
        let filter = InstanceFilter {
            status: Some(InstanceState::Active.as_str().into()),
            region: Some(row.region.clone()),
            ..Default::default()
        };
        let store = self.store();
        let (instances, total) = store
            .instances(caller.account_id(), &filter, page.offset(), page.limit)
            .await?;
        let attached: HashMap<String, String> = store
            .firewall_instances(&row.id)
            .await?
            .into_iter()
            .map(|a| (a.attachment.instance_id, a.attachment.status))
            .collect();
        Ok(AvailableInstanceList {
            instances: instances
                .into_iter()
                .map(|i| {
                    let status = attached.get(&i.id).cloned();
                    AvailableInstance {
                        attached: status.is_some(),
                        attachment_status: status,
                        instance_id: i.id,
                        name: i.name,
                        region: i.region,
                        status: i.status,
                        ip_address: i.ip_address,
                    }
                })
                .collect(),
            firewall_id: row.id,
            region: row.region,
            pagination: Pagination::new(page, total),
        })
    }

    /// `GET /api/instances/{id}/firewalls/`: the firewalls attached to an instance, with their rules.
    pub async fn of_instance(
        &self,
        caller: &Caller,
        instance_id: &str,
    ) -> Result<InstanceFirewallList> {
        let instance = self.instance(caller, instance_id).await?;
        let store = self.store();
        let attached = store.instance_firewalls(&instance.id).await?;
        let ids: Vec<String> = attached.iter().map(|(f, _)| f.id.clone()).collect();
        let mut rules: HashMap<String, Vec<SecurityRule>> = HashMap::new();
        for (firewall, rule) in store.rules_of_firewalls(&ids).await? {
            let view = firewall_rule_view(&firewall, &rule.id, &valid_rule_of(&rule));
            rules.entry(firewall).or_default().push(view);
        }
        Ok(InstanceFirewallList {
            instance_id: instance.id,
            firewalls: attached
                .into_iter()
                .map(|(firewall, attachment)| InstanceFirewall {
                    rules: rules.remove(&firewall.id).unwrap_or_default(),
                    firewall_id: firewall.id,
                    name: firewall.name,
                    description: firewall.description,
                    firewall_status: firewall.status,
                    status: attachment.status,
                    status_reason: attachment.status_reason,
                    attached_at: format_ms(attachment.created_at),
                })
                .collect(),
        })
    }

    /// The instance of the account, unless deleted; 404 otherwise.
    async fn instance(&self, caller: &Caller, id: &str) -> Result<InstanceRow> {
        self.store()
            .instance(caller.account_id(), id)
            .await?
            .filter(|i| i.status != InstanceState::Deleted.as_str())
            .ok_or_else(|| Error::not_found("Instance", id))
    }

    async fn instances(&self, caller: &Caller, ids: &[String]) -> Result<Vec<InstanceRow>> {
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            rows.push(self.instance(caller, id).await?);
        }
        Ok(rows)
    }
}
