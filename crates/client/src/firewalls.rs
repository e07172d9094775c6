//! Firewalls, their rules, and attaching them to instances.

use barrack_api::firewalls::{
    AvailableInstanceList, CreateFirewallRequest, DeletedFirewall, Firewall,
    FirewallAttachmentChange, FirewallList, FirewallQuery, InstanceFirewallList,
    InstanceIdsRequest, ProtocolList, RemovedFirewallRule,
};
use barrack_api::instances::{SecurityRule, SecurityRuleRequest};
use barrack_api::{Envelope, PageQuery};
use reqwest::Method;

use crate::{Client, Result, with_query};

impl Client {
    pub async fn firewalls(&self, query: &FirewallQuery) -> Result<Envelope<FirewallList>> {
        self.get(&with_query("/api/firewalls/", query)).await
    }

    /// The firewalls carrying every label of `labels` (`key=value` or `key`).
    pub async fn firewalls_labelled(
        &self,
        query: &FirewallQuery,
        labels: &[String],
    ) -> Result<Envelope<FirewallList>> {
        self.get(&crate::with_labels(
            &with_query("/api/firewalls/", query),
            labels,
        ))
        .await
    }

    pub async fn create_firewall(
        &self,
        request: &CreateFirewallRequest,
    ) -> Result<Envelope<Firewall>> {
        self.post("/api/firewalls/", request).await
    }

    pub async fn firewall(&self, id: &str) -> Result<Envelope<Firewall>> {
        self.get(&format!("/api/firewalls/{id}/")).await
    }

    /// Deletes a firewall; with `force`, one still attached is detached from its instances first.
    pub async fn delete_firewall(
        &self,
        id: &str,
        force: bool,
    ) -> Result<Envelope<DeletedFirewall>> {
        let path = if force {
            format!("/api/firewalls/{id}/?force=true")
        } else {
            format!("/api/firewalls/{id}/")
        };
        self.request::<_, ()>(Method::DELETE, &path, None).await
    }

    pub async fn add_firewall_rule(
        &self,
        id: &str,
        rule: &SecurityRuleRequest,
    ) -> Result<Envelope<SecurityRule>> {
        self.post(&format!("/api/firewalls/{id}/rules/"), rule)
            .await
    }

    pub async fn remove_firewall_rule(
        &self,
        id: &str,
        rule_id: &str,
    ) -> Result<Envelope<RemovedFirewallRule>> {
        self.request::<_, ()>(
            Method::DELETE,
            &format!("/api/firewalls/{id}/rules/{rule_id}/"),
            None,
        )
        .await
    }

    pub async fn attach_firewall(
        &self,
        id: &str,
        instance_ids: &[String],
    ) -> Result<Envelope<FirewallAttachmentChange>> {
        self.post(
            &format!("/api/firewalls/{id}/attach/"),
            &InstanceIdsRequest {
                instance_ids: instance_ids.to_vec(),
            },
        )
        .await
    }

    pub async fn detach_firewall(
        &self,
        id: &str,
        instance_ids: &[String],
    ) -> Result<Envelope<FirewallAttachmentChange>> {
        self.post(
            &format!("/api/firewalls/{id}/detach/"),
            &InstanceIdsRequest {
                instance_ids: instance_ids.to_vec(),
            },
        )
        .await
    }

    pub async fn firewall_protocols(&self) -> Result<Envelope<ProtocolList>> {
        self.get("/api/firewalls/protocols/").await
    }

    pub async fn firewall_available_instances(
        &self,
        id: &str,
        page: &PageQuery,
    ) -> Result<Envelope<AvailableInstanceList>> {
        self.get(&with_query(
            &format!("/api/firewalls/{id}/available-instances/"),
            page,
        ))
        .await
    }

    pub async fn instance_firewalls(&self, id: &str) -> Result<Envelope<InstanceFirewallList>> {
        self.get(&format!("/api/instances/{id}/firewalls/")).await
    }
}
