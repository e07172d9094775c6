//! Firewalls: named sets of security rules in one region, attached to instances; OpenStack Neutron's
//! security groups (`spec/API.md` §4.2, "Resource rules"). Rules are allow-lists, and every firewall
//! attached to an instance applies together with the instance's own rules.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::instances::{SecurityRule, SecurityRuleRequest};
use crate::{Pagination, Tier};

/// `POST /api/firewalls/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFirewallRequest {
    /// Unique per account: 1–50 letters, digits, spaces, hyphens, underscores and dots.
    pub name: String,
    /// At most 255 characters.
    #[serde(
        default,
        deserialize_with = "crate::rules::blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// A region of the caller's tier; the firewall attaches to instances of this region.
    pub region: String,
    /// Rules to start with (more can be added later).
    #[serde(default, deserialize_with = "crate::rules::null_as_default")]
    pub rules: Vec<SecurityRuleRequest>,
    /// Labels of the new firewall (see `PATCH /api/firewalls/{id}/labels/`).
    #[serde(
        default,
        deserialize_with = "crate::rules::null_as_default",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub labels: crate::labels::Labels,
}

/// `POST /api/firewalls/{id}/attach/` and `/detach/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceIdsRequest {
    /// 1 to 25 instance ids, none twice.
    pub instance_ids: Vec<String>,
}

/// An instance a firewall is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FirewallAttachment {
    pub instance_id: String,
    pub instance_name: String,
    /// The instance's own status (`ACTIVE`, `SHUTOFF`, ...).
    pub instance_status: String,
    /// `ATTACHING`, `SUCCESS`, `ERROR` or `DETACHING`.
    pub status: String,
    /// Why the attachment is in `ERROR`.
    pub status_reason: Option<String>,
    pub attached_at: String,
    pub updated_at: String,
}

/// A firewall as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FirewallSummary {
    pub id: String,
    pub name: String,
    pub description: String,
    pub region: String,
    pub tier: Tier,
    /// `CREATING`, `SUCCESS` or `ERROR`.
    pub status: String,
    pub status_reason: Option<String>,
    pub rule_count: u32,
    /// Instances the firewall is attached to (or being attached to or detached from).
    pub attachment_count: u32,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub labels: crate::labels::Labels,
}

/// A firewall in full: its rules and the instances it is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Firewall {
    pub id: String,
    pub name: String,
    pub description: String,
    pub region: String,
    pub tier: Tier,
    /// `CREATING`, `SUCCESS` or `ERROR`.
    pub status: String,
    pub status_reason: Option<String>,
    pub rule_count: u32,
    pub attachment_count: u32,
    /// The rules, oldest first; each rule's `source` is the firewall's id.
    pub rules: Vec<SecurityRule>,
    pub instances: Vec<FirewallAttachment>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub labels: crate::labels::Labels,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FirewallList {
    pub firewalls: Vec<FirewallSummary>,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FirewallQuery {
    pub page: Option<u32>,
    pub limit: Option<u32>,
    /// Only firewalls of this region.
    pub region: Option<String>,
}

/// `DELETE /api/firewalls/{id}/`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteFirewallQuery {
    /// Detach the firewall from its instances first (without it, a firewall still attached is 409).
    pub force: Option<bool>,
}

/// Answer of a firewall's deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeletedFirewall {
    pub firewall_id: String,
    pub status: String,
    /// Instances it was detached from (with `force=true`); their rules are reprogrammed in the
    /// background.
    pub detached_instance_ids: Vec<String>,
}

/// Answer of a rule's removal from a firewall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RemovedFirewallRule {
    pub firewall_id: String,
    pub rule_id: String,
}

/// One instance of an attach or detach: the attachment in its transitional state and where it will rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FirewallAttachmentAction {
    pub instance_id: String,
    /// `ATTACHING` or `DETACHING`.
    pub status: String,
    /// `SUCCESS` once attached, `DETACHED` once detached.
    pub target_status: String,
}

/// Answer of attach and detach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FirewallAttachmentChange {
    pub firewall_id: String,
    /// `attach` or `detach`.
    pub action: String,
    pub instances: Vec<FirewallAttachmentAction>,
}

/// An IP protocol rules accept by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Protocol {
    pub name: String,
    /// The IP protocol number (a rule may also give the number, 0–255).
    pub number: u8,
    /// Whether rules of this protocol take port ranges.
    pub port_ranges: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProtocolList {
    pub protocols: Vec<Protocol>,
    /// `ingress`, `egress`.
    pub directions: Vec<String>,
    /// `IPv4`, `IPv6`.
    pub ethertypes: Vec<String>,
}

/// An ACTIVE instance of the firewall's region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AvailableInstance {
    pub instance_id: String,
    pub name: String,
    pub region: String,
    pub status: String,
    pub ip_address: Option<String>,
    /// The firewall is attached to it already.
    pub attached: bool,
    /// The attachment's status when attached.
    pub attachment_status: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AvailableInstanceList {
    pub firewall_id: String,
    pub region: String,
    pub instances: Vec<AvailableInstance>,
    pub pagination: Pagination,
}

/// A firewall attached to an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceFirewall {
    pub firewall_id: String,
    pub name: String,
    pub description: String,
    /// The firewall's own status.
    pub firewall_status: String,
    /// The attachment's: `ATTACHING`, `SUCCESS`, `ERROR` or `DETACHING`.
    pub status: String,
    pub status_reason: Option<String>,
    pub rules: Vec<SecurityRule>,
    pub attached_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceFirewallList {
    pub instance_id: String,
    pub firewalls: Vec<InstanceFirewall>,
}
