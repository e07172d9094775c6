//! Firewalls: named rule sets of an account in one region, attached to instances. They follow OpenStack
//! Neutron's security groups: rules are allow-lists, and an instance is programmed with its effective rule
//! set, the union of its own rules and those of every firewall attached to it.
//!
//! Like volumes, an API call validates, then writes the change, its event and the jobs that carry it out,
//! in one transaction. A firewall's creation is finished by a `firewall` job (CREATING → SUCCESS); every
//! change to what an instance should allow (attach, detach, a rule added to or removed from one of its
//! firewalls or from the instance itself, a new machine) enqueues a `security_rules` job for the instance,
//! which programs the whole effective set through the driver and then settles the instance's
//! attachments (ATTACHING → SUCCESS, DETACHING → gone, or ERROR with a reason); see `firewall_worker`.
//!
//! Attaching and detaching are in `attachments`; the packet rules a machine gets and the jobs that send
//! them are in `programming`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::platform::events::{self, NewEvent};
use barrack_api::firewalls::{
    CreateFirewallRequest, DeletedFirewall, Firewall, FirewallAttachment, FirewallList,
    FirewallQuery, FirewallSummary, Protocol, ProtocolList, RemovedFirewallRule,
};
use barrack_api::instances::{SecurityRule, SecurityRuleRequest};
use barrack_api::{PageQuery, Pagination, Tier};
use barrack_store::firewalls::{self, FirewallChange, FirewallFilter, FirewallRow};
use barrack_store::instances::RuleRow;
use barrack_store::{Store, Tx};
use serde::{Deserialize, Serialize};

use crate::accounts::{Caller, actor};
use crate::network::{
    PROTOCOLS, ValidRule, port_protocol, rule_view, valid_rule_of, validate_rule, validate_rules,
};
use crate::platform::clock::format_ms;
use crate::platform::idempotency;
use crate::platform::ids::{IdDraws, IdKind, name_taken_as_conflict, new_id};
use crate::platform::jobs::{NewJob, enqueue};
use crate::platform::labels::{self, Labelled};
use crate::platform::validate::{Validator, check_label};
use crate::{Context, Error, Result};

mod attachments;
mod programming;

pub use programming::{
    enqueue_program, firewall_rules_by_instance, packet_rule, packet_rules, program_new_machine,
};

/// Jobs that finish a firewall's creation (resource: the firewall).
pub const JOB_KIND: &str = "firewall";
/// Jobs that program an instance's effective rule set (resource: the instance).
pub const PROGRAM_JOB_KIND: &str = "security_rules";
/// Firewalls one account may hold.
pub const MAX_FIREWALLS_PER_ACCOUNT: u64 = 25;
/// Rules one firewall may hold.
pub const MAX_RULES_PER_FIREWALL: usize = 50;
/// Most instances one attach or detach request names.
pub const MAX_INSTANCES_PER_REQUEST: usize = 25;
pub const MAX_DESCRIPTION_CHARS: usize = 255;

/// The states of a firewall. `DELETED` firewalls are gone from the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FirewallState {
    Creating,
    Success,
    Error,
    Deleted,
}

impl FirewallState {
    pub const ALL: [FirewallState; 4] = [
        FirewallState::Creating,
        FirewallState::Success,
        FirewallState::Error,
        FirewallState::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FirewallState::Creating => "CREATING",
            FirewallState::Success => "SUCCESS",
            FirewallState::Error => "ERROR",
            FirewallState::Deleted => "DELETED",
        }
    }

    pub fn parse(s: &str) -> Option<FirewallState> {
        FirewallState::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for FirewallState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The states of an attachment. A detached firewall's attachment is gone (`DETACHED` is only ever a
/// target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachmentState {
    Attaching,
    Success,
    Error,
    Detaching,
}

impl AttachmentState {
    pub const ALL: [AttachmentState; 4] = [
        AttachmentState::Attaching,
        AttachmentState::Success,
        AttachmentState::Error,
        AttachmentState::Detaching,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentState::Attaching => "ATTACHING",
            AttachmentState::Success => "SUCCESS",
            AttachmentState::Error => "ERROR",
            AttachmentState::Detaching => "DETACHING",
        }
    }

    pub fn parse(s: &str) -> Option<AttachmentState> {
        AttachmentState::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for AttachmentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the target of a detach is called in answers.
pub const DETACHED: &str = "DETACHED";

/// What a `firewall` job carries: the operation and the generation the firewall had when it was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallJob {
    pub action: FirewallJobAction,
    pub generation: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallJobAction {
    Create,
}

/// What a `security_rules` job carries: why the instance is programmed (for operators reading jobs). The
/// job always programs the instance's rule set as it is when it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramJob {
    pub cause: String,
}

#[derive(Clone)]
pub struct FirewallService {
    context: Arc<Context>,
}

impl FirewallService {
    pub fn new(context: Arc<Context>) -> FirewallService {
        FirewallService { context }
    }

    fn store(&self) -> &Store {
        &self.context.store
    }

    fn now(&self) -> i64 {
        self.context.clock.now_ms()
    }

    fn max_attempts(&self) -> i64 {
        i64::from(self.context.config.jobs.max_attempts)
    }

    /// `POST /api/firewalls/`: fields (400, all at once), the region's tier (400), then the account's
    /// limit (409 `LIMIT_EXCEEDED`) and the name's uniqueness (409 `DUPLICATE_NAME`) as it is written.
    pub async fn create(
        &self,
        caller: &Caller,
        request: CreateFirewallRequest,
    ) -> Result<Firewall> {
        let config = &self.context.config;
        let name = request.name.trim().to_string();
        let description = request
            .description
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_string();
        let mut v = Validator::new();
        check_label(&mut v, "name", &name);
        labels::check_labels(&mut v, "labels", &request.labels);
        v.check(
            description.chars().count() <= MAX_DESCRIPTION_CHARS,
            "description",
            format!("Description must be {MAX_DESCRIPTION_CHARS} characters or less"),
        );
        crate::platform::validate::check_plain_text(&mut v, "description", &description, true);
        let region = config.region(&request.region);
        if region.is_none() {
            let valid: Vec<&str> = config.regions.iter().map(|r| r.name.as_str()).collect();
            v.add(
                "region",
                format!(
                    "Unknown region '{}'. Valid values: {}",
                    request.region,
                    valid.join(", ")
                ),
            );
        }
        v.check(
            request.rules.len() <= MAX_RULES_PER_FIREWALL,
            "rules",
            format!("At most {MAX_RULES_PER_FIREWALL} rules per firewall"),
        );
        let rules = validate_rules(&mut v, "rules", &request.rules);
        v.finish()?;
        let region = region.expect("validated");
        if region.tier != caller.tier {
            return Err(Error::field(
                "region",
                format!(
                    "{} is in the {} tier; your API key or session acts in the {} tier",
                    region.name, region.tier, caller.tier
                ),
            ));
        }

        let now = self.now();
        let mut row = FirewallRow {
            id: new_id(IdKind::Firewall),
            account_id: caller.account_id().to_string(),
            name,
            description,
            tier: caller.tier.as_str().into(),
            region: region.name.clone(),
            status: FirewallState::Creating.as_str().into(),
            status_reason: None,
            generation: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let store = self.store();
        let mut tx = store.begin().await?;
        firewalls::lock_account(&mut tx, caller.account_id()).await?;
        if firewalls::count_live(&mut tx, caller.account_id()).await? >= MAX_FIREWALLS_PER_ACCOUNT {
            return Err(Error::conflict(
                "LIMIT_EXCEEDED",
                format!("An account may hold at most {MAX_FIREWALLS_PER_ACCOUNT} firewalls"),
            ));
        }
        let mut draws = IdDraws::of("firewall");
        while !name_taken_as_conflict(
            firewalls::insert(&mut tx, &row).await,
            "A firewall",
            &row.name,
        )? {
            draws.taken()?;
            row.id = new_id(IdKind::Firewall);
        }
        let mut rule_views = Vec::with_capacity(rules.len());
        for (position, rule) in rules.iter().enumerate() {
            let rule_id = insert_rule(&mut tx, &row.id, rule, position as i64, now).await?;
            rule_views.push(firewall_rule_view(&row.id, &rule_id, rule));
        }
        labels::write(
            &mut tx,
            Labelled::Firewall,
            &row.id,
            &row.account_id,
            &request.labels,
        )
        .await?;
        record_event(
            &mut tx,
            &row,
            "created",
            (None, Some(FirewallState::Creating.as_str())),
            &actor(caller),
            "create requested",
            row.generation,
            now,
        )
        .await?;
        let payload = serde_json::to_string(&FirewallJob {
            action: FirewallJobAction::Create,
            generation: row.generation,
        })
        .map_err(Error::internal)?;
        let job = NewJob {
            kind: JOB_KIND,
            resource_id: &row.id,
            payload,
            max_attempts: self.max_attempts(),
        };
        enqueue(&mut tx, job, now).await?;
        // New: its rules are those just written, its labels those asked for, and it is attached nowhere.
        let created = firewall_view(row, rule_views, Vec::new(), request.labels);
        idempotency::commit(tx, &created).await?;
        self.context.work.notify_one();
        Ok(created)
    }

    /// `GET /api/firewalls/`: with rule and attachment counts.
    pub async fn list(
        &self,
        caller: &Caller,
        query: FirewallQuery,
        label_filters: &[String],
    ) -> Result<FirewallList> {
        let page = PageQuery {
            page: query.page,
            limit: query.limit,
        }
        .validate()
        .map_err(|(field, message)| Error::field(field, message))?;
        crate::platform::validate::catalog_filters(
            &self.context.config,
            query.region.as_deref(),
            None,
        )?;
        let filter = FirewallFilter {
            region: query.region,
            labels: labels::selectors(label_filters)?,
        };
        let store = self.store();
        let (rows, total) = store
            .firewalls(caller.account_id(), &filter, page.offset(), page.limit)
            .await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let rules: HashMap<String, i64> = store.rule_counts(&ids).await?.into_iter().collect();
        let attached: HashMap<String, i64> =
            store.attachment_counts(&ids).await?.into_iter().collect();
        let mut firewalls = rows
            .into_iter()
            .map(|row| {
                let rule_count = rules.get(&row.id).copied().unwrap_or(0) as u32;
                let attachment_count = attached.get(&row.id).copied().unwrap_or(0) as u32;
                firewall_summary(row, rule_count, attachment_count, Default::default())
            })
            .collect::<Vec<_>>();
        labels::fill(store, Labelled::Firewall, &mut firewalls).await?;
        Ok(FirewallList {
            firewalls,
            pagination: Pagination::new(page, total),
        })
    }

    /// `GET /api/firewalls/{id}/`: its rules and the instances it is attached to.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Firewall> {
        let row = self.owned(caller, id).await?;
        self.view(row).await
    }

    /// `DELETE /api/firewalls/{id}/`: 409 `RESOURCE_IN_USE` while attached to an instance, unless
    /// `force`, which detaches it from every instance first (their rules are reprogrammed without it).
    pub async fn delete(&self, caller: &Caller, id: &str, force: bool) -> Result<DeletedFirewall> {
        'attempt: for _ in 0..5 {
            let row = self.owned(caller, id).await?;
            let attached = self.store().firewall_instances(&row.id).await?;
            if !attached.is_empty() && !force {
                let ids: Vec<&str> = attached
                    .iter()
                    .map(|a| a.attachment.instance_id.as_str())
                    .collect();
                return Err(Error::conflict(
                    "RESOURCE_IN_USE",
                    format!(
                        "Firewall '{}' is attached to {} instance{} ({}); detach it first, or delete it with force=true",
                        row.id,
                        ids.len(),
                        if ids.len() == 1 { "" } else { "s" },
                        ids.join(", ")
                    ),
                ));
            }
            let now = self.now();
            let mut tx = self.store().begin().await?;
            let change = FirewallChange {
                status: Some(FirewallState::Deleted.as_str().into()),
                deleted_at: Some(now),
                ..Default::default()
            };
            if !firewalls::update(&mut tx, &row.id, row.generation, &change, now).await? {
                continue;
            }
            let live: BTreeSet<&str> = attached
                .iter()
                .map(|a| a.attachment.instance_id.as_str())
                .collect();
            let mut detached = Vec::new();
            for attachment in firewalls::attachments_of_firewall(&mut tx, &row.id).await? {
                if attachment.status != AttachmentState::Detaching.as_str()
                    && !firewalls::update_attachment(
                        &mut tx,
                        &attachment,
                        AttachmentState::Detaching.as_str(),
                        None,
                        now,
                    )
                    .await?
                {
                    continue 'attempt;
                }
                let cause = format!("firewall {} deleted", row.id);
                enqueue_program(
                    &mut tx,
                    &attachment.instance_id,
                    &cause,
                    self.max_attempts(),
                    now,
                )
                .await?;
                if live.contains(attachment.instance_id.as_str()) {
                    detached.push(attachment.instance_id);
                }
            }
            let cause = if detached.is_empty() {
                "delete requested".to_string()
            } else {
                format!("delete requested; detaching from {}", detached.join(", "))
            };
            record_event(
                &mut tx,
                &row,
                "status_changed",
                (Some(&row.status), Some(FirewallState::Deleted.as_str())),
                &actor(caller),
                &cause,
                row.generation + 1,
                now,
            )
            .await?;
            tx.commit().await.map_err(Error::internal)?;
            self.context.work.notify_one();
            return Ok(DeletedFirewall {
                firewall_id: row.id,
                status: FirewallState::Deleted.as_str().into(),
                detached_instance_ids: detached,
            });
        }
        Err(changing())
    }

    /// `POST /api/firewalls/{id}/rules/`: the rule reaches every instance the firewall is attached to.
    pub async fn add_rule(
        &self,
        caller: &Caller,
        id: &str,
        request: SecurityRuleRequest,
    ) -> Result<SecurityRule> {
        let mut v = Validator::new();
        let rule = validate_rule(&mut v, "", &request);
        v.finish()?;
        let rule = rule.expect("validated");
        for _ in 0..5 {
            let row = self.owned(caller, id).await?;
            let existing = self.store().firewall_rules(&row.id).await?;
            if existing.iter().any(|r| valid_rule_of(r).same_as(&rule)) {
                return Err(Error::conflict(
                    "DUPLICATE_RULE",
                    "The firewall already has this rule",
                ));
            }
            if existing.len() >= MAX_RULES_PER_FIREWALL {
                return Err(Error::conflict(
                    "LIMIT_EXCEEDED",
                    format!("At most {MAX_RULES_PER_FIREWALL} rules per firewall"),
                ));
            }
            let now = self.now();
            let mut tx = self.store().begin().await?;
            if !firewalls::update(&mut tx, &row.id, row.generation, &Default::default(), now)
                .await?
            {
                continue;
            }
            let position = firewalls::next_rule_position(&mut tx, &row.id).await?;
            let rule_id = insert_rule(&mut tx, &row.id, &rule, position, now).await?;
            let cause = format!("rule {rule_id} added");
            self.propagate(&mut tx, caller, &row, &cause, now).await?;
            let added = firewall_rule_view(&row.id, &rule_id, &rule);
            idempotency::commit(tx, &added).await?;
            self.context.work.notify_one();
            return Ok(added);
        }
        Err(changing())
    }

    /// `DELETE /api/firewalls/{id}/rules/{rule_id}/`: the instances the firewall is attached to lose it.
    pub async fn remove_rule(
        &self,
        caller: &Caller,
        id: &str,
        rule_id: &str,
    ) -> Result<RemovedFirewallRule> {
        for _ in 0..5 {
            let row = self.owned(caller, id).await?;
            let now = self.now();
            let mut tx = self.store().begin().await?;
            if !firewalls::update(&mut tx, &row.id, row.generation, &Default::default(), now)
                .await?
            {
                continue;
            }
            if !firewalls::delete_rule(&mut tx, &row.id, rule_id).await? {
                return Err(Error::not_found("Security rule", rule_id));
            }
            let cause = format!("rule {rule_id} removed");
            self.propagate(&mut tx, caller, &row, &cause, now).await?;
            tx.commit().await.map_err(Error::internal)?;
            self.context.work.notify_one();
            return Ok(RemovedFirewallRule {
                firewall_id: row.id,
                rule_id: rule_id.to_string(),
            });
        }
        Err(changing())
    }

    /// A rule change: its event, and a program job for every instance the firewall is attached to.
    async fn propagate(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        row: &FirewallRow,
        cause: &str,
        now: i64,
    ) -> Result<()> {
        let attachments = firewalls::attachments_of_firewall(tx, &row.id).await?;
        for attachment in &attachments {
            enqueue_program(tx, &attachment.instance_id, cause, self.max_attempts(), now).await?;
        }
        let cause = match attachments.len() {
            0 => cause.to_string(),
            n => format!(
                "{cause}; reprogramming {n} instance{}",
                if n == 1 { "" } else { "s" }
            ),
        };
        record_event(
            tx,
            row,
            "rules_changed",
            (Some(&row.status), Some(&row.status)),
            &actor(caller),
            &cause,
            row.generation + 1,
            now,
        )
        .await
    }

    /// `GET /api/firewalls/protocols/`: the IP protocols rules accept by name.
    pub fn protocols(&self) -> ProtocolList {
        ProtocolList {
            protocols: PROTOCOLS
                .iter()
                .map(|(name, number)| Protocol {
                    name: name.to_string(),
                    number: *number,
                    port_ranges: port_protocol(Some(name)),
                })
                .collect(),
            directions: vec!["ingress".into(), "egress".into()],
            ethertypes: vec!["IPv4".into(), "IPv6".into()],
        }
    }

    /// The firewall of the account, unless deleted; 404 otherwise.
    async fn owned(&self, caller: &Caller, id: &str) -> Result<FirewallRow> {
        self.store()
            .firewall(caller.account_id(), id.trim())
            .await?
            .filter(|f| f.status != FirewallState::Deleted.as_str())
            .ok_or_else(|| Error::not_found("Firewall", id))
    }

    async fn view(&self, row: FirewallRow) -> Result<Firewall> {
        let store = self.store();
        let rules: Vec<SecurityRule> = store
            .firewall_rules(&row.id)
            .await?
            .iter()
            .map(|r| firewall_rule_view(&row.id, &r.id, &valid_rule_of(r)))
            .collect();
        let labels = labels::of_one(store, Labelled::Firewall, &row.id).await?;
        let instances: Vec<FirewallAttachment> = store
            .firewall_instances(&row.id)
            .await?
            .into_iter()
            .map(|a| FirewallAttachment {
                instance_id: a.attachment.instance_id,
                instance_name: a.instance_name,
                instance_status: a.instance_status,
                status: a.attachment.status,
                status_reason: a.attachment.status_reason,
                attached_at: format_ms(a.attachment.created_at),
                updated_at: format_ms(a.attachment.updated_at),
            })
            .collect();
        Ok(firewall_view(row, rules, instances, labels))
    }
}

/// A firewall as listed, from its row, counts and labels.
fn firewall_summary(
    row: FirewallRow,
    rule_count: u32,
    attachment_count: u32,
    labels: barrack_api::labels::Labels,
) -> FirewallSummary {
    FirewallSummary {
        tier: Tier::parse(&row.tier).unwrap_or(Tier::Legacy),
        rule_count,
        attachment_count,
        id: row.id,
        name: row.name,
        description: row.description,
        region: row.region,
        status: row.status,
        status_reason: row.status_reason,
        created_at: format_ms(row.created_at),
        updated_at: format_ms(row.updated_at),
        labels,
    }
}

/// A firewall as the API shows it, from its row, rules, attachments and labels: its summary and them.
fn firewall_view(
    row: FirewallRow,
    rules: Vec<SecurityRule>,
    instances: Vec<FirewallAttachment>,
    labels: barrack_api::labels::Labels,
) -> Firewall {
    let FirewallSummary {
        id,
        name,
        description,
        region,
        tier,
        status,
        status_reason,
        rule_count,
        attachment_count,
        created_at,
        updated_at,
        labels,
    } = firewall_summary(row, rules.len() as u32, instances.len() as u32, labels);
    Firewall {
        id,
        name,
        description,
        region,
        tier,
        status,
        status_reason,
        rule_count,
        attachment_count,
        rules,
        instances,
        created_at,
        updated_at,
        labels,
    }
}

/// A list of instance ids: 1 to [`MAX_INSTANCES_PER_REQUEST`], none empty, none twice; trimmed.
fn check_ids(ids: &[String]) -> Result<Vec<String>> {
    let field = "instance_ids";
    let ids: Vec<String> = ids.iter().map(|i| i.trim().to_string()).collect();
    let mut v = Validator::new();
    v.check(!ids.is_empty(), field, "Name at least one instance id");
    if ids.len() > MAX_INSTANCES_PER_REQUEST {
        // Not checked one by one: the length is what is wrong.
        v.add(
            field,
            format!(
                "At most {MAX_INSTANCES_PER_REQUEST} instances per request; {} given",
                ids.len()
            ),
        );
        return Err(v.finish().expect_err("an error was added"));
    }
    let mut seen = BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        let at = format!("{field}[{i}]");
        v.check(!id.is_empty(), &at, "Instance id is empty");
        v.check(
            seen.insert(id.as_str()),
            &at,
            format!("Instance '{id}' is named twice"),
        );
    }
    v.finish()?;
    Ok(ids)
}

fn changing() -> Error {
    Error::conflict("CONFLICT", "The firewall is changing; try again")
}

/// Writes `rule` into the firewall at `position` under a new id, drawn again while taken; the id.
async fn insert_rule(
    tx: &mut Tx,
    firewall_id: &str,
    rule: &ValidRule,
    position: i64,
    now: i64,
) -> Result<String> {
    let mut row = rule_row(new_id(IdKind::Rule), rule);
    let mut draws = IdDraws::of("rule");
    while !firewalls::insert_rule(tx, firewall_id, &row, position, now).await? {
        draws.taken()?;
        row.id = new_id(IdKind::Rule);
    }
    Ok(row.id)
}

fn rule_row(id: String, rule: &ValidRule) -> RuleRow {
    RuleRow {
        id,
        direction: rule.direction.clone(),
        ethertype: rule.ethertype.clone(),
        protocol: rule.protocol.clone(),
        port_range_min: rule.port_range_min.map(i64::from),
        port_range_max: rule.port_range_max.map(i64::from),
        remote_ip_prefix: rule.remote_ip_prefix.clone(),
    }
}

/// A rule of firewall `firewall_id` as shown: its source is the firewall.
pub fn firewall_rule_view(firewall_id: &str, rule_id: &str, rule: &ValidRule) -> SecurityRule {
    SecurityRule {
        source: firewall_id.to_string(),
        ..rule_view(rule_id, rule)
    }
}

/// Records a change of a firewall (or of one of its attachments or rules) in the event log; `sequence`
/// is the firewall's generation after it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_event(
    tx: &mut Tx,
    row: &FirewallRow,
    kind: &str,
    (from, to): (Option<&str>, Option<&str>),
    actor: &str,
    cause: &str,
    sequence: i64,
    now: i64,
) -> Result<()> {
    let event = NewEvent {
        account_id: &row.account_id,
        resource_type: "firewall",
        resource_id: &row.id,
        kind,
        from,
        to,
        actor,
        cause,
        sequence,
    };
    events::record(tx, event, now).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for state in FirewallState::ALL {
            assert_eq!(FirewallState::parse(state.as_str()), Some(state));
        }
        for state in AttachmentState::ALL {
            assert_eq!(AttachmentState::parse(state.as_str()), Some(state));
        }
        assert_eq!(AttachmentState::parse(DETACHED), None);
    }

    #[test]
    fn job_payloads_are_stable() {
        let job = FirewallJob {
            action: FirewallJobAction::Create,
            generation: 1,
        };
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(text, r#"{"action":"create","generation":1}"#);
        assert_eq!(serde_json::from_str::<FirewallJob>(&text).unwrap(), job);
    }

    #[test]
    fn ids_are_checked_all_at_once() {
        let fields = |ids: &[&str]| match check_ids(
            &ids.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ) {
            Ok(_) => vec![],
            Err(e) => e
                .field_errors()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>(),
        };
        assert_eq!(fields(&[]), ["instance_ids"]);
        assert_eq!(fields(&["a", " a "]), ["instance_ids[1]"]);
        assert_eq!(fields(&["a", ""]), ["instance_ids[1]"]);
        assert!(fields(&["a", "b"]).is_empty());
        let many: Vec<String> = (0..26).map(|i| format!("i{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(fields(&many), ["instance_ids"]);
    }

    #[test]
    fn duplicate_rules_in_one_request_are_named() {
        let rule = |port: u32| SecurityRuleRequest {
            direction: "ingress".into(),
            protocol: Some("tcp".into()),
            ethertype: None,
            port_range_min: Some(port),
            port_range_max: Some(port),
            remote_ip_prefix: None,
        };
        let mut v = Validator::new();
        let valid = validate_rules(&mut v, "rules", &[rule(22), rule(443), rule(22)]);
        assert_eq!(valid.len(), 3);
        let errors = v.finish().unwrap_err();
        assert_eq!(
            errors.field_errors().unwrap().keys().collect::<Vec<_>>(),
            ["rules[2]"]
        );
    }

    #[test]
    fn the_driver_gets_each_rule_once() {
        let row = |id: &str, port: i64| RuleRow {
            id: id.into(),
            direction: "ingress".into(),
            ethertype: "IPv4".into(),
            protocol: Some("tcp".into()),
            port_range_min: Some(port),
            port_range_max: Some(port),
            remote_ip_prefix: None,
        };
        let rules = vec![
            ("instance".to_string(), row("BRK-AAAAAAR", 22)),
            ("BRK-AAAAAAF".to_string(), row("BRK-BBBBBBR", 22)),
            ("BRK-AAAAAAF".to_string(), row("BRK-CCCCCCR", 443)),
        ];
        let set = packet_rules(&rules);
        assert_eq!(set.len(), 2);
        assert_eq!(set[1].port_range_min, Some(443));
    }
}
