//! Deadlines on driver calls: a call that has not returned within its operation's deadline is abandoned
//! (its future dropped) and reported as a transient failure, so the caller retries it with backoff or
//! dead-letters it after its last attempt. A hung host, a lost request or a stuck libvirt call then ends
//! instead of holding a worker and its resource in a transitional state forever.
//!
//! Every call is keyed by the resource and idempotent, so a call abandoned after its effect landed is
//! safe to make again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    ComputeDriver, DriverError, HostStatus, InstanceMetrics, InstanceSpec, LostGpus, Observation,
    Operation, PacketRule, Placement, Readiness, RecordedPower, SshEndpoint, VolumeSource,
};

/// How long each driver operation may take, in milliseconds, before it is abandoned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Deadlines {
    /// Submitting a machine: placing it, copying its disk and seed, defining and starting it. Its boot is
    /// watched afterwards (`jobs.boot_timeout_seconds`), not inside this call.
    pub create_instance_ms: u64,
    pub start_instance_ms: u64,
    /// A graceful shutdown, then a forced one after the driver's own timeout.
    pub stop_instance_ms: u64,
    pub reboot_instance_ms: u64,
    /// Managed save writes the guest's memory to disk.
    pub hibernate_instance_ms: u64,
    pub restore_instance_ms: u64,
    pub delete_instance_ms: u64,
    pub create_volume_ms: u64,
    pub delete_volume_ms: u64,
    pub resize_volume_ms: u64,
    /// Copies a whole disk.
    pub clone_volume_ms: u64,
    pub attach_volume_ms: u64,
    pub detach_volume_ms: u64,
    /// Copies the root disk.
    pub create_snapshot_ms: u64,
    pub delete_snapshot_ms: u64,
    pub apply_security_rules_ms: u64,
    /// Looking at a machine: its power state, readiness, SSH endpoint or utilisation.
    pub observe_ms: u64,
}

impl Default for Deadlines {
    fn default() -> Self {
        const MINUTE: u64 = 60_000;
        Deadlines {
            create_instance_ms: 10 * MINUTE,
            start_instance_ms: 2 * MINUTE,
            stop_instance_ms: 5 * MINUTE,
            reboot_instance_ms: 5 * MINUTE,
            hibernate_instance_ms: 15 * MINUTE,
            restore_instance_ms: 15 * MINUTE,
            delete_instance_ms: 5 * MINUTE,
            create_volume_ms: 5 * MINUTE,
            delete_volume_ms: 5 * MINUTE,
            resize_volume_ms: 5 * MINUTE,
            clone_volume_ms: 30 * MINUTE,
            attach_volume_ms: 2 * MINUTE,
            detach_volume_ms: 2 * MINUTE,
            create_snapshot_ms: 30 * MINUTE,
            delete_snapshot_ms: 5 * MINUTE,
            apply_security_rules_ms: 2 * MINUTE,
            observe_ms: 30_000,
        }
    }
}

impl Deadlines {
    /// The deadline of `operation`; a zero in the configuration means no deadline.
    pub fn of(&self, operation: Operation) -> Option<Duration> {
        let ms = match operation {
            Operation::CreateInstance => self.create_instance_ms,
            Operation::StartInstance => self.start_instance_ms,
            Operation::StopInstance => self.stop_instance_ms,
            Operation::RebootInstance => self.reboot_instance_ms,
            Operation::HibernateInstance => self.hibernate_instance_ms,
            Operation::RestoreInstance => self.restore_instance_ms,
            Operation::DeleteInstance => self.delete_instance_ms,
            Operation::CreateVolume => self.create_volume_ms,
            Operation::DeleteVolume => self.delete_volume_ms,
            Operation::ResizeVolume => self.resize_volume_ms,
            Operation::CloneVolume => self.clone_volume_ms,
            Operation::AttachVolume => self.attach_volume_ms,
            Operation::DetachVolume => self.detach_volume_ms,
            Operation::CreateSnapshot => self.create_snapshot_ms,
            Operation::DeleteSnapshot => self.delete_snapshot_ms,
            Operation::ApplySecurityRules => self.apply_security_rules_ms,
        };
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    fn observe(&self) -> Option<Duration> {
        (self.observe_ms > 0).then(|| Duration::from_millis(self.observe_ms))
    }
}

/// `inner` with every call bounded by its operation's deadline.
pub struct WithDeadlines {
    inner: Arc<dyn ComputeDriver>,
    deadlines: Deadlines,
}

impl WithDeadlines {
    pub fn new(inner: Arc<dyn ComputeDriver>, deadlines: Deadlines) -> WithDeadlines {
        WithDeadlines { inner, deadlines }
    }
}

/// Runs `call`, abandoning it after `deadline`.
async fn bounded<T>(
    name: &str,
    deadline: Option<Duration>,
    call: impl Future<Output = Result<T, DriverError>>,
) -> Result<T, DriverError> {
    let Some(deadline) = deadline else {
        return call.await;
    };
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                operation = name,
                deadline_ms = deadline.as_millis() as u64,
                "driver call abandoned at its deadline"
            );
            Err(DriverError::Transient(format!(
                "{name} did not finish within its deadline of {}; abandoned",
                human(deadline)
            )))
        }
    }
}

fn human(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// The configuration's name of an operation (`stop_instance`).
pub fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::CreateInstance => "create_instance",
        Operation::StartInstance => "start_instance",
        Operation::StopInstance => "stop_instance",
        Operation::RebootInstance => "reboot_instance",
        Operation::HibernateInstance => "hibernate_instance",
        Operation::RestoreInstance => "restore_instance",
        Operation::DeleteInstance => "delete_instance",
        Operation::CreateVolume => "create_volume",
        Operation::DeleteVolume => "delete_volume",
        Operation::ResizeVolume => "resize_volume",
        Operation::CloneVolume => "clone_volume",
        Operation::AttachVolume => "attach_volume",
        Operation::DetachVolume => "detach_volume",
        Operation::CreateSnapshot => "create_snapshot",
        Operation::DeleteSnapshot => "delete_snapshot",
        Operation::ApplySecurityRules => "apply_security_rules",
    }
}

impl WithDeadlines {
    async fn op<T>(
        &self,
        operation: Operation,
        call: impl Future<Output = Result<T, DriverError>>,
    ) -> Result<T, DriverError> {
        bounded(
            operation_name(operation),
            self.deadlines.of(operation),
            call,
        )
        .await
    }

    async fn look<T>(
        &self,
        name: &str,
        call: impl Future<Output = Result<T, DriverError>>,
    ) -> Result<T, DriverError> {
        bounded(name, self.deadlines.observe(), call).await
    }
}

#[async_trait]
impl ComputeDriver for WithDeadlines {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn is_simulated(&self) -> bool {
        self.inner.is_simulated()
    }

    fn recognize(
        &self,
        id: &str,
        region: &str,
        gpu_count: u32,
        host: Option<&str>,
        power: RecordedPower,
    ) {
        self.inner.recognize(id, region, gpu_count, host, power)
    }

    fn placed_machines(&self, region: &str, gpu_model: &str) -> Vec<String> {
        self.inner.placed_machines(region, gpu_model)
    }

    fn forget(&self, ids: &[String]) {
        self.inner.forget(ids)
    }

    fn recognize_volume(&self, id: &str, region: &str, size_gb: u32, attached_to: Option<&str>) {
        self.inner
            .recognize_volume(id, region, size_gb, attached_to)
    }

    fn recognize_snapshot(&self, id: &str) {
        self.inner.recognize_snapshot(id)
    }

    fn recognize_capacity(&self, region: &str, gpu_model: &str, total: u32) {
        self.inner.recognize_capacity(region, gpu_model, total)
    }

    fn recognize_simulation(
        &self,
        resets: i64,
        slow_hosts: &[(String, f64)],
        lost_hosts: &[String],
    ) {
        self.inner
            .recognize_simulation(resets, slow_hosts, lost_hosts)
    }

    fn capacity_limit(&self, region: &str, gpu_model: &str) -> Option<u32> {
        self.inner.capacity_limit(region, gpu_model)
    }

    fn boot_remaining(&self, id: &str) -> Option<std::time::Duration> {
        self.inner.boot_remaining(id)
    }

    async fn create_instance(&self, spec: &InstanceSpec) -> Result<Placement, DriverError> {
        self.op(Operation::CreateInstance, self.inner.create_instance(spec))
            .await
    }

    async fn start_instance(&self, id: &str) -> Result<(), DriverError> {
        self.op(Operation::StartInstance, self.inner.start_instance(id))
            .await
    }

    async fn stop_instance(&self, id: &str) -> Result<(), DriverError> {
        self.op(Operation::StopInstance, self.inner.stop_instance(id))
            .await
    }

    async fn reboot_instance(&self, id: &str) -> Result<(), DriverError> {
        self.op(Operation::RebootInstance, self.inner.reboot_instance(id))
            .await
    }

    async fn hibernate_instance(&self, id: &str) -> Result<(), DriverError> {
        self.op(
            Operation::HibernateInstance,
            self.inner.hibernate_instance(id),
        )
        .await
    }

    async fn restore_instance(&self, spec: &InstanceSpec) -> Result<Placement, DriverError> {
        self.op(
            Operation::RestoreInstance,
            self.inner.restore_instance(spec),
        )
        .await
    }

    async fn delete_instance(&self, id: &str) -> Result<(), DriverError> {
        self.op(Operation::DeleteInstance, self.inner.delete_instance(id))
            .await
    }

    async fn observe_instance(&self, id: &str) -> Result<Observation, DriverError> {
        self.look("observe_instance", self.inner.observe_instance(id))
            .await
    }

    async fn observe_readiness(&self, id: &str) -> Result<Readiness, DriverError> {
        self.look("observe_readiness", self.inner.observe_readiness(id))
            .await
    }

    async fn ssh_endpoint(&self, id: &str) -> Result<Option<SshEndpoint>, DriverError> {
        self.look("ssh_endpoint", self.inner.ssh_endpoint(id)).await
    }

    async fn instance_metrics(&self, id: &str) -> Result<Option<InstanceMetrics>, DriverError> {
        self.look("instance_metrics", self.inner.instance_metrics(id))
            .await
    }

    async fn hosts(&self) -> Result<Vec<HostStatus>, DriverError> {
        self.look("hosts", self.inner.hosts()).await
    }

    async fn lost_gpus(&self) -> Result<Vec<LostGpus>, DriverError> {
        self.look("lost_gpus", self.inner.lost_gpus()).await
    }

    async fn create_volume(
        &self,
        id: &str,
        region: &str,
        size_gb: u32,
        source: &VolumeSource,
    ) -> Result<(), DriverError> {
        self.op(
            source.operation(),
            self.inner.create_volume(id, region, size_gb, source),
        )
        .await
    }

    async fn delete_volume(&self, id: &str) -> Result<(), DriverError> {
        self.op(Operation::DeleteVolume, self.inner.delete_volume(id))
            .await
    }

    async fn resize_volume(&self, id: &str, size_gb: u32) -> Result<(), DriverError> {
        self.op(
            Operation::ResizeVolume,
            self.inner.resize_volume(id, size_gb),
        )
        .await
    }

    async fn attach_volume(&self, instance_id: &str, volume_id: &str) -> Result<(), DriverError> {
        self.op(
            Operation::AttachVolume,
            self.inner.attach_volume(instance_id, volume_id),
        )
        .await
    }

    async fn detach_volume(&self, instance_id: &str, volume_id: &str) -> Result<(), DriverError> {
        self.op(
            Operation::DetachVolume,
            self.inner.detach_volume(instance_id, volume_id),
        )
        .await
    }

    async fn create_snapshot(
        &self,
        instance_id: &str,
        snapshot_id: &str,
    ) -> Result<(), DriverError> {
        self.op(
            Operation::CreateSnapshot,
            self.inner.create_snapshot(instance_id, snapshot_id),
        )
        .await
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), DriverError> {
        self.op(
            Operation::DeleteSnapshot,
            self.inner.delete_snapshot(snapshot_id),
        )
        .await
    }

    async fn apply_security_rules(
        &self,
        instance_id: &str,
        rules: &[PacketRule],
    ) -> Result<(), DriverError> {
        self.op(
            Operation::ApplySecurityRules,
            self.inner.apply_security_rules(instance_id, rules),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PowerState;
    use crate::sim::{Fault, SimConfig, SimDelays, SimDriver, SimHost};

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_is_abandoned_at_its_deadline_and_the_next_one_goes_through() {
        let sim = Arc::new(SimDriver::new(SimConfig {
            delays: SimDelays::instant(),
            hosts: vec![SimHost {
                name: "h".into(),
                region: "R".into(),
                gpu_model: "M".into(),
                gpus: 8,
            }],
            faults: vec![Fault::Hang {
                operation: Operation::StopInstance,
                count: 1,
            }],
        }));
        let driver = WithDeadlines::new(
            sim.clone(),
            Deadlines {
                stop_instance_ms: 250,
                ..Deadlines::default()
            },
        );
        sim.adopt("i-1", "R", 1, Some("h"), PowerState::Running);
        let started = tokio::time::Instant::now();
        let error = driver.stop_instance("i-1").await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(250));
        assert_eq!(
            error,
            DriverError::Transient(
                "stop_instance did not finish within its deadline of 250 ms; abandoned".into()
            )
        );
        driver.stop_instance("i-1").await.unwrap();
        assert_eq!(sim.instance("i-1").unwrap().0, PowerState::Stopped);
    }

    #[test]
    fn zero_means_no_deadline() {
        let deadlines = Deadlines {
            delete_instance_ms: 0,
            ..Deadlines::default()
        };
        assert_eq!(deadlines.of(Operation::DeleteInstance), None);
        assert_eq!(
            deadlines.of(Operation::StopInstance),
            Some(Duration::from_secs(300))
        );
    }
}
