//! The simulated data centre: a real [`ComputeDriver`] whose hosts, GPUs, volumes and firewalls live in
//! memory. Development and tests run the whole control plane against it: its delays make transitional
//! states observable, and injected faults exercise retries, leases and the ERROR path.
//!
//! Every operation counts its call, lets armed faults decide its fate, sleeps its delay, then applies its
//! effect in one step under the state lock, so concurrent calls can never oversubscribe a host.
//!
//! Operations that boot a machine (create, start, reboot, restore) return as soon as it is placed and
//! started; the machine is then up after the operation's delay, as [`ComputeDriver::observe_readiness`]
//! reports, like a real guest booting after its driver call returned.
//!
//! The state sits here, behind one lock; each concern is a file: `config` (and delays), `hosts` (and
//! placement), `machines` (and their transitions), `volumes` (and snapshots), `faults`, `metrics`.

mod config;
mod faults;
mod hosts;
mod machines;
mod metrics;
mod table;
#[cfg(test)]
mod tests;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::{
    ComputeDriver, DriverError, HostStatus, InstanceMetrics, InstanceSpec, LostGpus, Observation,
    Operation, PacketRule, Placement, PowerState, Readiness, RecordedPower, VolumeSource,
};

pub use config::{SimConfig, SimDelays};
use faults::{ArmedFault, Verdict};
pub use faults::{BadFault, Fault, UnknownHost};
use hosts::Hosts;
pub use hosts::{SimHost, hosts_from_capacity};
use machines::usable;
use table::{MachineKey, Machines};

/// The data centre; every method takes `&self`, so share it behind an `Arc`.
pub struct SimDriver {
    delays: SimDelays,
    /// No hosts were configured: the hosts are built from the capacity operators set, and follow it.
    follows_capacity: bool,
    /// Held only for synchronous bookkeeping, never across an await.
    state: Mutex<State>,
}

impl SimDriver {
    pub fn new(config: SimConfig) -> SimDriver {
        let follows_capacity = config.hosts.is_empty();
        let driver = SimDriver {
            delays: config.delays,
            follows_capacity,
            state: Mutex::new(State {
                hosts: Hosts::new(config.hosts),
                followed_capacity: HashMap::new(),
                instances: Machines::new(),
                regions: Vec::new(),
                rules: HashMap::new(),
                booting: HashMap::new(),
                powered_off: HashSet::new(),
                prune_booting_at: PRUNE_BOOTING_AT,
                volumes: HashMap::new(),
                snapshots: HashSet::new(),
                calls: HashMap::new(),
                faults: Vec::new(),
                resets: None,
                slow_hosts: HashMap::new(),
            }),
        };
        for fault in config.faults {
            if let Err(error) = driver.inject(fault) {
                tracing::warn!(%error, "sim: configured fault ignored");
            }
        }
        driver
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
        self.state().adopt(id, region, gpu_count, host, power);
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
            .map(|host| state.hosts.get(host).spec.name.clone());
        Some((state.power_state(instance.power), host))
    }

    /// Powers the running machine `id` off as a shutdown inside the guest, or someone on its host, would:
    /// without the control plane asking, so that only observing it tells. Whether it was running.
    pub fn power_off(&self, id: &str) -> bool {
        let mut state = self.state();
        let Some((key, instance)) = state.instances.get_mut(id) else {
            return false;
        };
        if instance.power != Power::Running {
            return false;
        }
        instance.power = Power::Stopped;
        state.booting.remove(&key);
        state.powered_off.insert(key);
        true
    }

    /// Machines running but not up yet (booting).
    pub fn booting(&self) -> usize {
        let state = self.state();
        state
            .instances
            .iter()
            .filter(|(key, i)| i.power == Power::Running && state.is_booting(*key))
            .count()
    }

    /// Machines the simulator holds.
    pub fn machines(&self) -> usize {
        self.state().instances.len()
    }

    /// Every host with its used GPUs and whether it is lost, in configuration order (a host retired by a
    /// capacity change is listed until its last instance leaves).
    pub fn hosts(&self) -> Vec<(SimHost, u32, bool)> {
        let state = self.state();
        state
            .hosts
            .iter()
            .filter(|host| host.spec.gpus > 0 || host.used > 0)
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
        let state = self.state();
        let key = state.instances.key(instance_id)?;
        Some(state.rules.get(&key)?.to_vec())
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
        self.begin_on(operation, None).await
    }

    /// [`SimDriver::begin`] for an operation on an instance's machine: a slow host stretches the delay.
    async fn begin_on(
        &self,
        operation: Operation,
        instance: Option<&str>,
    ) -> Result<(), DriverError> {
        self.submit(operation).await?;
        let factor = instance.map_or(1.0, |id| self.state().slowness(id));
        let delay = self.delays.of(operation).mul_f64(factor);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    /// Counts the call and applies faults, for operations that boot a machine: they return at once and
    /// the machine is up after the operation's delay (its boot time), when the instant returned comes.
    async fn submit(&self, operation: Operation) -> Result<Instant, DriverError> {
        let verdict = self.state().begin(operation);
        match verdict {
            Verdict::Proceed => Ok(Instant::now() + self.delays.of(operation)),
            Verdict::Fail(error) => Err(error),
            // Already counted and spent, so dropping this future leaves nothing behind.
            Verdict::Hang => std::future::pending().await,
        }
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
        power: RecordedPower,
    ) {
        // One look at the state: another job of this process cannot act on the machine in between.
        let mut state = self.state();
        if state.behind_record(id, &power) {
            state.realign(id, host, power.now);
        } else {
            state.adopt(id, region, gpu_count, host, power.now);
        }
    }

    fn placed_machines(&self, region: &str, gpu_model: &str) -> Vec<String> {
        let state = self.state();
        let Some(region) = state.regions.iter().position(|r| &**r == region) else {
            return Vec::new();
        };
        state.instances.ids_where(|instance| {
            usize::from(instance.region) == region
                && instance
                    .host
                    .is_some_and(|host| state.hosts.get(host).spec.gpu_model == gpu_model)
        })
    }

    fn forget(&self, ids: &[String]) {
        for id in ids {
            self.state().delete_instance(id);
        }
    }

    fn recognize_volume(&self, id: &str, region: &str, size_gb: u32, attached_to: Option<&str>) {
        self.adopt_volume(id, region, size_gb, attached_to);
    }

    fn recognize_snapshot(&self, id: &str) {
        self.adopt_snapshot(id);
    }

    fn recognize_simulation(
        &self,
        resets: i64,
        slow_hosts: &[(String, f64)],
        lost_hosts: &[String],
    ) {
        self.state()
            .follow_simulation(resets, slow_hosts, lost_hosts);
    }

    fn recognize_capacity(&self, region: &str, gpu_model: &str, total: u32) {
        if self.follows_capacity {
            self.state().follow_capacity(region, gpu_model, total);
        }
    }

    fn capacity_limit(&self, region: &str, gpu_model: &str) -> Option<u32> {
        if self.follows_capacity {
            return None;
        }
        let state = self.state();
        let hosts = state.hosts.iter().filter(|host| {
            !host.lost && host.spec.region == region && host.spec.gpu_model == gpu_model
        });
        Some(hosts.map(|host| host.spec.gpus).sum())
    }

    async fn create_instance(&self, spec: &InstanceSpec) -> Result<Placement, DriverError> {
        let ready_at = self.submit(Operation::CreateInstance).await?;
        let mut state = self.state();
        let placement = state.create_instance(spec, ready_at)?;
        state.slow_boot(&spec.id, self.delays.of(Operation::CreateInstance));
        Ok(placement)
    }

    async fn start_instance(&self, id: &str) -> Result<(), DriverError> {
        let ready_at = self.submit(Operation::StartInstance).await?;
        let mut state = self.state();
        state.start_instance(id, ready_at)?;
        state.slow_boot(id, self.delays.of(Operation::StartInstance));
        Ok(())
    }

    async fn stop_instance(&self, id: &str) -> Result<(), DriverError> {
        self.begin_on(Operation::StopInstance, Some(id)).await?;
        self.state().stop_instance(id)
    }

    async fn reboot_instance(&self, id: &str) -> Result<(), DriverError> {
        let ready_at = self.submit(Operation::RebootInstance).await?;
        let mut state = self.state();
        state.reboot_instance(id, ready_at)?;
        state.slow_boot(id, self.delays.of(Operation::RebootInstance));
        Ok(())
    }

    async fn hibernate_instance(&self, id: &str) -> Result<(), DriverError> {
        self.begin_on(Operation::HibernateInstance, Some(id))
            .await?;
        self.state().hibernate_instance(id)
    }

    async fn restore_instance(&self, spec: &InstanceSpec) -> Result<Placement, DriverError> {
        let ready_at = self.submit(Operation::RestoreInstance).await?;
        let mut state = self.state();
        let placement = state.restore_instance(spec, ready_at)?;
        state.slow_boot(&spec.id, self.delays.of(Operation::RestoreInstance));
        Ok(placement)
    }

    async fn delete_instance(&self, id: &str) -> Result<(), DriverError> {
        self.begin_on(Operation::DeleteInstance, Some(id)).await?;
        self.state().delete_instance(id);
        Ok(())
    }

    async fn observe_instance(&self, id: &str) -> Result<Observation, DriverError> {
        let (state, host) = self.instance(id).unwrap_or((PowerState::Missing, None));
        Ok(Observation { state, host })
    }

    /// Running machines are up once their boot time has passed.
    async fn observe_readiness(&self, id: &str) -> Result<Readiness, DriverError> {
        let state = self.state();
        Ok(match state.instances.get_key_value(id) {
            Some((key, instance)) if instance.power == Power::Running => {
                if state.is_booting(key) {
                    Readiness::Booting
                } else {
                    Readiness::Ready
                }
            }
            _ => Readiness::NotRunning,
        })
    }

    fn boot_remaining(&self, id: &str) -> Option<Duration> {
        let state = self.state();
        let (key, _) = state.instances.get_key_value(id)?;
        state.boot_remaining(key)
    }

    async fn instance_metrics(&self, id: &str) -> Result<Option<InstanceMetrics>, DriverError> {
        Ok(self.state().metrics(id))
    }

    async fn hosts(&self) -> Result<Vec<HostStatus>, DriverError> {
        Ok(SimDriver::hosts(self)
            .into_iter()
            .map(|(host, used, lost)| HostStatus {
                name: host.name,
                region: host.region,
                gpu_model: Some(host.gpu_model),
                gpus: host.gpus,
                gpus_used: used,
                lost,
            })
            .collect())
    }

    async fn lost_gpus(&self) -> Result<Vec<LostGpus>, DriverError> {
        // Straight from the hosts, without a copy of each (a data centre of a million instances has
        // over a hundred thousand).
        let state = self.state();
        Ok(crate::tally_lost_gpus(state.hosts.iter().map(|host| {
            let spec = &host.spec;
            (
                spec.region.as_str(),
                spec.gpu_model.as_str(),
                spec.gpus,
                host.lost,
            )
        })))
    }

    /// A copy of a volume is a clone, so faults can target clones apart; a volume holds no data here, so
    /// an image's is taken as given.
    async fn create_volume(
        &self,
        id: &str,
        region: &str,
        size_gb: u32,
        source: &VolumeSource,
    ) -> Result<(), DriverError> {
        self.begin(source.operation()).await?;
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
        self.begin_on(Operation::CreateSnapshot, Some(instance_id))
            .await?;
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
        let mut state = self.state();
        let (key, _) = usable(&mut state, instance_id)?;
        state.rules.insert(key, rules.into());
        Ok(())
    }
}

struct State {
    hosts: Hosts,
    /// The capacity [`State::follow_capacity`] last applied per (region, GPU model).
    followed_capacity: HashMap<(String, String), u32>,
    /// Every machine: a million of them in a large installation (see [`table`]).
    instances: Machines,
    /// The regions instances are in, each held once; [`Instance::region`] is a position here.
    regions: Vec<Box<str>>,
    /// The rules last applied to a machine (none until they are first applied).
    rules: HashMap<MachineKey, Box<[PacketRule]>>,
    /// When the boots started by this process complete; boots that completed are dropped as it grows.
    booting: HashMap<MachineKey, Instant>,
    /// Machines that powered off by themselves ([`SimDriver::power_off`]) and have not been started
    /// since: the data centre changed, so a record saying they run is behind them, not they behind it.
    powered_off: HashSet<MachineKey>,
    /// The size of `booting` at which it is next rid of completed boots.
    prune_booting_at: usize,
    volumes: HashMap<String, Volume>,
    snapshots: HashSet<String>,
    calls: HashMap<Operation, u64>,
    /// In injection order.
    faults: Vec<ArmedFault>,
    /// The resets of the shared state this simulator has followed (`None` until it is first told).
    resets: Option<i64>,
    /// Factors on the delays of the machines of slow hosts, by host name.
    slow_hosts: HashMap<String, f64>,
}

/// `booting` is pruned from this size on.
const PRUNE_BOOTING_AT: usize = 1024;

/// What the simulator holds of a machine, in 28 bytes: the table holds every instance of the
/// installation. What only some machines have (rules, a boot in progress) is kept beside it.
struct Instance {
    /// Index into `State::hosts`; `None` while hibernated or failed.
    host: Option<u32>,
    gpu_count: u32,
    /// 0 when not known (an adopted instance).
    ram_gb: u32,
    /// Index into `State::regions`.
    region: u16,
    power: Power,
}

/// The machines as the control plane records them (see [`SimDriver::adopt`], `ComputeDriver::recognize`).
impl State {
    fn adopt(
        &mut self,
        id: &str,
        region: &str,
        gpu_count: u32,
        host: Option<&str>,
        power: PowerState,
    ) {
        if self.instances.contains(id) {
            return;
        }
        let (power, host) = self.take_recorded_place(host, power, gpu_count);
        let region = self.region(region);
        self.instances.insert(
            id,
            Instance {
                region,
                gpu_count,
                power,
                host,
                ram_gb: 0,
            },
        );
    }

    /// Whether this process's machine `id` is behind its record: another replica acted on it since this
    /// one last did (hibernated or restored it, say), so its power is neither the record's nor where the
    /// operation under way takes it. A lost host's machine stays as it is.
    fn behind_record(&self, id: &str, record: &RecordedPower) -> bool {
        let Some((key, instance)) = self.instances.get_key_value(id) else {
            return false;
        };
        if self.powered_off.contains(&key) {
            // It stopped here, after the record was written: the record is behind.
            return false;
        }
        let local = match instance.power {
            Power::Running => PowerState::Running,
            Power::Stopped => PowerState::Stopped,
            Power::Hibernated => PowerState::Hibernated,
            Power::HostLost(_) | Power::HostUnknown => return false,
        };
        let on_its_way = match &record.next {
            // A deletion may find a machine in any power; hibernation starts from a running or a
            // stopped one, and finds a hibernated one done.
            Some(PowerState::Missing | PowerState::Hibernated) => true,
            Some(next) => *next == local,
            None => false,
        };
        local != record.now && !on_its_way
    }

    /// Puts this process's machine `id` where its record says, with that power: its GPUs move from the
    /// host it had here to the recorded one (none while hibernated).
    fn realign(&mut self, id: &str, host: Option<&str>, power: PowerState) {
        let Some(instance) = self.instances.get(id) else {
            return;
        };
        let (gpus, had) = (instance.gpu_count, instance.host);
        if let Some(had) = had {
            self.hosts.release(had, gpus);
        }
        let (power, host) = self.take_recorded_place(host, power, gpus);
        if let Some((_, instance)) = self.instances.get_mut(id) {
            instance.power = power;
            instance.host = host;
        }
    }
}

/// [`PowerState`] without strings: a failure's reason is told from its cause when asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Power {
    Running,
    Stopped,
    Hibernated,
    /// Its host (index into `State::hosts`) was lost.
    HostLost(u32),
    /// Adopted on a host the data centre does not have.
    HostUnknown,
}

struct Volume {
    region: String,
    size_gb: u32,
    attached_to: Option<String>,
}
