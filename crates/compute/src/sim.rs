//! The simulated data centre: a real [`ComputeDriver`] whose hosts, GPUs, volumes and firewalls live in
//! memory. Development and tests run the whole control plane against it: its delays make transitional
//! states observable, and injected faults exercise retries, leases and the ERROR path.
//!
//! Every operation counts its call, lets armed faults decide its fate, sleeps its delay, then applies its
//! effect in one step under the state lock, so concurrent calls can never oversubscribe a host.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    BootDisk, ComputeDriver, DriverError, InstanceSpec, Observation, Operation, PacketRule,
    Placement, PowerState,
};

/// The simulator's configuration; an empty table gives development delays, no hosts and no faults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    pub delays: SimDelays,
    /// The machines, usually [`hosts_from_capacity`] of the configured capacity.
    pub hosts: Vec<SimHost>,
    /// Faults armed from the start, as if injected right after construction.
    pub faults: Vec<Fault>,
}

/// How long each kind of operation takes (milliseconds) before its effect lands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimDelays {
    pub create_ms: u64,
    pub start_ms: u64,
    pub stop_ms: u64,
    pub reboot_ms: u64,
    pub hibernate_ms: u64,
    pub restore_ms: u64,
    pub delete_ms: u64,
    /// Every volume operation: create, clone, resize, attach, detach, delete.
    pub volume_ms: u64,
    pub snapshot_ms: u64,
    /// Programming firewall rules.
    pub network_ms: u64,
}

/// Long enough to see BUILDING or STOPPING in a dashboard, short enough not to wait on.
impl Default for SimDelays {
    fn default() -> Self {
        SimDelays {
            create_ms: 1500,
            start_ms: 800,
            stop_ms: 800,
            reboot_ms: 1000,
            hibernate_ms: 1500,
            restore_ms: 1500,
            delete_ms: 500,
            volume_ms: 300,
            snapshot_ms: 1000,
            network_ms: 100,
        }
    }
}

impl SimDelays {
    /// No delays: effects land as soon as the call is made, for deterministic tests.
    pub fn instant() -> Self {
        SimDelays {
            create_ms: 0,
            start_ms: 0,
            stop_ms: 0,
            reboot_ms: 0,
            hibernate_ms: 0,
            restore_ms: 0,
            delete_ms: 0,
            volume_ms: 0,
            snapshot_ms: 0,
            network_ms: 0,
        }
    }

    fn of(&self, operation: Operation) -> Duration {
        let ms = match operation {
            Operation::CreateInstance => self.create_ms,
            Operation::StartInstance => self.start_ms,
            Operation::StopInstance => self.stop_ms,
            Operation::RebootInstance => self.reboot_ms,
            Operation::HibernateInstance => self.hibernate_ms,
            Operation::RestoreInstance => self.restore_ms,
            Operation::DeleteInstance => self.delete_ms,
            Operation::CreateVolume
            | Operation::DeleteVolume
            | Operation::ResizeVolume
            | Operation::CloneVolume
            | Operation::AttachVolume
            | Operation::DetachVolume => self.volume_ms,
            Operation::CreateSnapshot | Operation::DeleteSnapshot => self.snapshot_ms,
            Operation::ApplySecurityRules => self.network_ms,
        };
        Duration::from_millis(ms)
    }
}

/// One machine: `gpus` GPUs of one model in one region. Names must be unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimHost {
    pub name: String,
    pub region: String,
    pub gpu_model: String,
    pub gpus: u32,
}

/// GPUs in one simulated host, as in a typical 8-GPU server.
const GPUS_PER_HOST: u32 = 8;

/// Hosts for (region, GPU model, total GPUs) capacity: full 8-GPU hosts and one holding the remainder,
/// named like `finland-1-h100-sxm5-80gb-01`.
pub fn hosts_from_capacity(capacity: &[(String, String, u32)]) -> Vec<SimHost> {
    capacity
        .iter()
        .flat_map(|(region, model, total)| {
            let prefix: String = format!("{region}-{model}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            (0..total.div_ceil(GPUS_PER_HOST)).map(move |index| SimHost {
                name: format!("{prefix}-{:02}", index + 1),
                region: region.clone(),
                gpu_model: model.clone(),
                gpus: (total - index * GPUS_PER_HOST).min(GPUS_PER_HOST),
            })
        })
        .collect()
}

/// A fault to inject, from configuration (`{ kind = "fail_nth", operation = "create_instance", nth = 2 }`)
/// or a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The `nth` call of `operation` counted from injection (1-based) fails, transiently unless
    /// `permanent`; then the fault is spent.
    FailNth {
        operation: Operation,
        nth: u32,
        #[serde(default)]
        permanent: bool,
    },
    /// The next `count` calls of `operation` never return, like requests lost on the way, so callers'
    /// timeouts and leases get exercised.
    Hang {
        operation: Operation,
        #[serde(default = "one")]
        count: u32,
    },
    /// The host is gone for good: its instances fail and its GPUs are never offered again.
    LoseHost { host: String },
}

fn one() -> u32 {
    1
}

/// The data centre; every method takes `&self`, so share it behind an `Arc`.
pub struct SimDriver {
    delays: SimDelays,
    /// Held only for synchronous bookkeeping, never across an await.
    state: Mutex<State>,
}

impl SimDriver {
    pub fn new(config: SimConfig) -> SimDriver {
        let hosts = config.hosts.into_iter().map(|spec| Host {
            spec,
            used: 0,
            lost: false,
        });
        let driver = SimDriver {
            delays: config.delays,
            state: Mutex::new(State {
                hosts: hosts.collect(),
                instances: HashMap::new(),
                volumes: HashMap::new(),
                snapshots: HashSet::new(),
                calls: HashMap::new(),
                faults: Vec::new(),
            }),
        };
        for fault in config.faults {
            driver.inject(fault);
        }
        driver
    }

    /// Arms a call fault, or loses a host at once.
    pub fn inject(&self, fault: Fault) {
        let mut state = self.state();
        match fault {
            Fault::FailNth {
                operation,
                nth,
                permanent,
            } => {
                let at_call = state.calls(operation) + u64::from(nth);
                state.faults.push(ArmedFault::Fail {
                    operation,
                    at_call,
                    permanent,
                });
            }
            Fault::Hang { operation, count } if count > 0 => {
                state.faults.push(ArmedFault::Hang {
                    operation,
                    remaining: count,
                });
            }
            Fault::Hang { .. } => {}
            Fault::LoseHost { host } => state.lose_host(&host),
        }
    }

    /// Takes back an instance the control plane already knows about: a restarted server re-creates the
    /// simulated machines that, in a real data centre, would have kept running while it was down. A placed
    /// instance (`host`) holds its GPUs again; one without a host is hibernated. Known ids are left alone.
    pub fn adopt(
        &self,
        id: &str,
        region: &str,
        gpu_count: u32,
        host: Option<&str>,
        power: PowerState,
    ) {
        let mut state = self.state();
        if state.instances.contains_key(id) {
            return;
        }
        let slot = host.and_then(|name| state.hosts.iter().position(|h| h.spec.name == name));
        // A recorded placement is a fact about the data centre: it is honoured even when placements made
        // since (by this process, before it learnt of the instance) leave the host over-full.
        let (power, host) = match slot {
            Some(i) if !state.hosts[i].lost => {
                state.hosts[i].used += gpu_count;
                (power, Some(i))
            }
            Some(i) => (
                PowerState::Failed(format!("host {} lost", state.hosts[i].spec.name)),
                None,
            ),
            None if host.is_some() => (
                PowerState::Failed("its host is not part of the simulated data centre".into()),
                None,
            ),
            None => (PowerState::Hibernated, None),
        };
        state.instances.insert(
            id.to_string(),
            Instance {
                region: region.to_string(),
                gpu_count,
                power,
                host,
                rules: None,
            },
        );
    }

    /// Takes back a volume the control plane already knows about (see [`SimDriver::adopt`]): a restarted
    /// server, or another replica, can then act on volumes it did not create. Known ids are left alone.
    pub fn adopt_volume(&self, id: &str, region: &str, size_gb: u32, attached_to: Option<&str>) {
        self.state()
            .volumes
            .entry(id.to_owned())
            .or_insert_with(|| Volume {
                region: region.to_owned(),
                size_gb,
                attached_to: attached_to.map(str::to_owned),
            });
    }

    /// Takes back a snapshot disk the control plane already knows about (see [`SimDriver::adopt`]).
    pub fn adopt_snapshot(&self, id: &str) {
        self.state().snapshots.insert(id.to_owned());
    }

    /// Whether the simulator holds the disk of snapshot `id`.
    pub fn has_snapshot(&self, id: &str) -> bool {
        self.state().snapshots.contains(id)
    }

    /// An instance's power state and host; `None` when the simulator does not know it.
    pub fn instance(&self, id: &str) -> Option<(PowerState, Option<String>)> {
        let state = self.state();
        let instance = state.instances.get(id)?;
        let host = instance
            .host
            .map(|host| state.hosts[host].spec.name.clone());
        Some((instance.power.clone(), host))
    }

    /// Every host with its used GPUs and whether it is lost, in configuration order.
    pub fn hosts(&self) -> Vec<(SimHost, u32, bool)> {
        let state = self.state();
        state
            .hosts
            .iter()
            .map(|host| (host.spec.clone(), host.used, host.lost))
            .collect()
    }

    /// GPUs of `model` reserved by instances in `region`.
    pub fn used_gpus(&self, region: &str, model: &str) -> u32 {
        let state = self.state();
        state
            .hosts
            .iter()
            .filter(|host| host.spec.region == region && host.spec.gpu_model == model)
            .map(|host| host.used)
            .sum()
    }

    /// Calls of `operation` started so far, including failed and hanging ones.
    pub fn calls(&self, operation: Operation) -> u64 {
        self.state().calls(operation)
    }

    /// The rules last applied to an instance; `None` if it is unknown or has none yet.
    pub fn rules(&self, instance_id: &str) -> Option<Vec<PacketRule>> {
        self.state().instances.get(instance_id)?.rules.clone()
    }

    /// `None` for an unknown volume, else the instance it is attached to.
    pub fn volume_attachment(&self, volume_id: &str) -> Option<Option<String>> {
        Some(self.state().volumes.get(volume_id)?.attached_to.clone())
    }

    /// The size of a volume in GB; `None` when the simulator does not know it.
    pub fn volume_size(&self, volume_id: &str) -> Option<u32> {
        Some(self.state().volumes.get(volume_id)?.size_gb)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("sim state lock poisoned")
    }

    /// Counts the call, applies faults, then waits out the operation's delay.
    async fn begin(&self, operation: Operation) -> Result<(), DriverError> {
        let verdict = self.state().begin(operation);
        match verdict {
            Verdict::Proceed => {}
            Verdict::Fail(error) => return Err(error),
            // Already counted and spent, so dropping this future leaves nothing behind.
            Verdict::Hang => return std::future::pending().await,
        }
        let delay = self.delays.of(operation);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }
}

#[async_trait]
impl ComputeDriver for SimDriver {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn is_simulated(&self) -> bool {
        true
    }

    fn recognize(
        &self,
        id: &str,
        region: &str,
        gpu_count: u32,
        host: Option<&str>,
        power: PowerState,
    ) {
        self.adopt(id, region, gpu_count, host, power);
    }

    fn recognize_volume(&self, id: &str, region: &str, size_gb: u32, attached_to: Option<&str>) {
        self.adopt_volume(id, region, size_gb, attached_to);
    }

    fn recognize_snapshot(&self, id: &str) {
        self.adopt_snapshot(id);
    }

    async fn create_instance(&self, spec: &InstanceSpec) -> Result<Placement, DriverError> {
        self.begin(Operation::CreateInstance).await?;
        self.state().create_instance(spec)
    }

    async fn start_instance(&self, id: &str) -> Result<(), DriverError> {
        self.begin(Operation::StartInstance).await?;
        self.state().start_instance(id)
    }

    async fn stop_instance(&self, id: &str) -> Result<(), DriverError> {
        self.begin(Operation::StopInstance).await?;
        self.state().stop_instance(id)
    }

    async fn reboot_instance(&self, id: &str) -> Result<(), DriverError> {
        self.begin(Operation::RebootInstance).await?;
        self.state().reboot_instance(id)
    }

    async fn hibernate_instance(&self, id: &str) -> Result<(), DriverError> {
        self.begin(Operation::HibernateInstance).await?;
        self.state().hibernate_instance(id)
    }

    async fn restore_instance(&self, spec: &InstanceSpec) -> Result<Placement, DriverError> {
        self.begin(Operation::RestoreInstance).await?;
        self.state().restore_instance(spec)
    }

    async fn delete_instance(&self, id: &str) -> Result<(), DriverError> {
        self.begin(Operation::DeleteInstance).await?;
        self.state().delete_instance(id);
        Ok(())
    }

    async fn observe_instance(&self, id: &str) -> Result<Observation, DriverError> {
        let (state, host) = self.instance(id).unwrap_or((PowerState::Missing, None));
        Ok(Observation { state, host })
    }

    /// A volume with a `source` is a clone (of a volume or snapshot), so faults can target clones apart.
    async fn create_volume(
        &self,
        id: &str,
        region: &str,
        size_gb: u32,
        source: Option<&str>,
    ) -> Result<(), DriverError> {
        let operation = match source {
            Some(_) => Operation::CloneVolume,
            None => Operation::CreateVolume,
        };
        self.begin(operation).await?;
        self.state().create_volume(id, region, size_gb);
        Ok(())
    }

    async fn delete_volume(&self, id: &str) -> Result<(), DriverError> {
        self.begin(Operation::DeleteVolume).await?;
        self.state().delete_volume(id)
    }

    async fn resize_volume(&self, id: &str, size_gb: u32) -> Result<(), DriverError> {
        self.begin(Operation::ResizeVolume).await?;
        self.state().resize_volume(id, size_gb)
    }

    async fn attach_volume(&self, instance_id: &str, volume_id: &str) -> Result<(), DriverError> {
        self.begin(Operation::AttachVolume).await?;
        self.state().attach_volume(instance_id, volume_id)
    }

    async fn detach_volume(&self, instance_id: &str, volume_id: &str) -> Result<(), DriverError> {
        self.begin(Operation::DetachVolume).await?;
        self.state().detach_volume(instance_id, volume_id);
        Ok(())
    }

    async fn create_snapshot(
        &self,
        instance_id: &str,
        snapshot_id: &str,
    ) -> Result<(), DriverError> {
        self.begin(Operation::CreateSnapshot).await?;
        self.state().create_snapshot(instance_id, snapshot_id)
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), DriverError> {
        self.begin(Operation::DeleteSnapshot).await?;
        self.state().snapshots.remove(snapshot_id);
        Ok(())
    }

    async fn apply_security_rules(
        &self,
        instance_id: &str,
        rules: &[PacketRule],
    ) -> Result<(), DriverError> {
        self.begin(Operation::ApplySecurityRules).await?;
        usable(&mut self.state().instances, instance_id)?.rules = Some(rules.to_vec());
        Ok(())
    }
}

struct State {
    /// In configuration order, which breaks best-fit ties.
    hosts: Vec<Host>,
    instances: HashMap<String, Instance>,
    volumes: HashMap<String, Volume>,
    snapshots: HashSet<String>,
    calls: HashMap<Operation, u64>,
    /// In injection order.
    faults: Vec<ArmedFault>,
}

struct Host {
    spec: SimHost,
    used: u32,
    lost: bool,
}

struct Instance {
    region: String,
    gpu_count: u32,
    power: PowerState,
    /// Index into `State::hosts`; `None` while hibernated or failed.
    host: Option<usize>,
    rules: Option<Vec<PacketRule>>,
}

struct Volume {
    region: String,
    size_gb: u32,
    attached_to: Option<String>,
}

/// A [`Fault`] waiting for the calls it applies to.
enum ArmedFault {
    Fail {
        operation: Operation,
        /// The call number (as counted in `State::calls`) that fails.
        at_call: u64,
        permanent: bool,
    },
    Hang {
        operation: Operation,
        remaining: u32,
    },
}

impl ArmedFault {
    /// A failure whose call was taken by an earlier fault fires on the next call instead of never.
    fn applies(&self, operation: Operation, call: u64) -> bool {
        match *self {
            ArmedFault::Fail {
                operation: armed,
                at_call,
                ..
            } => armed == operation && call >= at_call,
            ArmedFault::Hang {
                operation: armed, ..
            } => armed == operation,
        }
    }
}

/// What a call does once faults have had their say.
enum Verdict {
    Proceed,
    Fail(DriverError),
    Hang,
}

impl State {
    fn calls(&self, operation: Operation) -> u64 {
        self.calls.get(&operation).copied().unwrap_or(0)
    }

    /// Counts the call; the first armed fault (in injection order) that applies decides it.
    fn begin(&mut self, operation: Operation) -> Verdict {
        let calls = self.calls.entry(operation).or_default();
        *calls += 1;
        let call = *calls;
        let Some(index) = self
            .faults
            .iter()
            .position(|fault| fault.applies(operation, call))
        else {
            return Verdict::Proceed;
        };
        match &mut self.faults[index] {
            ArmedFault::Fail { permanent, .. } => {
                let message = format!("injected failure: call {call} of {operation:?}");
                let error = if *permanent {
                    DriverError::Permanent(message)
                } else {
                    DriverError::Transient(message)
                };
                self.faults.remove(index);
                Verdict::Fail(error)
            }
            ArmedFault::Hang { remaining, .. } => {
                *remaining -= 1;
                if *remaining == 0 {
                    self.faults.remove(index);
                }
                Verdict::Hang
            }
        }
    }

    fn lose_host(&mut self, name: &str) {
        let Some(index) = self.hosts.iter().position(|host| host.spec.name == name) else {
            tracing::warn!(host = name, "sim: cannot lose an unknown host");
            return;
        };
        self.hosts[index].lost = true;
        self.hosts[index].used = 0;
        for instance in self.instances.values_mut() {
            if instance.host == Some(index) {
                instance.host = None;
                instance.power = PowerState::Failed(format!("host {name} lost"));
            }
        }
    }

    fn create_instance(&mut self, spec: &InstanceSpec) -> Result<Placement, DriverError> {
        if self.instances.contains_key(&spec.id) {
            let instance = usable(&mut self.instances, &spec.id)?;
            return match instance.host {
                Some(host) => Ok(placement(&self.hosts, host)),
                None => Err(DriverError::Permanent(format!(
                    "instance {} is hibernated; restore it instead",
                    spec.id
                ))),
            };
        }
        if let BootDisk::Snapshot { snapshot_id, .. } = &spec.boot
            && !self.snapshots.contains(snapshot_id)
        {
            return Err(DriverError::Permanent(format!(
                "snapshot {snapshot_id} not found"
            )));
        }
        let host = place(
            &mut self.hosts,
            &spec.region,
            &spec.gpu_model,
            spec.gpu_count,
        )?;
        self.instances.insert(
            spec.id.clone(),
            Instance {
                region: spec.region.clone(),
                gpu_count: spec.gpu_count,
                power: PowerState::Running,
                host: Some(host),
                rules: None,
            },
        );
        Ok(placement(&self.hosts, host))
    }

    fn start_instance(&mut self, id: &str) -> Result<(), DriverError> {
        let instance = usable(&mut self.instances, id)?;
        match instance.power {
            PowerState::Running => Ok(()),
            PowerState::Stopped => {
                instance.power = PowerState::Running;
                Ok(())
            }
            _ => Err(wrong_state(id, &instance.power, "started")),
        }
    }

    fn stop_instance(&mut self, id: &str) -> Result<(), DriverError> {
        let instance = usable(&mut self.instances, id)?;
        match instance.power {
            PowerState::Stopped => Ok(()),
            PowerState::Running => {
                instance.power = PowerState::Stopped;
                Ok(())
            }
            _ => Err(wrong_state(id, &instance.power, "stopped")),
        }
    }

    fn reboot_instance(&mut self, id: &str) -> Result<(), DriverError> {
        let instance = usable(&mut self.instances, id)?;
        match instance.power {
            PowerState::Running => Ok(()),
            _ => Err(wrong_state(id, &instance.power, "rebooted")),
        }
    }

    fn hibernate_instance(&mut self, id: &str) -> Result<(), DriverError> {
        let instance = usable(&mut self.instances, id)?;
        if let Some(host) = instance.host.take() {
            self.hosts[host].used -= instance.gpu_count;
        }
        instance.power = PowerState::Hibernated;
        Ok(())
    }

    fn restore_instance(&mut self, spec: &InstanceSpec) -> Result<Placement, DriverError> {
        let instance = usable(&mut self.instances, &spec.id)?;
        if let Some(host) = instance.host {
            return Ok(placement(&self.hosts, host));
        }
        let host = place(
            &mut self.hosts,
            &spec.region,
            &spec.gpu_model,
            spec.gpu_count,
        )?;
        instance.region = spec.region.clone();
        instance.gpu_count = spec.gpu_count;
        instance.power = PowerState::Running;
        instance.host = Some(host);
        Ok(placement(&self.hosts, host))
    }

    /// Frees its GPUs and detaches its volumes; the volumes themselves stay.
    fn delete_instance(&mut self, id: &str) {
        let Some(instance) = self.instances.remove(id) else {
            return;
        };
        if let Some(host) = instance.host {
            self.hosts[host].used -= instance.gpu_count;
        }
        for volume in self.volumes.values_mut() {
            if volume.attached_to.as_deref() == Some(id) {
                volume.attached_to = None;
            }
        }
    }

    fn create_volume(&mut self, id: &str, region: &str, size_gb: u32) {
        self.volumes.entry(id.to_owned()).or_insert_with(|| Volume {
            region: region.to_owned(),
            size_gb,
            attached_to: None,
        });
    }

    fn delete_volume(&mut self, id: &str) -> Result<(), DriverError> {
        if let Some(Volume {
            attached_to: Some(instance_id),
            ..
        }) = self.volumes.get(id)
        {
            return Err(DriverError::Permanent(format!(
                "volume {id} is attached to instance {instance_id}"
            )));
        }
        self.volumes.remove(id);
        Ok(())
    }

    fn resize_volume(&mut self, id: &str, size_gb: u32) -> Result<(), DriverError> {
        let volume = self
            .volumes
            .get_mut(id)
            .ok_or_else(|| volume_not_found(id))?;
        if size_gb < volume.size_gb {
            return Err(DriverError::Permanent(format!(
                "volume {id} is {} GB and cannot shrink to {size_gb} GB",
                volume.size_gb
            )));
        }
        volume.size_gb = size_gb;
        Ok(())
    }

    fn attach_volume(&mut self, instance_id: &str, volume_id: &str) -> Result<(), DriverError> {
        let volume = self
            .volumes
            .get_mut(volume_id)
            .ok_or_else(|| volume_not_found(volume_id))?;
        match &volume.attached_to {
            Some(attached) if attached == instance_id => return Ok(()),
            Some(other) => {
                return Err(DriverError::Permanent(format!(
                    "volume {volume_id} is attached to instance {other}"
                )));
            }
            None => {}
        }
        let instance = usable(&mut self.instances, instance_id)?;
        if instance.power != PowerState::Running {
            return Err(wrong_state(instance_id, &instance.power, "given a volume"));
        }
        if instance.region != volume.region {
            return Err(DriverError::Permanent(format!(
                "volume {volume_id} is in {} but instance {instance_id} is in {}",
                volume.region, instance.region
            )));
        }
        volume.attached_to = Some(instance_id.to_owned());
        Ok(())
    }

    /// Leaves a volume attached to another instance alone: this call may be a stale retry.
    fn detach_volume(&mut self, instance_id: &str, volume_id: &str) {
        if let Some(volume) = self.volumes.get_mut(volume_id)
            && volume.attached_to.as_deref() == Some(instance_id)
        {
            volume.attached_to = None;
        }
    }

    /// An existing snapshot is enough, even if its instance has gone since: this call may be a retry.
    fn create_snapshot(&mut self, instance_id: &str, snapshot_id: &str) -> Result<(), DriverError> {
        if !self.snapshots.contains(snapshot_id) {
            usable(&mut self.instances, instance_id)?;
            self.snapshots.insert(snapshot_id.to_owned());
        }
        Ok(())
    }
}

/// The instance `id`, unless it is unknown or failed (then its failure is the error).
fn usable<'a>(
    instances: &'a mut HashMap<String, Instance>,
    id: &str,
) -> Result<&'a mut Instance, DriverError> {
    let instance = instances
        .get_mut(id)
        .ok_or_else(|| DriverError::Permanent(format!("instance {id} not found")))?;
    if let PowerState::Failed(reason) = &instance.power {
        return Err(DriverError::Permanent(reason.clone()));
    }
    Ok(instance)
}

/// Reserves `count` GPUs on the best-fitting live host: the one with the fewest free GPUs that still fit,
/// which keeps whole hosts free for large instances.
fn place(hosts: &mut [Host], region: &str, model: &str, count: u32) -> Result<usize, DriverError> {
    let index = hosts
        .iter()
        .enumerate()
        .filter(|(_, host)| {
            !host.lost && host.spec.region == region && host.spec.gpu_model == model
        })
        .map(|(index, host)| (index, host.spec.gpus.saturating_sub(host.used)))
        .filter(|&(_, free)| free >= count)
        .min_by_key(|&(_, free)| free)
        .map(|(index, _)| index)
        .ok_or_else(|| DriverError::NoCapacity(format!("{count} {model} GPUs in {region}")))?;
    hosts[index].used += count;
    Ok(index)
}

fn placement(hosts: &[Host], host: usize) -> Placement {
    Placement {
        host: hosts[host].spec.name.clone(),
    }
}

fn wrong_state(id: &str, power: &PowerState, action: &str) -> DriverError {
    let state = match power {
        PowerState::Running => "running",
        PowerState::Stopped => "stopped",
        PowerState::Hibernated => "hibernated",
        PowerState::Missing => "missing",
        PowerState::Failed(_) => "failed",
    };
    DriverError::Permanent(format!("instance {id} is {state} and cannot be {action}"))
}

fn volume_not_found(id: &str) -> DriverError {
    DriverError::Permanent(format!("volume {id} not found"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::task::JoinSet;
    use tokio::time::{Instant, timeout};

    use super::*;
    use crate::BootDisk;

    const REGION: &str = "FINLAND-1";
    const MODEL: &str = "H100-SXM5-80GB";

    fn host(name: &str, gpus: u32) -> SimHost {
        SimHost {
            name: name.to_owned(),
            region: REGION.to_owned(),
            gpu_model: MODEL.to_owned(),
            gpus,
        }
    }

    fn spec(id: &str, gpu_count: u32) -> InstanceSpec {
        InstanceSpec {
            id: id.to_owned(),
            name: id.to_owned(),
            region: REGION.to_owned(),
            gpu_model: MODEL.to_owned(),
            gpu_count,
            vcpus: 44 * gpu_count,
            ram_gb: 185 * gpu_count,
            boot: BootDisk::Image {
                image: "Ubuntu 24.04 + CUDA 12.8 Open + Docker".to_owned(),
                size_gb: 100,
            },
            ssh_public_keys: vec![],
            cloud_init: None,
            startup_script: None,
            volume_ids: vec![],
        }
    }

    fn sim(hosts: Vec<SimHost>) -> SimDriver {
        SimDriver::new(SimConfig {
            delays: SimDelays::instant(),
            hosts,
            faults: vec![],
        })
    }

    fn rule(port: u16) -> PacketRule {
        PacketRule {
            direction: "ingress".to_owned(),
            ethertype: "IPv4".to_owned(),
            protocol: Some("tcp".to_owned()),
            port_range_min: Some(port),
            port_range_max: Some(port),
            remote_ip_prefix: Some("0.0.0.0/0".to_owned()),
        }
    }

    async fn host_of(driver: &SimDriver, id: &str, gpus: u32) -> String {
        driver.create_instance(&spec(id, gpus)).await.unwrap().host
    }

    #[test]
    fn adopted_instances_hold_their_gpus_again() {
        let driver = sim(vec![host("a", 8)]);
        driver.adopt("i-1", "R", 4, Some("a"), PowerState::Running);
        driver.adopt("i-1", "R", 4, Some("a"), PowerState::Running);
        driver.adopt("i-2", "R", 2, None, PowerState::Hibernated);
        driver.adopt("i-3", "R", 8, Some("a"), PowerState::Running);
        driver.adopt("i-4", "R", 1, Some("nowhere"), PowerState::Running);
        let running_on_a = Some((PowerState::Running, Some("a".to_string())));
        assert_eq!(driver.instance("i-1"), running_on_a);
        assert_eq!(driver.instance("i-2"), Some((PowerState::Hibernated, None)));
        assert_eq!(
            driver.instance("i-3"),
            running_on_a,
            "recorded placements are honoured"
        );
        assert!(matches!(
            driver.instance("i-4"),
            Some((PowerState::Failed(_), None))
        ));
        assert_eq!(
            driver.hosts()[0].1,
            12,
            "over-full until placements catch up"
        );
    }

    #[tokio::test]
    async fn places_on_the_best_fitting_host() {
        let mut elsewhere = host("canada", 8);
        elsewhere.region = "CANADA-1".to_owned();
        let mut other_model = host("h200", 1);
        other_model.gpu_model = "H200-141GB".to_owned();
        let driver = sim(vec![
            elsewhere,
            other_model,
            host("a", 8),
            host("b", 4),
            host("c", 8),
        ]);

        assert_eq!(host_of(&driver, "i-1", 2).await, "b");
        // b has 2 free: too few; a and c tie at 8 free, and configuration order breaks the tie.
        assert_eq!(host_of(&driver, "i-2", 4).await, "a");
        assert_eq!(host_of(&driver, "i-3", 3).await, "a");
        assert_eq!(host_of(&driver, "i-4", 1).await, "a");
        assert_eq!(host_of(&driver, "i-5", 8).await, "c");
        assert_eq!(host_of(&driver, "i-6", 2).await, "b");
        assert_eq!(
            driver.create_instance(&spec("i-7", 1)).await,
            Err(DriverError::NoCapacity(
                "1 H100-SXM5-80GB GPUs in FINLAND-1".to_owned()
            ))
        );
        assert_eq!(driver.used_gpus(REGION, MODEL), 20);
        assert_eq!(driver.used_gpus("CANADA-1", MODEL), 0);
        assert_eq!(
            driver.instance("i-6"),
            Some((PowerState::Running, Some("b".to_owned())))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creates_never_oversubscribe() {
        let capacity = [(REGION.to_owned(), MODEL.to_owned(), 20)];
        let driver = Arc::new(SimDriver::new(SimConfig {
            delays: SimDelays {
                create_ms: 1,
                ..SimDelays::instant()
            },
            hosts: hosts_from_capacity(&capacity),
            faults: vec![],
        }));
        let mut creates = JoinSet::new();
        for n in 0..50 {
            let driver = driver.clone();
            creates.spawn(async move { driver.create_instance(&spec(&format!("i-{n}"), 1)).await });
        }
        let (mut placed, mut refused) = (0, 0);
        for result in creates.join_all().await {
            match result {
                Ok(_) => placed += 1,
                Err(DriverError::NoCapacity(_)) => refused += 1,
                Err(error) => panic!("unexpected {error}"),
            }
        }
        assert_eq!((placed, refused), (20, 30));
        assert_eq!(driver.used_gpus(REGION, MODEL), 20);
        assert!(
            driver
                .hosts()
                .iter()
                .all(|(host, used, _)| *used == host.gpus)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_retries_of_one_create_place_it_once() {
        let driver = Arc::new(sim(vec![host("a", 8), host("b", 8)]));
        let mut creates = JoinSet::new();
        for _ in 0..10 {
            let driver = driver.clone();
            creates.spawn(async move { driver.create_instance(&spec("i-1", 4)).await.unwrap() });
        }
        let placements = creates.join_all().await;
        assert!(
            placements
                .iter()
                .all(|placement| *placement == placements[0])
        );
        assert_eq!(driver.used_gpus(REGION, MODEL), 4);
    }

    #[tokio::test]
    async fn create_and_delete_are_idempotent() {
        let driver = sim(vec![host("a", 8), host("b", 8)]);
        let first = driver.create_instance(&spec("i-1", 4)).await.unwrap();
        let again = driver.create_instance(&spec("i-1", 4)).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(driver.used_gpus(REGION, MODEL), 4);

        driver.delete_instance("i-1").await.unwrap();
        driver.delete_instance("i-1").await.unwrap();
        driver.delete_instance("never-existed").await.unwrap();
        assert_eq!(driver.used_gpus(REGION, MODEL), 0);
        assert_eq!(
            driver.observe_instance("i-1").await.unwrap(),
            Observation {
                state: PowerState::Missing,
                host: None
            }
        );
        assert_eq!(driver.calls(Operation::CreateInstance), 2);
        assert_eq!(driver.calls(Operation::DeleteInstance), 3);
    }

    #[tokio::test]
    async fn hibernation_frees_gpus_and_restore_needs_them_back() {
        let driver = sim(vec![host("a", 8)]);
        driver.create_instance(&spec("i-1", 8)).await.unwrap();
        driver.stop_instance("i-1").await.unwrap();
        driver.hibernate_instance("i-1").await.unwrap();
        driver.hibernate_instance("i-1").await.unwrap();
        assert_eq!(driver.used_gpus(REGION, MODEL), 0);
        assert_eq!(
            driver.observe_instance("i-1").await.unwrap(),
            Observation {
                state: PowerState::Hibernated,
                host: None
            }
        );
        assert!(matches!(
            driver.start_instance("i-1").await,
            Err(DriverError::Permanent(_))
        ));
        assert!(matches!(
            driver.create_instance(&spec("i-1", 8)).await,
            Err(DriverError::Permanent(_))
        ));

        driver.create_instance(&spec("i-2", 8)).await.unwrap();
        assert!(matches!(
            driver.restore_instance(&spec("i-1", 8)).await,
            Err(DriverError::NoCapacity(_))
        ));
        assert_eq!(driver.instance("i-1"), Some((PowerState::Hibernated, None)));

        driver.delete_instance("i-2").await.unwrap();
        let restored = driver.restore_instance(&spec("i-1", 8)).await.unwrap();
        assert_eq!(restored.host, "a");
        assert_eq!(
            driver.restore_instance(&spec("i-1", 8)).await.unwrap(),
            restored
        );
        assert_eq!(
            driver.instance("i-1"),
            Some((PowerState::Running, Some("a".to_owned())))
        );
        assert_eq!(driver.used_gpus(REGION, MODEL), 8);
        assert_eq!(
            driver.restore_instance(&spec("unknown", 1)).await,
            Err(DriverError::Permanent(
                "instance unknown not found".to_owned()
            ))
        );
    }

    #[tokio::test]
    async fn power_operations_follow_the_state() {
        let driver = sim(vec![host("a", 8)]);
        driver.create_instance(&spec("i-1", 1)).await.unwrap();
        driver.reboot_instance("i-1").await.unwrap();
        driver.start_instance("i-1").await.unwrap();

        driver.stop_instance("i-1").await.unwrap();
        driver.stop_instance("i-1").await.unwrap();
        assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Stopped);
        assert_eq!(
            driver.reboot_instance("i-1").await,
            Err(DriverError::Permanent(
                "instance i-1 is stopped and cannot be rebooted".to_owned()
            ))
        );
        // A stopped instance keeps its host and GPUs.
        assert_eq!(driver.used_gpus(REGION, MODEL), 1);

        driver.start_instance("i-1").await.unwrap();
        driver.start_instance("i-1").await.unwrap();
        assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Running);

        let not_found = Err(DriverError::Permanent("instance nope not found".to_owned()));
        assert_eq!(driver.start_instance("nope").await, not_found);
        assert_eq!(driver.stop_instance("nope").await, not_found);
        assert_eq!(driver.reboot_instance("nope").await, not_found);
        assert_eq!(driver.hibernate_instance("nope").await, not_found);
    }

    #[tokio::test]
    async fn fail_nth_fails_one_call_counted_from_injection() {
        let driver = sim(vec![host("a", 8)]);
        driver.create_instance(&spec("i-0", 1)).await.unwrap();
        driver.inject(Fault::FailNth {
            operation: Operation::CreateInstance,
            nth: 2,
            permanent: false,
        });

        driver.create_instance(&spec("i-1", 1)).await.unwrap();
        assert_eq!(
            driver.create_instance(&spec("i-2", 1)).await,
            Err(DriverError::Transient(
                "injected failure: call 3 of CreateInstance".to_owned()
            ))
        );
        assert_eq!(driver.instance("i-2"), None);
        driver.create_instance(&spec("i-2", 1)).await.unwrap();
        assert_eq!(driver.calls(Operation::CreateInstance), 4);

        driver.inject(Fault::FailNth {
            operation: Operation::StopInstance,
            nth: 1,
            permanent: true,
        });
        assert!(matches!(
            driver.stop_instance("i-1").await,
            Err(DriverError::Permanent(_))
        ));
        assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Running);
        driver.stop_instance("i-1").await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn hang_never_returns_and_is_spent_after_count_calls() {
        let driver = sim(vec![host("a", 8)]);
        driver.create_instance(&spec("i-1", 1)).await.unwrap();
        driver.stop_instance("i-1").await.unwrap();
        driver.inject(Fault::Hang {
            operation: Operation::StartInstance,
            count: 2,
        });

        for _ in 0..2 {
            let call = timeout(Duration::from_secs(3600), driver.start_instance("i-1")).await;
            assert!(call.is_err(), "a hanging call returned");
        }
        // The abandoned calls changed nothing, and other operations were never affected.
        assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Stopped);
        driver.reboot_instance("i-1").await.unwrap_err();

        driver.start_instance("i-1").await.unwrap();
        assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Running);
        assert_eq!(driver.calls(Operation::StartInstance), 3);
    }

    #[tokio::test]
    async fn a_lost_host_fails_its_instances_and_takes_no_more() {
        let driver = SimDriver::new(SimConfig {
            delays: SimDelays::instant(),
            hosts: vec![host("a", 4), host("b", 8), host("c", 8)],
            faults: vec![Fault::LoseHost {
                host: "c".to_owned(),
            }],
        });
        assert_eq!(host_of(&driver, "i-1", 4).await, "a");
        assert_eq!(host_of(&driver, "i-2", 2).await, "b");
        driver.create_instance(&spec("i-3", 2)).await.unwrap();
        driver.create_instance(&spec("i-3", 2)).await.unwrap();
        driver.inject(Fault::LoseHost {
            host: "b".to_owned(),
        });

        let lost = PowerState::Failed("host b lost".to_owned());
        assert_eq!(driver.instance("i-2"), Some((lost.clone(), None)));
        assert_eq!(
            driver.observe_instance("i-3").await.unwrap(),
            Observation {
                state: lost,
                host: None
            }
        );
        assert_eq!(
            driver.instance("i-1"),
            Some((PowerState::Running, Some("a".to_owned())))
        );
        let failure = Err(DriverError::Permanent("host b lost".to_owned()));
        assert_eq!(driver.start_instance("i-2").await, failure);
        assert_eq!(
            driver.create_instance(&spec("i-2", 2)).await.map(|_| ()),
            failure
        );
        assert_eq!(driver.apply_security_rules("i-2", &[]).await, failure);

        let hosts: Vec<_> = driver
            .hosts()
            .into_iter()
            .map(|(host, used, lost)| (host.name, used, lost))
            .collect();
        assert_eq!(
            hosts,
            [
                ("a".to_owned(), 4, false),
                ("b".to_owned(), 0, true),
                ("c".to_owned(), 0, true)
            ]
        );
        assert!(matches!(
            driver.create_instance(&spec("i-4", 1)).await,
            Err(DriverError::NoCapacity(_))
        ));
        driver.delete_instance("i-2").await.unwrap();
        assert_eq!(driver.instance("i-2"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn operations_take_their_delay() {
        let driver = Arc::new(SimDriver::new(SimConfig {
            hosts: vec![host("a", 8)],
            ..SimConfig::default()
        }));
        let create = tokio::spawn({
            let driver = driver.clone();
            async move { driver.create_instance(&spec("i-1", 1)).await }
        });
        tokio::time::sleep(Duration::from_millis(1499)).await;
        assert_eq!(driver.instance("i-1"), None);
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(driver.instance("i-1").unwrap().0, PowerState::Running);
        create.await.unwrap().unwrap();

        let started = Instant::now();
        driver.stop_instance("i-1").await.unwrap();
        driver.apply_security_rules("i-1", &[]).await.unwrap();
        driver.observe_instance("i-1").await.unwrap();
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(910));
    }

    #[tokio::test]
    async fn volumes_attach_to_one_running_instance() {
        let driver = sim(vec![host("a", 8)]);
        driver.create_instance(&spec("i-1", 1)).await.unwrap();
        driver.create_instance(&spec("i-2", 1)).await.unwrap();
        driver
            .create_volume("v-1", REGION, 100, None)
            .await
            .unwrap();
        driver
            .create_volume("v-1", REGION, 100, None)
            .await
            .unwrap();
        driver
            .create_volume("v-2", REGION, 100, Some("v-1"))
            .await
            .unwrap();
        driver
            .create_volume("v-3", "CANADA-1", 100, None)
            .await
            .unwrap();
        assert_eq!(driver.calls(Operation::CreateVolume), 3);
        assert_eq!(driver.calls(Operation::CloneVolume), 1);

        driver.resize_volume("v-1", 200).await.unwrap();
        driver.resize_volume("v-1", 200).await.unwrap();
        assert!(matches!(
            driver.resize_volume("v-1", 150).await,
            Err(DriverError::Permanent(_))
        ));
        assert!(matches!(
            driver.resize_volume("v-9", 150).await,
            Err(DriverError::Permanent(_))
        ));

        driver.attach_volume("i-1", "v-1").await.unwrap();
        driver.attach_volume("i-1", "v-1").await.unwrap();
        assert_eq!(
            driver.volume_attachment("v-1"),
            Some(Some("i-1".to_owned()))
        );
        assert_eq!(
            driver.attach_volume("i-2", "v-1").await,
            Err(DriverError::Permanent(
                "volume v-1 is attached to instance i-1".to_owned()
            ))
        );
        assert!(matches!(
            driver.attach_volume("i-1", "v-3").await,
            Err(DriverError::Permanent(_))
        ));
        assert!(matches!(
            driver.attach_volume("i-9", "v-2").await,
            Err(DriverError::Permanent(_))
        ));
        assert!(matches!(
            driver.attach_volume("i-1", "v-9").await,
            Err(DriverError::Permanent(_))
        ));
        driver.stop_instance("i-2").await.unwrap();
        assert!(matches!(
            driver.attach_volume("i-2", "v-2").await,
            Err(DriverError::Permanent(_))
        ));
        assert!(matches!(
            driver.delete_volume("v-1").await,
            Err(DriverError::Permanent(_))
        ));

        // Detaching from an instance it is not attached to is a stale retry, not a detach.
        driver.detach_volume("i-2", "v-1").await.unwrap();
        assert_eq!(
            driver.volume_attachment("v-1"),
            Some(Some("i-1".to_owned()))
        );
        driver.detach_volume("i-1", "v-1").await.unwrap();
        driver.detach_volume("i-1", "v-1").await.unwrap();
        assert_eq!(driver.volume_attachment("v-1"), Some(None));
        driver.delete_volume("v-1").await.unwrap();
        driver.delete_volume("v-1").await.unwrap();
        assert_eq!(driver.volume_attachment("v-1"), None);

        driver.attach_volume("i-1", "v-2").await.unwrap();
        driver.delete_instance("i-1").await.unwrap();
        assert_eq!(driver.volume_attachment("v-2"), Some(None));
    }

    #[tokio::test]
    async fn snapshots_need_their_instance_once() {
        let driver = sim(vec![host("a", 8)]);
        assert_eq!(
            driver.create_snapshot("i-1", "s-1").await,
            Err(DriverError::Permanent("instance i-1 not found".to_owned()))
        );
        driver.create_instance(&spec("i-1", 1)).await.unwrap();
        driver.create_snapshot("i-1", "s-1").await.unwrap();
        driver.delete_instance("i-1").await.unwrap();
        driver.create_snapshot("i-1", "s-1").await.unwrap();
        driver.delete_snapshot("s-1").await.unwrap();
        driver.delete_snapshot("s-1").await.unwrap();
        assert!(driver.create_snapshot("i-1", "s-1").await.is_err());
    }

    #[tokio::test]
    async fn instances_boot_from_snapshots_the_simulator_has() {
        let driver = sim(vec![host("a", 8)]);
        let from_snapshot = |id: &str| InstanceSpec {
            boot: BootDisk::Snapshot {
                snapshot_id: "s-1".to_owned(),
                size_gb: 100,
            },
            ..spec(id, 1)
        };
        assert_eq!(
            driver.create_instance(&from_snapshot("i-2")).await,
            Err(DriverError::Permanent("snapshot s-1 not found".to_owned()))
        );
        assert_eq!(driver.used_gpus(REGION, MODEL), 0, "nothing was placed");
        driver.create_instance(&spec("i-1", 1)).await.unwrap();
        driver.create_snapshot("i-1", "s-1").await.unwrap();
        driver.create_instance(&from_snapshot("i-2")).await.unwrap();

        // A restarted simulator learns of the snapshots on record; deleting one leaves what was made from it.
        let restarted = sim(vec![host("a", 8)]);
        assert!(!restarted.has_snapshot("s-1"));
        restarted.recognize_snapshot("s-1");
        assert!(restarted.has_snapshot("s-1"));
        restarted
            .create_instance(&from_snapshot("i-3"))
            .await
            .unwrap();
        restarted.delete_snapshot("s-1").await.unwrap();
        assert!(!restarted.has_snapshot("s-1"));
        assert_eq!(
            restarted.instance("i-3").map(|(power, _)| power),
            Some(PowerState::Running)
        );
    }

    #[tokio::test]
    async fn security_rules_replace_the_previous_set() {
        let driver = sim(vec![host("a", 8)]);
        assert!(matches!(
            driver.apply_security_rules("i-1", &[rule(22)]).await,
            Err(DriverError::Permanent(_))
        ));
        driver.create_instance(&spec("i-1", 1)).await.unwrap();
        assert_eq!(driver.rules("i-1"), None);
        driver
            .apply_security_rules("i-1", &[rule(22), rule(443)])
            .await
            .unwrap();
        driver
            .apply_security_rules("i-1", &[rule(8080)])
            .await
            .unwrap();
        assert_eq!(driver.rules("i-1"), Some(vec![rule(8080)]));
    }

    #[test]
    fn capacity_splits_into_hosts_of_eight() {
        let capacity = [
            ("FINLAND-1".to_owned(), "H100-SXM5-80GB".to_owned(), 20),
            ("CANADA-1".to_owned(), "RTX A6000".to_owned(), 16),
            ("CANADA-1".to_owned(), "L40".to_owned(), 0),
        ];
        let hosts: Vec<_> = hosts_from_capacity(&capacity)
            .into_iter()
            .map(|host| (host.name, host.gpus))
            .collect();
        assert_eq!(
            hosts,
            [
                ("finland-1-h100-sxm5-80gb-01".to_owned(), 8),
                ("finland-1-h100-sxm5-80gb-02".to_owned(), 8),
                ("finland-1-h100-sxm5-80gb-03".to_owned(), 4),
                ("canada-1-rtx-a6000-01".to_owned(), 8),
                ("canada-1-rtx-a6000-02".to_owned(), 8),
            ]
        );
        assert_eq!(hosts_from_capacity(&capacity)[0].region, "FINLAND-1");
        assert_eq!(
            hosts_from_capacity(&capacity)[0].gpu_model,
            "H100-SXM5-80GB"
        );
    }

    #[test]
    fn faults_and_config_read_from_json() {
        let fault: Fault =
            serde_json::from_str(r#"{"kind":"fail_nth","operation":"create_instance","nth":2}"#)
                .unwrap();
        assert_eq!(
            fault,
            Fault::FailNth {
                operation: Operation::CreateInstance,
                nth: 2,
                permanent: false
            }
        );
        let hang: Fault =
            serde_json::from_str(r#"{"kind":"hang","operation":"stop_instance"}"#).unwrap();
        assert_eq!(
            hang,
            Fault::Hang {
                operation: Operation::StopInstance,
                count: 1
            }
        );
        for fault in [
            fault,
            hang,
            Fault::LoseHost {
                host: "a".to_owned(),
            },
        ] {
            let json = serde_json::to_string(&fault).unwrap();
            assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), fault);
        }
        assert!(
            serde_json::from_str::<Fault>(r#"{"kind":"lose_host","host":"a","nth":1}"#).is_err()
        );

        let config: SimConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config.delays, SimDelays::default());
        assert!(config.hosts.is_empty() && config.faults.is_empty());
        let config: SimConfig = serde_json::from_str(r#"{"delays":{"create_ms":5}}"#).unwrap();
        assert_eq!(config.delays.create_ms, 5);
        assert_eq!(config.delays.start_ms, SimDelays::default().start_ms);
        assert!(serde_json::from_str::<SimConfig>(r#"{"delay":{}}"#).is_err());
    }

    #[test]
    fn is_named_as_a_simulator() {
        let driver = sim(vec![]);
        assert_eq!(driver.name(), "sim");
        assert!(driver.is_simulated());
    }
}
