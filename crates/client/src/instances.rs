//! Instances, SSH keys, events and the operator's view of jobs and faults.

use barrack_api::instances::{
    DeployHold, DeployRequest, DeployedInstance, EventList, FaultInjected, HibernatedSummary,
    HostList, Instance, InstanceAction, InstanceList, InstanceMetrics, InstanceQuery, JobList,
    JobQuery, Preflight, RemoveSecurityRuleResponse, SecurityRule, SecurityRuleRequest,
    TogglePublicIp,
};
use barrack_api::ssh_keys::{
    CreateSshKeyRequest, CreatedSshKey, DeletedSshKey, SshKey, SshKeyList,
};
use barrack_api::{Envelope, PageQuery};
use reqwest::Method;

use crate::{Client, Result, with_query};

/// Lifecycle actions of `POST /api/instances/{id}/<action>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceActionKind {
    Start,
    Stop,
    Reboot,
    Hibernate,
    Restore,
}

impl InstanceActionKind {
    pub fn path(self) -> &'static str {
        match self {
            InstanceActionKind::Start => "start",
            InstanceActionKind::Stop => "stop",
            InstanceActionKind::Reboot => "reboot",
            InstanceActionKind::Hibernate => "hibernate",
            InstanceActionKind::Restore => "restore",
        }
    }
}

/// Longest single wait asked of the server, below the client's default 30-second timeout.
const WAIT_PART_SECONDS: u64 = 20;

/// States an instance rests in until someone acts.
fn rests(status: &str) -> bool {
    matches!(
        status,
        "ACTIVE" | "SHUTOFF" | "HIBERNATED" | "DELETED" | "ERROR"
    )
}

impl Client {
    pub async fn deploy(&self, request: &DeployRequest) -> Result<Envelope<DeployedInstance>> {
        self.post("/api/deploy-server/", request).await
    }

    /// Every check `deploy` would make, and its price, without deploying; with `request.hold`, the
    /// GPUs and address reserved for 60 seconds under the returned `hold_id`.
    pub async fn preflight(&self, request: &DeployRequest) -> Result<Envelope<Preflight>> {
        self.post("/api/deploy-server/preflight/", request).await
    }

    /// Gives back what a hold reserved, before it expires.
    pub async fn release_hold(&self, id: &str) -> Result<Envelope<DeployHold>> {
        self.request::<_, ()>(
            Method::DELETE,
            &format!("/api/deploy-server/holds/{id}/"),
            None,
        )
        .await
    }

    pub async fn instances(&self, query: &InstanceQuery) -> Result<Envelope<InstanceList>> {
        self.get(&with_query("/api/instances/", query)).await
    }

    /// The instances carrying every label of `labels` (`key=value` or `key`).
    pub async fn instances_labelled(
        &self,
        query: &InstanceQuery,
        labels: &[String],
    ) -> Result<Envelope<InstanceList>> {
        self.get(&crate::with_labels(
            &with_query("/api/instances/", query),
            labels,
        ))
        .await
    }

    pub async fn instance(&self, id: &str) -> Result<Envelope<Instance>> {
        self.get(&format!("/api/instances/{id}/")).await
    }

    /// The instance once it is in `state` (or has come to rest in another, see
    /// `GET /api/instances/{id}/?wait_for=`), waiting at most `timeout`: the server answers when the state
    /// is reached, so nothing polls. Long waits are asked in parts shorter than the client's own timeout.
    pub async fn wait_for_instance(
        &self,
        id: &str,
        state: &str,
        timeout: std::time::Duration,
    ) -> Result<Envelope<Instance>> {
        let started = std::time::Instant::now();
        loop {
            let left = timeout.saturating_sub(started.elapsed()).as_secs().max(1);
            let part = left.min(WAIT_PART_SECONDS);
            let answer: Envelope<Instance> = self
                .get(&format!(
                    "/api/instances/{id}/?wait_for={state}&timeout={part}"
                ))
                .await?;
            if answer.data.status != state && part < left && !rests(&answer.data.status) {
                continue;
            }
            return Ok(answer);
        }
    }

    pub async fn instance_action(
        &self,
        id: &str,
        action: InstanceActionKind,
    ) -> Result<Envelope<InstanceAction>> {
        self.post(
            &format!("/api/instances/{id}/{}/", action.path()),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn delete_instance(&self, id: &str) -> Result<Envelope<InstanceAction>> {
        self.request::<_, ()>(Method::DELETE, &format!("/api/instances/{id}/"), None)
            .await
    }

    pub async fn toggle_public_ip(&self, id: &str) -> Result<Envelope<TogglePublicIp>> {
        self.post(
            &format!("/api/instances/{id}/toggle-public-ip/"),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn hibernated_instances(&self) -> Result<Envelope<HibernatedSummary>> {
        self.get("/api/instances/hibernated/").await
    }

    pub async fn snapshot_eligible_instances(
        &self,
        page: &PageQuery,
    ) -> Result<Envelope<InstanceList>> {
        self.get(&with_query("/api/instances/snapshot-eligible/", page))
            .await
    }

    pub async fn add_security_rule(
        &self,
        id: &str,
        rule: &SecurityRuleRequest,
    ) -> Result<Envelope<SecurityRule>> {
        self.post(&format!("/api/instances/{id}/security-rules/"), rule)
            .await
    }

    pub async fn remove_security_rule(
        &self,
        id: &str,
        rule_id: &str,
    ) -> Result<RemoveSecurityRuleResponse> {
        self.request::<_, ()>(
            Method::DELETE,
            &format!("/api/instances/{id}/security-rules/{rule_id}/"),
            None,
        )
        .await
    }

    pub async fn instance_events(&self, id: &str, page: &PageQuery) -> Result<Envelope<EventList>> {
        self.get(&with_query(&format!("/api/instances/{id}/events/"), page))
            .await
    }

    pub async fn events(&self, page: &PageQuery) -> Result<Envelope<EventList>> {
        self.get(&with_query("/api/events/", page)).await
    }

    pub async fn ssh_keys(&self) -> Result<Envelope<SshKeyList>> {
        self.get("/api/ssh-keys/").await
    }

    pub async fn create_ssh_key(
        &self,
        request: &CreateSshKeyRequest,
    ) -> Result<Envelope<CreatedSshKey>> {
        self.post("/api/ssh-keys/", request).await
    }

    pub async fn ssh_key(&self, id: &str) -> Result<Envelope<SshKey>> {
        self.get(&format!("/api/ssh-keys/{id}/")).await
    }

    pub async fn delete_ssh_key(&self, id: &str) -> Result<Envelope<DeletedSshKey>> {
        self.request::<_, ()>(Method::DELETE, &format!("/api/ssh-keys/{id}/"), None)
            .await
    }

    pub async fn admin_hosts(&self) -> Result<Envelope<HostList>> {
        self.get("/api/admin/hosts/").await
    }

    pub async fn instance_metrics(&self, id: &str) -> Result<Envelope<InstanceMetrics>> {
        self.get(&format!("/api/instances/{id}/metrics/")).await
    }

    /// The first page of the jobs operators follow (pending, running, failed).
    pub async fn admin_jobs(&self) -> Result<Envelope<JobList>> {
        self.get("/api/admin/jobs/").await
    }

    /// A page of the jobs operators follow, narrowed by `status` when given.
    pub async fn admin_jobs_page(&self, query: &JobQuery) -> Result<Envelope<JobList>> {
        self.get(&with_query("/api/admin/jobs/", query)).await
    }

    /// Injects a simulator fault, e.g. `{"kind": "fail_nth", "operation": "create_instance", "nth": 1}`.
    pub async fn admin_inject_fault(
        &self,
        fault: &serde_json::Value,
    ) -> Result<Envelope<FaultInjected>> {
        self.post("/api/admin/faults/", fault).await
    }
}
