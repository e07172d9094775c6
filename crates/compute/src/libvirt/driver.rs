//! The lifecycle of instances on libvirt hosts. Other concerns are methods of the same driver state in
//! files of their own: choosing a host and the GPUs ([`placement`]), connections and lost hosts
//! ([`hosts`]), observing guests ([`observe`]), disks booted without a boot loader ([`boot`]), data
//! volumes ([`volumes`]), snapshots ([`snapshots`]) and security rules ([`rules`]).

mod boot;
mod hosts;
mod observe;
mod placement;
mod rules;
mod snapshots;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::storage_pool::StoragePool;
use virt::sys;

use super::config::{HostConfig, LibvirtConfig, NetworkMode};
use super::storage::{self, GIB};
use super::xml::{self, DiskXml, DomainXml, InterfaceXml, Metadata, PciAddress};
use super::{driver_error, is_missing, metrics, network, seed};
use crate::{
    BootDisk, ComputeDriver, DriverError, HostStatus, InstanceMetrics, InstanceSpec, LostGpus,
    Observation, PacketRule, Placement, PowerState, Readiness, SshEndpoint, VolumeSource,
};
use boot::BootFiles;

/// Real machines through libvirt; share it behind an `Arc`.
pub struct LibvirtDriver {
    inner: Arc<Inner>,
}

struct Inner {
    config: LibvirtConfig,
    /// One connection per host, opened on first use and again when it dies.
    connections: Mutex<HashMap<String, Connect>>,
    /// Held while choosing GPUs and ports and defining the domain, so two creations in this process
    /// cannot pick the same ones.
    placing: Mutex<()>,
    /// The last counters of each domain, for rates between calls of `instance_metrics`.
    samples: Mutex<HashMap<String, metrics::Sample>>,
    /// Since when each host has failed to connect, by name; cleared when it answers again.
    unreachable_since: Mutex<HashMap<String, Instant>>,
}

/// A domain of ours and the host it was found on.
struct Found {
    host: HostConfig,
    conn: Connect,
    domain: Domain,
}

impl LibvirtDriver {
    pub fn new(config: LibvirtConfig) -> Result<LibvirtDriver, String> {
        config.validate()?;
        // libvirt prints every error on stderr by default; they are returned to callers instead.
        virt::error::clear_error_callback();
        Ok(LibvirtDriver {
            inner: Arc::new(Inner {
                config,
                connections: Mutex::new(HashMap::new()),
                placing: Mutex::new(()),
                samples: Mutex::new(HashMap::new()),
                unreachable_since: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &LibvirtConfig {
        &self.inner.config
    }

    /// The domain name of an instance.
    pub fn domain_name(&self, id: &str) -> String {
        self.inner.domain_name(id)
    }

    /// The nwfilter name of an instance.
    pub fn filter_name(&self, id: &str) -> String {
        self.inner.domain_name(id)
    }

    /// Defines an instance's domain without starting it or creating its disks; returns its XML. For
    /// checking placement and definitions on machines that lack the hardware (GPUs) to run them.
    pub async fn define_only(&self, spec: &InstanceSpec) -> Result<String, DriverError> {
        let spec = spec.clone();
        self.blocking(move |inner| inner.define_only(&spec)).await
    }

    /// The XML libvirt holds for an instance's domain (its persistent definition), if it exists.
    pub async fn domain_xml(&self, id: &str) -> Result<Option<String>, DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| {
            Ok(match inner.find(&id)? {
                Some(found) => Some(
                    found
                        .domain
                        .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
                        .map_err(|e| driver_error("domain XML", e))?,
                ),
                None => None,
            })
        })
        .await
    }

    /// The nwfilter XML of an instance's rules, as libvirt holds it, if defined on any host.
    pub async fn filter_xml(&self, id: &str) -> Result<Option<String>, DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| {
            let name = inner.domain_name(&id);
            for host in &inner.config.hosts {
                let conn = inner.connect(host)?;
                match conn.lookup_nwfilter_by_name(&name) {
                    Ok(filter) => {
                        return filter
                            .xml_desc(0)
                            .map(Some)
                            .map_err(|e| driver_error("filter XML", e));
                    }
                    Err(error) if is_missing(&error) => {}
                    Err(error) => return Err(driver_error("look up filter", error)),
                }
            }
            Ok(None)
        })
        .await
    }

    /// Names of the pool volumes that belong to an instance (root disk, seed, console log).
    pub async fn instance_volumes(&self, id: &str) -> Result<Vec<String>, DriverError> {
        let prefix = format!("{}-", self.inner.domain_name(id));
        self.blocking(move |inner| {
            let mut names = Vec::new();
            for host in &inner.config.hosts {
                let conn = inner.connect(host)?;
                let pool = inner.pool(&conn)?;
                let listed = pool
                    .list_volumes()
                    .map_err(|e| driver_error("list volumes", e))?;
                names.extend(listed.into_iter().filter(|name| name.starts_with(&prefix)));
            }
            Ok(names)
        })
        .await
    }

    /// Names of all domains this driver owns on every host.
    pub async fn domains(&self) -> Result<Vec<String>, DriverError> {
        self.blocking(|inner| {
            let mut names = Vec::new();
            for host in &inner.config.hosts {
                let conn = inner.connect(host)?;
                for domain in inner.own_domains(&conn)? {
                    names.push(domain.name().unwrap_or_default());
                }
            }
            Ok(names)
        })
        .await
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, DriverError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, DriverError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| DriverError::Transient(format!("libvirt call panicked: {e}")))?
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn not_found(id: &str) -> DriverError {
    DriverError::Permanent(format!("instance {id} not found"))
}

impl Inner {
    fn domain_name(&self, id: &str) -> String {
        format!("{}{id}", self.config.name_prefix)
    }

    fn root_volume(&self, id: &str) -> String {
        format!("{}-root.qcow2", self.domain_name(id))
    }

    fn seed_volume(&self, id: &str) -> String {
        format!("{}-seed.iso", self.domain_name(id))
    }

    fn console_volume(&self, id: &str) -> String {
        format!("{}-console.log", self.domain_name(id))
    }

    fn data_volume(&self, id: &str) -> String {
        format!("{}vol-{id}.qcow2", self.config.name_prefix)
    }

    fn snapshot_volume(&self, id: &str) -> String {
        format!("{}snap-{id}.qcow2", self.config.name_prefix)
    }

    /// Beside a snapshot: how to boot it (kernel, initrd, command line), for disks without a boot loader.
    fn boot_volume(volume: &str) -> String {
        format!("{volume}.boot")
    }

    fn pool(&self, conn: &Connect) -> Result<StoragePool, DriverError> {
        storage::pool(
            conn,
            &self.config.pool_name,
            &self.config.pool_dir.to_string_lossy(),
        )
    }

    /// The instance's domain on whichever host has it. A host that cannot be reached makes "not found"
    /// uncertain, so that is a transient error rather than `None`.
    fn find(&self, id: &str) -> Result<Option<Found>, DriverError> {
        let name = self.domain_name(id);
        let mut unreachable = None;
        for host in &self.config.hosts {
            let conn = match self.connect(host) {
                Ok(conn) => conn,
                Err(error) => {
                    unreachable = Some(error);
                    continue;
                }
            };
            match conn.lookup_domain_by_name(&name) {
                Ok(domain) => {
                    return Ok(Some(Found {
                        host: host.clone(),
                        conn,
                        domain,
                    }));
                }
                Err(error) if is_missing(&error) => {}
                Err(error) => return Err(driver_error("look up domain", error)),
            }
        }
        match unreachable {
            Some(error) => Err(error),
            None => Ok(None),
        }
    }

    fn found(&self, id: &str) -> Result<Found, DriverError> {
        self.find(id)?.ok_or_else(|| not_found(id))
    }

    fn own_domains(&self, conn: &Connect) -> Result<Vec<Domain>, DriverError> {
        let domains = conn
            .list_all_domains(0)
            .map_err(|e| driver_error("list domains", e))?;
        Ok(domains
            .into_iter()
            .filter(|domain| {
                domain
                    .name()
                    .is_ok_and(|name| name.starts_with(&self.config.name_prefix))
            })
            .collect())
    }

    /// The domain definition of an instance on a host, given its disks and boot.
    #[allow(clippy::too_many_arguments)]
    fn domain_xml(
        &self,
        spec: &InstanceSpec,
        host: &HostConfig,
        gpus: Vec<PciAddress>,
        disks: Vec<DiskXml>,
        boot: &BootFiles,
        port: Option<u16>,
    ) -> DomainXml {
        let (vcpus, memory_mb) = self.shape(spec);
        let filter = self.domain_name(&spec.id);
        let (devices, slots) = split_gpus(host, gpus);
        let interface = match self.config.network.mode {
            NetworkMode::User => InterfaceXml::User {
                address: self.config.network.forward_address.clone(),
                port: port.unwrap_or(self.config.network.ssh_port_min),
            },
            NetworkMode::Network => InterfaceXml::Network {
                name: self.config.network.source.clone(),
                filter,
            },
            NetworkMode::Bridge => InterfaceXml::Bridge {
                name: self.config.network.source.clone(),
                filter,
            },
        };
        DomainXml {
            name: self.domain_name(&spec.id),
            domain_type: self.config.domain_type.clone(),
            machine: self.config.machine.clone(),
            vcpus,
            memory_mb,
            kernel: boot.kernel.clone(),
            initrd: boot.initrd.clone(),
            cmdline: boot.cmdline.clone(),
            disks,
            interface,
            mac: xml::mac_for(&spec.id),
            gpus: devices,
            console_log: format!(
                "{}/{}",
                self.config.pool_dir.to_string_lossy().trim_end_matches('/'),
                self.console_volume(&spec.id)
            ),
            hotplug_ports: self.config.hotplug_ports,
            metadata: Metadata {
                host: host.name.clone(),
                gpu_model: spec.gpu_model.clone(),
                gpu_count: spec.gpu_count,
                hibernated: false,
                gpus: slots,
            },
        }
    }

    fn define_only(&self, spec: &InstanceSpec) -> Result<String, DriverError> {
        let _placing = lock(&self.placing);
        if let Some(found) = self.find(&spec.id)? {
            return found
                .domain
                .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
                .map_err(|e| driver_error("domain XML", e));
        }
        let (host, gpus) = self.place(spec)?;
        let conn = self.connect(&host)?;
        let boot = self.boot_files(&conn, spec)?;
        let root = DiskXml {
            path: format!(
                "{}/{}",
                self.config.pool_dir.to_string_lossy(),
                self.root_volume(&spec.id)
            ),
            format: "qcow2".into(),
            target: "vda".into(),
            read_only: false,
            serial: None,
        };
        let definition = self.domain_xml(spec, &host, gpus, vec![root], &boot, None);
        let domain = conn
            .define_domain_xml(&definition.to_xml())
            .map_err(|e| driver_error("define domain", e))?;
        domain
            .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
            .map_err(|e| driver_error("domain XML", e))
    }

    fn create(&self, spec: &InstanceSpec) -> Result<Placement, DriverError> {
        let _placing = lock(&self.placing);
        // A repeated call (the first one crashed or timed out) finds the domain it made.
        if let Some(found) = self.find(&spec.id)? {
            if !found.domain.is_active().unwrap_or(false) && !self.is_hibernated(&found.domain) {
                self.start_domain(&found.domain)?;
            }
            return Ok(Placement {
                host: found.host.name,
            });
        }
        let (host, gpus) = self.place(spec)?;
        let conn = self.connect(&host)?;
        let pool = self.pool(&conn)?;
        let boot = self.boot_files(&conn, spec)?;

        let root = match &spec.boot {
            BootDisk::Image { image, size_gb } => {
                let image = &self.config.images[image];
                storage::create_qcow2(
                    &pool,
                    &self.root_volume(&spec.id),
                    u64::from(*size_gb) * GIB,
                    Some((&image.disk.to_string_lossy(), &image.format)),
                )?
            }
            BootDisk::Snapshot {
                snapshot_id,
                size_gb,
            } => {
                let source = storage::volume(&pool, &self.snapshot_volume(snapshot_id))?
                    .ok_or_else(|| {
                        DriverError::Permanent(format!(
                            "snapshot {snapshot_id} not found on host {}",
                            host.name
                        ))
                    })?;
                storage::clone(
                    &pool,
                    &self.root_volume(&spec.id),
                    &source,
                    Some(u64::from(*size_gb) * GIB),
                )?
            }
            BootDisk::Volume { volume_id } => storage::volume(&pool, &self.data_volume(volume_id))?
                .ok_or_else(|| {
                    DriverError::Permanent(format!(
                        "volume {volume_id} not found on host {}",
                        host.name
                    ))
                })?,
        };
        let seed = storage::upload(
            &conn,
            &pool,
            &self.seed_volume(&spec.id),
            &seed::iso(spec).map_err(DriverError::Permanent)?,
        )?;
        let mut disks = vec![
            DiskXml {
                path: storage::path(&root)?,
                format: "qcow2".into(),
                target: "vda".into(),
                read_only: false,
                serial: None,
            },
            DiskXml {
                path: storage::path(&seed)?,
                format: "raw".into(),
                target: "vdb".into(),
                read_only: true,
                serial: None,
            },
        ];
        for (index, volume_id) in spec.volume_ids.iter().enumerate() {
            let volume =
                storage::volume(&pool, &self.data_volume(volume_id))?.ok_or_else(|| {
                    DriverError::Permanent(format!(
                        "volume {volume_id} not found on host {}",
                        host.name
                    ))
                })?;
            disks.push(DiskXml {
                path: storage::path(&volume)?,
                format: "qcow2".into(),
                target: target_name(index + 2),
                read_only: false,
                serial: Some(serial(volume_id)),
            });
        }
        // The filter must exist before a domain that refers to it starts; until the rules arrive it
        // lets nothing in.
        self.define_filter(&conn, &spec.id, &[], false)?;
        let port = match self.config.network.mode {
            NetworkMode::User => {
                let (_, ports) = self.held(&conn)?;
                Some(
                    network::free_port(&self.config.network, &ports, Self::is_local(&host))
                        .ok_or_else(|| {
                            DriverError::NoCapacity(format!(
                                "no free SSH port on host {}",
                                host.name
                            ))
                        })?,
                )
            }
            _ => None,
        };
        let definition = self.domain_xml(spec, &host, gpus, disks, &boot, port);
        let domain = conn
            .define_domain_xml(&definition.to_xml())
            .map_err(|e| driver_error("define domain", e))?;
        self.start_domain(&domain)?;
        Ok(Placement { host: host.name })
    }

    fn start_domain(&self, domain: &Domain) -> Result<(), DriverError> {
        match domain.create() {
            Ok(_) => Ok(()),
            // Started meanwhile.
            Err(_) if domain.is_active().unwrap_or(false) => Ok(()),
            Err(error) => Err(driver_error("start domain", error)),
        }
    }

    fn metadata(domain: &Domain) -> Option<Metadata> {
        Metadata::from_domain_xml(&domain.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE).ok()?)
    }

    fn is_hibernated(&self, domain: &Domain) -> bool {
        domain.has_managed_save(0).unwrap_or(false)
            || Self::metadata(domain).is_some_and(|m| m.hibernated)
    }

    fn set_metadata(&self, domain: &Domain, metadata: &Metadata) -> Result<(), DriverError> {
        let mut flags = sys::VIR_DOMAIN_AFFECT_CONFIG;
        if domain.is_active().unwrap_or(false) {
            flags |= sys::VIR_DOMAIN_AFFECT_LIVE;
        }
        domain
            .set_metadata(
                sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                Some(&metadata.to_xml()),
                Some(xml::METADATA_KEY),
                Some(xml::METADATA_URI),
                flags,
            )
            .map_err(|e| driver_error("set domain metadata", e))
    }

    fn start(&self, id: &str) -> Result<(), DriverError> {
        let found = self.found(id)?;
        if found.domain.is_active().unwrap_or(false) {
            return Ok(());
        }
        if Self::metadata(&found.domain).is_some_and(|m| m.hibernated) {
            return Err(DriverError::Permanent(format!(
                "instance {id} is hibernated and cannot be started"
            )));
        }
        self.start_domain(&found.domain)
    }

    /// The ACPI power button, then, if the guest is still running after the timeout, power off.
    fn power_off(&self, domain: &Domain) -> Result<(), DriverError> {
        if !domain.is_active().unwrap_or(false) {
            return Ok(());
        }
        let _ = domain.shutdown_flags(sys::VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN);
        let deadline = Instant::now() + Duration::from_secs(self.config.shutdown_timeout_secs);
        while Instant::now() < deadline {
            if !domain.is_active().unwrap_or(true) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        match domain.destroy() {
            Ok(()) => Ok(()),
            Err(_) if !domain.is_active().unwrap_or(true) => Ok(()),
            Err(error) => Err(driver_error("power off domain", error)),
        }
    }

    fn stop(&self, id: &str) -> Result<(), DriverError> {
        let found = self.found(id)?;
        self.power_off(&found.domain)
    }

    /// The ACPI reboot of a running guest; one found powered off (shut down from inside, or on its host)
    /// is booted instead, as [`Inner::start`] would.
    fn reboot(&self, id: &str) -> Result<(), DriverError> {
        let found = self.found(id)?;
        if !found.domain.is_active().unwrap_or(false) {
            return self.start(id);
        }
        found
            .domain
            .reboot(sys::VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)
            .map_err(|e| driver_error("reboot domain", e))
    }

    /// Managed save (memory to disk, resumed on restore) where no GPU is passed through; QEMU cannot save
    /// a passthrough device's state, so those guests are shut down and their GPUs released instead.
    fn hibernate(&self, id: &str) -> Result<(), DriverError> {
        let found = self.found(id)?;
        let domain = &found.domain;
        let definition = domain
            .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
            .map_err(|e| driver_error("domain XML", e))?;
        let mut metadata = Metadata::from_domain_xml(&definition).unwrap_or(Metadata {
            host: found.host.name.clone(),
            gpu_model: String::new(),
            gpu_count: 0,
            hibernated: false,
            gpus: vec![],
        });
        if metadata.hibernated || domain.has_managed_save(0).unwrap_or(false) {
            return Ok(());
        }
        if xml::hostdevs(&definition).is_empty() {
            if domain.is_active().unwrap_or(false) {
                domain
                    .managed_save(0)
                    .map_err(|e| driver_error("save domain", e))?;
            }
        } else {
            self.power_off(domain)?;
            found
                .conn
                .define_domain_xml(&xml::without_hostdevs(&definition))
                .map_err(|e| driver_error("release GPUs", e))?;
        }
        metadata.hibernated = true;
        metadata.gpus.clear();
        self.set_metadata(domain, &metadata)
    }

    fn restore(&self, spec: &InstanceSpec) -> Result<Placement, DriverError> {
        let _placing = lock(&self.placing);
        let found = self.found(&spec.id)?;
        let domain = &found.domain;
        if domain.is_active().unwrap_or(false) {
            return Ok(Placement {
                host: found.host.name,
            });
        }
        let definition = domain
            .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
            .map_err(|e| driver_error("domain XML", e))?;
        let mut metadata = Metadata::from_domain_xml(&definition).unwrap_or(Metadata {
            host: found.host.name.clone(),
            gpu_model: spec.gpu_model.clone(),
            gpu_count: spec.gpu_count,
            hibernated: true,
            gpus: vec![],
        });
        // Disks are local to the host, so the GPUs come from the same host again.
        if spec.gpu_count > 0 && xml::hostdevs(&definition).is_empty() && metadata.gpus.is_empty() {
            let (used, _) = self.held(&found.conn)?;
            let free: Vec<PciAddress> = Self::configured_gpus(&found.host, &spec.gpu_model)
                .into_iter()
                .filter(|gpu| !used.contains(gpu))
                .take(spec.gpu_count as usize)
                .collect();
            if free.len() < spec.gpu_count as usize {
                return Err(DriverError::NoCapacity(format!(
                    "host {} has {} free {} GPUs, {} needed",
                    found.host.name,
                    free.len(),
                    spec.gpu_model,
                    spec.gpu_count
                )));
            }
            let (devices, slots) = split_gpus(&found.host, free);
            if !devices.is_empty() {
                let devices: Vec<String> = devices.iter().map(PciAddress::hostdev_xml).collect();
                found
                    .conn
                    .define_domain_xml(&xml::with_devices(&definition, &devices))
                    .map_err(|e| driver_error("assign GPUs", e))?;
            }
            metadata.gpus = slots;
        }
        metadata.hibernated = false;
        self.set_metadata(domain, &metadata)?;
        self.start_domain(domain)?;
        Ok(Placement {
            host: found.host.name,
        })
    }

    fn delete(&self, id: &str) -> Result<(), DriverError> {
        let name = self.domain_name(id);
        let mut unreachable = None;
        for host in &self.config.hosts {
            let conn = match self.connect(host) {
                Ok(conn) => conn,
                Err(error) => {
                    unreachable = Some(error);
                    continue;
                }
            };
            match conn.lookup_domain_by_name(&name) {
                Ok(domain) => {
                    if domain.is_active().unwrap_or(false) {
                        match domain.destroy() {
                            Ok(()) => {}
                            Err(_) if !domain.is_active().unwrap_or(true) => {}
                            Err(error) => return Err(driver_error("destroy domain", error)),
                        }
                    }
                    match domain.undefine_flags(
                        sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                            | sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                            | sys::VIR_DOMAIN_UNDEFINE_NVRAM,
                    ) {
                        Ok(()) => {}
                        Err(error) if is_missing(&error) => {}
                        Err(error) => return Err(driver_error("undefine domain", error)),
                    }
                }
                Err(error) if is_missing(&error) => {}
                Err(error) => return Err(driver_error("look up domain", error)),
            }
            let pool = self.pool(&conn)?;
            for volume in [
                self.root_volume(id),
                self.seed_volume(id),
                self.console_volume(id),
            ] {
                storage::delete(&pool, &volume)?;
            }
            match conn.lookup_nwfilter_by_name(&name) {
                Ok(filter) => match filter.undefine() {
                    Ok(()) => {}
                    Err(error) if is_missing(&error) => {}
                    Err(error) => return Err(driver_error("undefine filter", error)),
                },
                Err(error) if is_missing(&error) => {}
                Err(error) => return Err(driver_error("look up filter", error)),
            }
        }
        match unreachable {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Chosen GPUs as (devices to pass through, placeholders held without a device).
fn split_gpus(host: &HostConfig, gpus: Vec<PciAddress>) -> (Vec<PciAddress>, Vec<PciAddress>) {
    gpus.into_iter().partition(|gpu| host.passes_through(gpu))
}

/// `vda`, `vdb`, … for disk index 0, 1, …
fn target_name(index: usize) -> String {
    format!("vd{}", (b'a' + index as u8) as char)
}

/// A disk serial from a volume id (virtio allows 20 characters).
fn serial(volume_id: &str) -> String {
    volume_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(20)
        .collect()
}

#[async_trait]
impl ComputeDriver for LibvirtDriver {
    fn name(&self) -> &'static str {
        "libvirt"
    }

    async fn create_instance(&self, spec: &InstanceSpec) -> Result<Placement, DriverError> {
        let spec = spec.clone();
        self.blocking(move |inner| inner.create(&spec)).await
    }

    async fn start_instance(&self, id: &str) -> Result<(), DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| inner.start(&id)).await
    }

    async fn stop_instance(&self, id: &str) -> Result<(), DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| inner.stop(&id)).await
    }

    async fn reboot_instance(&self, id: &str) -> Result<(), DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| inner.reboot(&id)).await
    }

    async fn hibernate_instance(&self, id: &str) -> Result<(), DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| inner.hibernate(&id)).await
    }

    async fn restore_instance(&self, spec: &InstanceSpec) -> Result<Placement, DriverError> {
        let spec = spec.clone();
        self.blocking(move |inner| inner.restore(&spec)).await
    }

    async fn delete_instance(&self, id: &str) -> Result<(), DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| inner.delete(&id)).await
    }

    async fn observe_instance(&self, id: &str) -> Result<Observation, DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| inner.observe(&id)).await
    }

    async fn observe_readiness(&self, id: &str) -> Result<Readiness, DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| inner.readiness(&id)).await
    }

    async fn ssh_endpoint(&self, id: &str) -> Result<Option<SshEndpoint>, DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| {
            Ok(match inner.find(&id)? {
                Some(found) => inner.endpoint(&found),
                None => None,
            })
        })
        .await
    }

    async fn instance_metrics(&self, id: &str) -> Result<Option<InstanceMetrics>, DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| inner.metrics(&id)).await
    }

    async fn hosts(&self) -> Result<Vec<HostStatus>, DriverError> {
        self.blocking(|inner| Ok(inner.host_statuses())).await
    }

    async fn lost_gpus(&self) -> Result<Vec<LostGpus>, DriverError> {
        // From the configuration and the hosts' reachability, without connecting to any.
        self.blocking(|inner| Ok(inner.lost_gpus())).await
    }

    async fn create_volume(
        &self,
        id: &str,
        region: &str,
        size_gb: u32,
        source: &VolumeSource,
    ) -> Result<(), DriverError> {
        let (id, region, source) = (id.to_string(), region.to_string(), source.clone());
        self.blocking(move |inner| inner.create_volume(&id, &region, size_gb, &source))
            .await
    }

    async fn delete_volume(&self, id: &str) -> Result<(), DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| inner.delete_volume(&id)).await
    }

    async fn resize_volume(&self, id: &str, size_gb: u32) -> Result<(), DriverError> {
        let id = id.to_string();
        self.blocking(move |inner| inner.resize_volume(&id, size_gb))
            .await
    }

    async fn attach_volume(&self, instance_id: &str, volume_id: &str) -> Result<(), DriverError> {
        let (instance_id, volume_id) = (instance_id.to_string(), volume_id.to_string());
        self.blocking(move |inner| inner.attach_volume(&instance_id, &volume_id))
            .await
    }

    async fn detach_volume(&self, instance_id: &str, volume_id: &str) -> Result<(), DriverError> {
        let (instance_id, volume_id) = (instance_id.to_string(), volume_id.to_string());
        self.blocking(move |inner| inner.detach_volume(&instance_id, &volume_id))
            .await
    }

    async fn create_snapshot(
        &self,
        instance_id: &str,
        snapshot_id: &str,
    ) -> Result<(), DriverError> {
        let (instance_id, snapshot_id) = (instance_id.to_string(), snapshot_id.to_string());
        self.blocking(move |inner| inner.create_snapshot(&instance_id, &snapshot_id))
            .await
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), DriverError> {
        let snapshot_id = snapshot_id.to_string();
        self.blocking(move |inner| inner.delete_snapshot(&snapshot_id))
            .await
    }

    async fn apply_security_rules(
        &self,
        instance_id: &str,
        rules: &[PacketRule],
    ) -> Result<(), DriverError> {
        let (instance_id, rules) = (instance_id.to_string(), rules.to_vec());
        self.blocking(move |inner| inner.apply_rules(&instance_id, &rules))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_files_round_trip_through_the_side_file() {
        let files = BootFiles::from_domain_xml(
            "<os><kernel>/k</kernel><initrd>/i</initrd><cmdline>console=ttyS0 root=/dev/vda</cmdline></os>",
        );
        assert_eq!(files.kernel.as_deref(), Some("/k"));
        assert_eq!(BootFiles::parse(&files.render()), files);
        assert_eq!(
            BootFiles::parse(&BootFiles::default().render()),
            BootFiles::default()
        );
        assert_eq!(target_name(2), "vdc");
        assert_eq!(serial("vol_1.abc"), "vol1abc");
    }
}
