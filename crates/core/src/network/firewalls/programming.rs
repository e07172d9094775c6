//! Programming machines: the packet rules a machine gets from its own rules and its firewalls', and the
//! jobs that send them to the driver whenever either changes.

use std::collections::HashMap;

use barrack_api::instances::SecurityRule;
use barrack_compute::PacketRule;
use barrack_store::Tx;
use barrack_store::firewalls::{self};
use barrack_store::instances::RuleRow;

use super::{PROGRAM_JOB_KIND, ProgramJob, firewall_rule_view};
use crate::network::{ValidRule, valid_rule_of};
use crate::platform::jobs::{NewJob, enqueue};
use crate::{Error, Result};

/// The driver's form of a rule.
pub fn packet_rule(rule: &ValidRule) -> PacketRule {
    PacketRule {
        direction: rule.direction.clone(),
        ethertype: rule.ethertype.clone(),
        protocol: rule.protocol.clone(),
        port_range_min: rule.port_range_min,
        port_range_max: rule.port_range_max,
        remote_ip_prefix: rule.remote_ip_prefix.clone(),
    }
}

/// The set the driver programs from an instance's effective rules: each distinct rule once, in order (the
/// same rule from two sources allows nothing more).
pub fn packet_rules(rules: &[(String, RuleRow)]) -> Vec<PacketRule> {
    let mut set: Vec<PacketRule> = Vec::with_capacity(rules.len());
    for (_, row) in rules {
        let rule = packet_rule(&valid_rule_of(row));
        if !set.contains(&rule) {
            set.push(rule);
        }
    }
    set
}

/// The rules that firewalls contribute to each of several instances (as read with the instances'
/// children), as shown in instance details; the instance's own rules come first, from the instance.
pub fn firewall_rules_by_instance(
    rows: Vec<(String, String, RuleRow)>,
) -> HashMap<String, Vec<SecurityRule>> {
    let mut rules: HashMap<String, Vec<SecurityRule>> = HashMap::new();
    for (instance, firewall, rule) in rows {
        let view = firewall_rule_view(&firewall, &rule.id, &valid_rule_of(&rule));
        rules.entry(instance).or_default().push(view);
    }
    rules
}

/// Enqueues the job that programs an instance's effective rule set, inside the caller's transaction (poke
/// the runner after the commit).
pub async fn enqueue_program(
    tx: &mut Tx,
    instance_id: &str,
    cause: &str,
    max_attempts: i64,
    now: i64,
) -> Result<()> {
    let payload = serde_json::to_string(&ProgramJob {
        cause: cause.to_string(),
    })
    .map_err(Error::internal)?;
    let job = NewJob {
        kind: PROGRAM_JOB_KIND,
        resource_id: instance_id,
        payload,
        max_attempts,
    };
    enqueue(tx, job, now).await?;
    Ok(())
}

/// A machine was just made for the instance (created or restored): program its rules, if it has any.
pub async fn program_new_machine(
    tx: &mut Tx,
    instance_id: &str,
    max_attempts: i64,
    now: i64,
) -> Result<()> {
    if firewalls::has_rules_or_attachments(tx, instance_id).await? {
        enqueue_program(tx, instance_id, "new machine", max_attempts, now).await?;
    }
    Ok(())
}
