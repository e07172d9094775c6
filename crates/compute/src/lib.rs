//! Compute drivers: what the control plane asks of the machines that run instances.
//!
//! Every operation is idempotent and keyed by the resource id, because a worker that crashed mid-call will
//! call it again: creating an instance that exists returns its placement, deleting one that is gone
//! succeeds. Drivers report failures as [`DriverError`]: transient ones are retried with backoff,
//! permanent ones put the resource in ERROR with the message as the reason.

pub mod deadline;
pub mod libvirt;
pub mod sim;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What an instance is booted from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BootDisk {
    /// A fresh OS disk of `size_gb` from the named OS or custom image.
    Image { image: String, size_gb: u32 },
    /// An existing bootable volume.
    Volume { volume_id: String },
    /// A new disk copied from a snapshot.
    Snapshot { snapshot_id: String, size_gb: u32 },
}

/// What a new volume holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeSource {
    /// Nothing: an empty disk.
    Empty,
    /// A copy of another volume.
    Volume { volume_id: String },
    /// The disk of the named OS image (a bootable volume), grown to the volume's size.
    Image { image: String },
}

impl VolumeSource {
    /// The operation a creation from this source counts as: copying a volume is a clone.
    pub fn operation(&self) -> Operation {
        match self {
            VolumeSource::Volume { .. } => Operation::CloneVolume,
            VolumeSource::Empty | VolumeSource::Image { .. } => Operation::CreateVolume,
        }
    }
}

/// Everything a driver needs to create (or re-create on restore) an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    pub id: String,
    pub name: String,
    pub region: String,
    pub gpu_model: String,
    pub gpu_count: u32,
    pub vcpus: u32,
    pub ram_gb: u32,
    pub boot: BootDisk,
    /// OpenSSH public keys to install for the default user.
    pub ssh_public_keys: Vec<String>,
    pub cloud_init: Option<String>,
    pub startup_script: Option<String>,
    /// Data volumes to attach at boot.
    pub volume_ids: Vec<String>,
}

/// Where an instance runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub host: String,
}

/// The power state a driver observes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerState {
    Running,
    Stopped,
    /// Shelved: no host, disk kept.
    Hibernated,
    /// The driver knows nothing of this instance.
    Missing,
    /// Broken (host lost, hardware fault); the reason says why.
    Failed(String),
}

/// What the control plane's record says of a machine's power, which [`ComputeDriver::recognize`] is
/// told before acting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPower {
    /// Its power before the operation under way, or its power when none is.
    pub now: PowerState,
    /// Where the operation under way takes it (a driver that carried it out already is not behind the
    /// record); `Missing` for a deletion, which a machine in any power may be on its way to.
    pub next: Option<PowerState>,
}

impl From<PowerState> for RecordedPower {
    /// A machine at rest.
    fn from(now: PowerState) -> RecordedPower {
        RecordedPower { now, next: None }
    }
}

/// Whether a running guest is up: booted far enough to answer on its SSH port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Running, not answering yet.
    Booting,
    Ready,
    /// Not running (stopped, hibernated, missing or failed): see [`ComputeDriver::observe_instance`].
    NotRunning,
}

/// Where a client opens an SSH connection to an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshEndpoint {
    pub host: String,
    pub port: u16,
}

/// Utilisation of an instance over the last sampling interval. Rates are per second; a figure the driver
/// cannot measure is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceMetrics {
    /// Of all the instance's vCPUs together: 100 means every vCPU busy.
    pub cpu_percent: f64,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: Option<u64>,
    pub network_rx_bytes_per_sec: Option<f64>,
    pub network_tx_bytes_per_sec: Option<f64>,
    pub disk_read_bytes_per_sec: Option<f64>,
    pub disk_write_bytes_per_sec: Option<f64>,
    pub gpu_percent: Option<f64>,
}

/// One machine of the data centre as the driver sees it, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    pub name: String,
    pub region: String,
    /// The GPU model it offers (a host of the simulator offers one).
    pub gpu_model: Option<String>,
    pub gpus: u32,
    pub gpus_used: u32,
    /// Gone for good (simulator) or unreachable now (real hosts): its instances are in ERROR.
    pub lost: bool,
}

/// GPUs of one model in one region on hosts that are lost (see [`ComputeDriver::lost_gpus`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostGpus {
    pub region: String,
    pub gpu_model: String,
    pub gpus: u32,
}

/// [`LostGpus`] of `hosts`, in region and model order (hosts of no known model are left out).
pub fn lost_gpus_of(hosts: &[HostStatus]) -> Vec<LostGpus> {
    tally_lost_gpus(hosts.iter().filter_map(|host| {
        let model = host.gpu_model.as_deref()?;
        Some((host.region.as_str(), model, host.gpus, host.lost))
    }))
}

/// [`LostGpus`] from (region, model, GPUs, lost) of every host or group of a host's GPUs, in region and
/// model order: each region and model a host has, 0 where none is lost.
pub fn tally_lost_gpus<'a>(
    hosts: impl Iterator<Item = (&'a str, &'a str, u32, bool)>,
) -> Vec<LostGpus> {
    let mut lost: std::collections::BTreeMap<(&str, &str), u32> = Default::default();
    for (region, model, gpus, gone) in hosts {
        *lost.entry((region, model)).or_default() += if gone { gpus } else { 0 };
    }
    lost.into_iter()
        .map(|((region, gpu_model), gpus)| LostGpus {
            region: region.to_string(),
            gpu_model: gpu_model.to_string(),
            gpus,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub state: PowerState,
    pub host: Option<String>,
}

/// A firewall rule as the driver programs it (the union of an instance's own and attached rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketRule {
    pub direction: String,
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    pub remote_ip_prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// Worth retrying (timeouts, a busy host, an injected transient fault).
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying will not help; the resource goes to ERROR with this reason.
    #[error("{0}")]
    Permanent(String),
    /// No capacity on any host for this request.
    #[error("no capacity: {0}")]
    NoCapacity(String),
}

/// Operations kinds, for fault injection and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case")]
pub enum Operation {
    CreateInstance,
    StartInstance,
    StopInstance,
    RebootInstance,
    HibernateInstance,
    RestoreInstance,
    DeleteInstance,
    CreateVolume,
    DeleteVolume,
    ResizeVolume,
    CloneVolume,
    AttachVolume,
    DetachVolume,
    CreateSnapshot,
    DeleteSnapshot,
    ApplySecurityRules,
}

// An operation is named by a string only, never serde's object form of a unit variant
// (`{"reboot_instance": null}`), as `barrack_api::string_enum!` reads the API's enums.
impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Operation::deserialize(serde::de::IntoDeserializer::<D::Error>::into_deserializer(
            name,
        ))
    }
}

impl Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Operation::serialize(self, serializer)
    }
}

#[async_trait]
pub trait ComputeDriver: Send + Sync + 'static {
    /// `sim`, `qemu`, `openstack`.
    fn name(&self) -> &'static str;

    /// Whether this driver is the simulator (simulation mode allows moving the clock).
    fn is_simulated(&self) -> bool {
        false
    }

    /// Tells the driver about an instance the control plane has on record, before acting on it. Drivers
    /// whose machines outlive this process (every real one) have nothing to do. The simulator keeps its
    /// machines in this process's memory, so it re-creates the instance: a restarted server, or another
    /// replica, can then act on machines it did not create; and one it knows but whose power is neither
    /// the record's nor where the operation under way takes it (another replica acted on it since) is
    /// brought back in line with the record.
    fn recognize(
        &self,
        _id: &str,
        _region: &str,
        _gpu_count: u32,
        _host: Option<&str>,
        _power: RecordedPower,
    ) {
    }

    /// The instances this process holds machines for on hosts of `gpu_model` in `region`, when they live
    /// in its memory (the simulator); real drivers answer none. With [`ComputeDriver::forget`], a
    /// placement that finds no room drops the machines of instances another replica deleted or failed.
    fn placed_machines(&self, _region: &str, _gpu_model: &str) -> Vec<String> {
        Vec::new()
    }

    /// Drops this process's machines of `ids`, giving back their GPUs: the control plane has no live
    /// instance of theirs (see [`ComputeDriver::placed_machines`]).
    fn forget(&self, _ids: &[String]) {}

    /// Tells the driver about a volume the control plane has on record, before acting on it: its size and
    /// the instance it is attached to. Like [`ComputeDriver::recognize`], only the simulator (whose volumes
    /// live in this process's memory) has anything to do.
    fn recognize_volume(
        &self,
        _id: &str,
        _region: &str,
        _size_gb: u32,
        _attached_to: Option<&str>,
    ) {
    }

    /// Tells the driver about a snapshot disk the control plane has on record (a `SUCCESS` snapshot, or
    /// one a custom image still boots from), before booting an instance from it. Like
    /// [`ComputeDriver::recognize`], only the simulator has anything to do.
    fn recognize_snapshot(&self, _id: &str) {}

    /// Tells the driver the GPUs operators set for a region and model (the capacity ledger), before
    /// placing or acting on instances there. Real hosts are what they are; the simulator builds its hosts
    /// from capacity, so it adds or retires hosts to match, on every replica that is told.
    fn recognize_capacity(&self, _region: &str, _gpu_model: &str, _total: u32) {}

    /// Tells the simulator what every server on the database shares of the simulation, before placing or
    /// acting on instances: how many times the state was reset (a new count means the machines it knew
    /// were wiped with the records), the slow hosts (host name, factor on its machines' delays) and the
    /// lost hosts (by name; a fault injected through any server, kept until a reset).
    /// Real drivers have nothing to do.
    fn recognize_simulation(
        &self,
        _resets: i64,
        _slow_hosts: &[(String, f64)],
        _lost_hosts: &[String],
    ) {
    }

    /// The most GPUs of a model this driver can ever place in a region, when its hosts are fixed by its
    /// own configuration; `None` when it follows the capacity operators set. Capacity above the limit is
    /// refused, so a deploy is never accepted for GPUs no host has.
    fn capacity_limit(&self, _region: &str, _gpu_model: &str) -> Option<u32> {
        None
    }

    /// Creates and boots an instance; a [`BootDisk::Snapshot`] must name a snapshot the driver has.
    async fn create_instance(&self, spec: &InstanceSpec) -> Result<Placement, DriverError>;
    async fn start_instance(&self, id: &str) -> Result<(), DriverError>;
    async fn stop_instance(&self, id: &str) -> Result<(), DriverError>;
    /// Reboots a running machine; one found powered off (stopped behind the control plane's back) is
    /// started instead, so a reboot always ends with the machine booting.
    async fn reboot_instance(&self, id: &str) -> Result<(), DriverError>;
    /// Frees the host and its GPUs; the disk is kept.
    async fn hibernate_instance(&self, id: &str) -> Result<(), DriverError>;
    /// Places a hibernated instance on a host again.
    async fn restore_instance(&self, spec: &InstanceSpec) -> Result<Placement, DriverError>;
    async fn delete_instance(&self, id: &str) -> Result<(), DriverError>;
    async fn observe_instance(&self, id: &str) -> Result<Observation, DriverError>;

    /// Whether a running instance's guest is up. Drivers whose machines boot at once (the simulator) are
    /// ready whenever they run; real guests take a while after [`ComputeDriver::create_instance`] returns.
    async fn observe_readiness(&self, id: &str) -> Result<Readiness, DriverError> {
        Ok(match self.observe_instance(id).await?.state {
            PowerState::Running => Readiness::Ready,
            _ => Readiness::NotRunning,
        })
    }

    /// How long until a booting machine is expected up, when the driver knows (the simulator times its
    /// boots; a real guest takes what it takes): its job looks again then, not after a fixed interval.
    fn boot_remaining(&self, _id: &str) -> Option<std::time::Duration> {
        None
    }

    /// Where to SSH into the instance, when the driver knows better than its public address on port 22
    /// (a forwarded port, an address from DHCP).
    async fn ssh_endpoint(&self, _id: &str) -> Result<Option<SshEndpoint>, DriverError> {
        Ok(None)
    }

    /// Utilisation of a running instance; `None` when the driver does not measure it or it is not running.
    async fn instance_metrics(&self, _id: &str) -> Result<Option<InstanceMetrics>, DriverError> {
        Ok(None)
    }

    /// The machines instances are placed on, for operators.
    async fn hosts(&self) -> Result<Vec<HostStatus>, DriverError> {
        Ok(vec![])
    }

    /// The GPUs on lost hosts, by region and model, for every region and model the driver has hosts of
    /// (0 where none is lost): stock leaves them out until their host is back. Drivers that can say so
    /// without asking every host answer from what they know.
    async fn lost_gpus(&self) -> Result<Vec<LostGpus>, DriverError> {
        Ok(lost_gpus_of(&self.hosts().await?))
    }

    /// Creates a volume of `size_gb` holding `source`; one that exists already is kept.
    async fn create_volume(
        &self,
        id: &str,
        region: &str,
        size_gb: u32,
        source: &VolumeSource,
    ) -> Result<(), DriverError>;
    async fn delete_volume(&self, id: &str) -> Result<(), DriverError>;
    /// Grows a volume to `size_gb`, attached or not: the guest of a running instance it is attached to
    /// sees the larger disk.
    async fn resize_volume(&self, id: &str, size_gb: u32) -> Result<(), DriverError>;
    async fn attach_volume(&self, instance_id: &str, volume_id: &str) -> Result<(), DriverError>;
    async fn detach_volume(&self, instance_id: &str, volume_id: &str) -> Result<(), DriverError>;
    async fn create_snapshot(
        &self,
        instance_id: &str,
        snapshot_id: &str,
    ) -> Result<(), DriverError>;
    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), DriverError>;
    async fn apply_security_rules(
        &self,
        instance_id: &str,
        rules: &[PacketRule],
    ) -> Result<(), DriverError>;
}
